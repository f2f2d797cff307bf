//! FindCoordinator (v0–v4): a group's coordinator is the leader of its
//! `__consumer_offsets` partition in the metadata image, a transactional
//! id's the leader of its `__transaction_state` partition. Key type 0
//! (group) and 1 (transaction) answer with that broker's listener, except
//! the request that creates the internal topic, which gets
//! COORDINATOR_NOT_AVAILABLE as on Kafka; anything else is INVALID_REQUEST.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use sluice_metadata::MetadataImage;

use super::leadership::endpoint;
use crate::context::BrokerContext;
use crate::group::{GroupError, OFFSETS_TOPIC};
use crate::txn::TRANSACTION_STATE_TOPIC;

type Found = Result<(i32, String, i32), GroupError>;

/// Creates `__consumer_offsets` on the first group lookup, as Kafka does,
/// answering that request COORDINATOR_NOT_AVAILABLE (clients retry); the
/// topic serves the next one.
async fn prepare(ctx: &BrokerContext, key_type: i8) -> Result<(), GroupError> {
    match key_type {
        0 => {
            if ctx.groups.ensure_offsets_topic(ctx).await? {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            Ok(())
        }
        1 => match ctx
            .txns
            .ensure_state_topic(ctx.config.kraft.is_some())
            .await
        {
            Ok(false) => Ok(()),
            Ok(true) | Err(_) => Err(GroupError::CoordinatorNotAvailable),
        },
        _ => Err(GroupError::InvalidRequest),
    }
}

/// `(node id, host, port)` of the leader of `key`'s partition of the
/// internal topic of `key_type`.
fn coordinator(
    ctx: &BrokerContext,
    listener: &str,
    image: &MetadataImage,
    key_type: i8,
    key: &str,
) -> Found {
    let (topic, partition) = if key_type == 1 {
        let partition = ctx
            .txns
            .state()
            .partition_for(key)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        (TRANSACTION_STATE_TOPIC, partition)
    } else {
        (OFFSETS_TOPIC, ctx.groups.partition_for(key))
    };
    let reg = image
        .topic(topic)
        .and_then(|t| t.partition(partition))
        .filter(|reg| reg.has_leader())
        .ok_or(GroupError::CoordinatorNotAvailable)?;
    let (host, port) =
        endpoint(image, reg.leader.0, listener).ok_or(GroupError::CoordinatorNotAvailable)?;
    Ok((reg.leader.0, host, i32::from(port)))
}

async fn lookup(
    ctx: &BrokerContext,
    listener: &str,
    key_type: i8,
    keys: &[StrBytes],
) -> Vec<Found> {
    if let Err(e) = prepare(ctx, key_type).await {
        return vec![Err(e); keys.len()];
    }
    let image = ctx.image.image();
    keys.iter()
        .map(|k| coordinator(ctx, listener, &image, key_type, k.as_str()))
        .collect()
}

/// Answers with the coordinators' endpoints of `listener` (the listener
/// the request came in on, as Kafka answers).
pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    handle_on(ctx, super::first_advertised(ctx), header, req).await
}

/// [`handle`] for a request that came in on `listener`: the coordinator
/// at its endpoint of that listener name.
pub async fn handle_on(
    ctx: &BrokerContext,
    listener: &str,
    header: &RequestHeader,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    if version >= 4 {
        let found = lookup(ctx, listener, req.key_type, &req.coordinator_keys).await;
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .zip(found)
            .map(|(key, found)| match found {
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
    let key = req.key.clone();
    match lookup(ctx, listener, key_type, std::slice::from_ref(&key))
        .await
        .pop()
        .unwrap_or(Err(GroupError::CoordinatorNotAvailable))
    {
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
