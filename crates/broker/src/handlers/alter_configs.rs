//! AlterConfigs (legacy): replaces a topic's (or a KIP-848 group's) whole set
//! of config overrides, or one level of dynamic broker configs (KIP-226:
//! the BROKER resource named by the node id, or "" for the cluster default).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{check_broker_name, RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::incremental_alter_configs::update_group;
use crate::config::dynamic::{self, DynamicLevel};
use crate::context::BrokerContext;
use crate::metadata::{validate_topic_name, MetadataError};

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
    let ctx2 = ctx.clone();
    let name2 = name.to_string();
    match tokio::task::spawn_blocking(move || {
        ctx2.controller
            .update_topic_config(&name2, validate_only, |_| Ok(configs))
    })
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e @ MetadataError::UnknownTopic(_))) => Err((
            e.kafka_error_code(),
            format!("Topic '{name}' does not exist."),
        )),
        Ok(Err(e)) => Err((e.kafka_error_code(), e.to_string())),
        Err(join) => Err((ResponseError::UnknownServerError.code(), join.to_string())),
    }
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

/// Gives every partition of every topic the log config the current broker
/// defaults and its topic's overrides make, and every log the current
/// `producer.id.expiration.ms` (after a dynamic broker config change;
/// topics with their own override of a key keep it).
fn reconfigure_logs(ctx: &BrokerContext) {
    ctx.logs
        .set_producer_id_expiration_ms(ctx.config.producer_id_expiration_ms());
    for topic in ctx.image.topics() {
        match ctx.config.topic_log_config(&topic.configs) {
            Ok(log_config) => {
                for tp in topic.topic_partitions() {
                    if let Some(p) = ctx.replicas.get_partition(&tp) {
                        p.log().update_config(log_config.clone());
                    }
                }
            }
            Err(e) => tracing::warn!(
                topic = %topic.name,
                error = %e,
                "topic keeps its log config: its overrides are invalid"
            ),
        }
    }
}

/// Replaces one level of dynamic broker configs with what `f` computes from
/// the current ones: validated as Kafka does (INVALID_REQUEST with Kafka's
/// message when refused) and, unless `validate_only`, stored durably as a
/// metadata change, then applied to every log.
pub(crate) async fn update_broker(
    ctx: &BrokerContext,
    name: &str,
    validate_only: bool,
    f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (i16, String)>
        + Send
        + 'static,
) -> Result<(), (i16, String)> {
    let level = broker_level(ctx, name)?;
    let refused = |msg: String| (ResponseError::InvalidRequest.code(), msg);
    if validate_only {
        let current = ctx.config.dynamic.read().level(level).clone();
        let next = f(&current)?;
        return dynamic::validate(&next, level).map_err(refused);
    }
    let ctx2 = ctx.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let ctx = ctx2;
        // Under the metadata write lock: no topic change interleaves, so
        // every log gets the config that matches the committed state.
        ctx.metadata.commit_external(|offset| {
            let mut next = ctx.config.dynamic.read().clone();
            let level_configs = f(next.level(level))?;
            dynamic::validate(&level_configs, level).map_err(refused)?;
            *next.level_mut(level) = level_configs;
            let contents = dynamic::encode(&next, offset);
            if contents.len() > dynamic::MAX_DYNAMIC_CONFIGS_BYTES {
                return Err(refused(format!(
                    "Dynamic broker configs would take {} bytes, more than the {} Sluice stores",
                    contents.len(),
                    dynamic::MAX_DYNAMIC_CONFIGS_BYTES
                )));
            }
            let dir = dynamic::metadata_dir(&ctx.config);
            dynamic::store(ctx.fs.as_ref(), &dir, &next, offset)
                .map_err(|e| (e.kafka_error_code(), e.to_string()))?;
            *ctx.config.dynamic.write() = next;
            reconfigure_logs(&ctx);
            tracing::info!(?level, "dynamic broker configs changed");
            Ok(())
        })
    })
    .await;
    match outcome {
        Ok(r) => r,
        Err(join) => Err((ResponseError::UnknownServerError.code(), join.to_string())),
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
                        update_group(ctx, name, req.validate_only, move |_| Ok(configs)).await
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
                        update_broker(ctx, name, req.validate_only, move |_| Ok(configs)).await
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

    use sluice_record::Offset;
    use sluice_storage::{Fault, FaultKind, SimFs, TopicPartition};

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

    fn set(ctx: &BrokerContext, name: &str, key: &str, value: &str) -> Result<(), (i16, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (key, value) = (key.to_string(), value.to_string());
        rt.block_on(update_broker(ctx, name, false, move |current| {
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
        for seed in 0..8u64 {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs);
            ctx.controller
                .create_topic("t", 1, 1, BTreeMap::new())
                .unwrap();
            set(&ctx, "", "log.segment.bytes", "2000000").unwrap();
            set(&ctx, "1", "log.segment.bytes", "3000000").unwrap();
            set(&ctx, "1", "background.threads", "9").unwrap();
            assert_eq!(segment_bytes(&ctx), 3_000_000);
            assert_eq!(ctx.metadata.high_watermark(), Offset(4));
            drop(ctx);
            fs.crash(seed);

            let ctx = open(&fs);
            let d = ctx.config.dynamic.read().clone();
            assert_eq!(
                d.cluster_default["log.segment.bytes"], "2000000",
                "seed {seed}"
            );
            assert_eq!(d.broker["log.segment.bytes"], "3000000", "seed {seed}");
            assert_eq!(d.broker["background.threads"], "9", "seed {seed}");
            assert_eq!(segment_bytes(&ctx), 3_000_000, "the reloaded log uses it");
            assert_eq!(ctx.metadata.high_watermark(), Offset(4), "seed {seed}");
        }
    }

    #[test]
    fn stored_configs_are_bounded() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs);
        let big = "x".repeat(dynamic::MAX_DYNAMIC_CONFIGS_BYTES / 4);
        for i in 0..3 {
            set(&ctx, "1", &format!("custom.{i}"), &big).unwrap();
        }
        let (code, msg) = set(&ctx, "1", "custom.3", &big).unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest.code(), "{msg}");
        assert_eq!(ctx.config.dynamic.read().broker.len(), 3);
        assert_eq!(ctx.metadata.high_watermark(), Offset(3));
    }

    #[test]
    fn a_failed_fsync_is_not_acknowledged_and_changes_nothing() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs);
        ctx.controller
            .create_topic("t", 1, 1, BTreeMap::new())
            .unwrap();
        set(&ctx, "", "log.segment.bytes", "2000000").unwrap();
        fs.inject(Fault::once(
            "broker_configs.meta.tmp",
            FaultKind::SyncError(libc::EIO),
        ));
        let (code, _) = set(&ctx, "", "log.segment.bytes", "5000000").unwrap_err();
        assert_eq!(code, ResponseError::KafkaStorageError.code());
        assert_eq!(
            ctx.config.dynamic.read().cluster_default["log.segment.bytes"],
            "2000000"
        );
        assert_eq!(segment_bytes(&ctx), 2_000_000);
        assert_eq!(ctx.metadata.high_watermark(), Offset(2));
        drop(ctx);
        fs.crash(3);
        let ctx = open(&fs);
        assert_eq!(segment_bytes(&ctx), 2_000_000);
    }
}
