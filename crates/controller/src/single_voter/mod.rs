//! [`SingleVoterLog`]: the one-node side of the [`MetadataLog`] seam, for a
//! node that is the only voter of its metadata quorum. It elects itself at
//! a new epoch on every start, and a batch is committed once it is durable
//! on its own disk.
//!
//! On disk, as Kafka's: `<metadata.log.dir>/__cluster_metadata-0/` holds
//! the log segments (a sluice-storage [`Log`]: RecordBatch v2, one Kafka
//! record per metadata record, null key, the value framed by
//! `MetadataRecord::encode`; the batch's partition leader epoch is the
//! epoch that appended it), the `quorum-state` file ([`quorum_state`]) and
//! the snapshots `<offset>-<epoch>.checkpoint` ([`snapshot`]). Every file
//! operation goes through the [`Fs`] seam.
//!
//! Invariants:
//! - **Commit = durable.** An append assigns offsets, writes its batch,
//!   fsyncs, and only then moves the high watermark, wakes listeners and
//!   resolves. Appends are serialized; each is one batch, so all of its
//!   records are there after a crash or none (a torn batch fails its CRC
//!   and the storage log's recovery cuts it off on the next open).
//! - **Epochs never go back.** The epoch of this process is one more than
//!   the highest of the quorum-state file, the latest snapshot and the
//!   last batch, and is written durably to quorum-state before any append.
//! - **Listeners pull** from the log (a bounded read at a time); nothing is
//!   queued for them. A listener starts with the latest snapshot if there
//!   is one, or gets it when compaction passed its position.
//! - **Bounded appends**: at most `max_records_per_append` records and
//!   `max_bytes_per_append` encoded bytes ([`LogError::TooLarge`]).
//! - **Snapshots**: every `snapshot_every_records` committed records a
//!   background task replays the log since the last snapshot, writes the
//!   new one durably, removes older ones and deletes the log segments
//!   wholly below it.
//! - **Fatal is final**: any storage error makes the log refuse every
//!   later append and end every listener with [`LogError::Fatal`].

mod codec;
mod listener;
mod quorum_state;
pub mod snapshot;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_metadata::{MetadataDelta, MetadataImage, MetadataRecord};
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::checkpoint::Checkpoint;
use sluice_storage::headroom;
use sluice_storage::log::FileDeleter;
use sluice_storage::producer_state::ProducerStateConfig;
use sluice_storage::{
    Clock, DecompressionBudget, Fs, HandleCache, LoadOptions, Log, LogConfig, LogDirState, LogEnv,
    StorageError, TopicPartition,
};
use tokio::sync::watch;

use crate::log::*;
use codec::{build_batch, decode_batch, encode_values};
use quorum_state::QuorumState;
pub use snapshot::SnapshotId;

/// The metadata log's topic name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Settings of the single-voter log.
#[derive(Clone, Debug)]
pub struct SingleVoterConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// `metadata.log.dir`: the log lives in `<dir>/__cluster_metadata-0/`.
    pub metadata_log_dir: PathBuf,
    /// Most records in one append (Kafka's controller: 10000 per operation).
    pub max_records_per_append: usize,
    /// Most encoded record bytes in one append (Kafka's raft batch limit,
    /// 8 MiB).
    pub max_bytes_per_append: usize,
    /// A snapshot is taken once this many records committed since the last.
    pub snapshot_every_records: u64,
    /// `metadata.log.segment.bytes`.
    pub segment_bytes: u64,
}

impl SingleVoterConfig {
    pub fn new(node_id: NodeId, metadata_log_dir: impl Into<PathBuf>) -> Self {
        SingleVoterConfig {
            node_id,
            metadata_log_dir: metadata_log_dir.into(),
            max_records_per_append: 10_000,
            max_bytes_per_append: 8 << 20,
            snapshot_every_records: 20_000,
            segment_bytes: 1 << 30,
        }
    }
}

struct State {
    /// The offset after the last durable record.
    high_watermark: Offset,
    snapshot: Option<Arc<(SnapshotId, MetadataImage)>>,
    since_snapshot: u64,
    snapshotting: bool,
    fatal: Option<String>,
    shutdown: bool,
}

struct Inner {
    config: SingleVoterConfig,
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
    log: Arc<Log>,
    epoch: LeaderEpoch,
    /// The log end when this epoch began: batches from here on are ours.
    epoch_start: Offset,
    state: Mutex<State>,
    /// Held while writing (appends, bootstrap) and at shutdown.
    write_lock: Mutex<()>,
    /// Held while a snapshot is taken, and at shutdown.
    snapshot_lock: Mutex<()>,
    changed: watch::Sender<u64>,
}

/// The metadata log of a node that is its own only voter.
pub struct SingleVoterLog {
    inner: Arc<Inner>,
}

fn fatal_io(e: impl std::fmt::Display) -> LogError {
    LogError::Fatal(e.to_string())
}

fn log_config(c: &SingleVoterConfig) -> LogConfig {
    LogConfig {
        segment_bytes: c.segment_bytes,
        segment_ms: i64::MAX,
        // Metadata batches are few and large next to a data log's: a
        // smaller preallocated offset index is plenty.
        segment_index_bytes: 1 << 20,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: i32::MAX as u32,
        message_timestamp_before_max_ms: i64::MAX,
        message_timestamp_after_max_ms: i64::MAX,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn open_storage_log(
    config: &SingleVoterConfig,
    dir: &Path,
    fs: &Arc<dyn Fs>,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<Log>, StorageError> {
    let producer_state = ProducerStateConfig::default();
    let env = LogEnv {
        fs: fs.clone(),
        clock: clock.clone(),
        dir_state: LogDirState::new(
            config.metadata_log_dir.clone(),
            fs.clone(),
            Checkpoint::new(),
        ),
        cache: HandleCache::new(16),
        deleter: FileDeleter::new(fs.clone()),
        recovery_progress_every: 0,
        producer_id_expiration_ms: Arc::new(std::sync::atomic::AtomicI64::new(
            producer_state.producer_id_expiration_ms,
        )),
        producer_state,
        decompression: DecompressionBudget::new(64 << 20),
    };
    // Always recovered as after a crash: the metadata log is small (it is
    // compacted by snapshots) and a torn tail must never be served.
    Log::open(
        dir.to_path_buf(),
        TopicPartition::new(METADATA_TOPIC, 0),
        log_config(config),
        env,
        LoadOptions::default(),
    )
}

impl SingleVoterLog {
    /// Opens (or creates) the log, recovers it, loads the latest snapshot,
    /// and elects this node at the next epoch (written durably to
    /// quorum-state before returning). Blocking I/O: call it at startup or
    /// from a blocking thread.
    pub fn open(
        config: SingleVoterConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
    ) -> Result<SingleVoterLog, LogError> {
        let dir = config.metadata_log_dir.join(format!("{METADATA_TOPIC}-0"));
        let log = open_storage_log(&config, &dir, &fs, &clock).map_err(fatal_io)?;
        let snapshots = snapshot::list(&*fs, &dir).map_err(LogError::Fatal)?;
        let latest = match snapshots.last() {
            Some(&id) => Some(Arc::new((
                id,
                snapshot::read(&*fs, &dir, id).map_err(LogError::Fatal)?,
            ))),
            None => None,
        };
        let log_end = log.log_end_offset();
        let snap_end = latest.as_ref().map(|s| s.0.end_offset);
        if let Some(end) = snap_end {
            if end > log_end {
                return Err(LogError::Fatal(format!(
                    "the metadata log ends at {} before its snapshot {}",
                    log_end.0, end.0
                )));
            }
            log.delete_records_before(end).map_err(fatal_io)?;
        }
        let stored = quorum_state::read(&*fs, &dir).map_err(LogError::Fatal)?;
        let last_batch_epoch = last_batch_epoch(&log)?;
        let last = [
            stored.as_ref().map_or(0, |s| s.leader_epoch),
            latest.as_ref().map_or(0, |s| s.0.epoch.0),
            last_batch_epoch.0,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let epoch = LeaderEpoch(
            last.checked_add(1)
                .ok_or_else(|| fatal_io("epoch overflow"))?,
        );
        let node = config.node_id.0;
        let state = QuorumState {
            cluster_id: String::new(),
            leader_id: node,
            leader_epoch: epoch.0,
            voted_id: node,
            applied_offset: 0,
            current_voters: vec![quorum_state::Voter { voter_id: node }],
            data_version: 0,
        };
        // On a full disk the metadata headroom of the log dir (if it is
        // one of the broker's) is used: the node must still start.
        headroom::retry_on_no_space(
            &*fs,
            &config.metadata_log_dir,
            || quorum_state::write(&*fs, &dir, &state),
            |e| e.no_space,
        )
        .map_err(|e| LogError::Fatal(e.to_string()))?;
        let since = (log_end.0 - snap_end.unwrap_or(log.log_start_offset()).0).max(0) as u64;
        tracing::info!(node, epoch = epoch.0, log_end = log_end.0, snapshot = ?snap_end.map(|o| o.0), "single-voter metadata log elected itself");
        Ok(SingleVoterLog {
            inner: Arc::new(Inner {
                config,
                dir,
                fs,
                clock,
                log,
                epoch,
                epoch_start: log_end,
                state: Mutex::new(State {
                    high_watermark: log_end,
                    snapshot: latest,
                    since_snapshot: since,
                    snapshotting: false,
                    fatal: None,
                    shutdown: false,
                }),
                write_lock: Mutex::new(()),
                snapshot_lock: Mutex::new(()),
                changed: watch::channel(0).0,
            }),
        })
    }

    /// The log's directory (`<metadata.log.dir>/__cluster_metadata-0`).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The latest snapshot, if any.
    pub fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.inner.state.lock().snapshot.as_ref().map(|s| s.0)
    }

    /// The first offset the log still holds (records below it are only in
    /// the snapshot).
    pub fn log_start_offset(&self) -> Offset {
        self.inner.log.log_start_offset()
    }

    /// Appends `records` as the first batch if the log is empty (no
    /// record, no snapshot): the first start of a cluster, or the in-place
    /// upgrade of an old single-node data directory. `Ok(false)` (nothing
    /// written) if the log already has content. The per-append limits do
    /// not apply; the batch is all-or-nothing like any other.
    pub async fn bootstrap(&self, records: Vec<MetadataRecord>) -> Result<bool, LogError> {
        if records.is_empty() {
            return Ok(false);
        }
        let (values, _) = encode_values(&records)?;
        let inner = self.inner.clone();
        let written = tokio::task::spawn_blocking(move || {
            let _w = inner.write_lock.lock();
            let st = inner.state.lock();
            if st.high_watermark > Offset::ZERO || st.snapshot.is_some() {
                return Ok(None);
            }
            drop(st);
            inner.write_locked(&values).map(Some)
        })
        .await
        .map_err(fatal_io)??;
        if written.is_some() {
            self.inner.maybe_snapshot();
        }
        Ok(written.is_some())
    }

    /// Waits until no snapshot is being taken (tests, benchmarks).
    #[doc(hidden)]
    pub async fn quiesce(&self) {
        let mut rx = self.inner.changed.subscribe();
        loop {
            if !self.inner.state.lock().snapshotting {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The epoch of the last batch in the log (0 if it is empty).
fn last_batch_epoch(log: &Log) -> Result<LeaderEpoch, LogError> {
    let end = log.log_end_offset();
    if end <= log.log_start_offset() {
        return Ok(LeaderEpoch(0));
    }
    let bytes = log.read_to_vec(Offset(end.0 - 1), 1).map_err(fatal_io)?;
    let (batch, _) = decode_batch(&bytes)?;
    Ok(batch.epoch)
}

impl Inner {
    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Makes the log fatal (once) and returns the error.
    fn fail(&self, e: impl std::fmt::Display) -> LogError {
        let mut st = self.state.lock();
        let reason = st.fatal.get_or_insert_with(|| e.to_string()).clone();
        drop(st);
        tracing::error!(%reason, "metadata log failed; refusing every later operation");
        self.notify();
        LogError::Fatal(reason)
    }

    fn check(&self) -> Result<(), LogError> {
        let st = self.state.lock();
        if let Some(f) = &st.fatal {
            return Err(LogError::Fatal(f.clone()));
        }
        if st.shutdown {
            return Err(LogError::Shutdown);
        }
        Ok(())
    }

    /// Writes one batch at the log end and makes it durable, then commits
    /// it. The caller holds `write_lock`.
    fn write_locked(&self, values: &[Vec<u8>]) -> Result<Offset, LogError> {
        self.check()?;
        let base = self.log.log_end_offset();
        let mut batch = build_batch(values, base, self.epoch, self.clock.now_ms())?;
        // A full disk refuses the append without writing anything; it is
        // tried once more with the metadata headroom released (a
        // DeleteTopics must get through to free space), then it is fatal.
        let info = headroom::retry_on_no_space(
            &*self.fs,
            &self.config.metadata_log_dir,
            || self.log.append_as_leader(&mut batch, self.epoch),
            StorageError::is_no_space,
        )
        .map_err(|e| self.fail(e))?;
        assert_eq!(
            info.first_offset, base,
            "the metadata log moved under its writer"
        );
        assert_eq!(info.record_count as usize, values.len());
        self.log
            .flush_until(info.last_offset)
            .map_err(|e| self.fail(e))?;
        let mut st = self.state.lock();
        st.high_watermark = Offset(info.last_offset.0 + 1);
        st.since_snapshot += values.len() as u64;
        drop(st);
        self.notify();
        Ok(info.last_offset)
    }

    /// Reads the committed batches from `from` (a batch boundary), at most
    /// about `max_bytes` of them (at least one).
    fn read_batches(
        &self,
        from: Offset,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBatch>, StorageOrLog> {
        let hw = self.state.lock().high_watermark;
        let slice = self
            .log
            .read(from, max_bytes, Some(hw), true)
            .map_err(StorageOrLog::Storage)?;
        let Some(slice) = slice else {
            return Ok(Vec::new());
        };
        let bytes = slice.read_to_vec().map_err(StorageOrLog::Storage)?;
        let mut out = Vec::new();
        let mut at = 0;
        let mut expected = from;
        while at < bytes.len() {
            let (batch, size) = decode_batch(&bytes[at..]).map_err(StorageOrLog::Log)?;
            if batch.base_offset != expected {
                return Err(StorageOrLog::Log(LogError::Fatal(format!(
                    "metadata batch at {} where {} was expected",
                    batch.base_offset.0, expected.0
                ))));
            }
            expected = Offset(batch.last_offset().0 + 1);
            out.push(batch);
            at += size;
        }
        Ok(out)
    }

    /// Starts a background snapshot when enough records accumulated.
    fn maybe_snapshot(self: &Arc<Self>) {
        let mut st = self.state.lock();
        if st.snapshotting
            || st.shutdown
            || st.fatal.is_some()
            || st.since_snapshot < self.config.snapshot_every_records
        {
            return;
        }
        st.snapshotting = true;
        drop(st);
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = inner.take_snapshot();
            if let Err(e) = result {
                inner.fail(e);
            }
            inner.state.lock().snapshotting = false;
            inner.notify();
        });
    }

    /// Replays the log from the last snapshot to the high watermark, writes
    /// the snapshot, and compacts the log below it.
    fn take_snapshot(&self) -> Result<(), String> {
        let _s = self.snapshot_lock.lock();
        let (base, target) = {
            let st = self.state.lock();
            if st.shutdown {
                return Ok(());
            }
            (st.snapshot.clone(), st.high_watermark)
        };
        let (mut next, image) = match &base {
            Some(s) => (s.0.end_offset, s.1.clone()),
            None => (self.log.log_start_offset(), MetadataImage::empty()),
        };
        let mut delta = MetadataDelta::new(image);
        let mut epoch = base.as_ref().map_or(LeaderEpoch(0), |s| s.0.epoch);
        while next < target {
            let batches = self
                .read_batches(next, 1 << 20)
                .map_err(|e| e.to_string())?;
            if batches.is_empty() {
                return Err(format!(
                    "no metadata batch at {} below {}",
                    next.0, target.0
                ));
            }
            for b in batches.into_iter().take_while(|b| b.base_offset < target) {
                for (i, r) in b.records.iter().enumerate() {
                    let offset = Offset(b.base_offset.0 + i as i64);
                    delta
                        .replay(offset, b.epoch, r)
                        .map_err(|e| format!("record at {} does not replay: {e}", offset.0))?;
                }
                epoch = b.epoch;
                next = Offset(b.last_offset().0 + 1);
            }
        }
        if base.as_ref().is_some_and(|s| s.0.end_offset >= next) {
            return Ok(());
        }
        let id = SnapshotId {
            end_offset: next,
            epoch,
        };
        let (image, _) = delta.apply();
        let written = headroom::retry_on_no_space(
            &*self.fs,
            &self.config.metadata_log_dir,
            || snapshot::write(&*self.fs, &self.dir, id, &image, self.clock.now_ms()),
            |e| e.no_space,
        );
        match written {
            Ok(()) => {}
            // The log is intact; the snapshot is retried after the next
            // append (its partial file goes at the next open).
            Err(e) if e.no_space => {
                tracing::warn!(error = %e, "disk full: metadata snapshot postponed");
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        }
        {
            let mut st = self.state.lock();
            st.since_snapshot = (st.high_watermark.0 - id.end_offset.0).max(0) as u64;
            st.snapshot = Some(Arc::new((id, image)));
        }
        self.notify();
        snapshot::remove_older(&*self.fs, &self.dir, id)?;
        self.log
            .delete_records_before(id.end_offset)
            .map_err(|e| e.to_string())?;
        tracing::debug!(
            end_offset = id.end_offset.0,
            epoch = id.epoch.0,
            "metadata snapshot taken"
        );
        Ok(())
    }
}

/// A read error: storage (an offset compacted away is not fatal for a
/// listener) or the log's own verdict.
#[derive(Debug)]
enum StorageOrLog {
    Storage(StorageError),
    Log(LogError),
}

impl std::fmt::Display for StorageOrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageOrLog::Storage(e) => write!(f, "{e}"),
            StorageOrLog::Log(e) => write!(f, "{e}"),
        }
    }
}

impl MetadataLog for SingleVoterLog {
    fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    fn leader_and_epoch(&self) -> LeaderAndEpoch {
        LeaderAndEpoch {
            leader: Some(self.inner.config.node_id),
            epoch: self.inner.epoch,
        }
    }

    fn append(
        &self,
        epoch: LeaderEpoch,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<Offset, LogError>> {
        Box::pin(async move {
            let inner = &self.inner;
            inner.check()?;
            if epoch != inner.epoch {
                return Err(LogError::NotLeader(self.leader_and_epoch()));
            }
            let (values, bytes) = encode_values(&records)?;
            if records.is_empty()
                || records.len() > inner.config.max_records_per_append
                || bytes > inner.config.max_bytes_per_append
            {
                return Err(LogError::TooLarge {
                    records: records.len(),
                    bytes,
                });
            }
            let writer = inner.clone();
            let last = tokio::task::spawn_blocking(move || {
                let _w = writer.write_lock.lock();
                writer.write_locked(&values)
            })
            .await
            .map_err(|e| inner.fail(e))??;
            inner.maybe_snapshot();
            Ok(last)
        })
    }

    fn listen(&self) -> Box<dyn LogListener> {
        Box::new(listener::SingleVoterListener::new(self.inner.clone()))
    }

    fn quorum_info(&self) -> QuorumInfo {
        let hw = self.inner.state.lock().high_watermark;
        let now = self.inner.clock.now_ms();
        QuorumInfo {
            leader: self.leader_and_epoch(),
            high_watermark: hw,
            voters: vec![VoterState {
                node: self.inner.config.node_id,
                log_end_offset: hw,
                last_fetch_timestamp_ms: now,
                last_caught_up_timestamp_ms: now,
            }],
            observers: Vec::new(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.state.lock().shutdown = true;
            self.inner.notify();
            let inner = self.inner.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let _w = inner.write_lock.lock();
                let _s = inner.snapshot_lock.lock();
                if let Err(e) = inner.log.flush() {
                    tracing::warn!(error = %e, "flushing the metadata log at shutdown failed");
                }
            })
            .await;
        })
    }
}
