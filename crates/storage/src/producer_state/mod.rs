//! Idempotent and transactional producer state of one partition, modelled
//! on Kafka's `ProducerStateManager` / `ProducerStateEntry` /
//! `ProducerAppendInfo`.
//!
//! For every producer id that wrote to the partition the log keeps the
//! producer epoch, the sequence ranges and offsets of its last
//! [`NUM_BATCHES_TO_RETAIN`] batches, the first offset of its ongoing
//! transaction and the epoch of the last transaction coordinator that
//! wrote a marker for it. [`check_batch`] is the pure sequence rule for a
//! client's batch (Kafka 4.1 semantics):
//!
//! * an exact retry (same epoch, same first and last sequence) of one of the
//!   retained batches is a **duplicate**: it is answered with the original
//!   offsets and not written again;
//! * an epoch lower than the known one is rejected
//!   ([`SequenceError::InvalidProducerEpoch`], INVALID_PRODUCER_EPOCH);
//! * a higher epoch (a bump) must start at sequence 0, otherwise
//!   [`SequenceError::OutOfOrderSequence`];
//! * the same epoch must continue at `last_sequence + 1` (wrapping from
//!   `i32::MAX` to 0), otherwise `OutOfOrderSequence`;
//! * a producer the partition has no state for is accepted with any
//!   sequence: since KIP-360 (Kafka 2.5) the broker no longer answers
//!   UNKNOWN_PRODUCER_ID for produce requests — its state may have been
//!   removed legitimately by retention or DeleteRecords.
//!
//! Transactions (KIP-98) are in [`txn`]: which rules apply by
//! [`AppendOrigin`], markers, the ongoing and the completed-but-unreplicated
//! transactions that make the partition's first unstable offset.
//!
//! The state is written to `<offset>.snapshot` files in the partition
//! directory ([`snapshot`]); on load the log reads the newest snapshot and
//! replays batch headers (and markers) from its offset to the log end.

use std::collections::{BTreeMap, HashMap, VecDeque};

use sluice_record::{increment_sequence, Offset, ProducerEpoch, ProducerId, Timestamp};

mod snapshot;
#[cfg(test)]
mod tests;
pub mod txn;
#[cfg(test)]
mod txn_tests;
pub mod verification;
#[cfg(test)]
mod verification_tests;

pub use snapshot::{
    decode_snapshot, encode_snapshot, parse_snapshot_file_name, snapshot_file_name, SnapshotError,
    SNAPSHOT_FILE_SUFFIX,
};
pub use txn::{AppendOrigin, CompletedTxn, PreparedAppend, ProducerBatch, MAX_UNREPLICATED_TXNS};
pub use verification::{Verification, VerificationGuard, VerificationStateEntry};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// The coordinator epoch of a producer no marker was written for yet
/// (Kafka's `ProducerStateEntry.empty`).
pub const NO_COORDINATOR_EPOCH: i32 = -1;

/// Sequence range and offsets of one appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The batch's max timestamp.
    pub timestamp: Timestamp,
}

/// What the partition knows about one producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The last batches, oldest first, at most [`NUM_BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the producer's last batch or marker (used for
    /// expiry).
    pub last_timestamp: Timestamp,
    /// First offset of the producer's ongoing transaction, if one is open
    /// on this partition.
    pub current_txn_first_offset: Option<Offset>,
    /// Epoch of the transaction coordinator that wrote the producer's last
    /// marker here ([`NO_COORDINATOR_EPOCH`] before any).
    pub coordinator_epoch: i32,
}

impl ProducerStateEntry {
    pub fn new(producer_id: ProducerId, producer_epoch: ProducerEpoch) -> Self {
        ProducerStateEntry {
            producer_id,
            producer_epoch,
            batches: VecDeque::new(),
            last_timestamp: Timestamp::NONE,
            current_txn_first_offset: None,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
        }
    }

    /// Sequence of the last appended record, -1 if none.
    pub fn last_seq(&self) -> i32 {
        self.batches
            .back()
            .map_or(sluice_record::NO_SEQUENCE, |b| b.last_seq)
    }

    pub fn last_offset(&self) -> Option<Offset> {
        self.batches.back().map(|b| b.last_offset)
    }

    /// A retained batch with exactly this epoch and sequence range.
    pub fn find_duplicate_batch(
        &self,
        epoch: ProducerEpoch,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// A new epoch forgets the batches of the old one, as Kafka does.
    fn maybe_update_epoch(&mut self, epoch: ProducerEpoch) {
        if epoch != self.producer_epoch {
            self.producer_epoch = epoch;
            self.batches.clear();
        }
    }

    /// Records an appended batch (the caller has checked it).
    pub fn add_batch(&mut self, epoch: ProducerEpoch, batch: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }

    /// Approximate heap + inline bytes this entry uses.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<(ProducerId, ProducerStateEntry)>()
            + self.batches.capacity() * std::mem::size_of::<BatchMetadata>()
    }
}

/// The outcome of a valid batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Write it.
    Append,
    /// An exact retry of a batch already in the log: do not write it; answer
    /// with these offsets.
    Duplicate(BatchMetadata),
}

/// Why a batch (or a marker) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id:?} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: ProducerId,
        epoch: i16,
        current: i16,
    },
    #[error("out of order sequence for producer {producer_id:?} epoch {epoch}: got {first_seq}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: ProducerId,
        epoch: i16,
        first_seq: i32,
        /// The sequence the broker expected next.
        expected: i32,
    },
    /// A non-transactional batch while the producer has a transaction open
    /// on this partition (INVALID_TXN_STATE).
    #[error("non-transactional batch of producer {producer_id:?} at offset {offset} while its transaction from offset {txn_first_offset} is open")]
    InvalidTxnState {
        producer_id: ProducerId,
        offset: Offset,
        txn_first_offset: Offset,
    },
    /// A client's transactional batch that would start a transaction here
    /// without the coordinator having said it may (KIP-890 part 1, see
    /// [`verification`]): INVALID_TXN_STATE.
    #[error("transactional batch of producer {producer_id:?} at offset {offset} was not verified with its transaction coordinator")]
    TransactionNotVerified {
        producer_id: ProducerId,
        offset: Offset,
    },
    /// Too many producers are being verified on this partition at once
    /// (retriable: NOT_ENOUGH_REPLICAS, as Kafka answers when verification
    /// cannot be done).
    #[error("too many transaction verifications in progress; producer {producer_id:?} must retry")]
    TooManyVerifications { producer_id: ProducerId },
    /// A marker from a transaction coordinator older than the one that
    /// wrote the producer's last marker (TRANSACTION_COORDINATOR_FENCED).
    #[error("marker of producer {producer_id:?} from coordinator epoch {coordinator_epoch}, older than the current {current}")]
    TransactionCoordinatorFenced {
        producer_id: ProducerId,
        coordinator_epoch: i32,
        current: i32,
    },
}

/// Kafka's `inSequence`: `next` follows `last`, wrapping at `i32::MAX`.
pub fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == increment_sequence(last_seq, 1) && last_seq >= -1
}

/// The sequence rules (pure): what to do with a batch of `producer_id`
/// carrying `epoch` and sequences `first_seq..=last_seq`, given the
/// partition's entry for that producer (`None` = unknown producer).
pub fn check_batch(
    entry: Option<&ProducerStateEntry>,
    producer_id: ProducerId,
    epoch: ProducerEpoch,
    first_seq: i32,
    last_seq: i32,
) -> Result<SequenceCheck, SequenceError> {
    let Some(entry) = entry else {
        // Unknown producer (no state, e.g. removed by retention): any
        // sequence is accepted (Kafka >= 2.5, KIP-360).
        return Ok(SequenceCheck::Append);
    };
    if let Some(dup) = entry.find_duplicate_batch(epoch, first_seq, last_seq) {
        return Ok(SequenceCheck::Duplicate(dup));
    }
    if epoch < entry.producer_epoch {
        return Err(SequenceError::InvalidProducerEpoch {
            producer_id,
            epoch: epoch.0,
            current: entry.producer_epoch.0,
        });
    }
    if epoch != entry.producer_epoch {
        // Epoch bump: the new epoch starts at 0.
        if first_seq != 0 {
            return Err(SequenceError::OutOfOrderSequence {
                producer_id,
                epoch: epoch.0,
                first_seq,
                expected: 0,
            });
        }
        return Ok(SequenceCheck::Append);
    }
    let last = entry.last_seq();
    if !in_sequence(last, first_seq) {
        return Err(SequenceError::OutOfOrderSequence {
            producer_id,
            epoch: epoch.0,
            first_seq,
            expected: increment_sequence(last, 1).max(0),
        });
    }
    Ok(SequenceCheck::Append)
}

/// Settings of the producer state of every partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerStateConfig {
    /// `producer.id.expiration.ms`: state of a producer whose last batch is
    /// older than this is dropped (unless it has a transaction open).
    pub producer_id_expiration_ms: i64,
    /// Most producers tracked per partition; a new producer beyond it is
    /// refused (after expiring idle ones) with
    /// `StorageError::TooManyProducers`.
    pub max_producers: usize,
}

impl Default for ProducerStateConfig {
    fn default() -> Self {
        ProducerStateConfig {
            producer_id_expiration_ms: 86_400_000,
            max_producers: 10_000,
        }
    }
}

/// The producers of one partition, their transactions, plus the offset up
/// to which the state reflects the log.
///
/// Invariants: `ongoing` holds exactly the `current_txn_first_offset` of
/// the entries that have one (so it is bounded by the producers); the
/// completed transactions waiting for the high watermark are at most
/// [`MAX_UNREPLICATED_TXNS`] (beyond, neighbours merge into one wider,
/// more conservative range).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<ProducerId, ProducerStateEntry>,
    /// The state reflects every batch below this offset.
    map_end_offset: Offset,
    /// Open transactions: first offset -> producer (Kafka's `ongoingTxns`).
    ongoing: BTreeMap<Offset, ProducerId>,
    /// Completed transactions whose marker the high watermark has not
    /// passed yet: first offset -> marker offset (Kafka's
    /// `unreplicatedTxns`).
    unreplicated: BTreeMap<Offset, Offset>,
    /// Transaction verifications in progress (KIP-890 part 1, in memory
    /// only; see [`verification`]).
    verifications: HashMap<ProducerId, VerificationStateEntry>,
}

impl ProducerStateManager {
    pub fn new(map_end_offset: Offset) -> Self {
        ProducerStateManager {
            producers: HashMap::new(),
            map_end_offset,
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
            verifications: HashMap::new(),
        }
    }

    pub fn last_entry(&self, pid: ProducerId) -> Option<&ProducerStateEntry> {
        self.producers.get(&pid)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn map_end_offset(&self) -> Offset {
        self.map_end_offset
    }

    pub fn producers(&self) -> impl Iterator<Item = &ProducerStateEntry> {
        self.producers.values()
    }

    /// Approximate bytes used by the tracked state.
    pub fn memory_bytes(&self) -> usize {
        let txns = (self.ongoing.len() + self.unreplicated.len()) * 48
            + self.verifications.len()
                * std::mem::size_of::<(ProducerId, VerificationStateEntry)>();
        self.producers
            .values()
            .map(ProducerStateEntry::memory_bytes)
            .sum::<usize>()
            + txns
    }

    /// Records an appended (or replayed) non-transactional batch without
    /// any check (tests and tools; appends go through
    /// [`ProducerStateManager::prepare_append`]).
    pub fn update(&mut self, pid: ProducerId, epoch: ProducerEpoch, batch: BatchMetadata) {
        self.producers
            .entry(pid)
            .or_insert_with(|| ProducerStateEntry::new(pid, epoch))
            .add_batch(epoch, batch);
        self.map_end_offset = self
            .map_end_offset
            .max(Offset(batch.last_offset.0.saturating_add(1)));
    }

    /// Moves the end of the mapped range (batches without a producer id
    /// advance it too).
    pub fn set_map_end_offset(&mut self, offset: Offset) {
        self.map_end_offset = offset;
    }

    /// Drops producers whose last batch is older than the expiration,
    /// except those with a transaction open (Kafka's `isProducerExpired`),
    /// and verifications as old. Returns how many producers were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.remove_expired_verifications(now_ms, expiration_ms);
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp.0) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Drops producers whose last batch lies wholly below `log_start`
    /// (their data is gone, so is their state; entries a marker left
    /// without batches stay until they expire) with their open
    /// transactions, and completed transactions whose marker is gone
    /// (Kafka's `onLogStartOffsetIncremented`).
    pub fn truncate_head(&mut self, log_start: Offset) {
        let ongoing = &mut self.ongoing;
        self.producers.retain(|_, e| {
            let keep = e.last_offset().is_none_or(|o| o >= log_start);
            if !keep {
                if let Some(first) = e.current_txn_first_offset {
                    ongoing.remove(&first);
                }
            }
            keep
        });
        self.unreplicated.retain(|_, last| *last >= log_start);
        if self.map_end_offset < log_start {
            self.map_end_offset = log_start;
        }
    }

    /// Forgets everything; the caller rebuilds from the log.
    pub fn clear(&mut self, map_end_offset: Offset) {
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        self.map_end_offset = map_end_offset;
    }
}
