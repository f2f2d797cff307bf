//! DescribeConfigs for TOPIC, BROKER and GROUP resources: value, source, read-only,
//! sensitive, synonyms (when asked) and documentation (v3+, when asked).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::config::ConfigEntry;
use crate::context::BrokerContext;
use crate::metadata::validate_topic_name;

/// Kafka's `ConfigResource.Type` ids.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// KIP-848 group configs.
pub const RESOURCE_GROUP: i8 = 32;

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Resolves a config resource to its described entries, or a Kafka error.
pub(crate) fn describe_resource(
    ctx: &BrokerContext,
    resource_type: i8,
    resource_name: &str,
) -> Result<Vec<ConfigEntry>, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => {
            validate_topic_name(resource_name)
                .map_err(|e| (e.kafka_error_code(), e.to_string()))?;
            match ctx.image.topic(resource_name) {
                Some(t) => Ok(ctx.config.describe_topic(&t.configs)),
                None => Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("Topic '{resource_name}' does not exist."),
                )),
            }
        }
        RESOURCE_BROKER => {
            check_broker_name(ctx, resource_name)?;
            Ok(if resource_name.is_empty() {
                ctx.config.describe_cluster_default()
            } else {
                ctx.config.describe_broker()
            })
        }
        // As Kafka: any group id, existing or not, has the group configs.
        RESOURCE_GROUP => {
            check_group_name(resource_name)?;
            Ok(ctx
                .config
                .describe_group(&ctx.image.group_configs(resource_name)))
        }
        other => Err((
            ResponseError::InvalidRequest.code(),
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// A GROUP resource needs a group id (Kafka refuses an empty one).
pub(crate) fn check_group_name(name: &str) -> Result<(), (i16, String)> {
    if name.is_empty() {
        return Err((
            ResponseError::InvalidRequest.code(),
            "Group name can't be empty.".to_string(),
        ));
    }
    Ok(())
}

/// A BROKER resource names this broker's node id ("" = cluster-wide defaults).
pub(crate) fn check_broker_name(ctx: &BrokerContext, name: &str) -> Result<(), (i16, String)> {
    if name.is_empty() {
        return Ok(());
    }
    match name.parse::<i32>() {
        Ok(id) if id == ctx.config.node_id => Ok(()),
        Ok(id) => Err((
            ResponseError::InvalidRequest.code(),
            format!(
                "Unexpected broker id, expected {} but received {id}",
                ctx.config.node_id
            ),
        )),
        Err(_) => Err((
            ResponseError::InvalidRequest.code(),
            format!("Broker id must be an integer, but it is: {name}"),
        )),
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let mut results = Vec::with_capacity(req.resources.len());
    for res in &req.resources {
        let name = res.resource_name.as_str();
        let r = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let r = match describe_resource(ctx, res.resource_type, name) {
            Err((code, msg)) => r.with_error_code(code).with_error_message(Some(sb(msg))),
            Ok(entries) => {
                let configs = entries
                    .into_iter()
                    // null or empty = every key (as Kafka's ConfigHelper does)
                    .filter(|e| match &res.configuration_keys {
                        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == e.name),
                        _ => true,
                    })
                    .map(|e| {
                        let synonyms = if req.include_synonyms {
                            e.synonyms
                                .iter()
                                .map(|s| {
                                    DescribeConfigsSynonym::default()
                                        .with_name(sb(s.name.clone()))
                                        .with_value(s.value.clone().map(sb))
                                        .with_source(s.source.id())
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let mut c = DescribeConfigsResourceResult::default()
                            .with_name(sb(e.name))
                            .with_value(e.value.map(sb))
                            .with_read_only(e.read_only)
                            .with_config_source(e.source.id())
                            .with_is_sensitive(e.sensitive)
                            .with_synonyms(synonyms);
                        if version >= 3 {
                            c = c.with_config_type(e.ty.describe_type());
                            if req.include_documentation {
                                c = c.with_documentation(Some(StrBytes::from_static_str(e.doc)));
                            }
                        }
                        c
                    })
                    .collect();
                r.with_error_code(0)
                    .with_error_message(None)
                    .with_configs(configs)
            }
        };
        results.push(r);
    }
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
