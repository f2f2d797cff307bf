//! openraft's state machine for the metadata log: the image of the
//! committed records, the running record offset, and snapshots.
//!
//! Applying an entry: a blank entry only moves `last_applied`; a
//! membership entry records the membership; a batch whose entry term is
//! the epoch its appender named gets the next `records.len()` offsets and
//! is replayed onto the image (a record the image refuses is logged and
//! skipped, on every node alike: replay is deterministic); a batch appended
//! in another term is ignored ([`ApplyResult::EpochMismatch`]).
//!
//! Snapshots hold the image's canonical records (`write_snapshot`), its
//! provenance and the next offset. Building one and installing one both
//! write the `snapshot` file atomically (fsynced) before openraft may
//! purge the log behind it. The latest snapshot is also loaded at start.
//!
//! `floor` is the index up to which listeners must take the snapshot
//! rather than the log: the snapshot loaded at start or installed from the
//! leader (entries below an installed snapshot may be ones this node never
//! applied).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sluice_metadata::{MetadataDelta, MetadataImage, MetadataProvenance, MetadataRecord};
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::Fs;
use tokio::sync::watch;

use super::frame;
use super::{storage_error, ApplyResult, Entry, FatalLatch, LogId, RaftTypes, StorageError};
use crate::LogError;

const SNAPSHOT_FILE: &str = "snapshot";

/// A snapshot as stored and as sent to followers.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    /// The snapshot data openraft transfers ([`SnapshotPayload`], encoded).
    data: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotPayload {
    next_offset: i64,
    provenance_offset: i64,
    provenance_epoch: i32,
    records: Vec<Vec<u8>>,
}

/// A snapshot in memory.
#[derive(Debug)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta<u64, openraft::BasicNode>,
    pub data: Vec<u8>,
    pub image: MetadataImage,
    pub next_offset: i64,
}

impl StoredSnapshot {
    pub fn index(&self) -> Option<u64> {
        self.meta.last_log_id.map(|l| l.index)
    }
    pub fn term(&self) -> u64 {
        self.meta.last_log_id.map_or(0, |l| l.leader_id.term)
    }
}

/// What the state machine has applied.
#[derive(Debug)]
pub struct SmState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<u64, openraft::BasicNode>,
    pub image: MetadataImage,
    pub next_offset: i64,
    pub snapshot: Option<Arc<StoredSnapshot>>,
    /// Listeners take the snapshot for positions at or below this index.
    pub floor: Option<u64>,
    /// The next offset after each applied entry (since the last snapshot),
    /// for the log-end offsets of [`crate::QuorumInfo`].
    pub offsets: std::collections::BTreeMap<u64, i64>,
    pub shutdown: bool,
}

/// The state shared by the state machine, its snapshot builder, listeners
/// and the node.
#[derive(Debug)]
pub struct SmShared {
    pub state: Mutex<SmState>,
    /// Bumped after each apply, install, shutdown or fatal error.
    pub changed: watch::Sender<u64>,
    pub fatal: Arc<FatalLatch>,
}

impl SmShared {
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
    /// The offset after the records of entries up to `index`.
    pub fn offset_after(&self, index: Option<u64>) -> i64 {
        let g = self.state.lock();
        let Some(index) = index else { return 0 };
        if let Some((_, &o)) = g.offsets.range(..=index).next_back() {
            return o;
        }
        g.snapshot.as_ref().map_or(0, |s| s.next_offset)
    }
}

/// openraft's state machine (see the module docs).
pub struct StateMachine {
    shared: Arc<SmShared>,
    fs: Arc<dyn Fs>,
    dir: PathBuf,
}

impl StateMachine {
    /// Opens the state machine in `dir`: empty, or as of its last snapshot.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, fatal: Arc<FatalLatch>) -> Result<Self, LogError> {
        let fail = |e: &dyn std::fmt::Display| {
            let msg = format!("loading the metadata snapshot in {}: {e}", dir.display());
            fatal.set(msg.clone());
            LogError::Fatal(msg)
        };
        fs.create_dir_all(dir).map_err(|e| fail(&e))?;
        let mut state = SmState {
            last_applied: None,
            membership: StoredMembership::default(),
            image: MetadataImage::empty(),
            next_offset: 0,
            snapshot: None,
            floor: None,
            offsets: Default::default(),
            shutdown: false,
        };
        if let Some(bytes) = frame::read_atomic(&*fs, dir, SNAPSHOT_FILE).map_err(|e| fail(&e))? {
            let file: SnapshotFile = frame::decode(&bytes).map_err(|e| fail(&e))?;
            let snap = load_snapshot(file.meta, file.data).map_err(|e| fail(&e))?;
            install(&mut state, Arc::new(snap));
        }
        let (changed, _) = watch::channel(0);
        Ok(StateMachine {
            shared: Arc::new(SmShared {
                state: Mutex::new(state),
                changed,
                fatal,
            }),
            fs,
            dir: dir.to_path_buf(),
        })
    }

    pub fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }

    fn persist(&self, snap: &StoredSnapshot) -> std::io::Result<()> {
        let file = SnapshotFile {
            meta: snap.meta.clone(),
            data: snap.data.clone(),
        };
        frame::write_atomically(&*self.fs, &self.dir, SNAPSHOT_FILE, &frame::encode(&file)?)
    }
}

fn install(state: &mut SmState, snap: Arc<StoredSnapshot>) {
    state.last_applied = snap.meta.last_log_id;
    state.membership = snap.meta.last_membership.clone();
    state.image = snap.image.clone();
    state.next_offset = snap.next_offset;
    state.floor = snap.index();
    state.offsets.clear();
    if let Some(i) = snap.index() {
        state.offsets.insert(i, snap.next_offset);
    }
    state.snapshot = Some(snap);
}

/// Decodes a snapshot's data into its image.
fn load_snapshot(
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
) -> std::io::Result<StoredSnapshot> {
    let bad = |e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    };
    let payload: SnapshotPayload = frame::decode(&data)?;
    let records = payload
        .records
        .iter()
        .map(|r| MetadataRecord::decode(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let provenance = MetadataProvenance {
        last_offset: Offset(payload.provenance_offset),
        last_epoch: LeaderEpoch(payload.provenance_epoch),
    };
    let image = MetadataImage::from_snapshot(&records, provenance).map_err(|e| bad(&e))?;
    Ok(StoredSnapshot {
        meta,
        data,
        image,
        next_offset: payload.next_offset,
    })
}

/// Decodes a batch's records; a record that does not decode was never
/// written by a leader of ours (it passed the frame checksum), so the log
/// cannot be trusted.
pub(crate) fn decode_records(records: &[Vec<u8>]) -> Result<Vec<MetadataRecord>, String> {
    records
        .iter()
        .map(|r| MetadataRecord::decode(r).map_err(|e| format!("undecodable metadata record: {e}")))
        .collect()
}

/// Applies one entry to the state.
fn apply_entry(state: &mut SmState, entry: &Entry) -> Result<ApplyResult, String> {
    let log_id = entry.log_id;
    state.last_applied = Some(log_id);
    let result = match &entry.payload {
        EntryPayload::Blank => ApplyResult::None,
        EntryPayload::Membership(m) => {
            state.membership = StoredMembership::new(Some(log_id), m.clone());
            ApplyResult::None
        }
        EntryPayload::Normal(batch) if batch.epoch as u64 != log_id.leader_id.term => {
            ApplyResult::EpochMismatch
        }
        EntryPayload::Normal(batch) => {
            let records = decode_records(&batch.records)?;
            let base = state.next_offset;
            let epoch = LeaderEpoch(batch.epoch);
            let mut delta = MetadataDelta::new(state.image.clone());
            for (i, r) in records.iter().enumerate() {
                let offset = Offset(base + i as i64);
                if let Err(e) = delta.replay(offset, epoch, r) {
                    tracing::warn!("metadata record at offset {} not applied: {e}", offset.0);
                }
            }
            state.image = delta.apply().0;
            state.next_offset = base + records.len() as i64;
            ApplyResult::Committed {
                base_offset: base,
                last_offset: state.next_offset - 1,
            }
        }
    };
    state.offsets.insert(log_id.index, state.next_offset);
    Ok(result)
}

impl RaftStateMachine<RaftTypes> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, openraft::BasicNode>), StorageError> {
        let g = self.shared.state.lock();
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        {
            let mut g = self.shared.state.lock();
            for entry in entries {
                match apply_entry(&mut g, &entry) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        drop(g);
                        self.shared.notify();
                        return Err(storage_error(&self.shared.fatal, "applying", e));
                    }
                }
            }
        }
        self.shared.notify();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            fs: self.fs.clone(),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let snap = load_snapshot(meta.clone(), snapshot.into_inner())
            .map_err(|e| storage_error(&self.shared.fatal, "installing a metadata snapshot", e))?;
        self.persist(&snap)
            .map_err(|e| storage_error(&self.shared.fatal, "writing the metadata snapshot", e))?;
        install(&mut self.shared.state.lock(), Arc::new(snap));
        self.shared.notify();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<RaftTypes>>, StorageError> {
        let g = self.shared.state.lock();
        Ok(g.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}

/// Builds snapshots of the applied state (openraft runs it beside apply).
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
    fs: Arc<dyn Fs>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<RaftTypes> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<RaftTypes>, StorageError> {
        let (meta, image, next_offset) = {
            let g = self.shared.state.lock();
            let id = g.last_applied.map_or("none".to_owned(), |l| {
                format!("{}-{}-{}", l.leader_id.term, l.index, g.next_offset)
            });
            let meta = SnapshotMeta {
                last_log_id: g.last_applied,
                last_membership: g.membership.clone(),
                snapshot_id: id,
            };
            (meta, g.image.clone(), g.next_offset)
        };
        let fatal = &self.shared.fatal;
        let mut records = Vec::new();
        for r in image.write_snapshot() {
            let mut buf = Vec::new();
            r.encode(&mut buf)
                .map_err(|e| storage_error(fatal, "encoding the snapshot", e))?;
            records.push(buf);
        }
        let prov = image.provenance();
        let payload = SnapshotPayload {
            next_offset,
            provenance_offset: prov.last_offset.0,
            provenance_epoch: prov.last_epoch.0,
            records,
        };
        let data = frame::encode(&payload)
            .map_err(|e| storage_error(fatal, "encoding the snapshot", e))?;
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
            image,
            next_offset,
        };
        let sm = StateMachine {
            shared: self.shared.clone(),
            fs: self.fs.clone(),
            dir: self.dir.clone(),
        };
        sm.persist(&snap)
            .map_err(|e| storage_error(fatal, "writing the metadata snapshot", e))?;
        let mut g = self.shared.state.lock();
        if let Some(i) = snap.index() {
            let keep = g.offsets.split_off(&i);
            g.offsets = keep;
        }
        // A newer snapshot may have been installed meanwhile.
        if g.snapshot
            .as_ref()
            .is_none_or(|s| s.index() <= snap.index())
        {
            g.snapshot = Some(Arc::new(snap));
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
