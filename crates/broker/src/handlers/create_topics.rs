//! CreateTopics: partitions (-1 = `num.partitions`), replication factor 1 or
//! -1, topic configs, manual assignments naming this broker, validate_only.
//! Each topic is created durably before the response is sent.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::context::BrokerContext;
use crate::metadata::MetadataError;

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn failure(name: &TopicName, code: i16, message: impl Into<String>) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(name.clone())
        .with_error_code(code)
        .with_error_message(Some(sb(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_topic_config_error_code(0)
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = header.request_api_version;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        if counts.get(name).copied().unwrap_or(0) > 1 {
            // Kafka answers a duplicated name once.
            if results
                .iter()
                .any(|r: &CreatableTopicResult| r.name.0.as_str() == name)
            {
                continue;
            }
            results.push(failure(
                &topic.name,
                ResponseError::InvalidRequest.code(),
                format!("Found multiple entries for topic {name} in the request."),
            ));
            continue;
        }
        // Topic configs: a null value is invalid.
        let mut configs = BTreeMap::new();
        let mut config_error = None;
        for c in &topic.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => {
                    config_error = Some(format!(
                        "Null value not supported for topic configs: {}",
                        &*c.name
                    ))
                }
            }
        }
        if let Some(msg) = config_error {
            results.push(failure(
                &topic.name,
                ResponseError::InvalidConfig.code(),
                msg,
            ));
            continue;
        }
        // Manual assignments: only this broker can hold replicas.
        let mut partitions = topic.num_partitions;
        let mut replication_factor = topic.replication_factor;
        if !topic.assignments.is_empty() {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                results.push(failure(
                    &topic.name,
                    ResponseError::InvalidRequest.code(),
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                ));
                continue;
            }
            let mut ok = true;
            for (i, a) in topic.assignments.iter().enumerate() {
                let only_us = a.broker_ids.len() == 1 && a.broker_ids[0].0 == ctx.config.node_id;
                if a.partition_index != i as i32 || !only_us {
                    ok = false;
                }
            }
            if !ok {
                results.push(failure(
                    &topic.name,
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!(
                        "Replica assignments must place partitions 0..n-1 on broker {} only.",
                        ctx.config.node_id
                    ),
                ));
                continue;
            }
            partitions = topic.assignments.len() as i32;
            replication_factor = 1;
        }

        let outcome = if req.validate_only {
            ctx.controller
                .validate_create(name, partitions, replication_factor, &configs)
                .map(|p| (p, Uuid::nil()))
        } else {
            let ctx2 = ctx.clone();
            let name2 = name.to_string();
            let configs2 = configs.clone();
            match tokio::task::spawn_blocking(move || {
                ctx2.controller
                    .create_topic(&name2, partitions, replication_factor, configs2)
            })
            .await
            {
                Ok(r) => r.map(|t| (t.partitions, t.topic_id)),
                Err(join) => {
                    tracing::error!(error = %join, "create topic task failed");
                    results.push(failure(
                        &topic.name,
                        ResponseError::UnknownServerError.code(),
                        "internal error",
                    ));
                    continue;
                }
            }
        };
        match outcome {
            Ok((partitions, topic_id)) => {
                let mut r = CreatableTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_error_code(0)
                    .with_error_message(None)
                    .with_topic_id(topic_id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if version >= 5 {
                    let described = ctx.config.describe_topic(&configs);
                    r = r.with_configs(Some(
                        described
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(sb(e.name))
                                    .with_value(e.value.map(sb))
                                    .with_read_only(e.read_only)
                                    .with_config_source(e.source.id())
                                    .with_is_sensitive(e.sensitive)
                            })
                            .collect(),
                    ));
                }
                results.push(r);
            }
            Err(e) => results.push(failure(&topic.name, e.kafka_error_code(), message(&e))),
        }
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(results)
}

/// Kafka's wording for the common cases.
fn message(e: &MetadataError) -> String {
    match e {
        MetadataError::TopicAlreadyExists(name) => format!("Topic '{name}' already exists."),
        MetadataError::InvalidTopic { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
