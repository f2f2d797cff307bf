//! The transactional workload (`sluice_nemesis::transactional`) against a
//! real single-node Sluice on loopback that is killed with SIGKILL and
//! restarted while it runs; the transaction coordinator dies with it
//! every time. No namespaces needed.
//!
//! With read_committed consumers the checker must find no anomaly: no
//! aborted transaction's value read, every committed value read where it
//! was written, once, and nothing skipped. Then the same producers with
//! read_uncommitted consumers: the checker must find AbortedRead — so the
//! history does contain aborted values, written to the log, that the
//! read_committed consumers were right not to return.
//!
//! Needs the `sluice` binary (`cargo build -p sluice`; `cargo test
//! --workspace` builds it). A failing history is kept in a file.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sluice_checker::history::write_jsonl;
use sluice_checker::{check, AnomalyKind, Call, OpType};
use sluice_nemesis::workload::{final_read_with, History, Workload, WorkloadConfig};
use sluice_testkit::SluiceProcess;

mod common;

const KILLS: usize = 3;

fn start_sluice() -> (SluiceProcess, String) {
    // Timed-out transactions of killed producers end sooner.
    common::start_sluice(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "1000",
    )])
}

/// Runs the transactional producers with consumers in `read_committed`
/// (or not) through [`KILLS`] kills; the history.
fn run(read_committed: bool) -> Vec<sluice_checker::Op> {
    let (mut sluice, bootstrap) = start_sluice();
    let history = History::new();
    let mut config = WorkloadConfig::idempotent(bootstrap.clone(), 2, 500);
    config.transactional = true;
    config.read_committed = read_committed;
    let workload = Workload::start(config, history.clone());
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(2500));
        sluice.kill().unwrap();
        thread::sleep(Duration::from_millis(200));
        sluice.restart().unwrap();
    }
    thread::sleep(Duration::from_millis(2000));
    let counts = workload.stop();
    eprintln!("clients: {counts:?}");
    assert!(
        final_read_with(
            &bootstrap,
            &history,
            Duration::from_secs(120),
            read_committed
        ),
        "the final read did not reach the end of every partition"
    );
    Arc::try_unwrap(history)
        .map(|h| h.take())
        .unwrap_or_else(|h| h.take())
}

fn outcomes(ops: &[sluice_checker::Op]) -> (usize, usize) {
    let sends = |kind| {
        ops.iter()
            .filter(|o| o.kind == kind && matches!(o.call, Call::Send { .. }))
            .count()
    };
    (sends(OpType::Ok), sends(OpType::Fail))
}

#[test]
fn transactions_through_sigkill_restarts_read_committed_has_no_anomalies() {
    let ops = run(true);
    let (committed, aborted) = outcomes(&ops);
    let report = check(&ops).expect("a well-formed history");
    eprintln!(
        "committed sends {committed}, aborted sends {aborted}\n{}",
        report.summary(5)
    );
    assert!(committed > 0 && aborted > 0, "both outcomes occur");
    if !report.is_valid() {
        let path =
            std::env::temp_dir().join(format!("sluice-txn-workload-{}.jsonl", common::free_port()));
        write_jsonl(&mut std::fs::File::create(&path).unwrap(), &ops).unwrap();
        panic!(
            "anomalies after {KILLS} kills (history kept in {}):\n{report}",
            path.display()
        );
    }
}

#[test]
fn read_uncommitted_consumers_of_the_same_transactions_read_aborted_values() {
    let ops = run(false);
    let kinds = check(&ops).expect("a well-formed history").kinds();
    eprintln!("read_uncommitted: {kinds:?}");
    assert!(
        kinds.contains(&AnomalyKind::AbortedRead),
        "aborted values were not read in read_uncommitted: {kinds:?}"
    );
}
