//! What the log checks of a producer's batches before it writes anything,
//! as Kafka's `LogValidator` does, and the re-encoding into a topic's
//! `compression.type`. Every decoding draws on the broker-wide
//! [`DecompressionBudget`].
//!
//! Per batch, in order:
//!
//! 1. the header ([`validate_headers`]): size within `max.message.bytes`,
//!    framing, magic, CRC-32C, codec id, a record count that is positive
//!    and equals `lastOffsetDelta + 1`;
//! 2. the records against the header ([`check_batches`]): exactly
//!    `recordCount` records, record `i` at offset delta `i`, each record's
//!    length framing exactly its fields, nothing after the last record.
//!    Uncompressed batches are walked in place (no allocation, no copy);
//!    compressed ones are streamed through their decoder (only the codec's
//!    state is held, charged to the budget) unless step 3 decodes them;
//! 3. per-record checks when the header cannot vouch for the records: a
//!    key on compacted topics, CreateTime timestamps within bounds. These
//!    decode the batch (within the budget) and make step 2's checks on the
//!    way.

use std::sync::Arc;

use sluice_record::validate::check_batch_records;
use sluice_record::{BatchHeader, BatchReader, Budget as _, Timestamp, TimestampType};

use crate::budget::{DecompressionBudget, Reservation};
use crate::cleaner::core::MAX_DECOMPRESSED_BATCH;
use crate::config::LogConfig;
use crate::error::{RecordRejection, RejectedRecord, StorageError};

/// Validates a producer's batches end to end against the topic config
/// ([`validate_headers`], then [`check_batches`]). Returns `(position,
/// header)` of each batch.
pub fn validate_batches(
    records: &[u8],
    config: &LogConfig,
    now_ms: i64,
    budget: &Arc<DecompressionBudget>,
) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    let headers = validate_headers(records, config)?;
    check_batches(records, &headers, config, now_ms, budget, Framing::Check)?;
    Ok(headers)
}

/// Step 1 only: each batch's header, size and CRC. Reads no record.
pub fn validate_headers(
    records: &[u8],
    config: &LogConfig,
) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    if records.is_empty() {
        return Err(StorageError::InvalidRecord("no record batches".into()));
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        // Size first, so an oversized batch is reported as such even when
        // only part of it was sent.
        if let Ok(size) = BatchHeader::peek_size(rest) {
            if size > config.max_message_bytes as usize {
                return Err(StorageError::RecordTooLarge {
                    size,
                    max: config.max_message_bytes,
                });
            }
        }
        let h = BatchHeader::validate(rest)?;
        if h.record_count == 0 {
            return Err(StorageError::InvalidRecord(
                "record batch has no records".into(),
            ));
        }
        out.push((pos, h));
        pos += h.size();
    }
    Ok(out)
}

/// Whether [`check_batches`] walks the records' framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Check,
    /// The batches were built here from records that were checked (the
    /// output of [`recompress_batches`]).
    Trusted,
}

/// Steps 2 and 3 for batches whose headers [`validate_headers`] returned.
pub(crate) fn check_batches(
    records: &[u8],
    headers: &[(usize, BatchHeader)],
    config: &LogConfig,
    now_ms: i64,
    budget: &Arc<DecompressionBudget>,
    framing: Framing,
) -> Result<(), StorageError> {
    for (pos, h) in headers {
        let batch = &records[*pos..*pos + h.size()];
        // One reservation per batch, given back before the next one.
        let mut reservation = budget.reservation();
        let decoded = check_records(batch, h, config, now_ms, &mut reservation)?;
        if framing == Framing::Check && !decoded {
            check_batch_records(batch, h, MAX_DECOMPRESSED_BATCH, &mut reservation)?;
        }
    }
    Ok(())
}

/// Whether a CreateTime timestamp is outside `[now - before, now + after]`,
/// computed with Kafka's wrapping 64-bit arithmetic. `-1` (no timestamp)
/// is never out of range.
fn timestamp_out_of_range(ts: Timestamp, config: &LogConfig, now_ms: i64) -> bool {
    if ts == Timestamp::NONE {
        return false;
    }
    let diff = now_ms.wrapping_sub(ts.0);
    diff > config.message_timestamp_before_max_ms
        || diff.wrapping_neg() > config.message_timestamp_after_max_ms
}

/// The per-record checks of Kafka's LogValidator on one produced batch: a
/// key on compacted topics, then a CreateTime timestamp within bounds; every
/// refused record is named by its index ([`StorageError::RejectedRecords`]).
/// Returns whether it decoded the records, in which case it also checked
/// their count, framing and offset deltas.
///
/// Records are decoded only when the header cannot vouch for them: on
/// compacted topics, when `message.timestamp.before.max.ms` is bounded (the
/// header has no minimum timestamp), or when the header's base or max
/// timestamp is out of range. With Kafka's defaults (`delete`, unbounded
/// before, after bounded by the header's max timestamp) nothing is decoded.
fn check_records(
    batch: &[u8],
    h: &BatchHeader,
    config: &LogConfig,
    now_ms: i64,
    reservation: &mut Reservation,
) -> Result<bool, StorageError> {
    let compacted = config.compaction.cleanup_policy.compact() && !h.is_control();
    let create_time = config.message_timestamp_type == TimestampType::CreateTime;
    let header_bad = create_time
        && [h.base_timestamp, h.max_timestamp]
            .into_iter()
            .any(|ts| timestamp_out_of_range(ts, config, now_ms));
    let scan_timestamps =
        create_time && (header_bad || config.message_timestamp_before_max_ms < i64::MAX);
    if !compacted && !scan_timestamps {
        return Ok(false);
    }
    let reader = BatchReader::with_budget(batch, MAX_DECOMPRESSED_BATCH, reservation)?;
    let mut rejected = Vec::new();
    // The iterator checks the count and that nothing follows the last record.
    for (index, record) in (0i32..).zip(reader.records()) {
        let record = record?;
        if record.offset_delta != index {
            return Err(sluice_record::RecordError::InvalidOffsetDelta {
                index,
                offset_delta: record.offset_delta,
            }
            .into());
        }
        let reason = if compacted && record.key.is_none() {
            RecordRejection::MissingKey
        } else if scan_timestamps && timestamp_out_of_range(record.timestamp, config, now_ms) {
            RecordRejection::TimestampOutOfRange {
                timestamp: record.timestamp,
                offset: record.offset,
                now: Timestamp(now_ms),
                before_max_ms: config.message_timestamp_before_max_ms,
                after_max_ms: config.message_timestamp_after_max_ms,
            }
        } else {
            continue;
        };
        rejected.push(RejectedRecord {
            batch_index: u32::try_from(index).unwrap_or(u32::MAX),
            reason,
        });
    }
    if !rejected.is_empty() {
        return Err(StorageError::RejectedRecords(rejected));
    }
    if header_bad {
        // The header's timestamps disagree with its records: refuse the
        // batch whole rather than store a wrong max timestamp.
        let ts = if timestamp_out_of_range(h.base_timestamp, config, now_ms) {
            h.base_timestamp
        } else {
            h.max_timestamp
        };
        return Err(StorageError::InvalidTimestamp {
            timestamp: ts,
            now: Timestamp(now_ms),
        });
    }
    Ok(true)
}

/// The batches of `records` re-encoded in the topic's `compression.type`
/// when it names a codec and some batch uses another one (as Kafka's
/// LogValidator does); `None` when every batch is stored as received,
/// which is always the case for `producer`, so that path copies and decodes
/// nothing. Control batches written uncompressed stay uncompressed, as in
/// Kafka. Offsets, timestamps, headers and producer fields are kept
/// ([`sluice_record::recompress_budgeted`]). The returned reservation holds
/// the budget for the converted bytes until the caller has written them.
pub(crate) fn recompress_batches(
    records: &[u8],
    headers: &[(usize, BatchHeader)],
    config: &LogConfig,
    budget: &Arc<DecompressionBudget>,
) -> Result<Option<(Vec<u8>, Reservation)>, StorageError> {
    let Some(codec) = config.compression else {
        return Ok(None);
    };
    let convert = |h: &BatchHeader| {
        h.compression() != codec
            && !(h.is_control() && h.compression() == sluice_record::CompressionType::None)
    };
    if !headers.iter().any(|(_, h)| convert(h)) {
        return Ok(None);
    }
    // One reservation for the call, so that its place in line (the oldest
    // holder may wait, see `budget`) holds for every batch; each batch's
    // decoding is given back once the batch is converted, keeping its output.
    let mut held = budget.reservation();
    held.grow(records.len())?;
    let mut out = Vec::with_capacity(records.len());
    for (pos, h) in headers {
        let batch = &records[*pos..*pos + h.size()];
        let converted = if convert(h) {
            let before = held.held();
            let converted = sluice_record::recompress_budgeted(
                batch,
                codec,
                MAX_DECOMPRESSED_BATCH,
                &mut held,
            )?;
            // The decoding charged at least three times the decoded size,
            // more than the converted batch takes.
            held.shrink_to(before + converted.as_ref().map_or(0, Vec::len));
            converted
        } else {
            None
        };
        out.extend_from_slice(converted.as_deref().unwrap_or(batch));
    }
    Ok(Some((out, held)))
}
