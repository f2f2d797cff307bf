//! The `quorum-state` file of the metadata log directory: the election
//! state that must survive a restart, in Kafka's JSON shape
//! (`ElectionState`, data version 0):
//!
//! ```text
//! {"clusterId":"","leaderId":1,"leaderEpoch":5,"votedId":-1,
//!  "appliedOffset":0,"currentVoters":[{"voterId":1}],"data_version":0}
//! ```
//!
//! Written durably: a temp file, fsynced, renamed over the old one, and
//! the directory fsynced, all through the [`Fs`] seam. A single voter
//! bumps the epoch and writes it on every start, before its first append
//! in that epoch, so epochs never go back even across crashes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_storage::fs::{read_exact_at, write_all_at};
use sluice_storage::{Fs, OpenOptions};

pub(crate) const QUORUM_STATE_FILE: &str = "quorum-state";
const QUORUM_STATE_TMP: &str = "quorum-state.tmp";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Voter {
    #[serde(rename = "voterId")]
    pub voter_id: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuorumState {
    #[serde(rename = "clusterId", default)]
    pub cluster_id: String,
    #[serde(rename = "leaderId")]
    pub leader_id: i32,
    #[serde(rename = "leaderEpoch")]
    pub leader_epoch: i32,
    #[serde(rename = "votedId", default = "minus_one")]
    pub voted_id: i32,
    #[serde(rename = "appliedOffset", default)]
    pub applied_offset: i64,
    #[serde(rename = "currentVoters", default)]
    pub current_voters: Vec<Voter>,
    #[serde(default)]
    pub data_version: i32,
}

fn minus_one() -> i32 {
    -1
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

/// A failed file write; `no_space` when the disk (or quota) is full, so
/// the caller may use the metadata headroom and try again.
#[derive(Debug)]
pub(crate) struct FileError {
    pub msg: String,
    pub no_space: bool,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

pub(crate) fn file_err(what: &str, path: &Path, e: std::io::Error) -> FileError {
    FileError {
        msg: io_err(what, path, &e),
        no_space: sluice_storage::headroom::is_no_space(&e),
    }
}

/// Reads the state; `Ok(None)` when there is no file.
pub(crate) fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<QuorumState>, String> {
    let path = dir.join(QUORUM_STATE_FILE);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let f = fs
        .open(&path, &OpenOptions::read())
        .map_err(|e| io_err("open", &path, e))?;
    let len = f.len().map_err(|e| io_err("stat", &path, e))?;
    if len > 1 << 20 {
        return Err(format!(
            "{} is {len} bytes: not a quorum state",
            path.display()
        ));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*f, &mut buf, 0).map_err(|e| io_err("read", &path, e))?;
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| io_err("parse", &path, e))
}

/// Replaces the state durably (temp file, fsync, rename, dir fsync).
pub(crate) fn write(fs: &dyn Fs, dir: &Path, state: &QuorumState) -> Result<(), FileError> {
    let tmp = dir.join(QUORUM_STATE_TMP);
    let path = dir.join(QUORUM_STATE_FILE);
    let json = serde_json::to_vec(state).map_err(|e| FileError {
        msg: io_err("encode", &path, e),
        no_space: false,
    })?;
    let f = fs
        .open(&tmp, &OpenOptions::create_truncate())
        .map_err(|e| file_err("create", &tmp, e))?;
    write_all_at(&*f, &json, 0).map_err(|(_, e)| file_err("write", &tmp, e))?;
    f.sync_data().map_err(|e| file_err("fsync", &tmp, e))?;
    drop(f);
    fs.rename(&tmp, &path)
        .map_err(|e| file_err("rename", &tmp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| file_err("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::SimFs;

    #[test]
    fn reads_kafkas_json_and_survives_a_crash_once_written() {
        let fs = SimFs::new();
        let dir = Path::new("/m/__cluster_metadata-0");
        fs.create_dir_all(dir).unwrap();
        let kafka = br#"{"clusterId":"","leaderId":1,"leaderEpoch":5,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1}],"data_version":0}"#;
        fs.set_contents(&dir.join(QUORUM_STATE_FILE), kafka);
        let s = read(&fs, dir).unwrap().unwrap();
        assert_eq!((s.leader_id, s.leader_epoch), (1, 5));
        let next = QuorumState {
            leader_epoch: 6,
            ..s
        };
        write(&fs, dir, &next).unwrap();
        fs.crash(1);
        assert_eq!(read(&fs, dir).unwrap().unwrap().leader_epoch, 6);
        assert_eq!(
            serde_json::to_string(&next).unwrap(),
            r#"{"clusterId":"","leaderId":1,"leaderEpoch":6,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1}],"data_version":0}"#
        );
    }
}
