//! DeleteGroups (v0–v2): deletes groups without members, with their
//! committed offsets (tombstones in `__consumer_offsets`).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, RequestHeader};

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|g| {
            let code = ctx.groups.delete_group(&g.0).err().map_or(0, |e| e.code());
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
