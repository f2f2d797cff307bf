//! RecordBatch v2 framing: the 61-byte batch header, its validation, and the
//! few in-place rewrites a broker performs (base offset, leader epoch,
//! LogAppendTime). Record bodies are never touched here.
//!
//! ```text
//! baseOffset            int64   0
//! batchLength           int32   8   (bytes after this field)
//! partitionLeaderEpoch  int32  12
//! magic                 int8   16
//! crc                   uint32 17   (CRC-32C of attributes..end)
//! attributes            int16  21
//! lastOffsetDelta       int32  23
//! baseTimestamp         int64  27
//! maxTimestamp          int64  35
//! producerId            int64  43
//! producerEpoch         int16  51
//! baseSequence          int32  53
//! recordCount           int32  57
//! records               ...    61
//! ```

use crate::error::RecordError;
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};

/// Bytes before `batchLength`'s payload: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the full v2 batch header, records excluded.
pub const BATCH_HEADER_SIZE: usize = 61;
/// The only batch format Sluice stores.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;
const DELETE_HORIZON_MASK: i16 = 0x40;

/// Attribute bits, for the builder.
pub(crate) mod attr {
    pub const TIMESTAMP_TYPE: i16 = super::TIMESTAMP_TYPE_MASK;
    pub const TRANSACTIONAL: i16 = super::TRANSACTIONAL_MASK;
    pub const CONTROL: i16 = super::CONTROL_MASK;
}

/// Compression codec of a batch (attributes bits 0..2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompressionType {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    pub fn from_id(id: i16) -> Result<Self, RecordError> {
        Ok(match id {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            other => return Err(RecordError::UnknownCompression(other)),
        })
    }

    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Timestamp semantics of a batch (attributes bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of one RecordBatch v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    /// Bytes following the `batchLength` field.
    pub batch_length: i32,
    pub partition_leader_epoch: LeaderEpoch,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: Timestamp,
    pub max_timestamp: Timestamp,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: i32,
    pub record_count: i32,
}

#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
#[inline]
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Reads just `baseOffset` and `batchLength` from the first 12 bytes.
    /// Returns the total size of the batch (`LOG_OVERHEAD + batchLength`).
    pub fn peek_size(buf: &[u8]) -> Result<usize, RecordError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(RecordError::Truncated {
                needed: LOG_OVERHEAD,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, BATCH_LENGTH);
        if batch_length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(RecordError::BatchLengthTooSmall(batch_length));
        }
        Ok(LOG_OVERHEAD + batch_length as usize)
    }

    /// Decodes the header at the start of `buf`. Checks framing (enough
    /// header bytes, a sane batch length, magic 2) but not the CRC or that
    /// the whole batch is present; see [`BatchHeader::validate`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_SIZE,
                available: buf.len(),
            });
        }
        Self::peek_size(buf)?;
        let magic = buf[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordError::UnsupportedMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: Offset(be_i64(buf, BASE_OFFSET)),
            batch_length: be_i32(buf, BATCH_LENGTH),
            partition_leader_epoch: LeaderEpoch(be_i32(buf, PARTITION_LEADER_EPOCH)),
            magic,
            crc: be_u32(buf, CRC),
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: Timestamp(be_i64(buf, BASE_TIMESTAMP)),
            max_timestamp: Timestamp(be_i64(buf, MAX_TIMESTAMP)),
            producer_id: ProducerId(be_i64(buf, PRODUCER_ID)),
            producer_epoch: ProducerEpoch(be_i16(buf, PRODUCER_EPOCH)),
            base_sequence: be_i32(buf, BASE_SEQUENCE),
            record_count: be_i32(buf, RECORD_COUNT),
        })
    }

    /// Parses and fully validates a batch as a producer must send it, at the
    /// start of `buf`: framing, magic, the whole batch present, CRC-32C,
    /// codec id, and `recordCount == lastOffsetDelta + 1` (or an empty
    /// batch). Returns the header; the batch occupies `header.size()` bytes
    /// of `buf`.
    ///
    /// Batches rewritten by compaction keep their offset range but lose
    /// records, so their count can be lower; read stored data with
    /// [`BatchHeader::validate_stored`].
    pub fn validate(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        let header = Self::check_integrity(buf)?;
        // An empty batch can exist after compaction (count 0) in Kafka, but a
        // producer never sends one; the count must cover the offset range.
        // i64 arithmetic: lastOffsetDelta is untrusted and may be i32::MAX.
        if header.record_count > 0
            && i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count)
        {
            return Err(RecordError::CountMismatch {
                count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Validates a batch as it may legitimately sit in a log: everything
    /// [`BatchHeader::validate`] checks, except that the record count may be
    /// lower than the offset range (`0 <= recordCount <= lastOffsetDelta + 1`),
    /// as it is after compaction removed records. Recovery and readers of
    /// stored segments use this.
    pub fn validate_stored(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        let header = Self::check_integrity(buf)?;
        if i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1 {
            return Err(RecordError::CountMismatch {
                count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Framing, presence, CRC, codec id and non-negative count and delta.
    fn check_integrity(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        let header = Self::parse(buf)?;
        let size = header.size();
        if buf.len() < size {
            return Err(RecordError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let computed = crate::crc::crc32c(&buf[ATTRIBUTES..size]);
        if computed != header.crc {
            return Err(RecordError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        CompressionType::from_id(header.attributes & COMPRESSION_MASK)?;
        if header.record_count < 0 || header.last_offset_delta < 0 {
            return Err(RecordError::CountMismatch {
                count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Total bytes of this batch, header included.
    #[inline]
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    #[inline]
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(self.last_offset_delta as i64)
    }

    /// The offset after this batch.
    #[inline]
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    pub fn compression(&self) -> CompressionType {
        // validate() has checked the id; parse() callers get None on junk.
        CompressionType::from_id(self.attributes & COMPRESSION_MASK)
            .unwrap_or(CompressionType::None)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id.0 >= 0
    }

    /// Sequence number of the batch's last record, or -1 when the batch
    /// has none. Sequences wrap from `i32::MAX` to 0, as Kafka's
    /// `DefaultRecordBatch.incrementSequence` does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Whether compaction stamped a delete horizon into this batch
    /// (KIP-534, attributes bit 6); the horizon is then `baseTimestamp`.
    pub fn delete_horizon(&self) -> Option<Timestamp> {
        if self.attributes & DELETE_HORIZON_MASK != 0 {
            Some(self.base_timestamp)
        } else {
            None
        }
    }

    /// The records section of this batch (possibly compressed): the bytes
    /// after the 61-byte header. `batch` must start with this header and hold
    /// the whole batch (as [`BatchHeader::validate`] has checked); returns
    /// `None` otherwise.
    pub fn records_section<'a>(&self, batch: &'a [u8]) -> Option<&'a [u8]> {
        batch.get(BATCH_HEADER_SIZE..self.size())
    }
}

/// `baseSequence` of a batch without idempotence.
pub const NO_SEQUENCE: i32 = -1;

/// `sequence + increment` for non-negative sequences, wrapping past
/// `i32::MAX` to 0 as Kafka's producers and brokers do.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    // i64: never overflows, whatever a corrupt header holds.
    let sum = i64::from(sequence) + i64::from(increment);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// Rewrites `baseOffset` in place. The CRC does not cover this field.
///
/// # Panics
/// If `batch` is shorter than the 12-byte log overhead.
pub fn set_base_offset(batch: &mut [u8], offset: Offset) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.0.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` in place. The CRC does not cover it.
///
/// # Panics
/// If `batch` is shorter than the 61-byte header.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&epoch.0.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `max_timestamp = now` and
/// recomputes the CRC, exactly as Kafka's broker does. `batch` must hold one
/// whole, validated batch.
///
/// # Panics
/// If `batch` is shorter than the size its header declares.
pub fn set_log_append_time(batch: &mut [u8], now: Timestamp) {
    let attributes = be_i16(batch, ATTRIBUTES) | TIMESTAMP_TYPE_MASK;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.0.to_be_bytes());
    let size = LOG_OVERHEAD + be_i32(batch, BATCH_LENGTH) as usize;
    let crc = crate::crc::crc32c(&batch[ATTRIBUTES..size]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// How much of each batch [`Batches`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// [`BatchHeader::validate`]: producer-grade.
    Produce,
    /// [`BatchHeader::validate_stored`]: CRC, compaction gaps allowed.
    Stored,
    /// Framing only.
    Framing,
}

/// Iterates the batches laid end to end in `buf`, validating each one.
/// Yields `(position, header)`; stops at the end of `buf` or at the first
/// invalid or incomplete batch, which it yields as an error (once). After
/// that, [`Batches::position`] is the start of the bad batch, i.e. the
/// length of the valid prefix (where recovery truncates).
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
    check: Check,
}

impl<'a> Batches<'a> {
    /// Full producer-grade validation ([`BatchHeader::validate`]), CRC
    /// included.
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            pos: 0,
            done: false,
            check: Check::Produce,
        }
    }

    /// Validation of stored data ([`BatchHeader::validate_stored`]): CRC
    /// and framing, with compacted batches (fewer records than offsets)
    /// accepted. For recovery of segments and for reading them back.
    pub fn stored(buf: &'a [u8]) -> Self {
        Batches {
            check: Check::Stored,
            ..Self::new(buf)
        }
    }

    /// Framing only: for bytes already validated (e.g. read back from a
    /// segment that recovery has checked).
    pub fn without_crc(buf: &'a [u8]) -> Self {
        Batches {
            check: Check::Framing,
            ..Self::new(buf)
        }
    }

    /// Byte position just after the last batch yielded.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(usize, BatchHeader), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = match self.check {
            Check::Produce => BatchHeader::validate(rest),
            Check::Stored => BatchHeader::validate_stored(rest),
            Check::Framing => BatchHeader::parse(rest).and_then(|h| {
                if rest.len() < h.size() {
                    Err(RecordError::Truncated {
                        needed: h.size(),
                        available: rest.len(),
                    })
                } else {
                    Ok(h)
                }
            }),
        };
        match result {
            Ok(header) => {
                let at = self.pos;
                self.pos += header.size();
                Some(Ok((at, header)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lays out one batch field by field (independently of the builder) with
    /// an opaque records section and a correct CRC.
    fn raw_batch(
        base_offset: i64,
        attributes: i16,
        last_offset_delta: i32,
        record_count: i32,
        body: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(
            &((BATCH_HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes(),
        );
        b.extend_from_slice(&7i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&last_offset_delta.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        b.extend_from_slice(&42i64.to_be_bytes()); // producer id
        b.extend_from_slice(&3i16.to_be_bytes()); // producer epoch
        b.extend_from_slice(&100i32.to_be_bytes()); // base sequence
        b.extend_from_slice(&record_count.to_be_bytes());
        b.extend_from_slice(body);
        let crc = crate::crc::crc32c(&b[ATTRIBUTES..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn simple_batch(body_len: usize) -> Vec<u8> {
        let body: Vec<u8> = (0..body_len).map(|i| (i * 31 % 251) as u8).collect();
        raw_batch(1000, 0, 2, 3, &body)
    }

    #[test]
    fn validate_decodes_every_header_field() {
        let b = raw_batch(1000, 0x0001 | 0x10, 2, 3, b"abcdef");
        let h = BatchHeader::validate(&b).unwrap();
        assert_eq!(h.base_offset, Offset(1000));
        assert_eq!(h.size(), b.len());
        assert_eq!(h.partition_leader_epoch, LeaderEpoch(7));
        assert_eq!(h.last_offset(), Offset(1002));
        assert_eq!(h.next_offset(), Offset(1003));
        assert_eq!(h.base_timestamp, Timestamp(1_700_000_000_000));
        assert_eq!(h.max_timestamp, Timestamp(1_700_000_000_123));
        assert_eq!(h.producer_id, ProducerId(42));
        assert_eq!(h.producer_epoch, ProducerEpoch(3));
        assert_eq!(h.base_sequence, 100);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.compression(), CompressionType::Gzip);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert!(h.has_producer_id());
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(h.delete_horizon(), None);
        assert_eq!(h.records_section(&b), Some(&b"abcdef"[..]));
    }

    #[test]
    fn count_must_match_offset_range_for_producers_but_may_be_lower_when_stored() {
        let compacted = raw_batch(0, 0, 9, 4, b"");
        assert_eq!(
            BatchHeader::validate(&compacted),
            Err(RecordError::CountMismatch {
                count: 4,
                last_offset_delta: 9
            })
        );
        assert_eq!(
            BatchHeader::validate_stored(&compacted)
                .unwrap()
                .record_count,
            4
        );
        // More records than offsets is never valid.
        let too_many = raw_batch(0, 0, 1, 3, b"");
        assert!(BatchHeader::validate(&too_many).is_err());
        assert!(BatchHeader::validate_stored(&too_many).is_err());
        // Negative counts and deltas are rejected by both.
        for (delta, count) in [(-1, 0), (0, -1), (i32::MIN, 0)] {
            let b = raw_batch(0, 0, delta, count, b"");
            assert!(BatchHeader::validate(&b).is_err(), "{delta} {count}");
            assert!(BatchHeader::validate_stored(&b).is_err(), "{delta} {count}");
        }
        // An empty batch (all records compacted away) is fine for both.
        let empty = raw_batch(0, 0, 5, 0, b"");
        assert!(BatchHeader::validate(&empty).is_ok());
        assert!(BatchHeader::validate_stored(&empty).is_ok());
    }

    #[test]
    fn extreme_deltas_and_offsets_do_not_overflow() {
        let b = raw_batch(i64::MAX - 1, 0, i32::MAX, i32::MIN + 5, b"");
        assert!(matches!(
            BatchHeader::validate(&b),
            Err(RecordError::CountMismatch { .. })
        ));
        let b = raw_batch(i64::MAX - 1, 0, i32::MAX, 7, b"");
        assert!(BatchHeader::validate(&b).is_err());
        let h = BatchHeader::validate_stored(&b).unwrap();
        assert_eq!(h.last_offset(), Offset(i64::MAX));
        assert_eq!(h.next_offset(), Offset(i64::MAX));
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        let mut h = BatchHeader::parse(&simple_batch(0)).unwrap();
        h.base_sequence = 100;
        h.last_offset_delta = 2;
        assert_eq!(h.last_sequence(), 102);
        h.base_sequence = i32::MAX - 1;
        assert_eq!(h.last_sequence(), 0); // MAX-1, MAX, 0
        h.base_sequence = i32::MAX;
        h.last_offset_delta = 0;
        assert_eq!(h.last_sequence(), i32::MAX);
        h.base_sequence = NO_SEQUENCE;
        h.last_offset_delta = 5;
        assert_eq!(h.last_sequence(), NO_SEQUENCE);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 5, 10), 4);
        // Corrupt inputs do not overflow.
        let _ = increment_sequence(i32::MIN, i32::MIN);
        let _ = increment_sequence(i32::MAX, i32::MAX);
    }

    #[test]
    fn unknown_codec_is_rejected_even_with_a_good_crc() {
        for id in 5..=7 {
            let b = raw_batch(0, id, 0, 1, b"x");
            assert_eq!(
                BatchHeader::validate(&b),
                Err(RecordError::UnknownCompression(id))
            );
        }
    }

    #[test]
    fn framing_errors_are_named() {
        let b = simple_batch(10);
        assert_eq!(
            BatchHeader::parse(&b[..60]),
            Err(RecordError::Truncated {
                needed: 61,
                available: 60
            })
        );
        assert_eq!(
            BatchHeader::validate(&b[..b.len() - 1]),
            Err(RecordError::Truncated {
                needed: b.len(),
                available: b.len() - 1
            })
        );
        let mut short = b.clone();
        short[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(
            BatchHeader::peek_size(&short),
            Err(RecordError::BatchLengthTooSmall(48))
        );
        let mut old = b.clone();
        old[MAGIC] = 1;
        assert_eq!(
            BatchHeader::validate(&old),
            Err(RecordError::UnsupportedMagic(1))
        );
        assert_eq!(BatchHeader::peek_size(&b), Ok(b.len()));
    }

    #[test]
    fn rewrites_outside_the_crc_keep_the_batch_valid() {
        let mut b = simple_batch(40);
        set_base_offset(&mut b, Offset(123_456));
        set_partition_leader_epoch(&mut b, LeaderEpoch(9));
        let h = BatchHeader::validate(&b).unwrap();
        assert_eq!(h.base_offset, Offset(123_456));
        assert_eq!(h.partition_leader_epoch, LeaderEpoch(9));
    }

    #[test]
    fn log_append_time_rewrite_recomputes_the_crc() {
        let mut b = simple_batch(40);
        let before = BatchHeader::validate(&b).unwrap();
        set_log_append_time(&mut b, Timestamp(1_800_000_000_000));
        let h = BatchHeader::validate(&b).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, Timestamp(1_800_000_000_000));
        assert_ne!(h.crc, before.crc);
        assert_eq!(h.base_timestamp, before.base_timestamp);
        assert_eq!(h.compression(), before.compression());
    }

    #[test]
    fn stored_iteration_accepts_compacted_batches_that_produce_validation_rejects() {
        let mut log = simple_batch(5);
        log.extend(raw_batch(3, 0, 9, 2, b"zz"));
        let strict: Vec<_> = Batches::new(&log).collect();
        assert_eq!(strict.len(), 2);
        assert!(strict[1].is_err());
        let stored: Vec<_> = Batches::stored(&log).collect::<Result<_, _>>().unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[1].0, simple_batch(5).len());
    }

    fn arb_batch() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<i64>(),
            0i16..5,
            0i32..1000,
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(base, codec, delta, body)| raw_batch(base, codec, delta, delta + 1, &body))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_single_byte_corruption_in_the_crc_region_is_rejected(
            batch in arb_batch(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            // The CRC field itself and everything from attributes to the end.
            let at = CRC + at.index(batch.len() - CRC);
            let mut bad = batch.clone();
            bad[at] ^= xor;
            prop_assert!(
                matches!(BatchHeader::validate(&bad), Err(RecordError::CrcMismatch { .. })),
                "corruption at {} accepted", at
            );
            prop_assert!(BatchHeader::validate_stored(&bad).is_err());
            let mut it = Batches::new(&bad);
            let r = it.next();
            prop_assert!(matches!(r, Some(Err(RecordError::CrcMismatch { .. }))), "{:?}", r);
            prop_assert_eq!(it.position(), 0);
            prop_assert!(it.next().is_none());
        }

        #[test]
        fn corruption_of_length_or_magic_is_rejected(
            batch in arb_batch(),
            at in prop::sample::select(vec![8usize, 9, 10, 11, 16]),
            xor in 1u8..=255,
        ) {
            let mut bad = batch.clone();
            bad[at] ^= xor;
            prop_assert!(BatchHeader::validate(&bad).is_err());
        }

        #[test]
        fn header_parsing_never_panics_on_arbitrary_bytes(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
            force_magic in any::<bool>(),
            length in any::<i32>(),
        ) {
            if force_magic && bytes.len() > MAGIC {
                bytes[MAGIC] = 2;
                bytes[8..12].copy_from_slice(&length.to_be_bytes());
            }
            let _ = BatchHeader::peek_size(&bytes);
            let _ = BatchHeader::parse(&bytes);
            if let Ok(h) = BatchHeader::validate(&bytes) {
                prop_assert!(h.size() <= bytes.len());
                let _ = (h.last_offset(), h.next_offset(), h.compression());
            }
            if let Ok(h) = BatchHeader::validate_stored(&bytes) {
                prop_assert!(h.size() <= bytes.len());
            }
            for mut it in [Batches::new(&bytes), Batches::stored(&bytes), Batches::without_crc(&bytes)] {
                let mut n = 0;
                for r in it.by_ref() {
                    n += 1;
                    prop_assert!(n <= bytes.len());
                    if let Ok((at, h)) = r {
                        prop_assert!(at + h.size() <= bytes.len());
                    }
                }
                prop_assert!(it.position() <= bytes.len());
            }
        }

        #[test]
        fn batches_stop_at_the_first_torn_batch(
            batches in proptest::collection::vec(arb_batch(), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let log: Vec<u8> = batches.concat();
            let cut = cut.index(log.len() + 1);
            let mut ends = Vec::new();
            let mut end = 0;
            for b in &batches {
                end += b.len();
                ends.push(end);
            }
            let whole: Vec<usize> = ends.iter().copied().filter(|&e| e <= cut).collect();
            let valid_prefix = whole.last().copied().unwrap_or(0);
            for mut it in [Batches::new(&log[..cut]), Batches::stored(&log[..cut]), Batches::without_crc(&log[..cut])] {
                let mut starts = Vec::new();
                let mut errors = 0;
                for r in it.by_ref() {
                    match r {
                        Ok((at, h)) => {
                            prop_assert_eq!(errors, 0);
                            starts.push(at);
                            prop_assert_eq!(at + h.size(), ends[starts.len() - 1]);
                        }
                        Err(e) => {
                            prop_assert!(matches!(e, RecordError::Truncated { .. }), "{:?}", e);
                            errors += 1;
                        }
                    }
                }
                prop_assert_eq!(starts.len(), whole.len());
                prop_assert_eq!(errors, usize::from(cut != valid_prefix));
                prop_assert_eq!(it.position(), valid_prefix);
            }
        }

        #[test]
        fn batches_stop_at_the_first_corrupt_batch(
            batches in proptest::collection::vec(arb_batch(), 1..6),
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let which = which.index(batches.len());
            let start: usize = batches[..which].iter().map(Vec::len).sum();
            let mut log: Vec<u8> = batches.concat();
            log[start + CRC + at.index(batches[which].len() - CRC)] ^= xor;
            let mut it = Batches::new(&log);
            for _ in 0..which {
                let r = it.next();
                prop_assert!(matches!(r, Some(Ok(_))), "{:?}", r);
            }
            let r = it.next();
            prop_assert!(matches!(r, Some(Err(RecordError::CrcMismatch { .. }))), "{:?}", r);
            prop_assert!(it.next().is_none());
            prop_assert_eq!(it.position(), start);
        }
    }
}
