//! DescribeCluster: this broker (at its first advertised listener, whose
//! port the server fills in when configured as 0) is the whole cluster and
//! its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

/// Endpoint types (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

/// Cluster operations allowed without an authorizer (Kafka's AclOperation
/// bit positions): CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS, IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS.
const CLUSTER_OPERATIONS: i32 = (1 << 5)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 13)
    | (1 << 14);

/// Answers with the brokers' endpoints of the first advertised listener
/// (a request made without a connection).
pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    handle_on(ctx, super::first_advertised(ctx), header, req).await
}

/// [`handle`] for a request that came in on `listener`.
pub async fn handle_on(
    ctx: &BrokerContext,
    listener: &str,
    header: &RequestHeader,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let version = header.request_api_version;
    let node_id = ctx.config.node_id;
    let endpoint_type = if version >= 1 {
        req.endpoint_type
    } else {
        ENDPOINT_BROKERS
    };
    let resp = DescribeClusterResponse::default()
        .with_throttle_time_ms(0)
        .with_endpoint_type(endpoint_type)
        .with_cluster_id(StrBytes::from_string(ctx.metadata.cluster_id()))
        .with_controller_id(BrokerId(node_id));
    if endpoint_type != ENDPOINT_BROKERS {
        return resp
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )))
            .with_controller_id(BrokerId(-1));
    }
    // Registered brokers (fenced ones flagged, as Kafka's v2+ answer
    // has them) at their endpoint of the request's listener.
    let brokers = ctx
        .image
        .image()
        .brokers()
        .values()
        .filter(|b| version >= 2 || !b.fenced)
        .filter_map(|b| {
            let l = b.listeners.iter().find(|l| l.name == listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id.0))
                    .with_host(StrBytes::from_string(l.host.clone()))
                    .with_port(i32::from(l.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    resp.with_error_code(0)
        .with_error_message(None)
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        })
}
