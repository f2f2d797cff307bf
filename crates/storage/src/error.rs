//! The storage crate's one error type. The broker maps each variant to a
//! Kafka error code at the protocol edge.

use std::io;
use std::path::PathBuf;

use sluice_record::{Offset, ProducerEpoch, ProducerId, RecordError, Timestamp};

use crate::producer_state::SequenceError;

use crate::TopicPartition;

/// One refused record of a produced batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRecord {
    /// The record's position in its batch (0 = first record).
    pub batch_index: u32,
    pub reason: RecordRejection,
}

/// Why the log refuses a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordRejection {
    /// A record without a key on a compacted topic.
    MissingKey,
    /// A CreateTime timestamp outside `[now - message.timestamp.before.max.ms,
    /// now + message.timestamp.after.max.ms]` (bounds wrap like Kafka's
    /// 64-bit arithmetic). `offset` is the record's offset as the producer
    /// sent it (base offset + delta, before the log assigns offsets).
    TimestampOutOfRange {
        timestamp: Timestamp,
        offset: Offset,
        now: Timestamp,
        before_max_ms: i64,
        after_max_ms: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A batch failed framing / CRC / count validation (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptRecord(#[from] RecordError),
    /// A batch is bigger than the topic's `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: u32 },
    /// A timestamp outside `message.timestamp.{before,after}.max.ms` (INVALID_TIMESTAMP).
    #[error("timestamp {timestamp} is out of range (broker time {now})")]
    InvalidTimestamp {
        timestamp: Timestamp,
        now: Timestamp,
    },
    /// Anything else wrong with the produced records (INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Specific records of one produced batch are refused (a keyless record
    /// on a compacted topic, a timestamp out of range), each named by its
    /// index in that batch. Nothing of the append was written.
    #[error("{} record(s) of a batch rejected, the first at index {}", .0.len(), .0.first().map_or(0, |r| r.batch_index))]
    RejectedRecords(Vec<RejectedRecord>),
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    /// The log directory failed (e.g. an fsync error) and serves nothing
    /// until the broker restarts (KAFKA_STORAGE_ERROR).
    #[error("log directory {} is offline: {reason}", dir.display())]
    LogDirOffline { dir: PathBuf, reason: String },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A follower append whose first batch starts below the log end offset
    /// (Kafka's UnexpectedAppendOffsetException): the fetcher asked for
    /// another offset than the log ends at, or the leader's log start lies
    /// inside the batch (the caller then truncates fully and starts at
    /// `first_offset`).
    #[error(
        "follower append to {tp} starts at {first_offset}, below the log end offset {log_end}"
    )]
    UnexpectedAppendOffset {
        tp: TopicPartition,
        first_offset: Offset,
        log_end: Offset,
    },
    #[error("log {0} has been deleted")]
    LogDeleted(TopicPartition),
    /// A batch's sequence does not follow the producer's last one, or a new
    /// epoch does not start at 0 (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence for producer {producer_id:?} epoch {epoch:?}: got {first_seq}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        first_seq: i32,
        expected: i32,
    },
    /// A batch from an older epoch than the producer's current one
    /// (INVALID_PRODUCER_EPOCH).
    #[error(
        "producer {producer_id:?} epoch {epoch:?} is older than the current epoch {current:?}"
    )]
    InvalidProducerEpoch {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// A non-transactional batch from a producer whose transaction is open
    /// on the partition (INVALID_TXN_STATE).
    #[error("producer {producer_id:?} wrote a non-transactional batch at offset {offset} while its transaction from offset {txn_first_offset} is open")]
    InvalidTxnState {
        producer_id: ProducerId,
        offset: Offset,
        txn_first_offset: Offset,
    },
    /// A client's transactional batch that would start a transaction
    /// without verification with the coordinator (KIP-890 part 1):
    /// INVALID_TXN_STATE.
    #[error("transactional batch of producer {producer_id:?} at offset {offset} was not verified with its transaction coordinator (the partition is not in its ongoing transaction)")]
    TransactionNotVerified {
        producer_id: ProducerId,
        offset: Offset,
    },
    /// Too many transaction verifications at once on one partition
    /// (retriable).
    #[error("too many transaction verifications in progress; producer {producer_id:?} must retry")]
    TooManyVerifications { producer_id: ProducerId },
    /// A transaction marker from a coordinator epoch older than the one
    /// that wrote the producer's last marker (TRANSACTION_COORDINATOR_FENCED).
    #[error("marker for producer {producer_id:?} from coordinator epoch {coordinator_epoch}, older than the current {current}")]
    TransactionCoordinatorFenced {
        producer_id: ProducerId,
        coordinator_epoch: i32,
        current: i32,
    },
    /// A segment's `.txnindex` holds what this log never writes (the log
    /// rebuilds it on load; met later, the read fails).
    #[error("corrupt transaction index {}: {reason}", path.display())]
    CorruptTxnIndex { path: PathBuf, reason: &'static str },
    /// The partition already tracks the maximum number of producers and
    /// none is idle long enough to expire.
    #[error("partition {tp} already tracks {max} producers; a new producer id is refused until one expires (producer.id.expiration.ms)")]
    TooManyProducers { tp: TopicPartition, max: usize },
    /// `sluice storage format` was given a cluster id that is not a valid,
    /// unreserved UUID in Kafka's form.
    #[error("invalid cluster id '{id}': {reason}")]
    InvalidClusterId { id: String, reason: String },
    /// A `meta.properties` that does not parse (or says what Sluice cannot read).
    #[error("invalid {}: {reason}", path.display())]
    InvalidMetaProperties { path: PathBuf, reason: String },
    /// A formatted dir belongs to another cluster or node (Kafka's message).
    #[error("Invalid {key} in: {}. Expected {expected}, but read {found}", path.display())]
    MetaPropertiesMismatch {
        path: PathBuf,
        key: &'static str,
        expected: String,
        found: String,
    },
    /// `format` found a formatted dir and was not told to ignore it.
    #[error("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.", dir.display())]
    AlreadyFormatted { dir: PathBuf },
    /// A node with process.roles starts on a dir nobody formatted.
    #[error("No `meta.properties` found in {} (have you run `sluice storage format` to format the directory?)", dir.display())]
    NotFormatted { dir: PathBuf },
}

impl From<SequenceError> for StorageError {
    fn from(e: SequenceError) -> Self {
        match e {
            SequenceError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current,
            } => StorageError::InvalidProducerEpoch {
                producer_id,
                epoch: ProducerEpoch(epoch),
                current: ProducerEpoch(current),
            },
            SequenceError::OutOfOrderSequence {
                producer_id,
                epoch,
                first_seq,
                expected,
            } => StorageError::OutOfOrderSequence {
                producer_id,
                epoch: ProducerEpoch(epoch),
                first_seq,
                expected,
            },
            SequenceError::InvalidTxnState {
                producer_id,
                offset,
                txn_first_offset,
            } => StorageError::InvalidTxnState {
                producer_id,
                offset,
                txn_first_offset,
            },
            SequenceError::TransactionNotVerified {
                producer_id,
                offset,
            } => StorageError::TransactionNotVerified {
                producer_id,
                offset,
            },
            SequenceError::TooManyVerifications { producer_id } => {
                StorageError::TooManyVerifications { producer_id }
            }
            SequenceError::TransactionCoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current,
            } => StorageError::TransactionCoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current,
            },
        }
    }
}

impl StorageError {
    /// True if the disk (or quota) is full: ENOSPC or EDQUOT. Such a
    /// failure refuses the operation but does not take the directory
    /// offline; deleting data makes room again.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if crate::headroom::is_no_space(source))
    }

    /// True if the failure is a resource running out rather than the
    /// directory failing: a full disk ([`StorageError::is_no_space`]) or no
    /// descriptor left (EMFILE, ENFILE). The operation is refused and the
    /// directory stays online.
    pub fn is_resource_exhausted(&self) -> bool {
        self.is_no_space()
            || matches!(self, StorageError::Io { source, .. }
                if matches!(source.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)))
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for `map_err(|e| StorageError::io(op, path, e))`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(op, path, e))
    }
}
