//! OffsetDelete (v0): removes committed offsets of a group (tombstones in
//! `__consumer_offsets`). Refused per partition with
//! GROUP_SUBSCRIBED_TO_TOPIC while members subscribe to the topic.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::GroupError;

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let mut results: Vec<(String, i32, Option<GroupError>)> = Vec::new();
    let mut valid = Vec::new();
    for t in &req.topics {
        let topic = ctx.image.topic(&t.name.0);
        for p in &t.partitions {
            let known = topic
                .as_ref()
                .is_some_and(|tm| p.partition_index >= 0 && p.partition_index < tm.partitions);
            if known {
                valid.push((t.name.0.to_string(), p.partition_index));
            } else {
                results.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    Some(GroupError::UnknownTopicOrPartition),
                ));
            }
        }
    }
    let deleted = match ctx.groups.delete_offsets(&req.group_id.0, valid) {
        // Answered once the tombstones are replicated to the ISR.
        Ok(done) => ctx.groups.committed(&req.group_id.0).await.map(|()| done),
        Err(e) => Err(e),
    };
    match deleted {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(done) => {
            results.extend(done);
            let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
            for (t, p, e) in results {
                let part = OffsetDeleteResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(e.map_or(0, GroupError::code));
                match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
                    Some(x) => x.partitions.push(part),
                    None => topics.push(
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(vec![part]),
                    ),
                }
            }
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
