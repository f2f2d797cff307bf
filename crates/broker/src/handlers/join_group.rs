//! JoinGroup (v0–v9): waits in the group coordinator until the rebalance
//! completes (or answers at once: MEMBER_ID_REQUIRED, errors, a retry).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::{error_code, JoinRequest};

/// A member's host when the request's peer address is not known (requests
/// that do not come from a socket).
const UNKNOWN_HOST: &str = "/unknown";

/// `peer`: the connection's remote address; the member's host is written as
/// Kafka does (`/` + the IP address, e.g. `/127.0.0.1`).
pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: JoinGroupRequest,
    peer: Option<std::net::SocketAddr>,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: if version >= 5 {
            req.group_instance_id.map(|s| s.to_string())
        } else {
            None
        },
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client_host: peer.map_or_else(|| UNKNOWN_HOST.to_string(), |p| format!("/{}", p.ip())),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    // Kafka's clients find the coordinator first; be as lenient as Kafka if not.
    let _ = ctx.groups.ensure_offsets_topic(ctx).await;
    let r = ctx.groups.join(&req.group_id.0, join).await;
    let mut resp = JoinGroupResponse::default()
        .with_error_code(error_code(r.error))
        .with_generation_id(r.generation_id)
        .with_protocol_name(
            r.protocol_name
                .map(StrBytes::from_string)
                .or_else(|| (version < 7).then(|| StrBytes::from_static_str(""))),
        )
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(StrBytes::from_string);
    }
    if version >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp
}
