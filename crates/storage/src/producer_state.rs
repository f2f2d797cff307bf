//! Idempotent-producer state of one partition, modelled on Kafka's
//! `ProducerStateManager` / `ProducerStateEntry` / `ProducerAppendInfo`.
//!
//! For every producer id that wrote to the partition the log keeps the
//! producer epoch and the sequence ranges and offsets of its last
//! [`NUM_BATCHES_TO_RETAIN`] batches. [`check_batch`] is the pure rule that
//! decides what happens to a new batch (Kafka 4.1 semantics for
//! non-transactional producers):
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
//! The state is written to `<offset>.snapshot` files in the partition
//! directory (see [`encode_snapshot`]); on load the log reads the newest
//! snapshot and replays batch headers from its offset to the log end.

use std::collections::{HashMap, VecDeque};

use sluice_record::{increment_sequence, Offset, ProducerEpoch, ProducerId, Timestamp};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// File name suffix of producer state snapshots.
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snapshot";

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
    /// Max timestamp of the producer's last batch (used for expiry).
    pub last_timestamp: Timestamp,
}

impl ProducerStateEntry {
    pub fn new(producer_id: ProducerId, producer_epoch: ProducerEpoch) -> Self {
        ProducerStateEntry {
            producer_id,
            producer_epoch,
            batches: VecDeque::new(),
            last_timestamp: Timestamp::NONE,
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

    /// Records an appended batch (the caller has checked it). A new epoch
    /// forgets the batches of the old one, as Kafka does.
    pub fn add_batch(&mut self, epoch: ProducerEpoch, batch: BatchMetadata) {
        if epoch != self.producer_epoch {
            self.producer_epoch = epoch;
            self.batches.clear();
        }
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

/// Why a batch was refused.
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
    /// older than this is dropped.
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

/// The producers of one partition, plus the offset up to which the state
/// reflects the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<ProducerId, ProducerStateEntry>,
    /// The state reflects every batch below this offset.
    map_end_offset: Offset,
}

impl ProducerStateManager {
    pub fn new(map_end_offset: Offset) -> Self {
        ProducerStateManager {
            producers: HashMap::new(),
            map_end_offset,
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
        self.producers
            .values()
            .map(ProducerStateEntry::memory_bytes)
            .sum()
    }

    /// Records an appended (or replayed) batch.
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

    /// Drops producers whose last batch is older than the expiration.
    /// Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp.0) < expiration_ms);
        before - self.producers.len()
    }

    /// Drops producers whose last batch lies wholly below `log_start`
    /// (Kafka's `onLogStartOffsetIncremented` / `removeStraysAndExpired`):
    /// their data is gone, so is their state.
    pub fn truncate_head(&mut self, log_start: Offset) {
        self.producers
            .retain(|_, e| e.last_offset().is_some_and(|o| o >= log_start));
        if self.map_end_offset < log_start {
            self.map_end_offset = log_start;
        }
    }

    /// Forgets everything; the caller rebuilds from the log.
    pub fn clear(&mut self, map_end_offset: Offset) {
        self.producers.clear();
        self.map_end_offset = map_end_offset;
    }
}

// ---- snapshot format ----
//
// version 1, all integers big-endian:
//   magic "SLPS" | u16 version | i64 map_end_offset | u32 count
//   count x ( i64 producer_id | i16 epoch | i64 last_timestamp | u8 n
//             n x ( i32 first_seq | i32 last_seq | i64 first_offset
//                   | i64 last_offset | i64 timestamp ) )
//   u32 CRC-32C of everything before it

const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPS";
const SNAPSHOT_VERSION: u16 = 1;
const ENTRY_FIXED: usize = 8 + 2 + 8 + 1;
const BATCH_SIZE: usize = 4 + 4 + 8 + 8 + 8;

/// Serialises the state (sorted by producer id, so equal states give equal
/// bytes).
pub fn encode_snapshot(state: &ProducerStateManager) -> Vec<u8> {
    let mut entries: Vec<&ProducerStateEntry> = state.producers.values().collect();
    entries.sort_by_key(|e| e.producer_id);
    let mut out = Vec::with_capacity(
        18 + entries.len() * (ENTRY_FIXED + NUM_BATCHES_TO_RETAIN * BATCH_SIZE) + 4,
    );
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&state.map_end_offset.0.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.producer_id.0.to_be_bytes());
        out.extend_from_slice(&e.producer_epoch.0.to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.0.to_be_bytes());
        out.push(e.batches.len() as u8);
        for b in &e.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.first_offset.0.to_be_bytes());
            out.extend_from_slice(&b.last_offset.0.to_be_bytes());
            out.extend_from_slice(&b.timestamp.0.to_be_bytes());
        }
    }
    let crc = sluice_record::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Why a snapshot file cannot be used (the log then rebuilds from an older
/// snapshot or from the start of the log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unusable producer state snapshot: {0}")]
pub struct SnapshotError(pub &'static str);

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        if self.buf.len() < N {
            return Err(SnapshotError("truncated"));
        }
        let (a, rest) = self.buf.split_at(N);
        self.buf = rest;
        Ok(a.try_into().expect("length checked"))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
}

/// Parses a snapshot written by [`encode_snapshot`]; checks magic, version
/// and CRC, and never allocates more than the input justifies.
pub fn decode_snapshot(bytes: &[u8]) -> Result<ProducerStateManager, SnapshotError> {
    if bytes.len() < 4 + 2 + 8 + 4 + 4 {
        return Err(SnapshotError("too short"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if sluice_record::crc32c(body) != crc {
        return Err(SnapshotError("CRC mismatch"));
    }
    if &body[..4] != SNAPSHOT_MAGIC {
        return Err(SnapshotError("bad magic"));
    }
    let mut c = Cursor { buf: &body[4..] };
    if u16::from_be_bytes(c.take()?) != SNAPSHOT_VERSION {
        return Err(SnapshotError("unknown version"));
    }
    let map_end = Offset(c.i64()?);
    let count = u32::from_be_bytes(c.take()?) as usize;
    if count > c.buf.len() / ENTRY_FIXED {
        return Err(SnapshotError("entry count exceeds file"));
    }
    let mut state = ProducerStateManager::new(map_end);
    state.producers.reserve(count);
    let mut previous: Option<ProducerId> = None;
    for _ in 0..count {
        let pid = ProducerId(c.i64()?);
        // Entries are written sorted by producer id: anything else is not a
        // file this code wrote.
        if previous.is_some_and(|p| p >= pid) {
            return Err(SnapshotError("producer ids not strictly increasing"));
        }
        previous = Some(pid);
        let epoch = ProducerEpoch(c.i16()?);
        let last_ts = Timestamp(c.i64()?);
        let n = c.take::<1>()?[0] as usize;
        if n > NUM_BATCHES_TO_RETAIN {
            return Err(SnapshotError("too many batches"));
        }
        let mut entry = ProducerStateEntry::new(pid, epoch);
        entry.last_timestamp = last_ts;
        for _ in 0..n {
            entry.batches.push_back(BatchMetadata {
                first_seq: c.i32()?,
                last_seq: c.i32()?,
                first_offset: Offset(c.i64()?),
                last_offset: Offset(c.i64()?),
                timestamp: Timestamp(c.i64()?),
            });
        }
        state.producers.insert(pid, entry);
    }
    if !c.buf.is_empty() {
        return Err(SnapshotError("trailing bytes"));
    }
    Ok(state)
}

/// `<20-digit offset>.snapshot`.
pub fn snapshot_file_name(offset: Offset) -> String {
    format!("{:020}{SNAPSHOT_FILE_SUFFIX}", offset.0)
}

/// The offset of a snapshot file name.
pub fn parse_snapshot_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(SNAPSHOT_FILE_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PID: ProducerId = ProducerId(7);

    fn meta(first_seq: i32, n: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_seq,
            last_seq: increment_sequence(first_seq, n - 1),
            first_offset: Offset(first_offset),
            last_offset: Offset(first_offset + n as i64 - 1),
            timestamp: Timestamp(1000),
        }
    }

    fn entry_with(epoch: i16, batches: &[BatchMetadata]) -> ProducerStateEntry {
        let mut e = ProducerStateEntry::new(PID, ProducerEpoch(epoch));
        for b in batches {
            e.add_batch(ProducerEpoch(epoch), *b);
        }
        e
    }

    #[test]
    fn in_sequence_append_and_gap() {
        let e = entry_with(0, &[meta(0, 3, 0)]);
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(0), 3, 4),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(0), 5, 6),
            Err(SequenceError::OutOfOrderSequence {
                producer_id: PID,
                epoch: 0,
                first_seq: 5,
                expected: 3
            })
        );
    }

    #[test]
    fn retry_of_each_of_the_last_five_is_a_duplicate_and_older_is_not() {
        let batches: Vec<_> = (0..6).map(|i| meta(i * 2, 2, 100 + i as i64 * 2)).collect();
        let e = entry_with(3, &batches);
        assert_eq!(e.batches.len(), NUM_BATCHES_TO_RETAIN);
        for b in &batches[1..] {
            assert_eq!(
                check_batch(Some(&e), PID, ProducerEpoch(3), b.first_seq, b.last_seq),
                Ok(SequenceCheck::Duplicate(*b))
            );
        }
        // The sixth-newest is forgotten: out of order.
        assert!(matches!(
            check_batch(Some(&e), PID, ProducerEpoch(3), 0, 1),
            Err(SequenceError::OutOfOrderSequence { .. })
        ));
        // Same first sequence, different length: not a duplicate.
        assert!(matches!(
            check_batch(Some(&e), PID, ProducerEpoch(3), 2, 4),
            Err(SequenceError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn epochs() {
        let e = entry_with(3, &[meta(0, 1, 0)]);
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(2), 1, 1),
            Err(SequenceError::InvalidProducerEpoch {
                producer_id: PID,
                epoch: 2,
                current: 3
            })
        );
        // Even an exact retry under an old epoch is refused.
        assert!(matches!(
            check_batch(Some(&e), PID, ProducerEpoch(2), 0, 0),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(4), 0, 9),
            Ok(SequenceCheck::Append)
        );
        assert!(matches!(
            check_batch(Some(&e), PID, ProducerEpoch(4), 1, 9),
            Err(SequenceError::OutOfOrderSequence { expected: 0, .. })
        ));
        // A bump forgets the old epoch's batches.
        let mut e2 = e.clone();
        e2.add_batch(ProducerEpoch(4), meta(0, 1, 10));
        assert_eq!(e2.batches.len(), 1);
        assert_eq!(e2.producer_epoch, ProducerEpoch(4));
    }

    #[test]
    fn unknown_producer_accepts_any_sequence() {
        assert_eq!(
            check_batch(None, PID, ProducerEpoch(0), 42, 50),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let e = entry_with(0, &[meta(i32::MAX - 1, 2, 0)]);
        assert_eq!(e.last_seq(), i32::MAX);
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(0), 0, 3),
            Ok(SequenceCheck::Append)
        );
        let wrapped = meta(i32::MAX, 3, 5);
        assert_eq!(wrapped.last_seq, 1);
        let e = entry_with(0, &[wrapped]);
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(0), 2, 2),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(
            snapshot_file_name(Offset(42)),
            "00000000000000000042.snapshot"
        );
        assert_eq!(
            parse_snapshot_file_name("00000000000000000042.snapshot"),
            Some(Offset(42))
        );
        assert_eq!(parse_snapshot_file_name("42.snapshot"), None);
        assert_eq!(parse_snapshot_file_name("00000000000000000042.log"), None);
    }

    #[test]
    fn expiry_and_head_truncation() {
        let mut m = ProducerStateManager::new(Offset::ZERO);
        let mut b = meta(0, 1, 0);
        b.timestamp = Timestamp(1_000);
        m.update(ProducerId(1), ProducerEpoch(0), b);
        let mut b = meta(0, 1, 1);
        b.timestamp = Timestamp(5_000);
        m.update(ProducerId(2), ProducerEpoch(0), b);
        assert_eq!(m.map_end_offset(), Offset(2));
        assert!(m.memory_bytes() > 0);
        assert_eq!(m.remove_expired(6_000, 4_500), 1);
        assert!(m.last_entry(ProducerId(1)).is_none());
        m.truncate_head(Offset(2));
        assert!(m.is_empty());
    }

    type Expect = Result<Option<(i64, i64)>, &'static str>;
    type ModelProducer = (i16, Vec<(i32, i32, i64, i64)>, i32);

    /// The model: every batch ever appended per producer, with its epoch.
    #[derive(Default)]
    struct Model {
        /// pid -> (epoch, appended batches of this epoch (all of them), next seq)
        producers: HashMap<i64, ModelProducer>,
        next_offset: i64,
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Next in-sequence batch of n records.
        Next { pid: i64, n: i32 },
        /// Retry of the k-th most recent batch (0 = newest).
        Retry { pid: i64, k: usize },
        /// A batch starting `skip` past the expected sequence.
        Gap { pid: i64, skip: i32 },
        /// Bump the epoch, starting at `seq`.
        Bump { pid: i64, seq: i32 },
        /// A batch with an older epoch.
        Stale { pid: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        let pid = 0i64..3;
        prop_oneof![
            4 => (pid.clone(), 1i32..5).prop_map(|(pid, n)| Op::Next { pid, n }),
            3 => (pid.clone(), 0usize..8).prop_map(|(pid, k)| Op::Retry { pid, k }),
            1 => (pid.clone(), 1i32..4).prop_map(|(pid, skip)| Op::Gap { pid, skip }),
            1 => (pid.clone(), 0i32..2).prop_map(|(pid, seq)| Op::Bump { pid, seq }),
            1 => pid.prop_map(|pid| Op::Stale { pid }),
        ]
    }

    proptest! {
        /// The rules against a model that remembers every batch: retries of
        /// the last five batches of the current epoch are duplicates with
        /// the original offsets; everything else is checked as described
        /// in the module doc.
        #[test]
        fn rules_match_model(ops in prop::collection::vec(op(), 1..120), start_seq in prop_oneof![Just(0i32), Just(i32::MAX - 6)]) {
            let mut model = Model::default();
            let mut state = ProducerStateManager::new(Offset::ZERO);
            for op in ops {
                let pid = match op { Op::Next{pid,..} | Op::Retry{pid,..} | Op::Gap{pid,..} | Op::Bump{pid,..} | Op::Stale{pid} => pid };
                let known = model.producers.get(&pid).cloned();
                let (epoch, first, n, expect): (i16, i32, i32, Expect) = match (&op, &known) {
                    (Op::Next { n, .. }, None) => (0, start_seq, *n, Ok(None)),
                    (Op::Next { n, .. }, Some((e, _, next))) => (*e, *next, *n, Ok(None)),
                    (Op::Retry { .. }, None) => continue,
                    (Op::Retry { k, .. }, Some((e, batches, _))) => {
                        let Some(&(f, l, fo, lo)) = batches.iter().rev().nth(*k) else { continue };
                        let n = (i64::from(l) - i64::from(f)).rem_euclid(1i64 << 31) as i32 + 1;
                        if *k < NUM_BATCHES_TO_RETAIN {
                            (*e, f, n, Ok(Some((fo, lo))))
                        } else {
                            (*e, f, n, Err("ooo"))
                        }
                    }
                    (Op::Gap { .. }, None) => continue,
                    (Op::Gap { skip, .. }, Some((e, _, next))) => (*e, increment_sequence(*next, *skip), 1, Err("ooo")),
                    (Op::Bump { .. }, None) => continue,
                    (Op::Bump { seq, .. }, Some((e, _, _))) => (*e + 1, *seq, 1, if *seq == 0 { Ok(None) } else { Err("ooo") }),
                    (Op::Stale { .. }, None) => continue,
                    (Op::Stale { .. }, Some((e, _, _))) if *e == 0 => continue,
                    (Op::Stale { .. }, Some((e, _, next))) => (*e - 1, *next, 1, Err("epoch")),
                };
                let last = increment_sequence(first, n - 1);
                let got = check_batch(state.last_entry(ProducerId(pid)), ProducerId(pid), ProducerEpoch(epoch), first, last);
                match (expect, got) {
                    (Ok(None), Ok(SequenceCheck::Append)) => {
                        let fo = model.next_offset;
                        let lo = fo + i64::from(n) - 1;
                        model.next_offset = lo + 1;
                        let m = model.producers.entry(pid).or_insert((epoch, Vec::new(), 0));
                        if m.0 != epoch { m.0 = epoch; m.1.clear(); }
                        m.1.push((first, last, fo, lo));
                        m.2 = increment_sequence(last, 1);
                        state.update(ProducerId(pid), ProducerEpoch(epoch), BatchMetadata {
                            first_seq: first, last_seq: last, first_offset: Offset(fo), last_offset: Offset(lo), timestamp: Timestamp(0),
                        });
                    }
                    (Ok(Some((fo, lo))), Ok(SequenceCheck::Duplicate(b))) => {
                        prop_assert_eq!((b.first_offset, b.last_offset), (Offset(fo), Offset(lo)));
                    }
                    (Err("ooo"), Err(SequenceError::OutOfOrderSequence { .. })) => {}
                    (Err("epoch"), Err(SequenceError::InvalidProducerEpoch { .. })) => {}
                    (e, g) => prop_assert!(false, "op {:?}: expected {:?}, got {:?}", op, e, g),
                }
            }
            // The snapshot format round-trips whatever state the run built.
            let bytes = encode_snapshot(&state);
            prop_assert_eq!(decode_snapshot(&bytes).unwrap(), state);
        }

        #[test]
        fn decode_snapshot_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            // Whatever decodes is canonical: it re-encodes to the same bytes.
            if let Ok(state) = decode_snapshot(&bytes) {
                prop_assert_eq!(encode_snapshot(&state), bytes);
            }
        }
    }
}
