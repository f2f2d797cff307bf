//! ConsumerGroupHeartbeat (v0–v1): joining, staying in, and leaving a
//! consumer group of the KIP-848 protocol. The coordinator computes the
//! target assignment and answers with the member's epoch and, when it
//! changed (or on a full request), its assignment. v1 requires the client
//! to generate its member id; for v0 joins the broker generates one.

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::consumer::{
    validate_heartbeat, Assignment, HeartbeatRequest, TopicView, TopicsView,
};
use crate::group::GroupError;
use crate::metadata::uuid_to_base64;

/// The cluster's topics, as consumer groups see them. Internal topics are
/// included: Kafka's coordinator resolves names and regexes against every
/// topic (clients drop internal ones themselves if they want to).
pub fn topics_view(ctx: &BrokerContext) -> TopicsView {
    ctx.image
        .topics()
        .into_iter()
        .map(|t| {
            (
                t.name,
                TopicView {
                    id: t.topic_id,
                    partitions: t.partitions,
                },
            )
        })
        .collect()
}

fn error_with(e: GroupError, message: String) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

fn error(e: GroupError) -> ConsumerGroupHeartbeatResponse {
    error_with(e, e.to_string())
}

/// Kafka's message for an error of the group or member.
fn message(e: GroupError, group: &str, member: &str, epoch: i32) -> String {
    match e {
        GroupError::GroupIdNotFound if epoch == 0 => {
            format!("Group {group} is not a consumer group.")
        }
        GroupError::GroupIdNotFound => format!("Consumer group {group} not found."),
        GroupError::UnknownMemberId => {
            format!("Member {member} is not a member of group {group}.")
        }
        GroupError::FencedMemberEpoch => format!(
            "The consumer group member has a member epoch ({epoch}) that does not match the one \
             known by the group coordinator. The member must abandon all its partitions and rejoin."
        ),
        e => e.to_string(),
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: ConsumerGroupHeartbeatRequest,
    peer: Option<std::net::SocketAddr>,
) -> ConsumerGroupHeartbeatResponse {
    let version = header.request_api_version;
    let owned = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        a
    });
    let mut hb = HeartbeatRequest {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client_host: peer.map_or_else(|| "/unknown".to_string(), |p| format!("/{}", p.ip())),
    };
    if req.group_id.0.is_empty() {
        return error_with(GroupError::InvalidRequest, "GroupId can't be empty.".into());
    }
    if let Err((e, msg)) = validate_heartbeat(&hb, version, &ctx.groups.config().consumer) {
        return error_with(e, msg);
    }
    if hb.member_id.is_empty() {
        hb.member_id = uuid_to_base64(sluice_runtime::random_uuid());
    }
    if let Err(e) = ctx.groups.ensure_offsets_topic(ctx).await {
        return error(e);
    }
    let topics = topics_view(ctx);
    let (member, epoch) = (hb.member_id.clone(), hb.member_epoch);
    match ctx
        .groups
        .consumer_heartbeat(&req.group_id.0, hb, &topics)
        .await
    {
        Err(e) => error_with(e, message(e, &req.group_id.0, &member, epoch)),
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                WireAssignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
    }
}
