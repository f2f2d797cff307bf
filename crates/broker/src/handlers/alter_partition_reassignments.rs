//! AlterPartitionReassignments on a one-node cluster. The only valid
//! assignment of a partition is this broker alone, which is where every
//! replica already is, so such a reassignment completes at once (no data
//! moves) and answers NONE. Everything else is refused with Kafka 4.1.2's
//! codes and messages: an empty or duplicated replica list or another broker
//! id (INVALID_REPLICA_ASSIGNMENT), an unknown topic or partition
//! (UNKNOWN_TOPIC_OR_PARTITION), and a cancellation (null replicas), since
//! no reassignment is ever in progress (NO_REASSIGNMENT_IN_PROGRESS).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

/// Kafka's verdict on one partition's new replica list.
fn check(
    ctx: &BrokerContext,
    topic: &str,
    partition: i32,
    replicas: Option<&[BrokerId]>,
) -> (i16, Option<String>) {
    let Some(meta) = ctx.image.topic(topic) else {
        return (
            ResponseError::UnknownTopicOrPartition.code(),
            Some(format!("Unable to find a topic named {topic}.")),
        );
    };
    if partition < 0 || partition >= meta.partitions {
        return (
            ResponseError::UnknownTopicOrPartition.code(),
            Some(format!("Unable to find partition {topic}:{partition}.")),
        );
    }
    let Some(replicas) = replicas else {
        return (ResponseError::NoReassignmentInProgress.code(), None);
    };
    if replicas.is_empty() {
        return (
            ResponseError::InvalidReplicaAssignment.code(),
            Some("The manual partition assignment includes an empty replica list.".into()),
        );
    }
    for (i, b) in replicas.iter().enumerate() {
        if replicas[..i].contains(b) {
            return (
                ResponseError::InvalidReplicaAssignment.code(),
                Some(format!(
                    "The manual partition assignment includes the broker {} more than once.",
                    b.0
                )),
            );
        }
    }
    if let Some(b) = replicas.iter().find(|b| b.0 != ctx.config.node_id) {
        return (
            ResponseError::InvalidReplicaAssignment.code(),
            Some(format!(
                "The manual partition assignment includes broker {}, but no such broker is registered.",
                b.0
            )),
        );
    }
    (0, None)
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let (code, message) =
                        check(ctx, &t.name.0, p.partition_index, p.replicas.as_deref());
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_error_code(0)
        .with_error_message(None)
        .with_responses(responses)
}
