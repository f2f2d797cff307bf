//! Producer-state snapshot files (`<offset>.snapshot`): listed, written
//! durably, read back with a size bound, removed above a truncation point.

use super::*;

/// Producer snapshots in `dir`, oldest first.
pub(super) fn list_snapshots(
    fs: &dyn Fs,
    dir: &Path,
) -> Result<Vec<(Offset, PathBuf)>, StorageError> {
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
pub(super) const SNAPSHOTS_TO_KEEP: usize = 2;

/// Writes `<offset>.snapshot` atomically (temp file, fsync, rename) and
/// removes all but the newest [`SNAPSHOTS_TO_KEEP`].
pub(super) fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    state: &mut ProducerStateManager,
    offset: Offset,
) -> Result<(), StorageError> {
    state.set_map_end_offset(offset);
    let bytes = encode_snapshot(state);
    write_snapshot_bytes(fs, dir, offset, &bytes)
}

/// Writes an encoded producer snapshot durably (tmp file, fsync, rename,
/// directory fsync) and keeps the newest few.
pub(super) fn write_snapshot_bytes(
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

pub(super) fn remove_snapshots_after(
    fs: &dyn Fs,
    dir: &Path,
    offset: Offset,
) -> Result<(), StorageError> {
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
pub(super) const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

pub(super) fn read_snapshot(
    fs: &dyn Fs,
    path: &Path,
) -> Result<Option<ProducerStateManager>, StorageError> {
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
