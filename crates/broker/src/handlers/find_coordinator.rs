//! FindCoordinator (v0–v4): this broker coordinates every group. Key type 0
//! (group) answers with this node, except the request that creates
//! `__consumer_offsets`, which gets COORDINATOR_NOT_AVAILABLE as on Kafka; key type 1 (transaction) answers
//! COORDINATOR_NOT_AVAILABLE because this broker has no transaction
//! coordinator yet; anything else is INVALID_REQUEST.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::GroupError;

/// `(node id, host, port)` or an error for one key.
async fn lookup(ctx: &BrokerContext, key_type: i8) -> Result<(i32, String, i32), GroupError> {
    match key_type {
        0 => {
            // Kafka creates the offsets topic on the first FindCoordinator
            // and answers that request COORDINATOR_NOT_AVAILABLE (clients
            // retry); the topic serves the next one.
            if ctx.groups.ensure_offsets_topic(ctx).await? {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            let l = ctx
                .config
                .advertised_listeners
                .first()
                .ok_or(GroupError::CoordinatorNotAvailable)?;
            Ok((ctx.config.node_id, l.host.clone(), i32::from(l.port)))
        }
        1 => Err(GroupError::CoordinatorNotAvailable),
        _ => Err(GroupError::InvalidRequest),
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    if version >= 4 {
        let found = lookup(ctx, req.key_type).await;
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| match found.clone() {
                Ok((node, host, port)) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port),
                Err(e) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_host(StrBytes::from_static_str(""))
                    .with_port(-1)
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let key_type = if version >= 1 { req.key_type } else { 0 };
    match lookup(ctx, key_type).await {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err(e) => {
            let mut r = FindCoordinatorResponse::default()
                .with_error_code(e.code())
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1);
            if version >= 1 {
                r.error_message = Some(StrBytes::from_string(e.to_string()));
            }
            r
        }
    }
}
