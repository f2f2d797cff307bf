//! Snapshots of the metadata log, as Kafka names and frames them:
//! `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint` in the log's
//! directory, holding the image's canonical records
//! ([`MetadataImage::write_snapshot`]) in RecordBatch v2 batches (offsets
//! from 0; null keys; values framed as in the log). The end offset is
//! exclusive: the snapshot replaces every record below it; the epoch is
//! that of the last record it covers. (Kafka also writes a
//! SnapshotHeader and SnapshotFooter control record; Sluice does not.)
//!
//! Written as `<name>.checkpoint.part`, fsynced, renamed, the directory
//! fsynced: a `.checkpoint` file is always complete. Leftover `.part`
//! files are removed on open.

use std::path::{Path, PathBuf};

use sluice_metadata::{MetadataImage, MetadataProvenance, MetadataRecord};
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::fs::{read_exact_at, write_all_at};
use sluice_storage::{Fs, OpenOptions};

use super::codec::{build_batch, decode_batch, encode_values};
use super::quorum_state::{file_err, FileError};

const SUFFIX: &str = ".checkpoint";
const PART_SUFFIX: &str = ".checkpoint.part";
/// Records per batch in a snapshot file.
const RECORDS_PER_BATCH: usize = 1000;

/// Kafka's `OffsetAndEpoch` naming a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    /// The first offset after the snapshot.
    pub end_offset: Offset,
    /// The epoch of the last record it covers.
    pub epoch: LeaderEpoch,
}

impl SnapshotId {
    pub fn file_name(&self) -> String {
        format!("{:020}-{:010}{SUFFIX}", self.end_offset.0, self.epoch.0)
    }

    fn parse(name: &str) -> Option<SnapshotId> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (offset, epoch) = stem.split_once('-')?;
        if offset.len() != 20 || epoch.len() != 10 {
            return None;
        }
        Some(SnapshotId {
            end_offset: Offset(offset.parse().ok()?),
            epoch: LeaderEpoch(epoch.parse().ok()?),
        })
    }

    /// The provenance of the image the snapshot holds.
    pub fn provenance(&self) -> MetadataProvenance {
        MetadataProvenance {
            last_offset: Offset(self.end_offset.0 - 1),
            last_epoch: self.epoch,
        }
    }
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

/// The snapshots in `dir`, oldest first; removes leftover `.part` files.
pub(crate) fn list(fs: &dyn Fs, dir: &Path) -> Result<Vec<SnapshotId>, String> {
    let mut out = Vec::new();
    for p in fs.read_dir(dir).map_err(|e| err("list", dir, e))? {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(PART_SUFFIX) {
            fs.remove_file(&p).map_err(|e| err("remove", &p, e))?;
        } else if let Some(id) = SnapshotId::parse(name) {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the snapshot `id` of `image` durably.
pub(crate) fn write(
    fs: &dyn Fs,
    dir: &Path,
    id: SnapshotId,
    image: &MetadataImage,
    now_ms: i64,
) -> Result<(), FileError> {
    let path = dir.join(id.file_name());
    let part = PathBuf::from(format!("{}{}", path.display(), ".part"));
    let records = image.write_snapshot();
    let f = fs
        .open(&part, &OpenOptions::create_truncate())
        .map_err(|e| file_err("create", &part, e))?;
    let mut pos = 0u64;
    for (i, chunk) in records.chunks(RECORDS_PER_BATCH).enumerate() {
        let encoded = encode_values(chunk).and_then(|(values, _)| {
            let base = Offset((i * RECORDS_PER_BATCH) as i64);
            build_batch(&values, base, id.epoch, now_ms)
        });
        let batch = encoded.map_err(|e| FileError {
            msg: err("encode", &part, e),
            no_space: false,
        })?;
        write_all_at(&*f, &batch, pos).map_err(|(_, e)| file_err("write", &part, e))?;
        pos += batch.len() as u64;
    }
    f.sync_data().map_err(|e| file_err("fsync", &part, e))?;
    drop(f);
    fs.rename(&part, &path)
        .map_err(|e| file_err("rename", &part, e))?;
    fs.sync_dir(dir)
        .map_err(|e| file_err("fsync directory", dir, e))
}

/// Reads snapshot `id` back into an image stamped with its provenance.
pub(crate) fn read(fs: &dyn Fs, dir: &Path, id: SnapshotId) -> Result<MetadataImage, String> {
    let path = dir.join(id.file_name());
    let f = fs
        .open(&path, &OpenOptions::read())
        .map_err(|e| err("open", &path, e))?;
    let len = f.len().map_err(|e| err("stat", &path, e))?;
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*f, &mut buf, 0).map_err(|e| err("read", &path, e))?;
    let mut records: Vec<MetadataRecord> = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (batch, size) = decode_batch(&buf[at..]).map_err(|e| err("decode", &path, e))?;
        records.extend(batch.records);
        at += size;
    }
    MetadataImage::from_snapshot(&records, id.provenance()).map_err(|e| err("replay", &path, e))
}

/// Removes every snapshot older than `keep`.
pub(crate) fn remove_older(fs: &dyn Fs, dir: &Path, keep: SnapshotId) -> Result<(), String> {
    for id in list(fs, dir)? {
        if id < keep {
            let p = dir.join(id.file_name());
            fs.remove_file(&p).map_err(|e| err("remove", &p, e))?;
        }
    }
    fs.sync_dir(dir).map_err(|e| err("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        let id = SnapshotId {
            end_offset: Offset(100),
            epoch: LeaderEpoch(3),
        };
        assert_eq!(id.file_name(), "00000000000000000100-0000000003.checkpoint");
        assert_eq!(SnapshotId::parse(&id.file_name()), Some(id));
        assert_eq!(SnapshotId::parse("00000000000000000100.log"), None);
    }
}
