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
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        // Answered once the tombstones are replicated to the ISR.
        let deleted = match ctx.groups.delete_group(&g.0) {
            Ok(()) => ctx.groups.committed(&g.0).await,
            Err(e) => Err(e),
        };
        let code = deleted.err().map_or(0, |e| e.code());
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
