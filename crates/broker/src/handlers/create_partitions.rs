//! CreatePartitions: grows a topic's partition count (never shrinks it).
//! Assignments, when given (a non-null list), must cover exactly the new
//! partitions and name registered brokers (the controller checks).

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use sluice_controller::CreatePartitions;
use sluice_metadata::BrokerId;

use super::controller_mutation as mutation;
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
    let mut throttle_ms = 0;
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
        } else {
            // The controller charges the new partitions to the client's
            // mutation quota (KIP-599).
            let assignments = topic.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
                    .collect()
            });
            let grow = CreatePartitions {
                topic: name.to_string(),
                count: topic.count,
                assignments,
            };
            let (r, ms) = ctx
                .controller
                .create_partitions_for(
                    grow,
                    req.validate_only,
                    mutation::requester(request, header),
                )
                .await;
            throttle_ms = throttle_ms.max(ms);
            r.map_err(|e| (e.kafka_error_code(), e.to_string()))
        };
        let r = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        results.push(match outcome {
            Ok(()) => r.with_error_code(0).with_error_message(None),
            Err((code, msg)) => r.with_error_code(code).with_error_message(Some(sb(msg))),
        });
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(mutation::throttle(request, throttle_ms))
        .with_results(results)
}
