//! DescribeQuorum and DescribeCluster on the controller listener, as
//! Kafka's controller answers them: the leader describes
//! `__cluster_metadata-0` (epoch, high watermark), a voter that does not
//! lead answers NOT_LEADER_OR_FOLLOWER, another partition is
//! UNKNOWN_TOPIC_OR_PARTITION; DescribeCluster lists the controllers for
//! endpoint type CONTROLLER and refuses BROKER with
//! MISMATCHED_ENDPOINT_TYPE. (Kafka's own kafka-metadata-quorum against
//! three controller processes: crates/sluice/tests/controller_quorum.rs.)

mod common;

use common::*;
use sluice_metadata::BrokerId;
use sluice_protocol::kafka_protocol::messages::describe_quorum_request::{
    PartitionData, TopicData,
};
use sluice_protocol::kafka_protocol::messages::*;
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_transport::{ControllerChannel, QuorumVoters, ServerConfig};

fn describe(topic: &str, partition: i32) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])])
}

#[tokio::test]
async fn describe_quorum_and_cluster_on_the_controller_listener() {
    let c = Controller::start(1).await;
    let ch = ControllerChannel::new(QuorumVoters::parse(&c.voter(1)).unwrap(), channel_config());

    let r = ch
        .send(&describe("__cluster_metadata", 0), LONG)
        .await
        .unwrap();
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    assert_eq!(p.leader_id.0, 1);
    let info = c.c.quorum_info();
    assert_eq!(p.leader_epoch, info.leader.epoch.0);
    assert_eq!(p.high_watermark, info.high_watermark.0);

    let r = ch.send(&describe("other", 0), LONG).await.unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 3);
    let r = ch
        .send(&describe("__cluster_metadata", 1), LONG)
        .await
        .unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 3);

    // Without voters configured the listener lists no controllers, but
    // names the active one.
    let dc = ch
        .send(
            &DescribeClusterRequest::default().with_endpoint_type(2),
            LONG,
        )
        .await
        .unwrap();
    assert_eq!((dc.error_code, dc.controller_id.0), (0, 1), "{dc:?}");
    assert_eq!(dc.cluster_id.as_str(), CLUSTER_ID);
    let dc = ch
        .send(
            &DescribeClusterRequest::default().with_endpoint_type(1),
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(dc.error_code, 114, "{dc:?}");

    // Another node leads: this voter cannot describe the quorum.
    c.log.set_leader(Some(BrokerId(2)));
    let r = ch
        .send(&describe("__cluster_metadata", 0), LONG)
        .await
        .unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 6);
    let dc = ch
        .send(
            &DescribeClusterRequest::default().with_endpoint_type(2),
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(dc.controller_id.0, 2);
}

#[tokio::test]
async fn describe_lists_the_configured_voters_and_their_listener() {
    let log = sluice_controller::testing::MemoryLog::new(BrokerId(1));
    let c = std::sync::Arc::new(sluice_controller::QuorumController::start(
        log.clone(),
        sluice_controller::ControllerConfig::default(),
        std::sync::Arc::new(sluice_controller::PermissiveValidator),
        std::sync::Arc::new(sluice_storage::SystemClock),
    ));
    let voters = QuorumVoters::parse("1@127.0.0.1:9093,2@localhost:9094,3@[::1]:9095").unwrap();
    let config = ServerConfig {
        voters: Some(voters),
        listener_name: "CTRL".into(),
        ..ServerConfig::new(CLUSTER_ID)
    };
    let server =
        sluice_transport::ControllerServer::bind("127.0.0.1:0".parse().unwrap(), c.clone(), config)
            .await
            .unwrap();
    let ch = ControllerChannel::new(
        QuorumVoters::parse(&format!("1@{}", server.local_addr())).unwrap(),
        channel_config(),
    );
    let dc = ch
        .send(
            &DescribeClusterRequest::default().with_endpoint_type(2),
            LONG,
        )
        .await
        .unwrap();
    let listed: Vec<(i32, String, i32)> = dc
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
        .collect();
    assert_eq!(
        listed,
        vec![
            (1, "127.0.0.1".into(), 9093),
            (2, "localhost".into(), 9094),
            (3, "::1".into(), 9095)
        ]
    );
    let r = ch
        .send(&describe("__cluster_metadata", 0), LONG)
        .await
        .unwrap();
    let nodes: Vec<(i32, String, u16)> = r
        .nodes
        .iter()
        .map(|n| {
            (
                n.node_id.0,
                n.listeners[0].name.to_string(),
                n.listeners[0].port,
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![
            (1, "CTRL".into(), 9093),
            (2, "CTRL".into(), 9094),
            (3, "CTRL".into(), 9095)
        ]
    );
    server.shutdown().await;
    c.shutdown().await;
}
