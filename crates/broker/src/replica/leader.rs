//! The leader side of a [`Partition`]: its role from the image, appends
//! and follower fetches moving the high watermark, `acks=all` waits and
//! ISR checks. The rules themselves live in the pure [`super::isr`]; this
//! file holds the locking and the wake-ups.
//!
//! Invariants:
//! - `solo` is true only while this broker leads and is the partition's
//!   only replica; then appends move the high watermark directly (the
//!   one-node fast path) and the locked state learns it on its next use
//!   (`observe_high_watermark`).
//! - The high watermark watch is moved under the replication lock, so
//!   concurrent movers publish in order, and before the purgatory is
//!   completed (see [`super::purgatory`]).
//! - Losing leadership ends every `acks=all` wait with NOT_LEADER; an ISR
//!   that falls under min ISR ends them with
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use sluice_metadata::BrokerId;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::producer_state::Verification;
use uuid::Uuid;

use super::isr::{AlterAnswer, AnswerEffect, Assignment, IsrProposal, LeaderState};
use super::purgatory::{Completion, Registered};
use super::selector::{eligible, FollowerCandidate};
use crate::partition::Partition;

/// Why an `acks=all` wait ended without the high watermark covering the
/// append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationWait {
    /// The ISR fell under `min.insync.replicas` meanwhile.
    #[error("the ISR fell under min.insync.replicas")]
    NotEnoughReplicasAfterAppend,
    /// Leadership moved.
    #[error("this broker no longer leads the partition")]
    NotLeader,
    #[error("timed out waiting for the followers")]
    TimedOut,
}

impl ReplicationWait {
    /// Kafka's code for it.
    pub fn code(self) -> i16 {
        match self {
            ReplicationWait::NotEnoughReplicasAfterAppend => {
                ResponseError::NotEnoughReplicasAfterAppend.code()
            }
            ReplicationWait::NotLeader => ResponseError::NotLeaderOrFollower.code(),
            ReplicationWait::TimedOut => ResponseError::RequestTimedOut.code(),
        }
    }
}

/// This broker's role for one partition, from its registration.
#[derive(Clone, Debug)]
pub struct ReplicaRole {
    pub me: BrokerId,
    pub topic_id: Uuid,
    /// The partition's leader (maybe another broker, or none).
    pub leader: BrokerId,
    pub assignment: Assignment,
    /// The topic's effective `min.insync.replicas`.
    pub min_insync: i32,
    /// `replica.lag.time.max.ms`.
    pub max_lag_ms: i64,
}

impl ReplicaRole {
    /// The only replica of a partition, leading it (tests, one node).
    pub fn alone(me: BrokerId, leader_epoch: LeaderEpoch) -> Self {
        ReplicaRole {
            me,
            topic_id: Uuid::nil(),
            leader: me,
            assignment: Assignment {
                replicas: vec![me],
                isr: vec![me],
                leader_epoch,
                partition_epoch: sluice_metadata::PartitionEpoch(0),
                unavailable: Vec::new(),
            },
            min_insync: 1,
            max_lag_ms: 30_000,
        }
    }
}

impl Partition {
    /// Makes this broker the partition's leader or a follower as the image
    /// says. A new leader starts its high watermark from the current one
    /// (at most the log end) and forgets what it knew of followers.
    pub fn become_replica(&self, role: &ReplicaRole) {
        let leads = role.leader == role.me;
        let epoch = role.assignment.leader_epoch;
        // Waits for appends in flight as leader; later ones see the new role.
        let _role = self.role.write();
        let mut rep = self.replication.lock();
        self.leader_epoch.store(epoch.0, Ordering::Release);
        self.leader.store(leads, Ordering::Release);
        if !leads {
            *rep = None;
            self.solo.store(false, Ordering::Release);
            drop(rep);
            self.purgatory.fail_all(Completion::NotLeader);
            return;
        }
        *self.topic_id.lock() = role.topic_id;
        let leo = self.log.log_end_offset();
        let now = self.clock.now_ms();
        if rep.as_ref().is_none_or(|s| s.leader_epoch() != epoch) {
            // Kafka's maybeAssignEpochStartOffset: the new epoch starts at
            // the log end, before anything is appended in it.
            if let Err(e) = self.log.assign_epoch_start_offset(epoch, leo) {
                tracing::warn!(partition = %self.topic_partition(), error = %e, "cannot record the leader epoch's start offset");
            }
        }
        let hw = self.high_watermark();
        let st = match rep.as_mut() {
            Some(st) => {
                st.observe_high_watermark(hw);
                st.update(&role.assignment, leo, now);
                st.set_min_insync(role.min_insync);
                st
            }
            None => rep.insert(LeaderState::new(
                role.me,
                &role.assignment,
                leo,
                hw,
                role.min_insync,
                role.max_lag_ms,
                now,
            )),
        };
        self.solo.store(st.is_solo(), Ordering::Release);
        let moved = st.refresh(leo, now);
        let under = st.under_min_isr();
        if let Some(hw) = moved {
            self.advance_high_watermark(hw);
        }
        drop(rep);
        if under {
            self.purgatory
                .fail_all(Completion::NotEnoughReplicasAfterAppend);
        }
    }

    /// Stops leading (the partition went offline or away).
    pub(crate) fn stop_leading(&self) {
        let _role = self.role.write();
        self.leader.store(false, Ordering::Release);
        *self.replication.lock() = None;
        self.solo.store(false, Ordering::Release);
        self.purgatory.fail_all(Completion::NotLeader);
    }

    /// The leader epoch appends are stamped with and requests are checked against.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.leader_epoch.load(Ordering::Acquire))
    }

    /// Appends `batch` as this partition's leader, in its leader epoch;
    /// `Ok(None)` when this broker no longer leads it. The role check and
    /// the append happen under the role lock [`Partition::become_replica`]
    /// takes exclusively (Kafka's `leaderIsrUpdateLock`), so a log that
    /// turned follower never gets a leader's batch after the fetcher
    /// started appending the new leader's (the coordinator's writes go
    /// through here: a stale write there made a follower's log diverge).
    /// The append's origin is the coordinator's
    /// ([`sluice_storage::log::AppendOrigin::Coordinator`]): producer
    /// batches are checked for their epoch only (TxnOffsetCommit batches
    /// carry base sequence -1) and may not break a transaction's rules;
    /// a TxnOffsetCommit batch that would start a transaction brings its
    /// KIP-890 `verification` (see `sluice_storage::producer_state::verification`).
    pub fn append_as_leader_checked(
        &self,
        batch: &mut [u8],
        verification: Verification,
    ) -> Result<Option<sluice_storage::AppendInfo>, sluice_storage::StorageError> {
        let _role = self.role.read();
        if !self.is_leader() {
            return Ok(None);
        }
        self.log
            .append_as_leader_from(
                batch,
                self.leader_epoch(),
                sluice_storage::log::AppendOrigin::Coordinator,
                verification,
            )
            .map(Some)
    }

    /// A Produce request's batches, appended as [`Partition::append_as_leader_checked`]
    /// appends (`Ok(None)`: this broker no longer leads the partition).
    /// Without the role lock, a produce request that passed the handler's
    /// leadership check just before the image made this broker a follower
    /// appended after the fetcher's truncation, stamped with the new
    /// leader's epoch: a batch the new leader never had, in an epoch no
    /// divergence check could tell apart (found by the 5-node nemesis:
    /// replicas differing under the high watermark, consumers reading
    /// offsets that later held other records).
    ///
    /// `verification`: the request's KIP-890 part 1 guard (see
    /// `sluice_storage::producer_state::verification`).
    pub fn append_produce(
        &self,
        records: &[u8],
        verification: Verification,
    ) -> Result<Option<sluice_storage::AppendInfo>, sluice_storage::StorageError> {
        let _role = self.role.read();
        if !self.is_leader() {
            return Ok(None);
        }
        self.log
            .append_as_leader_shared_verified(records, self.leader_epoch(), verification)
            .map(Some)
    }

    /// [`Partition::append_produce`] if it needs no waiting: `Ok(None)`
    /// when the role lock or the log's lock is held, or the batches need
    /// converting (the caller then appends on the blocking pool, where a
    /// lost leadership is found).
    pub fn try_append_produce(
        &self,
        records: &[u8],
        verification: Verification,
    ) -> Result<Option<sluice_storage::AppendInfo>, sluice_storage::StorageError> {
        let Some(_role) = self.role.try_read() else {
            return Ok(None);
        };
        if !self.is_leader() {
            return Ok(None);
        }
        self.log
            .try_append_as_leader_shared_verified(records, self.leader_epoch(), verification)
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// The topic's effective `min.insync.replicas` changed.
    pub fn set_min_insync(&self, min_insync: i32) {
        let mut rep = self.replication.lock();
        if let Some(st) = rep.as_mut() {
            st.set_min_insync(min_insync);
            let leo = self.log.log_end_offset();
            if let Some(hw) = st.refresh(leo, self.clock.now_ms()) {
                self.advance_high_watermark(hw);
            }
        }
    }

    /// The committed ISR (`None` while following).
    pub fn isr(&self) -> Option<Vec<BrokerId>> {
        self.replication.lock().as_ref().map(|s| s.isr().to_vec())
    }

    /// Whether `broker` is a follower of this partition led here.
    pub fn has_follower(&self, broker: BrokerId) -> bool {
        self.replication
            .lock()
            .as_ref()
            .is_some_and(|s| s.follower(broker).is_some())
    }

    /// The followers a consumer fetching at `fetch_offset` may be sent to
    /// (KIP-392: ISR members whose log holds the offset, see
    /// [`super::selector::eligible`]); empty while following.
    pub fn read_replica_candidates(&self, fetch_offset: Offset) -> Vec<FollowerCandidate> {
        let rep = self.replication.lock();
        let Some(st) = rep.as_ref() else {
            return Vec::new();
        };
        let now = self.clock.now_ms();
        st.followers()
            .iter()
            .filter(|f| {
                eligible(
                    st.isr().contains(&f.broker),
                    f.log_start_offset,
                    f.log_end_offset,
                    fetch_offset,
                )
            })
            .map(|f| FollowerCandidate {
                broker: f.broker,
                log_end_offset: f.log_end_offset,
                time_since_caught_up_ms: now - f.last_caught_up_ms,
            })
            .collect()
    }

    /// A copy of the leader's replication state (tests, metrics).
    pub fn leader_state(&self) -> Option<LeaderState> {
        self.replication.lock().clone()
    }

    /// The leader's own append is acknowledged-ready up to `ready` (after
    /// the append, or after its fsync): moves the high watermark as far as
    /// the ISR allows.
    pub fn publish_append(&self, ready: Offset) {
        if self.solo.load(Ordering::Acquire) {
            self.advance_high_watermark(ready);
            return;
        }
        let mut rep = self.replication.lock();
        if let Some(st) = rep.as_mut() {
            st.observe_high_watermark(self.high_watermark());
            let leo = self.log.log_end_offset();
            if let Some(hw) = st.leader_appended(ready, leo, self.clock.now_ms()) {
                self.advance_high_watermark(hw);
            }
        }
    }

    /// A fetch from follower `broker` at `fetch_offset`: records its
    /// progress, moves the high watermark, and queues its joining the ISR
    /// when it qualifies. False when `broker` is not a follower of this
    /// partition here (Kafka answers NOT_LEADER_OR_FOLLOWER).
    pub fn follower_fetch(
        self: &Arc<Self>,
        broker: BrokerId,
        fetch_offset: Offset,
        log_start: Offset,
        broker_epoch: i64,
        eligible: bool,
    ) -> bool {
        let mut rep = self.replication.lock();
        let Some(st) = rep.as_mut() else {
            return false;
        };
        st.observe_high_watermark(self.high_watermark());
        let leo = self.log.log_end_offset();
        let now = self.clock.now_ms();
        let Some(effect) = st.follower_fetched(
            broker,
            fetch_offset,
            log_start,
            broker_epoch,
            leo,
            now,
            eligible,
        ) else {
            return false;
        };
        if let Some(hw) = effect.high_watermark {
            self.advance_high_watermark(hw);
        }
        drop(rep);
        if effect.expand.is_some() {
            self.queue_isr_change();
        }
        true
    }

    /// Proposes removing ISR followers that lag more than
    /// `replica.lag.time.max.ms` (the periodic check). Also recomputes the
    /// high watermark: a caught-up follower outside the ISR that stopped
    /// fetching held it back only until its caught-up time ran out, and no
    /// fetch or append may come to notice that.
    pub fn maybe_shrink_isr(self: &Arc<Self>) {
        let proposed = {
            let mut rep = self.replication.lock();
            let Some(st) = rep.as_mut() else {
                return;
            };
            st.observe_high_watermark(self.high_watermark());
            let leo = self.log.log_end_offset();
            let now = self.clock.now_ms();
            if let Some(hw) = st.refresh(leo, now) {
                self.advance_high_watermark(hw);
            }
            st.maybe_shrink(leo, now).is_some()
        };
        if proposed {
            self.queue_isr_change();
        }
    }

    fn queue_isr_change(self: &Arc<Self>) {
        if !self.isr_queued.swap(true, Ordering::AcqRel) {
            self.isr_queue.push(self);
        }
    }

    /// The ISR change in flight, to send (`None` if there is none).
    pub fn pending_isr_change(&self) -> Option<(Uuid, IsrProposal)> {
        let rep = self.replication.lock();
        let p = rep.as_ref()?.pending()?.clone();
        Some((*self.topic_id.lock(), p))
    }

    /// Applies the controller's answer to `sent`.
    pub fn apply_isr_answer(&self, sent: &IsrProposal, answer: AlterAnswer) -> AnswerEffect {
        let mut rep = self.replication.lock();
        let Some(st) = rep.as_mut() else {
            return AnswerEffect::Dropped;
        };
        st.observe_high_watermark(self.high_watermark());
        let leo = self.log.log_end_offset();
        let (effect, moved) = st.alter_answered(sent, answer, leo, self.clock.now_ms());
        if effect == AnswerEffect::Applied {
            tracing::info!(
                partition = %self.topic_partition(),
                isr = ?st.isr(),
                partition_epoch = st.partition_epoch().0,
                "ISR updated"
            );
        }
        if let Some(hw) = moved {
            self.advance_high_watermark(hw);
        }
        let under = st.under_min_isr();
        drop(rep);
        if under {
            self.purgatory
                .fail_all(Completion::NotEnoughReplicasAfterAppend);
        }
        effect
    }

    /// Kafka's check before an `acks=all` append: NOT_ENOUGH_REPLICAS when
    /// the ISR is smaller than the effective `min.insync.replicas`.
    pub fn check_enough_replicas(&self) -> Result<(), i16> {
        if self.solo.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.replication.lock().as_ref() {
            Some(st) if st.under_min_isr() => Err(ResponseError::NotEnoughReplicas.code()),
            _ => Ok(()),
        }
    }

    fn under_min_isr(&self) -> bool {
        !self.solo.load(Ordering::Acquire)
            && self
                .replication
                .lock()
                .as_ref()
                .is_some_and(LeaderState::under_min_isr)
    }

    /// Waits until the high watermark reaches `required` (an `acks=all`
    /// batch's last offset + 1), at most until `deadline`. Kafka's codes:
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR fell under min ISR,
    /// NOT_LEADER_OR_FOLLOWER when leadership moved, REQUEST_TIMED_OUT.
    pub async fn await_replicated(
        &self,
        required: Offset,
        deadline: tokio::time::Instant,
    ) -> Result<(), i16> {
        self.wait_replicated(required, deadline)
            .await
            .map_err(ReplicationWait::code)
    }

    /// [`Partition::await_replicated`] with the reason it did not end well.
    pub async fn wait_replicated(
        &self,
        required: Offset,
        deadline: tokio::time::Instant,
    ) -> Result<(), ReplicationWait> {
        let completion = match self.purgatory.register(required, || self.high_watermark()) {
            Registered::Covered => Completion::Replicated,
            Registered::Waiting(reg) => {
                // A transition between the append and the registration
                // fails no one: look again now that we are registered.
                let early = if !self.is_leader() {
                    Some(Completion::NotLeader)
                } else if self.under_min_isr() {
                    Some(Completion::NotEnoughReplicasAfterAppend)
                } else {
                    None
                };
                let outcome = match early {
                    Some(c) => Some(c),
                    None => tokio::time::timeout_at(deadline, reg.rx).await.ok().map(
                        // A dropped sender: the partition went away.
                        |r| r.unwrap_or(Completion::NotLeader),
                    ),
                };
                match outcome {
                    Some(c) => {
                        self.purgatory.remove(reg.key);
                        c
                    }
                    None => {
                        self.purgatory.remove(reg.key);
                        return Err(ReplicationWait::TimedOut);
                    }
                }
            }
            Registered::Full => self.poll_replicated(required, deadline).await?,
        };
        match completion {
            Completion::Replicated if self.high_watermark() >= required => {
                if self.under_min_isr() {
                    Err(ReplicationWait::NotEnoughReplicasAfterAppend)
                } else {
                    Ok(())
                }
            }
            Completion::Replicated => Err(ReplicationWait::NotLeader),
            Completion::NotEnoughReplicasAfterAppend => {
                Err(ReplicationWait::NotEnoughReplicasAfterAppend)
            }
            Completion::NotLeader => Err(ReplicationWait::NotLeader),
        }
    }

    /// The purgatory is full: wait on the high watermark's watch channel.
    async fn poll_replicated(
        &self,
        required: Offset,
        deadline: tokio::time::Instant,
    ) -> Result<Completion, ReplicationWait> {
        let mut rx = self.subscribe();
        loop {
            if *rx.borrow_and_update() >= required {
                return Ok(Completion::Replicated);
            }
            if !self.is_leader() {
                return Ok(Completion::NotLeader);
            }
            if self.under_min_isr() {
                return Ok(Completion::NotEnoughReplicasAfterAppend);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Ok(Completion::NotLeader),
                Err(_) => return Err(ReplicationWait::TimedOut),
            }
        }
    }
}
