//! Transactional offset commits on the coordinator (KIP-98 TxnOffsetCommit,
//! KIP-447 member fencing) and the end of a transaction in a partition of
//! `__consumer_offsets` (Kafka's `GroupMetadataManager.handleTxnCompletion`,
//! `OffsetMetadataManager.replayEndTransactionMarker`).
//!
//! A TxnOffsetCommit is written at once (after whatever is staged) as one
//! transactional batch of the request's producer
//! ([`super::AppendQueue::write_transactional`]); its offsets are then
//! pending in the group ([`super::GroupEntry::pending`]) until
//! [`GroupCoordinator::complete_transaction`] is told the marker was
//! written.

use sluice_record::{ProducerEpoch, ProducerId};
use sluice_storage::producer_state::{Verification, VerificationGuard};

use super::{commit_values, CommitRequest, GroupCoordinator, GroupEntry};
use crate::group::records;
use crate::group::txn_offsets::PendingTxnOffsets;
use crate::group::{GroupError, GroupState};

/// Who sends a TxnOffsetCommit: the transaction's producer and, from v3 on
/// (KIP-447), the consumer group member it commits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnCommitter {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The member's generation (classic) or member epoch (consumer group);
    /// -1 below v3 and from producers outside group management.
    pub generation_id: i32,
    /// "" below v3.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl GroupCoordinator {
    /// TxnOffsetCommit of `commits` (already checked by the handler: the
    /// topics exist, the metadata is not too long). Validates the member as
    /// Kafka does for a transactional commit ([`validate_txn_commit`]);
    /// a group that does not exist is created (empty, without protocol)
    /// when the committer is outside group management (generation < 0),
    /// else the answer is ILLEGAL_GENERATION. The offsets are written as
    /// one transactional batch and stay pending until their transaction
    /// ends; the answer waits until the batch is replicated to the ISR.
    pub async fn commit_transactional_offsets(
        &self,
        group_id: &str,
        committer: &TxnCommitter,
        commits: Vec<CommitRequest>,
    ) -> Result<(), GroupError> {
        self.commit_verified_offsets(group_id, committer, commits, Verification::NotRequired)
            .await
    }

    /// [`GroupCoordinator::commit_transactional_offsets`] with KIP-890's
    /// `verification`: the guard of [`GroupCoordinator::start_offsets_verification`],
    /// taken before the transaction coordinator was asked. A batch that
    /// would start the transaction with a guard a marker has voided since is
    /// refused (INVALID_TXN_STATE) and nothing is pending.
    pub async fn commit_verified_offsets(
        &self,
        group_id: &str,
        committer: &TxnCommitter,
        commits: Vec<CommitRequest>,
        verification: Verification,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let partition = self.loaded_partition(group_id)?;
        let group = match self.get_group(group_id)? {
            Some(g) => g,
            None if committer.generation_id < 0 => self.get_or_create_group(group_id)?,
            None => return Err(GroupError::IllegalGeneration),
        };
        let queue = {
            let mut guard = group.lock();
            let entry = &mut *guard;
            validate_txn_commit(entry, committer)?;
            if commits.is_empty() {
                return Ok(());
            }
            let queue = partition
                .queue
                .get()
                .ok_or(GroupError::CoordinatorNotAvailable)?
                .clone();
            let now = self.now();
            let values = commit_values(commits, now, None);
            let recs = values
                .iter()
                .map(|(c, v)| {
                    (
                        records::offset_key(group_id, &c.topic, c.partition),
                        Some(records::offset_value(v)),
                    )
                })
                .collect();
            let first = queue.write_transactional(
                recs,
                (committer.producer_id, committer.producer_epoch),
                verification,
            )?;
            for (i, (c, v)) in values.into_iter().enumerate() {
                let at = first.value().saturating_add(i as i64);
                entry
                    .pending
                    .add(committer.producer_id, c.topic, c.partition, v, at);
            }
            partition
                .txn_producers
                .lock()
                .entry(committer.producer_id)
                .or_default()
                .insert(group_id.to_string());
            queue
        };
        queue.committed().await
    }

    /// Starts KIP-890 part 1 in the group's offsets partition for a
    /// TxnOffsetCommit of `producer_id` (Kafka's coordinator runtime calls
    /// `maybeStartTransactionVerification` before it asks the transaction
    /// coordinator): the guard the write must bring, or `None` when the
    /// producer's transaction is open there already and nothing need be
    /// asked. Errors as the write would give them (partition not served
    /// here, or loading).
    pub fn start_offsets_verification(
        &self,
        group_id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) -> Result<Option<VerificationGuard>, GroupError> {
        let partition = self.loaded_partition(group_id)?;
        let queue = partition
            .queue
            .get()
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        queue.start_verification(producer_id, producer_epoch)
    }

    /// The group's pending transactional offsets (a copy; empty when the
    /// group does not exist).
    pub fn pending_offsets(&self, group_id: &str) -> Result<PendingTxnOffsets, GroupError> {
        Ok(self
            .get_group(group_id)?
            .map(|g| g.lock().pending.clone())
            .unwrap_or_default())
    }

    /// The transaction of `producer_id` ended in partition
    /// `offsets_partition` of `__consumer_offsets`: its marker (COMMIT if
    /// `commit`, else ABORT) is in that partition's log. Every group of the
    /// partition with pending offsets of the producer gets them committed
    /// (unless a plain commit of the same partition is later in the log)
    /// or dropped. One map lookup when the producer has nothing pending
    /// there.
    ///
    /// Call it only after the marker is appended: a partition that is
    /// (re)loading answers COORDINATOR_LOAD_IN_PROGRESS, and one this
    /// broker does not serve COORDINATOR_NOT_AVAILABLE; WriteTxnMarkers
    /// then reports a retriable error so the marker is written again once
    /// the load is done (the loader applies the markers it reads itself).
    pub fn complete_transaction(
        &self,
        offsets_partition: i32,
        producer_id: ProducerId,
        commit: bool,
    ) -> Result<(), GroupError> {
        let parts = self.parts()?;
        let p = usize::try_from(offsets_partition)
            .ok()
            .and_then(|i| parts.get(i))
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        if !p.loaded.load(std::sync::atomic::Ordering::Acquire) {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        let Some(groups) = p.txn_producers.lock().remove(&producer_id) else {
            return Ok(());
        };
        for id in groups {
            let Some(group) = p.groups.lock().get(&id).cloned() else {
                continue;
            };
            let mut guard = group.lock();
            let entry = &mut *guard;
            let done = entry
                .pending
                .complete(producer_id, commit, &mut entry.offsets);
            tracing::debug!(group = %id, producer_id = producer_id.0, commit, committed = done.committed, dropped = done.dropped, "transaction ended");
        }
        Ok(())
    }
}

/// Kafka's checks of a transactional commit's committer against the group
/// (`ClassicGroup.validateOffsetCommit` / `ConsumerGroup.validateOffsetCommit`
/// with `isTransactional`):
/// - a consumer group (KIP-848): anyone while it has no members and the
///   epoch is < 0; else the member must exist (UNKNOWN_MEMBER_ID) and send
///   its current member epoch (a stale one is ILLEGAL_GENERATION for
///   TxnOffsetCommit);
/// - a classic group: Dead is COORDINATOR_NOT_AVAILABLE; generation < 0 on
///   an Empty group is accepted; a committer naming a member (generation,
///   member id or instance id) must be that member (UNKNOWN_MEMBER_ID,
///   FENCED_INSTANCE_ID for another incarnation of the static member) of
///   the current generation (ILLEGAL_GENERATION); one naming nothing
///   (v0–v2) is accepted whatever the state, and a rebalance in progress
///   does not refuse a transactional commit.
pub(crate) fn validate_txn_commit(
    entry: &GroupEntry,
    committer: &TxnCommitter,
) -> Result<(), GroupError> {
    let generation = committer.generation_id;
    let member_id = committer.member_id.as_str();
    if let Some(c) = &entry.consumer {
        if generation < 0 && c.is_empty() {
            return Ok(());
        }
        let m = c.member(member_id).ok_or(GroupError::UnknownMemberId)?;
        if m.assignment.member_epoch != generation {
            return Err(GroupError::IllegalGeneration);
        }
        return Ok(());
    }
    let g = &entry.group;
    if g.state() == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if generation < 0 && g.state() == GroupState::Empty {
        return Ok(());
    }
    if generation >= 0 || !member_id.is_empty() || committer.group_instance_id.is_some() {
        if let Some(instance) = committer.group_instance_id.as_deref() {
            match g
                .members()
                .find(|m| m.group_instance_id.as_deref() == Some(instance))
            {
                None => return Err(GroupError::UnknownMemberId),
                Some(m) if m.member_id != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if g.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != g.generation_id() {
            return Err(GroupError::IllegalGeneration);
        }
    }
    Ok(())
}
