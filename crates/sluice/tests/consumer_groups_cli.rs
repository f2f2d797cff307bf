//! Kafka's `kafka-consumer-groups` tool (ConsumerGroupCommand from the pinned
//! Apache Kafka 4.1.2 jars) against Sluice and against the reference Kafka:
//! the same scenario on both (a group with committed offsets on a
//! 3-partition topic: `--list`, `--describe`, `--reset-offsets --to-earliest
//! --execute`, `--describe`, `--delete`, `--list`) must print the same
//! output, compared line by line on whitespace-separated columns (headers,
//! one row per partition, the same offsets and lag). Before that,
//! `--describe --members` of a group with one active librdkafka member shows
//! the same columns, the member's host `/127.0.0.1`, client id and partition
//! count (its random member id aside).
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::root;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_testkit::SluiceProcess;

const TOPIC: &str = "cg-topic";
const GROUP: &str = "cg-group";
const ACTIVE_GROUP: &str = "cg-active";

fn java_ready() -> bool {
    let jars = root().join(".cache/kafka/lib/.complete");
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if jars.exists() && java {
        return true;
    }
    let missing = format!("java on PATH and {}", jars.display());
    if std::env::var("SLUICE_REQUIRE_CLIENTS").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("kafka-consumer-groups: {missing} required (SLUICE_REQUIRE_CLIENTS is set)");
    }
    eprintln!("\n\n!!! SKIPPED kafka-consumer-groups comparison: needs {missing}; run scripts/setup !!!\n");
    false
}

/// Runs ConsumerGroupCommand; returns its stdout as lines of columns
/// (blank lines dropped).
fn cgc(bootstrap: &str, args: &[&str]) -> Vec<Vec<String>> {
    let lib = root().join(".cache/kafka/lib/*");
    let out = Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            root().join("clients/java/log4j.properties").display()
        ))
        .arg("-cp")
        .arg(lib)
        .arg("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-consumer-groups {args:?} failed against {bootstrap}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|cols| !cols.is_empty())
        .collect()
}

fn setup(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics")
    {
        r.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .create()
        .expect("producer");
    rt.block_on(async {
        for p in 0..3 {
            for i in 0..(4 + p) {
                producer
                    .send(
                        FutureRecord::<(), _>::to(TOPIC)
                            .partition(p)
                            .payload(&format!("{p}-{i}")),
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("delivered");
            }
        }
    });
    // Committed offsets 1, 3, 5 of 4, 5, 6 records: lag 3, 2, 1.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(i64::from(1 + 2 * p)))
            .unwrap();
    }
    // The first commit may meet a coordinator still being created or loaded
    // (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS), which clients retry.
    let mut attempt = 0;
    while let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
        attempt += 1;
        assert!(attempt < 30, "commit keeps failing: {e}");
        thread::sleep(Duration::from_millis(500));
    }
}

/// Kills the reference Kafka of `dir` when dropped (also on a failed check).
struct StopReference(PathBuf, PathBuf);

impl Drop for StopReference {
    fn drop(&mut self) {
        let _ = Command::new(&self.0).arg("kill").arg(&self.1).status();
    }
}

/// `--describe --members` of a group with one active librdkafka member;
/// its CONSUMER-ID column (a random member id) is replaced by `<id>`.
fn describe_active_member(bootstrap: &str) -> Vec<Vec<String>> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let member = {
        let stop = stop.clone();
        let bootstrap = bootstrap.to_string();
        thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", ACTIVE_GROUP)
                .set("client.id", "cg-member")
                .create()
                .expect("consumer");
            consumer.subscribe(&[TOPIC]).expect("subscribe");
            let mut told = false;
            while !stop.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
                if !told && consumer.assignment().is_ok_and(|a| a.count() == 3) {
                    told = true;
                    let _ = tx.send(());
                }
            }
        })
    };
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the member joined and got all 3 partitions");
    let mut lines = cgc(
        bootstrap,
        &["--describe", "--group", ACTIVE_GROUP, "--members"],
    );
    stop.store(true, Ordering::Relaxed);
    member.join().unwrap();
    for l in &mut lines {
        if l.first().is_some_and(|c| c == ACTIVE_GROUP) && l.len() > 1 {
            l[1] = "<id>".into();
        }
    }
    lines
}

/// The whole scenario; returns each command's output.
fn scenario(bootstrap: &str) -> Vec<(String, Vec<Vec<String>>)> {
    setup(bootstrap);
    let active = describe_active_member(bootstrap);
    let steps: Vec<(&str, Vec<&str>)> = vec![
        ("list", vec!["--list"]),
        ("describe", vec!["--describe", "--group", GROUP]),
        (
            "reset",
            vec![
                "--reset-offsets",
                "--to-earliest",
                "--execute",
                "--group",
                GROUP,
                "--topic",
                TOPIC,
            ],
        ),
        ("describe after reset", vec!["--describe", "--group", GROUP]),
        ("delete", vec!["--delete", "--group", GROUP]),
        ("list after delete", vec!["--list"]),
    ];
    let mut out = vec![("describe --members (active)".to_string(), active)];
    out.extend(steps.into_iter().map(|(name, args)| {
        let mut lines = cgc(bootstrap, &args);
        // Rows may come in any order; a header stays first.
        if args == ["--list"] {
            lines.sort();
        } else if lines.len() > 1 {
            lines[1..].sort();
        }
        (name.to_string(), lines)
    }));
    out
}

#[test]
fn kafka_consumer_groups_output_matches_apache_kafka() {
    if !java_ready() {
        return;
    }
    let sluice = SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[]).expect("sluice starts");
    let ours = scenario(sluice.bootstrap());

    let dir = tempfile::tempdir().unwrap();
    let script = root().join("clients/reference-kafka");
    let out = Command::new(&script)
        .arg("start")
        .arg(dir.path())
        .output()
        .expect("run clients/reference-kafka");
    assert!(
        out.status.success(),
        "reference Kafka did not start:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _stop = StopReference(script.clone(), dir.path().to_path_buf());
    let reference_bootstrap = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let theirs = scenario(&reference_bootstrap);

    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        eprintln!("--- {name} (sluice) ---");
        for l in a {
            eprintln!("{}", l.join(" "));
        }
        assert_eq!(
            a, b,
            "kafka-consumer-groups {name}: Sluice's output differs from Apache Kafka's"
        );
    }
    // The scenario shows something: the describe has a header and 3 rows
    // with the committed offsets and lag; the reset moved them to 0.
    let members = &ours[0].1;
    let row = members
        .iter()
        .find(|l| l.first().is_some_and(|c| c == ACTIVE_GROUP))
        .expect("a member row");
    assert!(
        row.contains(&"/127.0.0.1".to_string()),
        "member host: {row:?}"
    );
    let describe = &ours[2].1;
    let header = describe
        .iter()
        .find(|l| l.first().is_some_and(|c| c == "GROUP"))
        .expect("describe header");
    assert!(header.contains(&"LAG".to_string()), "{header:?}");
    let rows: Vec<_> = describe
        .iter()
        .filter(|l| l.first().is_some_and(|c| c == GROUP))
        .collect();
    assert_eq!(rows.len(), 3, "{describe:?}");
    assert!(ours[1].1.iter().any(|l| l == &vec![GROUP.to_string()]));
    assert!(!ours[6].1.iter().any(|l| l == &vec![GROUP.to_string()]));
}
