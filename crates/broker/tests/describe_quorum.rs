//! DescribeQuorum over the wire: this node as the single voter and leader of
//! `__cluster_metadata-0`, in each version Kafka 4.1.2 answers (v0–v2), with
//! Kafka's errors for any other partition; the high watermark counts
//! committed metadata changes (and only those) and, with the leader epoch,
//! survives a restart, after which the epoch is one higher.

mod netkit;

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::PartitionData as PartitionResult;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{now_ms, Client};
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{Clock, RealFs, SystemClock};
use uuid::Uuid;

async fn start(dir: &Path) -> Broker {
    let config = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", dir.to_str().unwrap()),
        ("node.id", "7"),
    ])
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Broker::start(config, Arc::new(RealFs), clock)
        .await
        .unwrap()
}

fn request(topics: &[(&str, &[i32])]) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(
        topics
            .iter()
            .map(|(name, partitions)| {
                TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| PartitionData::default().with_partition_index(*p))
                            .collect(),
                    )
            })
            .collect(),
    )
}

async fn describe(
    c: &mut Client,
    version: i16,
    topics: &[(&str, &[i32])],
) -> DescribeQuorumResponse {
    match c
        .call(ApiKey::DescribeQuorum, version, &request(topics))
        .await
    {
        ResponseKind::DescribeQuorum(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The one partition of a successful answer.
async fn quorum(c: &mut Client, version: i16) -> PartitionResult {
    let r = describe(c, version, &[("__cluster_metadata", &[0])]).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].topic_name.as_str(), "__cluster_metadata");
    assert_eq!(r.topics[0].partitions.len(), 1);
    let p = r.topics[0].partitions[0].clone();
    assert_eq!(p.partition_index, 0);
    assert_eq!(p.error_code, 0, "{p:?}");
    p
}

/// The `directory.id` Sluice wrote into the metadata log dir's meta.properties.
fn directory_id(dir: &Path) -> String {
    let props = std::fs::read_to_string(dir.join("meta.properties")).unwrap();
    props
        .lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .expect("directory.id in meta.properties")
        .to_string()
}

/// Kafka's base64 form of a Uuid (as meta.properties holds it).
fn base64(id: Uuid) -> String {
    sluice_broker::metadata::uuid_to_base64(id)
}

async fn create_topic(c: &mut Client, name: &str, validate_only: bool) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    match c.call(ApiKey::CreateTopics, 7, &req).await {
        ResponseKind::CreateTopics(r) => r.topics[0].error_code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn describe_quorum_reports_the_single_voter_and_committed_metadata_changes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let port = broker.bound_addr().port();
    let mut c = Client::connect(broker.bound_addr()).await;

    // First start: epoch 1 (Kafka's first election of a --standalone
    // node); committed so far: the bootstrap (metadata.version) and this
    // broker's registration and unfencing.
    let before = now_ms();
    let p = quorum(&mut c, 2).await;
    let after = now_ms();
    assert_eq!(p.leader_id, BrokerId(7));
    assert_eq!(p.leader_epoch, 1);
    let h0 = p.high_watermark;
    assert!(h0 >= 3, "{h0}");
    assert_eq!(p.error_message.as_deref(), Some(""));
    assert_eq!(p.current_voters.len(), 1);
    assert!(p.observers.is_empty());
    let voter = &p.current_voters[0];
    assert_eq!(voter.replica_id, BrokerId(7));
    assert_eq!(voter.log_end_offset, h0);
    assert_eq!(base64(voter.replica_directory_id), directory_id(dir.path()));
    for ts in [voter.last_fetch_timestamp, voter.last_caught_up_timestamp] {
        assert!(
            (before..=after).contains(&ts),
            "{ts} not in {before}..={after}"
        );
    }
    let r = describe(&mut c, 2, &[("__cluster_metadata", &[0])]).await;
    assert_eq!(r.error_message.as_deref(), Some(""));
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].node_id, BrokerId(7));
    let listeners: Vec<(String, String, u16)> = r.nodes[0]
        .listeners
        .iter()
        .map(|l| (l.name.to_string(), l.host.to_string(), l.port))
        .collect();
    assert_eq!(listeners, [("PLAINTEXT".into(), "127.0.0.1".into(), port)]);

    // v1: timestamps but no directory id; v0: neither.
    let v1 = quorum(&mut c, 1).await;
    assert_eq!(v1.current_voters[0].replica_directory_id, Uuid::nil());
    assert!(v1.current_voters[0].last_fetch_timestamp >= before);
    let v0 = quorum(&mut c, 0).await;
    assert_eq!((v0.leader_id, v0.leader_epoch), (BrokerId(7), 1));
    assert_eq!(v0.current_voters[0].last_fetch_timestamp, -1);
    assert_eq!(v0.current_voters[0].last_caught_up_timestamp, -1);

    // Kafka's answer for anything but exactly __cluster_metadata-0.
    for (version, topics) in [
        (2, vec![("__cluster_metadata", &[1][..])]),
        (2, vec![("orders", &[0][..])]),
        (0, vec![("__cluster_metadata", &[0, 0][..])]),
        (1, vec![("__cluster_metadata", &[0][..]), ("x", &[0][..])]),
    ] {
        let r = describe(&mut c, version, &topics).await;
        assert_eq!(r.error_code, 0);
        assert!(r.nodes.is_empty());
        let names: Vec<&str> = r.topics.iter().map(|t| t.topic_name.as_str()).collect();
        let wanted: Vec<&str> = topics.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, wanted);
        for (t, (_, parts)) in r.topics.iter().zip(&topics) {
            assert_eq!(t.partitions.len(), parts.len());
            for (p, want) in t.partitions.iter().zip(parts.iter()) {
                assert_eq!(p.partition_index, *want);
                assert_eq!(p.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION: {p:?}");
                assert_eq!(
                    (p.leader_id, p.leader_epoch, p.high_watermark),
                    (BrokerId(0), 0, 0)
                );
                assert!(p.current_voters.is_empty() && p.observers.is_empty());
                if version >= 2 {
                    assert_eq!(
                        p.error_message.as_deref(),
                        Some("This server does not host this topic-partition.")
                    );
                }
            }
        }
    }
    let empty = describe(&mut c, 2, &[]).await;
    assert!(empty.topics.is_empty() && empty.nodes.is_empty());

    // Every committed change advances the high watermark by its records
    // (a topic: TopicRecord + one PartitionRecord per partition); refused
    // and validate-only ones do not.
    assert_eq!(create_topic(&mut c, "q1", false).await, 0);
    assert_eq!(quorum(&mut c, 2).await.high_watermark, h0 + 2);
    assert_eq!(
        create_topic(&mut c, "q1", false).await,
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(create_topic(&mut c, "q2", true).await, 0);
    assert_eq!(quorum(&mut c, 2).await.high_watermark, h0 + 2);
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("q1")))
            .with_count(3)
            .with_assignments(None)])
        .with_timeout_ms(30_000);
    let ResponseKind::CreatePartitions(r) = c.call(ApiKey::CreatePartitions, 3, &grow).await else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, 0);
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("q1"))])
        .with_timeout_ms(30_000);
    let ResponseKind::DeleteTopics(r) = c.call(ApiKey::DeleteTopics, 5, &delete).await else {
        panic!()
    };
    assert_eq!(r.responses[0].error_code, 0);
    let p = quorum(&mut c, 2).await;
    // Two PartitionRecords, one RemoveTopicRecord.
    assert_eq!(
        (p.high_watermark, p.current_voters[0].log_end_offset),
        (h0 + 5, h0 + 5)
    );
    drop(c);
    broker.shutdown().await.unwrap();

    // A restart is a new election: epoch 2; the high watermark never goes
    // back (the controlled shutdown and the new registration add records).
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.bound_addr()).await;
    let p = quorum(&mut c, 2).await;
    assert_eq!(p.leader_epoch, 2);
    assert!(p.high_watermark > h0 + 5, "{}", p.high_watermark);
    assert_eq!(create_topic(&mut c, "q3", false).await, 0);
    assert_eq!(quorum(&mut c, 2).await.high_watermark, p.high_watermark + 2);
    drop(c);
    broker.shutdown().await.unwrap();
}
