//! Re-encoding a batch in another codec, as Kafka's broker does when a
//! topic's `compression.type` is a codec and a producer used another one.
//!
//! Everything but the records section's encoding is kept: base offset,
//! partition leader epoch, each record's offset delta, timestamp, key,
//! value and headers, the batch's last offset delta, producer id, epoch and
//! base sequence, the timestamp type and the transactional and control
//! flags. The CRC-32C is recomputed. The caller validates the batch first
//! (CRC, framing); this function decodes it within `max_decompressed`
//! bytes and fails on any record that does not decode.

use crate::batch::{BatchHeader, CompressionType, TimestampType, BATCH_HEADER_SIZE};
use crate::budget::{Budget, Unbounded};
use crate::builder::BatchBuilder;
use crate::error::RecordError;
use crate::reader::BatchReader;

/// `batch` (one whole RecordBatch v2) with its records re-encoded in
/// `codec`, or `None` when it already is in `codec` (nothing to do: the
/// caller keeps the bytes it has).
pub fn recompress(
    batch: &[u8],
    codec: CompressionType,
    max_decompressed: usize,
) -> Result<Option<Vec<u8>>, RecordError> {
    recompress_budgeted(batch, codec, max_decompressed, &mut Unbounded)
}

/// [`recompress`] drawing its memory from `budget`: the decompressed
/// records as they come out, then, before re-encoding, three times their
/// size (the builder's uncompressed records, the codec's output and the
/// finished batch, each at most about that size).
pub fn recompress_budgeted(
    batch: &[u8],
    codec: CompressionType,
    max_decompressed: usize,
    budget: &mut dyn Budget,
) -> Result<Option<Vec<u8>>, RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() == codec {
        return Ok(None);
    }
    let reader = BatchReader::with_budget(batch, max_decompressed, &mut *budget)?;
    let plain = reader.records_data().len() + BATCH_HEADER_SIZE;
    budget.grow(plain.saturating_mul(3))?;
    let mut b = BatchBuilder::new(codec)
        .base_offset(header.base_offset)
        .partition_leader_epoch(header.partition_leader_epoch)
        .producer(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
        .transactional(header.is_transactional())
        .control(header.is_control())
        .last_offset(header.last_offset());
    if header.timestamp_type() == TimestampType::LogAppendTime {
        b = b.log_append_time(header.max_timestamp);
    }
    let mut count = 0i32;
    for r in reader.records() {
        b.append_record(&r?)?;
        count += 1;
    }
    if count != header.record_count {
        return Err(RecordError::Build("record count differs from the header's"));
    }
    b.build().map(Some)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::record::OwnedRecord;
    use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};
    use crate::{records, Header};

    const LIMIT: usize = 16 << 20;

    fn codec() -> impl Strategy<Value = CompressionType> {
        prop_oneof![
            Just(CompressionType::None),
            Just(CompressionType::Gzip),
            Just(CompressionType::Snappy),
            Just(CompressionType::Lz4),
            Just(CompressionType::Zstd),
        ]
    }

    type Rec = (
        u8,
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn rec() -> impl Strategy<Value = Rec> {
        (
            1u8..4,
            -5_000i64..5_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            proptest::collection::vec(
                (
                    "[a-z]{0,6}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                ),
                0..3,
            ),
        )
    }

    fn decoded(batch: &[u8]) -> (BatchHeader, Vec<OwnedRecord>) {
        let header = BatchHeader::validate_stored(batch).unwrap();
        let reader = records(batch, LIMIT).unwrap();
        let recs = reader.records().map(|r| r.unwrap().into_owned()).collect();
        (header, recs)
    }

    proptest! {
        /// decode(recompress(b)) yields the same records and batch fields as
        /// decode(b), for every pair of codecs, with offset gaps, producer
        /// fields, transactional/control flags and LogAppendTime.
        #[test]
        fn recompressed_batches_decode_to_the_same_records(
            from in codec(),
            to in codec(),
            recs in proptest::collection::vec(rec(), 1..30),
            base in 0i64..1_000_000,
            tail_gap in 0i64..3,
            producer in proptest::option::of((0i64..1000, 0i16..5, 0i32..1000)),
            transactional: bool,
            control: bool,
            log_append: bool,
        ) {
            let mut b = BatchBuilder::new(from)
                .base_offset(Offset(base))
                .partition_leader_epoch(LeaderEpoch(7));
            if let Some((id, epoch, seq)) = producer {
                b = b.producer(ProducerId(id), ProducerEpoch(epoch), seq);
            }
            b = b.transactional(transactional).control(control);
            if log_append {
                b = b.log_append_time(Timestamp(1_700_000_999_999));
            }
            let mut offset = base;
            for (gap, ts, key, value, headers) in &recs {
                offset += i64::from(*gap);
                let hs: Vec<Header<'_>> = headers
                    .iter()
                    .map(|(k, v)| Header { key: k.as_bytes(), value: v.as_deref() })
                    .collect();
                b.append_with_offset(
                    Offset(offset),
                    Timestamp(1_700_000_000_000 + ts),
                    key.as_deref(),
                    value.as_deref(),
                    &hs,
                )
                .unwrap();
            }
            b = b.last_offset(Offset(offset + tail_gap));
            let original = b.build().unwrap();

            let out = recompress(&original, to, LIMIT).unwrap();
            if from == to {
                prop_assert!(out.is_none());
                return Ok(());
            }
            let out = out.unwrap();
            let (h0, r0) = decoded(&original);
            let (h1, r1) = decoded(&out);
            prop_assert_eq!(h1.compression(), to);
            prop_assert_eq!(r0, r1);
            prop_assert_eq!(h1.base_offset, h0.base_offset);
            prop_assert_eq!(h1.last_offset(), h0.last_offset());
            prop_assert_eq!(h1.record_count, h0.record_count);
            prop_assert_eq!(h1.partition_leader_epoch, h0.partition_leader_epoch);
            prop_assert_eq!(h1.producer_id, h0.producer_id);
            prop_assert_eq!(h1.producer_epoch, h0.producer_epoch);
            prop_assert_eq!(h1.base_sequence, h0.base_sequence);
            prop_assert_eq!(h1.is_transactional(), h0.is_transactional());
            prop_assert_eq!(h1.is_control(), h0.is_control());
            prop_assert_eq!(h1.timestamp_type(), h0.timestamp_type());
            prop_assert_eq!(h1.max_timestamp, h0.max_timestamp);
        }
    }

    #[test]
    fn corrupt_batches_are_errors_not_panics() {
        let mut b = BatchBuilder::new(CompressionType::Lz4);
        b.append(Timestamp(1), Some(b"k"), Some(b"v"), &[]).unwrap();
        let mut batch = b.build().unwrap();
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(recompress(&batch, CompressionType::Gzip, LIMIT).is_err());
        assert!(recompress(&batch[..30], CompressionType::Gzip, LIMIT).is_err());
    }
}
