//! The bounded nemesis runs of CI: a single-node Sluice and a 3-node Sluice
//! cluster in network namespaces, under seeded faults (kill -9 of any node,
//! of a partition leader and of the active controller, SIGSTOP/SIGCONT,
//! clean restarts, partitions between nodes and clients cut off by
//! nftables, a full disk, delayed and held traffic between nodes through
//! the nemesis's proxy) and the idempotent acks=all workload, then a
//! final read and the checker, which must find no anomaly, and replicas
//! that must hold the same bytes on every node. Skips (with a message) where namespaces are
//! impossible (not root). Needs the `sluice` binary (`cargo build -p sluice`;
//! `cargo test --workspace` builds it). `scripts/fault` runs the long ones.

use std::time::Duration;

use sluice_nemesis::cluster::SLUICE_NODES;
use sluice_nemesis::{netns, run, FaultKind, RunConfig, System};

/// One seeded run against a Sluice of `nodes` nodes: every applicable fault
/// at least once, then the checker, which must find no anomaly; no node
/// may have exited by itself except on a full disk (a halt on a storage
/// error is allowed there).
fn faults_against_sluice(nodes: usize, seconds: u64) {
    faults_against_sluice_with(nodes, 0, seconds, false)
}

/// [`faults_against_sluice`], the first `controllers` nodes controller-only
/// (0: combined nodes), with the transactional workload when
/// `transactional`.
fn faults_against_sluice_with(nodes: usize, controllers: usize, seconds: u64, transactional: bool) {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    assert!(
        netns::nft_available(),
        "the `nft` tool is missing: install Debian's nftables (scripts/setup)"
    );
    let binary =
        sluice_testkit::locate_sluice_binary().expect("the sluice binary (cargo build -p sluice)");
    let seed = std::env::var("SLUICE_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!(
        "nemesis CI run, {nodes} node(s): seed {seed} (SLUICE_NEMESIS_SEED={seed} replays the schedule)"
    );
    let mut config = RunConfig::new(
        System::Sluice {
            binary,
            nodes,
            controllers,
        },
        seed,
        Duration::from_secs(seconds),
    );
    // Every applicable fault at least once, in a seeded order.
    config.min_cycles = FaultKind::applicable(nodes, true).len();
    config.transactional = transactional;
    let history = std::env::temp_dir().join(format!("sluice-nemesis-ci-{nodes}-{seed}.jsonl"));
    config.history = Some(history.clone());
    let report = run(config).expect("the run");
    eprintln!("{}", report.schedule.join("\n"));
    eprintln!("{}", report.summary);
    assert!(report.cycles >= 1, "no fault cycle ran");
    assert!(report.sends_ok > 0, "nothing acknowledged");
    let unexplained: Vec<&String> = report
        .node_exits
        .iter()
        .filter(|e| !e.contains("during disk-full") && !e.contains("during the heal of disk-full"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "nodes exited by themselves (seed {seed}):\n{unexplained:#?}"
    );
    assert!(
        report.final_read_complete,
        "the final read did not reach the end (seed {seed})"
    );
    assert_ne!(
        report.replicas_identical,
        Some(false),
        "replicas differ after healing (seed {seed}): {:?}",
        report.replica_differences
    );
    assert!(
        report.valid,
        "anomalies with seed {seed} (history in {}): {:?}\n{}",
        history.display(),
        report.anomalies,
        report.summary
    );
    let _ = std::fs::remove_file(history);
}

/// The single-node Sluice (no `process.roles`): kill -9, SIGSTOP/SIGCONT,
/// clean restarts, clients cut off, a full disk.
#[test]
fn faults_against_a_single_node_sluice_find_no_anomaly() {
    faults_against_sluice(1, 30);
}

/// A 3-node Sluice cluster (combined nodes, one metadata quorum): every
/// fault, leader and active-controller kills, pauses and partitions
/// included. Partitions are replicated (RF 3, min.insync.replicas 2): a
/// leader's death moves its partitions to an in-sync follower, and an
/// acknowledged write must never be lost or duplicated.
///
/// It found a real Sluice bug on nearly every run before that was fixed
/// (a restarted node deleted its partition logs before its metadata caught
/// up; `tests/restart_keeps_data.rs` reproduces it without namespaces).
#[test]
fn a_minute_of_faults_against_a_three_node_sluice_finds_no_anomaly() {
    faults_against_sluice(SLUICE_NODES, 60);
}

/// The transactional workload (issue 19) against a 3-node Sluice: kills
/// of any node, of partition leaders and of the active controller (the
/// transaction coordinators die with their nodes), restarts and pauses;
/// read_committed consumers must see no aborted read, no lost or
/// duplicated committed write and nothing skipped. A minute of faults;
/// with `SLUICE_TEST_FULL=1` only (CI runs the single-node kill -9 one,
/// `tests/sigkill_txn_workload.rs`).
#[test]
fn transactions_under_faults_against_a_three_node_sluice_find_no_anomaly() {
    if std::env::var("SLUICE_TEST_FULL").as_deref() != Ok("1") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to run the transactional nemesis against 3 Sluice nodes");
        return;
    }
    faults_against_sluice_with(SLUICE_NODES, 0, 60, true);
}

/// Five combined nodes (five voters), RF 3 and min ISR 2: partitions
/// whose replicas are a subset of the brokers, and quorum and ISR
/// majorities that differ. It found a produce append landing in a log
/// that had just turned follower (replicas differing under the high
/// watermark) and a follower that stopped for good after a full disk.
/// A minute and a half of faults; with `SLUICE_TEST_FULL=1` only (CI runs
/// the 3-node one).
#[test]
fn faults_against_a_five_node_sluice_find_no_anomaly() {
    if std::env::var("SLUICE_TEST_FULL").as_deref() != Ok("1") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to run the nemesis against 5 Sluice nodes");
        return;
    }
    faults_against_sluice(5, 90);
}

/// Split roles: 3 controller-only nodes (the quorum's voters) and 2
/// broker-only ones (observers), every fault on any of them (the active
/// controller's kill included) and delays through the proxy. A minute of
/// faults; with `SLUICE_TEST_FULL=1` only (CI runs the combined one).
#[test]
fn faults_against_split_roles_find_no_anomaly() {
    if std::env::var("SLUICE_TEST_FULL").as_deref() != Ok("1") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to run the nemesis against split roles");
        return;
    }
    faults_against_sluice_with(5, 3, 60, false);
}

/// The same against the 3-node Apache Kafka (every fault, leader and
/// controller kills and partitions included). Its JVMs make it slow on a
/// busy 2-core machine, so it runs with `SLUICE_TEST_FULL=1` only.
#[test]
fn a_minute_of_faults_against_a_three_node_kafka_finds_no_anomaly() {
    if std::env::var("SLUICE_TEST_FULL").as_deref() != Ok("1") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to run the nemesis against a 3-node Kafka");
        return;
    }
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let Some(lib) = sluice_testkit::ReferenceKafka::lib_dir() else {
        eprintln!("skipped: no Kafka jars in .cache/kafka/lib (scripts/setup)");
        return;
    };
    let seed = rand::random();
    eprintln!("nemesis Kafka run: seed {seed}");
    let config = RunConfig::new(
        System::Kafka { lib, nodes: 3 },
        seed,
        Duration::from_secs(60),
    );
    let report = run(config).expect("the run");
    eprintln!("{}", report.schedule.join("\n"));
    assert!(report.cycles >= 1 && report.sends_ok > 0 && report.final_read_complete);
    assert!(
        report.valid,
        "anomalies with seed {seed}:\n{}",
        report.summary
    );
}
