//! DescribeQuorum and DescribeCluster on the controller listener, so
//! `kafka-metadata-quorum --bootstrap-controller host:port` works against
//! Sluice controllers (KIP-919: the admin client finds the controllers
//! with DescribeCluster, endpoint type CONTROLLER, and sends DescribeQuorum
//! to the active one it names).
//!
//! As Kafka 4.1.2's controller answers:
//! - DescribeQuorum is answered by the metadata log's leader only; another
//!   voter answers NOT_LEADER_OR_FOLLOWER for the partition. A request for
//!   anything but `__cluster_metadata-0` gets UNKNOWN_TOPIC_OR_PARTITION per
//!   partition. Voters carry their log end offset and last fetch / caught-up
//!   times as the leader saw them; observers likewise. Directory ids are
//!   zero: the voter set is static (`controller.quorum.voters` names no
//!   directories), as Kafka reports it. v2 lists each voter's controller
//!   listener.
//! - DescribeCluster with endpoint type CONTROLLER (2) lists the voters at
//!   their controller listener addresses and names the active controller
//!   (-1 during an election); endpoint type BROKER (1) is
//!   MISMATCHED_ENDPOINT_TYPE here, as on Kafka's controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{QuorumController, VoterState};
use sluice_protocol::kafka_protocol;

use super::ServerConfig;

/// The metadata log's topic and its only partition.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
/// DescribeCluster's endpoint types (KIP-919).
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

fn replica(v: &VoterState, version: i16) -> ReplicaState {
    let r = ReplicaState::default()
        .with_replica_id(BrokerId(v.node.0))
        .with_log_end_offset(v.log_end_offset.0);
    if version >= 1 {
        r.with_last_fetch_timestamp(v.last_fetch_timestamp_ms)
            .with_last_caught_up_timestamp(v.last_caught_up_timestamp_ms)
    } else {
        r
    }
}

pub fn describe_quorum(
    c: &QuorumController,
    config: &ServerConfig,
    req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let resp = DescribeQuorumResponse::default()
        .with_error_code(0)
        .with_error_message(Some(StrBytes::default()));
    let metadata_partition = match req.topics.as_slice() {
        [t] => {
            t.topic_name.as_str() == METADATA_TOPIC
                && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0)
        }
        _ => false,
    };
    let partition_error = |index: i32, code: i16| {
        PartitionData::default()
            .with_partition_index(index)
            .with_error_code(code)
            .with_error_message(Some(StrBytes::default()))
    };
    if !metadata_partition {
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| partition_error(p.partition_index, UNKNOWN_TOPIC_OR_PARTITION))
                    .collect();
                TopicData::default()
                    .with_topic_name(t.topic_name)
                    .with_partitions(partitions)
            })
            .collect();
        return resp.with_topics(topics);
    }
    let info = c.quorum_info();
    let topic = |p: PartitionData| {
        vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![p])]
    };
    if info.leader.leader != Some(c.node_id()) {
        return resp.with_topics(topic(partition_error(0, NOT_LEADER_OR_FOLLOWER)));
    }
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_error_code(0)
        .with_error_message(Some(StrBytes::default()))
        .with_leader_id(BrokerId(c.node_id().0))
        .with_leader_epoch(info.leader.epoch.0)
        .with_high_watermark(info.high_watermark.0)
        .with_current_voters(info.voters.iter().map(|v| replica(v, version)).collect())
        .with_observers(info.observers.iter().map(|v| replica(v, version)).collect());
    let resp = resp.with_topics(topic(partition));
    if version < 2 {
        return resp;
    }
    let nodes = config
        .voters
        .iter()
        .flat_map(|v| v.voters())
        .map(|v| {
            Node::default()
                .with_node_id(BrokerId(v.id))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_string(config.listener_name.clone()))
                    .with_host(StrBytes::from_string(v.host.clone()))
                    .with_port(v.port)])
        })
        .collect();
    resp.with_nodes(nodes)
}

pub fn describe_cluster(
    c: &QuorumController,
    config: &ServerConfig,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    // v0 has no endpoint type: it asks for brokers.
    let asked = if version >= 1 {
        req.endpoint_type
    } else {
        ENDPOINT_BROKER
    };
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(asked)
        .with_cluster_id(StrBytes::from_string(config.cluster_id.clone()))
        .with_controller_id(BrokerId(-1))
        .with_cluster_authorized_operations(i32::MIN);
    if asked != ENDPOINT_CONTROLLER {
        return resp
            .with_error_code(MISMATCHED_ENDPOINT_TYPE)
            .with_error_message(Some(StrBytes::from_static_str(
                "The request was sent to an endpoint of type CONTROLLER, but we wanted an endpoint of type BROKER",
            )));
    }
    let leader = c.leader_and_epoch().leader.map_or(-1, |l| l.0);
    let brokers = config
        .voters
        .iter()
        .flat_map(|v| v.voters())
        .map(|v| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(v.id))
                .with_host(StrBytes::from_string(v.host.clone()))
                .with_port(i32::from(v.port))
        })
        .collect();
    resp.with_error_code(0)
        .with_controller_id(BrokerId(leader))
        .with_brokers(brokers)
}
