//! One transactional id as the transaction coordinator holds it (Kafka's
//! `TransactionMetadata`), and the only ways it may change.
//!
//! Invariant: a change is *prepared* here (at most one at a time: the
//! pending state), written to `__transaction_state`, and *completed* only
//! once that write is committed, so the coordinator never answers from a
//! state a new coordinator could not reload. A failed write abandons it.
//! `complete` checks the prepared change against the current state again
//! (Kafka's `completeTransitionTo`): a transition that does not fit is a
//! bug, refused rather than applied.
//!
//! Epochs (KIP-890): with transaction version 2 every commit and abort
//! bumps the producer epoch, so a late write of the ended transaction is
//! fenced. An epoch is never handed out at `i16::MAX` (the coordinator
//! must always be able to fence one more); at `i16::MAX - 1` a version 2
//! end moves the producer to `next_producer_id` with epoch 0.

use std::collections::{BTreeMap, BTreeSet};

use sluice_record::{ProducerEpoch, ProducerId};

use super::records::TransactionLogValue;
use super::state::TransactionState;

/// `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_ID: ProducerId = ProducerId(-1);
pub const NO_PRODUCER_EPOCH: ProducerEpoch = ProducerEpoch(-1);

/// Topic → partitions in a transaction.
pub type TxnPartitions = BTreeMap<String, BTreeSet<i32>>;

/// The client's transaction protocol version (`transaction.version`
/// feature level it negotiated; 2 is KIP-890 part 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransactionVersion(pub i16);

impl TransactionVersion {
    /// Every commit and abort bumps the epoch.
    pub fn supports_epoch_bump(self) -> bool {
        self.0 >= 2
    }
}

/// Why a change cannot be prepared or completed; the coordinator answers
/// with the matching Kafka error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another change is being written (CONCURRENT_TRANSACTIONS).
    Pending(TransactionState),
    /// The producer's epoch is older than the current one (PRODUCER_FENCED).
    ProducerFenced,
    /// No epoch is left for this producer id (a new one is needed).
    EpochExhausted,
    /// `to` may not follow `from` (INVALID_TXN_STATE).
    InvalidTransition {
        from: TransactionState,
        to: TransactionState,
    },
    /// A prepared change no longer fits the state it was prepared from (a
    /// bug; the change is dropped).
    Unexpected(String),
}

/// A prepared change: what is written to the log, and what is applied
/// once the write is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub value: TransactionLogValue,
    /// The epoch before the last bump (not stored in the log).
    pub last_producer_epoch: ProducerEpoch,
}

impl Transition {
    /// No transaction in progress, with the producer's timeout.
    fn no_transaction(&mut self, timeout_ms: i32, now_ms: i64) {
        self.value.timeout_ms = timeout_ms;
        self.value.partitions.clear();
        self.value.start_ms = -1;
        self.value.last_update_ms = now_ms;
    }
}

/// One transactional id's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub previous_producer_id: ProducerId,
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub last_producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    pub state: TransactionState,
    pub partitions: TxnPartitions,
    /// -1 when no transaction started.
    pub start_ms: i64,
    pub last_update_ms: i64,
    pub client_version: TransactionVersion,
    pending: Option<TransactionState>,
    /// The last epoch fence was prepared but its write failed: the next
    /// fence does not bump again (that epoch was never handed out).
    failed_epoch_fence: bool,
}

/// Whether `epoch` may not be handed out any more.
pub fn is_epoch_exhausted(epoch: ProducerEpoch) -> bool {
    epoch.0 >= i16::MAX - 1
}

impl TransactionMetadata {
    /// A transactional id seen for the first time, given `producer_id`.
    pub fn new(
        transactional_id: &str,
        producer_id: ProducerId,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Self {
        TransactionMetadata {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TransactionState::Empty,
            partitions: TxnPartitions::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_version: TransactionVersion::default(),
            pending: None,
            failed_epoch_fence: false,
        }
    }

    /// As loaded from `__transaction_state`.
    pub fn from_log(transactional_id: &str, v: &TransactionLogValue) -> Self {
        TransactionMetadata {
            transactional_id: transactional_id.to_owned(),
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v.partitions.clone(),
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_version: TransactionVersion(v.client_transaction_version),
            pending: None,
            failed_epoch_fence: false,
        }
    }

    /// The change being written, if any.
    pub fn pending(&self) -> Option<TransactionState> {
        self.pending
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    fn has_pending_transaction(&self) -> bool {
        use TransactionState::*;
        matches!(self.state, Ongoing | PrepareAbort | PrepareCommit)
    }

    /// The current state as a starting point for a change to `state`.
    fn draft(&self, state: TransactionState) -> Transition {
        Transition {
            value: TransactionLogValue {
                producer_id: self.producer_id,
                previous_producer_id: self.producer_id,
                next_producer_id: self.next_producer_id,
                producer_epoch: self.producer_epoch,
                timeout_ms: self.timeout_ms,
                state,
                partitions: self.partitions.clone(),
                last_update_ms: self.last_update_ms,
                start_ms: self.start_ms,
                client_transaction_version: self.client_version.0,
            },
            last_producer_epoch: self.last_producer_epoch,
        }
    }

    /// Kafka's `prepareTransitionTo`: one change at a time, valid ids and
    /// epochs, and a state that may follow the current one.
    fn prepare(&mut self, t: Transition) -> Result<Transition, Refusal> {
        if let Some(p) = self.pending {
            return Err(Refusal::Pending(p));
        }
        let to = t.value.state;
        if t.value.producer_id.0 < 0
            || (to != TransactionState::Dead && t.value.producer_epoch.0 < 0)
        {
            return Err(Refusal::Unexpected(format!(
                "producer id {} epoch {} for {to:?}",
                t.value.producer_id.0, t.value.producer_epoch.0
            )));
        }
        if !to.may_follow(self.state) {
            return Err(Refusal::InvalidTransition {
                from: self.state,
                to,
            });
        }
        self.pending = Some(to);
        Ok(t)
    }

    /// A newer producer fences the current epoch of an ongoing transaction
    /// (which is then aborted).
    pub fn prepare_fence_producer_epoch(&mut self) -> Result<Transition, Refusal> {
        let mut t = self.draft(TransactionState::PrepareEpochFence);
        if !self.failed_epoch_fence && self.producer_epoch.0 < i16::MAX {
            t.value.producer_epoch = ProducerEpoch(self.producer_epoch.0 + 1);
        }
        self.prepare(t)
    }

    /// The abort a fence goes on to (Kafka's `endTransaction` after
    /// PrepareEpochFence, for InitProducerId of a newer producer or a
    /// timed-out transaction), in `cluster`, the cluster's finalized
    /// transaction version (not from a client, so Kafka's coordinator uses
    /// its `transactionVersionLevel()`, not the id's client version; they
    /// differ for an old client on a version 2 cluster, or after
    /// UpdateFeatures changed the level):
    ///
    /// - version 2 (Kafka 4.1's `endTransaction` in transaction version 2):
    ///   the fence's epoch is never applied; the abort bumps the epoch once
    ///   and records the fenced one as the last epoch, as the producer's
    ///   own abort would (KAFKA-19367: one bump, not two). So the fenced
    ///   producer's own abort is a retry of this one, and its commit is
    ///   refused.
    /// - version 1 (Kafka's `endTransactionWithTV1`): the fenced epoch
    ///   becomes the current one in memory (never handed out: the
    ///   producer's next InitProducerId bumps again), and PrepareAbort is
    ///   prepared in it; if that write fails the epoch stays bumped here,
    ///   so the next fence does not bump twice.
    pub fn prepare_fenced_abort(
        &mut self,
        fence: &Transition,
        now_ms: i64,
        cluster: TransactionVersion,
    ) -> Result<Transition, Refusal> {
        if self.pending != Some(TransactionState::PrepareEpochFence)
            || fence.value.state != TransactionState::PrepareEpochFence
        {
            return Err(Refusal::Unexpected(format!(
                "{}: a fenced abort without a prepared fence",
                self.transactional_id
            )));
        }
        self.pending = None;
        if cluster.supports_epoch_bump() {
            return self.prepare_abort_or_commit(
                TransactionState::PrepareAbort,
                cluster,
                NO_PRODUCER_ID,
                now_ms,
                false,
            );
        }
        self.producer_epoch = fence.value.producer_epoch;
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
        self.failed_epoch_fence = true;
        self.prepare_abort_or_commit(
            TransactionState::PrepareAbort,
            cluster,
            NO_PRODUCER_ID,
            now_ms,
            false,
        )
    }

    /// InitProducerId: the next epoch (or, for a retry of a call that
    /// succeeded, the same one); an older `expected` epoch is fenced.
    pub fn prepare_increment_producer_epoch(
        &mut self,
        timeout_ms: i32,
        expected: Option<ProducerEpoch>,
        now_ms: i64,
    ) -> Result<Transition, Refusal> {
        if self.is_producer_epoch_exhausted() {
            return Err(Refusal::EpochExhausted);
        }
        let bumped = ProducerEpoch(self.producer_epoch.0 + 1);
        let mut t = self.draft(TransactionState::Empty);
        match expected {
            None => {
                t.value.producer_epoch = bumped;
                t.last_producer_epoch = NO_PRODUCER_EPOCH;
            }
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                t.value.producer_epoch = bumped;
                t.last_producer_epoch = self.producer_epoch;
            }
            // A retry of a call that succeeded: nothing newer fenced it.
            Some(e) if e == self.last_producer_epoch => {}
            Some(_) => return Err(Refusal::ProducerFenced),
        }
        t.no_transaction(timeout_ms, now_ms);
        self.prepare(t)
    }

    /// A new producer id (its epochs exhausted, or a client asking for
    /// one): epoch 0.
    pub fn prepare_producer_id_rotation(
        &mut self,
        producer_id: ProducerId,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Result<Transition, Refusal> {
        if self.has_pending_transaction() {
            return Err(Refusal::InvalidTransition {
                from: self.state,
                to: TransactionState::Empty,
            });
        }
        let mut t = self.draft(TransactionState::Empty);
        t.value.producer_id = producer_id;
        t.value.producer_epoch = ProducerEpoch(0);
        t.last_producer_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        t.no_transaction(timeout_ms, now_ms);
        self.prepare(t)
    }

    /// AddPartitionsToTxn (or AddOffsetsToTxn's offsets partition, or a
    /// version 2 produce that adds its partition).
    pub fn prepare_add_partitions(
        &mut self,
        added: &TxnPartitions,
        now_ms: i64,
        client_version: TransactionVersion,
    ) -> Result<Transition, Refusal> {
        use TransactionState::*;
        let mut t = self.draft(Ongoing);
        if matches!(self.state, Empty | CompleteAbort | CompleteCommit) {
            t.value.start_ms = now_ms;
        }
        for (topic, ids) in added {
            t.value
                .partitions
                .entry(topic.clone())
                .or_default()
                .extend(ids);
        }
        t.value.last_update_ms = now_ms;
        t.value.client_transaction_version = client_version.0;
        self.prepare(t)
    }

    /// EndTxn (or a timeout's abort): PrepareCommit or PrepareAbort.
    pub fn prepare_abort_or_commit(
        &mut self,
        to: TransactionState,
        client_version: TransactionVersion,
        next_producer_id: ProducerId,
        now_ms: i64,
        no_partition_added: bool,
    ) -> Result<Transition, Refusal> {
        if !matches!(
            to,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        ) {
            return Err(Refusal::InvalidTransition {
                from: self.state,
                to,
            });
        }
        let mut t = self.draft(to);
        if client_version.supports_epoch_bump() {
            // At i16::MAX only an abort goes through, unbumped, so that a
            // broken producer can still recover.
            if !(self.producer_epoch.0 == i16::MAX && to == TransactionState::PrepareAbort) {
                t.value.producer_epoch = ProducerEpoch(self.producer_epoch.0.saturating_add(1));
            }
            t.last_producer_epoch = self.producer_epoch;
        }
        t.value.start_ms = if no_partition_added {
            now_ms
        } else {
            self.start_ms
        };
        t.value.next_producer_id = next_producer_id;
        t.value.last_update_ms = now_ms;
        t.value.client_transaction_version = client_version.0;
        self.prepare(t)
    }

    /// Every marker written: CompleteCommit or CompleteAbort.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<Transition, Refusal> {
        let to = if self.state == TransactionState::PrepareCommit {
            TransactionState::CompleteCommit
        } else {
            TransactionState::CompleteAbort
        };
        let mut t = self.draft(to);
        if self.client_version.supports_epoch_bump() && self.next_producer_id != NO_PRODUCER_ID {
            t.value.producer_id = self.next_producer_id;
            t.value.producer_epoch = ProducerEpoch(0);
        }
        t.value.next_producer_id = NO_PRODUCER_ID;
        t.value.partitions.clear();
        t.value.last_update_ms = now_ms;
        self.prepare(t).inspect(|_| self.failed_epoch_fence = false)
    }

    /// The transactional id expired.
    pub fn prepare_dead(&mut self) -> Result<Transition, Refusal> {
        let mut t = self.draft(TransactionState::Dead);
        t.value.partitions.clear();
        self.prepare(t)
    }

    /// The write of the pending change failed: it never happened.
    pub fn abandon(&mut self) {
        if self.pending == Some(TransactionState::PrepareEpochFence) {
            self.failed_epoch_fence = true;
        }
        self.pending = None;
    }

    /// Applies `t` once its write is committed (Kafka's
    /// `completeTransitionTo`).
    pub fn complete(&mut self, t: &Transition) -> Result<(), Refusal> {
        use TransactionState::*;
        let to = t.value.state;
        let unexpected = |why: &str| {
            Err(Refusal::Unexpected(format!(
                "{} from {:?} to {to:?}: {why}",
                self.transactional_id, self.state
            )))
        };
        if self.pending != Some(to) {
            return unexpected("not the pending change");
        }
        let v = &t.value;
        let same_timeout = v.timeout_ms == self.timeout_ms;
        let ok = match to {
            Empty => {
                (v.producer_epoch == self.producer_epoch || self.valid_epoch_bump(v))
                    && v.partitions.is_empty()
                    && v.start_ms == -1
            }
            Ongoing => {
                self.valid_epoch(t)
                    && self.partitions.iter().all(|(topic, ids)| {
                        v.partitions.get(topic).is_some_and(|n| n.is_superset(ids))
                    })
                    && same_timeout
            }
            PrepareAbort | PrepareCommit => {
                let empty_abort = to == PrepareAbort
                    && TransactionVersion(v.client_transaction_version).supports_epoch_bump()
                    && matches!(self.state, Empty | CompleteCommit | CompleteAbort);
                self.valid_epoch(t)
                    && self.partitions == v.partitions
                    && same_timeout
                    && (self.start_ms == v.start_ms || empty_abort)
            }
            CompleteAbort | CompleteCommit => {
                self.valid_epoch(t) && same_timeout && v.start_ms != -1
            }
            // Never completed: a fence goes on to an abort, and a dead id
            // is removed, not stored.
            PrepareEpochFence | Dead => false,
        };
        if !ok {
            return unexpected("the prepared change no longer fits");
        }
        self.producer_id = v.producer_id;
        self.previous_producer_id = v.previous_producer_id;
        self.next_producer_id = v.next_producer_id;
        self.producer_epoch = v.producer_epoch;
        self.last_producer_epoch = t.last_producer_epoch;
        self.timeout_ms = v.timeout_ms;
        self.partitions = v.partitions.clone();
        self.start_ms = v.start_ms;
        self.last_update_ms = v.last_update_ms;
        self.client_version = TransactionVersion(v.client_transaction_version);
        self.state = to;
        self.pending = None;
        Ok(())
    }

    /// Kafka's `validProducerEpoch`.
    fn valid_epoch(&self, t: &Transition) -> bool {
        use TransactionState::*;
        let v = &t.value;
        let v2 = TransactionVersion(v.client_transaction_version).supports_epoch_bump();
        if v2 && matches!(v.state, CompleteCommit | CompleteAbort) && v.producer_epoch.0 == 0 {
            // The overflow: a new producer id at epoch 0.
            return t.last_producer_epoch == self.last_producer_epoch
                && v.previous_producer_id == self.producer_id;
        }
        if v2 && matches!(v.state, PrepareCommit | PrepareAbort) {
            return t.last_producer_epoch == self.producer_epoch
                && v.producer_id == self.producer_id;
        }
        v.producer_epoch == self.producer_epoch && v.producer_id == self.producer_id
    }

    fn valid_epoch_bump(&self, v: &TransactionLogValue) -> bool {
        v.producer_epoch.0 == self.producer_epoch.0.wrapping_add(1)
            || (v.producer_epoch.0 == 0 && v.producer_id != self.producer_id)
    }
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
