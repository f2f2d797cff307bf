//! DescribeProducers v0 (KIP-664; `kafka-transactions describe-producers`
//! and `find-hanging`, and the admin client's abort, which looks up the
//! producer of a hanging transaction here): per requested partition, the
//! producers its log tracks on this broker, as Kafka 4.1's
//! `KafkaApis.handleDescribeProducersRequest` and
//! `ReplicaManager.activeProducerState` answer.
//!
//! Rules (Kafka's, measured against its code):
//! - a topic name that is not a legal name: INVALID_TOPIC_EXCEPTION, one
//!   that the image does not have: UNKNOWN_TOPIC_OR_PARTITION, both for
//!   every requested partition of it, with a message;
//! - a partition with a replica online here, *leader or follower*, answers
//!   with its log's producers (Kafka reads any hosted replica's log; the
//!   admin client's `--broker-id` asks a follower on purpose);
//! - a partition the image has but this broker hosts no replica of:
//!   NOT_LEADER_OR_FOLLOWER; one the image does not have:
//!   UNKNOWN_TOPIC_OR_PARTITION; a log that cannot be read (its directory
//!   offline): KAFKA_STORAGE_ERROR.
//!
//! Each producer is reported with its epoch, last sequence, last timestamp,
//! the coordinator epoch of its last marker (-1 before any) and the first
//! offset of its open transaction (-1 without one). The answer is in the
//! request's order; producers are ordered by id. The copies are taken on
//! the blocking pool (the log's state lock is shared with appends).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId as WireProducerId,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::MetadataImage;
use sluice_storage::producer_state::ProducerStateEntry;
use sluice_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::error::storage_error_code;
use crate::metadata::{validate_topic_name, MetadataError};
use crate::partition::{Partition, ReplicaManager};

/// Kafka's message for UNKNOWN_TOPIC_OR_PARTITION (`Errors.message()`),
/// which its topic-level answer carries.
const UNKNOWN_TOPIC_MESSAGE: &str = "This server does not host this topic-partition.";

/// Where one requested partition's answer comes from.
enum Lookup {
    /// A replica online here: read its producers.
    Replica(Arc<Partition>),
    /// An error code, with a message for topic-level errors.
    Failed(i16, Option<String>),
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = ctx.image.image();
    let lookups: Vec<(String, Vec<(i32, Lookup)>)> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let topic_error = topic_error(&image, name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let lookup = match &topic_error {
                        Some((code, msg)) => Lookup::Failed(*code, Some(msg.clone())),
                        None => lookup(&image, &ctx.replicas, name, p),
                    };
                    (p, lookup)
                })
                .collect();
            (name.to_string(), partitions)
        })
        .collect();
    let topics = sluice_runtime::spawn_blocking(move || {
        lookups
            .into_iter()
            .map(|(name, partitions)| {
                TopicResponse::default()
                    .with_name(StrBytes::from_string(name).into())
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, lookup)| answer(index, lookup))
                            .collect(),
                    )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "describe producers task failed");
        Vec::new()
    });
    DescribeProducersResponse::default().with_topics(topics)
}

/// The error every partition of `topic` gets, if any (Kafka's checks
/// before it looks at partitions).
fn topic_error(image: &MetadataImage, topic: &str) -> Option<(i16, String)> {
    if let Err(e) = validate_topic_name(topic) {
        let reason = match &e {
            MetadataError::InvalidTopic { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        return Some((e.kafka_error_code(), reason));
    }
    image.topic(topic).is_none().then(|| {
        (
            ResponseError::UnknownTopicOrPartition.code(),
            UNKNOWN_TOPIC_MESSAGE.to_string(),
        )
    })
}

/// Kafka's `getPartitionOrError` for a partition of a known topic: the
/// replica online here (leader or follower), else why not.
fn lookup(image: &MetadataImage, replicas: &ReplicaManager, topic: &str, partition: i32) -> Lookup {
    if let Some(p) = replicas.get_partition(&TopicPartition::new(topic, partition)) {
        return Lookup::Replica(p);
    }
    let known = image
        .topic(topic)
        .is_some_and(|t| t.partition(partition).is_some());
    let code = if known {
        ResponseError::NotLeaderOrFollower
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    Lookup::Failed(code.code(), None)
}

/// One partition's answer (on the blocking pool: takes the log's lock).
fn answer(index: i32, lookup: Lookup) -> PartitionResponse {
    let resp = PartitionResponse::default().with_partition_index(index);
    match lookup {
        Lookup::Failed(code, message) => resp
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string)),
        Lookup::Replica(p) => match p.log().active_producers() {
            Ok(producers) => resp.with_active_producers(producers.iter().map(wire).collect()),
            Err(e) => resp.with_error_code(storage_error_code(&e)),
        },
    }
}

/// A producer as DescribeProducers reports it (Kafka's field names).
fn wire(e: &ProducerStateEntry) -> ProducerState {
    ProducerState::default()
        .with_producer_id(WireProducerId(e.producer_id.0))
        .with_producer_epoch(i32::from(e.producer_epoch.0))
        .with_last_sequence(e.last_seq())
        .with_last_timestamp(e.last_timestamp.0)
        .with_coordinator_epoch(e.coordinator_epoch)
        .with_current_txn_start_offset(e.current_txn_first_offset.map_or(-1, |o| o.0))
}

#[cfg(test)]
mod tests {

    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::TopicName;
    use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, ProducerId, Timestamp};

    use super::*;
    use crate::metadata::testing::{node_with_topic, Node};

    /// Topic `t` with one partition, led by this broker (node 1).
    fn node() -> Node {
        node_with_topic("t")
    }

    fn request(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
        DescribeProducersRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    TopicRequest::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partition_indexes(partitions.to_vec())
                })
                .collect(),
        )
    }

    /// (topic, partition, error code, message, producers) per answer.
    type Row = (String, i32, i16, Option<String>, Vec<ProducerState>);

    fn describe(node: &Node, topics: &[(&str, &[i32])]) -> Vec<Row> {
        let header = RequestHeader::default()
            .with_request_api_key(61)
            .with_request_api_version(0);
        let resp = node.block_on(handle(node, &header, request(topics)));
        resp.topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| {
                    (
                        name.clone(),
                        p.partition_index,
                        p.error_code,
                        p.error_message.map(|m| m.to_string()),
                        p.active_producers,
                    )
                })
            })
            .collect()
    }

    /// A transactional batch of producer 7 (epoch 3, sequences 0..=1) at
    /// timestamp 42, appended as leader: a transaction open at offset 0.
    fn open_transaction(node: &Node) {
        let mut b = BatchBuilder::new(CompressionType::None)
            .producer(ProducerId(7), ProducerEpoch(3), 0)
            .transactional(true);
        for v in [&b"a"[..], b"b"] {
            b.append(Timestamp(42), None, Some(v), &[]).unwrap();
        }
        let p = node
            .replicas
            .get_partition(&TopicPartition::new("t", 0))
            .unwrap();
        p.log()
            .append_as_leader(&mut b.build().unwrap(), p.leader_epoch())
            .unwrap();
    }

    fn open_producer() -> ProducerState {
        ProducerState::default()
            .with_producer_id(WireProducerId(7))
            .with_producer_epoch(3)
            .with_last_sequence(1)
            .with_last_timestamp(42)
            .with_coordinator_epoch(-1)
            .with_current_txn_start_offset(0)
    }

    #[test]
    fn the_leader_reports_its_producers_and_unknown_names_fail() {
        let node = node();
        open_transaction(&node);
        let long = "x".repeat(250);
        let rows = describe(&node, &[("t", &[0, 5]), ("nope", &[0, 1]), (&long, &[0])]);
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let hosted = Some(UNKNOWN_TOPIC_MESSAGE.to_string());
        assert_eq!(rows[0], ("t".into(), 0, 0, None, vec![open_producer()]));
        assert_eq!(rows[1], ("t".into(), 5, unknown, None, vec![]));
        assert_eq!(rows[2], ("nope".into(), 0, unknown, hosted.clone(), vec![]));
        assert_eq!(rows[3], ("nope".into(), 1, unknown, hosted, vec![]));
        assert_eq!(rows[4].2, ResponseError::InvalidTopicException.code());
        assert!(rows[4].3.as_deref().is_some_and(|m| m.contains("249")));
        assert_eq!(rows.len(), 5);
    }

    /// As Kafka: a follower replica answers from its own log; a broker
    /// without a replica answers NOT_LEADER_OR_FOLLOWER.
    #[test]
    fn a_follower_answers_and_a_broker_without_a_replica_refuses() {
        let node = node();
        open_transaction(&node);
        node.block_on(node.change_leader("t", 2, &[1, 2]));
        let p = node
            .replicas
            .get_partition(&TopicPartition::new("t", 0))
            .unwrap();
        assert!(!p.is_leader(), "a follower now");
        assert_eq!(
            describe(&node, &[("t", &[0])]),
            vec![("t".into(), 0, 0, None, vec![open_producer()])]
        );

        node.block_on(node.change_leader("t", 2, &[2]));
        assert!(node
            .replicas
            .get_partition(&TopicPartition::new("t", 0))
            .is_none());
        assert_eq!(
            describe(&node, &[("t", &[0])]),
            vec![(
                "t".into(),
                0,
                ResponseError::NotLeaderOrFollower.code(),
                None,
                vec![]
            )]
        );
    }
}
