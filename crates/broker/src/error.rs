//! The broker's error type, and the one place where domain errors become
//! Kafka error codes.

use std::io;

use kafka_protocol::error::ResponseError;
use sluice_record::RecordError;
use sluice_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot bind listener {listener}: {source}")]
    Bind {
        listener: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid listener {0:?} (expected PLAINTEXT://host:port)")]
    InvalidListener(String),
    #[error("cannot set up TLS for listener {listener}: {key}: {reason}")]
    Tls {
        listener: String,
        key: String,
        reason: String,
    },
    #[error("cannot set up SASL for listener {listener}: {key}: {reason}")]
    Sasl {
        listener: String,
        key: String,
        reason: String,
    },
    #[error("metadata: {0}")]
    Metadata(#[from] crate::metadata::MetadataError),
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The Kafka error code a client sees for a storage failure.
pub fn storage_error_code(err: &StorageError) -> i16 {
    let e = match err {
        // As Kafka: records that disagree with their batch's header (count,
        // offset deltas, record framing) are InvalidRecordException, not
        // corruption; the CRC, batch framing and codec are CORRUPT_MESSAGE.
        StorageError::CorruptRecord(
            RecordError::CountMismatch { .. }
            | RecordError::InvalidOffsetDelta { .. }
            | RecordError::MalformedRecord(_),
        ) => ResponseError::InvalidRecord,
        // The broker-wide decompression budget is spent: retriable, so the
        // producer backs off and sends again.
        StorageError::CorruptRecord(RecordError::MemoryBudget { .. }) => {
            ResponseError::ThrottlingQuotaExceeded
        }
        StorageError::CorruptRecord(_) => ResponseError::CorruptMessage,
        StorageError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
        // As Kafka's LogValidator: one bad timestamp makes the whole answer
        // INVALID_TIMESTAMP, otherwise INVALID_RECORD.
        StorageError::RejectedRecords(records) => {
            if records.iter().any(|r| {
                matches!(
                    r.reason,
                    sluice_storage::RecordRejection::TimestampOutOfRange { .. }
                )
            }) {
                ResponseError::InvalidTimestamp
            } else {
                ResponseError::InvalidRecord
            }
        }
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Only follower appends raise it; no client request can.
        StorageError::UnexpectedAppendOffset { .. } => ResponseError::UnknownServerError,
        StorageError::LogDirOffline { .. }
        | StorageError::Io { .. }
        | StorageError::InvalidClusterId { .. }
        | StorageError::InvalidMetaProperties { .. }
        | StorageError::MetaPropertiesMismatch { .. }
        | StorageError::AlreadyFormatted { .. }
        | StorageError::NotFormatted { .. } => ResponseError::KafkaStorageError,
        StorageError::LogDeleted(_) => ResponseError::UnknownTopicOrPartition,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::InvalidTxnState { .. } | StorageError::TransactionNotVerified { .. } => {
            ResponseError::InvalidTxnState
        }
        // Kafka's answer when verification cannot be done now: retriable,
        // and without a metadata refresh.
        StorageError::TooManyVerifications { .. } => ResponseError::NotEnoughReplicas,
        StorageError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        // A transaction index that does not read back (rebuilt on the next
        // load): the read fails as a storage failure does.
        StorageError::CorruptTxnIndex { .. } => ResponseError::KafkaStorageError,
        // Kafka has no per-partition producer limit; a retriable code makes
        // the producer back off and try again once idle producers expire.
        StorageError::TooManyProducers { .. } => ResponseError::ThrottlingQuotaExceeded,
    };
    e.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::{Offset, Timestamp};

    #[test]
    fn storage_errors_map_to_the_kafka_codes_clients_expect() {
        let cases: Vec<(StorageError, i16)> = vec![
            (
                StorageError::CorruptRecord(RecordError::UnsupportedMagic(1)),
                2,
            ),
            (
                StorageError::CorruptRecord(RecordError::CountMismatch {
                    count: i32::MAX,
                    last_offset_delta: 1,
                }),
                87,
            ),
            (
                StorageError::CorruptRecord(RecordError::InvalidOffsetDelta {
                    index: 1,
                    offset_delta: 5,
                }),
                87,
            ),
            (
                StorageError::CorruptRecord(RecordError::MalformedRecord("x")),
                87,
            ),
            (
                StorageError::CorruptRecord(RecordError::CrcMismatch {
                    stored: 1,
                    computed: 2,
                }),
                2,
            ),
            (
                StorageError::CorruptRecord(RecordError::MemoryBudget {
                    requested: 1,
                    held: 0,
                }),
                89,
            ),
            (StorageError::RecordTooLarge { size: 10, max: 5 }, 10),
            (
                StorageError::InvalidTxnState {
                    producer_id: sluice_record::ProducerId(1),
                    offset: Offset(5),
                    txn_first_offset: Offset(2),
                },
                48,
            ),
            (
                StorageError::TransactionNotVerified {
                    producer_id: sluice_record::ProducerId(1),
                    offset: Offset(5),
                },
                48,
            ),
            (
                StorageError::TooManyVerifications {
                    producer_id: sluice_record::ProducerId(1),
                },
                19,
            ),
            (
                StorageError::InvalidProducerEpoch {
                    producer_id: sluice_record::ProducerId(1),
                    epoch: sluice_record::ProducerEpoch(1),
                    current: sluice_record::ProducerEpoch(2),
                },
                47,
            ),
            (
                StorageError::TransactionCoordinatorFenced {
                    producer_id: sluice_record::ProducerId(1),
                    coordinator_epoch: 1,
                    current: 2,
                },
                52,
            ),
            (
                StorageError::InvalidTimestamp {
                    timestamp: Timestamp(0),
                    now: Timestamp(1),
                },
                32,
            ),
            (
                StorageError::OffsetOutOfRange {
                    requested: Offset(9),
                    log_start: Offset(0),
                    log_end: Offset(1),
                },
                1,
            ),
            (
                StorageError::LogDirOffline {
                    dir: "/d".into(),
                    reason: "fsync".into(),
                },
                56,
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(storage_error_code(&err), expected, "{err}");
        }
    }
}
