//! DeleteTopics by name (all versions) and by topic id (v6+). The removal is
//! durable before the response; the logs are taken offline at once.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{ControllerError, TopicRef};
use uuid::Uuid;

use super::controller_mutation as mutation;
use crate::context::BrokerContext;
use crate::metadata::{validate_topic_name, MetadataError};
use crate::request::RequestContext;

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

enum Target {
    Name(String),
    Id(Uuid),
}

pub async fn handle(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = header.request_api_version;
    let mut throttle_ms = 0;
    let targets: Vec<Target> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) if t.topic_id.is_nil() => Target::Name(n.0.to_string()),
                _ => Target::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| Target::Name(n.0.to_string()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for target in targets {
        let existing = match &target {
            Target::Name(n) => ctx.image.topic(n),
            Target::Id(id) => ctx.image.topic_by_id(*id),
        };
        let (name, id) = match &target {
            Target::Name(n) => (Some(n.clone()), existing.as_ref().map(|t| t.topic_id)),
            Target::Id(id) => (existing.as_ref().map(|t| t.name.clone()), Some(*id)),
        };
        let result = match (&target, &name) {
            // A by-name target always has its name: only an unknown id lands here.
            (_, None) => Err((
                ResponseError::UnknownTopicId.code(),
                format!("Topic id {} does not exist.", id.unwrap_or_default()),
            )),
            (_, Some(n)) => {
                if let Err(e) = validate_topic_name(n) {
                    Err((e.kafka_error_code(), e.to_string()))
                } else {
                    let target = match &target {
                        Target::Name(n) => TopicRef::Name(n.clone()),
                        Target::Id(id) => TopicRef::Id(*id),
                    };
                    // The controller charges the topic's partitions to the
                    // client's mutation quota (KIP-599).
                    let (r, ms) = ctx
                        .controller
                        .delete_topic_for(target, mutation::requester(request, header))
                        .await;
                    throttle_ms = throttle_ms.max(ms);
                    match r {
                        Ok(_) => Ok(()),
                        Err(
                            e @ MetadataError::Controller(ControllerError::UnknownTopicOrPartition(
                                _,
                            )),
                        ) => Err((
                            e.kafka_error_code(),
                            "This server does not host this topic-partition.".to_string(),
                        )),
                        Err(e) => Err((e.kafka_error_code(), e.to_string())),
                    }
                }
            }
        };
        let mut r = DeletableTopicResult::default()
            .with_name(name.map(|n| TopicName(sb(n))))
            .with_topic_id(id.unwrap_or(Uuid::nil()));
        match result {
            Ok(()) => r = r.with_error_code(0),
            Err((code, msg)) => {
                r = r.with_error_code(code);
                if version >= 5 {
                    r = r.with_error_message(Some(sb(msg)));
                }
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(mutation::throttle(request, throttle_ms))
        .with_responses(responses)
}
