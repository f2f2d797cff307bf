//! The controller mutation quota of CreateTopics, CreatePartitions and
//! DeleteTopics (KIP-599), as Kafka applies it: the active controller
//! charges each topic's partitions to the client's quota group (one token
//! bucket per group for the whole cluster, `sluice_controller::quota`)
//! and refuses a topic while the group is in debt, from the versions
//! Kafka's quota is strict. The broker forwards each request with the
//! client's principal name, client id and version ([`requester`]; Kafka's
//! envelope), answers the throttle time the controller gives, and mutes
//! the connection for it (Kafka's `sendForwardedResponse`).

use kafka_protocol::messages::RequestHeader;
use sluice_controller::MutationRequester;

pub use sluice_controller::quota::mutation::{
    CREATE_PARTITIONS_STRICT_SINCE, CREATE_TOPICS_STRICT_SINCE, DELETE_TOPICS_STRICT_SINCE,
};

use crate::request::RequestContext;

/// Kafka's `Errors.THROTTLING_QUOTA_EXCEEDED`.
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

/// Whom the controller charges a client's request to.
pub fn requester(request: &RequestContext, header: &RequestHeader) -> MutationRequester {
    requester_of(request.principal.name(), header, header.request_api_version)
}

/// The requester `user` with `header`'s client id, at `api_version`.
pub fn requester_of(user: &str, header: &RequestHeader, api_version: i16) -> MutationRequester {
    MutationRequester {
        user: user.to_string(),
        client_id: header.client_id.as_deref().unwrap_or("").to_string(),
        api_version,
    }
}

/// The newest CreateTopics version (Kafka's auto-creation forwards as
/// its newest, so a strict quota).
pub const AUTO_CREATION_VERSION: i16 = 7;

/// The throttle to answer: the controller's, with the connection muted
/// for it after the response.
pub fn throttle(request: &RequestContext, controller_throttle_ms: i32) -> i32 {
    if controller_throttle_ms > 0 {
        request
            .throttle
            .mute_after_response(i64::from(controller_throttle_ms));
    }
    controller_throttle_ms.max(0)
}
