//! Kafka's `kafka-metadata-quorum` tool (MetadataQuorumCommand from the
//! pinned Apache Kafka 4.1.2 jars) against the real sluice binary:
//! `describe --status` shows this node as the leader and only voter, with
//! the metadata log dir's directory id and its listener; the high watermark
//! grows with each committed metadata change (topic created, partitions
//! added, topic config altered, topic deleted) and not with reads; the leader
//! epoch grows by one on every start, after kill -9 as after a clean stop,
//! while the high watermark stays. `describe --replication` shows the one
//! replica as the caught-up leader.
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use sluice_testkit::SluiceProcess;

/// Runs MetadataQuorumCommand `describe <what>`; returns its stdout.
fn metadata_quorum(bootstrap: &str, what: &str) -> String {
    common::kafka_tool(
        "org.apache.kafka.tools.MetadataQuorumCommand",
        &["--bootstrap-server", bootstrap, "describe", what],
    )
}

/// `describe --status` as `Key: value` pairs.
fn status(bootstrap: &str) -> BTreeMap<String, String> {
    metadata_quorum(bootstrap, "--status")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn number(status: &BTreeMap<String, String>, key: &str) -> i64 {
    status
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in {status:?}"))
}

/// The `directory.id` sluice wrote into its log dir's meta.properties.
fn directory_id(sluice: &SluiceProcess) -> String {
    let props = std::fs::read_to_string(sluice.data_dir().join("meta.properties")).unwrap();
    props
        .lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .expect("directory.id")
        .to_string()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

#[test]
fn kafka_metadata_quorum_describes_sluice_as_a_single_voter_quorum() {
    if !common::kafka_tools_ready("kafka-metadata-quorum") {
        return;
    }
    let mut sluice = common::start(&[("node.id", "3")]);
    let bootstrap = sluice.bootstrap().to_string();

    let s = status(&bootstrap);
    assert_eq!(number(&s, "LeaderId"), 3, "{s:?}");
    assert_eq!(number(&s, "LeaderEpoch"), 1, "first start: {s:?}");
    // Committed so far: the bootstrap (metadata.version and
    // transaction.version), this broker's registration and its unfencing.
    let h0 = number(&s, "HighWatermark");
    assert_eq!(h0, 4, "bootstrap, registration, unfencing: {s:?}");
    assert_eq!(number(&s, "MaxFollowerLag"), 0);
    assert_eq!(s["ClusterId"].len(), 22, "{s:?}");
    assert_eq!(
        s["CurrentVoters"],
        format!(
            r#"[{{"id": 3, "directoryId": "{}", "endpoints": ["PLAINTEXT://{bootstrap}"]}}]"#,
            directory_id(&sluice)
        ),
        "exactly one voter: this node"
    );
    assert_eq!(s["CurrentObservers"], "[]");

    // Each committed metadata record is one more offset; reads are none.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = admin(&bootstrap);
    let created = rt
        .block_on(a.create_topics(
            &[NewTopic::new("quorum-a", 1, TopicReplication::Fixed(1))],
            &options(),
        ))
        .expect("create_topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let after_create = number(&status(&bootstrap), "HighWatermark");
    assert_eq!(after_create, h0 + 2, "TopicRecord + PartitionRecord");
    assert_eq!(
        number(&status(&bootstrap), "HighWatermark"),
        h0 + 2,
        "reads change nothing"
    );
    let grown = rt
        .block_on(a.create_partitions(&[NewPartitions::new("quorum-a", 2)], &options()))
        .expect("create_partitions");
    assert!(grown.iter().all(|r| r.is_ok()), "{grown:?}");
    let altered = rt
        .block_on(a.alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("quorum-a")).set("retention.ms", "60000")],
            &options(),
        ))
        .expect("alter_configs");
    assert!(altered.iter().all(|r| r.is_ok()), "{altered:?}");
    let deleted = rt
        .block_on(a.delete_topics(&["quorum-a"], &options()))
        .expect("delete_topics");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    drop(a);
    let s = status(&bootstrap);
    // + a PartitionRecord, a ConfigRecord, a RemoveTopicRecord.
    let h1 = h0 + 5;
    assert_eq!(number(&s, "HighWatermark"), h1, "{s:?}");

    let replication = metadata_quorum(&bootstrap, "--replication");
    let rows: Vec<Vec<&str>> = replication
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status"
        ],
        "{replication}"
    );
    assert_eq!(rows.len(), 2, "one replica: {replication}");
    let dir_id = directory_id(&sluice);
    assert_eq!(
        rows[1][..4],
        ["3", dir_id.as_str(), h1.to_string().as_str(), "0"],
        "{replication}"
    );
    assert_eq!(rows[1][6], "Leader", "{replication}");
    assert!(
        rows[1][4].parse::<i64>().is_ok_and(|t| t > 0),
        "{replication}"
    );

    // kill -9 and start again: a new election (epoch 2), nothing lost
    // (the restarted broker registers again: more records).
    sluice.restart().expect("restart after kill -9");
    let s = status(sluice.bootstrap());
    assert_eq!(number(&s, "LeaderEpoch"), 2, "{s:?}");
    let h2 = number(&s, "HighWatermark");
    assert!(h2 > h1, "{s:?}");
    assert_eq!(number(&s, "LeaderId"), 3);

    // A clean stop and start: epoch 3; and the offset keeps counting.
    sluice.terminate().expect("clean stop");
    sluice.restart().expect("restart after SIGTERM");
    let bootstrap = sluice.bootstrap().to_string();
    let created = rt
        .block_on(admin(&bootstrap).create_topics(
            &[NewTopic::new("quorum-b", 1, TopicReplication::Fixed(1))],
            &options(),
        ))
        .expect("create_topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let s = status(&bootstrap);
    assert_eq!(number(&s, "LeaderEpoch"), 3, "{s:?}");
    assert!(number(&s, "HighWatermark") > h2 + 2, "{s:?}");
}
