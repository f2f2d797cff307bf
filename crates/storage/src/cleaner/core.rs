//! The pure part of compaction: the key -> latest offset map with a memory
//! budget, and the per-batch filter that keeps the latest record per key.
//! No I/O: callers feed whole batches (as stored) and get batches back.

use std::collections::HashMap;

use sluice_record::{
    BatchBuilder, BatchHeader, BatchReader, Budget, Offset, Timestamp, TimestampType,
    BATCH_HEADER_SIZE,
};

use crate::error::StorageError;

/// Decompression bound when the cleaner decodes one stored batch.
pub const MAX_DECOMPRESSED_BATCH: usize = 256 << 20;

/// Bytes a map entry costs besides its key: the offset, the hash-table slot
/// and the key's heap header.
pub const ENTRY_OVERHEAD: usize = 48;

/// Key -> offset of its latest record in the dirty range, bounded by a
/// memory budget (`log.cleaner.dedupe.buffer.size`). Kafka stores a 16-byte
/// hash per key; this map keeps the key itself, so hash collisions cannot
/// drop a live record, and charges `key.len() + ENTRY_OVERHEAD` per entry.
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<Vec<u8>, Offset>,
    bytes: usize,
    budget: usize,
}

impl OffsetMap {
    pub fn new(budget: usize) -> Self {
        OffsetMap {
            map: HashMap::new(),
            bytes: 0,
            budget,
        }
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Bytes charged against the budget so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn get(&self, key: &[u8]) -> Option<Offset> {
        self.map.get(key).copied()
    }
    fn cost(key: &[u8]) -> usize {
        key.len() + ENTRY_OVERHEAD
    }
    fn insert(&mut self, key: &[u8], offset: Offset) {
        match self.map.get_mut(key) {
            Some(o) => *o = (*o).max(offset),
            None => {
                self.bytes += Self::cost(key);
                self.map.insert(key.to_vec(), offset);
            }
        }
    }

    /// Adds the keyed records of one stored batch, all or nothing. Returns
    /// `Ok(false)` (and adds nothing) when the new keys would exceed the
    /// budget and the map already holds something: the caller then stops
    /// the dirty range at this batch's base offset, as Kafka's cleaner does
    /// when its map fills. Control batches carry no keys and are skipped.
    /// The decoded records are charged to `budget`.
    pub fn add_batch(
        &mut self,
        batch: &[u8],
        budget: &mut dyn Budget,
    ) -> Result<bool, StorageError> {
        let reader = BatchReader::with_budget(batch, MAX_DECOMPRESSED_BATCH, budget)?;
        if reader.header().is_control() {
            return Ok(true);
        }
        let mut new_cost = 0usize;
        let mut keyed = Vec::new();
        for r in reader.records() {
            let r = r?;
            if let Some(k) = r.key {
                if !self.map.contains_key(k) {
                    new_cost += Self::cost(k);
                }
                keyed.push((k, r.offset));
            }
        }
        if !self.map.is_empty() && self.bytes + new_cost > self.budget {
            return Ok(false);
        }
        for (k, o) in keyed {
            self.insert(k, o);
        }
        Ok(true)
    }
}

/// What the filter did with one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays: the original bytes are kept as they are.
    Unchanged,
    /// Nothing stays and the batch can go.
    Dropped,
    /// A rewritten batch (same base offset, offset range, producer fields,
    /// codec and attributes; fewer records, possibly none).
    Rewritten(Vec<u8>),
}

/// Counts of one filter pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_dropped: u64,
    /// Records of aborted transactions removed.
    pub aborted_dropped: u64,
    /// Transaction markers removed (their transaction left no record).
    pub markers_dropped: u64,
}

/// What the filter keeps of a batch's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The latest record per key (and every keyless record).
    Latest,
    /// None: the batch belongs to an aborted transaction.
    Nothing,
}

/// Decides the fate of one stored batch.
///
/// With [`Keep::Latest`] a record stays when it has no key, lies at or
/// past `dirty_end` (the map does not cover it), or is the latest for its
/// key per `map`; with [`Keep::Nothing`] (an aborted transaction's batch
/// below `dirty_end`) none does. A tombstone
/// (null value) that would stay is dropped when `drop_tombstones` (its delete
/// horizon has passed). Control batches stay as they are. `keep_empty`
/// keeps a batch whose records all went as an empty batch with the same
/// offset range (used for a segment's last batch, so the segment still ends
/// where the next one starts).
#[allow(clippy::too_many_arguments)]
pub fn filter_batch(
    batch: &[u8],
    map: &OffsetMap,
    dirty_end: Offset,
    drop_tombstones: bool,
    keep_empty: bool,
    keep: Keep,
    stats: &mut FilterStats,
    budget: &mut dyn Budget,
) -> Result<Filtered, StorageError> {
    let header = BatchHeader::validate_stored(batch)?;
    if header.is_control() || header.base_offset >= dirty_end {
        stats.records_read += header.record_count as u64;
        stats.records_kept += header.record_count as u64;
        return Ok(Filtered::Unchanged);
    }
    let reader = BatchReader::with_budget(batch, MAX_DECOMPRESSED_BATCH, &mut *budget)?;
    let mut kept = Vec::new();
    let mut total = 0u64;
    for r in reader.records() {
        let r = r?;
        total += 1;
        if keep == Keep::Nothing {
            stats.aborted_dropped += 1;
            continue;
        }
        let latest = match r.key {
            None => true,
            Some(_) if r.offset >= dirty_end => true,
            Some(k) => map.get(k).is_none_or(|o| r.offset >= o),
        };
        if !latest {
            continue;
        }
        if r.value.is_none() && drop_tombstones && r.offset < dirty_end {
            stats.tombstones_dropped += 1;
            continue;
        }
        kept.push(r);
    }
    stats.records_read += total;
    stats.records_kept += kept.len() as u64;
    if kept.len() as u64 == total {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() && !keep_empty {
        return Ok(Filtered::Dropped);
    }
    // The builder's records, the codec's output and the batch: each at
    // most about the decoded size.
    let plain = reader.records_data().len() + BATCH_HEADER_SIZE;
    budget.grow(plain.saturating_mul(3))?;
    let mut b = BatchBuilder::new(header.compression())
        .base_offset(header.base_offset)
        .partition_leader_epoch(header.partition_leader_epoch)
        .producer(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
        .transactional(header.is_transactional())
        .last_offset(header.last_offset());
    if header.timestamp_type() == TimestampType::LogAppendTime {
        b = b.log_append_time(header.max_timestamp);
    }
    for r in &kept {
        b.append_record(r)?;
    }
    let out = b.build()?;
    Ok(Filtered::Rewritten(out))
}

/// Whether tombstones in a batch whose newest record is `max_timestamp` are
/// past their delete horizon at `now_ms` (`delete.retention.ms` after it).
pub fn tombstones_expired(max_timestamp: Timestamp, now_ms: i64, delete_retention_ms: i64) -> bool {
    delete_retention_ms >= 0 && max_timestamp.0.saturating_add(delete_retention_ms) < now_ms
}
