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

    /// Parses and fully validates the batch at the start of `buf`: framing,
    /// magic, the whole batch present, CRC-32C, codec id, and that the
    /// record count agrees with `lastOffsetDelta`. Returns the header; the
    /// batch occupies `header.size()` bytes of `buf`.
    pub fn validate(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        let header = Self::parse(buf)?;
        let size = header.size();
        if buf.len() < size {
            return Err(RecordError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let computed = crc32c::crc32c(&buf[ATTRIBUTES..size]);
        if computed != header.crc {
            return Err(RecordError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        CompressionType::from_id(header.attributes & COMPRESSION_MASK)?;
        // An empty batch can exist after compaction (count 0) in Kafka, but a
        // producer never sends one; the count must cover the offset range.
        if header.record_count < 0
            || header.last_offset_delta < 0
            || (header.record_count > 0 && header.last_offset_delta + 1 != header.record_count)
        {
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
}

/// Rewrites `baseOffset` in place. The CRC does not cover this field.
pub fn set_base_offset(batch: &mut [u8], offset: Offset) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.0.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` in place. The CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&epoch.0.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `max_timestamp = now` and
/// recomputes the CRC, exactly as Kafka's broker does. `batch` must hold one
/// whole, validated batch.
pub fn set_log_append_time(batch: &mut [u8], now: Timestamp) {
    let attributes = be_i16(batch, ATTRIBUTES) | TIMESTAMP_TYPE_MASK;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.0.to_be_bytes());
    let size = LOG_OVERHEAD + be_i32(batch, BATCH_LENGTH) as usize;
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..size]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates the batches laid end to end in `buf`, validating each one.
/// Yields `(position, header)`; stops at the end of `buf` or at the first
/// invalid or incomplete batch, which it yields as an error (once).
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
    verify_crc: bool,
}

impl<'a> Batches<'a> {
    /// Full validation, CRC included.
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            pos: 0,
            done: false,
            verify_crc: true,
        }
    }

    /// Framing only: for bytes already validated (e.g. read back from a
    /// segment that recovery has checked).
    pub fn without_crc(buf: &'a [u8]) -> Self {
        Batches {
            verify_crc: false,
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
        let result = if self.verify_crc {
            BatchHeader::validate(rest)
        } else {
            BatchHeader::parse(rest).and_then(|h| {
                if rest.len() < h.size() {
                    Err(RecordError::Truncated {
                        needed: h.size(),
                        available: rest.len(),
                    })
                } else {
                    Ok(h)
                }
            })
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
