//! AlterConfigs (legacy): replaces a topic's (or a KIP-848 group's) whole set
//! of config overrides, or one level of dynamic broker configs (KIP-226:
//! the BROKER resource named by the node id, or "" for the cluster default).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{check_broker_name, RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::incremental_alter_configs::{update_group, update_topic};
use crate::config::dynamic::{self, DynamicLevel};
use crate::context::BrokerContext;
use crate::metadata::{validate_topic_name, ConfigChange};
use crate::network::tls_reload;
use sluice_controller::ConfigKeys;
use sluice_metadata::{ConfigResource, ConfigResourceType};

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Validates (and unless `validate_only`, stores) new overrides for a topic.
async fn apply_topic_configs(
    ctx: &BrokerContext,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    validate_topic_name(name).map_err(|e| (e.kafka_error_code(), e.to_string()))?;
    let change = ConfigChange::Replace(replace_keys(&configs));
    update_topic(ctx, name, validate_only, change, move |_| Ok(configs)).await
}

/// The legacy request's keys as the controller's whole new set.
fn replace_keys(configs: &BTreeMap<String, String>) -> ConfigKeys {
    configs
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}

/// The dynamic config level a BROKER resource name addresses: this node's
/// id, or "" for the cluster-wide default.
pub(crate) fn broker_level(ctx: &BrokerContext, name: &str) -> Result<DynamicLevel, (i16, String)> {
    check_broker_name(ctx, name)?;
    Ok(if name.is_empty() {
        DynamicLevel::ClusterDefault
    } else {
        DynamicLevel::Broker
    })
}

/// Replaces one level of dynamic broker configs with what `f` computes from
/// the current ones: validated as Kafka does (INVALID_REQUEST with Kafka's
/// message when refused) and, unless `validate_only`, committed by the
/// controller as BROKER config records; the broker-config publisher
/// applies them to this broker's config and every log before the answer.
pub(crate) async fn update_broker(
    ctx: &BrokerContext,
    name: &str,
    validate_only: bool,
    change: ConfigChange,
    f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (i16, String)>,
) -> Result<(), (i16, String)> {
    let level = broker_level(ctx, name)?;
    let refused = |msg: String| (ResponseError::InvalidRequest.code(), msg);
    let current = ctx.config.dynamic.read().level(level).clone();
    let next = f(&current)?;
    dynamic::validate(&next, level).map_err(refused)?;
    let reloads_tls = named_keys(&change).any(tls_reload::is_store_key);
    if reloads_tls {
        let mut dynamic = ctx.config.dynamic.read().clone();
        *dynamic.level_mut(level) = next;
        ctx.tls
            .validate(&ctx.config.explicit.0, &dynamic)
            .map_err(refused)?;
    }
    let resource = ConfigResource {
        resource_type: ConfigResourceType::Broker,
        name: name.to_string(),
    };
    ctx.controller
        .alter_config(resource, change, validate_only)
        .await
        .map_err(|e| (e.kafka_error_code(), e.to_string()))?;
    if !validate_only {
        tracing::info!(?level, "dynamic broker configs changed");
        if reloads_tls {
            // The publisher reloaded the stores whose keys changed value;
            // this reloads those named again with the same value after
            // their file was rewritten (Kafka's KAFKA-14136 reload).
            let dynamic = ctx.config.dynamic.read().clone();
            // Validated above; only a file rewritten since can fail here,
            // after the commit: logged, as Kafka logs a failed reconfigure.
            if let Err(e) = ctx.tls.reconfigure(&ctx.config.explicit.0, &dynamic) {
                tracing::warn!("SSL listeners keep their keystores: {e}");
            }
        }
    }
    Ok(())
}

/// The keys a change names.
fn named_keys(change: &ConfigChange) -> Box<dyn Iterator<Item = &str> + '_> {
    match change {
        ConfigChange::Incremental(ops) => Box::new(ops.iter().map(|o| o.name.as_str())),
        ConfigChange::Replace(keys) => Box::new(keys.iter().map(|(k, _)| k.as_str())),
    }
}

/// Resources named twice in one request are all rejected (as Kafka does).
pub(crate) fn duplicates<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    let mut dup = HashSet::new();
    for (t, n) in resources {
        if !seen.insert((t, n.to_string())) {
            dup.insert((t, n.to_string()));
        }
    }
    dup
}

/// The first config of a legacy request with a null value.
fn null_value(
    configs: &[kafka_protocol::messages::alter_configs_request::AlterableConfig],
) -> Option<String> {
    configs
        .iter()
        .find(|c| c.value.is_none())
        .map(|c| c.name.to_string())
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in &req.resources {
        let name = res.resource_name.as_str();
        let outcome = if dup.contains(&(res.resource_type, name.to_string())) {
            Err((
                ResponseError::InvalidRequest.code(),
                "Duplicate resource in request.".to_string(),
            ))
        } else {
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let mut configs = BTreeMap::new();
                    let mut null_key = None;
                    for c in &res.configs {
                        match &c.value {
                            Some(v) => {
                                configs.insert(c.name.to_string(), v.to_string());
                            }
                            None => null_key = Some(c.name.to_string()),
                        }
                    }
                    match null_key {
                        Some(k) => Err((
                            ResponseError::InvalidConfig.code(),
                            format!("Null value not supported for : {k}"),
                        )),
                        None => apply_topic_configs(ctx, name, configs, req.validate_only).await,
                    }
                }
                // As Kafka: the request's configs replace the group's overrides.
                RESOURCE_GROUP => match null_value(&res.configs) {
                    Some(k) => Err((
                        ResponseError::InvalidConfig.code(),
                        format!("Null value not supported for : {k}"),
                    )),
                    None => {
                        let configs: BTreeMap<String, String> = res
                            .configs
                            .iter()
                            .filter_map(|c| {
                                Some((c.name.to_string(), c.value.as_ref()?.to_string()))
                            })
                            .collect();
                        let change = ConfigChange::Replace(replace_keys(&configs));
                        update_group(ctx, name, req.validate_only, change, move |_| Ok(configs))
                            .await
                    }
                },
                // As Kafka: the request's configs replace this level's overrides.
                RESOURCE_BROKER => match null_value(&res.configs) {
                    Some(k) => Err((
                        ResponseError::InvalidRequest.code(),
                        format!("Null value not supported for : {k}"),
                    )),
                    None => {
                        let configs: BTreeMap<String, String> = res
                            .configs
                            .iter()
                            .filter_map(|c| {
                                Some((c.name.to_string(), c.value.as_ref()?.to_string()))
                            })
                            .collect();
                        let change = ConfigChange::Replace(replace_keys(&configs));
                        update_broker(ctx, name, req.validate_only, change, move |_| Ok(configs))
                            .await
                    }
                },
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
    AlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_storage::{SimFs, TopicPartition};

    use super::*;
    use crate::config::BrokerConfig;
    use crate::metadata::testing::{open_node, Node};

    /// A broker's state on `fs` as `Broker::start` builds it.
    fn open(fs: &Arc<SimFs>) -> Node {
        let config = BrokerConfig::with_overrides(&[
            ("log.dirs", "/sim/data"),
            ("log.index.size.max.bytes", "4096"),
        ])
        .unwrap();
        open_node(config, fs).unwrap()
    }

    fn set(node: &Node, name: &str, key: &str, value: &str) -> Result<(), (i16, String)> {
        let change = ConfigChange::Incremental(vec![sluice_controller::ConfigAlteration {
            name: key.to_string(),
            op: sluice_controller::AlterConfigOp::Set,
            value: Some(value.to_string()),
        }]);
        let (key, value) = (key.to_string(), value.to_string());
        node.block_on(update_broker(node, name, false, change, move |current| {
            let mut next = current.clone();
            next.insert(key, value);
            Ok(next)
        }))
    }

    fn segment_bytes(ctx: &BrokerContext) -> u64 {
        ctx.replicas
            .get_partition(&TopicPartition::new("t", 0))
            .unwrap()
            .log()
            .config()
            .segment_bytes
    }

    #[test]
    fn acknowledged_dynamic_configs_survive_a_power_cut() {
        for seed in 0..4u64 {
            let fs = Arc::new(SimFs::new());
            let node = open(&fs);
            node.block_on(node.controller.create_topic("t", 1, 1, BTreeMap::new()))
                .unwrap();
            set(&node, "", "log.segment.bytes", "2000000").unwrap();
            set(&node, "1", "log.segment.bytes", "3000000").unwrap();
            set(&node, "1", "background.threads", "9").unwrap();
            assert_eq!(segment_bytes(&node), 3_000_000, "applied before the answer");
            let hw = node.metadata.high_watermark();
            drop(node);
            fs.crash(seed);

            let node = open(&fs);
            let d = node.config.dynamic.read().clone();
            assert_eq!(
                d.cluster_default["log.segment.bytes"], "2000000",
                "seed {seed}"
            );
            assert_eq!(d.broker["log.segment.bytes"], "3000000", "seed {seed}");
            assert_eq!(d.broker["background.threads"], "9", "seed {seed}");
            assert_eq!(segment_bytes(&node), 3_000_000, "the reloaded log uses it");
            assert!(node.metadata.high_watermark() > hw, "seed {seed}");
        }
    }

    #[test]
    fn refused_broker_configs_change_nothing() {
        let fs = Arc::new(SimFs::new());
        let node = open(&fs);
        let hw = node.metadata.high_watermark();
        let (code, msg) = set(&node, "1", "log.segment.bytes", "not a number").unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest.code(), "{msg}");
        let max = crate::metadata::validator::MAX_STRING_BYTES;
        set(&node, "1", "custom.a", &"x".repeat(max)).unwrap();
        let (code, msg) = set(&node, "1", "custom.b", &"x".repeat(max + 1)).unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest.code(), "{msg}");
        // The level as a whole is bounded too.
        let n = dynamic::MAX_DYNAMIC_CONFIGS_BYTES / max;
        let refused = (0..n + 2)
            .map(|i| set(&node, "1", &format!("custom.{i}"), &"y".repeat(max)))
            .find_map(Result::err)
            .expect("the level's size is bounded");
        assert_eq!(
            refused.0,
            ResponseError::InvalidRequest.code(),
            "{}",
            refused.1
        );
        let d = node.config.dynamic.read().clone();
        assert!(!d.broker.contains_key("custom.b"));
        assert!(d.broker.len() <= n + 1);
        assert!(node.metadata.high_watermark() > hw);
    }
}
