//! OffsetForLeaderEpoch (v2–v4, the versions Kafka 4.1.2 accepts): for
//! each partition, the largest leader epoch `<=` the asked one that the
//! leader's log knows and the offset where it ends
//! (`Log::end_offset_for_epoch`, Kafka's `LeaderEpochFileCache.endOffsetFor`);
//! -1/-1 (UNDEFINED) when the log knows no such epoch. Followers use it
//! to find where their log diverges from the leader's (KIP-101), clients
//! to detect truncation after a leader change (KIP-320).
//!
//! Served by the partition's leader only, with Kafka's order of checks
//! (`Partition.getLocalLog`): a partition the image does not have is
//! UNKNOWN_TOPIC_OR_PARTITION, one not hosted here NOT_LEADER_OR_FOLLOWER;
//! then CurrentLeaderEpoch (-1 skips it) older than the partition's is
//! FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH; then a replica that is
//! not the leader is NOT_LEADER_OR_FOLLOWER.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};
use sluice_metadata::{BrokerId, MetadataImage};
use sluice_record::LeaderEpoch;
use sluice_storage::TopicPartition;

use super::leadership::check_leader_epoch;
use crate::context::BrokerContext;
use crate::partition::ReplicaManager;

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = ctx.image.image();
    let me = ctx.image.node();
    let replicas = ctx.replicas.clone();
    let queries: Vec<(String, i32, i32, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.topic.0.to_string(),
                    p.partition,
                    p.current_leader_epoch,
                    p.leader_epoch,
                )
            })
        })
        .collect();
    // The log's state lock may be held across an append's write: look up
    // off the network threads.
    let answers = sluice_runtime::spawn_blocking(move || {
        queries
            .into_iter()
            .map(|(topic, partition, current, epoch)| {
                end_offset(&image, &replicas, me, &topic, partition, current, epoch)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "offset for leader epoch task failed");
        Vec::new()
    });
    let mut answers = answers.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match answers.next() {
                        Some(Ok(Some((epoch, end)))) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Some(Ok(None)) => answer,
                        Some(Err(code)) => answer.with_error_code(code),
                        None => answer.with_error_code(ResponseError::UnknownServerError.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}

/// One partition's answer: `(epoch, end offset)`, `None` for UNDEFINED, or
/// the error code.
fn end_offset(
    image: &MetadataImage,
    replicas: &ReplicaManager,
    me: BrokerId,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<Option<(i32, i64)>, i16> {
    let reg = image
        .topic(topic)
        .and_then(|t| t.partition(partition))
        .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let local = replicas
        .get_partition(&TopicPartition::new(topic, partition))
        .ok_or(not_leader)?;
    check_leader_epoch(local.leader_epoch().0, current_leader_epoch)?;
    if reg.leader != me || !local.is_leader() {
        return Err(not_leader);
    }
    Ok(local
        .log()
        .end_offset_for_epoch(LeaderEpoch(leader_epoch))
        .map(|(e, o)| (e.0, o.0)))
}

#[cfg(test)]
mod tests {

    use bytes::Bytes;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use sluice_record::{BatchBuilder, CompressionType, Timestamp};

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

    async fn produce(node: &Node, records: usize) {
        let mut b = BatchBuilder::new(CompressionType::None);
        for i in 0..records {
            b.append(Timestamp(1 + i as i64), None, Some(&b"v"[..]), &[])
                .unwrap();
        }
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
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }

    /// `(error, epoch, end offset)` for `topic`-0.
    async fn ask(node: &Node, topic: &'static str, current: i32, epoch: i32) -> (i16, i32, i64) {
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])]);
        let r = handle(node, &header(23, 4), req).await;
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].topic.0.as_str(), topic);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.partition, 0);
        (p.error_code, p.leader_epoch, p.end_offset)
    }

    #[test]
    fn the_leader_answers_from_its_epoch_cache() {
        let node = node();
        node.block_on(answers(&node));
    }

    async fn answers(node: &Node) {
        // Empty, but the leader recorded where its epoch starts when it
        // took the lead (Kafka's maybeAssignEpochStartOffset).
        assert_eq!(ask(node, "t", -1, 0).await, (0, 0, 0), "empty log");
        produce(node, 3).await;
        assert_eq!(ask(node, "t", 0, 0).await, (0, 0, 3), "latest: the LEO");
        assert_eq!(ask(node, "t", -1, 4).await, (0, -1, -1), "newer: UNDEFINED");
        // Re-elected: epoch 1 starts at offset 3.
        node.change_leader("t", 1, &[1]).await;
        produce(node, 2).await;
        assert_eq!(ask(node, "t", 1, 0).await, (0, 0, 3));
        assert_eq!(ask(node, "t", 1, 1).await, (0, 1, 5));
        assert_eq!(ask(node, "t", -1, 1).await, (0, 1, 5));
        let fenced = ResponseError::FencedLeaderEpoch.code();
        let unknown_epoch = ResponseError::UnknownLeaderEpoch.code();
        assert_eq!(ask(node, "t", 0, 1).await.0, fenced);
        assert_eq!(ask(node, "t", 2, 1).await.0, unknown_epoch);
        assert_eq!(
            ask(node, "nope", -1, 0).await.0,
            ResponseError::UnknownTopicOrPartition.code()
        );
        // Another broker leads: a follower does not answer, but a stale
        // epoch is fenced first, as Kafka's getLocalLog checks.
        node.change_leader("t", 2, &[1, 2]).await;
        let not_leader = ResponseError::NotLeaderOrFollower.code();
        assert_eq!(ask(node, "t", -1, 1).await, (not_leader, -1, -1));
        assert_eq!(ask(node, "t", 2, 1).await.0, not_leader);
        assert_eq!(ask(node, "t", 1, 1).await.0, fenced);
    }
}
