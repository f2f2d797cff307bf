//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`):
//! for each leader epoch this replica holds data of, the offset of its first
//! batch, kept in `<partition dir>/leader-epoch-checkpoint` in Kafka's text
//! format:
//!
//! ```text
//! 0          <- version
//! 2          <- number of entries
//! 0 0        <- epoch startOffset
//! 3 1200
//! ```
//!
//! Entries are ordered with strictly increasing epochs and strictly
//! increasing start offsets (asserted before every write and checked on
//! every read; a file that breaks them counts as corrupt and the log
//! rebuilds the cache from its batch headers). The file is replaced
//! atomically (tmp + fsync + rename + directory fsync) after every change.
//!
//! The in-memory operations are those of Kafka's cache: `assign`,
//! `truncate_from_end` (log truncation), `truncate_from_start` (the log
//! start moved: the entry covering it is moved up to it), `clear` and
//! `end_offset_for` (OffsetForLeaderEpoch and the follower's divergence
//! check).

use std::path::{Path, PathBuf};

use sluice_record::{LeaderEpoch, Offset};

use crate::checkpoint;
use crate::error::StorageError;
use crate::fs::Fs;

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
const VERSION: i32 = 0;
/// Files bigger than this are corrupt (a million entries take ~30 MB;
/// a partition sees one entry per leader change).
pub const MAX_EPOCH_CHECKPOINT_BYTES: u64 = 32 << 20;

/// Kafka's text form of `entries`.
pub fn format(entries: &[(LeaderEpoch, Offset)]) -> String {
    let mut s = format!("{VERSION}\n{}\n", entries.len());
    for (e, o) in entries {
        s.push_str(&format!("{} {}\n", e.0, o.0));
    }
    s
}

/// Parses a `leader-epoch-checkpoint`; `None` if it is malformed or its
/// entries break the ordering rules. Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Option<Vec<(LeaderEpoch, Offset)>> {
    if bytes.len() as u64 > MAX_EPOCH_CHECKPOINT_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<i32>().ok()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    // Each entry takes at least 4 bytes ("0 0\n"): a count the file cannot
    // hold is refused before anything is allocated for it.
    if count > bytes.len() / 4 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let epoch: i32 = parts.next()?.parse().ok()?;
        let start: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        out.push((LeaderEpoch(epoch), Offset(start)));
    }
    if out.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return None;
    }
    well_formed(&out).then_some(out)
}

/// Epochs and start offsets non-negative and strictly increasing.
pub fn well_formed(entries: &[(LeaderEpoch, Offset)]) -> bool {
    entries.iter().all(|(e, o)| e.0 >= 0 && o.0 >= 0)
        && entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
}

/// The in-memory cache and where its file lives. Mutators change memory
/// only and say whether anything changed; [`LeaderEpochCache::persist`]
/// writes the file.
#[derive(Clone, Debug)]
pub struct LeaderEpochCache {
    dir: PathBuf,
    entries: Vec<(LeaderEpoch, Offset)>,
}

/// What [`LeaderEpochCache::load`] found on disk.
#[derive(Debug)]
pub enum Loaded {
    Ok(LeaderEpochCache),
    /// No file: the cache must be rebuilt from the log.
    Missing(LeaderEpochCache),
    /// A file that does not parse or breaks the rules (logged): rebuild.
    Corrupt(LeaderEpochCache),
}

impl LeaderEpochCache {
    /// An empty cache for the partition directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LeaderEpochCache {
            dir: dir.into(),
            entries: Vec::new(),
        }
    }

    /// Reads `<dir>/leader-epoch-checkpoint`. I/O errors are errors; bad
    /// contents are [`Loaded::Corrupt`] with an empty cache.
    pub fn load(fs: &dyn Fs, dir: &Path) -> Result<Loaded, StorageError> {
        let empty = LeaderEpochCache::new(dir);
        let Some(bytes) =
            checkpoint::read_bytes(fs, dir, LEADER_EPOCH_CHECKPOINT, MAX_EPOCH_CHECKPOINT_BYTES)?
        else {
            return Ok(Loaded::Missing(empty));
        };
        match parse(&bytes) {
            Some(entries) => Ok(Loaded::Ok(LeaderEpochCache {
                dir: dir.to_path_buf(),
                entries,
            })),
            None => {
                tracing::warn!(dir = %dir.display(), "malformed leader-epoch-checkpoint, rebuilding it from the log");
                Ok(Loaded::Corrupt(empty))
            }
        }
    }

    /// Atomically replaces the file with the entries (the dir's metadata
    /// headroom is used on a full disk).
    pub fn persist(&self, fs: &dyn Fs) -> Result<(), StorageError> {
        assert!(
            well_formed(&self.entries),
            "leader epoch cache out of order: {:?}",
            self.entries
        );
        let text = format(&self.entries);
        let write =
            || checkpoint::write_bytes(fs, &self.dir, LEADER_EPOCH_CHECKPOINT, text.as_bytes());
        match self.dir.parent() {
            Some(log_dir) => {
                crate::headroom::retry_on_no_space(fs, log_dir, write, StorageError::is_no_space)
            }
            None => write(),
        }
    }

    /// This cache's file location with `entries` (which must be well
    /// formed).
    pub fn with_entries(&self, entries: &[(LeaderEpoch, Offset)]) -> Self {
        assert!(
            well_formed(entries),
            "leader epoch entries out of order: {entries:?}"
        );
        LeaderEpochCache {
            dir: self.dir.clone(),
            entries: entries.to_vec(),
        }
    }

    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|(e, _)| *e)
    }

    pub fn earliest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.entries.first().copied()
    }

    /// Kafka's `assign`: records that `epoch` starts at `start`. Nothing
    /// changes when `epoch` is the latest one and starts at or before
    /// `start`; otherwise every entry with an epoch `>= epoch` or a start
    /// `>= start` is dropped first, so the order rules hold. Negative epochs
    /// or offsets (no epoch / no offset) are ignored.
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        if epoch.0 < 0 || start.0 < 0 {
            return false;
        }
        if let Some((le, ls)) = self.entries.last() {
            if *le == epoch && *ls <= start {
                return false;
            }
        }
        self.entries.retain(|(e, o)| *e < epoch && *o < start);
        self.entries.push((epoch, start));
        true
    }

    /// Log truncation to `end`: drops every entry starting at or after it
    /// (a negative `end` is ignored, as in Kafka).
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        if end.0 < 0 {
            return false;
        }
        let before = self.entries.len();
        self.entries.retain(|(_, o)| *o < end);
        self.entries.len() != before
    }

    /// The log start moved to `start`: entries wholly below it go and the
    /// one covering it now starts at `start` (Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start: Offset) -> bool {
        let below = self.entries.iter().take_while(|(_, o)| *o <= start).count();
        if below == 0 {
            return false;
        }
        let (covering, old_start) = self.entries[below - 1];
        if below == 1 && old_start == start {
            return false;
        }
        self.entries.drain(..below);
        self.entries.insert(0, (covering, start));
        true
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch `<= epoch` this cache knows
    /// and the offset it ends at (the start of the next larger epoch, or
    /// `log_end` for the latest). For an epoch below the first one: that
    /// epoch and the first entry's start. `None` (UNDEFINED) for a negative
    /// epoch, an empty cache or an epoch above the latest.
    pub fn end_offset_for(
        &self,
        epoch: LeaderEpoch,
        log_end: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        if epoch.0 < 0 {
            return None;
        }
        let (latest, _) = *self.entries.last()?;
        if latest == epoch {
            return Some((epoch, log_end));
        }
        // The first entry with a larger epoch.
        let higher = self.entries.partition_point(|(e, _)| *e <= epoch);
        let (_, higher_start) = *self.entries.get(higher)?;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].0, higher_start)),
            None => Some((epoch, higher_start)),
        }
    }
}

#[cfg(test)]
mod tests;
