//! `Log`: one partition's ordered list of segments. Append (validate, assign
//! offsets, one write), read (file slices), roll, group-commit flush,
//! recovery on load, retention, `delete_records_before` and `truncate_to`.

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
use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, write_all_at, Clock, Fs, OpenOptions};
use crate::producer_state::{
    check_batch, decode_snapshot, encode_snapshot, parse_snapshot_file_name, snapshot_file_name,
    BatchMetadata, ProducerStateConfig, ProducerStateEntry, ProducerStateManager, SequenceCheck,
};
use crate::segment::{
    parse_log_file_name, FileSlice, HandleCache, LogSegment, SegmentConfig, DELETED_FILE_SUFFIX,
    INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::segment::{Gaps, OffsetRules};
use crate::validate::{
    check_batches, recompress_batches, validate_batches, validate_headers, Framing,
};

/// Health of one log directory, shared by every log in it. Once offline
/// (a failed fsync, a segment that could not be cut back after a failed
/// write) it stays offline until restart, and every operation on its logs
/// fails with [`StorageError::LogDirOffline`].
pub struct LogDirState {
    path: PathBuf,
    fs: Arc<dyn Fs>,
    offline: Mutex<Option<String>>,
    /// Fast path for `check` (set together with `offline`).
    is_offline: AtomicBool,
    /// What `recovery-point-offset-checkpoint` holds on disk.
    recovery_points: Mutex<Checkpoint>,
}

impl std::fmt::Debug for LogDirState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDirState")
            .field("path", &self.path)
            .field("offline", &*self.offline.lock())
            .finish()
    }
}

impl LogDirState {
    pub fn new(
        path: impl Into<PathBuf>,
        fs: Arc<dyn Fs>,
        recovery_points: Checkpoint,
    ) -> Arc<Self> {
        Arc::new(LogDirState {
            path: path.into(),
            fs,
            offline: Mutex::new(None),
            is_offline: AtomicBool::new(false),
            recovery_points: Mutex::new(recovery_points),
        })
    }
    /// Replaces the recovery-point checkpoint file with `entries`.
    pub fn write_recovery_points(&self, entries: Checkpoint) -> Result<(), StorageError> {
        let mut g = self.recovery_points.lock();
        self.write_checkpoint(&entries)?;
        *g = entries;
        Ok(())
    }
    /// After a truncation: the checkpointed recovery point of `tp` must not
    /// stay above the new log end, or recovery after a crash would trust
    /// bytes rewritten since. Rewrites the file at once when needed.
    pub fn lower_recovery_point(
        &self,
        tp: &TopicPartition,
        offset: Offset,
    ) -> Result<(), StorageError> {
        let mut g = self.recovery_points.lock();
        match g.get(tp) {
            Some(cur) if *cur > offset => {}
            _ => return Ok(()),
        }
        let mut next = g.clone();
        next.insert(tp.clone(), offset);
        self.write_checkpoint(&next)?;
        *g = next;
        Ok(())
    }
    /// Writes the recovery-point checkpoint, using the dir's metadata
    /// headroom on a full disk.
    fn write_checkpoint(&self, entries: &Checkpoint) -> Result<(), StorageError> {
        crate::headroom::retry_on_no_space(
            &*self.fs,
            &self.path,
            || checkpoint::write(&*self.fs, &self.path, RECOVERY_POINT_CHECKPOINT, entries),
            StorageError::is_no_space,
        )
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn offline_reason(&self) -> Option<String> {
        self.offline.lock().clone()
    }
    pub fn is_offline(&self) -> bool {
        self.is_offline.load(Ordering::Acquire)
    }
    pub fn mark_offline(&self, reason: String) {
        let mut g = self.offline.lock();
        if g.is_none() {
            tracing::error!(dir = %self.path.display(), %reason, "log directory going offline");
            *g = Some(reason);
            self.is_offline.store(true, Ordering::Release);
        }
    }
    pub fn check(&self) -> Result<(), StorageError> {
        if !self.is_offline() {
            return Ok(());
        }
        match &*self.offline.lock() {
            Some(reason) => Err(StorageError::LogDirOffline {
                dir: self.path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Files renamed to `*.deleted`, removed once `file.delete.delay.ms` has
/// passed (by [`crate::LogManager`]'s periodic calls; immediately when the
/// delay is `<= 0`; leftovers are removed when the log is next loaded).
pub struct FileDeleter {
    fs: Arc<dyn Fs>,
    pending: Mutex<Vec<(i64, PathBuf)>>,
}

impl FileDeleter {
    pub fn new(fs: Arc<dyn Fs>) -> Arc<Self> {
        Arc::new(FileDeleter {
            fs,
            pending: Mutex::new(Vec::new()),
        })
    }
    fn schedule(&self, paths: Vec<PathBuf>, due_ms: i64, now_ms: i64) {
        if due_ms <= now_ms {
            for p in paths {
                let _ = self.fs.remove_file(&p);
            }
        } else {
            self.pending
                .lock()
                .extend(paths.into_iter().map(|p| (due_ms, p)));
        }
    }
    /// Removes files whose delay has passed (all of them with `i64::MAX`).
    pub fn reap(&self, now_ms: i64) -> usize {
        let due: Vec<PathBuf> = {
            let mut g = self.pending.lock();
            let (due, keep): (Vec<_>, Vec<_>) = g.drain(..).partition(|(t, _)| *t <= now_ms);
            *g = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        let n = due.len();
        for p in due {
            if let Err(e) = self.fs.remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "could not remove deleted segment file");
            }
        }
        n
    }
    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }
}

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
    /// Loads the log in `dir` (creating it if needed), recovering it when the
    /// last shutdown was not clean.
    pub fn open(
        dir: PathBuf,
        tp: TopicPartition,
        config: LogConfig,
        env: LogEnv,
        opts: LoadOptions,
    ) -> Result<Arc<Log>, StorageError> {
        env.dir_state.check()?;
        let fs = env.fs.clone();
        let now = env.clock.now_ms();
        let scfg = seg_config(&config);
        let created = !fs.exists(&dir);
        fs.create_dir_all(&dir)
            .ctx("create partition directory", &dir)?;
        if created {
            if let Some(parent) = dir.parent() {
                fs.sync_dir(parent).ctx("fsync directory", parent)?;
            }
        }
        // An interrupted log cleaner swap is completed first (cleaner::swap).
        crate::cleaner::swap::complete_swaps(&*fs, &dir)?;
        // Leftovers: deleted segments, temp files, indexes without a log.
        let entries = fs.read_dir(&dir).ctx("list partition directory", &dir)?;
        let mut bases = Vec::new();
        for p in &entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(DELETED_FILE_SUFFIX)
                || name.ends_with(".tmp")
                || name.ends_with(".swap")
                || name.ends_with(".cleaned")
            {
                fs.remove_file(p).ctx("remove leftover file", p)?;
            } else if let Some(base) = parse_log_file_name(name) {
                bases.push(base);
            }
        }
        for p in &entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            for suffix in [INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
                if let Some(stem) = name.strip_suffix(suffix) {
                    let log = dir.join(format!("{stem}{LOG_FILE_SUFFIX}"));
                    if !fs.exists(&log) {
                        fs.remove_file(p).ctx("remove orphan index", p)?;
                    }
                }
            }
        }
        bases.sort();
        let mut segments = BTreeMap::new();
        for (i, base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            let seg =
                LogSegment::load(fs.clone(), &dir, *base, scfg, env.cache.clone(), next, now)?;
            segments.insert(base.0, seg);
        }

        let gaps = offset_gaps(&*fs, &dir, &tp, &config);
        let rules_for = |next_segment_base: Option<Offset>| OffsetRules {
            gaps,
            next_segment_base,
        };
        let mut recovered_any = false;
        if !segments.is_empty() && !opts.had_clean_shutdown {
            let rp = opts.recovery_point.unwrap_or(Offset::ZERO);
            let start_base = segments
                .range(..=rp.0)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(i64::MIN);
            let to_recover: Vec<Arc<LogSegment>> = segments
                .range(start_base..)
                .map(|(_, s)| s.clone())
                .collect();
            let total = to_recover.len();
            let last_base = segments.keys().next_back().copied();
            tracing::info!(log = %tp, segments = total, recovery_point = rp.0, "recovering log after unclean shutdown");
            let mut cut_after: Option<i64> = None;
            for (i, seg) in to_recover.iter().enumerate() {
                let is_last = Some(seg.base_offset().0) == last_base;
                let next_base = to_recover.get(i + 1).map(|s| s.base_offset());
                let r = seg.recover(!is_last, &rules_for(next_base))?;
                seg.flush()?;
                recovered_any = true;
                if env.recovery_progress_every > 0 && (i + 1) % env.recovery_progress_every == 0 {
                    tracing::info!(log = %tp, done = i + 1, total, "recovery progress");
                }
                // Segments are created at the log end offset, so a segment
                // that now ends before the next one starts lost its tail: the
                // later segments hold data past a hole and must go too.
                let hole = next_base.is_some_and(|nb| r.next_offset != nb);
                if r.truncated_bytes > 0 || hole {
                    tracing::warn!(log = %tp, segment = seg.base_offset().0, truncated = r.truncated_bytes, next_offset = r.next_offset.0, "truncated torn or corrupt tail");
                    if !is_last {
                        cut_after = Some(seg.base_offset().0);
                    }
                    break;
                }
            }
            if let Some(cut) = cut_after {
                let doomed: Vec<i64> = segments.range(cut + 1..).map(|(b, _)| *b).collect();
                for b in doomed {
                    let seg = segments.remove(&b).expect("listed");
                    tracing::warn!(log = %tp, segment = b, "deleting segment after the truncation point");
                    for p in seg.rename_to_deleted()? {
                        fs.remove_file(&p).ctx("remove segment", &p)?;
                    }
                }
                // The removals must be durable before the recovered log is
                // used: otherwise a second crash resurrects them.
                fs.sync_dir(&dir).ctx("fsync directory", &dir)?;
            }
        } else if let Some(last) = segments.values().next_back() {
            // After a clean shutdown Kafka trusts every segment. The active
            // one is validated anyway, as after a crash: it is small, its
            // pages are usually cached, and damage to it would otherwise be
            // served as it is (fetches are zero-copy: nothing checks a CRC
            // on the way out).
            let r = last.recover(false, &rules_for(None))?;
            if r.truncated_bytes > 0 {
                last.flush()?;
                tracing::warn!(log = %tp, segment = last.base_offset().0, truncated = r.truncated_bytes, next_offset = r.next_offset.0, "truncated a corrupt active segment after a clean shutdown");
            }
        }

        if segments.is_empty() {
            let base = opts
                .log_start_offset
                .unwrap_or(Offset::ZERO)
                .max(Offset::ZERO);
            let seg = LogSegment::create(fs.clone(), &dir, base, scfg, env.cache.clone(), now)?;
            segments.insert(base.0, seg);
            fs.sync_dir(&dir).ctx("fsync directory", &dir)?;
        } else {
            let last = segments.values().next_back().expect("non-empty").clone();
            // The last segment becomes active: indexes mapped at full size.
            last.make_active()?;
            last.load_tail_state()?;
        }
        let last = segments.values().next_back().expect("non-empty").clone();
        let first_base = Offset(*segments.keys().next().expect("non-empty"));
        let log_end = last.next_offset();
        let log_start = opts
            .log_start_offset
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        // Recovery may have cut below the checkpointed recovery point (a
        // corrupt batch it covered): a later crash must not trust the
        // offsets rewritten from there.
        env.dir_state.lower_recovery_point(&tp, log_end)?;
        let recovery_point = if opts.had_clean_shutdown || recovered_any {
            log_end
        } else {
            opts.recovery_point.unwrap_or(Offset::ZERO).min(log_end)
        };
        let producers = load_producer_state(
            &*fs,
            &dir,
            &segments,
            log_start,
            log_end,
            now,
            &env.producer_state_config(),
        )?;
        tracing::debug!(log = %tp, log_start = log_start.0, log_end = log_end.0, producers = producers.len(), "log loaded");
        Ok(Arc::new(Log {
            tp,
            dir,
            config: RwLock::new(Arc::new(config)),
            state: RwLock::new(LogState {
                segments,
                log_start_offset: log_start,
                log_end_offset: log_end,
                producers,
            }),
            flush_lock: Mutex::new(()),
            snapshot_lock: Mutex::new(()),
            truncations: std::sync::atomic::AtomicU64::new(0),
            recovery_point: AtomicI64::new(recovery_point.0),
            log_end: AtomicI64::new(log_end.0),
            log_start: AtomicI64::new(log_start.0),
            last_flush_ms: AtomicI64::new(now),
            dir_dirty: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            env,
        }))
    }

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

    /// Validates every batch of `records`, then assigns offsets (rewriting
    /// base offsets and leader epochs in place; LogAppendTime topics also get
    /// their max timestamp stamped and CRC recomputed) and appends them with
    /// one positional write. Nothing of a rejected call is written.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let headers = validate_batches(records, &config, now, &self.env.decompression)?;
        if let Some((mut converted, headers, _held)) =
            self.convert(records, &headers, &config, now)?
        {
            return self.append_validated(
                Payload::InPlace(&mut converted),
                headers,
                &config,
                now,
                leader_epoch,
            );
        }
        self.append_validated(
            Payload::InPlace(records),
            headers,
            &config,
            now,
            leader_epoch,
        )
    }

    /// [`Log::append_as_leader`] without touching `records`: the bytes are
    /// written from the caller's buffer, and only the first 16 bytes of each
    /// batch (base offset and leader epoch, outside the CRC) come from
    /// patched copies, in one vectored write. The produce path uses it to
    /// skip copying every request into a scratch buffer. LogAppendTime
    /// topics and batches the topic's compression.type converts are copied
    /// (they are rewritten under the CRC).
    pub fn append_as_leader_shared(
        &self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let headers = validate_batches(records, &config, now, &self.env.decompression)?;
        if let Some((mut converted, headers, _held)) =
            self.convert(records, &headers, &config, now)?
        {
            return self.append_validated(
                Payload::InPlace(&mut converted),
                headers,
                &config,
                now,
                leader_epoch,
            );
        }
        if config.message_timestamp_type == TimestampType::LogAppendTime {
            let mut owned = records.to_vec();
            return self.append_validated(
                Payload::InPlace(&mut owned),
                headers,
                &config,
                now,
                leader_epoch,
            );
        }
        let heads = Vec::with_capacity(headers.len());
        self.append_validated(
            Payload::Shared { records, heads },
            headers,
            &config,
            now,
            leader_epoch,
        )
    }

    /// [`Log::append_as_leader_shared`] for a caller that must not wait:
    /// `Ok(None)` (nothing written) when another thread holds the log's
    /// lock (a roll, a retention deletion, a cleaner swap, another append),
    /// when the batches would need converting first (a `compression.type`
    /// codec or LogAppendTime), when a batch is compressed (checking its
    /// records decompresses it), or when the append would roll the segment
    /// (file creation and a producer snapshot's fsyncs); the caller then
    /// appends from a thread that may block. The network threads use this for small produce requests.
    pub fn try_append_as_leader_shared(
        &self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        if config.compression.is_some()
            || config.message_timestamp_type == TimestampType::LogAppendTime
        {
            return Ok(None);
        }
        let now = self.env.clock.now_ms();
        let headers = validate_headers(records, &config)?;
        // Compressed records are checked by decompressing them: CPU that
        // may be large, so not on a network thread.
        if headers
            .iter()
            .any(|(_, h)| h.compression() != sluice_record::CompressionType::None)
        {
            return Ok(None);
        }
        check_batches(
            records,
            &headers,
            &config,
            now,
            &self.env.decompression,
            Framing::Check,
        )?;
        let Some(st) = self.state.try_write() else {
            return Ok(None);
        };
        let heads = Vec::with_capacity(headers.len());
        self.append_locked(
            st,
            Payload::Shared { records, heads },
            headers,
            &config,
            now,
            leader_epoch,
            Roll::Defer,
        )
    }

    /// The batches re-encoded in the topic's `compression.type` where it
    /// asks for it, with their headers (sizes, counts and keys checked
    /// again on what is stored) and the budget their bytes hold until
    /// written; `None` when every batch is stored as received.
    #[allow(clippy::type_complexity)]
    fn convert(
        &self,
        records: &[u8],
        headers: &[(usize, BatchHeader)],
        config: &LogConfig,
        now: i64,
    ) -> Result<Option<(Vec<u8>, Vec<(usize, BatchHeader)>, Reservation)>, StorageError> {
        let budget = &self.env.decompression;
        let Some((converted, held)) = recompress_batches(records, headers, config, budget)? else {
            return Ok(None);
        };
        let headers = validate_headers(&converted, config)?;
        check_batches(&converted, &headers, config, now, budget, Framing::Trusted)?;
        Ok(Some((converted, headers, held)))
    }

    /// The part of [`Log::append_as_leader`] after validation: offsets,
    /// producer state, the write.
    fn append_validated(
        &self,
        records: Payload<'_>,
        headers: Vec<(usize, BatchHeader)>,
        config: &LogConfig,
        now: i64,
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, StorageError> {
        let st = self.state.write();
        let info =
            self.append_locked(st, records, headers, config, now, leader_epoch, Roll::Allow)?;
        Ok(info.expect("an append that may roll always appends"))
    }

    /// [`Log::append_validated`] with the log's lock already held. With
    /// [`Roll::Defer`] an append that would roll the segment (new files,
    /// index preallocation, a producer snapshot with two fsyncs) writes
    /// nothing and answers `None`.
    #[allow(clippy::too_many_arguments)]
    fn append_locked(
        &self,
        mut st: parking_lot::RwLockWriteGuard<'_, LogState>,
        mut records: Payload<'_>,
        headers: Vec<(usize, BatchHeader)>,
        config: &LogConfig,
        now: i64,
        leader_epoch: LeaderEpoch,
        roll: Roll,
    ) -> Result<Option<AppendInfo>, StorageError> {
        let log_append = config.message_timestamp_type == TimestampType::LogAppendTime;

        self.check()?;
        let first_offset = st.log_end_offset;
        let mut next = first_offset;
        let mut stamped = headers;
        let mut record_count = 0i64;
        for (pos, h) in stamped.iter_mut() {
            let append_time = log_append.then_some(Timestamp(now));
            records.stamp(*pos, h.size(), next, leader_epoch, append_time);
            h.base_offset = next;
            if log_append {
                h.max_timestamp = Timestamp(now);
            }
            record_count += h.last_offset_delta as i64 + 1;
            next = h.next_offset();
        }
        let last_offset = next.plus(-1);

        // Idempotent producers: check every batch's sequence before a byte
        // is written; an exact retry is answered with the original offsets.
        if stamped.iter().any(|(_, h)| h.has_producer_id()) {
            let mut pending: Vec<ProducerStateEntry> = Vec::new();
            let mut new_producers = 0usize;
            for (_, h) in stamped.iter() {
                if !h.has_producer_id() {
                    continue;
                }
                let pid = h.producer_id;
                let idx = pending.iter().position(|e| e.producer_id == pid);
                let entry = match idx {
                    Some(i) => Some(&pending[i]),
                    None => st.producers.last_entry(pid),
                };
                match check_batch(
                    entry,
                    pid,
                    h.producer_epoch,
                    h.base_sequence,
                    h.last_sequence(),
                )? {
                    SequenceCheck::Duplicate(b) => {
                        let log_start_offset = st.log_start_offset;
                        drop(st);
                        tracing::debug!(log = %self.tp, producer_id = pid.0, first_seq = b.first_seq, offset = b.first_offset.0, "duplicate batch not written");
                        return Ok(Some(AppendInfo {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            log_append_time: if log_append {
                                b.timestamp
                            } else {
                                Timestamp::NONE
                            },
                            log_start_offset,
                            record_count: 0,
                            bytes: 0,
                            needs_flush: config.flush_messages <= 1
                                && b.last_offset >= self.recovery_point(),
                            duplicate: true,
                        }));
                    }
                    SequenceCheck::Append => {
                        let i = match idx {
                            Some(i) => i,
                            None => {
                                let e = match st.producers.last_entry(pid) {
                                    Some(e) => e.clone(),
                                    None => {
                                        new_producers += 1;
                                        ProducerStateEntry::new(pid, h.producer_epoch)
                                    }
                                };
                                pending.push(e);
                                pending.len() - 1
                            }
                        };
                        pending[i].add_batch(h.producer_epoch, batch_metadata(h));
                    }
                }
            }
            let max = self.env.producer_state.max_producers;
            if new_producers > 0 && st.producers.len() + new_producers > max {
                st.producers.remove_expired(
                    now,
                    self.env.producer_state_config().producer_id_expiration_ms,
                );
                if st.producers.len() + new_producers > max {
                    return Err(StorageError::TooManyProducers {
                        tp: self.tp.clone(),
                        max,
                    });
                }
            }
        }

        let mut pending_snapshot = None;
        let active = st.active().clone();
        if active.should_roll(
            config.segment_bytes,
            config.segment_ms,
            records.len() as u64,
            last_offset,
            now,
        )? {
            if roll == Roll::Defer {
                return Ok(None);
            }
            pending_snapshot = self.roll_locked(&mut st, config, now)?;
        }
        let active = st.active().clone();
        let pieces = records.pieces(&stamped);
        if let Err(f) = active.append(&pieces, &stamped, config.index_interval_bytes) {
            if f.unrecoverable {
                self.offline(&f.error);
            }
            return Err(f.error);
        }
        st.log_end_offset = next;
        for (_, h) in stamped.iter().filter(|(_, h)| h.has_producer_id()) {
            st.producers
                .update(h.producer_id, h.producer_epoch, batch_metadata(h));
        }
        st.producers.set_map_end_offset(next);
        self.log_end.store(next.0, Ordering::Release);
        let log_start_offset = st.log_start_offset;
        drop(st);
        self.write_pending_snapshot(pending_snapshot);
        let unflushed = next.distance_from(self.recovery_point());
        Ok(Some(AppendInfo {
            first_offset,
            last_offset,
            log_append_time: if log_append {
                Timestamp(now)
            } else {
                Timestamp::NONE
            },
            log_start_offset,
            record_count,
            bytes: records.len(),
            needs_flush: unflushed >= config.flush_messages,
            duplicate: false,
        }))
    }

    fn roll_locked(
        &self,
        st: &mut LogState,
        config: &LogConfig,
        now: i64,
    ) -> Result<Option<PendingSnapshot>, StorageError> {
        let base = st.log_end_offset;
        let active = st.active().clone();
        if active.base_offset() == base {
            return Ok(None); // empty active segment: nothing to roll
        }
        // The new segment first: if it cannot be created (a full disk),
        // the active one stays active and the append is refused.
        let seg = LogSegment::create(
            self.env.fs.clone(),
            &self.dir,
            base,
            seg_config(config),
            self.env.cache.clone(),
            now,
        )?;
        active.make_inactive()?;
        st.segments.insert(base.0, seg);
        self.dir_dirty.store(true, Ordering::Release);
        // Kafka takes a producer state snapshot at every roll, so recovery
        // replays at most the active segment. It is encoded here and
        // written (two fsyncs) by the caller after the state lock is
        // released, so appends and reads do not wait for those fsyncs.
        st.producers.set_map_end_offset(base);
        let bytes = encode_snapshot(&st.producers);
        tracing::debug!(log = %self.tp, base = base.0, "rolled new segment");
        Ok(Some(PendingSnapshot {
            offset: base,
            bytes,
            truncations: self.truncations.load(Ordering::Acquire),
        }))
    }

    /// Writes a snapshot taken by a roll, unless a truncation came between.
    /// A missing snapshot only costs a longer replay on load.
    fn write_pending_snapshot(&self, pending: Option<PendingSnapshot>) {
        let Some(p) = pending else { return };
        let _g = self.snapshot_lock.lock();
        if self.truncations.load(Ordering::Acquire) != p.truncations {
            return;
        }
        if let Err(e) = write_snapshot_bytes(&*self.env.fs, &self.dir, p.offset, &p.bytes) {
            tracing::warn!(log = %self.tp, error = %e, "cannot write producer state snapshot");
        }
    }

    /// Starts a new segment at the log end offset (no-op if the active
    /// segment is empty).
    pub fn roll(&self) -> Result<(), StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let mut st = self.state.write();
        let pending = self.roll_locked(&mut st, &config, self.env.clock.now_ms())?;
        drop(st);
        self.write_pending_snapshot(pending);
        Ok(())
    }

    /// Group commit: returns once every offset up to and including `offset`
    /// is fsynced. Callers arriving while an fsync is in flight wait for it,
    /// then find their data covered or issue one fsync for all of them.
    pub fn flush_until(&self, offset: Offset) -> Result<(), StorageError> {
        self.check()?;
        let needed = offset.0.saturating_add(1).min(self.log_end_offset().0);
        if self.recovery_point.load(Ordering::Acquire) >= needed {
            return Ok(());
        }
        let _g = self.flush_lock.lock();
        if self.recovery_point.load(Ordering::Acquire) >= needed {
            return Ok(());
        }
        self.check()?;
        self.flush_locked()
    }

    /// Flushes everything appended so far.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.check()?;
        let _g = self.flush_lock.lock();
        self.flush_locked()
    }

    fn flush_locked(&self) -> Result<(), StorageError> {
        let rp = self.recovery_point.load(Ordering::Acquire);
        let (target, segs) = {
            let st = self.state.read();
            let from = st
                .segments
                .range(..=rp)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(i64::MIN);
            let segs: Vec<Arc<LogSegment>> =
                st.segments.range(from..).map(|(_, s)| s.clone()).collect();
            (st.log_end_offset, segs)
        };
        let now = self.env.clock.now_ms();
        if target.0 <= rp && !self.dir_dirty.load(Ordering::Acquire) {
            self.last_flush_ms.store(now, Ordering::Release);
            return Ok(());
        }
        for s in segs {
            if let Err(e) = s.flush() {
                self.offline(&e);
                return Err(e);
            }
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self
                .env
                .fs
                .sync_dir(&self.dir)
                .ctx("fsync directory", &self.dir)
            {
                self.offline(&e);
                return Err(e);
            }
        }
        self.recovery_point.fetch_max(target.0, Ordering::AcqRel);
        self.last_flush_ms.store(now, Ordering::Release);
        Ok(())
    }

    /// Finds the batch holding `fetch_offset` and returns a slice of whole
    /// batches, at most `max_bytes` long unless the first batch is bigger and
    /// `min_one_batch` (KIP-74), holding no offset at or past `max_offset`
    /// (the high watermark; `None` = log end). `Ok(None)`: nothing to read.
    pub fn read(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
        max_offset: Option<Offset>,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, StorageError> {
        self.check()?;
        let (mut seg, lso, leo) = {
            let st = self.state.read();
            let seg = st
                .segments
                .range(..=fetch_offset.0)
                .next_back()
                .map(|(_, s)| s.clone());
            (seg, st.log_start_offset, st.log_end_offset)
        };
        if fetch_offset < lso || fetch_offset > leo {
            return Err(StorageError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start: lso,
                log_end: leo,
            });
        }
        let upper = max_offset.unwrap_or(leo).min(leo);
        if fetch_offset >= upper {
            return Ok(None);
        }
        let mut retries = 0;
        while let Some(s) = seg {
            let r = match s.read(fetch_offset, max_bytes, upper, min_one_batch) {
                Ok(r) => r,
                Err(e) => {
                    // The log cleaner or retention may have replaced or
                    // removed this segment since it was looked up (its files
                    // are renamed): look it up again (a few times).
                    let st = self.state.read();
                    let gone = !st
                        .segments
                        .get(&s.base_offset().0)
                        .is_some_and(|c| Arc::ptr_eq(c, &s));
                    if gone && retries < 4 {
                        retries += 1;
                        seg = st
                            .segments
                            .range(..=fetch_offset.0.max(s.base_offset().0))
                            .next_back()
                            .map(|(_, s)| s.clone());
                        continue;
                    }
                    return Err(e);
                }
            };
            if let Some(slice) = r {
                return Ok(Some(slice));
            }
            let st = self.state.read();
            seg = st
                .segments
                .range(s.base_offset().0 + 1..)
                .next()
                .filter(|(b, _)| **b < upper.0)
                .map(|(_, s)| s.clone());
        }
        Ok(None)
    }

    /// Reads whole batches from `fetch_offset` into memory (tests, tools).
    pub fn read_to_vec(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
    ) -> Result<Vec<u8>, StorageError> {
        match self.read(fetch_offset, max_bytes, None, true)? {
            Some(s) => s.read_to_vec(),
            None => Ok(Vec::new()),
        }
    }

    /// ListOffsets by timestamp: the offset and timestamp of the first
    /// record at or after the log start whose timestamp is `>= ts` (time
    /// index, then batch headers, then the records of one batch).
    pub fn offset_for_timestamp(
        &self,
        ts: Timestamp,
    ) -> Result<Option<(Offset, Timestamp)>, StorageError> {
        self.check()?;
        let (segs, lso) = {
            let st = self.state.read();
            (
                st.segments.values().cloned().collect::<Vec<_>>(),
                st.log_start_offset,
            )
        };
        for s in segs {
            if s.next_offset() <= lso && !s.is_active() {
                continue;
            }
            match s.max_timestamp()? {
                Some(m) if m.timestamp >= ts => {}
                _ => continue,
            }
            if let Some(found) = s.find_offset_by_timestamp(ts, lso)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest timestamp in the log and the
    /// offset of the first record carrying it, as Kafka answers since 3.8
    /// (KAFKA-16310): the record inside its batch, not the batch's last
    /// offset. Falls back to the batch's last offset when the batch cannot
    /// be decoded (e.g. a producer-set max above its records).
    pub fn max_timestamp_and_offset(&self) -> Option<(Timestamp, Offset)> {
        let segs = self.segments();
        let mut best: Option<(Timestamp, Offset, usize)> = None;
        for (i, s) in segs.iter().enumerate() {
            if let Ok(Some(m)) = s.max_timestamp() {
                if best.is_none_or(|(t, _, _)| m.timestamp > t) {
                    best = Some((m.timestamp, m.offset, i));
                }
            }
        }
        let (ts, batch_last, i) = best?;
        let seg = &segs[i];
        match seg.find_offset_by_timestamp(ts, seg.base_offset()) {
            Ok(Some((offset, found))) if found == ts && offset <= batch_last => Some((ts, offset)),
            _ => Some((ts, batch_last)),
        }
    }

    fn delete_segments_locked(
        &self,
        st: &mut LogState,
        bases: &[i64],
    ) -> Result<usize, StorageError> {
        let delay = self.config.read().file_delete_delay_ms;
        let now = self.env.clock.now_ms();
        let mut n = 0;
        for b in bases {
            if let Some(seg) = st.segments.remove(b) {
                let paths = seg.rename_to_deleted()?;
                self.env
                    .deleter
                    .schedule(paths, now.saturating_add(delay), now);
                n += 1;
            }
        }
        if n > 0 {
            // Make the deletions durable so a crash cannot bring back
            // segments below the log start offset.
            if let Err(e) = self
                .env
                .fs
                .sync_dir(&self.dir)
                .ctx("fsync directory", &self.dir)
            {
                self.offline(&e);
                return Err(e);
            }
            let first = Offset(*st.segments.keys().next().expect("active segment stays"));
            if st.log_start_offset < first {
                st.log_start_offset = first;
                self.log_start.store(first.0, Ordering::Release);
            }
        }
        let lso = st.log_start_offset;
        st.producers.truncate_head(lso);
        Ok(n)
    }

    /// DeleteRecords: moves the log start offset to `offset` and deletes the
    /// segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        self.check()?;
        let mut st = self.state.write();
        if offset > st.log_end_offset || offset.0 < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: st.log_start_offset,
                log_end: st.log_end_offset,
            });
        }
        if offset > st.log_start_offset {
            st.log_start_offset = offset;
            self.log_start.store(offset.0, Ordering::Release);
        }
        let lso = st.log_start_offset;
        let bases: Vec<i64> = st.segments.keys().copied().collect();
        let doomed: Vec<i64> = bases
            .windows(2)
            .take_while(|w| w[1] <= lso.0)
            .map(|w| w[0])
            .collect();
        self.delete_segments_locked(&mut st, &doomed)?;
        Ok(lso)
    }

    /// Deletes old segments by `retention.ms` (segment's largest timestamp),
    /// `retention.bytes` and the log start offset, oldest first, as Kafka
    /// does: a non-empty active segment may go too, after rolling a new empty
    /// one. Returns the number of segments deleted.
    pub fn delete_old_segments(&self) -> Result<usize, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let mut st = self.state.write();
        st.producers.remove_expired(
            now,
            self.env.producer_state_config().producer_id_expiration_ms,
        );
        let segs: Vec<Arc<LogSegment>> = st.segments.values().cloned().collect();
        let lso = st.log_start_offset;
        let mut doomed = Vec::new();
        let mut total: i64 = segs.iter().map(|s| s.size() as i64).sum();
        for (i, s) in segs.iter().enumerate() {
            let next_base = segs.get(i + 1).map(|n| n.base_offset());
            let is_last = next_base.is_none();
            if is_last && s.size() == 0 {
                break;
            }
            let by_start = next_base.is_some_and(|nb| nb <= lso);
            // cleanup.policy=compact alone keeps data forever (no time or
            // size retention), as in Kafka.
            let delete_policy = config.compaction.cleanup_policy.delete();
            let by_time = delete_policy
                && config.retention_ms >= 0
                && s.max_timestamp()?
                    .is_some_and(|m| now.saturating_sub(m.timestamp.0) > config.retention_ms);
            let by_size = delete_policy
                && config.retention_bytes >= 0
                && total - s.size() as i64 >= config.retention_bytes;
            if !(by_start || by_time || by_size) {
                break;
            }
            total -= s.size() as i64;
            doomed.push(s.base_offset().0);
        }
        if doomed.len() == segs.len() {
            // Written after the state lock (below) would be better; rolls
            // for retention are rare, and this keeps the deletion atomic.
            let pending = match self.roll_locked(&mut st, &config, now) {
                Ok(p) => p,
                // A full disk has no room for the new segment: delete the
                // others now (freeing space), the active one next time.
                Err(e) if e.is_no_space() => {
                    tracing::warn!(log = %self.tp, error = %e, "disk full: retention keeps the active segment until a new one fits");
                    doomed.pop();
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(p) = pending {
                if let Err(e) = write_snapshot_bytes(&*self.env.fs, &self.dir, p.offset, &p.bytes) {
                    tracing::warn!(log = %self.tp, error = %e, "cannot write producer state snapshot");
                }
            }
        }
        let n = self.delete_segments_locked(&mut st, &doomed)?;
        if n > 0 {
            tracing::info!(log = %self.tp, deleted = n, log_start = st.log_start_offset.0, "deleted segments by retention");
        }
        Ok(n)
    }

    /// Removes every batch with an offset `>= offset` (a batch straddling it
    /// goes whole). Truncating below the first segment empties the log and
    /// restarts it at `offset`.
    pub fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let _snapshots = self.snapshot_lock.lock();
        let _flush = self.flush_lock.lock();
        let mut st = self.state.write();
        if offset >= st.log_end_offset {
            return Ok(());
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let first_base = Offset(*st.segments.keys().next().expect("non-empty"));
        if offset <= first_base || offset < st.log_start_offset {
            let all: Vec<i64> = st.segments.keys().copied().collect();
            // Move the old segments away first: the new one may reuse a base.
            for b in &all {
                if let Some(s) = st.segments.remove(b) {
                    let paths = s.rename_to_deleted()?;
                    self.env.deleter.schedule(
                        paths,
                        now.saturating_add(config.file_delete_delay_ms),
                        now,
                    );
                }
            }
            let seg = LogSegment::create(
                self.env.fs.clone(),
                &self.dir,
                offset.max(Offset::ZERO),
                seg_config(&config),
                self.env.cache.clone(),
                now,
            )?;
            st.segments.insert(offset.0, seg);
            st.log_start_offset = offset;
            st.log_end_offset = offset;
        } else {
            let doomed: Vec<i64> = st.segments.range(offset.0..).map(|(b, _)| *b).collect();
            for b in &doomed {
                if let Some(s) = st.segments.remove(b) {
                    let paths = s.rename_to_deleted()?;
                    self.env.deleter.schedule(
                        paths,
                        now.saturating_add(config.file_delete_delay_ms),
                        now,
                    );
                }
            }
            let active = st.active().clone();
            if !active.is_active() {
                active.make_active()?;
            }
            active.truncate_to(offset)?;
            st.log_end_offset = active.next_offset();
            if st.log_start_offset > st.log_end_offset {
                st.log_start_offset = st.log_end_offset;
            }
        }
        // Truncation is made durable at once: a crash must not resurrect
        // the removed batches (they would pass recovery's CRC checks).
        let durable = st.active().flush().and_then(|_| {
            self.env
                .fs
                .sync_dir(&self.dir)
                .ctx("fsync directory", &self.dir)
        });
        if let Err(e) = durable {
            self.offline(&e);
            return Err(e);
        }
        self.log_end.store(st.log_end_offset.0, Ordering::Release);
        self.log_start
            .store(st.log_start_offset.0, Ordering::Release);
        // Producer state: snapshots above the truncation point describe
        // batches that are gone; rebuild from what remains.
        let (ls, le) = (st.log_start_offset, st.log_end_offset);
        let rebuilt = remove_snapshots_after(&*self.env.fs, &self.dir, le).and_then(|_| {
            load_producer_state(
                &*self.env.fs,
                &self.dir,
                &st.segments,
                ls,
                le,
                now,
                &self.env.producer_state_config(),
            )
        });
        match rebuilt {
            Ok(p) => st.producers = p,
            Err(e) => {
                self.offline(&e);
                return Err(e);
            }
        }
        let leo = st.log_end_offset.0;
        self.recovery_point.fetch_min(leo, Ordering::AcqRel);
        if let Err(e) = self
            .env
            .dir_state
            .lower_recovery_point(&self.tp, Offset(leo))
        {
            self.offline(&e);
            return Err(e);
        }
        tracing::info!(log = %self.tp, log_end = leo, "truncated log");
        Ok(())
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

/// Bytes at the start of a batch that the leader rewrites outside the CRC:
/// base offset (0..8), batch length (8..12), partition leader epoch (12..16).
const BATCH_HEAD: usize = 16;

/// The batches of one append and how they are stamped.
enum Payload<'a> {
    /// Rewritten in place.
    InPlace(&'a mut [u8]),
    /// Left untouched; `heads` collects each batch's patched first
    /// [`BATCH_HEAD`] bytes, in batch order.
    Shared {
        records: &'a [u8],
        heads: Vec<[u8; BATCH_HEAD]>,
    },
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::InPlace(r) => r.len(),
            Payload::Shared { records, .. } => records.len(),
        }
    }

    /// Assigns `base` and `epoch` to the batch of `size` bytes at `pos`
    /// (and, in place only, the LogAppendTime with a new CRC).
    fn stamp(
        &mut self,
        pos: usize,
        size: usize,
        base: Offset,
        epoch: LeaderEpoch,
        append_time: Option<Timestamp>,
    ) {
        match self {
            Payload::InPlace(records) => {
                let batch = &mut records[pos..pos + size];
                set_base_offset(batch, base);
                set_partition_leader_epoch(batch, epoch);
                if let Some(t) = append_time {
                    set_log_append_time(batch, t);
                }
            }
            Payload::Shared { records, heads } => {
                debug_assert!(append_time.is_none(), "LogAppendTime is stamped in place");
                let mut head = [0u8; BATCH_HEAD];
                head.copy_from_slice(&records[pos..pos + BATCH_HEAD]);
                set_base_offset(&mut head, base);
                set_partition_leader_epoch(&mut head, epoch);
                heads.push(head);
            }
        }
    }

    /// The bytes to write, in order, after every batch was stamped.
    fn pieces(&self, stamped: &[(usize, BatchHeader)]) -> Vec<std::io::IoSlice<'_>> {
        match self {
            Payload::InPlace(records) => vec![std::io::IoSlice::new(records)],
            Payload::Shared { records, heads } => {
                let mut out = Vec::with_capacity(2 * heads.len());
                for ((pos, h), head) in stamped.iter().zip(heads) {
                    out.push(std::io::IoSlice::new(head));
                    out.push(std::io::IoSlice::new(
                        &records[pos + BATCH_HEAD..pos + h.size()],
                    ));
                }
                out
            }
        }
    }
}

fn batch_metadata(h: &BatchHeader) -> BatchMetadata {
    BatchMetadata {
        first_seq: h.base_sequence,
        last_seq: h.last_sequence(),
        first_offset: h.base_offset,
        last_offset: h.last_offset(),
        timestamp: h.max_timestamp,
    }
}

/// Which offset rule recovery holds `tp`'s segments to (see
/// [`crate::recovery`]): contiguous batches unless the log is compacted now
/// or was cleaned before (it has an entry in its log dir's
/// `cleaner-offset-checkpoint`: a topic switched from `compact` to
/// `delete` keeps its gaps). A checkpoint file that cannot be read or
/// holds nothing (`checkpoint::read` ignores a malformed one) counts as
/// cleaned: the weaker rule never truncates valid data.
fn offset_gaps(fs: &dyn Fs, dir: &Path, tp: &TopicPartition, config: &LogConfig) -> Gaps {
    if config.compaction.cleanup_policy.compact() {
        return Gaps::Possible;
    }
    let Some(log_dir) = dir.parent() else {
        return Gaps::Possible;
    };
    if !fs.exists(&log_dir.join(CLEANER_OFFSET_CHECKPOINT)) {
        return Gaps::Impossible;
    }
    match checkpoint::read(fs, log_dir, CLEANER_OFFSET_CHECKPOINT) {
        Ok(cp) if !cp.is_empty() && !cp.contains_key(tp) => Gaps::Impossible,
        Ok(_) => Gaps::Possible,
        Err(e) => {
            tracing::warn!(log = %tp, error = %e, "cannot read the cleaner checkpoint; recovery allows offset gaps");
            Gaps::Possible
        }
    }
}

/// Producer snapshots in `dir`, oldest first.
fn list_snapshots(fs: &dyn Fs, dir: &Path) -> Result<Vec<(Offset, PathBuf)>, StorageError> {
    let mut out: Vec<(Offset, PathBuf)> = fs
        .read_dir(dir)
        .ctx("list partition directory", dir)?
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            Some((parse_snapshot_file_name(name)?, p.clone()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Snapshots kept after writing a new one.
const SNAPSHOTS_TO_KEEP: usize = 2;

/// Writes `<offset>.snapshot` atomically (temp file, fsync, rename) and
/// removes all but the newest [`SNAPSHOTS_TO_KEEP`].
fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    state: &mut ProducerStateManager,
    offset: Offset,
) -> Result<(), StorageError> {
    state.set_map_end_offset(offset);
    let bytes = encode_snapshot(state);
    write_snapshot_bytes(fs, dir, offset, &bytes)
}

/// Whether an append may roll the active segment itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Roll {
    Allow,
    /// Leave a roll to a caller that may block: the append writes nothing.
    Defer,
}

/// A producer snapshot encoded under the state lock at a roll, written
/// after it is released.
struct PendingSnapshot {
    offset: Offset,
    bytes: Vec<u8>,
    /// `Log::truncations` when it was taken.
    truncations: u64,
}

/// Writes an encoded producer snapshot durably (tmp file, fsync, rename,
/// directory fsync) and keeps the newest few.
fn write_snapshot_bytes(
    fs: &dyn Fs,
    dir: &Path,
    offset: Offset,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let path = dir.join(snapshot_file_name(offset));
    let tmp = dir.join(format!("{}.tmp", snapshot_file_name(offset)));
    let f = fs
        .open(&tmp, &OpenOptions::create_truncate())
        .ctx("create producer snapshot", &tmp)?;
    write_all_at(&*f, bytes, 0)
        .map_err(|(_, e)| StorageError::io("write producer snapshot", &tmp, e))?;
    f.sync_data().ctx("fsync producer snapshot", &tmp)?;
    drop(f);
    fs.rename(&tmp, &path)
        .ctx("rename producer snapshot", &tmp)?;
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    let snaps = list_snapshots(fs, dir)?;
    if snaps.len() > SNAPSHOTS_TO_KEEP {
        for (_, p) in &snaps[..snaps.len() - SNAPSHOTS_TO_KEEP] {
            fs.remove_file(p).ctx("remove old producer snapshot", p)?;
        }
    }
    Ok(())
}

fn remove_snapshots_after(fs: &dyn Fs, dir: &Path, offset: Offset) -> Result<(), StorageError> {
    let mut removed = false;
    for (o, p) in list_snapshots(fs, dir)? {
        if o > offset {
            fs.remove_file(&p).ctx("remove producer snapshot", &p)?;
            removed = true;
        }
    }
    if removed {
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
    }
    Ok(())
}

/// Most bytes a snapshot file may have (10 MiB per 100k producers is far
/// more than the bounded state needs).
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

fn read_snapshot(fs: &dyn Fs, path: &Path) -> Result<Option<ProducerStateManager>, StorageError> {
    let f = fs
        .open(path, &OpenOptions::read())
        .ctx("open producer snapshot", path)?;
    let len = f.len().ctx("stat producer snapshot", path)?;
    if len > MAX_SNAPSHOT_BYTES {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*f, &mut buf, 0).ctx("read producer snapshot", path)?;
    Ok(decode_snapshot(&buf).ok())
}

/// Producer state for a loaded log: the newest usable snapshot at or below
/// the log end, plus a replay of the batch headers after it; snapshots
/// above the log end (the log lost its tail) and unreadable ones are
/// deleted. Producers whose data is all below the log start, or idle longer
/// than `producer.id.expiration.ms`, are dropped.
fn load_producer_state(
    fs: &dyn Fs,
    dir: &Path,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    log_start: Offset,
    log_end: Offset,
    now: i64,
    config: &ProducerStateConfig,
) -> Result<ProducerStateManager, StorageError> {
    let first_base = Offset(segments.keys().next().copied().unwrap_or(log_start.0));
    let mut state = None;
    for (off, path) in list_snapshots(fs, dir)?.into_iter().rev() {
        if off <= log_end && off >= first_base {
            if let Some(s) = read_snapshot(fs, &path)? {
                if s.map_end_offset() == off {
                    state = Some(s);
                    break;
                }
            }
        }
        tracing::warn!(snapshot = %path.display(), log_end = log_end.0, "removing unusable producer state snapshot");
        fs.remove_file(&path)
            .ctx("remove producer snapshot", &path)?;
    }
    let mut state = state.unwrap_or_else(|| ProducerStateManager::new(first_base));
    let from = state.map_end_offset().max(first_base);
    for seg in segments.values() {
        if seg.next_offset() <= from {
            continue;
        }
        seg.for_each_header_from(from, |h| {
            if h.has_producer_id() && !h.is_control() && h.last_offset() < log_end {
                state.update(h.producer_id, h.producer_epoch, batch_metadata(h));
            }
        })?;
    }
    state.set_map_end_offset(log_end);
    state.truncate_head(log_start);
    state.remove_expired(now, config.producer_id_expiration_ms);
    Ok(state)
}
