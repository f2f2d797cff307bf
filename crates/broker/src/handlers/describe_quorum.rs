//! DescribeQuorum: the metadata quorum of `__cluster_metadata-0`. A node of
//! a multi-node cluster forwards it to the active controller ([`forward`]).
//! A single node is its only voter and so always its leader; the high watermark and log
//! end offset are the metadata store's durable metadata offset and the epoch
//! is the one it elected itself in at start (`metadata/store.rs`).
//!
//! As Kafka 4.1.2 answers (measured against the reference broker): a request
//! that is not exactly one topic `__cluster_metadata` with exactly partition 0
//! gets UNKNOWN_TOPIC_OR_PARTITION on every partition it names (leader, epoch
//! and high watermark 0, no replicas, no nodes); error messages are empty
//! strings, not null, in v2; the leader reports the current time as its own
//! last fetch and last caught-up timestamps (v1+); v2 adds the replica's
//! directory id and the voters' listeners (`nodes`). Kafka lists its
//! CONTROLLER listener there; this node has no separate one and serves the
//! quorum on its advertised listeners, so those are listed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

/// The metadata log's topic and its only partition.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
pub const METADATA_PARTITION: i32 = 0;

/// Kafka's message for UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_PARTITION_MESSAGE: &str = "This server does not host this topic-partition.";

/// How long a forwarded DescribeQuorum may take (Kafka's forwarding uses
/// the request's own timeout; DescribeQuorum has none).
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A node of a cluster forwards DescribeQuorum to the active controller,
/// as Kafka's brokers do: only the quorum's leader knows every voter's
/// and observer's log end and lag. A voter that is not the leader answers
/// NOT_LEADER_OR_FOLLOWER with the leader it knows; the channel is then
/// pointed at that leader and asked once more.
async fn forward(
    channel: &sluice_transport::ControllerChannel,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let mut last = None;
    for _ in 0..3 {
        match channel.send(&req, FORWARD_TIMEOUT).await {
            Ok(resp) => {
                let p = resp.topics.first().and_then(|t| t.partitions.first());
                match p {
                    Some(p)
                        if p.error_code == ResponseError::NotLeaderOrFollower.code()
                            && p.leader_id.0 >= 0 =>
                    {
                        channel.set_active_controller(p.leader_id.0).await;
                        last = Some(resp);
                    }
                    _ => return resp,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "forwarding DescribeQuorum failed");
                break;
            }
        }
    }
    last.unwrap_or_else(|| {
        DescribeQuorumResponse::default()
            .with_error_code(ResponseError::RequestTimedOut.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "the active controller did not answer",
            )))
    })
}

/// The forwarded answer comes from the active controller at the version
/// the controller channel speaks (v2), so it may carry what the client's
/// version cannot: v0 and v1 have no `nodes`, error messages or replica
/// directory ids (kafka-protocol refuses to encode them, and the client's
/// connection was closed). Older versions get the answer without them.
pub fn fit_version(mut resp: DescribeQuorumResponse, version: i16) -> DescribeQuorumResponse {
    if version >= 2 {
        return resp;
    }
    resp.error_message = None;
    resp.nodes.clear();
    for t in &mut resp.topics {
        for p in &mut t.partitions {
            p.error_message = None;
            for r in p.current_voters.iter_mut().chain(p.observers.iter_mut()) {
                r.replica_directory_id = uuid::Uuid::nil();
                if version < 1 {
                    r.last_fetch_timestamp = -1;
                    r.last_caught_up_timestamp = -1;
                }
            }
        }
    }
    resp
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let version = header.request_api_version;
    let resp = DescribeQuorumResponse::default()
        .with_error_code(0)
        .with_error_message(Some(StrBytes::default()));
    let is_metadata_partition = match req.topics.as_slice() {
        [t] => {
            t.topic_name.as_str() == METADATA_TOPIC
                && matches!(t.partitions.as_slice(), [p] if p.partition_index == METADATA_PARTITION)
        }
        _ => false,
    };
    if !is_metadata_partition {
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                UNKNOWN_PARTITION_MESSAGE,
                            )))
                            .with_leader_id(BrokerId(0))
                            .with_leader_epoch(0)
                            .with_high_watermark(0)
                    })
                    .collect();
                TopicData::default()
                    .with_topic_name(t.topic_name)
                    .with_partitions(partitions)
            })
            .collect();
        return resp.with_topics(topics);
    }

    if let Some(channel) = ctx.metadata.controller_channel() {
        return fit_version(forward(channel, req).await, version);
    }
    let node_id = ctx.config.node_id;
    let metadata = &ctx.metadata;
    let high_watermark = metadata.high_watermark().value();
    let mut leader = ReplicaState::default()
        .with_replica_id(BrokerId(node_id))
        .with_log_end_offset(high_watermark);
    if version >= 1 {
        // The leader is always caught up with itself, as of now.
        let now = ctx.clock.now_ms();
        leader = leader
            .with_last_fetch_timestamp(now)
            .with_last_caught_up_timestamp(now);
    }
    if version >= 2 {
        leader = leader.with_replica_directory_id(metadata.directory_id());
    }
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(0)
        .with_error_message(Some(StrBytes::default()))
        .with_leader_id(BrokerId(node_id))
        .with_leader_epoch(metadata.leader_epoch().0)
        .with_high_watermark(high_watermark)
        .with_current_voters(vec![leader])
        .with_observers(Vec::new());
    let resp = resp.with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![partition])]);
    if version < 2 {
        return resp;
    }
    let listeners = ctx
        .config
        .advertised_listeners
        .iter()
        .map(|l| {
            Listener::default()
                .with_name(StrBytes::from_string(l.name.clone()))
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(l.port)
        })
        .collect();
    resp.with_nodes(vec![Node::default()
        .with_node_id(BrokerId(node_id))
        .with_listeners(listeners)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    /// A v2 answer such as the active controller gives a forwarding node.
    fn v2_answer() -> DescribeQuorumResponse {
        let replica = |id| {
            ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_replica_directory_id(uuid::Uuid::from_u128(id as u128 + 1))
                .with_log_end_offset(7)
                .with_last_fetch_timestamp(5)
                .with_last_caught_up_timestamp(5)
        };
        let partition = PartitionData::default()
            .with_leader_id(BrokerId(1))
            .with_current_voters(vec![replica(1), replica(2)])
            .with_observers(vec![replica(4)]);
        DescribeQuorumResponse::default()
            .with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                .with_partitions(vec![partition])])
            .with_nodes(vec![Node::default()
                .with_node_id(BrokerId(1))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_static_str("10.0.0.1"))
                    .with_port(9093)])])
    }

    #[test]
    fn a_forwarded_v2_answer_encodes_at_every_version() {
        let mut buf = bytes::BytesMut::new();
        // The bug this guards: v0 and v1 clients of a cluster node had
        // their connection closed ("cannot encode DescribeQuorum v0").
        assert!(v2_answer().encode(&mut buf, 0).is_err());
        for version in 0..=2 {
            let resp = fit_version(v2_answer(), version);
            buf.clear();
            resp.encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            let voters = &resp.topics[0].partitions[0].current_voters;
            assert_eq!(voters.len(), 2, "v{version}");
            assert_eq!(voters[0].log_end_offset, 7);
            assert_eq!(resp.nodes.len(), usize::from(version >= 2));
        }
    }
}
