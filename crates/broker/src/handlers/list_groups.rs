//! ListGroups (v0–v5), with the v4 state filter and the v5 type filter
//! ("classic" or "consumer", the KIP-848 groups).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let groups = ctx
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state_name.to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if version >= 4 {
                l.group_state = StrBytes::from_static_str(g.state_name);
            }
            if version >= 5 {
                l.group_type = StrBytes::from_static_str(g.group_type);
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
