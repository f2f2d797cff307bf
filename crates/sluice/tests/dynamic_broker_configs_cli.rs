//! Kafka's `kafka-configs` tool (ConfigCommand from the pinned Apache Kafka
//! 4.1.2 jars) changing dynamic broker configs of the real sluice binary:
//! `--entity-default` and `--entity-name 1` alters are accepted and
//! described with DYNAMIC_DEFAULT_BROKER_CONFIG / DYNAMIC_BROKER_CONFIG
//! sources exactly as Kafka describes them (compared with a reference Kafka
//! when one can start), a non-dynamic key is refused with Kafka's message,
//! the configs survive kill -9 and a restart, and a lowered
//! `log.segment.bytes` really makes a topic created afterwards roll its
//! segments at the new size.
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::root;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sluice_testkit::ReferenceKafka;

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
    if common::env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!("kafka-configs: {missing} required (SLUICE_REQUIRE_CLIENTS is set)");
    }
    eprintln!(
        "\n\n!!! SKIPPED kafka-configs broker test: needs {missing}; run scripts/setup !!!\n"
    );
    false
}

/// Runs `kafka-configs --bootstrap-server <bootstrap> --entity-type brokers <args>`.
fn kafka_configs(bootstrap: &str, args: &[&str]) -> Output {
    Command::new("java")
        // No log4j config: ConfigCommand's logging controller refuses the
        // log4j 1 file clients/java uses; its defaults log nothing to stdout.
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg("kafka.admin.ConfigCommand")
        .args(["--bootstrap-server", bootstrap, "--entity-type", "brokers"])
        .args(args)
        .output()
        .expect("run java")
}

fn ok(bootstrap: &str, args: &[&str]) -> String {
    let out = kafka_configs(bootstrap, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-configs {args:?} failed against {bootstrap}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The alters of the scenario, in order.
const ALTERS: &[&[&str]] = &[
    &[
        "--entity-default",
        "--alter",
        "--add-config",
        "log.segment.bytes=1048576,log.retention.ms=86400000",
    ],
    &[
        "--entity-name",
        "1",
        "--alter",
        "--add-config",
        "log.retention.ms=172800000,sasl.kerberos.min.time.before.relogin=58000",
    ],
    &[
        "--entity-name",
        "1",
        "--alter",
        "--delete-config",
        "sasl.kerberos.min.time.before.relogin",
    ],
];

/// The describe lines of the keys the scenario sets, for both levels (Kafka
/// prints them in hash order; sorted here).
fn described(bootstrap: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for level in [&["--entity-default"][..], &["--entity-name", "1"][..]] {
        let args: Vec<&str> = level.iter().copied().chain(["--describe"]).collect();
        let out = ok(bootstrap, &args);
        let mut these: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("  log.") || l.starts_with("  sasl."))
            .map(|l| format!("{level:?} {}", l.trim()))
            .collect();
        these.sort();
        lines.extend(these);
    }
    lines
}

/// Alters both levels; returns what `--describe` shows, and the refusal of
/// a non-dynamic key.
fn scenario(bootstrap: &str) -> (Vec<String>, String) {
    for args in ALTERS {
        let out = ok(bootstrap, args);
        assert!(out.contains("Completed updating"), "{args:?}: {out}");
    }
    let refused = kafka_configs(
        bootstrap,
        &[
            "--entity-name",
            "1",
            "--alter",
            "--add-config",
            "log.dirs=/elsewhere",
        ],
    );
    assert!(!refused.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    let cause = text
        .lines()
        .find(|l| l.starts_with("Caused by:"))
        .unwrap_or_else(|| panic!("no cause in {text}"))
        .to_string();
    (described(bootstrap), cause)
}

fn expected_describe() -> Vec<String> {
    [
        r#"["--entity-default"] log.retention.ms=86400000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=86400000}"#,
        r#"["--entity-default"] log.segment.bytes=1048576 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=1048576}"#,
        r#"["--entity-name", "1"] log.retention.ms=172800000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=172800000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=86400000, DEFAULT_CONFIG:log.retention.hours=168}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

#[test]
fn kafka_configs_changes_broker_defaults_durably_and_they_take_effect() {
    if !java_ready() {
        return;
    }
    let mut sluice = common::start(&[]);
    let (lines, cause) = scenario(sluice.bootstrap());
    assert_eq!(lines, expected_describe());
    assert_eq!(
        cause,
        "Caused by: org.apache.kafka.common.errors.InvalidRequestException: Cannot update these configs dynamically: Set(log.dirs)"
    );

    // kill -9, start again on the same data: the dynamic configs are back.
    sluice.restart().expect("restart");
    let bootstrap = sluice.bootstrap().to_string();
    assert_eq!(described(&bootstrap), expected_describe());

    // A topic created now gets 1 MiB segments (the dynamic cluster default).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                "after-lowering",
                1,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let value = vec![b'v'; 64 * 1024];
    rt.block_on(async {
        // 3 MiB of 64 KiB records.
        for i in 0..48 {
            let key = format!("k{i}");
            producer
                .send(
                    FutureRecord::to("after-lowering").key(&key).payload(&value),
                    Duration::from_secs(60),
                )
                .await
                .expect("delivered");
        }
    });
    let segments = segment_files(&sluice.data_dir().join("after-lowering-0"));
    assert!(
        segments >= 3,
        "3 MiB in 1 MiB segments should make at least 3 segment files, found {segments}"
    );

    // The same tool, the same answers from Apache Kafka.
    if let Some(kafka) = ReferenceKafka::start().expect("reference Kafka starts") {
        let (kafka_lines, kafka_cause) = scenario(&kafka.bootstrap());
        assert_eq!(lines, kafka_lines, "describe differs from Kafka");
        assert_eq!(cause, kafka_cause, "refusal differs from Kafka");
        kafka.stop();
    }
}
