//! CreatePartitions: grows a topic's partition count (never shrinks it).
//! Assignments, when given (a non-null list), must cover exactly the new
//! partitions and name registered brokers (the controller checks).

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use sluice_metadata::BrokerId;

use super::controller_mutation::{
    self as mutation, CREATE_PARTITIONS_STRICT_SINCE, THROTTLING_QUOTA_EXCEEDED,
    THROTTLING_QUOTA_EXCEEDED_MESSAGE,
};
use crate::context::BrokerContext;
use crate::metadata::{validate_topic_name, MAX_PARTITIONS_PER_TOPIC};
use crate::request::RequestContext;

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub async fn handle(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut quota = mutation::quota_for(ctx, request, header, CREATE_PARTITIONS_STRICT_SINCE);
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
        } else if topic.count > MAX_PARTITIONS_PER_TOPIC {
            Err((
                ResponseError::InvalidPartitions.code(),
                format!(
                    "Number of partitions {} is larger than Sluice's limit of {MAX_PARTITIONS_PER_TOPIC}.",
                    topic.count
                ),
            ))
        } else if !admit_growth(ctx, &mut quota, name, topic.count) {
            Err((
                THROTTLING_QUOTA_EXCEEDED,
                THROTTLING_QUOTA_EXCEEDED_MESSAGE.to_string(),
            ))
        } else {
            let assignments = topic.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
                    .collect()
            });
            ctx.controller
                .create_partitions(name, topic.count, assignments, req.validate_only)
                .await
                .map_err(|e| (e.kafka_error_code(), e.to_string()))
        };
        let r = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        results.push(match outcome {
            Ok(()) => r.with_error_code(0).with_error_message(None),
            Err((code, msg)) => r.with_error_code(code).with_error_message(Some(sb(msg))),
        });
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(mutation::throttle(ctx, request, &quota))
        .with_results(results)
}

/// The controller mutation quota counts the partitions a topic would
/// gain (none for an unknown topic or no growth: the controller refuses
/// those at no cost, as Kafka's checks come first).
fn admit_growth(
    ctx: &BrokerContext,
    quota: &mut Option<crate::quota::mutation::MutationQuota<'_>>,
    name: &str,
    count: i32,
) -> bool {
    match ctx.image.topic(name) {
        Some(t) if count > t.partitions => mutation::admit(ctx, quota, count - t.partitions),
        _ => true,
    }
}
