//! Heartbeat (v0–v4): keeps a member's session alive; REBALANCE_IN_PROGRESS
//! tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use crate::context::BrokerContext;
use crate::group::error_code;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let instance = if header.request_api_version >= 3 {
        req.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let r = ctx.groups.heartbeat(
        &req.group_id.0,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(error_code(r.err()))
}
