//! SyncGroup (v0–v5): the leader's assignment is stored (GroupMetadata
//! record) and handed to every member.

use kafka_protocol::messages::{RequestHeader, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::error_code;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = header.request_api_version;
    let instance = if version >= 3 {
        req.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let (ptype, pname) = if version >= 5 {
        (
            req.protocol_type.as_ref().map(|s| s.to_string()),
            req.protocol_name.as_ref().map(|s| s.to_string()),
        )
    } else {
        (None, None)
    };
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let r = ctx
        .groups
        .sync(
            &req.group_id.0,
            &req.member_id,
            instance.as_deref(),
            req.generation_id,
            ptype.as_deref(),
            pname.as_deref(),
            assignments,
        )
        .await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(error_code(r.error))
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.protocol_type = r.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = r.protocol_name.map(StrBytes::from_string);
    }
    resp
}
