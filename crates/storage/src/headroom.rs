//! Disk headroom for metadata writes: a preallocated file in each log dir,
//! [`HEADROOM_FILE`], that only metadata writes may use.
//!
//! Appends, new segments and index pages take free space until the disk
//! is full; then the writes that let an operator out (DeleteTopics'
//! `topics.meta`, the checkpoints, the clean-shutdown marker, the leader
//! epoch written on start) would fail too. So each log dir holds a file of
//! allocated blocks no data write can take: a metadata write that fails
//! with ENOSPC ([`retry_on_no_space`]) releases it, tries once more, and
//! then allocates it again as far as free space allows (deletions make
//! room, and [`refill`] runs after them).
//!
//! Its size ([`target_bytes`]): [`HEADROOM_BASE_BYTES`] plus twice the
//! bytes of the files at the top of the log dir (the metadata files and
//! checkpoints, rounded up to 64 KiB). Every metadata file is rewritten
//! whole (a `.tmp` copy, fsync, rename), so a write needs the new copy's
//! size while the old one still exists: twice the current files covers all
//! of them being rewritten at once, and growing. The base (1 MiB) covers
//! the blocks of new directory entries, the marker and a producer state
//! snapshot at shutdown. A dir with 10,000 partitions of 1,000 topics has
//! about 1 MiB of such files, so about 3 MiB is held back.

use std::io;
use std::path::Path;

use parking_lot::Mutex;

use crate::fs::{Fs, OpenOptions};

/// The reserved file at the top of each log dir.
pub const HEADROOM_FILE: &str = ".metadata-headroom";
/// Headroom beyond twice the metadata files (see the module docs).
pub const HEADROOM_BASE_BYTES: u64 = 1 << 20;
/// The reservation grows in steps of this size, so a nearly full disk
/// gives it what is left.
const STEP: u64 = 64 * 1024;

/// Releases and refills do not interleave (one process, few log dirs).
static LOCK: Mutex<()> = Mutex::new(());

/// True for the errors of a full disk (ENOSPC) or quota (EDQUOT).
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The headroom `dir` should hold now (see the module docs).
pub fn target_bytes(fs: &dyn Fs, dir: &Path) -> u64 {
    let mut files = 0u64;
    for p in fs.read_dir(dir).unwrap_or_default() {
        let is_headroom = p.file_name().is_some_and(|n| n == HEADROOM_FILE);
        if is_headroom || fs.is_dir(&p) {
            continue;
        }
        if let Ok(f) = fs.open(&p, &OpenOptions::read()) {
            files += f.len().unwrap_or(0);
        }
    }
    HEADROOM_BASE_BYTES + (2 * files).div_ceil(STEP) * STEP
}

/// Allocates the headroom file of `dir` up to [`target_bytes`], as far as
/// free space allows; returns the bytes it holds and the target.
pub fn refill(fs: &dyn Fs, dir: &Path) -> io::Result<(u64, u64)> {
    let _g = LOCK.lock();
    refill_locked(fs, dir)
}

fn refill_locked(fs: &dyn Fs, dir: &Path) -> io::Result<(u64, u64)> {
    let target = target_bytes(fs, dir);
    let path = dir.join(HEADROOM_FILE);
    let f = fs.open(&path, &OpenOptions::read_write_create())?;
    let mut held = f.len()?;
    if held > target {
        f.set_len(target)?;
        held = target;
    }
    while held < target {
        let step = STEP.min(target - held);
        match f.allocate(held, step) {
            Ok(()) => held += step,
            Err(e) if is_no_space(&e) => break,
            Err(e) => return Err(e),
        }
    }
    if held < target {
        tracing::warn!(dir = %dir.display(), held, target, "disk nearly full: metadata headroom only partly reserved");
    }
    Ok((held, target))
}

/// Runs a metadata write `op`; if it fails for want of space (`no_space`),
/// releases the headroom of `dir`, runs it once more, and reserves the
/// headroom again as far as space allows.
pub fn retry_on_no_space<T, E>(
    fs: &dyn Fs,
    dir: &Path,
    mut op: impl FnMut() -> Result<T, E>,
    no_space: impl Fn(&E) -> bool,
) -> Result<T, E> {
    match op() {
        Err(e) if no_space(&e) => {
            let _g = LOCK.lock();
            let path = dir.join(HEADROOM_FILE);
            let released = fs
                .open(&path, &OpenOptions::read_write())
                .and_then(|f| {
                    let len = f.len()?;
                    f.set_len(0)?;
                    Ok(len)
                })
                .unwrap_or(0);
            if released == 0 {
                return Err(e);
            }
            tracing::warn!(dir = %dir.display(), released, "disk full: a metadata write uses the headroom");
            let r = op();
            if let Err(e) = refill_locked(fs, dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot reserve metadata headroom again");
            }
            r
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::write_all_at;
    use crate::sim::SimFs;

    #[test]
    fn a_metadata_write_on_a_full_disk_uses_the_headroom() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        fs.set_capacity(Some(4 << 20));
        let (held, target) = refill(&fs, dir).unwrap();
        assert_eq!((held, target), (HEADROOM_BASE_BYTES, HEADROOM_BASE_BYTES));
        // Data takes everything else.
        fs.create_dir_all(&dir.join("t-0")).unwrap();
        let data = fs
            .open(&dir.join("t-0/data"), &OpenOptions::read_write_create())
            .unwrap();
        let err = write_all_at(&*data, &vec![1u8; 4 << 20], 0).unwrap_err().1;
        assert!(is_no_space(&err));
        drop(data);
        let write = |name: &str| {
            let f = fs.open(&dir.join(name), &OpenOptions::create_truncate())?;
            write_all_at(&*f, &[7u8; 3000], 0).map_err(|(_, e)| e)
        };
        assert!(is_no_space(&write("plain").unwrap_err()));
        retry_on_no_space(&fs, dir, || write("meta"), is_no_space).unwrap();
        // The reservation took back what the write left.
        let left = fs.contents(&dir.join(HEADROOM_FILE)).unwrap().len() as u64;
        assert!(left >= HEADROOM_BASE_BYTES - STEP, "{left}");
        // Freed data goes to the headroom first, up to its target.
        fs.remove_file(&dir.join("t-0/data")).unwrap();
        let (held, target) = refill(&fs, dir).unwrap();
        assert_eq!(held, target);
        assert!(target > HEADROOM_BASE_BYTES, "the metadata files count");
    }
}
