//! openraft's log storage on disk: `raft-state` (the vote and the last
//! purged log id, written atomically) and `raft-log` (one checksummed frame
//! per entry, appended in index order).
//!
//! Durability (each step is fsynced before openraft hears of it):
//! - `save_vote` rewrites `raft-state` atomically before it returns;
//! - `append` writes the entries' frames, fsyncs `raft-log`, and only then
//!   calls the `LogFlushed` callback;
//! - `truncate` cuts the file at the first removed frame and fsyncs;
//! - `purge` records the purged id in `raft-state`, then rewrites
//!   `raft-log` without the purged entries (temporary file, fsync, rename,
//!   directory fsync). A crash between the two leaves purged frames that
//!   recovery skips.
//!
//! Recovery reads every frame: entries must be consecutive; a bad frame
//! that no intact frame follows (anywhere after it) is the torn tail of an
//! unsynced append and is cut off; a bad frame followed by an intact one is
//! a corrupt durable entry and the log refuses to open
//! ([`crate::LogError::Fatal`]). Limit: damage to the very last durable
//! entry looks like a torn tail and is dropped with a WARN (the entry is
//! still on the other voters).
//!
//! The entries are also kept in memory (the log is compacted by snapshots,
//! so it stays small), shared with readers and listeners.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogId, RaftLogReader, Vote};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sluice_storage::fs::write_all_at;
use sluice_storage::{FileHandle, Fs, OpenOptions};

use super::frame::{self, Parsed};
use super::{storage_error, Entry, FatalLatch, LogId, RaftTypes, StorageError};
use crate::LogError;

const STATE_FILE: &str = "raft-state";
const LOG_FILE: &str = "raft-log";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PersistentState {
    vote: Option<Vote<u64>>,
    last_purged: Option<LogId>,
}

/// The entries in memory, shared by the store, its readers and listeners.
#[derive(Debug, Default)]
pub struct LogEntries {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
}

impl LogEntries {
    pub fn get(&self, index: u64) -> Option<&Entry> {
        self.entries.get(&index)
    }
    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(self.last_purged)
    }
}

/// A read handle on the entries (openraft's `LogReader`).
#[derive(Clone, Debug)]
pub struct LogReader(pub(crate) Arc<RwLock<LogEntries>>);

impl RaftLogReader<RaftTypes> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .0
            .read()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// openraft's log storage (see the module docs).
pub struct LogStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    file: Arc<dyn FileHandle>,
    /// Where the next frame goes.
    end: u64,
    /// File position of each entry's frame.
    positions: BTreeMap<u64, u64>,
    state: PersistentState,
    shared: Arc<RwLock<LogEntries>>,
    fatal: Arc<FatalLatch>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, recovering it.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, fatal: Arc<FatalLatch>) -> Result<Self, LogError> {
        let fatal_err = |what: &str, e: &dyn std::fmt::Display| {
            let msg = format!("opening the metadata log in {}: {what}: {e}", dir.display());
            fatal.set(msg.clone());
            LogError::Fatal(msg)
        };
        fs.create_dir_all(dir)
            .map_err(|e| fatal_err("create", &e))?;
        let state: PersistentState = match frame::read_atomic(&*fs, dir, STATE_FILE) {
            Ok(Some(bytes)) => frame::decode(&bytes).map_err(|e| fatal_err(STATE_FILE, &e))?,
            Ok(None) => PersistentState::default(),
            Err(e) => return Err(fatal_err(STATE_FILE, &e)),
        };
        let path = dir.join(LOG_FILE);
        let bytes = frame::read_file(&*fs, &path)
            .map_err(|e| fatal_err(LOG_FILE, &e))?
            .unwrap_or_default();
        let recovered = recover(&bytes, state.last_purged).map_err(|e| fatal_err(LOG_FILE, &e))?;
        let file = fs
            .open(&path, &OpenOptions::read_write_create())
            .map_err(|e| fatal_err(LOG_FILE, &e))?;
        if recovered.end < bytes.len() as u64 {
            tracing::warn!(
                "metadata log {}: dropping a torn tail of {} bytes at {}",
                path.display(),
                bytes.len() as u64 - recovered.end,
                recovered.end
            );
            file.set_len(recovered.end)
                .and_then(|_| file.sync_data())
                .map_err(|e| fatal_err(LOG_FILE, &e))?;
        }
        fs.sync_dir(dir).map_err(|e| fatal_err("sync dir", &e))?;
        let shared = Arc::new(RwLock::new(LogEntries {
            entries: recovered.entries,
            last_purged: state.last_purged,
        }));
        Ok(LogStore {
            fs,
            dir: dir.to_path_buf(),
            file,
            end: recovered.end,
            positions: recovered.positions,
            state,
            shared,
            fatal,
        })
    }

    /// If the stored vote says this node (`me`) led, votes for it in the
    /// next term instead, so that on restart it campaigns in a new term
    /// rather than resuming the old one. Returns whether it did.
    pub fn resign_leadership(&mut self, me: u64) -> Result<bool, LogError> {
        let Some(v) = self.state.vote else {
            return Ok(false);
        };
        if !(v.committed && v.leader_id.voted_for == Some(me)) {
            return Ok(false);
        }
        self.state.vote = Some(Vote::new(v.leader_id.term + 1, me));
        self.save_state().map_err(|e| {
            let msg = format!("saving the vote: {e}");
            self.fatal.set(msg.clone());
            LogError::Fatal(msg)
        })?;
        Ok(true)
    }

    /// The entries, for listeners.
    pub fn entries(&self) -> Arc<RwLock<LogEntries>> {
        self.shared.clone()
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> StorageError {
        storage_error(&self.fatal, what, e)
    }

    fn save_state(&self) -> io::Result<()> {
        let bytes = frame::encode(&self.state)?;
        frame::write_atomically(&*self.fs, &self.dir, STATE_FILE, &bytes)
    }

    fn write_frames(&mut self, entries: &[Entry]) -> io::Result<Vec<(u64, u64)>> {
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for e in entries {
            positions.push((e.log_id.index, self.end + buf.len() as u64));
            frame::put_frame(&frame::encode(e)?, &mut buf);
        }
        write_all_at(&*self.file, &buf, self.end).map_err(|(_, e)| e)?;
        self.file.sync_data()?;
        self.end += buf.len() as u64;
        Ok(positions)
    }

    /// Rewrites `raft-log` with the entries in memory.
    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut buf = Vec::new();
        let mut positions = BTreeMap::new();
        for (&i, e) in &self.shared.read().entries {
            positions.insert(i, buf.len() as u64);
            frame::put_frame(&frame::encode(e)?, &mut buf);
        }
        let file = self.fs.open(&tmp, &OpenOptions::create_truncate())?;
        write_all_at(&*file, &buf, 0).map_err(|(_, e)| e)?;
        file.sync_data()?;
        drop(file);
        let path = self.dir.join(LOG_FILE);
        self.fs.rename(&tmp, &path)?;
        self.fs.sync_dir(&self.dir)?;
        self.file = self.fs.open(&path, &OpenOptions::read_write())?;
        self.end = buf.len() as u64;
        self.positions = positions;
        Ok(())
    }
}

struct Recovered {
    entries: BTreeMap<u64, Entry>,
    positions: BTreeMap<u64, u64>,
    end: u64,
}

/// Parses the log file (see the module docs for the rules).
fn recover(bytes: &[u8], last_purged: Option<LogId>) -> io::Result<Recovered> {
    let corrupt = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut out = Recovered {
        entries: BTreeMap::new(),
        positions: BTreeMap::new(),
        end: 0,
    };
    let mut pos = 0usize;
    let mut last: Option<u64> = None;
    while pos < bytes.len() {
        let (payload, total) = match frame::parse_frame(&bytes[pos..]) {
            Parsed::Frame(p, t) => (p, t),
            Parsed::Bad => {
                if let Some(at) = frame::any_frame_in(&bytes[pos + 1..]) {
                    return Err(corrupt(format!(
                        "corrupt entry at byte {pos} followed by an intact entry at byte {}",
                        pos + 1 + at
                    )));
                }
                break; // the torn tail of an unsynced append
            }
        };
        let entry: Entry = frame::decode(payload)
            .map_err(|e| corrupt(format!("undecodable entry at byte {pos}: {e}")))?;
        let index = entry.log_id.index;
        if let Some(l) = last {
            if index != l + 1 {
                return Err(corrupt(format!(
                    "entry {index} at byte {pos} follows entry {l}"
                )));
            }
        }
        last = Some(index);
        if last_purged.is_none_or(|p| index > p.index) {
            out.positions.insert(index, pos as u64);
            out.entries.insert(index, entry);
        }
        pos += total;
        out.end = pos as u64;
    }
    if let (Some(p), Some((&first, _))) = (last_purged, out.entries.first_key_value()) {
        if first != p.index + 1 {
            return Err(corrupt(format!(
                "first entry {first} does not follow the purged {}",
                p.index
            )));
        }
    }
    Ok(out)
}

impl RaftLogReader<RaftTypes> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        LogReader(self.shared.clone())
            .try_get_log_entries(range)
            .await
    }
}

impl RaftLogStorage<RaftTypes> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<RaftTypes>, StorageError> {
        let g = self.shared.read();
        Ok(LogState {
            last_purged_log_id: g.last_purged,
            last_log_id: g.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader(self.shared.clone())
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let old = self.state.vote.replace(*vote);
        if let Err(e) = sluice_runtime::disk_io(|| self.save_state()).await {
            self.state.vote = old;
            return Err(self.err("saving the vote", e));
        }
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        Ok(self.state.vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<RaftTypes>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // (A slow simulated disk holds the append here, as a slow fsync
        // would: see `sluice_runtime::disk`.)
        let written = sluice_runtime::disk_io(|| self.write_frames(&entries)).await;
        match written {
            Ok(positions) => {
                self.positions.extend(positions);
                let mut g = self.shared.write();
                for e in entries {
                    g.entries.insert(e.log_id.index, e);
                }
                drop(g);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = self.err("appending to the metadata log", &e);
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let Some(&pos) = self.positions.get(&log_id.index) else {
            return Ok(()); // nothing at or after it
        };
        let file = &self.file;
        if let Err(e) =
            sluice_runtime::disk_io(|| file.set_len(pos).and_then(|_| file.sync_data())).await
        {
            return Err(self.err("truncating the metadata log", e));
        }
        self.end = pos;
        self.positions.split_off(&log_id.index);
        self.shared.write().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if self
            .state
            .last_purged
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        self.state.last_purged = Some(log_id);
        if let Err(e) = self.save_state() {
            return Err(self.err("saving the purged log id", e));
        }
        {
            let mut g = self.shared.write();
            g.last_purged = Some(log_id);
            let rest = g.entries.split_off(&(log_id.index + 1));
            g.entries = rest;
        }
        if let Err(e) = self.rewrite() {
            return Err(self.err("rewriting the purged metadata log", e));
        }
        Ok(())
    }
}
