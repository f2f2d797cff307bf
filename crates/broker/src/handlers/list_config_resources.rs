//! ListConfigResources (KIP-1142): the resources DescribeConfigs can answer
//! for. v0 (formerly ListClientMetricsResources) lists client-metrics
//! subscriptions: Sluice has none. v1 takes resource types (empty = all):
//! topics and this broker are listed; broker loggers, client metrics and
//! groups have no configs in Sluice (DescribeConfigs refuses them), so none
//! is listed. An unknown type answers UNSUPPORTED_VERSION, as Kafka 4.1.2.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{
    ListConfigResourcesRequest, ListConfigResourcesResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let resp = ListConfigResourcesResponse::default().with_throttle_time_ms(0);
    if header.request_api_version == 0 {
        // Client-metrics resources only; Sluice has no subscriptions.
        return resp.with_error_code(0);
    }
    let all = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];
    let types: Vec<i8> = if req.resource_types.is_empty() {
        all.to_vec()
    } else {
        req.resource_types.clone()
    };
    if types.iter().any(|t| !all.contains(t)) {
        return resp.with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let mut resources = Vec::new();
    if types.contains(&TOPIC) {
        let mut topics = ctx.image.topics();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        resources.extend(topics.into_iter().map(|t| {
            ConfigResource::default()
                .with_resource_name(StrBytes::from_string(t.name))
                .with_resource_type(TOPIC)
        }));
    }
    if types.contains(&BROKER) {
        resources.push(
            ConfigResource::default()
                .with_resource_name(StrBytes::from_string(ctx.config.node_id.to_string()))
                .with_resource_type(BROKER),
        );
    }
    resp.with_error_code(0).with_config_resources(resources)
}
