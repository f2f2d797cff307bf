//! `Log`: one partition's ordered list of segments (Kafka's `UnifiedLog`
//! and `LocalLog` in one type, since Sluice has no tiered storage).
//!
//! The state and its accessors live here; each kind of operation has a
//! file of its own, all on the same `Log`:
//! - `load.rs`: loading and recovery (Kafka's `LogLoader`);
//! - `append.rs`: appends as leader (validate, assign offsets and leader
//!   epochs, one write), rolls and the producer snapshot a roll takes;
//! - `follower.rs`: appends as follower (the leader's batches as they are),
//!   the leader-epoch cache's accessors, `truncate_fully_and_start_at`;
//! - `flush.rs`: group-commit flushing and the recovery point;
//! - `read.rs`: file slices for fetches, lookups by timestamp;
//! - `retention.rs`: retention, `delete_records_before`, `truncate_to`;
//! - `snapshots.rs`: producer-state snapshot files;
//! - `txn.rs`: transactions: markers, the aborted-transaction index, the
//!   first unstable offset;
//! - `dir_state.rs`: the health of a log directory, deferred file deletion.
//!
//! Locks: `state` (segments, offsets, producer state, leader-epoch cache)
//! is written by
//! appends, rolls, truncation and retention and read by reads; `flush_lock`
//! serializes flushes; `snapshot_lock` orders a roll's snapshot write
//! against truncation. The log end, log start and recovery point are also
//! mirrored in atomics for lock-free readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sluice_record::batch::{set_base_offset, set_log_append_time, set_partition_leader_epoch};
use sluice_record::{BatchHeader, LeaderEpoch, Offset, ProducerId, Timestamp, TimestampType};

use crate::budget::{DecompressionBudget, Reservation};
use crate::checkpoint::{self, Checkpoint, RECOVERY_POINT_CHECKPOINT};
use crate::cleaner::CLEANER_OFFSET_CHECKPOINT;
use crate::config::{LogConfig, TopicPartition};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, write_all_at, Clock, Fs, OpenOptions};
use crate::producer_state::txn::Prepared;
pub use crate::producer_state::AppendOrigin;
use crate::producer_state::{
    decode_snapshot, encode_snapshot, parse_snapshot_file_name, snapshot_file_name,
    ProducerStateConfig, ProducerStateEntry, ProducerStateManager, Verification,
};
use crate::segment::{
    parse_log_file_name, FileSlice, HandleCache, LogSegment, SegmentConfig, DELETED_FILE_SUFFIX,
    INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::segment::{Gaps, OffsetRules};
use crate::txn_index::TXN_INDEX_FILE_SUFFIX;
use crate::validate::{
    check_batches, recompress_batches, validate_batches, validate_headers, Framing,
};

mod append;
mod dir_state;
mod flush;
mod follower;
mod load;
mod read;
mod retention;
mod snapshots;
mod txn;

pub use dir_state::{FileDeleter, LogDirState};
use load::load_producer_state;
use snapshots::{
    list_snapshots, read_snapshot, remove_snapshots_after, write_snapshot, write_snapshot_bytes,
};
use txn::producer_batches;
pub use txn::TxnMarker;

/// What a log needs from its surroundings.
#[derive(Clone)]
pub struct LogEnv {
    pub fs: Arc<dyn Fs>,
    pub clock: Arc<dyn Clock>,
    pub dir_state: Arc<LogDirState>,
    pub cache: Arc<HandleCache>,
    pub deleter: Arc<FileDeleter>,
    /// Segments recovered between two progress log lines.
    pub recovery_progress_every: usize,
    /// Idempotent producer state settings (`producer_id_expiration_ms`
    /// here is the start value; the one in force is
    /// [`LogEnv::producer_id_expiration_ms`]).
    pub producer_state: ProducerStateConfig,
    /// `producer.id.expiration.ms` in force, shared by every log of the
    /// manager and changed by `LogManager::set_producer_id_expiration_ms`.
    pub producer_id_expiration_ms: Arc<std::sync::atomic::AtomicI64>,
    /// The broker-wide decompression budget every decoding draws on.
    pub decompression: Arc<DecompressionBudget>,
}

impl LogEnv {
    /// The producer state settings in force now.
    pub fn producer_state_config(&self) -> ProducerStateConfig {
        ProducerStateConfig {
            producer_id_expiration_ms: self
                .producer_id_expiration_ms
                .load(std::sync::atomic::Ordering::Relaxed),
            ..self.producer_state
        }
    }
}

/// What the last shutdown left behind for this log.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    pub had_clean_shutdown: bool,
    pub recovery_point: Option<Offset>,
    pub log_start_offset: Option<Offset>,
}

/// Result of one append call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The stamped time for LogAppendTime topics, `Timestamp::NONE` otherwise.
    pub log_append_time: Timestamp,
    pub log_start_offset: Offset,
    pub record_count: i64,
    pub bytes: usize,
    /// The `flush.messages` policy asks for `flush_until(last_offset)` before
    /// acknowledging.
    pub needs_flush: bool,
    /// The call was an exact retry of a batch already in the log (same
    /// producer id, epoch and sequences): nothing was written, and
    /// `first_offset`/`last_offset` are those of the original batch. Kafka
    /// answers it with error NONE and the original base offset.
    pub duplicate: bool,
}

struct LogState {
    segments: BTreeMap<i64, Arc<LogSegment>>,
    log_start_offset: Offset,
    log_end_offset: Offset,
    producers: ProducerStateManager,
    /// Leader epoch -> first offset (`leader-epoch-checkpoint`).
    epochs: LeaderEpochCache,
}

impl LogState {
    fn active(&self) -> &Arc<LogSegment> {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }
}

pub struct Log {
    tp: TopicPartition,
    dir: PathBuf,
    env: LogEnv,
    config: RwLock<Arc<LogConfig>>,
    state: RwLock<LogState>,
    flush_lock: Mutex<()>,
    /// Serializes writing producer snapshots taken at a roll (written after
    /// the state lock is released) with truncation, which removes them.
    snapshot_lock: Mutex<()>,
    /// Bumped by every truncation: a roll's snapshot taken before one is
    /// stale and not written.
    truncations: std::sync::atomic::AtomicU64,
    recovery_point: AtomicI64,
    log_end: AtomicI64,
    log_start: AtomicI64,
    last_flush_ms: AtomicI64,
    dir_dirty: AtomicBool,
    deleted: AtomicBool,
    /// The producer state's first unstable offset (`i64::MAX`: none).
    first_unstable: AtomicI64,
    /// The smallest marker of the completed transactions waiting for the
    /// high watermark (`i64::MAX`: none).
    unreplicated_min: AtomicI64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("tp", &self.tp)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .finish()
    }
}

fn seg_config(c: &LogConfig) -> SegmentConfig {
    SegmentConfig {
        index_max_bytes: c.segment_index_bytes,
        index_interval_bytes: c.index_interval_bytes,
    }
}

impl Log {
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        (**self.config.read()).clone()
    }

    /// New settings apply to later appends, rolls and retention runs; index
    /// sizes apply to segments created afterwards.
    pub fn update_config(&self, config: LogConfig) {
        *self.config.write() = Arc::new(config);
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start.load(Ordering::Acquire))
    }

    pub fn log_end_offset(&self) -> Offset {
        Offset(self.log_end.load(Ordering::Acquire))
    }

    /// Everything below this offset is known to be on disk.
    pub fn recovery_point(&self) -> Offset {
        Offset(self.recovery_point.load(Ordering::Acquire))
    }

    pub fn size_in_bytes(&self) -> u64 {
        self.state.read().segments.values().map(|s| s.size()).sum()
    }

    pub fn num_segments(&self) -> usize {
        self.state.read().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.state
            .read()
            .segments
            .keys()
            .map(|b| Offset(*b))
            .collect()
    }

    /// The segments, oldest first (tests and tools).
    pub fn segments(&self) -> Vec<Arc<LogSegment>> {
        self.state.read().segments.values().cloned().collect()
    }

    /// The broker-wide decompression budget this log's decodings draw on.
    pub fn decompression_budget(&self) -> Arc<DecompressionBudget> {
        self.env.decompression.clone()
    }

    pub(crate) fn fs(&self) -> Arc<dyn Fs> {
        self.env.fs.clone()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.env.clock.now_ms()
    }

    /// Log cleaner: installs the durable `<base>.log.swap` in place of the
    /// segments `old` (consecutive, inactive, first one at `base`), unless
    /// they changed since the cleaner read them (sizes `old_sizes`). Steps 3
    /// and 4 of the swap protocol in [`crate::cleaner::swap`]; `stop` is
    /// asked after each step (crash tests).
    pub(crate) fn replace_segments(
        &self,
        old: &[Arc<LogSegment>],
        old_sizes: &[u64],
        swap: &Path,
        stop: &mut dyn FnMut(crate::cleaner::SwapStep) -> bool,
    ) -> Result<crate::cleaner::ReplaceOutcome, StorageError> {
        use crate::cleaner::{ReplaceOutcome, SwapStep};
        self.check()?;
        let config = self.config.read().clone();
        let mut st = self.state.write();
        self.check()?;
        let active_base = st.active().base_offset();
        let unchanged = !old.is_empty()
            && old.iter().zip(old_sizes).all(|(s, size)| {
                s.base_offset() != active_base
                    && s.size() == *size
                    && st
                        .segments
                        .get(&s.base_offset().0)
                        .is_some_and(|c| Arc::ptr_eq(c, s))
            });
        if !unchanged {
            return Ok(ReplaceOutcome::Changed);
        }
        let base = old[0].base_offset();
        let fs = self.env.fs.clone();
        let result = (|| {
            let mut doomed = Vec::new();
            for (i, s) in old.iter().enumerate() {
                st.segments.remove(&s.base_offset().0);
                doomed.extend(s.rename_to_deleted()?);
                if stop(SwapStep::OldRenamed(i)) {
                    return Ok(ReplaceOutcome::Stopped);
                }
            }
            fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
            crate::cleaner::swap::install_txn_index(&*fs, &self.dir, base)?;
            let target = crate::cleaner::swap::log_path(&self.dir, base);
            fs.rename(swap, &target)
                .ctx("install cleaned segment", swap)?;
            fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
            let next = st
                .segments
                .range(base.0 + 1..)
                .next()
                .map(|(b, _)| Offset(*b));
            let now = self.env.clock.now_ms();
            let seg = LogSegment::load(
                fs.clone(),
                &self.dir,
                base,
                seg_config(&config),
                self.env.cache.clone(),
                next,
                now,
            )?;
            st.segments.insert(base.0, seg);
            self.env
                .deleter
                .schedule(doomed, now.saturating_add(config.file_delete_delay_ms), now);
            if stop(SwapStep::Installed) {
                return Ok(ReplaceOutcome::Stopped);
            }
            Ok(ReplaceOutcome::Replaced)
        })();
        if let Err(e) = &result {
            // The in-memory segment list no longer matches the disk.
            self.offline(e);
        }
        result
    }

    pub(crate) fn last_flush_ms(&self) -> i64 {
        self.last_flush_ms.load(Ordering::Acquire)
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(StorageError::LogDeleted(self.tp.clone()));
        }
        self.env.dir_state.check()
    }

    fn offline(&self, error: &StorageError) {
        self.env.dir_state.mark_offline(error.to_string());
    }

    /// Flushes and closes every segment (indexes trimmed). The log is
    /// unusable afterwards.
    pub(crate) fn close(&self) -> Result<(), StorageError> {
        if self.env.dir_state.is_offline() {
            return Ok(());
        }
        self.flush()?;
        let mut st = self.state.write();
        let leo = st.log_end_offset;
        // A missing snapshot only costs a replay of batch headers on load.
        if let Err(e) = write_snapshot(&*self.env.fs, &self.dir, &mut st.producers, leo) {
            tracing::warn!(log = %self.tp, error = %e, "cannot write producer state snapshot at shutdown");
        }
        for s in st.segments.values() {
            s.close()?;
        }
        self.deleted.store(true, Ordering::Release);
        Ok(())
    }

    /// Number of idempotent producers this partition tracks.
    pub fn num_producers(&self) -> usize {
        self.state.read().producers.len()
    }

    /// Approximate memory used by the producer state, in bytes.
    pub fn producer_state_memory_bytes(&self) -> usize {
        self.state.read().producers.memory_bytes()
    }

    /// The producer's state on this partition (tests and tools).
    pub fn producer_state(&self, producer_id: ProducerId) -> Option<ProducerStateEntry> {
        self.state.read().producers.last_entry(producer_id).cloned()
    }

    /// Every producer this partition tracks, ordered by producer id: one
    /// consistent copy taken under the state lock (Kafka's
    /// `UnifiedLog.activeProducers`, what DescribeProducers reports). On a
    /// follower it is the state rebuilt from the leader's batches.
    pub fn active_producers(&self) -> Result<Vec<ProducerStateEntry>, StorageError> {
        self.check()?;
        let mut out: Vec<ProducerStateEntry> =
            self.state.read().producers.producers().cloned().collect();
        out.sort_by_key(|e| e.producer_id);
        Ok(out)
    }

    /// Drops producers idle longer than `producer.id.expiration.ms`.
    /// Returns how many were removed.
    pub fn remove_expired_producers(&self) -> usize {
        let now = self.env.clock.now_ms();
        self.state.write().producers.remove_expired(
            now,
            self.env.producer_state_config().producer_id_expiration_ms,
        )
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        let st = self.state.read();
        for s in st.segments.values() {
            let _ = s.close();
        }
    }
}
