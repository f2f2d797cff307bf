//! Transactions in the producer state (KIP-98), as Kafka's
//! `ProducerAppendInfo` and the transaction half of its
//! `ProducerStateManager`.
//!
//! * A transactional data batch starts a transaction of its producer when
//!   none is open; a non-transactional batch while one is open is refused
//!   ([`SequenceError::InvalidTxnState`]).
//! * What is checked depends on the [`AppendOrigin`]: a client's batches
//!   get the epoch and sequence rules ([`super::check_batch`], duplicates
//!   included); a coordinator's (its TxnOffsetCommit batches carry base
//!   sequence -1) only the epoch; replication nothing, as in Kafka (the
//!   leader checked).
//! * A marker (COMMIT/ABORT control batch) ends the producer's open
//!   transaction. Epoch rule: transaction version 0/1, marker epoch >=
//!   current; version 2 (KIP-890), marker epoch > current, except an
//!   idempotent retry (equal epoch, no transaction open), which is
//!   accepted (KAFKA-19999). A coordinator epoch below the entry's is
//!   [`SequenceError::TransactionCoordinatorFenced`]. Replicated markers
//!   are never refused. A marker ending a transaction yields a
//!   [`CompletedTxn`].
//! * The first unstable offset is the smallest first offset of the open
//!   transactions and of the completed ones whose marker the high
//!   watermark has not passed yet (Kafka's `unreplicatedTxns`); the
//!   partition's last stable offset is min(high watermark, it).
//!
//! Where Sluice differs from Kafka: the last stable offset recorded for an
//! aborted transaction's index entry is computed at the marker (the
//! transactions of other producers open at that point), so a batch that
//! starts a transaction after the marker in the same append does not
//! raise it; and completed-but-unreplicated transactions are bounded
//! ([`MAX_UNREPLICATED_TXNS`]): past the bound, the newest two merge into
//! one range from the older first offset to the later marker, which only
//! keeps the last stable offset lower for longer.

use sluice_record::{BatchHeader, ControlBatch, EndTransactionMarker, Offset, ProducerId};

use super::{
    check_batch, BatchMetadata, ProducerStateEntry, ProducerStateManager, SequenceCheck,
    SequenceError, Verification,
};

/// Completed transactions kept waiting for the high watermark before
/// neighbours are merged (see the module docs).
pub const MAX_UNREPLICATED_TXNS: usize = 4096;

/// Where an append comes from, which decides what is checked (Kafka's
/// `AppendOrigin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer's Produce request: epoch and sequence checks, duplicate
    /// detection; control batches and idempotent batches without a
    /// sequence are refused.
    Client,
    /// A coordinator on this broker (the group coordinator's
    /// TxnOffsetCommit batches, the transaction coordinator's markers):
    /// the producer epoch is checked, sequences are not.
    Coordinator,
    /// A follower appending its leader's batches: nothing is refused.
    Replication,
}

/// A transaction that a marker ended (Kafka's `CompletedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub is_aborted: bool,
}

/// One batch as the producer state sees it: its header and, for a control
/// batch, what its record says (the header cannot tell ABORT from COMMIT).
#[derive(Clone, Copy, Debug)]
pub struct ProducerBatch {
    pub header: BatchHeader,
    pub control: Option<ControlBatch>,
}

/// The producer state changes of one append, checked but not applied
/// (Kafka's `ProducerAppendInfo`s of one call).
#[derive(Clone, Debug, Default)]
pub struct PreparedAppend {
    /// The updated entries, and whether each producer is new here.
    entries: Vec<(ProducerStateEntry, bool)>,
    /// Transactions started by the append: (first offset, producer).
    started: Vec<(Offset, ProducerId)>,
    /// Transactions ended by its markers, each with the last stable
    /// offset at its marker (for the transaction index).
    completed: Vec<(CompletedTxn, Offset)>,
    /// Producers with a transactional batch or marker in the append: their
    /// verification in progress ends with it (KIP-890 part 1).
    transactional: Vec<ProducerId>,
}

impl PreparedAppend {
    /// Producers the append adds to the partition.
    pub fn new_producers(&self) -> usize {
        self.entries.iter().filter(|(_, new)| *new).count()
    }

    /// The transactions the append's markers end, in order, each with the
    /// last stable offset at its marker.
    pub fn completed(&self) -> &[(CompletedTxn, Offset)] {
        &self.completed
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The outcome of [`ProducerStateManager::prepare_append`].
#[derive(Clone, Debug)]
pub enum Prepared {
    /// An exact retry of a client's batch already in the log: nothing is
    /// written, the answer carries these offsets.
    Duplicate(BatchMetadata),
    Append(PreparedAppend),
}

impl BatchMetadata {
    /// The sequences, offsets and timestamp of a stored or stamped batch.
    pub fn of(h: &BatchHeader) -> Self {
        BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp: h.max_timestamp,
        }
    }
}

enum DataOutcome {
    Duplicate(BatchMetadata),
    Appended { started: Option<Offset> },
}

/// Kafka's `appendDataBatch` on one producer's entry. `known`: the
/// partition had state for the producer before this batch.
fn append_data(
    entry: &mut ProducerStateEntry,
    known: bool,
    origin: AppendOrigin,
    h: &BatchHeader,
) -> Result<DataOutcome, SequenceError> {
    let pid = h.producer_id;
    match origin {
        AppendOrigin::Client => {
            let seen = known.then_some(&*entry);
            let check = check_batch(
                seen,
                pid,
                h.producer_epoch,
                h.base_sequence,
                h.last_sequence(),
            )?;
            if let SequenceCheck::Duplicate(b) = check {
                return Ok(DataOutcome::Duplicate(b));
            }
        }
        AppendOrigin::Coordinator if known && h.producer_epoch < entry.producer_epoch => {
            return Err(SequenceError::InvalidProducerEpoch {
                producer_id: pid,
                epoch: h.producer_epoch.0,
                current: entry.producer_epoch.0,
            });
        }
        AppendOrigin::Coordinator | AppendOrigin::Replication => {}
    }
    entry.add_batch(h.producer_epoch, BatchMetadata::of(h));
    match (entry.current_txn_first_offset, h.is_transactional()) {
        (Some(first), false) if origin != AppendOrigin::Replication => {
            Err(SequenceError::InvalidTxnState {
                producer_id: pid,
                offset: h.base_offset,
                txn_first_offset: first,
            })
        }
        (Some(first), false) => {
            tracing::warn!(
                producer_id = pid.0,
                offset = h.base_offset.0,
                txn_first_offset = first.0,
                "replicated a non-transactional batch inside an open transaction"
            );
            Ok(DataOutcome::Appended { started: None })
        }
        (None, true) => {
            entry.current_txn_first_offset = Some(h.base_offset);
            Ok(DataOutcome::Appended {
                started: Some(h.base_offset),
            })
        }
        _ => Ok(DataOutcome::Appended { started: None }),
    }
}

/// Kafka's `appendEndTxnMarker` on one producer's entry (see the module
/// docs for the rules). `transaction_version` `None` (replication) checks
/// as version 0, the more permissive rule.
fn append_marker(
    entry: &mut ProducerStateEntry,
    known: bool,
    origin: AppendOrigin,
    marker: EndTransactionMarker,
    h: &BatchHeader,
    transaction_version: Option<i16>,
) -> Result<Option<CompletedTxn>, SequenceError> {
    let pid = h.producer_id;
    let epoch = h.producer_epoch;
    let replicated = origin == AppendOrigin::Replication;
    if known {
        let tv = transaction_version.unwrap_or(0);
        let current = entry.producer_epoch;
        let invalid = if tv >= 2 {
            epoch <= current
        } else {
            epoch < current
        };
        // KAFKA-19999: a TV2 marker retried after it was written (same
        // epoch, the transaction already ended) is written again.
        let retry = tv >= 2 && epoch == current && entry.current_txn_first_offset.is_none();
        if invalid && !retry {
            if !replicated {
                return Err(SequenceError::InvalidProducerEpoch {
                    producer_id: pid,
                    epoch: epoch.0,
                    current: current.0,
                });
            }
            tracing::warn!(
                producer_id = pid.0,
                epoch = epoch.0,
                current = current.0,
                offset = h.base_offset.0,
                "replicated a marker with an old producer epoch"
            );
        }
        if entry.coordinator_epoch > marker.coordinator_epoch {
            if !replicated {
                return Err(SequenceError::TransactionCoordinatorFenced {
                    producer_id: pid,
                    coordinator_epoch: marker.coordinator_epoch,
                    current: entry.coordinator_epoch,
                });
            }
            tracing::info!(
                producer_id = pid.0,
                coordinator_epoch = marker.coordinator_epoch,
                current = entry.coordinator_epoch,
                "replicated a marker from an older coordinator epoch"
            );
        }
    }
    // A marker without a transaction open here changes nothing the last
    // stable offset or the index care about.
    let completed = entry.current_txn_first_offset.map(|first| CompletedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: h.base_offset,
        is_aborted: marker.is_abort(),
    });
    entry.maybe_update_epoch(epoch);
    entry.coordinator_epoch = marker.coordinator_epoch;
    entry.current_txn_first_offset = None;
    entry.last_timestamp = h.max_timestamp;
    Ok(completed)
}

impl ProducerStateManager {
    /// Checks the producer batches of one append (in order, stamped with
    /// their offsets) against the state, without changing it. Batches
    /// without a producer id are skipped; control batches whose record is
    /// not an end-transaction marker (or that are empty) change nothing.
    /// `transaction_version`: the coordinator's, for markers it writes
    /// (`None` for other origins).
    pub fn prepare_append(
        &self,
        batches: &[ProducerBatch],
        origin: AppendOrigin,
        transaction_version: Option<i16>,
    ) -> Result<Prepared, SequenceError> {
        self.prepare_append_verified(
            batches,
            origin,
            transaction_version,
            Verification::NotRequired,
        )
    }

    /// [`ProducerStateManager::prepare_append`] of a Produce request that
    /// brings `verification` (KIP-890 part 1, see [`super::verification`]).
    pub fn prepare_append_verified(
        &self,
        batches: &[ProducerBatch],
        origin: AppendOrigin,
        transaction_version: Option<i16>,
        verification: Verification,
    ) -> Result<Prepared, SequenceError> {
        let mut p = PreparedAppend::default();
        // Transactions this append has ended so far (their first offsets).
        let mut ended: Vec<Offset> = Vec::new();
        // Per entry: whether an earlier batch of this append updated it.
        let mut touched: Vec<bool> = Vec::new();
        let mut index: std::collections::HashMap<ProducerId, usize> = Default::default();
        for b in batches {
            let h = &b.header;
            if !h.has_producer_id() {
                continue;
            }
            let pid = h.producer_id;
            let i = match index.get(&pid) {
                Some(&i) => i,
                None => {
                    let (e, new) = match self.producers.get(&pid) {
                        Some(e) => (e.clone(), false),
                        None => (ProducerStateEntry::new(pid, h.producer_epoch), true),
                    };
                    p.entries.push((e, new));
                    touched.push(false);
                    index.insert(pid, p.entries.len() - 1);
                    p.entries.len() - 1
                }
            };
            // Known: state before this append, or an earlier batch of it.
            let known = !p.entries[i].1 || touched[i];
            touched[i] = true;
            if h.is_transactional() && !p.transactional.contains(&pid) {
                p.transactional.push(pid);
            }
            let entry = &mut p.entries[i].0;
            if h.is_control() {
                let Some(ControlBatch::EndTxn(marker)) = b.control else {
                    continue;
                };
                let lso = self.stable_at_marker(pid, h.base_offset, &p.started, &ended);
                if let Some(c) =
                    append_marker(entry, known, origin, marker, h, transaction_version)?
                {
                    ended.push(c.first_offset);
                    p.completed.push((c, lso));
                }
                continue;
            }
            let ongoing = entry.current_txn_first_offset.is_some();
            match append_data(entry, known, origin, h)? {
                DataOutcome::Duplicate(b) => return Ok(Prepared::Duplicate(b)),
                DataOutcome::Appended { started } => {
                    self.check_verified(h, origin, ongoing, verification)?;
                    if let Some(first) = started {
                        p.started.push((first, pid));
                    }
                }
            }
        }
        Ok(Prepared::Append(p))
    }

    /// KIP-890 part 1 for a client's or a coordinator's data batch that
    /// was not a duplicate (`ongoing`: its producer had a transaction open
    /// here before it): a client's sequence above the lowest one seen while
    /// verifying is out of order, and a transactional batch that starts a
    /// transaction needs the verification's guard (a group coordinator's
    /// TxnOffsetCommit batch too, as Kafka's `analyzeAndValidateProducerState`
    /// checks both origins).
    fn check_verified(
        &self,
        h: &BatchHeader,
        origin: AppendOrigin,
        ongoing: bool,
        verification: Verification,
    ) -> Result<(), SequenceError> {
        if origin != AppendOrigin::Client && origin != AppendOrigin::Coordinator {
            return Ok(());
        }
        let pid = h.producer_id;
        if origin == AppendOrigin::Client {
            if let Some(v) = self.verification(pid) {
                if h.base_sequence > v.lowest_sequence {
                    return Err(SequenceError::OutOfOrderSequence {
                        producer_id: pid,
                        epoch: h.producer_epoch.0,
                        first_seq: h.base_sequence,
                        expected: v.lowest_sequence,
                    });
                }
            }
        }
        if h.is_transactional() && !ongoing && !self.is_verified(pid, verification) {
            return Err(SequenceError::TransactionNotVerified {
                producer_id: pid,
                offset: h.base_offset,
            });
        }
        Ok(())
    }

    /// Applies what [`ProducerStateManager::prepare_append`] checked, after
    /// the append was written.
    pub fn apply(&mut self, p: PreparedAppend) {
        for pid in &p.transactional {
            self.clear_verification(*pid);
        }
        for (e, _) in p.entries {
            self.producers.insert(e.producer_id, e);
        }
        for (first, pid) in p.started {
            self.ongoing.insert(first, pid);
        }
        for (c, _) in &p.completed {
            self.complete_txn(c);
        }
    }

    /// Replays one stored batch with replication's rules (load, truncation:
    /// nothing is refused), in place. Returns the transaction a marker
    /// ended, with the last stable offset at the marker.
    pub fn replay(&mut self, b: &ProducerBatch) -> Option<(CompletedTxn, Offset)> {
        let h = &b.header;
        if !h.has_producer_id() {
            return None;
        }
        let pid = h.producer_id;
        let known = self.producers.contains_key(&pid);
        if h.is_transactional() {
            self.clear_verification(pid);
        }
        if h.is_control() {
            let Some(ControlBatch::EndTxn(marker)) = b.control else {
                return None;
            };
            let lso = self.stable_at_marker(pid, h.base_offset, &[], &[]);
            let entry = self
                .producers
                .entry(pid)
                .or_insert_with(|| ProducerStateEntry::new(pid, h.producer_epoch));
            let c = append_marker(entry, known, AppendOrigin::Replication, marker, h, None)
                .ok()
                .flatten()?;
            self.complete_txn(&c);
            return Some((c, lso));
        }
        let entry = self
            .producers
            .entry(pid)
            .or_insert_with(|| ProducerStateEntry::new(pid, h.producer_epoch));
        if let Ok(DataOutcome::Appended {
            started: Some(first),
        }) = append_data(entry, known, AppendOrigin::Replication, h)
        {
            self.ongoing.insert(first, pid);
        }
        None
    }

    /// The last stable offset at a marker of `pid` at `marker`: the first
    /// offset of the earliest transaction of another producer open at that
    /// point (open before the append and not ended by it, or started by
    /// it), at most `marker + 1` (Kafka's `lastStableOffset(completedTxn)`).
    fn stable_at_marker(
        &self,
        pid: ProducerId,
        marker: Offset,
        started: &[(Offset, ProducerId)],
        ended: &[Offset],
    ) -> Offset {
        let open_before = self
            .ongoing
            .iter()
            .find(|(first, p)| **p != pid && !ended.contains(first))
            .map(|(first, _)| *first);
        let started_here = started
            .iter()
            .filter(|(first, p)| *p != pid && !ended.contains(first))
            .map(|(first, _)| *first)
            .min();
        [open_before, started_here]
            .into_iter()
            .flatten()
            .fold(marker.plus(1), Offset::min)
    }

    /// Moves a transaction from the open ones to those waiting for the high
    /// watermark (Kafka's `completeTxn`).
    fn complete_txn(&mut self, c: &CompletedTxn) {
        if self.ongoing.remove(&c.first_offset).is_none() {
            tracing::warn!(
                producer_id = c.producer_id.0,
                first_offset = c.first_offset.0,
                "completed a transaction that was not open"
            );
        }
        self.unreplicated.insert(c.first_offset, c.last_offset);
        while self.unreplicated.len() > MAX_UNREPLICATED_TXNS {
            // Merge the newest two: from the older first offset to the
            // later marker (only ever more conservative).
            let Some((_, last)) = self.unreplicated.pop_last() else {
                break;
            };
            if let Some(mut prev) = self.unreplicated.last_entry() {
                let l = prev.get_mut();
                *l = (*l).max(last);
            }
        }
    }

    /// The first offset that is not stable yet: the earliest open
    /// transaction or completed one whose marker the high watermark has
    /// not passed (Kafka's `firstUnstableOffset`).
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest open transaction's first offset (Kafka's
    /// `firstUndecidedOffset`).
    pub fn first_undecided_offset(&self) -> Option<Offset> {
        self.ongoing.keys().next().copied()
    }

    /// The smallest marker offset of the completed transactions waiting
    /// for the high watermark.
    pub fn min_unreplicated_marker(&self) -> Option<Offset> {
        self.unreplicated.values().min().copied()
    }

    /// The high watermark reached `hw`: completed transactions whose marker
    /// lies below it are stable (Kafka's `onHighWatermarkUpdated`).
    /// Returns whether anything changed.
    pub fn on_high_watermark_updated(&mut self, hw: Offset) -> bool {
        let before = self.unreplicated.len();
        self.unreplicated.retain(|_, last| *last >= hw);
        self.unreplicated.len() != before
    }

    /// Open transactions, earliest first: (first offset, producer).
    pub fn ongoing_txns(&self) -> impl Iterator<Item = (Offset, ProducerId)> + '_ {
        self.ongoing.iter().map(|(o, p)| (*o, *p))
    }

    /// Completed transactions waiting for the high watermark: (first
    /// offset, marker offset).
    pub fn unreplicated_txns(&self) -> impl Iterator<Item = (Offset, Offset)> + '_ {
        self.unreplicated.iter().map(|(f, l)| (*f, *l))
    }

    /// Rebuilds the open transactions from the entries (after a snapshot
    /// was decoded). Fails if two producers claim the same first offset.
    pub(super) fn rebuild_ongoing(&mut self) -> Result<(), &'static str> {
        self.ongoing.clear();
        for e in self.producers.values() {
            if let Some(first) = e.current_txn_first_offset {
                if self.ongoing.insert(first, e.producer_id).is_some() {
                    return Err("two open transactions at one offset");
                }
            }
        }
        Ok(())
    }
}
