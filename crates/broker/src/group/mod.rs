//! The group coordinator for Kafka's classic group protocol, with committed
//! offsets kept in the internal compacted topic `__consumer_offsets`.
//!
//! - [`classic`]: the membership state machine (pure, clock injected).
//! - [`offsets`]: committed offsets of a group and their expiry (pure).
//! - [`records`]: Kafka's record formats of `__consumer_offsets`.
//! - [`txn_offsets`]: transactional offsets pending until their
//!   transaction's marker (pure); TxnOffsetCommit and the end of a
//!   transaction are in [`coordinator`] (`coordinator/txn.rs`).
//! - [`append`]: the write queue of a `__consumer_offsets` partition
//!   (`group.coordinator.append.linger.ms`).
//! - [`coordinator`]: the async layer: group locks, waiting JoinGroup and
//!   SyncGroup requests, timers, writes to the log.
//! - `load`: replaying a partition of `__consumer_offsets` into its groups.
//!
//! This broker coordinates every group (it is the only node); a group's
//! records go to partition `abs(javaHashCode(group_id)) % partitions` like
//! Kafka, so the topic's layout matches Kafka's.

pub mod append;
pub mod classic;
pub mod consumer;
pub mod coordinator;
mod load;
pub mod offsets;
pub mod records;
pub mod txn_offsets;

pub use classic::{ClassicGroup, GroupLimits, GroupState, JoinRequest, JoinResult, SyncResult};
pub use coordinator::{
    CommitRequest, FetchedOffset, GroupCoordinator, GroupDescription, GroupListing,
    MemberDescription, TxnCommitter,
};

use crate::config::BrokerConfig;

/// The name of the internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Why a group operation failed. Each variant is one Kafka error code
/// ([`GroupError::code`]); the handlers put it on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the coordinator is loading the group's partition of __consumer_offsets")]
    CoordinatorLoadInProgress,
    #[error("this broker does not lead the group's partition of __consumer_offsets")]
    NotCoordinator,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("the member must rejoin with the member id it was given")]
    MemberIdRequired,
    #[error("stale generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("another member with the same group.instance.id replaced this one")]
    FencedInstanceId,
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("session timeout outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("the group has group.max.size members")]
    GroupMaxSizeReached,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("commit metadata longer than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("the group's members subscribe to the topic")]
    GroupSubscribedToTopic,
    #[error("invalid request")]
    InvalidRequest,
    #[error("the offsets could not be written")]
    StorageFailure,
    #[error("the member epoch is fenced: the member must abandon its partitions and rejoin")]
    FencedMemberEpoch,
    #[error("the instance id is still used by another member that has not left")]
    UnreleasedInstanceId,
    #[error("the server assignor is not supported (group.consumer.assignors)")]
    UnsupportedAssignor,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the regular expression is not valid")]
    InvalidRegularExpression,
    #[error("OffsetCommit version 9 or above must be used by consumer protocol members")]
    UnsupportedVersion,
    #[error("the partition has transactional offsets that are not committed or aborted yet")]
    UnstableOffsetCommit,
    #[error("the producer's epoch is older than the one the log knows")]
    InvalidProducerEpoch,
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the offsets cannot be written (a batch larger than the topic allows)")]
    UnknownServerError,
    /// A TxnOffsetCommit whose transaction was not verified with the
    /// transaction coordinator since its last marker (KIP-890 part 1).
    #[error("the offsets partition is not in the producer's ongoing transaction")]
    InvalidTxnState,
}

impl GroupError {
    /// The Kafka error code.
    pub fn code(self) -> i16 {
        match self {
            GroupError::UnknownTopicOrPartition => 3,
            GroupError::OffsetMetadataTooLarge => 12,
            GroupError::CoordinatorLoadInProgress => 14,
            GroupError::CoordinatorNotAvailable => 15,
            GroupError::NotCoordinator => 16,
            GroupError::IllegalGeneration => 22,
            GroupError::InconsistentGroupProtocol => 23,
            GroupError::InvalidGroupId => 24,
            GroupError::UnknownMemberId => 25,
            GroupError::InvalidSessionTimeout => 26,
            GroupError::RebalanceInProgress => 27,
            GroupError::InvalidRequest => 42,
            GroupError::NonEmptyGroup => 68,
            GroupError::GroupIdNotFound => 69,
            GroupError::MemberIdRequired => 79,
            GroupError::GroupMaxSizeReached => 81,
            GroupError::FencedInstanceId => 82,
            GroupError::GroupSubscribedToTopic => 86,
            // Kafka answers a failed append to __consumer_offsets with
            // NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE so clients retry.
            GroupError::StorageFailure => 15,
            GroupError::UnsupportedVersion => 35,
            GroupError::FencedMemberEpoch => 110,
            GroupError::UnreleasedInstanceId => 111,
            GroupError::UnsupportedAssignor => 112,
            GroupError::StaleMemberEpoch => 113,
            GroupError::InvalidRegularExpression => 128,
            GroupError::UnstableOffsetCommit => 88,
            GroupError::InvalidProducerEpoch => 47,
            GroupError::ProducerFenced => 90,
            GroupError::UnknownServerError => -1,
            GroupError::InvalidTxnState => 48,
        }
    }
}

/// `Some(e)` -> e's code, `None` -> 0.
pub fn error_code(e: Option<GroupError>) -> i16 {
    e.map_or(0, GroupError::code)
}

/// The `group.*` and `offsets.*` broker settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub limits: GroupLimits,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: i64,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
    pub offsets_commit_timeout_ms: i64,
    /// How often session/rebalance timers are checked (Sluice-only).
    pub tick_interval_ms: u64,
    /// `group.coordinator.append.linger.ms`: how long lingered coordinator
    /// writes (OffsetCommit, ConsumerGroupHeartbeat) wait for more writes
    /// to the same `__consumer_offsets` partition before one batch is
    /// written; 0 writes each at once.
    pub append_linger_ms: u64,
    /// The `group.consumer.*` settings (KIP-848 groups).
    pub consumer: consumer::ConsumerGroupConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            limits: GroupLimits::default(),
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offsets_retention_ms: 10080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_commit_timeout_ms: 5000,
            tick_interval_ms: 100,
            append_linger_ms: 5,
            consumer: consumer::ConsumerGroupConfig::default(),
        }
    }
}

impl GroupConfig {
    /// Reads the keys from the broker config (explicit value, else the table default).
    pub fn from_broker(config: &BrokerConfig) -> Self {
        let get = |name: &str, fallback: i64| config.long_setting(name, fallback);
        let d = GroupConfig::default();
        let clamp_i32 = |v: i64| v.clamp(0, i64::from(i32::MAX)) as i32;
        GroupConfig {
            limits: GroupLimits {
                min_session_timeout_ms: clamp_i32(get(
                    "group.min.session.timeout.ms",
                    i64::from(d.limits.min_session_timeout_ms),
                )),
                max_session_timeout_ms: clamp_i32(get(
                    "group.max.session.timeout.ms",
                    i64::from(d.limits.max_session_timeout_ms),
                )),
                max_size: get("group.max.size", d.limits.max_size as i64).max(1) as usize,
                initial_rebalance_delay_ms: clamp_i32(get(
                    "group.initial.rebalance.delay.ms",
                    i64::from(d.limits.initial_rebalance_delay_ms),
                )),
            },
            offsets_topic_num_partitions: clamp_i32(get(
                "offsets.topic.num.partitions",
                i64::from(d.offsets_topic_num_partitions),
            ))
            .max(1),
            offsets_topic_segment_bytes: get(
                "offsets.topic.segment.bytes",
                d.offsets_topic_segment_bytes,
            ),
            offsets_retention_ms: get("offsets.retention.minutes", 10080).saturating_mul(60_000),
            offsets_retention_check_interval_ms: get(
                "offsets.retention.check.interval.ms",
                d.offsets_retention_check_interval_ms,
            )
            .max(1),
            offset_metadata_max_bytes: get(
                "offset.metadata.max.bytes",
                d.offset_metadata_max_bytes as i64,
            )
            .max(0) as usize,
            offsets_commit_timeout_ms: get(
                "offsets.commit.timeout.ms",
                d.offsets_commit_timeout_ms,
            ),
            tick_interval_ms: d.tick_interval_ms,
            append_linger_ms: get(
                "group.coordinator.append.linger.ms",
                d.append_linger_ms as i64,
            )
            .max(0) as u64,
            consumer: {
                let min_s = get("group.consumer.min.session.timeout.ms", 45_000);
                let max_s = get("group.consumer.max.session.timeout.ms", 60_000).max(min_s);
                let min_h = get("group.consumer.min.heartbeat.interval.ms", 5_000);
                let max_h = get("group.consumer.max.heartbeat.interval.ms", 15_000).max(min_h);
                let assignors: Vec<consumer::AssignorKind> = config
                    .explicit
                    .get("group.consumer.assignors")
                    .map(String::as_str)
                    .unwrap_or("uniform,range")
                    .split(',')
                    .filter_map(consumer::AssignorKind::parse)
                    .collect();
                consumer::ConsumerGroupConfig {
                    session_timeout_ms: clamp_i32(
                        get("group.consumer.session.timeout.ms", 45_000).clamp(min_s, max_s),
                    ),
                    heartbeat_interval_ms: clamp_i32(
                        get("group.consumer.heartbeat.interval.ms", 5_000).clamp(min_h, max_h),
                    ),
                    max_size: get("group.consumer.max.size", i64::from(i32::MAX)).max(1) as usize,
                    assignors: if assignors.is_empty() {
                        d.consumer.assignors.clone()
                    } else {
                        assignors
                    },
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
