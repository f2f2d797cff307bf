//! Record layer: everything about Kafka's RecordBatch v2 bytes, and nothing
//! about where they come from or go.
//!
//! - [`types`]: `Offset`, `Timestamp`, `LeaderEpoch`, `ProducerId`,
//!   `ProducerEpoch` newtypes.
//! - [`batch`]: the 61-byte batch header: [`BatchHeader::parse`], producer-
//!   grade [`BatchHeader::validate`] and stored-data
//!   [`BatchHeader::validate_stored`] (CRC-32C, framing, counts), the
//!   broker's in-place rewrites (base offset, leader epoch, LogAppendTime),
//!   and [`Batches`], which walks batches laid end to end and stops at the
//!   first torn or corrupt one.
//! - [`record`]: records inside a batch: zero-copy decoding ([`Record`],
//!   [`RecordIter`]) with every length bounded by the bytes remaining, and
//!   owned forms ([`OwnedRecord`]).
//! - [`crc`]: CRC-32C ([`crc32c`]), SIMD-accelerated.
//! - [`compression`]: gzip, snappy (xerial-framed and raw), lz4 (frame) and
//!   zstd, with a hard limit on decompressed output.
//! - [`validate`]: the producer-grade record checks Kafka makes on append
//!   (count, offset deltas, record framing), in place for uncompressed
//!   batches and streamed for compressed ones.
//! - [`budget`]: [`Budget`], the memory allowance decoders draw on
//!   (the broker's decompression budget).
//! - [`builder`]: [`BatchBuilder`] makes valid batches (any codec,
//!   idempotent/transactional/control flags, compaction gaps).
//! - [`control`]: control records (KIP-98 transaction markers):
//!   [`ControlRecordType`], [`EndTransactionMarker`], the one-record
//!   marker batch a partition leader writes, and reading it back.
//! - [`reader`]: [`BatchReader`] / [`records`] validate a batch, decompress
//!   it within a limit and iterate its records.
//! - [`recompress`]: re-encodes a batch in another codec, every field and
//!   record kept (topics whose `compression.type` is a codec).
//!
//! This crate is pure code: no I/O, no clock, no panic on bad bytes, and
//! no allocation sized by untrusted input beyond the bytes actually present
//! or the caller's decompression limit. Storage and the protocol layer both
//! build on it; the `record_batch` fuzz target in `fuzz/` exercises it.

pub mod batch;
pub mod budget;
pub mod builder;
pub mod compression;
pub mod control;
pub mod crc;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod reader;
pub mod recompress;
pub mod record;
mod stream;
pub mod testing;
pub mod types;
pub mod validate;
mod varint;

pub use batch::{
    increment_sequence, BatchHeader, Batches, CompressionType, TimestampType, BATCH_HEADER_SIZE,
    LOG_OVERHEAD, MAGIC_V2, NO_SEQUENCE,
};
pub use budget::{Budget, Unbounded};
pub use builder::BatchBuilder;
pub use compression::{compress, decompress};
pub use control::{
    build_end_txn_marker_batch, read_control_batch, ControlBatch, ControlRecordType,
    EndTransactionMarker,
};
pub use crc::crc32c;
pub use error::RecordError;
pub use reader::{records, BatchReader};
pub use recompress::{recompress, recompress_budgeted};
pub use record::{
    decode_record, Header, HeaderIter, Headers, OwnedHeader, OwnedRecord, Record, RecordIter,
};
pub use stream::decompress_budgeted;
pub use types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp, UtcDateTime};
pub use validate::check_batch_records;
