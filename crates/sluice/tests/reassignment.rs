//! Partition reassignment (KIP-455) on real processes, driven by Kafka
//! 4.1.2's own `kafka-reassign-partitions` (the jars in `.cache/kafka/lib`;
//! skipped loudly when they or java are missing, unless
//! `SLUICE_REQUIRE_CLIENTS` is set):
//!
//! - **Moves under load** (3 combined nodes, RF=2, `min.insync.replicas=2`,
//!   an idempotent `acks=all` producer running throughout): `--execute`
//!   moves two partitions to other brokers (removing their leaders) and
//!   grows one to RF=3, `--verify` polls until every partition is
//!   completed; a second plan shrinks that partition back to RF=2 without
//!   its leader. Then: every acknowledged record is read back at its offset,
//!   none twice; the final replicas are byte-identical; the brokers that
//!   lost a replica deleted its directory.
//! - **List, cancel, refusals**: with one broker stopped (SIGSTOP, so its
//!   replica cannot catch up), a reassignment onto it stays in progress and
//!   `--list` shows it with Kafka's text; `--cancel` reverts it; a plan
//!   naming a broker that does not exist is refused as Kafka refuses it, by
//!   the tool and by the controller (INVALID_REPLICA_ASSIGNMENT with
//!   Kafka's message).
//! - **A new broker, then a decommission** (3 combined nodes and a 4th
//!   broker added while an `acks=all` producer runs): every partition moves
//!   onto the new broker, then everything moves off node 1, which is then
//!   stopped; nothing acknowledged is lost or duplicated, the replicas are
//!   byte-identical and node 1 kept no replica of the topic.
//! - **The controller's answers as Kafka's**: the same AlterPartitionReassignments
//!   and ListPartitionReassignments requests (unknown topic and partition,
//!   empty, duplicate and unregistered replicas, a cancel with nothing in
//!   progress, KIP-860's replication factor check, an internal topic, a
//!   real move) against a 3-node Sluice and a 3-node Kafka 4.1.2 answer
//!   the same codes and messages. Kafka's answers are recorded in
//!   `tests/fixtures/reassignment.*.txt`; the 3-node Kafka runs again in
//!   the full suite (see `common::transcript`).
//! - **Replication throttles** (`--throttle`): see [`throttle`].

mod common;
#[path = "reassignment/throttle.rs"]
mod throttle;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::{env_on, kafka_tool, kafka_tool_output, root, sb, transcript, RawClient};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreateTopicsRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::{ClusterLayout, ReferenceKafkaCluster, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const TOOL: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

/// Kafka's tools need java and the pinned jars.
fn kafka_tools_ready() -> bool {
    let java = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let jars = root().join(".cache/kafka/lib/.complete");
    if java && jars.exists() {
        return true;
    }
    let missing = format!("java on PATH and {}", jars.display());
    assert!(
        !env_on("SLUICE_REQUIRE_CLIENTS"),
        "reassignment tests need {missing} (SLUICE_REQUIRE_CLIENTS is set)"
    );
    eprintln!(
        "\n\n!!! SKIPPED reassignment with Kafka's tool: needs {missing}; run scripts/setup !!!\n"
    );
    false
}

/// 3 combined nodes; `session_ms` is `broker.session.timeout.ms`.
fn start(session_ms: &str) -> SluiceCluster {
    SluiceCluster::start(
        BIN,
        ClusterLayout::Combined(3),
        &[
            ("broker.session.timeout.ms", session_ms),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "6000"),
        ],
    )
    .expect("the cluster starts")
}

/// Creates `name` with an explicit replica list per partition and
/// `min.insync.replicas=2`.
fn create_topic(c: &SluiceCluster, name: &str, assignment: &[&[i32]]) {
    create_topic_at(c.broker_addr(1), name, assignment)
}

fn create_topic_at(addr: &str, name: &str, assignment: &[&[i32]]) {
    let mut raw = RawClient::connect(addr);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                assignment
                    .iter()
                    .enumerate()
                    .map(|(p, replicas)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(p as i32)
                            .with_broker_ids(replicas.iter().map(|&b| BrokerId(b)).collect())
                    })
                    .collect(),
            )
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(sb("min.insync.replicas"))
                .with_value(Some(sb("2")))])])
        .with_timeout_ms(30_000);
    let resp = raw.send(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "create {name}: {resp:?}");
}

/// (replicas, isr, leader) of every partition of `topic`.
type Placement = BTreeMap<i32, (Vec<i32>, BTreeSet<i32>, i32)>;

fn placement(m: &ClusterMetadata, topic: &str) -> Placement {
    m.topics
        .iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    p.partition,
                    (
                        p.replicas.clone(),
                        p.isr.iter().copied().collect(),
                        p.leader,
                    ),
                )
            })
        })
        .collect()
}

/// Every partition in `targets` has exactly those replicas, all in sync,
/// and a leader among them.
fn settled(m: &ClusterMetadata, topic: &str, targets: &BTreeMap<i32, Vec<i32>>) -> bool {
    let now = placement(m, topic);
    targets.iter().all(|(p, target)| {
        now.get(p).is_some_and(|(replicas, isr, leader)| {
            replicas == target
                && *isr == target.iter().copied().collect::<BTreeSet<_>>()
                && target.contains(leader)
        })
    })
}

/// A reassignment plan file (Kafka's JSON) in `dir`.
fn plan(
    dir: &std::path::Path,
    name: &str,
    topic: &str,
    targets: &BTreeMap<i32, Vec<i32>>,
) -> PathBuf {
    let partitions: Vec<String> = targets
        .iter()
        .map(|(p, r)| {
            let ids: Vec<String> = r.iter().map(i32::to_string).collect();
            format!(
                r#"{{"topic":"{topic}","partition":{p},"replicas":[{}]}}"#,
                ids.join(",")
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(",")),
    )
    .unwrap();
    path
}

fn tool(bootstrap: &str, action: &str, plan: Option<&PathBuf>) -> String {
    tool_with(bootstrap, &[action], plan)
}

fn tool_with(bootstrap: &str, actions: &[&str], plan: Option<&PathBuf>) -> String {
    let file = plan.map(|p| p.display().to_string());
    let mut args = vec!["--bootstrap-server", bootstrap];
    args.extend(actions);
    if let Some(f) = &file {
        args.extend(["--reassignment-json-file", f.as_str()]);
    }
    kafka_tool(TOOL, &args)
}

/// `--execute`, then `--verify` until every partition is completed.
fn execute_and_verify(bootstrap: &str, plan: &PathBuf, partitions: &[(&str, i32)]) -> Duration {
    let started = Instant::now();
    let out = tool(bootstrap, "--execute", Some(plan));
    let names: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
    assert!(
        out.contains(&format!(
            "Successfully started partition reassignment{} for {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(",")
        )),
        "{out}"
    );
    let bound = Instant::now() + LONG;
    loop {
        let out = tool(bootstrap, "--verify", Some(plan));
        assert!(out.contains("Status of partition reassignment:"), "{out}");
        let done = names
            .iter()
            .filter(|n| out.contains(&format!("Reassignment of partition {n} is completed.")))
            .count();
        if done == names.len() {
            return started.elapsed();
        }
        assert!(
            !out.contains("There is no active reassignment"),
            "a reassignment ended elsewhere than its target:\n{out}"
        );
        assert!(Instant::now() < bound, "never completed:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Node `id` holds no directory of `topic`-`partition` (polled: the
/// partitions publisher deletes it once it applies the change).
fn wait_dir_gone(c: &SluiceCluster, id: i32, topic: &str, partition: i32) {
    let bound = Instant::now() + LONG;
    while partition_dir(c, id, topic, partition).exists() {
        assert!(
            Instant::now() < bound,
            "node {id} still holds {topic}-{partition} after losing the replica"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The broker ids after `replicas` rotated by one (1→2→3→1): a move that
/// replaces one replica and, for a list that starts below its successor,
/// the leader.
fn rotate(replicas: &[i32]) -> Vec<i32> {
    replicas.iter().map(|b| b % 3 + 1).collect()
}

#[test]
fn kafka_reassign_partitions_moves_replicas_under_an_acks_all_producer() {
    if !kafka_tools_ready() {
        return;
    }
    const TOPIC: &str = "moving";
    let _one = one_at_a_time();
    let mut c = start("6000");
    let all: BTreeSet<i32> = [1, 2, 3].into();
    let initial: Vec<Vec<i32>> = vec![vec![1, 2], vec![2, 3], vec![3, 1]];
    let initial_refs: Vec<&[i32]> = initial.iter().map(Vec::as_slice).collect();
    create_topic(&c, TOPIC, &initial_refs);
    let start_targets: BTreeMap<i32, Vec<i32>> = initial
        .iter()
        .cloned()
        .enumerate()
        .map(|(p, r)| (p as i32, r))
        .collect();
    wait_metadata(&c, 1, "the topic in sync", |m| {
        settled(m, TOPIC, &start_targets)
    });
    let bootstrap = c.bootstrap();
    let tmp = tempfile::tempdir().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let producer = produce_until(
        bootstrap.clone(),
        TOPIC,
        3,
        30_000,
        stop.clone(),
        acks.clone(),
    );
    wait_acked(&acks, 1500, "before the reassignment");

    // Plan 1: partitions 0 and 1 move (each loses its leader), 2 grows to
    // all three brokers.
    let mut targets: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    targets.insert(0, rotate(&initial[0]));
    targets.insert(1, rotate(&initial[1]));
    targets.insert(2, vec![3, 1, 2]);
    let first = plan(tmp.path(), "grow-and-move.json", TOPIC, &targets);
    let before = acked_count(&acks);
    let took = execute_and_verify(&bootstrap, &first, &[(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)]);
    wait_metadata(&c, 1, "the first plan's replicas, all in sync", |m| {
        settled(m, TOPIC, &targets)
    });
    println!(
        "plan 1 completed in {:.2} s with {} acks=all writes acknowledged meanwhile",
        took.as_secs_f64(),
        acked_count(&acks) - before
    );
    wait_acked(&acks, acked_count(&acks) + 500, "after plan 1");

    // Plan 2: partition 2 shrinks back to two replicas without its leader.
    let m = metadata(&c, 1).expect("metadata");
    let leader2 = placement(&m, TOPIC)[&2].2;
    let shrunk: Vec<i32> = [3, 1, 2].into_iter().filter(|&b| b != leader2).collect();
    let mut second_targets = BTreeMap::new();
    second_targets.insert(2, shrunk.clone());
    let second = plan(tmp.path(), "shrink.json", TOPIC, &second_targets);
    execute_and_verify(&bootstrap, &second, &[(TOPIC, 2)]);
    targets.insert(2, shrunk);
    wait_metadata(
        &c,
        1,
        "partition 2 on two replicas without its old leader",
        |m| settled(m, TOPIC, &targets) && placement(m, TOPIC)[&2].2 != leader2,
    );
    wait_acked(&acks, acked_count(&acks) + 500, "after plan 2");
    stop.store(true, Ordering::Release);
    producer.join().expect("producer thread");

    let acks = acks.lock().unwrap();
    let read = read_all(&bootstrap, TOPIC, 3);
    let read_count = check_acked(&acks, &read);
    println!(
        "{} acknowledged, {} failed sends, {read_count} records read, no loss, no duplicate",
        acks.acked.len(),
        acks.failed
    );
    for (&p, target) in &targets {
        let replicas: BTreeSet<i32> = target.iter().copied().collect();
        wait_identical(&c, &replicas, TOPIC, p);
        for gone in all.difference(&replicas) {
            wait_dir_gone(&c, *gone, TOPIC, p);
        }
    }
    let listed = tool(&bootstrap, "--list", None);
    assert!(
        listed.contains("No partition reassignments found."),
        "{listed}"
    );
}

#[test]
fn list_cancel_and_a_missing_broker_as_kafka_answers_them() {
    if !kafka_tools_ready() {
        return;
    }
    const TOPIC: &str = "held";
    let _one = one_at_a_time();
    // Broker 3 is stopped for a while below but must stay registered
    // and unfenced (the tool only plans onto brokers the cluster lists).
    let c = start("60000");
    create_topic(&c, TOPIC, &[&[1, 2]]);
    let mut start_targets = BTreeMap::new();
    start_targets.insert(0, vec![1, 2]);
    wait_metadata(&c, 1, "the topic in sync", |m| {
        settled(m, TOPIC, &start_targets)
    });
    let bootstrap = format!("{},{}", c.broker_addr(1), c.broker_addr(2));
    let tmp = tempfile::tempdir().unwrap();

    // Broker 3 stopped: a reassignment adding it cannot complete.
    signal(&c, 3, "-STOP");
    let mut targets = BTreeMap::new();
    targets.insert(0, vec![1, 2, 3]);
    let held = plan(tmp.path(), "onto-3.json", TOPIC, &targets);
    let out = tool(&bootstrap, "--execute", Some(&held));
    assert!(
        out.contains("Successfully started partition reassignment for held-0"),
        "{out}"
    );
    let listed = tool(&bootstrap, "--list", None);
    assert!(
        listed.contains("Current partition reassignments:")
            && listed.contains("held-0: replicas: 1,2,3. adding: 3.\n"),
        "{listed}"
    );
    let verified = tool(&bootstrap, "--verify", Some(&held));
    assert!(
        verified.contains("Reassignment of partition held-0 is still in progress."),
        "{verified}"
    );
    // Clearing the throttles would ask the stopped broker for its own
    // configs, as against Kafka: leave them.
    let cancelled = tool_with(
        &bootstrap,
        &["--cancel", "--preserve-throttles"],
        Some(&held),
    );
    assert!(
        cancelled.contains("Successfully cancelled partition reassignment for: held-0"),
        "{cancelled}"
    );
    let listed = tool(&bootstrap, "--list", None);
    assert!(
        listed.contains("No partition reassignments found."),
        "{listed}"
    );
    let m = metadata(&c, 1).expect("metadata");
    assert_eq!(placement(&m, TOPIC)[&0].0, vec![1, 2], "reverted");
    signal(&c, 3, "-CONT");
    // Broker 3 learns of the revert and drops what it may have created.
    wait_dir_gone(&c, 3, TOPIC, 0);

    // A broker that does not exist: the tool refuses the plan itself, as
    // against Kafka, and the controller answers Kafka's code and message.
    let mut missing = BTreeMap::new();
    missing.insert(0, vec![1, 42]);
    let bad = plan(tmp.path(), "onto-42.json", TOPIC, &missing);
    let file = bad.display().to_string();
    let (ok, stdout, stderr) = kafka_tool_output(
        TOOL,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--execute",
            "--reassignment-json-file",
            &file,
        ],
    );
    let text = format!("{stdout}{stderr}");
    assert!(!ok, "a plan onto broker 42 was accepted:\n{text}");
    assert!(text.contains("Unknown broker id 42"), "{text}");
    let mut raw = RawClient::connect(c.broker_addr(2));
    let resp = raw.send(
        0,
        &AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(vec![BrokerId(1), BrokerId(42)]))])]),
    );
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, INVALID_REPLICA_ASSIGNMENT, "{resp:?}");
    assert_eq!(
        p.error_message.as_deref(),
        Some(
            "The manual partition assignment includes broker 42, but no such broker is registered."
        ),
    );
}

/// One cluster (Sluice's or Kafka's) at a time in this binary: each is
/// three processes on a shared 2-core machine.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn reassignable(p: i32, replicas: Option<&[i32]>) -> ReassignablePartition {
    ReassignablePartition::default()
        .with_partition_index(p)
        .with_replicas(replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect()))
}

/// The refusals and a few accepted requests, as text, from the cluster
/// behind `addrs` (three brokers, ids 1..=3).
fn refusals(addrs: &[String]) -> Vec<String> {
    create_topic_at(&addrs[0], "cmp", &[&[1, 2], &[2, 3]]);
    // The internal offsets topic, made by asking for a coordinator.
    let mut raw = RawClient::connect(&addrs[0]);
    let bound = Instant::now() + LONG;
    let offsets = loop {
        let _ = raw.send(
            3,
            &kafka_protocol::messages::FindCoordinatorRequest::default()
                .with_key(sb("reassignment-cmp")),
        );
        let m = fetch_metadata(addrs[0].parse().unwrap(), None).expect("metadata");
        let ready = |t: &str| {
            m.topics.iter().any(|x| {
                x.name == t
                    && !x.partitions.is_empty()
                    && x.partitions.iter().all(|p| p.leader >= 0)
            })
        };
        if ready("cmp") && ready("__consumer_offsets") {
            break placement(&m, "__consumer_offsets")[&0].0.clone();
        }
        assert!(Instant::now() < bound, "topics never ready: {m:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = Vec::new();
    let mut alter = |label: &str, allow_rf: bool, topics: Vec<ReassignableTopic>| {
        let resp = raw.send(
            1,
            &AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(30_000)
                .with_allow_replication_factor_change(allow_rf)
                .with_topics(topics),
        );
        out.push(format!(
            "{label}: code {} {:?}",
            resp.error_code,
            resp.error_message.as_deref()
        ));
        for t in &resp.responses {
            for p in &t.partitions {
                out.push(format!(
                    "{label}: {}-{} {} {:?}",
                    t.name.0,
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_deref()
                ));
            }
        }
    };
    let topic = |name: &str, parts: Vec<ReassignablePartition>| {
        ReassignableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_partitions(parts)
    };
    alter(
        "refused",
        true,
        vec![
            topic(
                "cmp",
                vec![
                    reassignable(0, None),
                    reassignable(1, Some(&[1, 42])),
                    reassignable(5, Some(&[1])),
                    reassignable(0, Some(&[])),
                    reassignable(1, Some(&[3, 1, 3])),
                ],
            ),
            topic("missing", vec![reassignable(0, Some(&[1]))]),
        ],
    );
    alter(
        "rf kept",
        false,
        vec![topic("cmp", vec![reassignable(0, Some(&[1, 2, 3]))])],
    );
    let reordered: Vec<i32> = offsets.iter().rev().copied().collect();
    alter(
        "internal and a move",
        true,
        vec![
            topic(
                "__consumer_offsets",
                vec![reassignable(0, Some(&reordered))],
            ),
            topic("cmp", vec![reassignable(1, Some(&[3, 1]))]),
        ],
    );
    let list = raw.send(
        0,
        &ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(sb("missing")))
                    .with_partition_indexes(vec![0]),
                ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(sb("cmp")))
                    .with_partition_indexes(vec![0, 9]),
            ])),
    );
    out.push(format!(
        "list: code {} {:?} {:?}",
        list.error_code,
        list.error_message.as_deref(),
        list.topics
    ));
    out
}

#[test]
fn the_controller_answers_as_a_three_node_kafka() {
    let sluice = {
        let _one = one_at_a_time();
        let c = start("6000");
        let addrs: Vec<String> = [1, 2, 3]
            .iter()
            .map(|&id| c.broker_addr(id).to_string())
            .collect();
        refusals(&addrs)
    };
    let kafka = || {
        let _one = one_at_a_time();
        let k = ReferenceKafkaCluster::start()
            .expect("start the Kafka cluster")
            .expect("Kafka's jars (tools/kafka/fetch) for the full suite");
        let addrs: Vec<String> = ReferenceKafkaCluster::NODE_IDS
            .iter()
            .map(|&id| k.addr(id).to_string())
            .collect();
        let answers = refusals(&addrs);
        k.stop();
        transcript::lines(&answers)
    };
    transcript::same_as_kafka("reassignment.refusals", &transcript::lines(&sluice), kafka);
}

#[test]
fn a_new_broker_takes_partitions_and_an_old_one_is_decommissioned() {
    if !kafka_tools_ready() {
        return;
    }
    const TOPIC: &str = "fleet";
    let _one = one_at_a_time();
    let mut c = start("6000");
    create_topic(&c, TOPIC, &[&[1, 2], &[2, 3], &[3, 1]]);
    let mut targets: BTreeMap<i32, Vec<i32>> =
        [(0, vec![1, 2]), (1, vec![2, 3]), (2, vec![3, 1])].into();
    wait_metadata(&c, 1, "the topic in sync", |m| settled(m, TOPIC, &targets));
    let bootstrap = c.bootstrap();
    let tmp = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let producer = produce_until(
        bootstrap.clone(),
        TOPIC,
        3,
        30_000,
        stop.clone(),
        acks.clone(),
    );
    wait_acked(&acks, 1000, "before the new broker");

    // A fourth broker joins the running cluster and leads every partition.
    let new = c
        .add_broker(
            BIN,
            &[
                ("broker.session.timeout.ms", "6000"),
                ("broker.heartbeat.interval.ms", "500"),
                ("replica.lag.time.max.ms", "6000"),
            ],
        )
        .expect("the fourth broker starts");
    wait_metadata(&c, 1, "the new broker listed", |m| {
        m.brokers.iter().any(|b| b.node_id == new)
    });
    for replicas in targets.values_mut() {
        replicas[0] = new;
    }
    let onto = plan(tmp.path(), "onto-new.json", TOPIC, &targets);
    let took = execute_and_verify(&bootstrap, &onto, &[(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)]);
    wait_metadata(&c, 1, "every partition on the new broker", |m| {
        settled(m, TOPIC, &targets)
    });
    println!(
        "onto broker {new}: completed in {:.2} s",
        took.as_secs_f64()
    );
    wait_acked(
        &acks,
        acked_count(&acks) + 500,
        "after the move onto the new broker",
    );

    // Decommission node 1: every replica it holds moves to a broker the
    // partition does not have yet, then it stops.
    for replicas in targets.values_mut() {
        if let Some(i) = replicas.iter().position(|&b| b == 1) {
            replicas[i] = [2, 3, new]
                .into_iter()
                .find(|b| !replicas.contains(b))
                .expect("a broker to move to");
        }
    }
    let off = plan(tmp.path(), "off-1.json", TOPIC, &targets);
    execute_and_verify(&bootstrap, &off, &[(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)]);
    wait_metadata(&c, 2, "nothing left on node 1", |m| {
        settled(m, TOPIC, &targets)
            && placement(m, TOPIC)
                .values()
                .all(|(replicas, _, _)| !replicas.contains(&1))
    });
    for p in 0..3 {
        wait_dir_gone(&c, 1, TOPIC, p);
    }
    c.node_mut(1).process.kill().unwrap();
    let before = acked_count(&acks);
    wait_acked(&acks, before + 500, "after node 1 stopped");
    stop.store(true, Ordering::Release);
    producer.join().expect("producer thread");

    let acks = acks.lock().unwrap();
    let read = read_all(&c.bootstrap(), TOPIC, 3);
    let read_count = check_acked(&acks, &read);
    println!(
        "{} acknowledged, {} failed sends, {read_count} records read, no loss, no duplicate",
        acks.acked.len(),
        acks.failed
    );
    for (&p, target) in &targets {
        wait_identical(&c, &target.iter().copied().collect(), TOPIC, p);
    }
}
