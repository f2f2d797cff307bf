//! `LogManager`: the log directories, their checkpoints (recovery points,
//! log start offsets, high watermarks) and clean-shutdown markers, and the
//! set of loaded logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sluice_record::{Offset, ProducerId};

use crate::budget::DecompressionBudget;
use crate::checkpoint::{
    self, Checkpoint, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
};
use crate::config::{LogConfig, LogManagerConfig, TopicPartition};
use crate::error::{IoContext, StorageError};
use crate::fs::{Clock, Fs, OpenOptions};
use crate::headroom;
use crate::log::{FileDeleter, LoadOptions, Log, LogDirState, LogEnv};
use crate::producer_id::ProducerIdManager;
use crate::segment::HandleCache;

/// Kafka's clean-shutdown marker file name.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// The topic of the cluster metadata log, which is never a data partition.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

struct LogDir {
    state: Arc<LogDirState>,
    had_clean_shutdown: bool,
    /// The broker epoch its clean-shutdown marker named, or else its
    /// running marker of this boot of the machine.
    marker_epoch: Option<i64>,
    recovery_points: Checkpoint,
    log_starts: Checkpoint,
    /// `replication-offset-checkpoint` as it was when the manager opened.
    high_watermarks: Checkpoint,
}

pub struct LogManager {
    config: LogManagerConfig,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
    cache: Arc<HandleCache>,
    deleter: Arc<FileDeleter>,
    dirs: Vec<LogDir>,
    logs: RwLock<HashMap<TopicPartition, (Arc<Log>, usize)>>,
    create_lock: Mutex<()>,
    checkpoint_lock: Mutex<()>,
    producer_ids: Result<ProducerIdManager, String>,
    /// `producer.id.expiration.ms` in force for every log (see
    /// [`LogManager::set_producer_id_expiration_ms`]).
    producer_id_expiration_ms: Arc<AtomicI64>,
    /// Shared by every log and the cleaner (`sluice.decompression.memory.bytes`).
    decompression: Arc<DecompressionBudget>,
}

impl LogManager {
    /// Reads each log dir's clean-shutdown marker (then removes it, so a
    /// crash from here on counts as unclean) and checkpoints. Logs are
    /// loaded on demand by [`LogManager::get_or_create_log`]. A directory
    /// that cannot be used starts offline; if none can, this fails.
    pub fn open(
        config: LogManagerConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StorageError> {
        let mut dirs = Vec::new();
        let mut first_err = None;
        for path in &config.log_dirs {
            let mut state = LogDirState::new(path.clone(), fs.clone(), Checkpoint::new());
            let res = (|| -> Result<LogDir, StorageError> {
                fs.create_dir_all(path).ctx("create log directory", path)?;
                let marker = path.join(CLEAN_SHUTDOWN_FILE);
                let clean = fs.exists(&marker);
                let marker_epoch = if clean {
                    checkpoint::read_bytes(
                        &*fs,
                        path,
                        CLEAN_SHUTDOWN_FILE,
                        crate::clean_shutdown::MAX_MARKER_BYTES,
                    )?
                    .and_then(|b| crate::clean_shutdown::decode(&b))
                } else {
                    running_epoch(&*fs, path)
                };
                let recovery_points = checkpoint::read(&*fs, path, RECOVERY_POINT_CHECKPOINT)?;
                let log_starts = checkpoint::read(&*fs, path, LOG_START_OFFSET_CHECKPOINT)?;
                let high_watermarks = checkpoint::read(&*fs, path, REPLICATION_OFFSET_CHECKPOINT)?;
                if clean {
                    fs.remove_file(&marker)
                        .ctx("remove clean shutdown marker", &marker)?;
                    fs.sync_dir(path).ctx("fsync directory", path)?;
                }
                state = LogDirState::new(path.clone(), fs.clone(), recovery_points.clone());
                // Metadata writes keep working on a full disk (see headroom).
                if let Err(e) = headroom::refill(&*fs, path) {
                    tracing::warn!(dir = %path.display(), error = %e, "cannot reserve metadata headroom");
                }
                Ok(LogDir {
                    state: state.clone(),
                    had_clean_shutdown: clean,
                    marker_epoch,
                    recovery_points,
                    log_starts,
                    high_watermarks,
                })
            })();
            match res {
                Ok(d) => dirs.push(d),
                Err(e) => {
                    tracing::error!(dir = %path.display(), error = %e, "log directory unusable");
                    state.mark_offline(e.to_string());
                    dirs.push(LogDir {
                        state,
                        had_clean_shutdown: false,
                        marker_epoch: None,
                        recovery_points: Checkpoint::new(),
                        log_starts: Checkpoint::new(),
                        high_watermarks: Checkpoint::new(),
                    });
                    first_err.get_or_insert(e);
                }
            }
        }
        if dirs.iter().all(|d| d.state.is_offline()) {
            return Err(first_err
                .unwrap_or_else(|| StorageError::InvalidRecord("no log.dirs configured".into())));
        }
        // Producer ids are allocated from the first log dir (if it is usable).
        let producer_ids = match dirs.first() {
            Some(d) if !d.state.is_offline() => {
                ProducerIdManager::open(fs.clone(), d.state.path()).map_err(|e| e.to_string())
            }
            _ => Err("the first log directory is offline".to_string()),
        };
        if let Err(e) = &producer_ids {
            tracing::error!(error = %e, "producer id allocation unavailable");
        }
        Ok(LogManager {
            producer_ids,
            producer_id_expiration_ms: Arc::new(AtomicI64::new(
                config.producer_state.producer_id_expiration_ms,
            )),
            cache: HandleCache::new(config.max_open_segment_files),
            decompression: DecompressionBudget::new(config.decompression_memory_bytes),
            deleter: FileDeleter::new(fs.clone()),
            config,
            fs,
            clock,
            dirs,
            logs: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
            checkpoint_lock: Mutex::new(()),
        })
    }

    /// A producer id never handed out before (durable high-water mark in
    /// the first log dir; see [`crate::producer_id`]).
    pub fn generate_producer_id(&self) -> Result<ProducerId, StorageError> {
        let offline = |reason: String| StorageError::LogDirOffline {
            dir: self.config.log_dirs.first().cloned().unwrap_or_default(),
            reason,
        };
        let m = self.producer_ids.as_ref().map_err(|r| offline(r.clone()))?;
        let d = self
            .dirs
            .first()
            .ok_or_else(|| offline("no log directory".into()))?;
        d.state.check()?;
        headroom::retry_on_no_space(
            &*self.fs,
            d.state.path(),
            || m.generate(),
            StorageError::is_no_space,
        )
        .inspect_err(|e| {
            // A full disk (or no descriptor left) refuses the id; it is no
            // failure of the directory.
            if matches!(e, StorageError::Io { .. }) && !e.is_resource_exhausted() {
                d.state.mark_offline(e.to_string());
            }
        })
    }

    /// KIP-360 epoch bump of a producer id handed out before (see
    /// [`ProducerIdManager::bump_epoch`]); `None` if ids are unavailable.
    pub fn bump_producer_epoch(
        &self,
        id: ProducerId,
        epoch: i16,
    ) -> Option<Result<i16, crate::producer_id::ProducerFenced>> {
        self.producer_ids
            .as_ref()
            .ok()
            .map(|m| m.bump_epoch(id, epoch))
    }

    /// True if `id` was handed out by [`LogManager::generate_producer_id`]
    /// (in this run or an earlier one).
    pub fn producer_id_was_allocated(&self, id: ProducerId) -> bool {
        self.producer_ids
            .as_ref()
            .is_ok_and(|m| m.was_allocated(id))
    }

    /// Producers tracked over all loaded logs, and the bytes their state uses.
    pub fn producer_state_usage(&self) -> (usize, usize) {
        self.all_logs().iter().fold((0, 0), |(n, b), l| {
            (n + l.num_producers(), b + l.producer_state_memory_bytes())
        })
    }

    /// True if the dir's previous shutdown was clean.
    pub fn had_clean_shutdown(&self, dir: &Path) -> bool {
        self.dirs
            .iter()
            .any(|d| d.state.path() == dir && d.had_clean_shutdown)
    }

    /// The broker epoch this node had when it last shut down cleanly: the
    /// one every online directory's clean-shutdown marker names (Kafka's
    /// `readBrokerEpochFromCleanShutdownFiles`), or after a crash of the
    /// process alone, the one its running markers name. `None` after a
    /// reboot or power cut, or when the markers disagree.
    pub fn previous_broker_epoch(&self) -> Option<i64> {
        let mut online = self.dirs.iter().filter(|d| !d.state.is_offline());
        let first = online.next()?.marker_epoch?;
        online
            .all(|d| d.marker_epoch == Some(first))
            .then_some(first)
    }

    /// Writes the running marker of `broker_epoch` into every online
    /// directory (see [`crate::clean_shutdown`]): should this process die
    /// while the machine lives on, its next start names this epoch as its
    /// previous one. Not synced: a power cut makes the marker moot.
    pub fn record_running_epoch(&self, broker_epoch: i64) -> Result<(), StorageError> {
        assert!(
            broker_epoch >= 0,
            "a running marker names a registered epoch"
        );
        let Some(boot) = self.fs.boot_id() else {
            return Ok(());
        };
        let bytes = crate::clean_shutdown::encode_running(broker_epoch, &boot);
        let mut first_err = None;
        for d in self.dirs.iter().filter(|d| !d.state.is_offline()) {
            let path = d.state.path().join(crate::clean_shutdown::RUNNING_FILE);
            let r = self
                .fs
                .open(&path, &OpenOptions::create_truncate())
                .and_then(|f| f.write_at(&bytes, 0))
                .and_then(|n| {
                    (n == bytes.len()).then_some(()).ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::WriteZero, "short write")
                    })
                })
                .ctx("write running marker", &path);
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// `Some(reason)` if the directory is offline.
    pub fn offline_reason(&self, dir: &Path) -> Option<String> {
        self.dirs
            .iter()
            .find(|d| d.state.path() == dir)
            .and_then(|d| d.state.offline_reason())
    }

    /// The shared LRU of open inactive segments.
    pub fn handle_cache(&self) -> &Arc<HandleCache> {
        &self.cache
    }

    /// Partition directories found in the online log dirs. The metadata
    /// log (`__cluster_metadata-0`, which lives in a log dir when
    /// `metadata.log.dir` is one) is no data partition and is left out.
    pub fn on_disk_partitions(&self) -> Vec<TopicPartition> {
        let mut out = Vec::new();
        for d in self.dirs.iter().filter(|d| !d.state.is_offline()) {
            if let Ok(entries) = self.fs.read_dir(d.state.path()) {
                for p in entries {
                    if !self.fs.is_dir(&p) {
                        continue;
                    }
                    if let Some(tp) = p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(TopicPartition::from_dir_name)
                        .filter(|tp| tp.topic != METADATA_TOPIC)
                    {
                        out.push(tp);
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn env(&self, dir: usize) -> LogEnv {
        LogEnv {
            fs: self.fs.clone(),
            clock: self.clock.clone(),
            dir_state: self.dirs[dir].state.clone(),
            cache: self.cache.clone(),
            deleter: self.deleter.clone(),
            recovery_progress_every: self.config.recovery_progress_every,
            producer_state: self.config.producer_state,
            producer_id_expiration_ms: self.producer_id_expiration_ms.clone(),
            decompression: self.decompression.clone(),
        }
    }

    /// Changes `producer.id.expiration.ms` for every log, loaded or not
    /// (a dynamic broker config): idle producers are expired by the new
    /// value from their next check on.
    pub fn set_producer_id_expiration_ms(&self, ms: i64) {
        self.producer_id_expiration_ms.store(ms, Ordering::Relaxed);
    }

    /// The broker-wide decompression budget (`sluice.decompression.memory.bytes`).
    pub fn decompression_budget(&self) -> &Arc<DecompressionBudget> {
        &self.decompression
    }

    /// Loads (recovering after an unclean shutdown) or creates the log.
    pub fn get_or_create_log(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Log>, StorageError> {
        if let Some(log) = self.get_log(tp) {
            return Ok(log);
        }
        let _g = self.create_lock.lock();
        if let Some(log) = self.get_log(tp) {
            return Ok(log);
        }
        let name = tp.dir_name();
        let existing = self
            .dirs
            .iter()
            .position(|d| self.fs.is_dir(&d.state.path().join(&name)));
        let dir_idx = match existing {
            Some(i) => i,
            None => {
                let counts = self.logs.read().values().fold(
                    vec![0usize; self.dirs.len()],
                    |mut c, (_, i)| {
                        c[*i] += 1;
                        c
                    },
                );
                (0..self.dirs.len())
                    .filter(|i| !self.dirs[*i].state.is_offline())
                    .min_by_key(|i| counts[*i])
                    .ok_or_else(|| self.dirs[0].state.check().expect_err("all dirs offline"))?
            }
        };
        let d = &self.dirs[dir_idx];
        d.state.check()?;
        let opts = LoadOptions {
            had_clean_shutdown: d.had_clean_shutdown,
            recovery_point: d.recovery_points.get(tp).copied(),
            log_start_offset: d.log_starts.get(tp).copied(),
        };
        let path = d.state.path().join(&name);
        let log = Log::open(path.clone(), tp.clone(), config, self.env(dir_idx), opts)
            .inspect_err(|e| {
                // A new log that could not be made (a full disk) leaves no
                // empty directory behind for the next start to load.
                if existing.is_none() {
                    let _ = self.fs.remove_dir_all(&path);
                }
                // Any other I/O error takes the directory offline, as
                // Kafka's LogManager does when it cannot load or create a
                // log: a broker never serves on with a directory it cannot
                // trust (one that is its last goes on to halt), where it
                // would otherwise run for good without that replica (the
                // cluster simulation's seed 81: an fsync failing while a
                // restarted broker recovered a log).
                if matches!(e, StorageError::Io { .. }) && !e.is_resource_exhausted() {
                    d.state.mark_offline(e.to_string());
                }
            })?;
        self.logs.write().insert(tp.clone(), (log.clone(), dir_idx));
        Ok(log)
    }

    pub fn get_log(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().get(tp).map(|(l, _)| l.clone())
    }

    pub fn all_logs(&self) -> Vec<Arc<Log>> {
        let mut v: Vec<Arc<Log>> = self.logs.read().values().map(|(l, _)| l.clone()).collect();
        v.sort_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
        v
    }

    /// Takes the log out of service at once, renames its directory to
    /// `<topic>-<partition>.<uuid>-delete` (Kafka's naming) and removes it.
    pub fn delete_log(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let Some((log, _)) = self.logs.write().remove(tp) else {
            return Ok(());
        };
        log.mark_deleted();
        let dir = log.dir().to_path_buf();
        let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let uuid = sluice_runtime::random_uuid().simple().to_string();
        let renamed = parent.join(format!("{}.{uuid}-delete", tp.dir_name()));
        // The longer name may need a new directory block on a full disk.
        headroom::retry_on_no_space(
            &*self.fs,
            &parent,
            || {
                self.fs
                    .rename(&dir, &renamed)
                    .ctx("rename deleted log", &dir)
            },
            StorageError::is_no_space,
        )?;
        self.fs.sync_dir(&parent).ctx("fsync directory", &parent)?;
        self.fs
            .remove_dir_all(&renamed)
            .ctx("remove deleted log", &renamed)?;
        self.refill_headroom(&parent);
        Ok(())
    }

    /// After a deletion freed space: the headroom takes what it lacks first.
    fn refill_headroom(&self, dir: &Path) {
        if let Err(e) = headroom::refill(&*self.fs, dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot reserve metadata headroom");
        }
    }

    /// Refills the headroom of every online dir (after `.deleted` files went).
    fn refill_all_headroom(&self) {
        for d in self.dirs.iter().filter(|d| !d.state.is_offline()) {
            self.refill_headroom(d.state.path());
        }
    }

    /// Flushes logs whose `flush.ms` has elapsed, writes the recovery-point
    /// and log-start checkpoints, and removes `.deleted` files that are due.
    pub fn flush_dirty_logs(&self) -> Result<(), StorageError> {
        let now = self.clock.now_ms();
        let mut first_err = None;
        for log in self.all_logs() {
            let flush_ms = log.config().flush_ms;
            if now.saturating_sub(log.last_flush_ms()) >= flush_ms {
                if let Err(e) = log.flush() {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.write_checkpoints() {
            first_err.get_or_insert(e);
        }
        if self.deleter.reap(now) > 0 {
            self.refill_all_headroom();
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Applies retention to every log; returns the segments deleted.
    pub fn enforce_retention(&self) -> Result<usize, StorageError> {
        let mut n = 0;
        let mut first_err = None;
        for log in self.all_logs() {
            match log.delete_old_segments() {
                Ok(k) => n += k,
                Err(e @ StorageError::LogDirOffline { .. }) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if self.deleter.reap(self.clock.now_ms()) > 0 {
            self.refill_all_headroom();
        }
        first_err.map_or(Ok(n), Err)
    }

    /// Writes both checkpoint files of every online directory.
    pub fn write_checkpoints(&self) -> Result<(), StorageError> {
        let _g = self.checkpoint_lock.lock();
        let logs: Vec<(Arc<Log>, usize)> = self.logs.read().values().cloned().collect();
        let mut first_err = None;
        for (i, d) in self.dirs.iter().enumerate() {
            if d.state.is_offline() {
                continue;
            }
            let mut rp = Checkpoint::new();
            let mut ls = Checkpoint::new();
            for (log, _) in logs.iter().filter(|(_, j)| *j == i) {
                rp.insert(log.topic_partition().clone(), log.recovery_point());
                ls.insert(log.topic_partition().clone(), log.log_start_offset());
            }
            // Keep entries of logs on disk that are not loaded yet.
            for (tp, off) in &d.recovery_points {
                if !logs.iter().any(|(l, _)| l.topic_partition() == tp)
                    && self.fs.is_dir(&d.state.path().join(tp.dir_name()))
                {
                    rp.insert(tp.clone(), *off);
                }
            }
            for (tp, off) in &d.log_starts {
                if !logs.iter().any(|(l, _)| l.topic_partition() == tp)
                    && self.fs.is_dir(&d.state.path().join(tp.dir_name()))
                {
                    ls.insert(tp.clone(), *off);
                }
            }
            let r = d.state.write_recovery_points(rp).and_then(|_| {
                headroom::retry_on_no_space(
                    &*self.fs,
                    d.state.path(),
                    || {
                        checkpoint::write(
                            &*self.fs,
                            d.state.path(),
                            LOG_START_OFFSET_CHECKPOINT,
                            &ls,
                        )
                    },
                    StorageError::is_no_space,
                )
            });
            match r {
                // The old checkpoints stay (recovery scans a little more);
                // a later call retries once space is freed.
                Err(e) if e.is_resource_exhausted() => {
                    tracing::warn!(dir = %d.state.path().display(), error = %e, "checkpoints not written (disk full or out of descriptors)");
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    d.state.mark_offline(e.to_string());
                    first_err.get_or_insert(e);
                }
                Ok(()) => {}
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Flushes and closes every log, writes the checkpoints and then the
    /// clean-shutdown marker of each directory that is still online.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        self.shutdown_at_epoch(None)
    }

    /// [`LogManager::shutdown`] with the broker epoch the markers name
    /// (see [`crate::clean_shutdown`]).
    pub fn shutdown_at_epoch(&self, broker_epoch: Option<i64>) -> Result<(), StorageError> {
        let mut first_err = close_all(&self.all_logs());
        if let Err(e) = self.write_checkpoints() {
            first_err.get_or_insert(e);
        }
        self.deleter.reap(i64::MAX);
        for d in &self.dirs {
            if d.state.is_offline() {
                continue;
            }
            let marker = d.state.path().join(CLEAN_SHUTDOWN_FILE);
            let create = || {
                self.fs
                    .open(&marker, &OpenOptions::create_truncate())
                    .ctx("create clean shutdown marker", &marker)
            };
            let r = headroom::retry_on_no_space(
                &*self.fs,
                d.state.path(),
                create,
                StorageError::is_no_space,
            )
            .and_then(|f| {
                let bytes = crate::clean_shutdown::encode(broker_epoch);
                let written = f
                    .write_at(&bytes, 0)
                    .ctx("write clean shutdown marker", &marker)?;
                if written != bytes.len() {
                    return Err(StorageError::Io {
                        op: "write clean shutdown marker",
                        path: marker.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::WriteZero,
                            "short write of the clean shutdown marker",
                        ),
                    });
                }
                f.sync_data().ctx("fsync clean shutdown marker", &marker)
            })
            .and_then(|_| {
                self.fs
                    .sync_dir(d.state.path())
                    .ctx("fsync directory", d.state.path())
            });
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        self.logs.write().clear();
        first_err.map_or(Ok(()), Err)
    }

    /// The recovery point checkpointed for `tp` when the manager opened.
    pub fn checkpointed_recovery_point(&self, tp: &TopicPartition) -> Option<Offset> {
        self.dirs
            .iter()
            .find_map(|d| d.recovery_points.get(tp).copied())
    }

    /// Replaces `replication-offset-checkpoint` of every online log dir
    /// with the high watermarks of `hws` whose logs live there (a log not
    /// loaded counts where its directory is), atomically per dir (Kafka's
    /// `ReplicaManager.checkpointHighWatermarks`). Partitions without a log
    /// are left out. A full disk uses the dir's metadata headroom; another
    /// failure takes the dir offline. Returns the first error; every dir is
    /// attempted.
    pub fn write_high_watermarks(
        &self,
        hws: &[(TopicPartition, Offset)],
    ) -> Result<(), StorageError> {
        let _g = self.checkpoint_lock.lock();
        let mut per_dir = vec![Checkpoint::new(); self.dirs.len()];
        {
            let logs = self.logs.read();
            for (tp, hw) in hws {
                let idx = logs.get(tp).map(|(_, i)| *i).or_else(|| {
                    self.dirs
                        .iter()
                        .position(|d| self.fs.is_dir(&d.state.path().join(tp.dir_name())))
                });
                if let Some(i) = idx {
                    assert!(hw.0 >= 0, "negative high watermark {hw} for {tp}");
                    per_dir[i].insert(tp.clone(), *hw);
                }
            }
        }
        let mut first_err = None;
        for (d, entries) in self.dirs.iter().zip(per_dir) {
            if d.state.is_offline() {
                continue;
            }
            let path = d.state.path();
            let r = headroom::retry_on_no_space(
                &*self.fs,
                path,
                || checkpoint::write(&*self.fs, path, REPLICATION_OFFSET_CHECKPOINT, &entries),
                StorageError::is_no_space,
            );
            match r {
                Err(e) if e.is_resource_exhausted() => {
                    tracing::warn!(dir = %path.display(), error = %e, "high watermark checkpoint not written (disk full or out of descriptors)");
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    d.state.mark_offline(e.to_string());
                    first_err.get_or_insert(e);
                }
                Ok(()) => {}
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The high watermark `replication-offset-checkpoint` held for `tp`
    /// when the manager opened (`None` if it had none).
    pub fn checkpointed_high_watermark(&self, tp: &TopicPartition) -> Option<Offset> {
        self.dirs
            .iter()
            .find_map(|d| d.high_watermarks.get(tp).copied())
    }

    /// Log directories, in configuration order.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.state.path().to_path_buf())
            .collect()
    }
}

/// Logs closed at once at shutdown. Closing is fsync-bound (the log, both
/// indexes, a producer-state snapshot and its directory: about five syncs
/// per partition); ext4 commits concurrent fsyncs in one journal transaction,
/// so overlapping them cut the shutdown of a 1,000-partition broker from
/// 2-9 s (one log after another, on a busy machine) to a fraction of that.
const CLOSE_THREADS: usize = 8;

/// Flushes and closes `logs` on up to [`CLOSE_THREADS`] threads; returns the
/// first error (every log is attempted).
fn close_all(logs: &[Arc<Log>]) -> Option<StorageError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_err: Mutex<Option<StorageError>> = Mutex::new(None);
    let worker = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(log) = logs.get(i) else { return };
        if let Err(e) = log.close() {
            first_err.lock().get_or_insert(e);
        }
    };
    // One thread under a simulation: the order of file operations must
    // be the seed's.
    let threads = if sluice_runtime::is_simulated() {
        1
    } else {
        CLOSE_THREADS.min(logs.len())
    };
    if threads <= 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 1..threads {
                // A thread that cannot be spawned leaves its share to the others.
                let _ = std::thread::Builder::new()
                    .name("close-logs".into())
                    .spawn_scoped(scope, worker);
            }
            worker();
        });
    }
    first_err.into_inner()
}

/// The broker epoch of the directory's running marker if this boot of the
/// machine wrote it: the process died, its writes did not. A marker that
/// cannot be read names none (the crash counts as unclean).
fn running_epoch(fs: &dyn Fs, dir: &Path) -> Option<i64> {
    let boot = fs.boot_id()?;
    let bytes = checkpoint::read_bytes(
        fs,
        dir,
        crate::clean_shutdown::RUNNING_FILE,
        crate::clean_shutdown::MAX_MARKER_BYTES,
    )
    .inspect_err(
        |e| tracing::warn!(dir = %dir.display(), error = %e, "cannot read the running marker"),
    )
    .ok()??;
    let epoch = crate::clean_shutdown::decode_running(&bytes, &boot);
    if let Some(epoch) = epoch {
        tracing::info!(
            dir = %dir.display(),
            broker_epoch = epoch,
            "the previous process died but the machine did not: its writes are in the page cache"
        );
    }
    epoch
}
