//! LeaveGroup (v0–v5): v0–v2 remove one member by id; v3+ remove a batch of
//! members by id or by group.instance.id, with one error per member.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = header.request_api_version;
    if version < 3 {
        let members = [(req.member_id.to_string(), None)];
        let code = match ctx.groups.leave(&req.group_id.0, &members) {
            Err(e) => e.code(),
            Ok(results) => results
                .into_iter()
                .next()
                .and_then(|r| r.err())
                .map_or(0, |e| e.code()),
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    match ctx.groups.leave(&req.group_id.0, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) => LeaveGroupResponse::default().with_members(
            req.members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(r.err().map_or(0, |e| e.code()))
                })
                .collect(),
        ),
    }
}
