//! OffsetCommit (v2–v9). Per partition: unknown topics or partitions get
//! UNKNOWN_TOPIC_OR_PARTITION, metadata longer than
//! `offset.metadata.max.bytes` gets OFFSET_METADATA_TOO_LARGE; the rest is
//! validated against the group (member, generation) and written to
//! `__consumer_offsets` before the answer.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};

use crate::context::BrokerContext;
use crate::group::{CommitRequest, GroupError};

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let max_metadata = ctx.groups.config().offset_metadata_max_bytes;
    // (topic index, partition index, error) for each requested partition.
    let mut errors: Vec<Vec<Option<GroupError>>> = Vec::with_capacity(req.topics.len());
    let mut commits = Vec::new();
    for t in &req.topics {
        let topic = ctx.image.topic(&t.name.0);
        let mut errs = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            let err = match &topic {
                Some(tm) if p.partition_index >= 0 && p.partition_index < tm.partitions => {
                    if metadata.len() > max_metadata {
                        Some(GroupError::OffsetMetadataTooLarge)
                    } else {
                        None
                    }
                }
                _ => Some(GroupError::UnknownTopicOrPartition),
            };
            if err.is_none() {
                commits.push(CommitRequest {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: metadata.to_string(),
                });
            }
            errs.push(err);
        }
        errors.push(errs);
    }
    let expire = (version <= 4 && req.retention_time_ms >= 0)
        .then(|| ctx.clock.now_ms().saturating_add(req.retention_time_ms));
    let instance = if version >= 7 {
        req.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let _ = ctx.groups.ensure_offsets_topic(ctx).await;
    let group_err = if commits.is_empty() {
        None
    } else {
        ctx.groups
            .commit_offsets_at_version(
                &req.group_id.0,
                &req.member_id,
                instance.as_deref(),
                req.generation_id_or_member_epoch,
                expire,
                commits,
                version,
            )
            .await
            .err()
    };
    let topics = req
        .topics
        .into_iter()
        .zip(errors)
        .map(|(t, errs)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(errs)
                        .map(|(p, e)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(e.or(group_err).map_or(0, GroupError::code))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
