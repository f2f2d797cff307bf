//! Kafka's `kafka-consumer-groups` tool (ConsumerGroupCommand from the pinned
//! Apache Kafka 4.1.2 jars) against Sluice and against the reference Kafka:
//! the same scenario on both (a group with committed offsets on a
//! 3-partition topic: `--list`, `--describe`, `--reset-offsets --to-earliest
//! --execute`, `--describe`, `--delete`, `--list`) must print the same
//! output, compared line by line on whitespace-separated columns (headers,
//! one row per partition, the same offsets and lag).
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_testkit::SluiceProcess;

const TOPIC: &str = "cg-topic";
const GROUP: &str = "cg-group";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

/// The whole scenario; returns each command's output.
fn scenario(bootstrap: &str) -> Vec<(String, Vec<Vec<String>>)> {
    setup(bootstrap);
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
    steps
        .into_iter()
        .map(|(name, args)| {
            let mut lines = cgc(bootstrap, &args);
            // Rows may come in any order; the header stays first.
            if lines.len() > 1 {
                lines[1..].sort();
            }
            (name.to_string(), lines)
        })
        .collect()
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
    let reference_bootstrap = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let theirs = scenario(&reference_bootstrap);
    let _ = Command::new(&script).arg("kill").arg(dir.path()).status();

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
    let describe = &ours[1].1;
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
    assert!(ours[0].1.iter().any(|l| l == &vec![GROUP.to_string()]));
    assert!(!ours[5].1.iter().any(|l| l == &vec![GROUP.to_string()]));
}
