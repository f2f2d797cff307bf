//! Kafka 4.1.2's replication tools against 3 real combined Sluice nodes,
//! and (with `SLUICE_TEST_FULL=1`, it starts three JVMs) the same scenario
//! against a 3-node Apache Kafka, so both must behave alike:
//!
//! - `kafka-topics --describe --under-replicated-partitions`,
//!   `--under-min-isr-partitions` and `--unavailable-partitions` list
//!   nothing on a healthy cluster; with node 2 killed they list exactly the
//!   partitions whose ISR lost it, those whose ISR fell below their
//!   `min.insync.replicas`, and the one partition that only node 2 hosted;
//!   once node 2 is back and in sync, nothing again.
//! - `kafka-leader-election --election-type preferred` (automatic
//!   rebalance off, so leadership stays where the kill moved it): for a
//!   named partition whose preferred replica is down it fails with
//!   PreferredLeaderNotAvailable (exit 1), as does every such partition
//!   with `--all-topic-partitions`; an unclean election of a partition
//!   that has a leader is not needed; once node 2 is back, per
//!   partition and with `--all-topic-partitions` it moves every leadership
//!   back to the preferred replica; run again, a named partition answers
//!   "Valid replica already elected" and all partitions print nothing.
//!
//! - `kafka-log-dirs --describe` (after records were produced): each
//!   broker lists the replicas it holds, all three replicas of a partition
//!   the same size, OffsetLag 0 and no future replica.
//!
//! A missing Java skips loudly unless `SLUICE_REQUIRE_CLIENTS` is set.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::nodes::Nodes;
use common::{env_on, root};
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::{ClusterLayout, ReferenceKafkaCluster, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const LONG: Duration = Duration::from_secs(180);
const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const ELECTION: &str = "org.apache.kafka.tools.LeaderElectionCommand";

/// The same keys on both systems: fast failure detection, no automatic
/// rebalance (the tool's preferred election is what moves leaders back),
/// and the reference cluster's `min.insync.replicas=2`.
const EXTRA: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "6000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "6000"),
    ("auto.leader.rebalance.enable", "false"),
    ("min.insync.replicas", "2"),
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn java_ready() -> bool {
    let jars = root().join(".cache/kafka/lib");
    let ok = jars.is_dir()
        && Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !env_on("SLUICE_REQUIRE_CLIENTS"),
            "Kafka's tools are required (java and .cache/kafka/lib)"
        );
        eprintln!("skipped: no java or no .cache/kafka/lib");
    }
    ok
}

fn tool(class: &str, args: &[&str]) -> Run {
    let out = Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            root().join("clients/java/log4j.properties").display()
        ))
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg(class)
        .args(args)
        .output()
        .expect("run java");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(class: &str, args: &[&str]) -> String {
    let r = tool(class, args);
    assert_eq!(r.code, 0, "{class} {args:?}:\n{}\n{}", r.stdout, r.stderr);
    r.stdout
}

/// The `topic-partition` of every partition row a `--describe` printed.
fn rows(described: &str) -> BTreeSet<String> {
    described
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix("Topic: ")?;
            let (topic, rest) = rest.split_once('\t')?;
            let p = rest.strip_prefix("Partition: ")?.split('\t').next()?;
            Some(format!("{topic}-{}", p.trim()))
        })
        .collect()
}

fn describe(c: &dyn Nodes, via: i32, flag: &str) -> BTreeSet<String> {
    let out = ok(
        TOPICS,
        &[
            "--bootstrap-server",
            &c.addr(via),
            "--describe",
            "--exclude-internal",
            flag,
        ],
    );
    rows(&out)
}

fn metadata(c: &dyn Nodes, via: i32) -> Option<ClusterMetadata> {
    fetch_metadata(
        c.addr(via).parse().unwrap(),
        Some(&["spread", "strict", "single"]),
    )
    .ok()
}

fn wait(c: &dyn Nodes, via: i32, what: &str, check: impl Fn(&ClusterMetadata) -> bool) {
    let bound = Instant::now() + LONG;
    let mut last = None;
    loop {
        if let Some(m) = metadata(c, via) {
            if check(&m) {
                return;
            }
            last = Some(m);
        }
        assert!(
            Instant::now() < bound,
            "{}: {what}: never; last: {last:?}",
            c.name()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn partitions(
    m: &ClusterMetadata,
) -> impl Iterator<Item = (&str, &sluice_testkit::metadata::PartitionMetadata)> {
    m.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
}

/// Every partition of the three topics led by its preferred replica with
/// its whole replica set in sync.
fn healthy(m: &ClusterMetadata) -> bool {
    let n: usize = m.topics.iter().map(|t| t.partitions.len()).sum();
    n == 10
        && partitions(m)
            .all(|(_, p)| p.replicas.first() == Some(&p.leader) && p.isr.len() == p.replicas.len())
}

fn create(c: &dyn Nodes) {
    let b = c.addr(1);
    for args in [
        &[
            "--topic",
            "spread",
            "--partitions",
            "6",
            "--replication-factor",
            "3",
        ][..],
        &[
            "--topic",
            "strict",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=3",
        ][..],
        &["--topic", "single", "--replica-assignment", "2"][..],
    ] {
        let mut all = vec!["--bootstrap-server", &b, "--create"];
        all.extend_from_slice(args);
        ok(TOPICS, &all);
    }
}

fn names(topic: &str, n: i32) -> BTreeSet<String> {
    (0..n).map(|p| format!("{topic}-{p}")).collect()
}

/// What the three filters list on a healthy cluster: only `single-0`
/// under min ISR (its one replica is fewer than the cluster's
/// `min.insync.replicas=2`, which the tool compares uncapped).
fn healthy_lists(c: &dyn Nodes, via: i32, when: &str) {
    let none = BTreeSet::new();
    let name = c.name();
    let under = describe(c, via, "--under-replicated-partitions");
    assert_eq!(under, none, "{name}: {when}, under-replicated");
    let below = describe(c, via, "--under-min-isr-partitions");
    assert_eq!(below, names("single", 1), "{name}: {when}, under min ISR");
    let unavailable = describe(c, via, "--unavailable-partitions");
    assert_eq!(unavailable, none, "{name}: {when}, unavailable");
}

/// `kafka-leader-election` through node 1 with `args` after the
/// bootstrap server.
fn elect(c: &dyn Nodes, args: &[&str]) -> Run {
    let b1 = c.addr(1);
    let mut all = vec!["--bootstrap-server", &b1, "--election-type"];
    all.extend_from_slice(args);
    tool(ELECTION, &all)
}

fn scenario(c: &mut dyn Nodes) {
    create(c);
    wait(c, 1, "every partition healthy", healthy);
    healthy_lists(c, 1, "healthy");
    let m = metadata(c, 1).unwrap();
    let preferring_2: BTreeSet<String> = partitions(&m)
        .filter(|(t, p)| *t != "single" && p.replicas[0] == 2)
        .map(|(t, p)| format!("{t}-{}", p.partition))
        .collect();
    assert!(!preferring_2.is_empty(), "{m:?}");

    c.kill(2);
    wait(c, 1, "node 2 out of every ISR and leaderless single", |m| {
        partitions(m).all(|(t, p)| {
            if t == "single" {
                p.leader < 0
            } else {
                p.leader >= 0 && p.leader != 2 && !p.isr.contains(&2)
            }
        })
    });
    let mut lost: BTreeSet<String> = names("spread", 6);
    lost.extend(names("strict", 3));
    let under = describe(c, 1, "--under-replicated-partitions");
    // The replicated partitions all lost node 2; `single` too where its
    // ISR emptied (KIP-966 ELR keeps the last member out of the ISR).
    let mut with_single = lost.clone();
    with_single.insert("single-0".into());
    assert!(
        under == lost || under == with_single,
        "{}: under-replicated {under:?}",
        c.name()
    );
    let mut below_min = names("strict", 3);
    below_min.insert("single-0".into());
    assert_eq!(
        describe(c, 1, "--under-min-isr-partitions"),
        below_min,
        "{}: under min ISR (ISR 2 < 3, and no leader)",
        c.name()
    );
    assert_eq!(
        describe(c, 1, "--unavailable-partitions"),
        BTreeSet::from(["single-0".to_string()]),
        "{}: unavailable",
        c.name()
    );

    // Preferred election of a partition whose preferred replica is down,
    // by name and for all partitions: each such partition fails (and
    // `single-0`, which has no leader at all), exit 1.
    let first = preferring_2.iter().next().unwrap().clone();
    let (topic, part) = first.rsplit_once('-').unwrap();
    let named = ["preferred", "--topic", topic, "--partition", part];
    let r = elect(c, &named);
    assert_eq!(r.code, 1, "{}: {}\n{}", c.name(), r.stdout, r.stderr);
    let failed = |out: &str| -> BTreeSet<String> {
        out.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("Error completing leader election (PREFERRED) for partition: ")?;
                let (tp, why) = rest.split_once(": ")?;
                assert_eq!(
                    why,
                    "org.apache.kafka.common.errors.PreferredLeaderNotAvailableException: The preferred leader was not available.",
                    "{l}"
                );
                Some(tp.to_string())
            })
            .collect()
    };
    assert_eq!(
        failed(&r.stdout),
        BTreeSet::from([first.clone()]),
        "{}: {}",
        c.name(),
        r.stdout
    );
    let r = elect(c, &["preferred", "--all-topic-partitions"]);
    assert_eq!(r.code, 1, "{}: {}\n{}", c.name(), r.stdout, r.stderr);
    let mut down = preferring_2.clone();
    down.insert("single-0".into());
    assert_eq!(failed(&r.stdout), down, "{}: {}", c.name(), r.stdout);
    assert!(
        !r.stdout.contains("Successfully"),
        "{}: {}",
        c.name(),
        r.stdout
    );
    // An unclean election of a partition that has a leader is not needed.
    let r = elect(c, &["unclean", "--topic", topic, "--partition", part]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (
            0,
            format!("Valid replica already elected for partitions {first}").as_str()
        ),
        "{}: {}",
        c.name(),
        r.stderr
    );

    c.start_again(2);
    wait(c, 1, "node 2 back in every ISR", |m| {
        partitions(m).all(|(_, p)| p.leader >= 0 && p.isr.len() == p.replicas.len())
    });
    healthy_lists(c, 3, "node 2 back");
    // Automatic rebalance is off: node 2 leads nothing it preferred.
    let m = metadata(c, 3).unwrap();
    assert!(
        partitions(&m).all(|(t, p)| t == "single" || p.leader != 2),
        "{}: {m:?}",
        c.name()
    );

    // One partition by name, then everything.
    let ok_elect = |args: &[&str]| {
        let r = elect(c, args);
        assert_eq!(
            r.code,
            0,
            "{}: {args:?}: {}\n{}",
            c.name(),
            r.stdout,
            r.stderr
        );
        r.stdout
    };
    let elected = ok_elect(&named);
    assert_eq!(
        elected.trim(),
        format!("Successfully completed leader election (PREFERRED) for partitions {first}"),
        "{}",
        c.name()
    );
    let all = ok_elect(&["preferred", "--all-topic-partitions"]);
    let mut rest = preferring_2.clone();
    rest.remove(&first);
    let line = all
        .lines()
        .find_map(|l| {
            l.strip_prefix("Successfully completed leader election (PREFERRED) for partitions ")
        })
        .unwrap_or_else(|| panic!("{}: {all}", c.name()));
    let moved: BTreeSet<String> = line.split(", ").map(str::to_string).collect();
    assert_eq!(moved, rest, "{}: {all}", c.name());
    wait(
        c,
        1,
        "every partition led by its preferred replica",
        healthy,
    );
    // Nothing left to do.
    let again = ok_elect(&named);
    assert_eq!(
        again.trim(),
        format!("Valid replica already elected for partitions {first}"),
        "{}",
        c.name()
    );
    for kind in ["preferred", "unclean"] {
        let all = ok_elect(&[kind, "--all-topic-partitions"]);
        assert_eq!(all.trim(), "", "{}: {kind}", c.name());
    }
    log_dirs(c);
}

/// One replica in `kafka-log-dirs --describe` output.
#[derive(Debug, PartialEq, Eq)]
struct Replica {
    broker: i32,
    partition: String,
    size: i64,
    offset_lag: i64,
    is_future: bool,
}

/// The replicas of the tool's JSON line (no JSON crate: the format is
/// Kafka's fixed `{"brokers":[{"broker":N,"logDirs":[{"partitions":[{..}]..`).
fn parse_log_dirs(out: &str) -> Vec<Replica> {
    let json = out
        .lines()
        .find(|l| l.starts_with("{\"brokers\""))
        .unwrap_or_else(|| panic!("no JSON in:\n{out}"));
    let num = |s: &str, key: &str| -> i64 {
        let at = s.find(key).unwrap_or_else(|| panic!("{key} in {s}")) + key.len();
        let digits: String = s[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        digits.parse().unwrap()
    };
    let mut out = Vec::new();
    for b in json.split("{\"broker\":").skip(1) {
        let broker = num(&format!("\"broker\":{b}"), "\"broker\":") as i32;
        for p in b.split("{\"partition\":\"").skip(1) {
            let partition = p.split('"').next().unwrap().to_string();
            out.push(Replica {
                broker,
                partition,
                size: num(p, "\"size\":"),
                offset_lag: num(p, "\"offsetLag\":"),
                is_future: p.contains("\"isFuture\":true"),
            });
        }
    }
    out
}

fn produce(c: &dyn Nodes, topic: &str, partitions: i32, per_partition: usize) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", c.addr(1))
        .set("acks", "all")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    for part in 0..partitions {
        for i in 0..per_partition {
            let v = format!("value {i} of {part}");
            p.send(BaseRecord::to(topic).partition(part).key("k").payload(&v))
                .map_err(|(e, _)| e)
                .expect("queued");
        }
    }
    p.flush(LONG).expect("every record acknowledged");
}

/// `kafka-log-dirs --describe`: every broker lists each replica it holds
/// once, in its one log dir; the three replicas of a `spread` partition
/// have the same size (byte-identical logs) and OffsetLag 0 (Kafka's
/// max(high watermark - log end, 0) of the replica); `single-0` only on
/// node 2; nothing is a future replica.
fn log_dirs(c: &dyn Nodes) {
    produce(c, "spread", 6, 50);
    let bound = Instant::now() + LONG;
    loop {
        let out = ok(
            "org.apache.kafka.tools.LogDirsCommand",
            &[
                "--bootstrap-server",
                &c.addr(2),
                "--describe",
                "--broker-list",
                "1,2,3",
                "--topic-list",
                "spread,single",
            ],
        );
        let replicas = parse_log_dirs(&out);
        let mut by_partition: std::collections::BTreeMap<&str, Vec<&Replica>> = Default::default();
        for r in &replicas {
            by_partition.entry(&r.partition).or_default().push(r);
        }
        let single = by_partition.get("single-0").cloned().unwrap_or_default();
        assert_eq!(
            single.iter().map(|r| r.broker).collect::<Vec<_>>(),
            vec![2],
            "{}: {out}",
            c.name()
        );
        assert!(
            replicas.iter().all(|r| !r.is_future && r.offset_lag == 0),
            "{}: {out}",
            c.name()
        );
        let spread: Vec<_> = by_partition
            .iter()
            .filter(|(p, _)| p.starts_with("spread-"))
            .collect();
        assert_eq!(spread.len(), 6, "{}: {out}", c.name());
        for (p, rs) in &spread {
            let mut brokers: Vec<i32> = rs.iter().map(|r| r.broker).collect();
            brokers.sort();
            assert_eq!(brokers, vec![1, 2, 3], "{}: {p}: {out}", c.name());
        }
        let converged = spread
            .iter()
            .all(|(_, rs)| rs[0].size > 0 && rs.iter().all(|r| r.size == rs[0].size));
        if converged {
            return;
        }
        assert!(
            Instant::now() < bound,
            "{}: replica sizes never converged: {out}",
            c.name()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn kafka_replication_tools_against_three_sluice_nodes() {
    if !java_ready() {
        return;
    }
    let mut c = SluiceCluster::start_pinned(BIN, ClusterLayout::Combined(3), EXTRA)
        .expect("the cluster starts");
    scenario(&mut c);
}

#[test]
fn kafka_replication_tools_against_three_kafka_nodes() {
    if !env_on("SLUICE_TEST_FULL") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to start a 3-node Kafka cluster");
        return;
    }
    if !java_ready() {
        return;
    }
    let Some(mut c) = ReferenceKafkaCluster::start_with(EXTRA).expect("start Kafka") else {
        assert!(
            !env_on("SLUICE_REQUIRE_CLIENTS"),
            "the reference Kafka is required"
        );
        return;
    };
    scenario(&mut c);
}
