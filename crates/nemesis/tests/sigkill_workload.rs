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
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use sluice_checker::faults::{inject, Fault};
use sluice_checker::history::write_jsonl;
use sluice_checker::{check, Call};
use sluice_nemesis::workload::{final_read, History, Workload, WorkloadConfig, PARTITIONS, TOPIC};
use sluice_testkit::metadata::fetch_metadata;
use sluice_testkit::{locate_sluice_binary, SluiceProcess};

const KILLS: usize = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sluice_through_sigkill_restarts_has_no_anomalies() {
    let binary = locate_sluice_binary().expect("the sluice binary (cargo build -p sluice)");
    // A fixed port, so clients reconnect to the restarted broker.
    let port = free_port();
    let listener = format!("PLAINTEXT://127.0.0.1:{port}");
    let partitions = PARTITIONS.to_string();
    let mut sluice = SluiceProcess::start(
        &binary,
        &[
            ("listeners", listener.as_str()),
            ("num.partitions", partitions.as_str()),
            // Acknowledge after fsync: widens the window in which a kill lands
            // between the write and its acknowledgement.
            ("log.flush.interval.messages", "1"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    )
    .expect("start sluice");
    let bootstrap = sluice.bootstrap().to_string();
    // Auto-create the topic before any client needs it.
    let addr = bootstrap.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fetch_metadata(addr, Some(&[TOPIC])).is_ok_and(|md| {
        md.topics
            .iter()
            .any(|t| t.partitions.len() == PARTITIONS as usize)
    }) {
        assert!(Instant::now() < deadline, "topic {TOPIC} not created");
        thread::sleep(Duration::from_millis(100));
    }

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
        let path = std::env::temp_dir().join(format!("sluice-workload-{port}.jsonl"));
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
