//! Errors of the record layer. They name what is wrong with the bytes; the
//! protocol edge maps them to Kafka error codes (mostly CORRUPT_MESSAGE).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is below the minimum header size")]
    BatchLengthTooSmall(i32),
    #[error("unsupported magic byte {0} (only RecordBatch v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    /// Record `index` of a producer's batch has another offset delta
    /// (Kafka's "Invalid offset": a client numbers its records 0..count-1).
    #[error("record {index} has offset delta {offset_delta}, expected {index}")]
    InvalidOffsetDelta { index: i32, offset_delta: i32 },
    /// Decoding needed more memory than the caller's [`crate::Budget`]
    /// grants (the broker-wide decompression budget is spent).
    #[error("decompression memory budget exhausted: {requested} more bytes refused ({held} held)")]
    MemoryBudget { requested: usize, held: usize },
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    #[error("decompression failed ({codec}): {reason}")]
    Decompression { codec: &'static str, reason: String },
    #[error("compression failed ({codec}): {reason}")]
    Compression { codec: &'static str, reason: String },
    /// A control record (transaction marker) that does not decode.
    #[error("invalid control record: {0}")]
    InvalidControlRecord(&'static str),
    #[error("cannot build batch: {0}")]
    Build(&'static str),
}
