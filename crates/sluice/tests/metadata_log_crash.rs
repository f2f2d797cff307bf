//! The metadata of the real binary lives in its metadata log
//! (`<log.dirs[0]>/__cluster_metadata-0`): topics created, grown and
//! deleted, topic and dynamic broker configs altered through librdkafka's
//! admin API are all there after `kill -9` and a restart, and no
//! single-node metadata file is written. Kafka's own `DumpLogSegments
//! --cluster-metadata-decoder` reads that log, and shows SIGTERM's
//! controlled shutdown in it (when java and the pinned Kafka jars are
//! present; skipped loudly otherwise).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{root, start};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(60);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Topic name -> partition count, as Metadata answers.
fn topics(bootstrap: &str) -> std::collections::BTreeMap<String, usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let md = c.fetch_metadata(None, TIMEOUT).unwrap();
    md.topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

async fn described(
    admin: &AdminClient<DefaultClientContext>,
    resource: ResourceSpecifier<'_>,
    key: &str,
) -> (Option<String>, String) {
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let r = admin.describe_configs(&[resource], &opts).await.unwrap();
    let entry = r[0].as_ref().unwrap().get(key).unwrap();
    (entry.value.clone(), format!("{:?}", entry.source))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_metadata_survives_kill_9() {
    let mut sluice = start(&[]);
    let bootstrap = sluice.bootstrap().to_string();
    let a = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let created = a
        .create_topics(
            &[
                NewTopic::new("keep", 2, TopicReplication::Fixed(1)).set("retention.ms", "7200000"),
                NewTopic::new("gone", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let grown = a
        .create_partitions(&[NewPartitions::new("keep", 5)], &opts)
        .await
        .unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    let deleted = a.delete_topics(&["gone"], &opts).await.unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let altered = a
        .alter_configs(
            &[
                AlterConfig::new(ResourceSpecifier::Topic("keep"))
                    .set("retention.ms", "3600000")
                    .set("cleanup.policy", "compact"),
                AlterConfig::new(ResourceSpecifier::Broker(1))
                    .set("log.cleaner.backoff.ms", "20000"),
            ],
            &opts,
        )
        .await
        .unwrap();
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");

    sluice.kill().unwrap();
    sluice.restart().unwrap();
    let bootstrap = sluice.bootstrap().to_string();
    let a = admin(&bootstrap);
    let seen = topics(&bootstrap);
    assert_eq!(seen.get("keep"), Some(&5), "{seen:?}");
    assert!(!seen.contains_key("gone"), "{seen:?}");
    assert_eq!(
        described(&a, ResourceSpecifier::Topic("keep"), "retention.ms").await,
        (
            Some("3600000".into()),
            format!("{:?}", ConfigSource::DynamicTopic)
        )
    );
    assert_eq!(
        described(&a, ResourceSpecifier::Topic("keep"), "cleanup.policy")
            .await
            .0
            .as_deref(),
        Some("compact")
    );
    assert_eq!(
        described(&a, ResourceSpecifier::Broker(1), "log.cleaner.backoff.ms").await,
        (
            Some("20000".into()),
            format!("{:?}", ConfigSource::DynamicBroker)
        )
    );

    let data = sluice.data_dir().to_path_buf();
    for old in ["topics.meta", "group_configs.meta", "broker_configs.meta"] {
        assert!(!data.join(old).exists(), "{old} written");
    }
    let log = data.join("__cluster_metadata-0/00000000000000000000.log");
    assert!(log.exists(), "no metadata log at {}", log.display());
    drop(a);
    sluice.terminate().unwrap();
    dump_with_kafkas_tool(&log);
}

/// Kafka's `DumpLogSegments --cluster-metadata-decoder` decodes every
/// batch of the broker's real metadata log.
fn dump_with_kafkas_tool(log: &std::path::Path) {
    let jars = root().join(".cache/kafka/lib");
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !java || !jars.join(".complete").exists() {
        if common::env_on("SLUICE_REQUIRE_CLIENTS") {
            panic!("DumpLogSegments needs java and {}", jars.display());
        }
        eprintln!(
            "\n\n!!! SKIPPED DumpLogSegments check: needs java and {} !!!\n",
            jars.display()
        );
        return;
    }
    let out = Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(jars.join("*"))
        .args([
            "kafka.tools.DumpLogSegments",
            "--cluster-metadata-decoder",
            "--files",
        ])
        .arg(log)
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for record in [
        "\"FEATURE_LEVEL_RECORD\"",
        "\"REGISTER_BROKER_RECORD\"",
        "\"TOPIC_RECORD\"",
        "\"PARTITION_RECORD\"",
        "\"CONFIG_RECORD\"",
        "\"REMOVE_TOPIC_RECORD\"",
        "\"BROKER_REGISTRATION_CHANGE_RECORD\"",
    ] {
        assert!(stdout.contains(record), "{record} missing:\n{stdout}");
    }
    // SIGTERM was a controlled shutdown: the broker asked to be fenced
    // with its leaderships moved off before it exited.
    assert!(
        stdout.contains("\"inControlledShutdown\":1"),
        "no controlled shutdown in the log:\n{stdout}"
    );
    assert!(
        stdout.contains("\"leader\":-1"),
        "leaderships not moved:\n{stdout}"
    );
    for bad in ["Exception", "corrupt"] {
        assert!(!stdout.contains(bad), "{bad} in the dump:\n{stdout}");
    }
}
