//! DescribeGroups (v0–v5): state, protocol and members; member metadata and
//! assignments only while the group is Stable, as Kafka.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let groups = req
        .groups
        .into_iter()
        .map(|gid| match ctx.groups.describe_group(&gid.0) {
            Err(e) => DescribedGroup::default()
                .with_group_id(gid)
                .with_error_code(e.code())
                .with_group_state(StrBytes::from_static_str("")),
            Ok(d) => DescribedGroup::default()
                .with_group_id(gid)
                .with_group_state(StrBytes::from_static_str(d.state.name()))
                .with_protocol_type(StrBytes::from_string(d.protocol_type))
                .with_protocol_data(StrBytes::from_string(d.protocol_name))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(if version >= 4 {
                                    m.group_instance_id.map(StrBytes::from_string)
                                } else {
                                    None
                                })
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
