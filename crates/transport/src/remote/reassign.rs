//! AlterPartitionReassignments and ListPartitionReassignments for
//! [`RemoteController`](super::RemoteController): the domain request as
//! Kafka's v1 (a Sluice controller serves v0-1) and
//! the answer back. Partitions that follow each other in one topic become
//! one wire topic; the answer must name the same topics and partitions in
//! the same order, else it is refused as a controller bug
//! ([`ControllerError::Internal`]).

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{
    ControllerError, OngoingReassignment, ReassignPartition, ReassignmentResult,
};
use sluice_metadata::BrokerId;
use sluice_protocol::kafka_protocol;

use crate::codes::{controller_error_from_code, ErrorContext};

fn bad(what: &str, why: String) -> ControllerError {
    ControllerError::Internal(format!("{what}: {why}"))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

pub(super) fn alter_request(
    partitions: &[ReassignPartition],
    allow_rf_change: bool,
    timeout_ms: i32,
) -> AlterPartitionReassignmentsRequest {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for p in partitions {
        let wire = ReassignablePartition::default()
            .with_partition_index(p.partition)
            .with_replicas(
                p.replicas
                    .as_ref()
                    .map(|rs| rs.iter().map(|b| b.0.into()).collect()),
            );
        match topics.last_mut() {
            Some(t) if *t.name.0 == *p.topic => t.partitions.push(wire),
            _ => topics.push(
                ReassignableTopic::default()
                    .with_name(topic_name(&p.topic))
                    .with_partitions(vec![wire]),
            ),
        }
    }
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(topics)
}

pub(super) fn alter_reply(
    asked: &[ReassignPartition],
    resp: AlterPartitionReassignmentsResponse,
) -> Result<Vec<ReassignmentResult>, ControllerError> {
    const WHAT: &str = "AlterPartitionReassignments";
    if let Some(e) = controller_error_from_code(
        resp.error_code,
        resp.error_message.as_deref(),
        &ErrorContext::default(),
    ) {
        return Err(e);
    }
    let answered: Vec<_> = resp
        .responses
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| (name.clone(), p))
        })
        .collect();
    if answered.len() != asked.len() {
        return Err(bad(
            WHAT,
            format!(
                "the controller answered {} partitions for {}",
                answered.len(),
                asked.len()
            ),
        ));
    }
    asked
        .iter()
        .zip(answered)
        .map(|(a, (topic, p))| {
            if (topic.as_str(), p.partition_index) != (a.topic.as_str(), a.partition) {
                return Err(bad(
                    WHAT,
                    format!(
                        "the controller answered {topic}-{} where {}-{} was asked",
                        p.partition_index, a.topic, a.partition
                    ),
                ));
            }
            let ctx = ErrorContext {
                topic: Some(&a.topic),
                ..ErrorContext::default()
            };
            let result =
                match controller_error_from_code(p.error_code, p.error_message.as_deref(), &ctx) {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            Ok(ReassignmentResult {
                topic: topic.clone(),
                partition: p.partition_index,
                result,
            })
        })
        .collect()
}

pub(super) fn list_request(
    topics: Option<&[(String, Vec<i32>)]>,
    timeout_ms: i32,
) -> ListPartitionReassignmentsRequest {
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(name, ps)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(name))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        }))
}

pub(super) fn list_reply(
    resp: ListPartitionReassignmentsResponse,
) -> Result<Vec<OngoingReassignment>, ControllerError> {
    if let Some(e) = controller_error_from_code(
        resp.error_code,
        resp.error_message.as_deref(),
        &ErrorContext::default(),
    ) {
        return Err(e);
    }
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| BrokerId(b.0)).collect();
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| OngoingReassignment {
                topic: name.clone(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect())
}
