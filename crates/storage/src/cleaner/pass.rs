//! One cleaning pass over one log, in the steps the [`super`] module doc
//! lists: the offset map over the dirty range ([`Pass::index_dirty_range`]),
//! the groups of segments to rewrite ([`Pass::groups`]), then each group
//! rewritten into a `.cleaned` file ([`Pass::rewrite_group`], with the
//! per-batch decision in [`Rewrite::filter`]) and swapped in
//! ([`Pass::install_group`]).
//!
//! Invariants: the dirty range never passes the log's first unstable offset
//! nor the batch that did not fit in the offset map; a group is installed
//! only after its cleaned file and transaction index are fsynced and renamed
//! to `.swap` with the directory fsynced, so a crash at any step leaves
//! either the old segments or a swap that log loading completes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_record::{BatchHeader, Offset};

use super::core::{self, filter_batch, Filtered, Keep, OffsetMap};
use super::swap::{self, SwapStep};
use super::{cleanable_segments, CleanStats, CleanerConfig, ReplaceOutcome, Throttle};
use crate::budget::DecompressionBudget;
use crate::error::{IoContext, StorageError};
use crate::fs::{write_all_at, Fs, OpenOptions};
use crate::log::Log;
use crate::segment::LogSegment;

/// [`super::clean_log`] with a hook called after each step of each swap;
/// when it returns true the pass stops right there (crash tests).
pub(crate) fn clean_log_with(
    log: &Log,
    first_dirty: Offset,
    config: &CleanerConfig,
    throttle: &mut Throttle,
    stop: &mut dyn FnMut(SwapStep) -> bool,
) -> Result<Option<CleanStats>, StorageError> {
    let Some(mut pass) = Pass::new(log, first_dirty)? else {
        return Ok(None);
    };
    let mut map = OffsetMap::new(config.dedupe_buffer_size);
    let dirty_end = pass.index_dirty_range(&mut map, throttle)?;
    pass.stats.dirty_end = dirty_end;
    pass.stats.map_keys = map.len();
    if dirty_end <= pass.stats.first_dirty {
        return Ok(None);
    }
    let groups = pass.groups(dirty_end);
    let mut rewrite = Rewrite {
        map: &map,
        dirty_end,
        last: pass.last_batches(&groups)?,
        // Aborted transactions over everything rewritten (from the log
        // start), and the transactions seen so far.
        aborted: AbortedRanges::of(log, log.log_start_offset(), dirty_end)?,
        txns: TxnRetention::default(),
        now: pass.now,
        retention: log.config().compaction.delete_retention_ms,
        budget: log.decompression_budget(),
    };
    let mut after = pass.segs.len();
    for g in groups {
        let Some(cleaned) = pass.rewrite_group(&g, &mut rewrite, throttle)? else {
            continue;
        };
        match pass.install_group(&g, &cleaned, stop)? {
            ReplaceOutcome::Replaced => after -= g.len() - 1,
            ReplaceOutcome::Stopped | ReplaceOutcome::Changed => return Ok(None),
        }
    }
    pass.stats.segments_after = after;
    Ok(Some(pass.stats))
}

/// The cleanable segments of one pass and what it learnt so far.
struct Pass<'a> {
    log: &'a Log,
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    now: i64,
    segs: Vec<Arc<LogSegment>>,
    sizes: Vec<u64>,
    /// Each segment's end (exclusive): the next segment's base offset.
    ends: Vec<Offset>,
    stats: CleanStats,
}

impl<'a> Pass<'a> {
    /// `None` when no segment is cleanable.
    fn new(log: &'a Log, first_dirty: Offset) -> Result<Option<Self>, StorageError> {
        let now = log.now_ms();
        let segs = cleanable_segments(log, now)?;
        if segs.is_empty() {
            return Ok(None);
        }
        let sizes = segs.iter().map(|s| s.size()).collect();
        let all = log.segment_base_offsets();
        let ends = segs
            .iter()
            .map(|s| {
                all.iter()
                    .copied()
                    .find(|b| *b > s.base_offset())
                    .unwrap_or_else(|| s.next_offset())
            })
            .collect();
        let stats = CleanStats {
            first_dirty: first_dirty.max(log.log_start_offset()),
            segments_before: segs.len(),
            ..Default::default()
        };
        Ok(Some(Pass {
            log,
            fs: log.fs(),
            dir: log.dir().to_path_buf(),
            now,
            segs,
            sizes,
            ends,
            stats,
        }))
    }

    /// Step 1: the offset map over the dirty range, which stops at the
    /// first unstable offset, and at the batch that did not fit in the
    /// map's budget; aborted transactions' records stay out of it. Returns
    /// the end of the dirty range.
    fn index_dirty_range(
        &mut self,
        map: &mut OffsetMap,
        throttle: &mut Throttle,
    ) -> Result<Offset, StorageError> {
        let first_dirty = self.stats.first_dirty;
        let budget = self.log.decompression_budget();
        let unstable = self.log.first_unstable_offset().unwrap_or(Offset(i64::MAX));
        let mut dirty_end = (*self.ends.last().expect("non-empty")).min(unstable);
        let aborted = AbortedRanges::of(self.log, first_dirty, dirty_end)?;
        for (i, s) in self.segs.iter().enumerate() {
            if s.base_offset() >= dirty_end {
                break;
            }
            if self.ends[i] <= first_dirty {
                continue;
            }
            let mut full_at = None;
            let mut read = 0u64;
            swap::for_each_batch(&*self.fs, &s.log_path(), |_, b| {
                let h = BatchHeader::validate_stored(b)?;
                read += b.len() as u64;
                if h.last_offset() < first_dirty {
                    return Ok(true);
                }
                if h.base_offset >= dirty_end {
                    return Ok(false);
                }
                if aborted.contains(&h) {
                    return Ok(true);
                }
                let mut reservation = budget.reservation();
                if !map.add_batch(b, &mut reservation)? {
                    full_at = Some(h.base_offset);
                    return Ok(false);
                }
                Ok(true)
            })?;
            self.stats.bytes_read += read;
            self.stats.dirty_bytes += read;
            throttle.account(read);
            if let Some(at) = full_at {
                dirty_end = at.max(first_dirty);
                break;
            }
        }
        Ok(dirty_end)
    }

    /// Step 2: groups of consecutive segments to rewrite, from the log
    /// start to the segment holding the end of the dirty range, each
    /// fitting in `segment.bytes` and in 32-bit relative offsets.
    fn groups(&self, dirty_end: Offset) -> Vec<Vec<usize>> {
        let segment_bytes = self.log.config().segment_bytes;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_bytes = 0u64;
        for (i, s) in self.segs.iter().enumerate() {
            if s.base_offset() >= dirty_end {
                break;
            }
            let fits = groups.last().is_some_and(|g| {
                let base = self.segs[g[0]].base_offset();
                group_bytes + self.sizes[i] <= segment_bytes
                    && self.ends[i].0 - base.0 <= i64::from(i32::MAX)
            });
            if fits {
                groups.last_mut().expect("non-empty").push(i);
                group_bytes += self.sizes[i];
            } else {
                groups.push(vec![i]);
                group_bytes = self.sizes[i];
            }
        }
        groups
    }

    /// Each producer's last batches in the rewritten range.
    fn last_batches(&self, groups: &[Vec<usize>]) -> Result<LastBatches, StorageError> {
        let mut last = LastBatches::default();
        for &i in groups.iter().flatten() {
            self.segs[i].for_each_header_from(self.segs[i].base_offset(), |h| {
                if h.has_producer_id() && !h.is_control() {
                    last.data.insert(h.producer_id.0, h.base_offset);
                }
                if h.has_producer_id() {
                    last.any.insert(h.producer_id.0, h.base_offset);
                }
            })?;
        }
        Ok(last)
    }

    /// Step 3a: the group's segments filtered into `<base>.cleaned`,
    /// fsynced. `None` (the file removed) when there is nothing to gain: a
    /// single segment left unchanged, or nothing left to install.
    fn rewrite_group(
        &mut self,
        g: &[usize],
        rewrite: &mut Rewrite<'_>,
        throttle: &mut Throttle,
    ) -> Result<Option<PathBuf>, StorageError> {
        let fs = self.fs.clone();
        let base = self.segs[g[0]].base_offset();
        let cleaned = swap::cleaned_path(&self.dir, base);
        let out = fs
            .open(&cleaned, &OpenOptions::create_truncate())
            .ctx("create cleaned segment", &cleaned)?;
        let mut pos = 0u64;
        let mut changed = false;
        for (k, &i) in g.iter().enumerate() {
            // The segment's last batch is kept (possibly empty) in the
            // group's last segment: know where it is.
            let mut last_pos = None;
            swap::for_each_batch(&*fs, &self.segs[i].log_path(), |p, _| {
                last_pos = Some(p);
                Ok(true)
            })?;
            let last_seg = k + 1 == g.len();
            let mut read = 0u64;
            let mut written = 0u64;
            let stats = &mut self.stats.filter;
            swap::for_each_batch(&*fs, &self.segs[i].log_path(), |p, b| {
                read += b.len() as u64;
                let last_of_group = last_seg && Some(p) == last_pos;
                let f = rewrite.filter(b, last_of_group, stats)?;
                let bytes: &[u8] = match &f {
                    Filtered::Unchanged => b,
                    Filtered::Dropped => {
                        changed = true;
                        return Ok(true);
                    }
                    Filtered::Rewritten(v) => {
                        changed = true;
                        v
                    }
                };
                write_all_at(&*out, bytes, pos)
                    .map_err(|(_, e)| StorageError::io("write cleaned segment", &cleaned, e))?;
                pos += bytes.len() as u64;
                written += bytes.len() as u64;
                Ok(true)
            })?;
            self.stats.bytes_read += read;
            self.stats.bytes_written += written;
            throttle.account(read + written);
        }
        if (!changed && g.len() == 1) || pos == 0 {
            drop(out);
            fs.remove_file(&cleaned)
                .ctx("remove cleaned segment", &cleaned)?;
            return Ok(None);
        }
        out.sync_data().ctx("fsync cleaned segment", &cleaned)?;
        Ok(Some(cleaned))
    }

    /// Step 3b: the swap protocol for one group: its transaction index
    /// written, `.cleaned` renamed to `.swap` (the directory fsynced), then
    /// the log's segments replaced. `Changed`: retention or truncation
    /// changed the segments meanwhile, and the swap file is removed;
    /// `Stopped`: the hook stopped the pass.
    fn install_group(
        &self,
        g: &[usize],
        cleaned: &Path,
        stop: &mut dyn FnMut(SwapStep) -> bool,
    ) -> Result<ReplaceOutcome, StorageError> {
        let (fs, dir) = (&*self.fs, &self.dir);
        let base = self.segs[g[0]].base_offset();
        let txn_cleaned = write_group_txn_index(fs, dir, base, g.iter().map(|&i| &self.segs[i]))?;
        if stop(SwapStep::CleanedWritten) {
            return Ok(ReplaceOutcome::Stopped);
        }
        if let Some(t) = txn_cleaned {
            let to = swap::txn_index_swap_path(dir, base);
            fs.rename(&t, &to)
                .ctx("rename cleaned transaction index to .swap", &t)?;
        }
        let swap_p = swap::swap_path(dir, base);
        fs.rename(cleaned, &swap_p)
            .ctx("rename cleaned segment to .swap", cleaned)?;
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
        if stop(SwapStep::SwapRenamed) {
            return Ok(ReplaceOutcome::Stopped);
        }
        let old: Vec<Arc<LogSegment>> = g.iter().map(|&i| self.segs[i].clone()).collect();
        let old_sizes: Vec<u64> = g.iter().map(|&i| self.sizes[i]).collect();
        let outcome = self.log.replace_segments(&old, &old_sizes, &swap_p, stop)?;
        if outcome == ReplaceOutcome::Changed {
            // Segments changed under us: the swap must not be installed.
            fs.remove_file(&swap_p)
                .ctx("remove stale swap file", &swap_p)?;
            fs.sync_dir(dir).ctx("fsync directory", dir)?;
        }
        Ok(outcome)
    }
}

/// Each producer's last batch in the rewritten range: of data (kept, empty
/// if need be, so its sequence state can be rebuilt from the log, as Kafka
/// keeps it), and of any kind, a marker included (never removed: the
/// producer state reloaded from the log needs it).
#[derive(Default)]
struct LastBatches {
    data: HashMap<i64, Offset>,
    any: HashMap<i64, Offset>,
}

/// What step 3 decides each batch by.
struct Rewrite<'m> {
    map: &'m OffsetMap,
    dirty_end: Offset,
    last: LastBatches,
    aborted: AbortedRanges,
    txns: TxnRetention,
    now: i64,
    retention: i64,
    budget: Arc<DecompressionBudget>,
}

impl Rewrite<'_> {
    /// One stored batch `b`, in offset order: a transaction's marker stays
    /// unless its transaction kept nothing, `delete.retention.ms` has
    /// passed and it is neither its producer's last batch nor the group's
    /// last (`last_of_group`); data batches keep their latest records
    /// (nothing of an aborted transaction below the dirty end), a
    /// producer's last one and the group's last kept even if empty.
    fn filter(
        &mut self,
        b: &[u8],
        last_of_group: bool,
        stats: &mut core::FilterStats,
    ) -> Result<Filtered, StorageError> {
        let h = BatchHeader::validate_stored(b)?;
        let expired = core::tombstones_expired(h.max_timestamp, self.now, self.retention);
        let producer = h.producer_id.0;
        if h.is_control() && h.is_transactional() && h.base_offset < self.dirty_end {
            let last = self.last.any.get(&producer) == Some(&h.base_offset);
            let empty_txn = !self.txns.end(producer);
            return Ok(if empty_txn && expired && !last && !last_of_group {
                stats.markers_dropped += 1;
                Filtered::Dropped
            } else {
                Filtered::Unchanged
            });
        }
        let keep_empty = last_of_group
            || (h.has_producer_id() && self.last.data.get(&producer) == Some(&h.base_offset));
        let keep = if h.base_offset < self.dirty_end && self.aborted.contains(&h) {
            Keep::Nothing
        } else {
            Keep::Latest
        };
        let mut reservation = self.budget.reservation();
        let f = filter_batch(
            b,
            self.map,
            self.dirty_end,
            expired,
            keep_empty,
            keep,
            stats,
            &mut reservation,
        )?;
        if h.is_transactional() && !h.is_control() {
            self.txns.saw(producer, !matches!(f, Filtered::Dropped));
        }
        Ok(f)
    }
}

/// The transactions a rewrite is inside of, in offset order: whether any
/// batch of each producer's open transaction stays in the log. A marker
/// whose transaction kept nothing can go once past `delete.retention.ms`
/// (Kafka's `CleanedTransactionMetadata`).
#[derive(Default)]
struct TxnRetention(HashMap<i64, bool>);

impl TxnRetention {
    /// A transactional data batch of `producer`; `kept`: it stays (even
    /// as an empty batch).
    fn saw(&mut self, producer: i64, kept: bool) {
        *self.0.entry(producer).or_insert(false) |= kept;
    }

    /// `producer`'s marker: whether its transaction kept anything. A
    /// marker whose transaction began before the rewritten range (its data
    /// gone with the log start) kept nothing here.
    fn end(&mut self, producer: i64) -> bool {
        self.0.remove(&producer).unwrap_or(false)
    }
}

/// The aborted transactions of a range, by producer: whether a stored
/// transactional batch belongs to one (its producer aborted a transaction
/// spanning its offset).
struct AbortedRanges(HashMap<i64, Vec<(Offset, Offset)>>);

impl AbortedRanges {
    fn of(log: &Log, from: Offset, to: Offset) -> Result<Self, StorageError> {
        let mut by = HashMap::new();
        if from < to {
            for t in log.collect_aborted_transactions(from, to)? {
                by.entry(t.producer_id.0)
                    .or_insert_with(Vec::new)
                    .push((t.first_offset, t.last_offset));
            }
        }
        Ok(AbortedRanges(by))
    }

    fn contains(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.0.get(&h.producer_id.0).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|(first, last)| h.base_offset >= *first && h.base_offset < *last)
            })
    }
}

/// Step 1 for the transaction index: the group's indexes, one after the
/// other, copied to `<base>.txnindex.cleaned` and fsynced. `None` when no
/// segment of the group has an entry.
fn write_group_txn_index<'a>(
    fs: &dyn Fs,
    dir: &Path,
    base: Offset,
    group: impl Iterator<Item = &'a Arc<LogSegment>>,
) -> Result<Option<PathBuf>, StorageError> {
    let sources: Vec<&Arc<LogSegment>> = group.filter(|s| !s.txn_index().is_empty()).collect();
    if sources.is_empty() {
        return Ok(None);
    }
    let path = swap::txn_index_cleaned_path(dir, base);
    let out = fs
        .open(&path, &OpenOptions::create_truncate())
        .ctx("create cleaned transaction index", &path)?;
    let mut pos = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    let mut failed = None;
    let flush = |buf: &mut Vec<u8>, pos: &mut u64| -> Result<(), StorageError> {
        write_all_at(&*out, buf, *pos)
            .map_err(|(_, e)| StorageError::io("write cleaned transaction index", &path, e))?;
        *pos += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    for s in sources {
        // Checked as read, copied a bounded chunk at a time.
        s.txn_index().for_each_entry(|t| {
            buf.extend_from_slice(&t.encode());
            if buf.len() >= 64 << 10 {
                if let Err(e) = flush(&mut buf, &mut pos) {
                    failed = Some(e);
                    return false;
                }
            }
            true
        })?;
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    flush(&mut buf, &mut pos)?;
    out.sync_data()
        .ctx("fsync cleaned transaction index", &path)?;
    Ok(Some(path))
}
