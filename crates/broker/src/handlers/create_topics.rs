//! CreateTopics: partitions (-1 = `num.partitions`), replication factor
//! (-1 = the default), topic configs, manual assignments, validate_only.
//! The request's topics go to the controller as one operation (committed
//! as one batch); each is answered once committed and published.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{CreateTopic, CreatedTopic, ReplicaAssignment};
use sluice_metadata::BrokerId;

use super::controller_mutation as mutation;
use crate::context::BrokerContext;
use crate::metadata::{MetadataError, MAX_PARTITIONS_PER_TOPIC};
use crate::request::RequestContext;

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
    request: &RequestContext,
    header: &RequestHeader,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = header.request_api_version;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    let mut requests = Vec::new();
    let mut pending: Vec<(usize, BTreeMap<String, String>)> = Vec::new();
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
        let count = if topic.assignments.is_empty() {
            topic.num_partitions
        } else {
            topic.assignments.len() as i32
        };
        if count > MAX_PARTITIONS_PER_TOPIC {
            results.push(failure(
                &topic.name,
                ResponseError::InvalidPartitions.code(),
                format!(
                    "Number of partitions {count} is larger than Sluice's limit of {MAX_PARTITIONS_PER_TOPIC}."
                ),
            ));
            continue;
        }
        let create = CreateTopic {
            name: name.to_string(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|a| ReplicaAssignment {
                    partition: a.partition_index,
                    replicas: a.broker_ids.iter().map(|b| BrokerId(b.0)).collect(),
                })
                .collect(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.trim().to_string())))
                .collect(),
        };
        pending.push((results.len(), configs));
        requests.push(create);
        // A placeholder, replaced by the controller's answer.
        results.push(failure(&topic.name, 0, ""));
    }
    // The controller charges each created topic's partitions to the
    // client's mutation quota (KIP-599) and answers its throttle.
    let mut throttle_ms = 0;
    if !requests.is_empty() {
        let answers = ctx
            .controller
            .create_topics_for(
                requests,
                req.validate_only,
                mutation::requester(request, header),
            )
            .await;
        match answers {
            Ok(answers) => {
                throttle_ms = answers.throttle_ms;
                for ((slot, configs), answer) in pending.into_iter().zip(answers.value) {
                    let name = results[slot].name.clone();
                    results[slot] = match answer {
                        Ok(t) => created(ctx, version, &name, &t, &configs),
                        Err(e) => failure(&name, e.kafka_error_code(), message(&e)),
                    };
                }
            }
            Err(e) => {
                for (slot, _) in pending {
                    let name = results[slot].name.clone();
                    results[slot] = failure(&name, e.kafka_error_code(), message(&e));
                }
            }
        }
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(mutation::throttle(request, throttle_ms))
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

/// The answer for a created (or, validate-only, creatable) topic.
fn created(
    ctx: &BrokerContext,
    version: i16,
    name: &TopicName,
    t: &CreatedTopic,
    configs: &BTreeMap<String, String>,
) -> CreatableTopicResult {
    let mut r = CreatableTopicResult::default()
        .with_name(name.clone())
        .with_error_code(0)
        .with_error_message(None)
        .with_topic_id(t.topic_id)
        .with_num_partitions(t.num_partitions)
        .with_replication_factor(t.replication_factor);
    if version >= 5 {
        let described = ctx.config.describe_topic(configs);
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
    r
}
