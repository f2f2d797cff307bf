//! Producer id allocation that never hands out an id twice, across
//! restarts and crashes (the role of Kafka's `ProducerIdManager`, which
//! reserves blocks of ids in the cluster metadata log).
//!
//! Ids are handed out from a block; before the first id of a new block is
//! returned, the block's end (the allocation high-water mark) is written to
//! `producer-id-block` in the first log directory and fsynced (temp file,
//! fsync, rename, directory fsync). After a restart allocation resumes at the
//! recorded high-water mark, so ids of a partly used block are skipped,
//! never reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_record::ProducerId;

use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, write_all_at, Fs, OpenOptions};

/// File name of the allocation high-water mark in the first log dir.
pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";

/// Ids reserved per durable write (Kafka's block size is 1000 too).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

const MAGIC: &str = "sluice-producer-id-block v1";

/// Most producer ids whose current epoch is remembered for KIP-360 bumps.
pub const MAX_TRACKED_EPOCHS: usize = 100_000;

/// A re-initialising producer presented an epoch older than the one this
/// broker last handed out for its id: a newer instance exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("producer {producer_id:?} epoch {epoch} is fenced by epoch {current}")]
pub struct ProducerFenced {
    pub producer_id: ProducerId,
    pub epoch: i16,
    pub current: i16,
}

struct Alloc {
    next: i64,
    reserved_end: i64,
}

pub struct ProducerIdManager {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    alloc: Mutex<Alloc>,
    /// Current epoch per producer id handed out or bumped in this run.
    epochs: Mutex<HashMap<i64, i16>>,
}

impl std::fmt::Debug for ProducerIdManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIdManager")
            .field("dir", &self.dir)
            .finish()
    }
}

fn parse(text: &str) -> Option<i64> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let end: i64 = lines.next()?.trim().parse().ok()?;
    let check: i64 = lines.next()?.trim().parse().ok()?;
    // A second copy guards against a torn or edited file.
    (end >= 0 && check == end && lines.next().is_none()).then_some(end)
}

impl ProducerIdManager {
    /// Reads the high-water mark in `dir` (0 if the file does not exist).
    /// A file that exists but cannot be parsed is an error: guessing could
    /// reuse ids.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(PRODUCER_ID_BLOCK_FILE);
        let end = if fs.exists(&path) {
            let f = fs
                .open(&path, &OpenOptions::read())
                .ctx("open producer id block", &path)?;
            let len = f.len().ctx("stat producer id block", &path)?;
            if len > 4096 {
                return Err(StorageError::InvalidRecord(format!(
                    "{} is {len} bytes; not a producer id block file",
                    path.display()
                )));
            }
            let mut buf = vec![0u8; len as usize];
            read_exact_at(&*f, &mut buf, 0).ctx("read producer id block", &path)?;
            parse(std::str::from_utf8(&buf).unwrap_or("")).ok_or_else(|| {
                StorageError::InvalidRecord(format!(
                    "{} is corrupt; refusing to allocate producer ids",
                    path.display()
                ))
            })?
        } else {
            0
        };
        Ok(ProducerIdManager {
            fs,
            dir: dir.to_path_buf(),
            alloc: Mutex::new(Alloc {
                next: end,
                reserved_end: end,
            }),
            epochs: Mutex::new(HashMap::new()),
        })
    }

    /// A producer id never returned before by this log dir.
    pub fn generate(&self) -> Result<ProducerId, StorageError> {
        let mut a = self.alloc.lock();
        if a.next >= a.reserved_end {
            let end = a
                .next
                .checked_add(PRODUCER_ID_BLOCK_SIZE)
                .ok_or_else(|| StorageError::InvalidRecord("producer id space exhausted".into()))?;
            self.persist(end)?;
            a.reserved_end = end;
        }
        let id = a.next;
        a.next += 1;
        drop(a);
        remember_epoch(&mut self.epochs.lock(), id, 0);
        Ok(ProducerId(id))
    }

    /// KIP-360 bump for a producer re-initialising with `epoch`: the next
    /// epoch, unless this broker already handed out a newer epoch for the id
    /// (then the caller is a zombie and is fenced). Epochs are remembered in
    /// memory only (bounded by [`MAX_TRACKED_EPOCHS`]); after a restart the
    /// presented epoch is trusted, and partitions still refuse batches from
    /// epochs older than the newest they have seen.
    pub fn bump_epoch(&self, id: ProducerId, epoch: i16) -> Result<i16, ProducerFenced> {
        let mut epochs = self.epochs.lock();
        if let Some(&current) = epochs.get(&id.0) {
            if epoch != current {
                return Err(ProducerFenced {
                    producer_id: id,
                    epoch,
                    current,
                });
            }
        }
        let next = epoch.saturating_add(1);
        remember_epoch(&mut epochs, id.0, next);
        Ok(next)
    }

    /// True if `id` was handed out by this manager (now or before a
    /// restart): it lies below the durable high-water mark.
    pub fn was_allocated(&self, id: ProducerId) -> bool {
        id.0 >= 0 && id.0 < self.alloc.lock().next
    }

    fn persist(&self, end: i64) -> Result<(), StorageError> {
        let path = self.dir.join(PRODUCER_ID_BLOCK_FILE);
        let tmp = self.dir.join(format!("{PRODUCER_ID_BLOCK_FILE}.tmp"));
        let text = format!("{MAGIC}\n{end}\n{end}\n");
        let f = self
            .fs
            .open(&tmp, &OpenOptions::create_truncate())
            .ctx("create producer id block", &tmp)?;
        write_all_at(&*f, text.as_bytes(), 0)
            .map_err(|(_, e)| StorageError::io("write producer id block", &tmp, e))?;
        f.sync_data().ctx("fsync producer id block", &tmp)?;
        drop(f);
        self.fs
            .rename(&tmp, &path)
            .ctx("rename producer id block", &tmp)?;
        self.fs
            .sync_dir(&self.dir)
            .ctx("fsync directory", &self.dir)?;
        Ok(())
    }
}

fn remember_epoch(epochs: &mut HashMap<i64, i16>, id: i64, epoch: i16) {
    if epochs.len() >= MAX_TRACKED_EPOCHS && !epochs.contains_key(&id) {
        // Forget the lowest (oldest) id: ids are handed out in order.
        if let Some(&oldest) = epochs.keys().min() {
            epochs.remove(&oldest);
        }
    }
    epochs.insert(id, epoch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimFs;

    #[test]
    fn ids_are_never_reused_across_restarts_and_power_cuts() {
        let fs = SimFs::new();
        let dir = PathBuf::from("/data");
        fs.create_dir_all(&dir).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let mut seen = std::collections::HashSet::new();
        for round in 0..5u64 {
            let m = ProducerIdManager::open(Arc::new(fs.clone()), &dir).unwrap();
            for _ in 0..(round as usize * 700 + 3) {
                let id = m.generate().unwrap();
                assert!(m.was_allocated(id));
                assert!(seen.insert(id), "id {id:?} handed out twice");
            }
            if round % 2 == 0 {
                fs.crash(round);
            }
        }
    }

    #[test]
    fn epoch_bumps_fence_older_instances() {
        let fs = SimFs::new();
        let dir = PathBuf::from("/e");
        fs.create_dir_all(&dir).unwrap();
        let m = ProducerIdManager::open(Arc::new(fs), &dir).unwrap();
        let id = m.generate().unwrap();
        assert_eq!(m.bump_epoch(id, 0), Ok(1));
        assert_eq!(m.bump_epoch(id, 1), Ok(2));
        // An instance still at epoch 1 is fenced by epoch 2.
        assert_eq!(
            m.bump_epoch(id, 1),
            Err(ProducerFenced {
                producer_id: id,
                epoch: 1,
                current: 2
            })
        );
    }

    #[test]
    fn a_corrupt_file_stops_allocation() {
        let fs = SimFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).unwrap();
        let f = fs
            .open(
                &dir.join(PRODUCER_ID_BLOCK_FILE),
                &OpenOptions::create_truncate(),
            )
            .unwrap();
        write_all_at(&*f, b"sluice-producer-id-block v1\n5000\n4000\n", 0).unwrap();
        assert!(ProducerIdManager::open(Arc::new(fs.clone()), &dir).is_err());
    }
}
