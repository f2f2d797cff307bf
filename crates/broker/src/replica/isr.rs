//! The leader's replication state of one partition as a pure, clock-driven
//! state machine: Kafka's `Partition` / `ReplicaState` rules for follower
//! progress, the high watermark and ISR proposals. No I/O, no locks, no
//! clock of its own: every call takes `now` (ms) and the leader's log end.
//!
//! Invariants (checked by the tests below and `debug_assert!`ed):
//! - The high watermark never moves backwards while this broker leads, and
//!   never passes the leader's ready offset (`leader_ready`: the LEO once
//!   the append is acknowledged-ready, i.e. after the fsync when the topic
//!   flushes every message) nor the LEO of any member of the *maximal* ISR
//!   (committed ISR ∪ a pending expansion, as Kafka's `maximalIsr`), nor
//!   that of a caught-up follower about to join.
//! - Strict min ISR: the high watermark does not advance while the
//!   committed ISR is smaller than the effective `min.insync.replicas`
//!   (at most the replication factor, Kafka's `effectiveMinIsr`).
//! - At most one ISR change is in flight; while it is, no other is
//!   proposed, and an answer for any other proposal is dropped.
//! - An image at an older partition epoch than the one applied (our own
//!   AlterPartition answer came first) never rolls the ISR back.

use sluice_metadata::{BrokerId, PartitionEpoch};
use sluice_record::{LeaderEpoch, Offset};

/// Kafka's `UnifiedLog.UNKNOWN_OFFSET`: a follower that has not fetched
/// since this broker became leader.
pub const UNKNOWN: Offset = Offset(-1);

/// What the leader knows of one follower (Kafka's `ReplicaState`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerState {
    pub broker: BrokerId,
    /// The follower's log end offset: the offset of its last fetch.
    pub log_end_offset: Offset,
    pub log_start_offset: Offset,
    /// When it last fetched (ms).
    pub last_fetch_ms: i64,
    /// The last time (ms) it was known to have every record the leader
    /// had (Kafka's `lastCaughtUpTimeMs`).
    pub last_caught_up_ms: i64,
    /// The leader's LEO at its last fetch.
    pub last_fetch_leader_leo: Offset,
    /// Its broker epoch as its fetch gave it (Fetch v15+), else -1.
    pub broker_epoch: i64,
    /// Kafka's `isReplicaIsrEligible`: registered, unfenced and not
    /// shutting down, as the image says at its last fetch or the last
    /// registration applied. A caught-up follower outside the ISR holds
    /// the high watermark back only while it is eligible: a dead one that
    /// the controller fenced and took out of the ISR must not stall
    /// `acks=all` for `replica.lag.time.max.ms`.
    pub eligible: bool,
}

impl FollowerState {
    /// A follower as a new leader sees it: nothing known, caught up "now"
    /// if the ISR names it (so it is not shrunk before it had a chance to
    /// fetch), never otherwise.
    fn reset(broker: BrokerId, in_isr: bool, eligible: bool, now: i64) -> Self {
        FollowerState {
            broker,
            log_end_offset: UNKNOWN,
            log_start_offset: UNKNOWN,
            last_fetch_ms: 0,
            last_caught_up_ms: if in_isr { now } else { 0 },
            last_fetch_leader_leo: UNKNOWN,
            broker_epoch: -1,
            eligible,
        }
    }

    /// Kafka's `updateFetchStateOrThrow`: a fetch at `fetch_offset` when
    /// the leader's LEO is `leader_leo`. Caught up now if it asked for the
    /// leader's end; caught up at its previous fetch if it now has at least
    /// what the leader had then.
    fn fetched(
        &mut self,
        fetch_offset: Offset,
        log_start: Offset,
        now: i64,
        leader_leo: Offset,
        broker_epoch: i64,
    ) {
        if fetch_offset >= leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now);
        } else if fetch_offset >= self.last_fetch_leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end_offset = fetch_offset;
        self.log_start_offset = log_start;
        self.last_fetch_leader_leo = leader_leo;
        self.last_fetch_ms = now;
        self.broker_epoch = broker_epoch;
    }

    /// Kafka's `isCaughtUp`: has the leader's end, or had everything within
    /// the last `max_lag_ms`.
    pub fn is_caught_up(&self, leader_leo: Offset, now: i64, max_lag_ms: i64) -> bool {
        self.log_end_offset == leader_leo || now - self.last_caught_up_ms <= max_lag_ms
    }
}

/// The partition's registration as the image (or a committed
/// AlterPartition) gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    /// Replicas the image shows fenced, shutting down or unregistered
    /// (not ISR-eligible, Kafka's `isReplicaIsrEligible`).
    pub unavailable: Vec<BrokerId>,
}

/// An ISR change for the controller (one AlterPartition item).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the change is based on.
    pub partition_epoch: PartitionEpoch,
    /// Every member with its broker epoch (-1 when unknown).
    pub new_isr: Vec<(BrokerId, i64)>,
}

impl IsrProposal {
    pub fn brokers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.new_isr.iter().map(|(b, _)| *b)
    }
}

/// The controller's answer to an [`IsrProposal`], as the async layer
/// classifies it (Kafka's `handleAlterPartitionError` groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterAnswer {
    /// Committed: the partition as the controller now has it.
    Committed {
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        isr: Vec<BrokerId>,
        partition_epoch: PartitionEpoch,
    },
    /// Not attempted or an ineligible replica: back to the committed
    /// state, a new proposal may follow.
    Rejected,
    /// Stale (fenced epoch, invalid update version, unknown partition):
    /// the proposal stays pending until the image moves the partition.
    AwaitMetadata,
    /// A transient failure (timeout, no controller): send it again.
    Retry,
}

/// What applying an answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerEffect {
    /// Not the proposal in flight (or another leader epoch): dropped.
    Dropped,
    Applied,
    /// Send the same proposal again.
    Resend,
    /// Cleared; the next check may propose again.
    Cleared,
    /// Still pending; the image will settle it.
    Waiting,
}

/// The leader's replication state of one partition.
#[derive(Clone, Debug)]
pub struct LeaderState {
    me: BrokerId,
    replicas: Vec<BrokerId>,
    /// The committed ISR (image, or a committed AlterPartition).
    isr: Vec<BrokerId>,
    /// The change in flight and whether it was sent yet.
    pending: Option<IsrProposal>,
    leader_epoch: LeaderEpoch,
    partition_epoch: PartitionEpoch,
    /// This broker's LEO when it became leader in `leader_epoch`: a
    /// follower joins the ISR only once it has reached it.
    epoch_start_offset: Offset,
    followers: Vec<FollowerState>,
    min_insync: i32,
    max_lag_ms: i64,
    /// The leader's acknowledged-ready end offset.
    leader_ready: Offset,
    high_watermark: Offset,
}

impl LeaderState {
    /// This broker becomes leader of `a` with `leo` as its log end and
    /// `high_watermark` as the starting HW (the checkpointed one, capped
    /// at the LEO).
    pub fn new(
        me: BrokerId,
        a: &Assignment,
        leo: Offset,
        high_watermark: Offset,
        min_insync: i32,
        max_lag_ms: i64,
        now: i64,
    ) -> Self {
        let followers = a
            .replicas
            .iter()
            .filter(|b| **b != me)
            .map(|b| FollowerState::reset(*b, a.isr.contains(b), !a.unavailable.contains(b), now))
            .collect();
        LeaderState {
            me,
            replicas: a.replicas.clone(),
            isr: a.isr.clone(),
            pending: None,
            leader_epoch: a.leader_epoch,
            partition_epoch: a.partition_epoch,
            epoch_start_offset: leo,
            followers,
            min_insync,
            max_lag_ms,
            leader_ready: leo,
            high_watermark: high_watermark.min(leo),
        }
    }

    /// Applies a newer registration of a partition this broker keeps
    /// leading. A new leader epoch restarts the epoch's start offset at
    /// `leo`; an older partition epoch than the applied one is ignored.
    /// Returns whether anything changed.
    pub fn update(&mut self, a: &Assignment, leo: Offset, now: i64) -> bool {
        // The image's view of the brokers is news even when the
        // registration is not.
        for f in &mut self.followers {
            f.eligible = !a.unavailable.contains(&f.broker);
        }
        let new_epoch = a.leader_epoch != self.leader_epoch;
        if !new_epoch && a.partition_epoch <= self.partition_epoch {
            // Our own committed AlterPartition got here first, or nothing
            // moved.
            return false;
        }
        if new_epoch {
            self.epoch_start_offset = leo;
            self.leader_epoch = a.leader_epoch;
        }
        let old = std::mem::take(&mut self.followers);
        self.followers = a
            .replicas
            .iter()
            .filter(|b| **b != self.me)
            .map(|b| {
                // A kept follower's eligibility was set above.
                old.iter()
                    .find(|f| f.broker == *b)
                    .cloned()
                    .unwrap_or_else(|| {
                        FollowerState::reset(*b, a.isr.contains(b), !a.unavailable.contains(b), now)
                    })
            })
            .collect();
        self.replicas = a.replicas.clone();
        self.isr = a.isr.clone();
        self.partition_epoch = a.partition_epoch;
        self.pending = None;
        true
    }

    pub fn set_min_insync(&mut self, min_insync: i32) {
        self.min_insync = min_insync;
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> PartitionEpoch {
        self.partition_epoch
    }

    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    pub fn followers(&self) -> &[FollowerState] {
        &self.followers
    }

    pub fn follower(&self, broker: BrokerId) -> Option<&FollowerState> {
        self.followers.iter().find(|f| f.broker == broker)
    }

    pub fn pending(&self) -> Option<&IsrProposal> {
        self.pending.as_ref()
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    pub fn epoch_start_offset(&self) -> Offset {
        self.epoch_start_offset
    }

    /// Whether the leader alone is every replica: the high watermark is
    /// then the leader's ready offset (the one-node fast path).
    pub fn is_solo(&self) -> bool {
        self.followers.is_empty() && self.isr == [self.me]
    }

    /// Kafka's `effectiveMinIsr`: `min.insync.replicas`, at most the
    /// replication factor.
    pub fn effective_min_isr(&self) -> usize {
        (self.min_insync.max(1) as usize).min(self.replicas.len().max(1))
    }

    /// The committed ISR is smaller than the effective min ISR: acks=all
    /// is refused and the high watermark stands still.
    pub fn under_min_isr(&self) -> bool {
        self.isr.len() < self.effective_min_isr()
    }

    /// Committed ISR ∪ a pending expansion (Kafka's `maximalIsr`: a
    /// pending shrink still counts the old members).
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut all = self.isr.clone();
        if let Some(p) = &self.pending {
            for b in p.brokers() {
                if !all.contains(&b) {
                    all.push(b);
                }
            }
        }
        all
    }

    /// Takes in a high watermark moved outside this state (the one-replica
    /// fast path moves it without the lock): it and the leader's ready
    /// offset are at least `hw`.
    pub fn observe_high_watermark(&mut self, hw: Offset) {
        self.high_watermark = self.high_watermark.max(hw);
        self.leader_ready = self.leader_ready.max(hw);
    }

    /// Recomputes the high watermark (after an ISR or min ISR change).
    pub fn refresh(&mut self, leo: Offset, now: i64) -> Option<Offset> {
        self.maybe_advance(leo, now)
    }

    /// The leader's acknowledged-ready end moved to `ready`; returns the
    /// new high watermark if it moved.
    pub fn leader_appended(&mut self, ready: Offset, leo: Offset, now: i64) -> Option<Offset> {
        self.leader_ready = self.leader_ready.max(ready);
        self.maybe_advance(leo, now)
    }

    /// A fetch from `broker` at `fetch_offset`. Updates its state, then
    /// the high watermark; proposes its joining the ISR when it qualifies
    /// (`eligible`: registered, unfenced, not shutting down). `None` when
    /// `broker` is not a follower of this partition.
    #[allow(clippy::too_many_arguments)]
    pub fn follower_fetched(
        &mut self,
        broker: BrokerId,
        fetch_offset: Offset,
        log_start: Offset,
        broker_epoch: i64,
        leo: Offset,
        now: i64,
        eligible: bool,
    ) -> Option<FetchEffect> {
        let f = self.followers.iter_mut().find(|f| f.broker == broker)?;
        f.fetched(fetch_offset, log_start, now, leo, broker_epoch);
        f.eligible = eligible;
        let high_watermark = self.maybe_advance(leo, now);
        let expand = if eligible {
            self.maybe_expand(broker)
        } else {
            None
        };
        Some(FetchEffect {
            high_watermark,
            expand,
        })
    }

    /// Kafka's `canAddReplicaToIsr` + `isFollowerInSync`: not in the
    /// maximal ISR, nothing in flight, and its LEO is at least the high
    /// watermark and this epoch's start.
    fn maybe_expand(&mut self, broker: BrokerId) -> Option<IsrProposal> {
        if self.pending.is_some() || self.isr.contains(&broker) {
            return None;
        }
        let f = self.follower(broker)?;
        let leo = f.log_end_offset;
        if leo < self.high_watermark || leo < self.epoch_start_offset || leo == UNKNOWN {
            return None;
        }
        let mut members: Vec<BrokerId> = self.isr.clone();
        members.push(broker);
        Some(self.propose(members))
    }

    /// Kafka's `maybeShrinkIsr`: ISR followers that have not caught up
    /// within `replica.lag.time.max.ms` leave (none while a change is in
    /// flight).
    pub fn maybe_shrink(&mut self, leo: Offset, now: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lag = self.max_lag_ms;
        let out: Vec<BrokerId> = self
            .followers
            .iter()
            .filter(|f| self.isr.contains(&f.broker) && !f.is_caught_up(leo, now, lag))
            .map(|f| f.broker)
            .collect();
        if out.is_empty() {
            return None;
        }
        let members: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|b| !out.contains(b))
            .collect();
        Some(self.propose(members))
    }

    fn propose(&mut self, members: Vec<BrokerId>) -> IsrProposal {
        let new_isr = members
            .into_iter()
            .map(|b| (b, self.follower(b).map_or(-1, |f| f.broker_epoch)))
            .collect();
        let p = IsrProposal {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        };
        self.pending = Some(p.clone());
        p
    }

    /// Applies the controller's answer to `sent`. Returns what it did and
    /// the new high watermark if the committed ISR moved it.
    pub fn alter_answered(
        &mut self,
        sent: &IsrProposal,
        answer: AlterAnswer,
        leo: Offset,
        now: i64,
    ) -> (AnswerEffect, Option<Offset>) {
        if self.pending.as_ref() != Some(sent) {
            return (AnswerEffect::Dropped, None);
        }
        match answer {
            AlterAnswer::Committed {
                leader,
                leader_epoch,
                isr,
                partition_epoch,
            } => {
                if leader != self.me
                    || leader_epoch != self.leader_epoch
                    || partition_epoch <= self.partition_epoch
                {
                    // Another leader, or the image already moved past it.
                    self.pending = None;
                    return (AnswerEffect::Dropped, None);
                }
                self.isr = isr;
                self.partition_epoch = partition_epoch;
                self.pending = None;
                (AnswerEffect::Applied, self.maybe_advance(leo, now))
            }
            AlterAnswer::Rejected => {
                self.pending = None;
                (AnswerEffect::Cleared, None)
            }
            AlterAnswer::AwaitMetadata => (AnswerEffect::Waiting, None),
            AlterAnswer::Retry => (AnswerEffect::Resend, None),
        }
    }

    /// Kafka's `maybeIncrementLeaderHW` with strict min ISR.
    fn maybe_advance(&mut self, leo: Offset, now: i64) -> Option<Offset> {
        if self.under_min_isr() {
            return None;
        }
        let maximal = self.maximal_isr();
        let mut hw = self.leader_ready;
        for f in &self.followers {
            // Kafka's `shouldWaitForReplicaToJoinIsr`: a caught-up,
            // eligible follower about to join counts too.
            let counts = maximal.contains(&f.broker)
                || f.eligible
                    && f.is_caught_up(leo, now, self.max_lag_ms)
                    && f.log_end_offset != UNKNOWN;
            if counts && f.log_end_offset < hw {
                hw = f.log_end_offset;
            }
        }
        if hw > self.high_watermark {
            debug_assert!(hw <= self.leader_ready && hw <= leo);
            self.high_watermark = hw;
            Some(hw)
        } else {
            None
        }
    }
}

/// What a follower's fetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchEffect {
    /// The new high watermark, if it moved.
    pub high_watermark: Option<Offset>,
    /// An ISR expansion to send, if the follower qualifies.
    pub expand: Option<IsrProposal>,
}

#[cfg(test)]
#[path = "isr_tests.rs"]
mod tests;
