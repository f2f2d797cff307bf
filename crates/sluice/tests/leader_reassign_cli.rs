//! `sluice elect-leaders` and `sluice reassign`, driving the real binary
//! with the options of `kafka-leader-election` and
//! `kafka-reassign-partitions`:
//!
//! - **Elections** against 3 Sluice nodes, and the same against 3 Kafka
//!   nodes (`SLUICE_TEST_FULL=1`), automatic rebalance off: with node 2
//!   killed, a preferred election (`--topic`/`--partition`) of a partition
//!   it prefers fails (exit 1, Kafka's PreferredLeaderNotAvailable); once
//!   it is back, an unclean election of a led partition is not needed,
//!   `--all-topic-partitions` moves every such partition back, a second run
//!   has nothing to do, and an election JSON file names partitions that
//!   need none.
//! - **Reassignment** against 3 Kafka nodes (`SLUICE_TEST_FULL=1`), and 3
//!   Sluice nodes once Sluice reassigns in a cluster (skipped loudly while
//!   a no-op reassignment is refused there): `generate` proposes the topic
//!   off node 1 (replication factor and partition count kept), `execute`
//!   runs the proposal (against Kafka with a throttle: Kafka's four
//!   throttle configs on the topic and the brokers), `verify` until
//!   complete removes the throttles, the replicas are the proposed ones,
//!   nothing is listed, a cancel has nothing to cancel, and the printed
//!   current assignment rolls everything back. Against Kafka also: a
//!   reassignment held in progress by a 1 B/s throttle is listed, a second
//!   execute is refused without `--additional`, and cancel reverts it and
//!   removes the throttles.
//! - **One Sluice node**: what a Kafka user gets there (a reassignment to
//!   the node itself completes, an unknown broker is refused before
//!   anything is sent, verify/list/cancel, generate, elections).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::nodes::Nodes;
use common::{env_on, sb, RawClient};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeConfigsRequest, TopicName,
};
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::{ClusterLayout, ReferenceKafkaCluster, SluiceCluster, SluiceProcess};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const LONG: Duration = Duration::from_secs(180);

fn sluice(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = sluice(args);
    assert!(o.status.success(), "sluice {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let o = sluice(args);
    assert_eq!(o.status.code(), Some(1), "sluice {args:?}: {}", text(&o));
    text(&o)
}

/// The rows of a result table: (topic, partition) → the other columns.
fn rows(out: &str) -> BTreeMap<(String, i32), String> {
    out.lines()
        .skip_while(|l| !l.starts_with("TOPIC"))
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let t = w.next()?.to_string();
            let p = w.next()?.parse().ok()?;
            Some(((t, p), w.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// The JSON line printed after `title`.
fn json_after(out: &str, title: &str) -> String {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(title)).skip(1);
    lines
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON after {title:?}: {out}"))
        .to_string()
}

/// (topic, partition) → replicas of a reassignment JSON line.
fn replicas_of(json: &str) -> BTreeMap<(String, i32), Vec<i32>> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["version"], 1, "{json}");
    let mut out = BTreeMap::new();
    for p in v["partitions"].as_array().unwrap() {
        let replicas: Vec<i32> = serde_json::from_value(p["replicas"].clone()).unwrap();
        let dirs = p["log_dirs"].as_array().unwrap();
        assert!(
            dirs.len() == replicas.len() && dirs.iter().all(|d| d == "any"),
            "{json}"
        );
        let key = (
            p["topic"].as_str().unwrap().to_string(),
            p["partition"].as_i64().unwrap() as i32,
        );
        out.insert(key, replicas);
    }
    out
}

const EXTRA: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "6000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "6000"),
    ("auto.leader.rebalance.enable", "false"),
];

fn wait(
    c: &dyn Nodes,
    topic: &str,
    what: &str,
    check: impl Fn(&ClusterMetadata) -> bool,
) -> ClusterMetadata {
    let bound = Instant::now() + LONG;
    let mut last = None;
    loop {
        if let Ok(m) = fetch_metadata(c.addr(1).parse().unwrap(), Some(&[topic])) {
            if m.topics.first().is_some_and(|t| !t.partitions.is_empty()) && check(&m) {
                return m;
            }
            last = Some(m);
        }
        assert!(
            Instant::now() < bound,
            "{}: {what}: never; last {last:?}",
            c.name()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn partitions(m: &ClusterMetadata) -> &[sluice_testkit::metadata::PartitionMetadata] {
    &m.topics[0].partitions
}

fn assignment(m: &ClusterMetadata) -> BTreeMap<(String, i32), Vec<i32>> {
    let t = &m.topics[0];
    t.partitions
        .iter()
        .map(|p| ((t.name.clone(), p.partition), p.replicas.clone()))
        .collect()
}

fn create(b: &str, topic: &str, partitions: &str, rf: &str) {
    ok(&[
        "topic",
        "create",
        "-b",
        b,
        topic,
        "--partitions",
        partitions,
        "--replication-factor",
        rf,
    ]);
}

fn elections(c: &mut dyn Nodes) {
    let b = c.addr(1);
    create(&b, "moved", "6", "3");
    let m = wait(c, "moved", "preferred leaders in sync", |m| {
        partitions(m)
            .iter()
            .all(|p| p.leader == p.replicas[0] && p.isr.len() == 3)
    });
    let preferring_2: Vec<i32> = partitions(&m)
        .iter()
        .filter(|p| p.replicas[0] == 2)
        .map(|p| p.partition)
        .collect();
    assert!(!preferring_2.is_empty());
    c.kill(2);
    wait(c, "moved", "node 2 leads nothing", |m| {
        partitions(m).iter().all(|p| p.leader >= 0 && p.leader != 2)
    });
    let first = preferring_2[0].to_string();
    let one = ["--topic", "moved", "--partition", first.as_str()];
    let out = fails(
        &[
            &["elect-leaders", "-b", &b, "--election-type", "preferred"],
            &one[..],
        ]
        .concat(),
    );
    assert!(
        out.contains("PreferredLeaderNotAvailable"),
        "{}: {out}",
        c.name()
    );
    c.start_again(2);
    wait(c, "moved", "node 2 back in every ISR", |m| {
        partitions(m).iter().all(|p| p.isr.len() == 3)
    });
    // Kafka's tool takes the type in either case.
    let unclean = ok(&[
        &["elect-leaders", "-b", &b, "--election-type", "UNCLEAN"],
        &one[..],
    ]
    .concat());
    let key = ("moved".to_string(), preferring_2[0]);
    assert_eq!(rows(&unclean).len(), 1, "{}: {unclean}", c.name());
    assert!(
        rows(&unclean)[&key].starts_with("not needed"),
        "{}: {unclean}",
        c.name()
    );
    let all = ok(&["elect-leaders", "-b", &b, "--all-topic-partitions"]);
    // Only this topic's: other scenarios on the same cluster may leave
    // leaders off their preferred replicas too.
    let mut elected = rows(&all);
    elected.retain(|k, _| k.0 == "moved");
    assert_eq!(
        elected.keys().map(|k| k.1).collect::<Vec<_>>(),
        preferring_2,
        "{}: {all}",
        c.name()
    );
    assert!(
        elected.values().all(|r| r == "elected"),
        "{}: {all}",
        c.name()
    );
    wait(
        c,
        "moved",
        "leadership back on the preferred replicas",
        |m| partitions(m).iter().all(|p| p.leader == p.replicas[0]),
    );
    let again = ok(&["elect-leaders", "-b", &b, "--all"]);
    assert_eq!(
        again.trim(),
        "no partition needed an election",
        "{}",
        c.name()
    );
    election_file(c);
}

/// Partitions named by Kafka's election JSON file: both need none.
fn election_file(c: &dyn Nodes) {
    let b = c.addr(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("election.json");
    std::fs::write(
        &file,
        r#"{"partitions":[{"topic":"moved","partition":0},{"topic":"moved","partition":5}]}"#,
    )
    .unwrap();
    let by_file = ok(&[
        "elect-leaders",
        "-b",
        &b,
        "--path-to-json-file",
        file.to_str().unwrap(),
    ]);
    let r = rows(&by_file);
    assert_eq!(
        r.keys().map(|k| k.1).collect::<Vec<_>>(),
        [0, 5],
        "{}: {by_file}",
        c.name()
    );
    assert!(r.values().all(|v| v.starts_with("not needed")), "{by_file}");
}

#[test]
fn elect_leaders_against_three_sluice_nodes() {
    let mut c = SluiceCluster::start_pinned(BIN, ClusterLayout::Combined(3), EXTRA)
        .expect("the cluster starts");
    elections(&mut c);
}

/// The dynamic configs set on a resource (DescribeConfigs v1).
fn dynamic_configs(addr: &str, resource_type: i8, name: &str) -> BTreeMap<String, String> {
    let mut raw = RawClient::connect(addr);
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(sb(name))
            .with_configuration_keys(None)]);
    let resp = raw.send(1, &req);
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0, "{resp:?}");
    r.configs
        .iter()
        .filter(|c| matches!(c.config_source, 1 | 2))
        .filter(|c| c.name.contains("replication.throttled"))
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), value)
        })
        .collect()
}

/// The throttle configs on `topic` and on brokers 1..=3.
fn throttles(c: &dyn Nodes, topic: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    out.insert(topic.to_string(), dynamic_configs(&c.addr(1), 2, topic));
    for id in 1..=3 {
        let on = dynamic_configs(&c.addr(id), 4, &id.to_string());
        out.insert(format!("broker {id}"), on);
    }
    out.retain(|_, v| !v.is_empty());
    out
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs verify until every partition of `plan` is complete; its output.
fn verify_until_complete(c: &dyn Nodes, plan: &str) -> String {
    let b = c.addr(1);
    let bound = Instant::now() + LONG;
    loop {
        let v = ok(&[
            "reassign",
            "verify",
            "-b",
            &b,
            "--reassignment-json-file",
            plan,
        ]);
        let status = rows(&v);
        if status.values().all(|s| s == "complete") {
            return v;
        }
        assert!(
            status
                .values()
                .all(|s| s == "complete" || s == "in progress"),
            "{}: {v}",
            c.name()
        );
        assert!(Instant::now() < bound, "{}: never completed: {v}", c.name());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether the cluster reassigns: a no-op reassignment (a partition to its
/// own replicas) must be accepted. A Sluice without reassignment in a
/// cluster refuses it (its one-node check knows no other broker) or does
/// not offer the API.
fn reassigns(c: &dyn Nodes, topic: &str, replicas: &[i32]) -> bool {
    let mut raw = RawClient::connect(&c.addr(1));
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(
                    replicas.iter().map(|&b| BrokerId(b)).collect(),
                ))])]);
    let resp = raw.send(0, &req);
    let code = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(resp.error_code, |p| p.error_code);
    // UNSUPPORTED_VERSION (35), INVALID_REPLICA_ASSIGNMENT (39).
    if matches!(code, 35 | 39) {
        assert_ne!(
            c.name(),
            "kafka",
            "Kafka refused a no-op reassignment: {resp:?}"
        );
        eprintln!(
            "\n!!! SKIPPED `sluice reassign` against 3 Sluice nodes: this Sluice does not \
             reassign partitions in a cluster (a no-op reassignment answered {resp:?}) !!!\n"
        );
        return false;
    }
    assert_eq!(code, 0, "{}: {resp:?}", c.name());
    true
}

/// `generate` for the whole topic over brokers 2 and 3: the current
/// assignment is `before`, the proposal keeps the partition count and the
/// factor on exactly those brokers. The proposal's JSON and replicas.
fn generate_off_node_1(
    c: &dyn Nodes,
    dir: &Path,
    before: &BTreeMap<(String, i32), Vec<i32>>,
) -> (String, BTreeMap<(String, i32), Vec<i32>>) {
    let b = c.addr(1);
    let topics = write(
        dir,
        "topics.json",
        r#"{"topics":[{"topic":"shuffled"}],"version":1}"#,
    );
    let generated = ok(&[
        "reassign",
        "generate",
        "-b",
        &b,
        "--topics-to-move-json-file",
        &topics,
        "--broker-list",
        "2,3",
    ]);
    assert_eq!(
        replicas_of(&json_after(
            &generated,
            "Current partition replica assignment"
        )),
        *before,
        "{generated}"
    );
    let proposal_json = json_after(&generated, "Proposed partition reassignment configuration");
    let proposal = replicas_of(&proposal_json);
    assert_eq!(proposal.len(), 3, "{generated}");
    for r in proposal.values() {
        assert_eq!(
            BTreeSet::from_iter(r.iter().copied()),
            BTreeSet::from([2, 3]),
            "{generated}"
        );
    }
    (proposal_json, proposal)
}

fn reassign(c: &dyn Nodes) {
    let b = c.addr(1);
    let kafka = c.name() == "kafka";
    create(&b, "shuffled", "3", "2");
    let m = wait(c, "shuffled", "the topic in sync", |m| {
        partitions(m).iter().all(|p| p.isr.len() == 2)
    });
    let before = assignment(&m);
    if !reassigns(c, "shuffled", &before[&("shuffled".to_string(), 0)]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (proposal_json, proposal) = generate_off_node_1(c, dir.path(), &before);
    let plan = write(dir.path(), "plan.json", &proposal_json);
    let mut args = vec![
        "reassign",
        "execute",
        "-b",
        &b,
        "--reassignment-json-file",
        &plan,
    ];
    if kafka {
        args.extend(["--throttle", "10000000"]);
    }
    let out = ok(&args);
    let rollback = json_after(&out, "Current partition replica assignment");
    assert_eq!(replicas_of(&rollback), before, "{out}");
    assert!(
        rows(&out).values().all(|r| r == "reassignment started"),
        "{}: {out}",
        c.name()
    );
    if kafka {
        assert!(
            out.contains("throttle limit was set to 10000000 B/s"),
            "{out}"
        );
        check_throttles_set(c, &before, &proposal);
    }
    let verified = verify_until_complete(c, &plan);
    if kafka {
        assert!(verified.contains("Throttles removed from"), "{verified}");
        assert_eq!(throttles(c, "shuffled"), BTreeMap::new());
    }
    let m = wait(c, "shuffled", "the proposal in the metadata", |m| {
        assignment(m) == proposal
    });
    assert!(partitions(&m).iter().all(|p| !p.replicas.contains(&1)));
    assert_eq!(
        ok(&["reassign", "list", "-b", &b]).trim(),
        "no reassignment in progress"
    );
    let cancel = ok(&[
        "reassign",
        "cancel",
        "-b",
        &b,
        "--reassignment-json-file",
        &plan,
    ]);
    assert!(cancel.contains("None of the named partitions"), "{cancel}");
    // Roll back with the printed assignment.
    let back = write(dir.path(), "rollback.json", &rollback);
    ok(&["reassign", "execute", "-b", &b, "--plan", &back]);
    verify_until_complete(c, &back);
    wait(c, "shuffled", "the old assignment back", |m| {
        assignment(m) == before
    });
    // A verify of the proposal now says where the replicas are instead.
    let elsewhere = fails(&["reassign", "verify", "-b", &b, "--plan", &plan]);
    assert!(elsewhere.contains("rather than"), "{elsewhere}");
}

/// Kafka's throttles for moving `before` to `after`, as
/// kafka-reassign-partitions sets them.
fn check_throttles_set(
    c: &dyn Nodes,
    before: &BTreeMap<(String, i32), Vec<i32>>,
    after: &BTreeMap<(String, i32), Vec<i32>>,
) {
    // partition:broker, sorted by partition then broker.
    let mut leaders = BTreeSet::new();
    let mut followers = BTreeSet::new();
    for (k, old) in before {
        leaders.extend(old.iter().map(|&r| (k.1, r)));
        let added = after[k].iter().filter(|r| !old.contains(r));
        followers.extend(added.map(|&r| (k.1, r)));
    }
    let list = |s: BTreeSet<(i32, i32)>| {
        let items: Vec<String> = s.iter().map(|(p, r)| format!("{p}:{r}")).collect();
        items.join(",")
    };
    let (leaders, followers) = (list(leaders), list(followers));
    let got = throttles(c, "shuffled");
    let topic = BTreeMap::from([
        ("leader.replication.throttled.replicas".to_string(), leaders),
        (
            "follower.replication.throttled.replicas".to_string(),
            followers,
        ),
    ]);
    assert_eq!(got.get("shuffled"), Some(&topic), "{got:?}");
    let rate = BTreeMap::from([
        (
            "follower.replication.throttled.rate".to_string(),
            "10000000".to_string(),
        ),
        (
            "leader.replication.throttled.rate".to_string(),
            "10000000".to_string(),
        ),
    ]);
    for id in 1..=3 {
        assert_eq!(got.get(&format!("broker {id}")), Some(&rate), "{got:?}");
    }
}

/// Against Kafka: a reassignment held in progress by a 1 B/s throttle.
fn held_by_a_throttle(c: &dyn Nodes) {
    let b = c.addr(1);
    create(&b, "held", "1", "1");
    let m = wait(c, "held", "the topic led", |m| partitions(m)[0].leader > 0);
    let only = partitions(&m)[0].replicas[0];
    let dir = tempfile::tempdir().unwrap();
    // More than one fetch's worth, so the throttled copy cannot finish.
    let line = "x".repeat(999);
    let records = vec![line.as_str(); 3000].join("\n");
    let file = write(dir.path(), "records.txt", &records);
    ok(&[
        "produce",
        "-b",
        &b,
        "held",
        "-f",
        &file,
        "-p",
        "0",
        "--no-progress",
    ]);
    let other = (1..=3).find(|&x| x != only).unwrap();
    let target = format!("{only},{other}");
    let held = ["--topic", "held", "--partition", "0"];
    let start = [
        &["reassign", "execute", "-b", &b],
        &held[..],
        &["--replicas", &target, "--throttle", "1"],
    ]
    .concat();
    ok(&start);
    let listed = ok(&["reassign", "list", "-b", &b, "--topic", "held"]);
    assert_eq!(
        rows(&listed)[&("held".to_string(), 0)],
        format!("{only},{other} {other}"),
        "{listed}"
    );
    let refused = fails(&start);
    assert!(refused.contains("--additional"), "{refused}");
    let verify = ok(&[&["reassign", "verify", "-b", &b], &held[..]].concat());
    assert_eq!(rows(&verify)[&("held".to_string(), 0)], "in progress");
    assert!(!throttles(c, "held").is_empty(), "in progress: kept");
    let cancelled = ok(&[&["reassign", "cancel", "-b", &b], &held[..]].concat());
    assert_eq!(
        rows(&cancelled)[&("held".to_string(), 0)],
        "cancelled",
        "{cancelled}"
    );
    assert!(cancelled.contains("Throttles removed from"), "{cancelled}");
    assert_eq!(throttles(c, "held"), BTreeMap::new());
    wait(c, "held", "the old replica set back", |m| {
        partitions(m)[0].replicas == [only]
    });
}

#[test]
fn reassign_against_three_sluice_nodes() {
    let c = SluiceCluster::start_pinned(BIN, ClusterLayout::Combined(3), EXTRA)
        .expect("the cluster starts");
    reassign(&c);
}

#[test]
fn elect_leaders_and_reassign_against_three_kafka_nodes() {
    if !env_on("SLUICE_TEST_FULL") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to start a 3-node Kafka cluster");
        return;
    }
    let Some(mut c) = ReferenceKafkaCluster::start_with(EXTRA).expect("start Kafka") else {
        assert!(
            !env_on("SLUICE_REQUIRE_CLIENTS"),
            "the reference Kafka is required"
        );
        return;
    };
    reassign(&c);
    held_by_a_throttle(&c);
    elections(&mut c);
}

#[test]
fn reassign_against_one_sluice_node() {
    let s = SluiceProcess::start(BIN, &[]).expect("sluice starts");
    let b = s.bootstrap().to_string();
    ok(&["topic", "create", "-b", &b, "solo", "--partitions", "2"]);
    let one = ["--topic", "solo", "--partition", "1"];
    let started = ok(&[
        &["reassign", "execute", "-b", &b],
        &one[..],
        &["--replicas", "1"],
    ]
    .concat());
    assert!(
        started.contains(r#"{"version":1,"partitions":[{"topic":"solo","partition":1,"replicas":[1],"log_dirs":["any"]}]}"#),
        "the current assignment, to roll back: {started}"
    );
    assert_eq!(
        rows(&started)[&("solo".to_string(), 1)],
        "reassignment started"
    );
    // An unknown broker is refused before anything is sent, as Kafka's tool does.
    let refused = fails(&[
        "reassign",
        "execute",
        "-b",
        &b,
        "--topic",
        "solo",
        "--partition",
        "0",
        "--replicas",
        "2",
    ]);
    assert!(refused.contains("unknown broker id 2"), "{refused}");
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "plan.json",
        r#"{"version":1,"partitions":[{"topic":"solo","partition":0,"replicas":[1]},{"topic":"solo","partition":1,"replicas":[1]}]}"#,
    );
    ok(&[
        "reassign",
        "execute",
        "-b",
        &b,
        "--reassignment-json-file",
        &plan,
    ]);
    let verified = ok(&[
        "reassign",
        "verify",
        "-b",
        &b,
        "--reassignment-json-file",
        &plan,
    ]);
    let v = rows(&verified);
    assert_eq!(v.len(), 2, "{verified}");
    assert!(v.values().all(|s| s == "complete"), "{verified}");
    assert_eq!(
        ok(&["reassign", "list", "-b", &b]).trim(),
        "no reassignment in progress"
    );
    let cancel = ok(&["reassign", "cancel", "-b", &b, "--plan", &plan]);
    assert!(cancel.contains("None of the named partitions"), "{cancel}");
    let missing = fails(&[
        "reassign",
        "execute",
        "-b",
        &b,
        "--topic",
        "nope",
        "--partition",
        "0",
        "--replicas",
        "1",
    ]);
    assert!(missing.contains("does not exist"), "{missing}");
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"version":1,"partitions":[{"topic":"solo","partition":0,"replicas":[1,1]}]}"#,
    );
    let dup = fails(&["reassign", "execute", "-b", &b, "--plan", &bad]);
    assert!(dup.contains("duplicate replicas"), "{dup}");
}

#[test]
fn generate_and_elect_on_one_sluice_node() {
    let s = SluiceProcess::start(BIN, &[]).expect("sluice starts");
    let b = s.bootstrap().to_string();
    ok(&["topic", "create", "-b", &b, "solo", "--partitions", "2"]);
    let generated = ok(&[
        "reassign",
        "generate",
        "-b",
        &b,
        "--topic",
        "solo",
        "--broker-list",
        "1",
    ]);
    let proposed = replicas_of(&json_after(
        &generated,
        "Proposed partition reassignment configuration",
    ));
    assert_eq!(
        proposed.values().collect::<Vec<_>>(),
        [&vec![1], &vec![1]],
        "{generated}"
    );
    // Elections on one node: nothing is ever needed.
    assert_eq!(
        ok(&["elect-leaders", "-b", &b, "--all-topic-partitions"]).trim(),
        "no partition needed an election"
    );
}
