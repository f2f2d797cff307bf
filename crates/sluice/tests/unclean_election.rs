//! An unclean leader election on real processes (3 controllers + 3
//! brokers, so the metadata quorum outlives two brokers), with what Kafka
//! promises and what it does not:
//!
//! - A partition on brokers A and B (`min.insync.replicas=1`) takes "a"
//!   with both in sync; B is killed and leaves the ISR; "b" is
//!   acknowledged by A alone; A is killed. B comes back, but it is not in
//!   the ISR (nor, KIP-966, an eligible leader replica): the partition
//!   stays leaderless, as Kafka keeps it with
//!   `unclean.leader.election.enable=false`.
//! - `sluice elect-leaders --election-type unclean` (Kafka's
//!   `kafka-leader-election --election-type unclean`) makes B the leader;
//!   the controller marks the partition RECOVERING (KIP-704, not visible in
//!   Metadata) with B alone in the ISR; "c" is acknowledged. The test fails
//!   if B is elected without the unclean election (tried once).
//! - A restarts, diverges from B's log (it holds "b", which B never had),
//!   truncates and rejoins the ISR. Metadata does not show the leader
//!   recovery state, so this test does not see RECOVERED itself; the
//!   controller's tests (`controller/tests/isr.rs`) check that an unclean
//!   election marks the partition RECOVERING and that a RECOVERING ISR
//!   cannot grow past its leader until the leader reports RECOVERED.
//! - "a" and "c" are read at their acknowledged offsets; "b" is gone: the
//!   unclean election lost it, which is what the operator accepted. The
//!   replicas end byte-identical.
//!
//! And where Sluice goes further than Kafka: a replica back from `kill -9`
//! stays an eligible leader replica and leads without any unclean
//! election (`a_replica_back_from_kill_9_stays_eligible_and_leads`).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{
    metadata, partitions, produce_one, read_all, wait_identical, wait_metadata, LONG,
};
use common::{sb, RawClient};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const TOPIC: &str = "unclean";
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// One acks=all Produce of `value` to partition 0 through broker `via`,
/// retried while the broker does not know the topic or its leader yet;
/// the acknowledged offset.
fn produce(c: &SluiceCluster, via: i32, topic: &str, value: &str) -> i64 {
    let bound = Instant::now() + LONG;
    loop {
        let (code, offset) = produce_one(c.broker_addr(via), topic, -1, 10_000, value);
        match code {
            0 => return offset,
            UNKNOWN_TOPIC_OR_PARTITION | LEADER_NOT_AVAILABLE | NOT_LEADER_OR_FOLLOWER
                if Instant::now() < bound =>
            {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => {
                let out = c.node(via).process.output();
                let lines: Vec<&str> = out.lines().collect();
                panic!(
                    "acks=all produce of {value} via {via}: error {code}\n{}",
                    lines[lines.len().saturating_sub(60)..].join("\n")
                )
            }
        }
    }
}

fn leader_and_isr(c: &SluiceCluster, via: i32) -> Option<(i32, BTreeSet<i32>)> {
    partitions(&metadata(c, via)?, TOPIC).remove(&0)
}

/// The settings both tests use: failures are noticed within seconds.
const FAST_FAILURE: [(&str, &str); 3] = [
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "300"),
    ("replica.lag.time.max.ms", "3000"),
];

/// Creates `topic` with one partition on `replicas` and the topic's
/// `min.insync.replicas`, through broker `via`.
fn create(c: &SluiceCluster, via: i32, topic: &str, replicas: [i32; 2], min_isr: &str) {
    let mut raw = RawClient::connect(c.broker_addr(via));
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(replicas.map(BrokerId).to_vec())])
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(sb("min.insync.replicas"))
                .with_value(Some(sb(min_isr)))])])
        .with_timeout_ms(30_000);
    let resp = raw.send(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

/// 3 controllers and 3 brokers A, B and a witness; `topic` has one
/// partition on A and B with `min_isr`, led by A with both in sync.
fn two_replicas_in_sync(topic: &str, min_isr: &str) -> (SluiceCluster, [i32; 3]) {
    let c = SluiceCluster::start(
        BIN,
        ClusterLayout::Split {
            controllers: 3,
            brokers: 3,
        },
        &FAST_FAILURE,
    )
    .expect("the cluster starts");
    let brokers = c.broker_ids();
    let (a, b, witness) = (brokers[0], brokers[1], brokers[2]);
    create(&c, witness, topic, [a, b], min_isr);
    let both: BTreeSet<i32> = [a, b].into();
    wait_metadata(&c, witness, "A leads with A and B in sync", |m| {
        partitions(m, topic).get(&0) == Some(&(a, both.clone()))
    });
    (c, [a, b, witness])
}

#[test]
fn an_unclean_election_elects_an_out_of_sync_replica_and_recovers() {
    let (mut c, [a, b, witness]) = two_replicas_in_sync(TOPIC, "1");
    let both: BTreeSet<i32> = [a, b].into();
    let at_a = produce(&c, a, TOPIC, "a");

    // B down: it leaves the ISR; "b" is acknowledged by A alone.
    c.node_mut(b).process.kill().unwrap();
    wait_metadata(&c, witness, "B out of the ISR", |m| {
        partitions(m, TOPIC).get(&0) == Some(&(a, [a].into()))
    });
    let at_b = produce(&c, a, TOPIC, "b");

    // A down too; B back: not eligible, so no leader.
    c.node_mut(a).process.kill().unwrap();
    wait_metadata(&c, witness, "no leader once A is gone", |m| {
        partitions(m, TOPIC).get(&0).is_some_and(|(l, _)| *l < 0)
    });
    c.node_mut(b).process.restart().unwrap();
    wait_metadata(&c, witness, "B registered again", |m| {
        m.brokers.iter().any(|x| x.node_id == b)
    });
    let b_back = Instant::now();
    while b_back.elapsed() < Duration::from_secs(3) {
        let (leader, _) = leader_and_isr(&c, witness).expect("the witness answers");
        assert!(
            leader < 0,
            "out-of-sync B was elected without an unclean election"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The operator accepts the loss.
    let out = Command::new(BIN)
        .args(["elect-leaders", "-b", c.broker_addr(witness)])
        .args([
            "--election-type",
            "unclean",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ])
        .output()
        .expect("sluice elect-leaders");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("elect-leaders: {}", stdout.trim());
    wait_metadata(&c, witness, "B leads alone", |m| {
        partitions(m, TOPIC).get(&0) == Some(&(b, [b].into()))
    });
    let at_c = produce(&c, b, TOPIC, "c");

    // A returns, truncates "b" away and rejoins.
    c.node_mut(a).process.restart().unwrap();
    wait_metadata(&c, witness, "A back in the ISR", |m| {
        partitions(m, TOPIC).get(&0) == Some(&(b, both.clone()))
    });
    let read = read_all(&c.bootstrap(), TOPIC, 1);
    let p0 = read.get(&0).cloned().unwrap_or_default();
    println!("read after the unclean election: {p0:?} (acknowledged a@{at_a}, b@{at_b}, c@{at_c})");
    if p0.get(&at_a).map(String::as_str) != Some("a") {
        // B lost "a" (once: deleted as a stray at its restart): its log
        // and A's say how.
        for n in [b, a] {
            let out = c.node(n).process.output();
            let lines: Vec<&str> = out.lines().collect();
            println!(
                "--- broker {n}\n{}",
                lines[lines.len().saturating_sub(200)..].join("\n")
            );
        }
    }
    assert_eq!(p0.get(&at_a).map(String::as_str), Some("a"));
    assert_eq!(p0.get(&at_c).map(String::as_str), Some("c"));
    assert!(
        !p0.values().any(|v| v == "b"),
        "b was only on A; the unclean election chose B's log"
    );
    wait_identical(&c, &both, TOPIC, 0);
}

/// KIP-966 with Sluice's running marker (storage's `clean_shutdown.rs`):
/// a replica back from `kill -9` on the same boot of the machine lost none
/// of its writes, so it keeps its place among the eligible leader replicas
/// and leads again. Kafka 4.1 counts every crash as unclean and would keep
/// this partition leaderless until A returns.
///
/// A and B hold the partition, `min.insync.replicas=2`. "x" is
/// acknowledged by both. B is killed: the ISR falls below min ISR, B
/// becomes eligible, and "y" is refused (NOT_ENOUGH_REPLICAS) so the high
/// watermark stays where B has it. A is killed: no leader. B restarts
/// and is elected from the ELR; "x" is there and "z" is acknowledged; A
/// returns and both end identical.
#[test]
fn a_replica_back_from_kill_9_stays_eligible_and_leads() {
    const ELIGIBLE: &str = "eligible";
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let (mut c, [a, b, witness]) = two_replicas_in_sync(ELIGIBLE, "2");
    let both: BTreeSet<i32> = [a, b].into();
    let at_x = produce(&c, a, ELIGIBLE, "x");

    c.node_mut(b).process.kill().unwrap();
    wait_metadata(&c, witness, "B out of the ISR", |m| {
        partitions(m, ELIGIBLE).get(&0) == Some(&(a, [a].into()))
    });
    let (code, _) = produce_one(c.broker_addr(a), ELIGIBLE, -1, 10_000, "y");
    assert_eq!(
        code, NOT_ENOUGH_REPLICAS,
        "the ISR is below min.insync.replicas"
    );

    c.node_mut(a).process.kill().unwrap();
    wait_metadata(&c, witness, "no leader once A is gone", |m| {
        partitions(m, ELIGIBLE).get(&0).is_some_and(|(l, _)| *l < 0)
    });
    c.node_mut(b).process.restart().unwrap();
    wait_metadata(&c, witness, "B, eligible, leads alone", |m| {
        partitions(m, ELIGIBLE).get(&0) == Some(&(b, [b].into()))
    });
    c.node_mut(a).process.restart().unwrap();
    wait_metadata(&c, witness, "A back in the ISR", |m| {
        partitions(m, ELIGIBLE).get(&0) == Some(&(b, both.clone()))
    });
    let at_z = produce(&c, b, ELIGIBLE, "z");
    let read = read_all(&c.bootstrap(), ELIGIBLE, 1);
    let p0 = read.get(&0).cloned().unwrap_or_default();
    println!("read after B led from the ELR: {p0:?} (acknowledged x@{at_x}, z@{at_z})");
    assert_eq!(p0.get(&at_x).map(String::as_str), Some("x"));
    assert_eq!(p0.get(&at_z).map(String::as_str), Some("z"));
    assert!(!p0.values().any(|v| v == "y"), "y was refused");
    wait_identical(&c, &both, ELIGIBLE, 0);
}
