//! The log cleaner: compaction for `cleanup.policy=compact` (and
//! `compact,delete`), modelled on Kafka's `LogCleaner`.
//!
//! * [`core`] — pure: the key -> latest offset map with its memory budget
//!   (`log.cleaner.dedupe.buffer.size`) and the per-batch filter.
//! * [`swap`] — the `.cleaned` / `.swap` / `.deleted` protocol and the
//!   recovery that completes an interrupted swap when a log is loaded.
//! * [`clean_log`] — one cleaning pass over one log; [`LogCleaner`] picks
//!   the dirtiest eligible log of a [`LogManager`] and keeps the
//!   `cleaner-offset-checkpoint` file of each log dir.
//!
//! A pass over a log, as in Kafka:
//!
//! 1. The cleanable range is the inactive segments (never the active one)
//!    up to the first segment with a record newer than
//!    `min.compaction.lag.ms`.
//! 2. The offset map is built from the dirty part (from the cleaner
//!    checkpoint to the end of the cleanable range). When the budget fills,
//!    the dirty range stops at the batch that did not fit.
//! 3. Every segment from the log start up to the end of the dirty range is
//!    rewritten in groups of consecutive segments whose total size fits in
//!    `segment.bytes` (small cleaned segments are merged). A record stays
//!    if it is the latest for its key, has no key, or lies beyond the dirty
//!    range. Offsets are preserved (gaps); batches keep base offset, offset
//!    range, producer id/epoch/base sequence, leader epoch, codec and
//!    timestamp type; control batches stay as they are; a batch whose
//!    records all stay is copied byte for byte.
//! 4. Transactions (KIP-98): the dirty range never reaches the log's first
//!    unstable offset (an open transaction, or one whose marker is not
//!    replicated yet, is not decided); records of aborted transactions
//!    (from the transaction index) never enter the offset map, so they
//!    cannot make a committed record look superseded; a rewritten
//!    transactional batch keeps its attributes; the cleaned segment's
//!    transaction index is its old segments' (the swap carries it). As
//!    Kafka: the records of aborted transactions are removed, and a marker
//!    goes once its transaction kept no batch and `delete.retention.ms`
//!    has passed since it was written (so a consumer that read the
//!    transaction's data has had time to read the marker). A producer's
//!    last batch stays (an aborted one as an empty batch) and so does its
//!    last marker, so the producer state reloaded from the log keeps its
//!    epochs and no transaction reopens.
//! 5. Tombstones are removed once `delete.retention.ms` has passed since the
//!    newest record of their batch (the batch's max timestamp). This is a
//!    per-batch delete horizon that needs no extra state; Kafka (KIP-534)
//!    stamps the horizon into the batch on the first pass instead.
//!
//! Cleaning reads and writes through the [`crate::Fs`] seam and is throttled to
//! `log.cleaner.io.max.bytes.per.second` (bytes read plus written).

pub mod core;
pub mod swap;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_record::{BatchHeader, Offset};

use crate::checkpoint::{self, Checkpoint};
use crate::config::TopicPartition;
use crate::error::{IoContext, StorageError};
use crate::fs::{write_all_at, OpenOptions};
use crate::log::Log;
use crate::manager::LogManager;
use crate::segment::LogSegment;

pub use self::core::{filter_batch, FilterStats, Filtered, Keep, OffsetMap};
pub use self::swap::SwapStep;

/// Name of the per-log-dir file holding each log's first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Broker-wide cleaner settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size` (134217728): memory budget of the
    /// offset map.
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second` (unlimited).
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_size: 134_217_728,
            io_max_bytes_per_second: f64::MAX,
        }
    }
}

/// What one pass over one log did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// First offset of the dirty range this pass indexed.
    pub first_dirty: Offset,
    /// End (exclusive) of the dirty range: the next pass starts here.
    pub dirty_end: Offset,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes of the dirty range (what the throughput figure counts).
    pub dirty_bytes: u64,
    pub filter: FilterStats,
    /// Keys in the offset map.
    pub map_keys: usize,
}

/// Rate limiter for cleaner I/O (bytes per second, real time).
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    start: Instant,
    bytes: f64,
}

impl Throttle {
    pub fn new(bytes_per_second: f64) -> Self {
        Throttle {
            rate: bytes_per_second,
            start: Instant::now(),
            bytes: 0.0,
        }
    }
    /// Records `n` bytes of I/O and sleeps while ahead of the rate.
    pub fn account(&mut self, n: u64) {
        if !(self.rate.is_finite() && self.rate > 0.0) || self.rate >= f64::MAX {
            return;
        }
        self.bytes += n as f64;
        let due = Duration::from_secs_f64(self.bytes / self.rate);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        if elapsed > Duration::from_secs(1) {
            // Forget old history so an idle period does not buy a burst.
            self.start = Instant::now();
            self.bytes = 0.0;
        }
    }
}

/// Segments eligible for cleaning: all but the active one, up to the first
/// whose newest record is younger than `min.compaction.lag.ms`.
fn cleanable_segments(log: &Log, now: i64) -> Result<Vec<Arc<LogSegment>>, StorageError> {
    let lag = log.config().compaction.min_compaction_lag_ms;
    let mut segs = log.segments();
    segs.pop(); // the active segment
    let mut out = Vec::new();
    for s in segs {
        if lag > 0 {
            if let Some(m) = s.max_timestamp()? {
                if now.saturating_sub(m.timestamp.0) < lag {
                    break;
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Bytes of the cleanable range at or after `first_dirty`, and of all of it
/// (for `min.cleanable.dirty.ratio`).
pub fn dirty_and_total_bytes(
    log: &Log,
    first_dirty: Offset,
    now: i64,
) -> Result<(u64, u64), StorageError> {
    let segs = cleanable_segments(log, now)?;
    let mut dirty = 0;
    let mut total = 0;
    for (i, s) in segs.iter().enumerate() {
        total += s.size();
        let end = segs
            .get(i + 1)
            .map(|n| n.base_offset())
            .unwrap_or_else(|| s.next_offset());
        if end > first_dirty {
            dirty += s.size();
        }
    }
    Ok((dirty, total))
}

/// One cleaning pass over `log`, indexing from `first_dirty`. Returns
/// `None` when there was nothing to clean (or a concurrent retention /
/// truncation changed the segments; the next pass retries).
pub fn clean_log(
    log: &Log,
    first_dirty: Offset,
    config: &CleanerConfig,
    throttle: &mut Throttle,
) -> Result<Option<CleanStats>, StorageError> {
    clean_log_with(log, first_dirty, config, throttle, &mut |_| false)
}

/// [`clean_log`] with a hook called after each step of each swap; when it
/// returns true the pass stops right there (crash tests).
pub(crate) fn clean_log_with(
    log: &Log,
    first_dirty: Offset,
    config: &CleanerConfig,
    throttle: &mut Throttle,
    stop: &mut dyn FnMut(SwapStep) -> bool,
) -> Result<Option<CleanStats>, StorageError> {
    let fs = log.fs();
    let budget = log.decompression_budget();
    let now = log.now_ms();
    let log_config = log.config();
    let retention = log_config.compaction.delete_retention_ms;
    let segs = cleanable_segments(log, now)?;
    if segs.is_empty() {
        return Ok(None);
    }
    let first_dirty = first_dirty.max(log.log_start_offset());
    let sizes: Vec<u64> = segs.iter().map(|s| s.size()).collect();
    let ends: Vec<Offset> = {
        let all = log.segment_base_offsets();
        segs.iter()
            .map(|s| {
                all.iter()
                    .copied()
                    .find(|b| *b > s.base_offset())
                    .unwrap_or_else(|| s.next_offset())
            })
            .collect()
    };
    let mut stats = CleanStats {
        first_dirty,
        segments_before: segs.len(),
        ..Default::default()
    };

    // 1. The offset map over the dirty range, which stops at the first
    //    unstable offset; aborted transactions' records stay out of it.
    let mut map = OffsetMap::new(config.dedupe_buffer_size);
    let unstable = log.first_unstable_offset().unwrap_or(Offset(i64::MAX));
    let mut dirty_end = (*ends.last().expect("non-empty")).min(unstable);
    let aborted = AbortedRanges::of(log, first_dirty, dirty_end)?;
    'segments: for (i, s) in segs.iter().enumerate() {
        if s.base_offset() >= dirty_end {
            break;
        }
        if ends[i] <= first_dirty {
            continue;
        }
        let mut full_at = None;
        let mut read = 0u64;
        swap::for_each_batch(&*fs, &s.log_path(), |_, b| {
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
        stats.bytes_read += read;
        stats.dirty_bytes += read;
        throttle.account(read);
        if let Some(at) = full_at {
            dirty_end = at.max(first_dirty);
            break 'segments;
        }
    }
    stats.dirty_end = dirty_end;
    stats.map_keys = map.len();
    if dirty_end <= first_dirty {
        return Ok(None);
    }

    // 2. Groups of segments to rewrite: from the log start to the segment
    //    holding the end of the dirty range.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_bytes = 0u64;
    for (i, s) in segs.iter().enumerate() {
        if s.base_offset() >= dirty_end {
            break;
        }
        let fits = groups.last().is_some_and(|g| {
            let base = segs[g[0]].base_offset();
            group_bytes + sizes[i] <= log_config.segment_bytes
                && ends[i].0 - base.0 <= i64::from(i32::MAX)
        });
        if fits {
            groups.last_mut().expect("non-empty").push(i);
            group_bytes += sizes[i];
        } else {
            groups.push(vec![i]);
            group_bytes = sizes[i];
        }
    }

    // The last batch of each idempotent producer in the rewritten range is
    // kept (empty if need be), as Kafka does, so its sequence state can be
    // rebuilt from the log.
    // A producer's last batch of any kind (a marker included) is never
    // removed either: the producer state reloaded from the log needs it.
    let mut producer_last: HashMap<i64, Offset> = HashMap::new();
    let mut producer_last_any: HashMap<i64, Offset> = HashMap::new();
    for g in &groups {
        for &i in g {
            segs[i].for_each_header_from(segs[i].base_offset(), |h| {
                if h.has_producer_id() && !h.is_control() {
                    producer_last.insert(h.producer_id.0, h.base_offset);
                }
                if h.has_producer_id() {
                    producer_last_any.insert(h.producer_id.0, h.base_offset);
                }
            })?;
        }
    }
    // Aborted transactions over everything rewritten (from the log start),
    // and the transactions seen so far, in offset order: producer ->
    // whether any batch of its open transaction was kept.
    let aborted_rewrite = AbortedRanges::of(log, log.log_start_offset(), dirty_end)?;
    let mut txns = TxnRetention::default();

    // 3. Rewrite and swap each group.
    let dir = log.dir().to_path_buf();
    let mut after = segs.len();
    for g in groups {
        let base = segs[g[0]].base_offset();
        let cleaned = swap::cleaned_path(&dir, base);
        let out = fs
            .open(&cleaned, &OpenOptions::create_truncate())
            .ctx("create cleaned segment", &cleaned)?;
        let mut pos = 0u64;
        let mut changed = false;
        for (k, &i) in g.iter().enumerate() {
            let last_seg = k + 1 == g.len();
            // Know the last batch position to keep it (possibly empty).
            let mut last_pos = None;
            swap::for_each_batch(&*fs, &segs[i].log_path(), |p, _| {
                last_pos = Some(p);
                Ok(true)
            })?;
            let mut read = 0u64;
            let mut written = 0u64;
            swap::for_each_batch(&*fs, &segs[i].log_path(), |p, b| {
                let h = BatchHeader::validate_stored(b)?;
                read += b.len() as u64;
                let expired = core::tombstones_expired(h.max_timestamp, now, retention);
                let keep_empty = (last_seg && Some(p) == last_pos)
                    || (h.has_producer_id()
                        && producer_last.get(&h.producer_id.0) == Some(&h.base_offset));
                let f = if h.is_control() && h.is_transactional() && h.base_offset < dirty_end {
                    let last = producer_last_any.get(&h.producer_id.0) == Some(&h.base_offset);
                    let empty_txn = !txns.end(h.producer_id.0);
                    if empty_txn && expired && !last && !(last_seg && Some(p) == last_pos) {
                        stats.filter.markers_dropped += 1;
                        Filtered::Dropped
                    } else {
                        Filtered::Unchanged
                    }
                } else {
                    let keep = if h.base_offset < dirty_end && aborted_rewrite.contains(&h) {
                        Keep::Nothing
                    } else {
                        Keep::Latest
                    };
                    let mut reservation = budget.reservation();
                    let f = filter_batch(
                        b,
                        &map,
                        dirty_end,
                        expired,
                        keep_empty,
                        keep,
                        &mut stats.filter,
                        &mut reservation,
                    )?;
                    if h.is_transactional() && !h.is_control() {
                        txns.saw(h.producer_id.0, !matches!(f, Filtered::Dropped));
                    }
                    f
                };
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
            stats.bytes_read += read;
            stats.bytes_written += written;
            throttle.account(read + written);
        }
        if (!changed && g.len() == 1) || pos == 0 {
            // Nothing to gain (or nothing to install): keep the old files.
            drop(out);
            fs.remove_file(&cleaned)
                .ctx("remove cleaned segment", &cleaned)?;
            continue;
        }
        out.sync_data().ctx("fsync cleaned segment", &cleaned)?;
        drop(out);
        let txn_cleaned = write_group_txn_index(&*fs, &dir, base, g.iter().map(|&i| &segs[i]))?;
        if stop(SwapStep::CleanedWritten) {
            return Ok(None);
        }
        if let Some(t) = txn_cleaned {
            let to = swap::txn_index_swap_path(&dir, base);
            fs.rename(&t, &to)
                .ctx("rename cleaned transaction index to .swap", &t)?;
        }
        let swap_p = swap::swap_path(&dir, base);
        fs.rename(&cleaned, &swap_p)
            .ctx("rename cleaned segment to .swap", &cleaned)?;
        fs.sync_dir(&dir).ctx("fsync directory", &dir)?;
        if stop(SwapStep::SwapRenamed) {
            return Ok(None);
        }
        let old: Vec<Arc<LogSegment>> = g.iter().map(|&i| segs[i].clone()).collect();
        let old_sizes: Vec<u64> = g.iter().map(|&i| sizes[i]).collect();
        match log.replace_segments(&old, &old_sizes, &swap_p, stop)? {
            ReplaceOutcome::Replaced => after -= g.len() - 1,
            ReplaceOutcome::Stopped => return Ok(None),
            ReplaceOutcome::Changed => {
                // Segments changed under us: the swap must not be installed.
                fs.remove_file(&swap_p)
                    .ctx("remove stale swap file", &swap_p)?;
                fs.sync_dir(&dir).ctx("fsync directory", &dir)?;
                return Ok(None);
            }
        }
    }
    stats.segments_after = after;
    Ok(Some(stats))
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
    fs: &dyn crate::fs::Fs,
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

/// Result of [`Log::replace_segments`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplaceOutcome {
    Replaced,
    /// The old segments are gone or changed; nothing was done.
    Changed,
    /// The stop hook asked to stop mid-swap (tests).
    Stopped,
}

/// Picks the dirtiest eligible compacted log and cleans it; keeps the
/// `cleaner-offset-checkpoint` of each log dir.
#[derive(Debug)]
pub struct LogCleaner {
    /// Changed between runs by [`LogCleaner::reconfigure`] (dynamic broker configs).
    config: Mutex<CleanerConfig>,
    throttle: Mutex<Throttle>,
    /// First dirty offset per log, loaded from the checkpoint files lazily.
    checkpoints: Mutex<HashMap<PathBuf, Checkpoint>>,
}

impl LogCleaner {
    pub fn new(config: CleanerConfig) -> Self {
        LogCleaner {
            throttle: Mutex::new(Throttle::new(config.io_max_bytes_per_second)),
            config: Mutex::new(config),
            checkpoints: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> CleanerConfig {
        self.config.lock().clone()
    }

    /// New settings for the next cleaning (a run in progress keeps its own);
    /// a new I/O rate starts a new throttle window. A no-op when unchanged.
    pub fn reconfigure(&self, config: CleanerConfig) {
        let mut current = self.config.lock();
        if *current == config {
            return;
        }
        *self.throttle.lock() = Throttle::new(config.io_max_bytes_per_second);
        *current = config;
    }

    fn log_dir_of(log: &Log) -> PathBuf {
        log.dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The checkpointed first dirty offset of a log (its log start offset
    /// if it was never cleaned).
    pub fn first_dirty_offset(&self, log: &Log) -> Result<Offset, StorageError> {
        let dir = Self::log_dir_of(log);
        let mut cps = self.checkpoints.lock();
        if !cps.contains_key(&dir) {
            let cp = checkpoint::read(&*log.fs(), &dir, CLEANER_OFFSET_CHECKPOINT)?;
            cps.insert(dir.clone(), cp);
        }
        let cp = &cps[&dir];
        let o = cp
            .get(log.topic_partition())
            .copied()
            .unwrap_or(Offset::ZERO);
        if o > log.log_end_offset() {
            // A stale entry (the log was deleted and re-created): start over.
            return Ok(log.log_start_offset());
        }
        Ok(o.max(log.log_start_offset()))
    }

    fn record(&self, log: &Log, dirty_end: Offset) -> Result<(), StorageError> {
        let dir = Self::log_dir_of(log);
        let mut cps = self.checkpoints.lock();
        let cp = cps.entry(dir.clone()).or_default();
        cp.insert(log.topic_partition().clone(), dirty_end);
        checkpoint::write(&*log.fs(), &dir, CLEANER_OFFSET_CHECKPOINT, cp)
    }

    /// Cleans `log` once now, whatever its dirty ratio (tests, tools,
    /// "force cleaning").
    pub fn clean_now(&self, log: &Log) -> Result<Option<CleanStats>, StorageError> {
        let first = self.first_dirty_offset(log)?;
        let stats = clean_log(log, first, &self.config(), &mut self.throttle.lock())?;
        if let Some(s) = &stats {
            self.record(log, s.dirty_end)?;
        }
        Ok(stats)
    }

    /// Kafka's choice: among logs whose policy includes compact, those whose
    /// dirty ratio is at least `min.cleanable.dirty.ratio` or whose oldest
    /// dirty record is older than `max.compaction.lag.ms`, the one with the
    /// highest ratio is cleaned. Returns which log and what was done.
    pub fn run_once(
        &self,
        manager: &LogManager,
    ) -> Result<Option<(TopicPartition, CleanStats)>, StorageError> {
        let mut best: Option<(f64, Arc<Log>)> = None;
        for log in manager.all_logs() {
            let cfg = log.config().compaction;
            if !cfg.cleanup_policy.compact() {
                continue;
            }
            let now = log.now_ms();
            let first = self.first_dirty_offset(&log)?;
            let (dirty, total) = dirty_and_total_bytes(&log, first, now)?;
            if dirty == 0 || total == 0 {
                continue;
            }
            let ratio = dirty as f64 / total as f64;
            let overdue = cfg.max_compaction_lag_ms < i64::MAX
                && log.segments().iter().any(|s| {
                    s.next_offset() > first
                        && s.max_timestamp().ok().flatten().is_some_and(|m| {
                            now.saturating_sub(m.timestamp.0) > cfg.max_compaction_lag_ms
                        })
                });
            if ratio < cfg.min_cleanable_dirty_ratio && !overdue {
                continue;
            }
            let score = if overdue { f64::MAX } else { ratio };
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, log));
            }
        }
        let Some((_, log)) = best else {
            return Ok(None);
        };
        Ok(self
            .clean_now(&log)?
            .map(|s| (log.topic_partition().clone(), s)))
    }
}

impl LogManager {
    /// One run of the log cleaner (see [`LogCleaner::run_once`]).
    pub fn run_cleaner_once(
        &self,
        cleaner: &LogCleaner,
    ) -> Result<Option<(TopicPartition, CleanStats)>, StorageError> {
        cleaner.run_once(self)
    }
}
