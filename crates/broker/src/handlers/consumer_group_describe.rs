//! ConsumerGroupDescribe (v0–v1): a consumer group's epochs, assignor and
//! members with their current and target assignments (topic ids and names
//! from the metadata store). A classic group or an unknown id answers
//! GROUP_ID_NOT_FOUND, as Kafka does (admin clients then fall back to
//! DescribeGroups).

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::consumer::Assignment;
use crate::group::GroupError;

/// Kafka's bit field of the operations allowed on a group without an
/// authorizer (measured: Kafka 4.1.2 answers 3400).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);

fn wire(ctx: &BrokerContext, a: &Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        a.iter()
            .filter_map(|(id, ps)| {
                let t = ctx.image.topic_by_id(*id)?;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(TopicName(StrBytes::from_string(t.name)))
                        .with_partitions(ps.iter().copied().collect()),
                )
            })
            .collect(),
    )
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let version = header.request_api_version;
    let config = &ctx.groups.config().consumer;
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let fail = |e: GroupError| {
                let msg = match e {
                    GroupError::GroupIdNotFound => {
                        format!("Group {} not found.", id.0.as_str())
                    }
                    e => e.to_string(),
                };
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(msg)))
            };
            if id.0.is_empty() {
                return DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(GroupError::InvalidGroupId.code());
            }
            let g = match ctx.groups.describe_consumer_group(&id.0) {
                Ok(g) => g,
                Err(e) => return fail(e),
            };
            let members = g
                .members()
                .map(|m| {
                    let s = &m.subscription;
                    let mut member = Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_instance_id(s.instance_id.clone().map(StrBytes::from_string))
                        .with_rack_id(s.rack_id.clone().map(StrBytes::from_string))
                        .with_member_epoch(m.assignment.member_epoch)
                        .with_client_id(StrBytes::from_string(s.client_id.clone()))
                        .with_client_host(StrBytes::from_string(s.client_host.clone()))
                        .with_subscribed_topic_names(
                            s.subscribed_topic_names
                                .iter()
                                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(
                            s.subscribed_topic_regex.clone().map(StrBytes::from_string),
                        )
                        .with_assignment(wire(ctx, &m.assignment.assigned))
                        .with_target_assignment(wire(ctx, &g.target_of(&m.member_id)));
                    if version >= 1 {
                        // 1 = a member of the consumer protocol.
                        member = member.with_member_type(1);
                    }
                    member
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(StrBytes::from_static_str(g.state().as_str()))
                .with_group_epoch(g.group_epoch())
                .with_assignment_epoch(g.assignment_epoch())
                .with_assignor_name(StrBytes::from_static_str(g.assignor(config).name()))
                .with_members(members)
                .with_authorized_operations(if req.include_authorized_operations {
                    // READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS:
                    // everything on a group (no authorizer), as Kafka answers.
                    GROUP_OPERATIONS
                } else {
                    i32::MIN
                })
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
