//! Metadata records in RecordBatch v2, as Kafka's `__cluster_metadata`
//! log and its snapshots hold them: one Kafka record per metadata record,
//! null key, the value framed by [`MetadataRecord::encode`], uncompressed;
//! the batch's partition leader epoch is the epoch of the leader that
//! appended it.

use sluice_metadata::MetadataRecord;
use sluice_record::{BatchBuilder, BatchReader, CompressionType, LeaderEpoch, Offset, Timestamp};

use crate::log::{CommittedBatch, LogError};

/// Encodes each record's value. `Err` when a record cannot be serialized
/// (a string over Kafka's limit): the append is refused as too large.
pub(crate) fn encode_values(records: &[MetadataRecord]) -> Result<(Vec<Vec<u8>>, usize), LogError> {
    let mut total = 0usize;
    let mut values = Vec::with_capacity(records.len());
    for r in records {
        let v = r.to_bytes().map_err(|_| LogError::TooLarge {
            records: records.len(),
            bytes: usize::MAX,
        })?;
        total = total.saturating_add(v.len());
        values.push(v);
    }
    Ok((values, total))
}

/// One batch of `values` (encoded records) at `base_offset`.
pub(crate) fn build_batch(
    values: &[Vec<u8>],
    base_offset: Offset,
    epoch: LeaderEpoch,
    now_ms: i64,
) -> Result<Vec<u8>, LogError> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .base_offset(base_offset)
        .partition_leader_epoch(epoch);
    for v in values {
        b.append(Timestamp(now_ms), None, Some(v), &[])
            .map_err(|e| LogError::Fatal(format!("cannot build a metadata batch: {e}")))?;
    }
    b.build()
        .map_err(|e| LogError::Fatal(format!("cannot build a metadata batch: {e}")))
}

/// Decodes the whole batch at the start of `bytes` (CRC checked). A batch
/// whose records are not metadata records is corruption: fatal.
pub(crate) fn decode_batch(bytes: &[u8]) -> Result<(CommittedBatch, usize), LogError> {
    let corrupt = |what: String| LogError::Fatal(format!("corrupt metadata batch: {what}"));
    let reader = BatchReader::new(bytes, 0).map_err(|e| corrupt(e.to_string()))?;
    let header = *reader.header();
    let mut records = Vec::with_capacity(header.record_count.max(0) as usize);
    for r in reader.records() {
        let r = r.map_err(|e| corrupt(e.to_string()))?;
        let value = r
            .value
            .ok_or_else(|| corrupt("record without a value".into()))?;
        records.push(MetadataRecord::decode(value).map_err(|e| corrupt(e.to_string()))?);
    }
    if records.is_empty() || records.len() as i64 != i64::from(header.last_offset_delta) + 1 {
        return Err(corrupt(format!(
            "{} records for {} offsets at {}",
            records.len(),
            i64::from(header.last_offset_delta) + 1,
            header.base_offset.0
        )));
    }
    let batch = CommittedBatch {
        base_offset: header.base_offset,
        epoch: header.partition_leader_epoch,
        append_time_ms: header.max_timestamp.0,
        records,
    };
    Ok((batch, header.size()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::record::NoOpRecord;

    #[test]
    fn a_batch_round_trips_with_its_offsets_and_epoch() {
        let records = vec![MetadataRecord::NoOp(NoOpRecord); 3];
        let (values, _) = encode_values(&records).unwrap();
        let bytes = build_batch(&values, Offset(7), LeaderEpoch(4), 1234).unwrap();
        let (batch, size) = decode_batch(&bytes).unwrap();
        assert_eq!(size, bytes.len());
        assert_eq!(batch.base_offset, Offset(7));
        assert_eq!(batch.last_offset(), Offset(9));
        assert_eq!(batch.epoch, LeaderEpoch(4));
        assert_eq!(batch.append_time_ms, 1234);
        assert_eq!(batch.records, records);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(decode_batch(&bad), Err(LogError::Fatal(_))));
    }
}
