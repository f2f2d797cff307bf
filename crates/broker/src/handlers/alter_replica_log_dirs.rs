//! AlterReplicaLogDirs: asks the broker to move partitions to another of its
//! log directories. Sluice does not move partitions between directories, so
//! it answers honestly per partition: NONE when the partition is already in
//! the requested directory (a no-op, as in Kafka), LOG_DIR_NOT_FOUND for a
//! path that is not one of `log.dirs`, REPLICA_NOT_AVAILABLE for a partition
//! of the cluster this broker does not host and UNKNOWN_TOPIC_OR_PARTITION
//! for one the cluster does not have (as Kafka 4.1.2), and INVALID_REQUEST for a move to a
//! different configured directory, which Kafka would start and Sluice does
//! not do.

use std::path::Path;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, RequestHeader,
};
use sluice_storage::TopicPartition;

use crate::context::BrokerContext;

/// The configured log directory holding `tp`, if this broker has it.
fn current_dir<'a>(ctx: &'a BrokerContext, tp: &TopicPartition) -> Option<&'a Path> {
    ctx.replicas.get_partition(tp)?;
    let dirs = &ctx.config.log_dirs;
    if dirs.len() == 1 {
        return dirs.first().map(|d| d.as_path());
    }
    dirs.iter()
        .find(|d| ctx.fs.exists(&d.join(tp.dir_name())))
        .map(|d| d.as_path())
}

/// Kafka's code for a partition this broker does not have: a partition of
/// the cluster hosted elsewhere is REPLICA_NOT_AVAILABLE (Kafka keeps that
/// code for this API where others say NOT_LEADER_OR_FOLLOWER), one the
/// cluster does not have is UNKNOWN_TOPIC_OR_PARTITION.
fn not_here(ctx: &BrokerContext, tp: &TopicPartition) -> i16 {
    let known = ctx
        .image
        .topic(&tp.topic)
        .is_some_and(|t| (0..t.partitions).contains(&tp.partition));
    if known {
        ResponseError::ReplicaNotAvailable.code()
    } else {
        ResponseError::UnknownTopicOrPartition.code()
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in &req.dirs {
        let target = Path::new(dir.path.as_str());
        let known_dir = ctx.config.log_dirs.iter().any(|d| d.as_path() == target);
        for t in &dir.topics {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let tp = TopicPartition::new(t.name.0.to_string(), p);
                    let code = if !known_dir {
                        ResponseError::LogDirNotFound.code()
                    } else {
                        match current_dir(ctx, &tp) {
                            None => not_here(ctx, &tp),
                            Some(d) if d == target => 0,
                            Some(_) => ResponseError::InvalidRequest.code(),
                        }
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
