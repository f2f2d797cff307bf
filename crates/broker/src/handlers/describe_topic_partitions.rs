//! DescribeTopicPartitions (KIP-966): topics with their partitions as the
//! metadata image registers them (leader, leader epoch, replicas, ISR,
//! ELR), paged by `response_partition_limit` and a cursor.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::context::BrokerContext;
use crate::metadata::{is_internal_topic, validate_topic_name};

/// Kafka's `max.request.partition.size.limit` default.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Topic operations allowed without an authorizer (AclOperation bits READ,
/// WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS).
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = ctx.image.image();
    let limit = match req.response_partition_limit {
        l if l <= 0 => MAX_PARTITIONS_PER_RESPONSE,
        l => l.min(MAX_PARTITIONS_PER_RESPONSE),
    };
    // Requested names (sorted, deduplicated) or every topic.
    let mut names: Vec<String> = if req.topics.is_empty() {
        image.topic_names().keys().cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(ct) = &cursor_topic {
        names.retain(|n| n >= ct);
    }

    let mut topics = Vec::new();
    let mut budget = limit;
    let mut next_cursor = None;
    for name in names {
        let start = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition
        } else {
            0
        };
        let topic_name = TopicName(StrBytes::from_string(name.clone()));
        let Some(topic) = validate_topic_name(&name)
            .ok()
            .and_then(|_| image.topic(&name))
        else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(topic_name))
                    .with_topic_id(Uuid::nil())
                    .with_is_internal(false)
                    .with_topic_authorized_operations(i32::MIN),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(start),
            );
            break;
        }
        let count = topic.partitions().len() as i32;
        let end = count.min(start.saturating_add(budget));
        let ids = |list: &[sluice_metadata::BrokerId]| -> Vec<BrokerId> {
            list.iter().map(|b| BrokerId(b.0)).collect()
        };
        let partitions: Vec<_> = topic
            .partitions()
            .range(start..end)
            .map(|(&p, reg)| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(0)
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(reg.leader.0))
                    .with_leader_epoch(reg.leader_epoch.0)
                    .with_replica_nodes(ids(&reg.replicas))
                    .with_isr_nodes(ids(&reg.isr))
                    .with_eligible_leader_replicas(Some(ids(&reg.elr)))
                    .with_last_known_elr(Some(ids(&reg.last_known_elr)))
                    .with_offline_replicas(Vec::new())
            })
            .collect();
        budget -= end.saturating_sub(start).max(0);
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(0)
                .with_name(Some(topic_name.clone()))
                .with_topic_id(topic.id())
                .with_is_internal(is_internal_topic(topic.name()))
                .with_partitions(partitions)
                .with_topic_authorized_operations(TOPIC_OPERATIONS),
        );
        if end < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(end),
            );
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
