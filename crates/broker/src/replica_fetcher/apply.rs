//! What a follower does with each partition of a fetch answer (Kafka's
//! `AbstractFetcherThread.processFetchRequest` rules), applied to the
//! fetcher's partition states and the local replicas:
//!
//! - records: appended as they are; the fetch offset moves past them; the
//!   follower's high watermark becomes min(leader HW, own LEO) when that is
//!   higher; the log start follows the leader's within the high watermark;
//! - DivergingEpoch (KIP-320/KIP-279): truncate to min(the leader's end of
//!   that epoch, this log's end of it) — or, when this log does not know the
//!   epoch, to the end of its largest epoch below it — and fetch on from there;
//! - OFFSET_OUT_OF_RANGE: handed back, so the task can ask the leader its
//!   log start and end (see [`resolve_out_of_range`]);
//! - FENCED_LEADER_EPOCH: this broker's epoch is older than the leader's; the
//!   partition waits until the metadata image brings the new epoch;
//! - UNKNOWN_LEADER_EPOCH: the leader has not yet applied the metadata that
//!   made it leader (right after a failover, this broker's image is ahead of
//!   the new leader's): retried after [`LEADER_BEHIND_RETRY`], not after the
//!   full `replica.fetch.backoff.ms` Kafka waits, because until this follower
//!   fetches, the new leader's high watermark and every `acks=all` answer
//!   wait for it;
//! - any other error: retried after `replica.fetch.backoff.ms`;
//! - a full disk (or no descriptor left) on append: retried after
//!   `replica.fetch.backoff.ms`, so the replica catches up (and rejoins the
//!   ISR) once space is freed; the storage layer refuses such an append
//!   whole and keeps the directory online;
//! - the same for a truncation that finds the disk full (it allocates
//!   index space): the next fetch diverges again and truncation is tried
//!   anew (found by the cluster simulation: the partition stopped fetching
//!   for good and never caught up once space was freed, seed 55);
//! - any other storage error on append or truncation (a failed directory):
//!   the partition stops fetching with an error line, until the image
//!   moves it.
//!   Corrupt batches are retried instead (they may be a transient state).

use std::collections::BTreeMap;
use tokio::time::Instant;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use sluice_metadata::BrokerId;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{StorageError, TopicPartition};
use uuid::Uuid;

use super::replica::{FollowerReplica, ReplicaSource};
use super::session::SessionKey;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// How soon a partition is fetched again when the leader has not caught up
/// with the metadata that made it leader. Metadata reaches every broker
/// within milliseconds of its commit, so a few retries at most; never more
/// often than this, and never later than `replica.fetch.backoff.ms`.
pub const LEADER_BEHIND_RETRY: std::time::Duration = std::time::Duration::from_millis(25);

/// When failed partitions are fetched again.
#[derive(Clone, Copy, Debug)]
pub struct RetryAt {
    /// After `replica.fetch.backoff.ms`.
    pub backoff: Instant,
    /// After [`LEADER_BEHIND_RETRY`] (capped by `backoff`).
    pub leader_behind: Instant,
}

impl RetryAt {
    pub fn from(now: Instant, backoff: std::time::Duration) -> RetryAt {
        RetryAt {
            backoff: now + backoff,
            leader_behind: now + backoff.min(LEADER_BEHIND_RETRY),
        }
    }
}

/// Whether a partition is fetched now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    Fetching,
    /// Retried after this instant.
    Delayed(Instant),
    /// Not fetched until the metadata image adds it again with a new leader
    /// epoch (fenced, or its log refused an append).
    Stopped(String),
}

/// One partition a fetcher follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionFetchState {
    pub topic_id: Uuid,
    pub fetch_offset: Offset,
    /// The leader epoch the image gave this broker (CurrentLeaderEpoch).
    pub leader_epoch: LeaderEpoch,
    /// The log's latest epoch (LastFetchedEpoch).
    pub last_fetched_epoch: Option<LeaderEpoch>,
    pub status: FetchStatus,
    /// The leader's high watermark minus the fetch offset after the last
    /// answer with data for this partition, at least 0 (Kafka's fetcher
    /// lag); 0 until the first.
    pub lag: i64,
}

/// The partitions of one fetcher.
pub type PartitionStates = BTreeMap<TopicPartition, PartitionFetchState>;

/// What a fetch asked of a partition of its session, to tell a stale
/// answer from a current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    pub tp: TopicPartition,
    pub fetch_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

/// A partition whose fetch offset the leader does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    pub tp: TopicPartition,
    pub asked: Asked,
}

impl PartitionFetchState {
    /// Kafka's `isReplicaInSync`: the last answer found this replica caught
    /// up with the leader's high watermark (one that is not is what the
    /// follower's replication throttle holds back). Unlike Kafka, a
    /// partition not answered yet counts as in sync (its lag starts at 0),
    /// so its first fetch is never held.
    pub fn is_in_sync(&self) -> bool {
        self.lag <= 0
    }
}

/// What applying one answer did.
#[derive(Debug, Default)]
pub struct Applied {
    pub out_of_range: Vec<OutOfRange>,
    pub appended_bytes: u64,
}

/// The current state of `asked.tp` if the answer to `asked` still applies to
/// it: same fetch offset and leader epoch, being fetched, and the local
/// replica still a follower in that epoch.
fn current<'a>(
    states: &'a mut PartitionStates,
    source: &dyn ReplicaSource,
    asked: &Asked,
) -> Option<(
    &'a mut PartitionFetchState,
    std::sync::Arc<dyn FollowerReplica>,
)> {
    let state = states.get_mut(&asked.tp)?;
    if state.fetch_offset != asked.fetch_offset
        || state.leader_epoch != asked.leader_epoch
        || state.status != FetchStatus::Fetching
    {
        return None;
    }
    let replica = source.follower(&asked.tp)?;
    if !replica.is_follower_in(asked.leader_epoch) {
        return None;
    }
    Some((state, replica))
}

/// Applies the partitions of one fetch answer. `session` maps every
/// partition of the request's session to what was asked of it.
pub fn apply_fetch_response(
    states: &mut PartitionStates,
    source: &dyn ReplicaSource,
    session: &BTreeMap<SessionKey, Asked>,
    topics: &[FetchableTopicResponse],
    leader: BrokerId,
    retry_at: RetryAt,
) -> Applied {
    let mut applied = Applied::default();
    for topic in topics {
        for p in &topic.partitions {
            let Some(asked) = session.get(&(topic.topic_id, p.partition_index)) else {
                continue;
            };
            let Some((state, replica)) = current(states, source, asked) else {
                continue;
            };
            let tp = &asked.tp;
            match p.error_code {
                0 if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 => {
                    truncate_on_divergence(
                        tp,
                        state,
                        replica.as_ref(),
                        p,
                        leader,
                        retry_at.backoff,
                    );
                }
                0 => {
                    applied.appended_bytes +=
                        append(tp, state, replica.as_ref(), p, leader, retry_at.backoff)
                }
                OFFSET_OUT_OF_RANGE => applied.out_of_range.push(OutOfRange {
                    tp: tp.clone(),
                    asked: asked.clone(),
                }),
                FENCED_LEADER_EPOCH => {
                    tracing::info!(partition = %tp, leader = leader.0, epoch = state.leader_epoch.0,
                        "the leader has a newer leader epoch than this replica; waiting for the metadata image before fetching again");
                    state.status = FetchStatus::Stopped("fenced leader epoch".into());
                }
                UNKNOWN_LEADER_EPOCH => {
                    tracing::debug!(partition = %tp, leader = leader.0, epoch = state.leader_epoch.0,
                        "the leader has not applied this leader epoch yet; fetching again shortly");
                    state.status = FetchStatus::Delayed(retry_at.leader_behind);
                }
                code => {
                    tracing::info!(partition = %tp, leader = leader.0, error = code,
                        "fetch of a partition failed; retrying after replica.fetch.backoff.ms");
                    state.status = FetchStatus::Delayed(retry_at.backoff);
                }
            }
        }
    }
    applied
}

/// KIP-279: the offset to truncate to for the leader's `(epoch, end_offset)`.
pub fn truncation_offset(
    replica: &dyn FollowerReplica,
    epoch: LeaderEpoch,
    end_offset: Offset,
    fetch_offset: Offset,
) -> Offset {
    let leo = replica.log_end_offset();
    if end_offset.0 < 0 {
        // No end offset: nothing to truncate.
        return fetch_offset.min(leo);
    }
    if epoch.0 < 0 {
        return end_offset.min(leo);
    }
    match replica.end_offset_for_epoch(epoch) {
        // This log does not know the leader's epoch: truncate to the end of
        // its largest epoch below it; the next fetch says whether more goes.
        Some((own_epoch, own_end)) if own_epoch != epoch => own_end.min(leo),
        Some((_, own_end)) => own_end.min(end_offset).min(leo),
        // No epoch this old here: the leader's end is the safe point.
        None => end_offset.min(leo),
    }
}

fn truncate_on_divergence(
    tp: &TopicPartition,
    state: &mut PartitionFetchState,
    replica: &dyn FollowerReplica,
    p: &PartitionData,
    leader: BrokerId,
    backoff: Instant,
) {
    let epoch = LeaderEpoch(p.diverging_epoch.epoch);
    let end = Offset(p.diverging_epoch.end_offset);
    let to = truncation_offset(replica, epoch, end, state.fetch_offset);
    let leo = replica.log_end_offset();
    if to < leo {
        tracing::info!(partition = %tp, leader = leader.0, diverging_epoch = epoch.0, leader_end_offset = end.0,
            from = leo.0, to = to.0, "truncating a diverging follower log");
    }
    // Also at the log end: truncation drops epoch entries that start there
    // (an epoch this broker led without appending), or the next fetch would
    // send the same LastFetchedEpoch and diverge again, without end.
    if let Err(e) = replica.truncate_to(to) {
        stop_or_retry(tp, state, leader, "truncation", &e, backoff);
        return;
    }
    state.fetch_offset = replica.log_end_offset();
    state.last_fetched_epoch = replica.latest_epoch();
}

/// Appends the records of `p`; returns the bytes written.
fn append(
    tp: &TopicPartition,
    state: &mut PartitionFetchState,
    replica: &dyn FollowerReplica,
    p: &PartitionData,
    leader: BrokerId,
    backoff: Instant,
) -> u64 {
    let leo = replica.log_end_offset();
    if leo != state.fetch_offset {
        // Kafka: "Offset mismatch for partition" (the partition fails).
        let reason = format!(
            "the log ends at {leo} but the fetch asked for {}",
            state.fetch_offset
        );
        tracing::error!(partition = %tp, leader = leader.0, "{reason}; the partition stops fetching");
        state.status = FetchStatus::Stopped(reason);
        return 0;
    }
    let mut written = 0;
    if let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) {
        match replica.append_as_follower(records) {
            Ok(a) if a.bytes > 0 => {
                state.fetch_offset = a.last_offset.plus(1);
                written = a.bytes as u64;
            }
            Ok(_) => {}
            Err(e @ (StorageError::CorruptRecord(_) | StorageError::InvalidRecord(_))) => {
                // Kafka retries these: the next fetch may read them whole.
                tracing::error!(partition = %tp, leader = leader.0, offset = state.fetch_offset.0, error = %e,
                    "invalid batches fetched from the leader; retrying");
                return 0;
            }
            Err(e) => {
                stop_or_retry(tp, state, leader, "append", &e, backoff);
                return 0;
            }
        }
    }
    replica.update_high_watermark(Offset(p.high_watermark));
    state.lag = (p.high_watermark - state.fetch_offset.0).max(0);
    if let Err(e) = replica.maybe_increment_log_start_offset(Offset(p.log_start_offset)) {
        tracing::warn!(partition = %tp, leader = leader.0, error = %e,
            "cannot move the log start offset to the leader's");
    }
    state.last_fetched_epoch = replica.latest_epoch();
    written
}

/// After a failed `what` (append or truncation): retried after `backoff`
/// when the disk is full or no descriptor is left (the storage layer
/// refuses such a change whole and keeps the directory online), or after
/// an I/O error the storage layer undid (a failed write cut back to the
/// last whole batch: the directory stays online, and the next fetch
/// writes the batch again; one it could not undo takes the directory
/// offline, the next try fails with `LogDirOffline` and the broker halts).
/// Otherwise the partition stops fetching.
fn stop_or_retry(
    tp: &TopicPartition,
    state: &mut PartitionFetchState,
    leader: BrokerId,
    what: &str,
    e: &StorageError,
    backoff: Instant,
) {
    if e.is_resource_exhausted() {
        tracing::warn!(partition = %tp, leader = leader.0, offset = state.fetch_offset.0, error = %e,
            "follower {what} refused (disk full?); retrying after replica.fetch.backoff.ms");
        state.status = FetchStatus::Delayed(backoff);
        return;
    }
    if matches!(e, StorageError::Io { .. }) {
        tracing::error!(partition = %tp, leader = leader.0, offset = state.fetch_offset.0, error = %e,
            "follower {what} failed and was undone; retrying after replica.fetch.backoff.ms");
        state.status = FetchStatus::Delayed(backoff);
        return;
    }
    tracing::error!(partition = %tp, leader = leader.0, offset = state.fetch_offset.0, error = %e,
        "follower {what} failed: the partition stops fetching (the leader will shrink it out of the ISR) until the metadata image moves it");
    state.status = FetchStatus::Stopped(format!("{what} failed: {e}"));
}

/// Kafka's rules for a fetch offset the leader does not have, given the
/// leader's log `start` and `end` offsets: a follower ahead of the leader's
/// end truncates to it; one behind the leader's log start empties its log
/// and starts there; otherwise it fetches on from its own end.
pub fn resolve_out_of_range(
    states: &mut PartitionStates,
    source: &dyn ReplicaSource,
    oor: &OutOfRange,
    leader_start: Offset,
    leader_end: Offset,
    leader: BrokerId,
    backoff: Instant,
) {
    let Some((state, replica)) = current(states, source, &oor.asked) else {
        return;
    };
    let tp = &oor.tp;
    let leo = replica.log_end_offset();
    let result = if leader_end < leo {
        tracing::warn!(partition = %tp, leader = leader.0, from = leo.0, to = leader_end.0,
            "replica is ahead of the leader's log end offset; truncating to it");
        replica.truncate_to(leader_end).map(|_| "truncation")
    } else if leader_start > leo {
        tracing::warn!(partition = %tp, leader = leader.0, log_end = leo.0, leader_start = leader_start.0,
            "replica is behind the leader's log start offset; emptying it to start there");
        replica
            .truncate_fully_and_start_at(leader_start)
            .map(|_| "truncation")
    } else {
        Ok("none")
    };
    match result {
        Ok(_) => {
            state.fetch_offset = replica.log_end_offset();
            state.last_fetched_epoch = replica.latest_epoch();
        }
        Err(e) => stop_or_retry(tp, state, leader, "truncation", &e, backoff),
    }
}
