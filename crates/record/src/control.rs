//! Control records (KIP-98): the transaction markers a transaction
//! coordinator has partition leaders write when a transaction ends.
//!
//! A marker is a batch with the `transactional` and `control` attribute
//! bits, the producer's id and epoch, base sequence -1, and one record:
//!
//! ```text
//! key   = version: i16 (0) | type: i16 (ABORT = 0, COMMIT = 1)
//! value = version: i16 (0) | coordinator_epoch: i32      (EndTransactionMarker)
//! ```
//!
//! As in Kafka, a key of a higher version is read as version 0 (its first
//! four bytes), a value of a higher version as version 0 (its first six
//! bytes, the rest ignored); negative versions and short keys or values
//! are refused. Control types other than ABORT and COMMIT (KRaft's own,
//! 2..) decode to [`ControlRecordType::Unknown`] and are not transaction
//! markers. Everything here is pure: errors, never panics, on any bytes.

use crate::batch::{BatchHeader, CompressionType};
use crate::builder::BatchBuilder;
use crate::error::RecordError;
use crate::reader::BatchReader;
use crate::types::{ProducerEpoch, ProducerId, Timestamp};

/// Version of the control record key Sluice writes (Kafka's
/// `CURRENT_CONTROL_RECORD_KEY_VERSION`).
pub const CONTROL_KEY_VERSION: i16 = 0;
/// Bytes of a version-0 control record key.
pub const CONTROL_KEY_SIZE: usize = 4;
/// Version of the end-transaction marker value Sluice writes.
pub const END_TXN_MARKER_VERSION: i16 = 0;
/// Bytes of a version-0 end-transaction marker value.
pub const END_TXN_MARKER_VALUE_SIZE: usize = 6;

/// The type of a control record (Kafka's `ControlRecordType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The transaction is aborted: consumers in read_committed skip its data.
    Abort,
    /// The transaction is committed.
    Commit,
    /// Any other type id (KRaft's leader change, snapshot header/footer...):
    /// not a transaction marker.
    Unknown(i16),
}

impl ControlRecordType {
    /// The type id on the wire.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Unknown(id) => id,
        }
    }

    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Unknown(other),
        }
    }

    /// The marker type of a transaction's outcome (WriteTxnMarkers'
    /// `TransactionResult`: true = COMMIT).
    pub fn from_commit(commit: bool) -> Self {
        if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        }
    }

    /// The version-0 key of a control record of this type.
    pub fn encode_key(self) -> [u8; CONTROL_KEY_SIZE] {
        let mut k = [0u8; CONTROL_KEY_SIZE];
        k[..2].copy_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
        k[2..].copy_from_slice(&self.id().to_be_bytes());
        k
    }

    /// Parses a control record key (Kafka's `ControlRecordType.parse`).
    pub fn decode_key(key: &[u8]) -> Result<Self, RecordError> {
        let (Some(version), Some(id)) = (be_i16(key, 0), be_i16(key, 2)) else {
            return Err(RecordError::InvalidControlRecord(
                "control record key shorter than 4 bytes",
            ));
        };
        if version < 0 {
            return Err(RecordError::InvalidControlRecord(
                "negative control record key version",
            ));
        }
        Ok(Self::from_id(id))
    }
}

/// The value of a COMMIT or ABORT control record (Kafka's
/// `EndTransactionMarker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndTransactionMarker {
    /// [`ControlRecordType::Abort`] or [`ControlRecordType::Commit`].
    pub control_type: ControlRecordType,
    /// The epoch of the transaction coordinator that wrote it (a marker
    /// from an older coordinator is fenced).
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// A marker of `control_type`, which must be ABORT or COMMIT.
    pub fn new(
        control_type: ControlRecordType,
        coordinator_epoch: i32,
    ) -> Result<Self, RecordError> {
        if !matches!(
            control_type,
            ControlRecordType::Abort | ControlRecordType::Commit
        ) {
            return Err(RecordError::InvalidControlRecord(
                "an end transaction marker is ABORT or COMMIT",
            ));
        }
        Ok(EndTransactionMarker {
            control_type,
            coordinator_epoch,
        })
    }

    pub fn is_abort(&self) -> bool {
        self.control_type == ControlRecordType::Abort
    }

    /// The version-0 value.
    pub fn encode_value(&self) -> [u8; END_TXN_MARKER_VALUE_SIZE] {
        let mut v = [0u8; END_TXN_MARKER_VALUE_SIZE];
        v[..2].copy_from_slice(&END_TXN_MARKER_VERSION.to_be_bytes());
        v[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        v
    }

    /// Parses a control record's key and value as an end-transaction
    /// marker. A key of another control type is an error, as in Kafka's
    /// `EndTransactionMarker.deserialize`; so are a missing or short value
    /// and a negative version. Longer values (higher versions) are read
    /// as version 0.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordError> {
        let control_type = ControlRecordType::decode_key(key)?;
        let value = value.ok_or(RecordError::InvalidControlRecord(
            "end transaction marker without a value",
        ))?;
        let (Some(version), Some(epoch)) = (be_i16(value, 0), be_i32(value, 2)) else {
            return Err(RecordError::InvalidControlRecord(
                "end transaction marker value shorter than 6 bytes",
            ));
        };
        if version < 0 {
            return Err(RecordError::InvalidControlRecord(
                "negative end transaction marker version",
            ));
        }
        Self::new(control_type, epoch)
    }
}

/// One control batch holding `marker` for `producer_id`/`producer_epoch`,
/// as a partition leader writes it for WriteTxnMarkers: attributes
/// transactional | control, uncompressed, base sequence -1, base offset 0
/// (the log assigns it), one record at `timestamp`.
pub fn build_end_txn_marker_batch(
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    marker: EndTransactionMarker,
    timestamp: Timestamp,
) -> Result<Vec<u8>, RecordError> {
    let marker = EndTransactionMarker::new(marker.control_type, marker.coordinator_epoch)?;
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(producer_id, producer_epoch, crate::NO_SEQUENCE)
        .transactional(true)
        .control(true);
    b.append(
        timestamp,
        Some(&marker.control_type.encode_key()),
        Some(&marker.encode_value()),
        &[],
    )?;
    b.build()
}

/// What the first record of a stored control batch says (Kafka reads only
/// the first record of a control batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlBatch {
    /// An ABORT or COMMIT marker.
    EndTxn(EndTransactionMarker),
    /// A control record of another type: not a transaction marker.
    Other(ControlRecordType),
    /// No record at all (the cleaner may empty a control batch).
    Empty,
}

/// Reads the control record of one whole control `batch` (CRC and framing
/// checked, decompressed within `max_decompressed` if it is compressed,
/// which Kafka never writes). Errors on a batch that is not a control
/// batch and on a first record that does not decode.
pub fn read_control_batch(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<ControlBatch, RecordError> {
    let reader = BatchReader::new(batch, max_decompressed)?;
    if !reader.header().is_control() {
        return Err(RecordError::InvalidControlRecord("not a control batch"));
    }
    let Some(first) = reader.records().next() else {
        return Ok(ControlBatch::Empty);
    };
    let record = first?;
    let key = record.key.ok_or(RecordError::InvalidControlRecord(
        "control record without a key",
    ))?;
    match ControlRecordType::decode_key(key)? {
        ControlRecordType::Abort | ControlRecordType::Commit => Ok(ControlBatch::EndTxn(
            EndTransactionMarker::decode(key, record.value)?,
        )),
        other => Ok(ControlBatch::Other(other)),
    }
}

/// Whether `h` describes a control batch that may be a transaction marker
/// (the header alone cannot tell ABORT from COMMIT).
pub fn is_marker_candidate(h: &BatchHeader) -> bool {
    h.is_control() && h.has_producer_id()
}

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([s[0], s[1]]))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Offset;
    use proptest::prelude::*;

    #[test]
    fn kafkas_type_ids_and_bytes() {
        assert_eq!(ControlRecordType::Abort.id(), 0);
        assert_eq!(ControlRecordType::Commit.id(), 1);
        assert_eq!(ControlRecordType::Commit.encode_key(), [0, 0, 0, 1]);
        assert_eq!(ControlRecordType::Abort.encode_key(), [0, 0, 0, 0]);
        let m = EndTransactionMarker::new(ControlRecordType::Commit, 0x0102_0304).unwrap();
        assert_eq!(m.encode_value(), [0, 0, 1, 2, 3, 4]);
        assert_eq!(
            ControlRecordType::from_commit(false),
            ControlRecordType::Abort
        );
    }

    #[test]
    fn tolerant_of_higher_versions_strict_about_the_rest() {
        // A version-1 key and a longer version-3 value read as version 0.
        let m = EndTransactionMarker::decode(&[0, 1, 0, 0, 9, 9], Some(&[0, 3, 0, 0, 0, 7, 1, 2]))
            .unwrap();
        assert_eq!(m.control_type, ControlRecordType::Abort);
        assert_eq!(m.coordinator_epoch, 7);
        for (key, value) in [
            (&[0u8, 0, 0][..], Some(&[0u8, 0, 0, 0, 0, 1][..])),
            (&[0xff, 0xff, 0, 1][..], Some(&[0, 0, 0, 0, 0, 1][..])),
            (&[0, 0, 0, 1][..], Some(&[0, 0, 0, 0, 0][..])),
            (&[0, 0, 0, 1][..], Some(&[0x80, 0, 0, 0, 0, 1][..])),
            (&[0, 0, 0, 1][..], None),
            (&[0, 0, 0, 2][..], Some(&[0, 0, 0, 0, 0, 1][..])),
        ] {
            assert!(
                EndTransactionMarker::decode(key, value).is_err(),
                "{key:?} {value:?}"
            );
        }
        assert_eq!(
            ControlRecordType::decode_key(&[0, 0, 0, 3]).unwrap(),
            ControlRecordType::Unknown(3)
        );
        assert!(EndTransactionMarker::new(ControlRecordType::Unknown(2), 0).is_err());
    }

    #[test]
    fn a_marker_batch_reads_back() {
        let m = EndTransactionMarker::new(ControlRecordType::Abort, 5).unwrap();
        let b = build_end_txn_marker_batch(ProducerId(42), ProducerEpoch(3), m, Timestamp(1000))
            .unwrap();
        let h = BatchHeader::validate(&b).unwrap();
        assert!(h.is_control() && h.is_transactional() && is_marker_candidate(&h));
        assert_eq!(h.producer_id, ProducerId(42));
        assert_eq!(h.producer_epoch, ProducerEpoch(3));
        assert_eq!(h.base_sequence, -1);
        assert_eq!(h.record_count, 1);
        assert_eq!(h.base_offset, Offset(0));
        assert_eq!(h.compression(), CompressionType::None);
        assert_eq!(
            read_control_batch(&b, 1 << 10).unwrap(),
            ControlBatch::EndTxn(m)
        );
        // A data batch is not a control batch.
        let mut data = BatchBuilder::new(CompressionType::None);
        data.append(Timestamp(0), None, Some(b"x"), &[]).unwrap();
        assert!(read_control_batch(&data.build().unwrap(), 1 << 10).is_err());
        // A control record of another type is not a marker.
        let mut other = BatchBuilder::new(CompressionType::None).control(true);
        other
            .append(Timestamp(0), Some(&[0, 0, 0, 2]), Some(&[0, 0]), &[])
            .unwrap();
        assert_eq!(
            read_control_batch(&other.build().unwrap(), 1 << 10).unwrap(),
            ControlBatch::Other(ControlRecordType::Unknown(2))
        );
    }

    fn control_type() -> impl Strategy<Value = ControlRecordType> {
        prop_oneof![
            Just(ControlRecordType::Abort),
            Just(ControlRecordType::Commit)
        ]
    }

    proptest! {
        #[test]
        fn marker_round_trips(t in control_type(), epoch in any::<i32>(), pid in 0i64..i64::MAX, pe in 0i16..i16::MAX, ts in any::<i64>()) {
            let m = EndTransactionMarker::new(t, epoch).unwrap();
            prop_assert_eq!(EndTransactionMarker::decode(&t.encode_key(), Some(&m.encode_value())).unwrap(), m);
            let b = build_end_txn_marker_batch(ProducerId(pid), ProducerEpoch(pe), m, Timestamp(ts)).unwrap();
            prop_assert_eq!(read_control_batch(&b, 1 << 10).unwrap(), ControlBatch::EndTxn(m));
        }

        #[test]
        fn any_key_and_value_decode_without_panicking(key in prop::collection::vec(any::<u8>(), 0..12), value in prop::option::of(prop::collection::vec(any::<u8>(), 0..12))) {
            if let Ok(m) = EndTransactionMarker::decode(&key, value.as_deref()) {
                // What decodes is a marker whose version-0 form decodes the same.
                prop_assert_eq!(EndTransactionMarker::decode(&m.control_type.encode_key(), Some(&m.encode_value())).unwrap(), m);
                prop_assert!(key.len() >= 4 && value.as_ref().is_some_and(|v| v.len() >= 6));
            }
            let _ = ControlRecordType::decode_key(&key);
        }

        #[test]
        fn any_bytes_as_a_control_batch_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_control_batch(&bytes, 1 << 10);
        }
    }
}
