//! The on-disk swap of cleaned segments and its crash recovery.
//!
//! Kafka's suffix protocol, per group of old segments `[B, E)` replaced by
//! one cleaned segment with base offset `B`:
//!
//! 1. the cleaned batches are written to `<B>.log.cleaned` and fsynced,
//!    and the old segments' transaction indexes, one after the other, to
//!    `<B>.txnindex.cleaned` (when any has entries; the cleaner keeps every
//!    marker, so every entry stays true);
//! 2. that is renamed `<B>.txnindex.swap`, then the log `<B>.log.swap`, and
//!    the directory fsynced — the commit point: from here on recovery
//!    installs the new segment;
//! 3. the old segments' files are renamed `*.deleted` and the directory
//!    fsynced;
//! 4. `<B>.txnindex.swap` is renamed `<B>.txnindex`, then `<B>.log.swap`
//!    `<B>.log`, and the directory fsynced; the offset and time indexes are
//!    rebuilt when the segment is first opened.
//!
//! The cleaned segment keeps the offset range of the group: its last batch
//! is kept (empty if all its records went), so it ends at `E`, the next
//! segment's base. Recovery ([`complete_swaps`], run first when a log is
//! loaded) therefore knows from the `.swap` file alone which old segments
//! it replaces: every `.log` with a base in `[B, E)`. It removes them, then
//! renames the swap file. A `.cleaned` file (crash before step 2) is
//! deleted, leaving the old segments. Either way the log is the old or the
//! new state, never a mix.

use std::path::{Path, PathBuf};

use sluice_record::{BatchHeader, Offset};

use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, Fs, OpenOptions};
use crate::segment::{
    file_name_prefix, parse_log_file_name, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
};
use crate::txn_index::TXN_INDEX_FILE_SUFFIX;

pub const CLEANED_SUFFIX: &str = ".cleaned";
pub const SWAP_SUFFIX: &str = ".swap";

/// Steps of the swap, for tests that stop the cleaner after each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapStep {
    /// `<B>.log.cleaned` written and fsynced.
    CleanedWritten,
    /// Renamed to `<B>.log.swap`, directory fsynced.
    SwapRenamed,
    /// The i-th old segment renamed `*.deleted` (not yet fsynced).
    OldRenamed(usize),
    /// `<B>.log.swap` renamed `<B>.log`, directory fsynced.
    Installed,
}

pub fn cleaned_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!(
        "{}{LOG_FILE_SUFFIX}{CLEANED_SUFFIX}",
        file_name_prefix(base)
    ))
}
pub fn swap_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!(
        "{}{LOG_FILE_SUFFIX}{SWAP_SUFFIX}",
        file_name_prefix(base)
    ))
}
pub fn log_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{}{LOG_FILE_SUFFIX}", file_name_prefix(base)))
}
pub fn txn_index_cleaned_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!(
        "{}{TXN_INDEX_FILE_SUFFIX}{CLEANED_SUFFIX}",
        file_name_prefix(base)
    ))
}
pub fn txn_index_swap_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!(
        "{}{TXN_INDEX_FILE_SUFFIX}{SWAP_SUFFIX}",
        file_name_prefix(base)
    ))
}
pub fn txn_index_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{}{TXN_INDEX_FILE_SUFFIX}", file_name_prefix(base)))
}

/// Installs `<B>.txnindex.swap` as `<B>.txnindex` if it exists (step 4
/// and its recovery); without one, the new segment's index is the one
/// already installed, or none.
pub(crate) fn install_txn_index(fs: &dyn Fs, dir: &Path, base: Offset) -> Result<(), StorageError> {
    let swap = txn_index_swap_path(dir, base);
    if fs.exists(&swap) {
        let target = txn_index_path(dir, base);
        fs.rename(&swap, &target)
            .ctx("install swapped transaction index", &swap)?;
    }
    Ok(())
}

/// Calls `f(position, batch)` for each whole batch of a segment file, in
/// order, until `f` returns `Ok(false)`; stops at a torn tail. Batch sizes
/// are checked against the file length before anything is allocated.
pub fn for_each_batch(
    fs: &dyn Fs,
    path: &Path,
    mut f: impl FnMut(u64, &[u8]) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let file = fs
        .open(path, &OpenOptions::read())
        .ctx("open segment", path)?;
    let len = file.len().ctx("stat segment", path)?;
    let mut pos = 0u64;
    let mut buf = Vec::new();
    let mut head = [0u8; 12];
    while pos + 12 <= len {
        read_exact_at(&*file, &mut head, pos).ctx("read segment", path)?;
        let size = BatchHeader::peek_size(&head)? as u64;
        if size < 12 || pos + size > len {
            break;
        }
        buf.resize(size as usize, 0);
        read_exact_at(&*file, &mut buf, pos).ctx("read segment", path)?;
        if !f(pos, &buf)? {
            break;
        }
        pos += size;
    }
    Ok(())
}

/// Next offset after the last valid batch of a segment file (`None` if it
/// holds no valid batch).
fn next_offset_of(fs: &dyn Fs, path: &Path) -> Result<Option<Offset>, StorageError> {
    let mut next = None;
    for_each_batch(fs, path, |_, b| match BatchHeader::validate_stored(b) {
        Ok(h) => {
            next = Some(h.next_offset());
            Ok(true)
        }
        Err(_) => Ok(false),
    })?;
    Ok(next)
}

/// Completes every swap found in a partition directory (see the module
/// docs) and deletes `.cleaned` leftovers. Run before the segments are
/// listed when a log is loaded. Returns the number of swaps completed.
pub fn complete_swaps(fs: &dyn Fs, dir: &Path) -> Result<usize, StorageError> {
    let entries = fs.read_dir(dir).ctx("list partition directory", dir)?;
    let mut done = 0;
    for p in &entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(CLEANED_SUFFIX) {
            fs.remove_file(p)
                .ctx("remove unfinished cleaned segment", p)?;
            continue;
        }
        let Some(base) = name.strip_suffix(SWAP_SUFFIX).and_then(parse_log_file_name) else {
            continue;
        };
        let Some(end) = next_offset_of(fs, p)? else {
            // Never written by the cleaner (it swaps only non-empty files).
            tracing::warn!(path = %p.display(), "removing empty swap file");
            fs.remove_file(p).ctx("remove empty swap file", p)?;
            continue;
        };
        for q in &entries {
            let n = q.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(b) = parse_log_file_name(n) {
                if b >= base && b < end {
                    let prefix = file_name_prefix(b);
                    for suffix in [
                        LOG_FILE_SUFFIX,
                        INDEX_FILE_SUFFIX,
                        TIME_INDEX_FILE_SUFFIX,
                        TXN_INDEX_FILE_SUFFIX,
                    ] {
                        let f = dir.join(format!("{prefix}{suffix}"));
                        if fs.exists(&f) {
                            fs.remove_file(&f).ctx("remove replaced segment", &f)?;
                        }
                    }
                }
            }
        }
        let prefix = file_name_prefix(base);
        for suffix in [INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
            let f = dir.join(format!("{prefix}{suffix}"));
            if fs.exists(&f) {
                fs.remove_file(&f).ctx("remove stale index", &f)?;
            }
        }
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
        install_txn_index(fs, dir, base)?;
        let target = log_path(dir, base);
        fs.rename(p, &target).ctx("install swapped segment", p)?;
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
        tracing::info!(dir = %dir.display(), base = base.0, end = end.0, "completed an interrupted segment swap");
        done += 1;
    }
    Ok(done)
}
