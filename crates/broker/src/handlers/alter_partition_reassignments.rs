//! AlterPartitionReassignments (KIP-455) through the controller, on one
//! node as in a cluster (a one-node broker is its own controller and only
//! broker, so every valid target there is the broker alone, which changes
//! nothing). The controller checks each partition with Kafka's codes and
//! messages (UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT for an
//! empty or duplicated list or an unregistered broker,
//! NO_REASSIGNMENT_IN_PROGRESS for a cancel with none in progress,
//! INVALID_REPLICATION_FACTOR with KIP-860's flag off) and commits the
//! changes; the answer waits until this broker published them. A failure
//! of the whole call (no controller, a failed commit) is the top-level
//! error.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{ControllerError, ReassignPartition};
use sluice_metadata::BrokerId;

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // v0 has no flag: replication factor changes are allowed.
    let allow_rf_change = header.request_api_version < 1 || req.allow_replication_factor_change;
    let partitions: Vec<ReassignPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| ReassignPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                replicas: p
                    .replicas
                    .as_ref()
                    .map(|rs| rs.iter().map(|b| BrokerId(b.0)).collect()),
            })
        })
        .collect();
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_allow_replication_factor_change(allow_rf_change);
    let results = match ctx
        .controller
        .alter_partition_reassignments(partitions, allow_rf_change)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return resp
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
        }
    };
    let mut answered = results.into_iter();
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = answered.next().map(|a| a.result).unwrap_or_else(|| {
                        Err(ControllerError::Internal(
                            "no answer for the partition".into(),
                        ))
                    });
                    let (code, mut message) = sluice_transport::item_error(&result);
                    if matches!(result, Err(ControllerError::NoReassignmentInProgress)) {
                        // Kafka leaves out a message that is its error's own.
                        message = None;
                    }
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
    resp.with_error_code(0)
        .with_error_message(None)
        .with_responses(responses)
}
