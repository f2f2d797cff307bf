//! The health of a log directory shared by its logs, and the deferred
//! deletion of `*.deleted` files.

use super::*;

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
    pub(super) fn schedule(&self, paths: Vec<PathBuf>, due_ms: i64, now_ms: i64) {
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
