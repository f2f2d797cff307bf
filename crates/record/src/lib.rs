//! Record layer: the RecordBatch v2 format, CRC-32C, offset and timestamp
//! types, and (in later modules) compression codecs and record iteration.
//!
//! This crate is pure code: no I/O, no clock, no allocation sized by
//! untrusted input. Storage and the protocol layer both build on it.

pub mod batch;
pub mod error;
pub mod types;

pub use batch::{
    BatchHeader, Batches, CompressionType, TimestampType, BATCH_HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2,
};
pub use error::RecordError;
pub use types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};
