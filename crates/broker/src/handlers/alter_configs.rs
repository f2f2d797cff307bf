//! AlterConfigs (legacy): replaces a topic's (or a KIP-848 group's) whole set
//! of config overrides.
//! Broker configs are static in Sluice (set in server.properties/--override).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{check_broker_name, RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::incremental_alter_configs::update_group;
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
        ctx2.metadata
            .update_topic_config(&ctx2, &name2, validate_only, |_| Ok(configs))
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

/// The answer for any attempt to change a broker config at runtime.
pub(crate) fn broker_configs_are_static(
    ctx: &BrokerContext,
    name: &str,
) -> Result<(), (i16, String)> {
    check_broker_name(ctx, name)?;
    Err((
        ResponseError::InvalidRequest.code(),
        "Sluice broker configs are static: set them in server.properties or with --override"
            .to_string(),
    ))
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
    AlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}
