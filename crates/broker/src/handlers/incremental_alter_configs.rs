//! IncrementalAlterConfigs: SET / DELETE / APPEND / SUBTRACT on a topic's
//! config overrides (APPEND and SUBTRACT only for list-typed keys), on
//! GROUP overrides and on a level of dynamic broker configs. Checked here
//! with this broker's messages, then applied by the controller to the
//! committed overrides (validated again there) and answered once published.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::alter_configs::{duplicates, update_broker};
use super::describe_configs::{check_group_name, RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use crate::config::dynamic::dynamic_key_def;
use crate::config::group::group_key;
use crate::config::{lookup, BrokerConfig, ConfigError, ConfigType, Scope};
use crate::context::BrokerContext;
use crate::metadata::files::MAX_GROUPS_WITH_CONFIGS;
use crate::metadata::image_cache::{group_resource, topic_resource};
use crate::metadata::{validate_topic_name, ConfigChange, MetadataError};
use sluice_controller::{AlterConfigOp, ConfigAlteration, ControllerError};

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

type Op = (String, i8, Option<String>);

/// APPEND adds the items of `value` missing from `base`; SUBTRACT removes
/// them. The list's new text, as Kafka joins it.
fn apply_list_op(base: Vec<String>, op: i8, value: Option<&str>) -> String {
    let items = split_list(value.unwrap_or(""));
    let next: Vec<String> = if op == OP_APPEND {
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
    next.join(",")
}

fn invalid(key: &str, value: Option<&str>, reason: &str) -> MetadataError {
    MetadataError::Config(ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.unwrap_or("null").to_string(),
        reason: reason.to_string(),
    })
}

/// Applies the operations to the current overrides; the caller validates the result.
fn apply_ops(
    config: &BrokerConfig,
    current: &BTreeMap<String, String>,
    ops: &[Op],
) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut configs = current.clone();
    for (key, op, value) in ops {
        let Some(def) = lookup(Scope::Topic, key) else {
            return Err(MetadataError::Config(ConfigError::UnknownKey {
                key: key.clone(),
            }));
        };
        match *op {
            OP_SET => match value {
                Some(v) => {
                    configs.insert(key.clone(), v.clone());
                }
                None => return Err(invalid(key, None, "null value not supported")),
            },
            OP_DELETE => {
                configs.remove(key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.ty != ConfigType::List {
                    return Err(invalid(
                        key,
                        value.as_deref(),
                        "APPEND and SUBTRACT apply only to list configs",
                    ));
                }
                let base = match configs.get(key) {
                    Some(v) => split_list(v),
                    None => config
                        .describe_topic(&BTreeMap::new())
                        .into_iter()
                        .find(|e| e.name == *key)
                        .and_then(|e| e.value)
                        .map(|v| split_list(&v))
                        .unwrap_or_default(),
                };
                configs.insert(key.clone(), apply_list_op(base, *op, value.as_deref()));
            }
            other => {
                return Err(MetadataError::InvalidRequest(format!(
                    "Unknown config operation {other} for {key}"
                )))
            }
        }
    }
    Ok(configs)
}

/// The controller's form of the request's operations.
fn alterations(ops: &[Op]) -> Vec<ConfigAlteration> {
    ops.iter()
        .map(|(name, op, value)| ConfigAlteration {
            name: name.clone(),
            op: match *op {
                OP_DELETE => AlterConfigOp::Delete,
                OP_APPEND => AlterConfigOp::Append,
                OP_SUBTRACT => AlterConfigOp::Subtract,
                _ => AlterConfigOp::Set,
            },
            value: value.clone(),
        })
        .collect()
}

async fn alter_topic(
    ctx: &BrokerContext,
    name: &str,
    ops: Vec<Op>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    validate_topic_name(name).map_err(|e| (e.kafka_error_code(), e.to_string()))?;
    let change = ConfigChange::Incremental(alterations(&ops));
    let config: Arc<BrokerConfig> = ctx.config.clone();
    update_topic(ctx, name, validate_only, change, move |current| {
        apply_ops(&config, current, &ops)
    })
    .await
}

/// Checks the topic overrides `f` computes from the current ones (with
/// this broker's messages), then has the controller apply `change` to
/// the committed overrides (it validates again with the same rules).
pub(crate) async fn update_topic(
    ctx: &BrokerContext,
    name: &str,
    validate_only: bool,
    change: ConfigChange,
    f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
) -> Result<(), (i16, String)> {
    let unknown = |code: i16| (code, format!("Topic '{name}' does not exist."));
    let Some(topic) = ctx.image.topic(name) else {
        return Err(unknown(ResponseError::UnknownTopicOrPartition.code()));
    };
    let check = f(&topic.configs).and_then(|next| {
        ctx.config
            .topic_log_config(&next)
            .map(|_| ())
            .map_err(MetadataError::Config)
    });
    if let Err(e) = check {
        return Err((e.kafka_error_code(), e.to_string()));
    }
    match ctx
        .controller
        .alter_config(topic_resource(name), change, validate_only)
        .await
    {
        Ok(()) => Ok(()),
        Err(e @ MetadataError::Controller(ControllerError::UnknownTopicOrPartition(_))) => {
            Err(unknown(e.kafka_error_code()))
        }
        Err(e) => Err((e.kafka_error_code(), e.to_string())),
    }
}

/// SET / DELETE on a group's config overrides (every group key is scalar).
fn apply_group_ops(
    current: &BTreeMap<String, String>,
    ops: &[Op],
) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut configs = current.clone();
    for (key, op, value) in ops {
        // As Kafka: deleting an unknown key is a no-op, setting one is refused.
        if group_key(key).is_none() && *op != OP_DELETE {
            return Err(MetadataError::Config(ConfigError::InvalidValue {
                key: key.clone(),
                value: value.clone().unwrap_or_else(|| "null".into()),
                reason: format!("Unknown group config name: {key}"),
            }));
        }
        match (*op, value) {
            (OP_SET, Some(v)) => {
                configs.insert(key.clone(), v.clone());
            }
            (OP_SET, None) => return Err(invalid(key, None, "null value not supported")),
            (OP_DELETE, _) => {
                configs.remove(key);
            }
            (OP_APPEND | OP_SUBTRACT, _) => {
                return Err(invalid(
                    key,
                    value.as_deref(),
                    "APPEND and SUBTRACT apply only to list configs",
                ))
            }
            (other, _) => {
                return Err(MetadataError::InvalidRequest(format!(
                    "Unknown config operation {other} for {key}"
                )))
            }
        }
    }
    Ok(configs)
}

/// SET / DELETE / APPEND / SUBTRACT on one level of dynamic broker configs.
/// APPEND and SUBTRACT start from the level's value, else the value the
/// broker uses now (lower levels, static, default), as Kafka does.
fn apply_broker_ops(
    config: &BrokerConfig,
    level_is_default: bool,
    current: &BTreeMap<String, String>,
    ops: &[Op],
) -> Result<BTreeMap<String, String>, (i16, String)> {
    let mut configs = current.clone();
    for (key, op, value) in ops {
        match (*op, value) {
            (OP_SET, Some(v)) => {
                configs.insert(key.clone(), v.clone());
            }
            (OP_SET, None) => {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    format!("Null value not supported for : {key}"),
                ))
            }
            (OP_DELETE, _) => {
                configs.remove(key);
            }
            (OP_APPEND | OP_SUBTRACT, _) => {
                let verb = if *op == OP_APPEND {
                    "append"
                } else {
                    "subtract"
                };
                if dynamic_key_def(key).map(|d| d.ty) != Some(ConfigType::List) {
                    return Err((
                        ResponseError::InvalidConfig.code(),
                        format!("Config value {verb} is not allowed for config key: {key}"),
                    ));
                }
                let base = match configs.get(key) {
                    Some(v) => split_list(v),
                    None => {
                        // What the levels below this one make of the key.
                        let mut lower = config.dynamic.read().clone();
                        lower.broker.remove(key);
                        if level_is_default {
                            lower.broker.clear();
                            lower.cluster_default.remove(key);
                        }
                        match lower.effective(&config.explicit).get(key) {
                            Some((v, _)) => split_list(v),
                            None => dynamic_key_def(key)
                                .and_then(|d| d.default)
                                .map(split_list)
                                .unwrap_or_default(),
                        }
                    }
                };
                configs.insert(key.clone(), apply_list_op(base, *op, value.as_deref()));
            }
            (other, _) => {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    format!("Unknown config operation {other} for {key}"),
                ))
            }
        }
    }
    Ok(configs)
}

async fn alter_group(
    ctx: &BrokerContext,
    name: &str,
    ops: Vec<Op>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let change = ConfigChange::Incremental(alterations(&ops));
    update_group(ctx, name, validate_only, change, move |current| {
        apply_group_ops(current, &ops)
    })
    .await
}

/// Validates the group overrides `f` computes from the current ones and,
/// unless `validate_only`, has the controller apply `change`; the group
/// coordinator gets them from the group-config publisher.
pub(crate) async fn update_group(
    ctx: &BrokerContext,
    name: &str,
    validate_only: bool,
    change: ConfigChange,
    f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
) -> Result<(), (i16, String)> {
    check_group_name(name)?;
    let current = ctx.image.group_configs(name);
    let check = f(&current).and_then(|next| {
        // Clients grow this set: it is bounded.
        if current.is_empty()
            && !next.is_empty()
            && ctx.image.all_group_configs().len() >= MAX_GROUPS_WITH_CONFIGS
        {
            return Err(MetadataError::InvalidRequest(format!(
                "at most {MAX_GROUPS_WITH_CONFIGS} groups may have config overrides"
            )));
        }
        ctx.config
            .validate_group_configs(&next)
            .map_err(MetadataError::Config)
    });
    match check {
        Ok(()) => {}
        Err(MetadataError::Config(ConfigError::InvalidValue { reason, .. })) => {
            return Err((ResponseError::InvalidConfig.code(), reason))
        }
        Err(e) => return Err((e.kafka_error_code(), e.to_string())),
    }
    ctx.controller
        .alter_config(group_resource(name), change, validate_only)
        .await
        .map_err(|e| (e.kafka_error_code(), e.to_string()))
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
            let ops: Vec<Op> = res
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
            match res.resource_type {
                RESOURCE_TOPIC => alter_topic(ctx, name, ops, req.validate_only).await,
                RESOURCE_GROUP => alter_group(ctx, name, ops, req.validate_only).await,
                RESOURCE_BROKER => {
                    let config = ctx.config.clone();
                    let level_is_default = name.is_empty();
                    let change = ConfigChange::Incremental(alterations(&ops));
                    update_broker(ctx, name, req.validate_only, change, move |current| {
                        apply_broker_ops(&config, level_is_default, current, &ops)
                    })
                    .await
                }
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
