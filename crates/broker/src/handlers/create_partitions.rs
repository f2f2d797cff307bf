//! CreatePartitions: grows a topic's partition count (never shrinks it).
//! Assignments, when given (a non-null list), must cover exactly the new
//! partitions and may only name this broker.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::metadata::{validate_topic_name, MetadataError};

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let outcome: Result<(), (i16, String)> = if counts.get(name).copied().unwrap_or(0) > 1 {
            Err((
                ResponseError::InvalidRequest.code(),
                "Duplicate topic in request.".to_string(),
            ))
        } else if let Err(e) = validate_topic_name(name) {
            Err((e.kafka_error_code(), e.to_string()))
        } else if let Err(e) =
            check_assignments(ctx, name, topic.count, topic.assignments.as_deref())
        {
            Err(e)
        } else if req.validate_only {
            ctx.controller
                .validate_create_partitions(name, topic.count)
                .map(|_| ())
                .map_err(|e| (e.kafka_error_code(), message(&e)))
        } else {
            let ctx2 = ctx.clone();
            let name2 = name.to_string();
            let count = topic.count;
            match tokio::task::spawn_blocking(move || {
                ctx2.controller.create_partitions(&name2, count)
            })
            .await
            {
                Ok(r) => r
                    .map(|_| ())
                    .map_err(|e| (e.kafka_error_code(), message(&e))),
                Err(join) => Err((ResponseError::UnknownServerError.code(), join.to_string())),
            }
        };
        let r = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        results.push(match outcome {
            Ok(()) => r.with_error_code(0).with_error_message(None),
            Err((code, msg)) => r.with_error_code(code).with_error_message(Some(sb(msg))),
        });
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

/// Kafka checks the topic and count first, then that explicit assignments
/// (a non-null list) cover exactly the new partitions — here, on this broker.
fn check_assignments(
    ctx: &BrokerContext,
    name: &str,
    count: i32,
    assignments: Option<&[CreatePartitionsAssignment]>,
) -> Result<(), (i16, String)> {
    let current = ctx
        .controller
        .validate_create_partitions(name, count)
        .map_err(|e| (e.kafka_error_code(), message(&e)))?;
    let Some(assignments) = assignments else {
        return Ok(());
    };
    let added = i64::from(count) - i64::from(current.partitions);
    if assignments.len() as i64 != added {
        return Err((
            ResponseError::InvalidReplicaAssignment.code(),
            format!(
                "Increasing the number of partitions by {added} but {} assignments provided.",
                assignments.len()
            ),
        ));
    }
    if assignments
        .iter()
        .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != ctx.config.node_id)
    {
        return Err((
            ResponseError::InvalidReplicaAssignment.code(),
            format!("Assignments may only name broker {}.", ctx.config.node_id),
        ));
    }
    Ok(())
}

fn message(e: &MetadataError) -> String {
    match e {
        MetadataError::UnknownTopic(name) => format!("The topic '{name}' does not exist."),
        other => other.to_string(),
    }
}
