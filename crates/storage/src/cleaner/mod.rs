//! The log cleaner: compaction for `cleanup.policy=compact` (and
//! `compact,delete`), modelled on Kafka's `LogCleaner`.
//!
//! * [`core`] — pure: the key -> latest offset map with its memory budget
//!   (`log.cleaner.dedupe.buffer.size`) and the per-batch filter.
//! * [`swap`] — the `.cleaned` / `.swap` / `.deleted` protocol and the
//!   recovery that completes an interrupted swap when a log is loaded.
//! * `pass` — the steps of one cleaning pass over one log ([`clean_log`]).
//! * [`LogCleaner`] picks the dirtiest eligible log of a [`LogManager`] and
//!   keeps the `cleaner-offset-checkpoint` file of each log dir.
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
mod pass;
pub mod swap;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_record::Offset;

use crate::checkpoint::{self, Checkpoint};
use crate::config::TopicPartition;
use crate::error::StorageError;
use crate::log::Log;
use crate::manager::LogManager;
use crate::segment::LogSegment;

pub use self::core::{filter_batch, FilterStats, Filtered, Keep, OffsetMap};
pub(crate) use self::pass::clean_log_with;
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
