//! IncrementalAlterConfigs: SET / DELETE / APPEND / SUBTRACT on a topic's
//! config overrides (APPEND and SUBTRACT only for list-typed keys).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::alter_configs::{apply_topic_configs, broker_configs_are_static, duplicates};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::config::{lookup, ConfigType, Scope};
use crate::context::BrokerContext;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Applies the operations to the current overrides; the caller validates the result.
fn apply_ops(
    current: &BrokerContext,
    topic: &str,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, (i16, String)> {
    let invalid = |msg: String| Err((ResponseError::InvalidConfig.code(), msg));
    let Some(t) = current.metadata.topic(topic) else {
        return Err((
            ResponseError::UnknownTopicOrPartition.code(),
            format!("Topic '{topic}' does not exist."),
        ));
    };
    let mut configs = t.configs.clone();
    for (key, op, value) in ops {
        let Some(def) = lookup(Scope::Topic, key) else {
            return invalid(format!("Unknown topic config name: {key}"));
        };
        match *op {
            OP_SET => match value {
                Some(v) => {
                    configs.insert(key.clone(), v.clone());
                }
                None => return invalid(format!("Null value not supported for : {key}")),
            },
            OP_DELETE => {
                configs.remove(key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.ty != ConfigType::List {
                    return invalid(format!(
                        "Config value append is not allowed for config key: {key}"
                    ));
                }
                let base = match configs.get(key) {
                    Some(v) => split_list(v),
                    None => current
                        .config
                        .describe_topic(&BTreeMap::new())
                        .into_iter()
                        .find(|e| e.name == *key)
                        .and_then(|e| e.value)
                        .map(|v| split_list(&v))
                        .unwrap_or_default(),
                };
                let items = split_list(value.as_deref().unwrap_or(""));
                let next: Vec<String> = if *op == OP_APPEND {
                    let mut b = base;
                    for i in items {
                        if !b.contains(&i) {
                            b.push(i);
                        }
                    }
                    b
                } else {
                    base.into_iter().filter(|b| !items.contains(b)).collect()
                };
                configs.insert(key.clone(), next.join(","));
            }
            other => {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    format!("Unknown config operation {other} for {key}"),
                ))
            }
        }
    }
    Ok(configs)
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in &req.resources {
        let name = res.resource_name.as_str();
        let mut keys = HashSet::new();
        let dup_key = res
            .configs
            .iter()
            .find(|c| !keys.insert(c.name.as_str()))
            .map(|c| c.name.to_string());
        let outcome = if dup.contains(&(res.resource_type, name.to_string())) {
            Err((
                ResponseError::InvalidRequest.code(),
                "Duplicate resource in request.".to_string(),
            ))
        } else if let Some(k) = dup_key {
            Err((
                ResponseError::InvalidRequest.code(),
                format!("Error due to duplicate config keys: {k}"),
            ))
        } else {
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let ops: Vec<(String, i8, Option<String>)> = res
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.to_string(),
                                c.config_operation,
                                c.value.as_ref().map(|v| v.to_string()),
                            )
                        })
                        .collect();
                    match crate::metadata::validate_topic_name(name) {
                        Err(e) => Err((e.kafka_error_code(), e.to_string())),
                        Ok(()) => match apply_ops(ctx, name, &ops) {
                            Ok(configs) => {
                                apply_topic_configs(ctx, name, configs, req.validate_only).await
                            }
                            Err(e) => Err(e),
                        },
                    }
                }
                RESOURCE_BROKER => broker_configs_are_static(ctx, name),
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("Unsupported resource type {other}"),
                )),
            }
        };
        let r = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        responses.push(match outcome {
            Ok(()) => r.with_error_code(0).with_error_message(None),
            Err((code, msg)) => r.with_error_code(code).with_error_message(Some(sb(msg))),
        });
    }
    IncrementalAlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}
