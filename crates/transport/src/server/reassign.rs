//! AlterPartitionReassignments (v0-1) and ListPartitionReassignments (v0),
//! controller APIs in KRaft: wire types to the controller's domain types
//! and back. Answers keep the request's topics and partitions in order; a
//! whole-request refusal (NOT_CONTROLLER, a failed commit) is the top
//! level error with its message and no topics, as Kafka's controller
//! answers.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use sluice_controller::{ControllerError, QuorumController, ReassignPartition};
use sluice_metadata::BrokerId;
use sluice_protocol::kafka_protocol;

use super::{check_active, log_refusal, str_bytes};
use crate::codes::{controller_error_code, item_error};

fn ids(v: &[BrokerId]) -> Vec<kafka_protocol::messages::BrokerId> {
    v.iter().map(|b| b.0.into()).collect()
}

pub(super) async fn alter(
    c: &QuorumController,
    r: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let partitions: Vec<ReassignPartition> = r
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
    // v0 has no field: replication factor changes are allowed.
    let allow_rf_change = version < 1 || r.allow_replication_factor_change;
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    let result = match check_active(c) {
        Ok(()) => {
            c.alter_partition_reassignments(partitions, allow_rf_change)
                .await
        }
        Err(e) => Err(e),
    };
    let results = match result {
        Ok(results) => results,
        Err(e) => {
            log_refusal("AlterPartitionReassignments", &e);
            return resp
                .with_error_code(controller_error_code(&e))
                .with_error_message(Some(str_bytes(e.to_string())));
        }
    };
    let mut answered = results.into_iter();
    let responses = r
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
                    let (code, mut message) = item_error(&result);
                    if matches!(result, Err(ControllerError::NoReassignmentInProgress)) {
                        // Kafka leaves out a message that is its error's own.
                        message = None;
                    }
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    resp.with_responses(responses)
}

pub(super) async fn list(
    c: &QuorumController,
    r: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let topics = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let result = match check_active(c) {
        Ok(()) => c.list_partition_reassignments(topics).await,
        Err(e) => Err(e),
    };
    let ongoing = match result {
        Ok(o) => o,
        Err(e) => {
            log_refusal("ListPartitionReassignments", &e);
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(controller_error_code(&e))
                .with_error_message(Some(str_bytes(e.to_string())));
        }
    };
    let mut out: Vec<OngoingTopicReassignment> = Vec::new();
    for o in ongoing {
        let p = OngoingPartitionReassignment::default()
            .with_partition_index(o.partition)
            .with_replicas(ids(&o.replicas))
            .with_adding_replicas(ids(&o.adding))
            .with_removing_replicas(ids(&o.removing));
        match out.last_mut() {
            Some(t) if *t.name.0 == *o.topic => t.partitions.push(p),
            _ => out.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(o.topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(out)
}
