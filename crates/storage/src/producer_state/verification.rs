//! Transaction verification on the partition leader (KIP-890 part 1), as
//! Kafka's `VerificationGuard` and `VerificationStateEntry`.
//!
//! The hazard: a producer's late Produce from a transaction the
//! coordinator already aborted arrives after the abort marker and starts a
//! new transaction on this partition that no coordinator knows of. It
//! never ends, and the last stable offset is stuck behind it (a *hanging
//! transaction*). The defence: before a client's transactional batch may
//! start a transaction here, the leader asks the coordinator whether the
//! partition is in the producer's ongoing transaction.
//!
//! The order that makes it safe:
//! 1. The produce path creates a [`VerificationStateEntry`] for the
//!    producer with a fresh [`VerificationGuard`]
//!    ([`ProducerStateManager::maybe_start_verification`]) — unless the
//!    producer already has a transaction open here (then nothing is asked).
//! 2. It asks the coordinator; only on "yes" does it append, carrying the
//!    guard ([`Verification::Required`]).
//! 3. The append is refused ([`SequenceError::TransactionNotVerified`],
//!    INVALID_TXN_STATE) when a client's transactional batch would start a
//!    transaction and the guard is not the entry's.
//! 4. Any transactional batch or marker of the producer removes the entry.
//!    So a marker written while the question was out (the ABA case: verify,
//!    abort, verified answer arrives late) voids the guard, and the late
//!    append is refused.
//!
//! The entry also keeps the lowest sequence seen while verifying, so a
//! higher sequence cannot be written before a lower one that failed with a
//! retriable error (Kafka's `maybeUpdateLowestSequenceAndEpoch`).
//!
//! Entries live in memory only, as in Kafka; they expire after
//! `producer.id.expiration.ms` and are bounded in number (see
//! [`ProducerStateManager::maybe_start_verification`]).

use std::sync::atomic::{AtomicU64, Ordering};

use sluice_record::{ProducerEpoch, ProducerId};

use super::{ProducerStateManager, SequenceError};

/// A token that proves an append was verified with the coordinator after
/// the entry it names was created. Unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VerificationGuard(u64);

impl VerificationGuard {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        VerificationGuard(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a client's append brings for KIP-890 part 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Not checked: verification is off
    /// (`transaction.partition.verification.enable=false`), or the append
    /// is not a Produce request's.
    NotRequired,
    /// Checked: the guard the request obtained before asking the
    /// coordinator (`None` when the producer had a transaction open here
    /// then, so nothing was asked).
    Required(Option<VerificationGuard>),
}

/// One producer's verification in progress (Kafka's
/// `VerificationStateEntry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationStateEntry {
    pub guard: VerificationGuard,
    /// When it was created (ms), for expiry.
    pub created_ms: i64,
    /// The lowest sequence seen in this epoch while verifying: higher ones
    /// are refused as out of order until the entry goes.
    pub lowest_sequence: i32,
    pub epoch: ProducerEpoch,
}

impl VerificationStateEntry {
    /// Kafka's `maybeUpdateLowestSequenceAndEpoch`: a lower sequence in the
    /// same epoch, or any sequence of a newer epoch, becomes the lowest.
    fn observe(&mut self, sequence: i32, epoch: ProducerEpoch) {
        if epoch == self.epoch && sequence < self.lowest_sequence {
            self.lowest_sequence = sequence;
        }
        if epoch > self.epoch {
            self.epoch = epoch;
            self.lowest_sequence = sequence;
        }
    }
}

impl ProducerStateManager {
    /// Step 1 of the module docs: the guard a Produce request of `pid`
    /// (first batch at `sequence`, `epoch`) must carry, or `None` when the
    /// producer has a transaction open here and nothing needs asking.
    /// At most `max` entries are kept: past it, expired ones go first, then
    /// the request is refused (retriably) with `TooManyVerifications`.
    pub fn maybe_start_verification(
        &mut self,
        pid: ProducerId,
        sequence: i32,
        epoch: ProducerEpoch,
        now_ms: i64,
        limits: (usize, i64),
    ) -> Result<Option<VerificationGuard>, SequenceError> {
        let (max, expiration_ms) = limits;
        if self.has_ongoing_transaction(pid) {
            return Ok(None);
        }
        if !self.verifications.contains_key(&pid) && self.verifications.len() >= max {
            self.verifications
                .retain(|_, e| now_ms.saturating_sub(e.created_ms) < expiration_ms);
            if self.verifications.len() >= max {
                return Err(SequenceError::TooManyVerifications { producer_id: pid });
            }
        }
        let entry = self
            .verifications
            .entry(pid)
            .or_insert_with(|| VerificationStateEntry {
                guard: VerificationGuard::fresh(),
                created_ms: now_ms,
                lowest_sequence: sequence,
                epoch,
            });
        entry.observe(sequence, epoch);
        Ok(Some(entry.guard))
    }

    /// Whether `pid` has a transaction open on this partition (Kafka's
    /// `hasOngoingTransaction`).
    pub fn has_ongoing_transaction(&self, pid: ProducerId) -> bool {
        self.producers
            .get(&pid)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    /// The verification in progress for `pid`, if any.
    pub fn verification(&self, pid: ProducerId) -> Option<&VerificationStateEntry> {
        self.verifications.get(&pid)
    }

    /// Step 3: whether a client's transactional batch of `pid` that would
    /// start a transaction may be written with `verification`.
    pub(super) fn is_verified(&self, pid: ProducerId, verification: Verification) -> bool {
        match verification {
            Verification::NotRequired => true,
            Verification::Required(guard) => {
                guard.is_some() && self.verifications.get(&pid).map(|e| e.guard) == guard
            }
        }
    }

    /// Step 4: a transactional batch or marker of `pid` was written.
    pub(super) fn clear_verification(&mut self, pid: ProducerId) {
        self.verifications.remove(&pid);
    }

    /// Drops verifications older than `expiration_ms` (a Produce that never
    /// came back after asking).
    pub(super) fn remove_expired_verifications(&mut self, now_ms: i64, expiration_ms: i64) {
        self.verifications
            .retain(|_, e| now_ms.saturating_sub(e.created_ms) < expiration_ms);
    }
}
