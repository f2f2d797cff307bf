//! The nemesis workload against a real single-node Sluice on loopback that
//! is killed with SIGKILL and restarted while it runs (no namespaces, so it
//! runs anywhere `cargo test` does): the checker must find no anomaly in
//! the history, and must find each anomaly injected into that same real
//! history, so the check is one that can fail.
//!
//! Needs the `sluice` binary (`cargo build -p sluice`; `cargo test
//! --workspace` builds it). The history is kept in a file when the check
//! fails, and always written to `$SLUICE_WORKLOAD_HISTORY` when set.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use sluice_checker::faults::{inject, Fault};
use sluice_checker::history::write_jsonl;
use sluice_checker::{check, Call};
use sluice_nemesis::workload::{final_read, History, Workload, WorkloadConfig};

mod common;

const KILLS: usize = 3;

#[test]
fn sluice_through_sigkill_restarts_has_no_anomalies() {
    // Acknowledge after fsync: widens the window in which a kill lands
    // between the write and its acknowledgement.
    let (mut sluice, bootstrap) = common::start_sluice(&[("log.flush.interval.messages", "1")]);

    let history = History::new();
    let workload = Workload::start(
        WorkloadConfig::idempotent(bootstrap.clone(), 1, 1000),
        history.clone(),
    );
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(1500));
        sluice.kill().unwrap();
        thread::sleep(Duration::from_millis(200));
        sluice.restart().unwrap();
    }
    thread::sleep(Duration::from_millis(1000));
    let counts = workload.stop();
    assert!(
        final_read(&bootstrap, &history, Duration::from_secs(120)),
        "the final read did not reach the end of every partition"
    );

    let ops = history.take();
    if let Some(path) = std::env::var_os("SLUICE_WORKLOAD_HISTORY") {
        write_jsonl(&mut std::fs::File::create(path).unwrap(), &ops).unwrap();
    }
    let report = check(&ops).expect("a well-formed history");
    eprintln!("{}", report.summary(5));
    let mut per_consumer: BTreeMap<u64, usize> = BTreeMap::new();
    for op in &ops {
        if let Call::Poll { records } = &op.call {
            *per_consumer.entry(op.process.0).or_default() +=
                records.values().map(Vec::len).sum::<usize>();
        }
    }
    eprintln!("records polled per consumer process: {per_consumer:?}; clients: {counts:?}");
    assert!(report.stats.sends_ok > 0, "nothing acknowledged");
    if !report.is_valid() {
        let path =
            std::env::temp_dir().join(format!("sluice-workload-{}.jsonl", common::free_port()));
        let mut file = std::fs::File::create(&path).unwrap();
        write_jsonl(&mut file, &ops).unwrap();
        panic!(
            "anomalies after {KILLS} kills (history kept in {}):\n{report}",
            path.display()
        );
    }
    // The real history is one the checker can fail on: the same bugs
    // injected into it are found.
    for fault in Fault::ALL {
        let mut broken = ops.clone();
        assert!(inject(&mut broken, fault, 1), "{fault:?} found no place");
        let kinds = check(&broken).unwrap().kinds();
        assert!(kinds.contains(&fault.expected()), "{fault:?}: {kinds:?}");
    }
}
