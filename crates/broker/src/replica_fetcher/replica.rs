//! The seam between the fetcher and the logs it appends to: what a follower
//! replica must offer ([`FollowerReplica`]) and how the fetcher finds one
//! ([`ReplicaSource`]). The broker implements both over its partitions;
//! tests use in-memory fakes.

use std::sync::Arc;

use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{StorageError, TopicPartition};

/// What one follower append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerAppend {
    /// The last offset appended (meaningful only when `bytes > 0`).
    pub last_offset: Offset,
    /// Bytes of whole batches written (a trailing partial batch is not).
    pub bytes: usize,
}

/// The local replica of a partition this broker follows. Every method may
/// touch the disk: the fetcher calls them on the blocking pool, never on a
/// network thread.
pub trait FollowerReplica: Send + Sync {
    fn log_start_offset(&self) -> Offset;
    fn log_end_offset(&self) -> Offset;
    fn high_watermark(&self) -> Offset;
    /// The latest epoch of the leader-epoch cache (`LastFetchedEpoch`).
    fn latest_epoch(&self) -> Option<LeaderEpoch>;
    /// The largest epoch `<= epoch` this log knows and where it ends
    /// (Kafka's `LeaderEpochFileCache.endOffsetFor`); `None` = undefined.
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)>;
    /// The largest record batch this log may hold (`max.message.bytes`), so
    /// a response carrying one is not refused as oversized.
    fn max_message_bytes(&self) -> usize;
    /// Whether the image made this broker the leader in `epoch`, or moved
    /// the partition to another epoch: then nothing fetched for `epoch` may
    /// be appended (Kafka's partition leader epoch check on follower appends).
    fn is_follower_in(&self, epoch: LeaderEpoch) -> bool;
    /// The leader's batches, byte for byte.
    fn append_as_follower(&self, records: &[u8]) -> Result<FollowerAppend, StorageError>;
    /// Removes everything at or after `offset`; the high watermark follows
    /// down if it was above.
    fn truncate_to(&self, offset: Offset) -> Result<(), StorageError>;
    /// Empties the log and restarts it at `offset` (the leader's log start
    /// is past everything this replica has).
    fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), StorageError>;
    /// The follower's high watermark becomes `min(leader_hw, own LEO)`
    /// (at least the log start), also when that is lower: as Kafka's
    /// `maybeUpdateHighWatermark`, it never shows consumers reading from
    /// this follower more than the leader does; returns it.
    fn update_high_watermark(&self, leader_hw: Offset) -> Offset;
    /// The leader's log start offset moved (retention, DeleteRecords):
    /// follow it when it is within this replica's high watermark.
    fn maybe_increment_log_start_offset(
        &self,
        leader_log_start: Offset,
    ) -> Result<(), StorageError>;
}

/// Where the fetcher finds the local replica of a partition.
pub trait ReplicaSource: Send + Sync + 'static {
    fn follower(&self, tp: &TopicPartition) -> Option<Arc<dyn FollowerReplica>>;
}
