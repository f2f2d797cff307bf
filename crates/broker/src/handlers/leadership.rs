//! Which partitions this broker serves, from the metadata image: the
//! leader and leader epoch of a partition come from its
//! `PartitionRegistration`, never from the node id. Produce, Fetch and
//! ListOffsets resolve their partitions here.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use sluice_metadata::{BrokerId, MetadataImage};
use sluice_storage::TopicPartition;

use crate::partition::{Partition, ReplicaManager};

/// Why a partition is not served here, with the leader a client should
/// go to (KIP-951's CurrentLeader) when the image knows one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotServed {
    pub code: i16,
    /// `(leader id, leader epoch)`; `None` for an unknown partition.
    pub leader: Option<(i32, i32)>,
}

impl NotServed {
    pub fn code(code: i16) -> Self {
        NotServed { code, leader: None }
    }
}

/// The online partition `topic`-`partition` if this broker leads it in
/// `image`; otherwise the error the client gets: UNKNOWN_TOPIC_OR_PARTITION
/// for a partition the image does not have (or one this broker leads whose
/// log is offline), NOT_LEADER_OR_FOLLOWER with the current leader for one
/// another broker leads (or no broker does).
pub fn leader_partition(
    image: &MetadataImage,
    replicas: &ReplicaManager,
    me: BrokerId,
    topic: &str,
    partition: i32,
) -> Result<Arc<Partition>, NotServed> {
    let unknown = NotServed::code(ResponseError::UnknownTopicOrPartition.code());
    let reg = image
        .topic(topic)
        .and_then(|t| t.partition(partition))
        .ok_or(unknown)?;
    let not_leader = NotServed {
        code: ResponseError::NotLeaderOrFollower.code(),
        leader: Some((reg.leader.0, reg.leader_epoch.0)),
    };
    if reg.leader != me {
        return Err(not_leader);
    }
    let online = replicas
        .get_partition(&TopicPartition::new(topic, partition))
        .ok_or(unknown)?;
    // The partitions publisher runs before the image is published, so the
    // partition's role is at least as new as `image`.
    if !online.is_leader() {
        return Err(not_leader);
    }
    Ok(online)
}

/// A partition a consumer's Fetch v11+ may read here (KIP-392): one this
/// broker leads ([`leader_partition`]), or one it follows: a replica the
/// image assigns to this broker and that is online here, read up to its
/// own high watermark. Returns the partition and its leader in `image`.
/// A broker that is not (or no longer) a replica answers as
/// [`leader_partition`] does: NOT_LEADER_OR_FOLLOWER with the leader.
pub fn replica_partition(
    image: &MetadataImage,
    replicas: &ReplicaManager,
    me: BrokerId,
    topic: &str,
    partition: i32,
) -> Result<(Arc<Partition>, BrokerId), NotServed> {
    let refused = match leader_partition(image, replicas, me, topic, partition) {
        Ok(p) => return Ok((p, me)),
        Err(ns) if ns.code == ResponseError::NotLeaderOrFollower.code() => ns,
        Err(ns) => return Err(ns),
    };
    let reg = image
        .topic(topic)
        .and_then(|t| t.partition(partition))
        .ok_or(refused)?;
    if !reg.replicas.contains(&me) {
        return Err(refused);
    }
    let online = replicas
        .get_partition(&TopicPartition::new(topic, partition))
        .ok_or(refused)?;
    Ok((online, reg.leader))
}

/// Kafka's leader-epoch fencing of a request's `current_leader_epoch`
/// against the partition's: -1 (not given) or equal passes, older is
/// FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
pub fn check_leader_epoch(partition_epoch: i32, current_leader_epoch: i32) -> Result<(), i16> {
    if current_leader_epoch < 0 || current_leader_epoch == partition_epoch {
        Ok(())
    } else if current_leader_epoch < partition_epoch {
        Err(ResponseError::FencedLeaderEpoch.code())
    } else {
        Err(ResponseError::UnknownLeaderEpoch.code())
    }
}

/// The host and port of `broker`'s listener named like this broker's first
/// advertised listener (`None` if it is not registered there).
pub fn endpoint(image: &MetadataImage, broker: i32, listener: &str) -> Option<(String, u16)> {
    let reg = image.broker(BrokerId(broker))?;
    reg.listeners
        .iter()
        .find(|l| l.name == listener)
        .or_else(|| reg.listeners.first())
        .map(|l| (l.host.clone(), l.port))
}

#[cfg(test)]
mod tests {

    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        FetchRequest, MetadataRequest, ProduceRequest, RequestHeader, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use sluice_record::{BatchBuilder, CompressionType, LeaderEpoch, Offset, Timestamp};

    use super::*;
    use crate::handlers::Response;
    use crate::metadata::testing::{node_with_topic, Node};

    /// Topic `t` with one partition, led by this broker (node 1).
    fn node() -> Node {
        node_with_topic("t")
    }

    fn header(api_key: i16, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
    }

    async fn produce(node: &Node) -> (i16, i32, i32, i64) {
        let mut b = BatchBuilder::new(CompressionType::None);
        b.append(Timestamp(1), None, Some(&b"v"[..]), &[]).unwrap();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(b.build().unwrap())))])]);
        let Response::Message(ResponseKind::Produce(r)) =
            crate::handlers::produce::handle(node, &header(0, 11), req).await
        else {
            panic!("not a produce response")
        };
        let p = &r.responses[0].partition_responses[0];
        (
            p.error_code,
            p.current_leader.leader_id.0,
            p.current_leader.leader_epoch,
            p.base_offset,
        )
    }

    async fn fetch(node: &Node, current_leader_epoch: i32) -> (i16, i32, i32) {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(0)
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_partition_max_bytes(1 << 20)])]);
        // v10: before KIP-392's v11, consumers read from leaders only.
        let plan = crate::handlers::fetch::handle(node, &header(1, 10), req).await;
        let p = &plan.response.responses[0].partitions[0];
        (
            p.error_code,
            p.current_leader.leader_id.0,
            p.current_leader.leader_epoch,
        )
    }

    async fn metadata_leader(node: &Node) -> (i32, i32, Vec<i32>) {
        let resp = crate::handlers::metadata::handle(
            node,
            &header(3, 12),
            MetadataRequest::default().with_topics(None),
        )
        .await;
        let p = &resp.topics[0].partitions[0];
        (
            p.leader_id.0,
            p.leader_epoch,
            p.replica_nodes.iter().map(|b| b.0).collect(),
        )
    }

    #[test]
    fn leaders_and_epochs_come_from_the_image() {
        let node = node();
        node.block_on(leaders_and_epochs(&node));
    }

    async fn leaders_and_epochs(node: &Node) {
        assert_eq!(metadata_leader(node).await, (1, 0, vec![1]));
        assert_eq!(produce(node).await, (0, -1, -1, 0));

        // Re-elected (same leader): a new epoch, stamped on appends; a
        // client still on the old epoch is fenced.
        node.change_leader("t", 1, &[1]).await;
        assert_eq!(metadata_leader(node).await, (1, 1, vec![1]));
        assert_eq!(produce(node).await, (0, -1, -1, 1));
        let log = node.logs.get_log(&TopicPartition::new("t", 0)).unwrap();
        let stored = log.read_to_vec(Offset(1), 1 << 20).unwrap();
        // partitionLeaderEpoch: bytes 12..16 of the batch header.
        assert_eq!(i32::from_be_bytes(stored[12..16].try_into().unwrap()), 1);
        assert_eq!(fetch(node, 0).await.0, 74, "FENCED_LEADER_EPOCH");
        assert_eq!(fetch(node, 1).await.0, 0);
        assert_eq!(fetch(node, 2).await.0, 75, "UNKNOWN_LEADER_EPOCH");

        // Another broker leads now: produce and fetch are refused with the
        // new leader in CurrentLeader, and the log stays as it was.
        node.change_leader("t", 2, &[1, 2]).await;
        assert_eq!(metadata_leader(node).await, (2, 2, vec![1, 2]));
        assert_eq!(produce(node).await, (6, 2, 2, -1));
        assert_eq!(fetch(node, -1).await, (6, 2, 2));
        assert_eq!(log.log_end_offset(), Offset(2));
        let p = node
            .replicas
            .get_partition(&TopicPartition::new("t", 0))
            .unwrap();
        assert!(!p.is_leader(), "a follower now");
        assert_eq!(p.leader_epoch(), LeaderEpoch(2));
    }
}
