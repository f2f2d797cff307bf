//! Sparse, memory-mapped segment indexes, byte-compatible with Kafka's.
//!
//! * [`OffsetIndex`] (`.index`): 8-byte entries, big-endian
//!   `relative offset: u32` + `file position: u32`. An entry names the last
//!   offset of a batch and the file position where that batch starts.
//! * [`TimeIndex`] (`.timeindex`): 12-byte entries, big-endian
//!   `timestamp: i64` + `relative offset: u32`: the largest timestamp seen
//!   so far in the segment and the offset of the batch that carried it.
//!
//! An index file of the active segment is sized to `segment.index.bytes`
//! (rounded down to whole entries, a sparse file) and memory-mapped; on
//! roll and close it is trimmed to the entries in use.
//!
//! No write through a map may fault: a map write into a hole of a full
//! file system raises SIGBUS (tmpfs faults even on reading a hole). So the
//! pages an entry goes to are allocated first (`FileHandle::allocate`, i.e.
//! `posix_fallocate`), [`ALLOCATION_CHUNK`] bytes at a time, ahead of the
//! entries: a writable index is opened with its first chunk allocated (or
//! fails with ENOSPC), the appender reserves room for a call's entries
//! before it writes the log ([`OffsetIndex::reserve`]), and an entry that
//! still finds no space is not added (a sparse index may skip entries).
//!
//! An index holds no file descriptor: the file is opened to be mapped,
//! resized or allocated and closed again; the map outlives the descriptor
//! (as Kafka's indexes do), so a segment costs one descriptor, its log's.
//! Entries are kept
//! strictly increasing; on load, the number of valid entries is the longest
//! strictly increasing prefix that lies inside the segment, so zero-filled
//! preallocated space and stale or torn tails are ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_record::{Offset, Timestamp};

use crate::error::{IoContext, StorageError};
use crate::fs::{FileHandle, Fs, MappedRegion, OpenOptions};

/// Bytes of index file allocated at a time ahead of the entries: 2,048
/// offset entries (8 MiB of log at the default `index.interval.bytes`), so
/// an active segment's two indexes take 32 KiB of disk until they grow.
pub const ALLOCATION_CHUNK: u64 = 16 * 1024;

pub const OFFSET_ENTRY_SIZE: usize = 8;
pub const TIME_ENTRY_SIZE: usize = 12;

/// One `.index` entry, offset made absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: Offset,
    pub position: u32,
}

/// One `.timeindex` entry, offset made absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: Timestamp,
    pub offset: Offset,
}

/// The mmap-backed array shared by both index kinds.
struct IndexFile {
    path: PathBuf,
    fs: Arc<dyn Fs>,
    map: Box<dyn MappedRegion>,
    entry_size: usize,
    entries: usize,
    /// Entries the current map can hold.
    capacity: usize,
    /// Bytes from the start of the file known to be allocated on disk
    /// (entries are only written below this).
    backed: u64,
    /// An entry was skipped for want of space (warned once).
    skipping: bool,
}

impl IndexFile {
    /// Opens (creating if needed). `max_bytes = Some(n)`: writable, resized
    /// to `n` rounded down to whole entries, its first
    /// [`ALLOCATION_CHUNK`] allocated before it is mapped (ENOSPC fails the
    /// open). `None`: mapped at its length, which holds written entries.
    fn open(
        fs: &Arc<dyn Fs>,
        path: &Path,
        entry_size: usize,
        max_bytes: Option<u32>,
    ) -> Result<Self, StorageError> {
        let file = fs
            .open(path, &OpenOptions::read_write_create())
            .ctx("open index", path)?;
        let len = file.len().ctx("stat index", path)?;
        let (map_len, backed) = match max_bytes {
            Some(max) => {
                let want = (max as u64 / entry_size as u64) * entry_size as u64;
                let want = want.max(entry_size as u64);
                if len != want {
                    file.set_len(want).ctx("resize index", path)?;
                }
                // The open reads the first entries (tmpfs allocates a page
                // on a read fault of a hole), and the first append writes them.
                let first = want.min(ALLOCATION_CHUNK);
                file.allocate(0, first).ctx("allocate index", path)?;
                (want, first)
            }
            None => {
                let map_len = (len / entry_size as u64) * entry_size as u64;
                (map_len, map_len)
            }
        };
        let map = file.map_mut(map_len).ctx("mmap index", path)?;
        // The map outlives the descriptor.
        drop(file);
        Ok(IndexFile {
            path: path.to_path_buf(),
            fs: fs.clone(),
            map,
            entry_size,
            entries: 0,
            capacity: map_len as usize / entry_size,
            backed,
            skipping: false,
        })
    }

    /// Opens the file again for a resize or an allocation (an index holds
    /// no descriptor between them).
    fn reopen(&self) -> Result<Arc<dyn FileHandle>, StorageError> {
        self.fs
            .open(&self.path, &OpenOptions::read_write())
            .ctx("open index", &self.path)
    }

    /// Makes sure `extra` more entries can be written without a map write
    /// into unallocated space: allocates up to whole [`ALLOCATION_CHUNK`]s
    /// past them (within the map). Fails with ENOSPC when the disk is full.
    fn reserve(&mut self, extra: usize) -> Result<(), StorageError> {
        let map_len = (self.capacity * self.entry_size) as u64;
        // One slot more than asked: a load after a crash scans entries
        // until the first empty slot, which must not be a hole (a read
        // fault there allocates a page on tmpfs, and faults when full).
        let need = (((self.entries + extra + 1) * self.entry_size) as u64).min(map_len);
        if need <= self.backed {
            return Ok(());
        }
        let target = need.div_ceil(ALLOCATION_CHUNK) * ALLOCATION_CHUNK;
        let target = target.min(map_len);
        let file = self.reopen()?;
        file.allocate(self.backed, target - self.backed)
            .ctx("allocate index", &self.path)?;
        self.backed = target;
        Ok(())
    }

    /// Entries a load may read: only allocated ones (reading a hole of a
    /// full tmpfs faults too).
    fn scan_limit(&self) -> usize {
        self.capacity
            .min((self.backed / self.entry_size as u64) as usize)
    }

    fn raw(&self, i: usize) -> &[u8] {
        &self.map.as_slice()[i * self.entry_size..(i + 1) * self.entry_size]
    }

    /// Writes the next entry; `false` (nothing written) when its page
    /// cannot be allocated.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let at = self.entries * self.entry_size;
        if (at + self.entry_size) as u64 > self.backed {
            if let Err(e) = self.reserve(1) {
                if !std::mem::replace(&mut self.skipping, true) {
                    tracing::warn!(index = %self.path.display(), error = %e, "index entries skipped: no disk space for them (lookups scan further)");
                }
                return false;
            }
            self.skipping = false;
        }
        assert!(
            (at + self.entry_size) as u64 <= self.backed,
            "an index entry is only written into allocated space"
        );
        self.map.as_mut_slice()[at..at + self.entry_size].copy_from_slice(bytes);
        self.entries += 1;
        true
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.map.flush().ctx("msync index", &self.path)
    }

    /// Flushes, unmaps, cuts the file to the used entries and maps that.
    fn trim(&mut self, fs_len_only: bool) -> Result<(), StorageError> {
        self.flush()?;
        let used = (self.entries * self.entry_size) as u64;
        let file = self.reopen()?;
        self.map = Box::new(crate::fs::EmptyMap);
        self.capacity = 0;
        file.set_len(used).ctx("trim index", &self.path)?;
        self.backed = self.backed.min(used);
        if !fs_len_only {
            self.map = file.map_mut(used).ctx("mmap index", &self.path)?;
        }
        self.capacity = self.entries;
        Ok(())
    }

    /// Remaps at `max_bytes` so a segment that becomes active again can
    /// grow. The new space is sparse: [`IndexFile::reserve`] allocates it
    /// as entries come (a full disk does not stop the log from loading).
    fn resize(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.flush()?;
        let want = ((max_bytes as u64 / self.entry_size as u64) * self.entry_size as u64)
            .max(self.entry_size as u64);
        let want = want.max((self.entries * self.entry_size) as u64);
        let file = self.reopen()?;
        self.map = Box::new(crate::fs::EmptyMap);
        self.capacity = 0;
        file.set_len(want).ctx("resize index", &self.path)?;
        // Only the entries in use are known to be written (a file left by
        // an older version or a crash may have holes below its length).
        self.backed = self
            .backed
            .min((self.entries * self.entry_size) as u64)
            .min(want);
        self.map = file.map_mut(want).ctx("mmap index", &self.path)?;
        self.capacity = want as usize / self.entry_size;
        Ok(())
    }

    /// Zeroes entries `n..` and sets the count.
    fn truncate_entries(&mut self, n: usize) {
        if n < self.entries {
            let es = self.entry_size;
            self.map.as_mut_slice()[n * es..self.entries * es].fill(0);
            self.entries = n;
        }
    }
}

fn self_base(t: &TimeIndex) -> Offset {
    t.base_offset
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Bytes at the end of an index searched first (Kafka's "warm section"):
/// consumers near the tail and the appender touch only these pages, so they
/// stay in cache and lookups avoid a cold miss per probe.
const WARM_SECTION_BYTES: usize = 8192;

/// Largest `i` in `0..n` with `key(i) <= target`, by binary search over a
/// non-decreasing key (first within the last `warm` entries if the target
/// lies there); `None` if `key(0) > target` or `n == 0`.
fn warm_lower_bound(
    n: usize,
    entry_size: usize,
    target: i64,
    key: impl Fn(usize) -> i64,
) -> Option<usize> {
    let warm = WARM_SECTION_BYTES / entry_size;
    if n > warm && key(n - warm) <= target {
        return largest_lower_bound_from(n - warm, n, target, key);
    }
    largest_lower_bound(n, target, key)
}

/// Largest `i` in `0..n` with `key(i) <= target`, by binary search over a
/// non-decreasing key; `None` if `key(0) > target` or `n == 0`.
fn largest_lower_bound(n: usize, target: i64, key: impl Fn(usize) -> i64) -> Option<usize> {
    largest_lower_bound_from(0, n, target, key)
}

fn largest_lower_bound_from(
    from: usize,
    n: usize,
    target: i64,
    key: impl Fn(usize) -> i64,
) -> Option<usize> {
    if n <= from || key(from) > target {
        return None;
    }
    let (mut lo, mut hi) = (from, n - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if key(mid) <= target {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// The `.index` of one segment.
pub struct OffsetIndex {
    base_offset: Offset,
    f: IndexFile,
}

impl OffsetIndex {
    /// Opens the index file; `max_bytes` = Some for the active segment.
    /// Valid entries: the strictly increasing prefix with positions below
    /// `segment_size` and offsets in `[base, base + u32::MAX]`.
    pub fn open(
        fs: &Arc<dyn Fs>,
        path: &Path,
        base_offset: Offset,
        max_bytes: Option<u32>,
        segment_size: u64,
    ) -> Result<Self, StorageError> {
        let f = IndexFile::open(fs, path, OFFSET_ENTRY_SIZE, max_bytes)?;
        let mut idx = OffsetIndex { base_offset, f };
        idx.f.entries = idx.valid_prefix(segment_size);
        Ok(idx)
    }

    fn valid_prefix(&self, segment_size: u64) -> usize {
        let mut n = 0;
        let mut prev: Option<(u32, u32)> = None;
        while n < self.f.scan_limit() {
            let e = self.f.raw(n);
            let (rel, pos) = (u32_at(e, 0), u32_at(e, 4));
            // Position 0 is never indexed (the first entry comes after
            // index.interval.bytes), so a zero entry is preallocated space.
            let ok = pos > 0
                && (pos as u64) < segment_size
                && match prev {
                    None => true,
                    Some((pr, pp)) => rel > pr && pos > pp,
                };
            if !ok {
                break;
            }
            prev = Some((rel, pos));
            n += 1;
        }
        n
    }

    /// Entries stored in the file beyond the valid prefix (> 0 means the
    /// file of an inactive segment is corrupt or stale).
    pub fn raw_capacity(&self) -> usize {
        self.f.capacity
    }

    pub fn entries(&self) -> usize {
        self.f.entries
    }

    pub fn is_full(&self) -> bool {
        self.f.is_full()
    }

    pub fn entry(&self, i: usize) -> OffsetPosition {
        let e = self.f.raw(i);
        OffsetPosition {
            offset: self.base_offset.plus(u32_at(e, 0) as i64),
            position: u32_at(e, 4),
        }
    }

    pub fn all_entries(&self) -> Vec<OffsetPosition> {
        (0..self.entries()).map(|i| self.entry(i)).collect()
    }

    pub fn last_entry(&self) -> OffsetPosition {
        match self.entries() {
            0 => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
            n => self.entry(n - 1),
        }
    }

    /// Appends an entry; `offset` must exceed the last entry's offset and
    /// fit a 32-bit relative offset (callers roll before it would not).
    pub fn append(&mut self, offset: Offset, position: u32) -> bool {
        let rel = offset.distance_from(self.base_offset);
        if self.is_full() || !(0..=u32::MAX as i64).contains(&rel) {
            return false;
        }
        if self.entries() > 0 {
            let last = self.last_entry();
            if offset <= last.offset || position <= last.position {
                return false;
            }
        }
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(rel as u32).to_be_bytes());
        b[4..].copy_from_slice(&position.to_be_bytes());
        self.f.push(&b)
    }

    /// Allocates disk space for `entries` more entries (see the module
    /// docs); ENOSPC when the disk is full.
    pub fn reserve(&mut self, entries: usize) -> Result<(), StorageError> {
        self.f.reserve(entries)
    }

    /// The entry with the largest offset `<= target`, or (base, 0).
    pub fn lookup(&self, target: Offset) -> OffsetPosition {
        match warm_lower_bound(self.entries(), OFFSET_ENTRY_SIZE, target.0, |i| {
            self.entry(i).offset.0
        }) {
            Some(i) => self.entry(i),
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// The entry with the largest position `<= position`, or (base, 0).
    pub fn lookup_by_position(&self, position: u64) -> OffsetPosition {
        let target = position.min(i64::MAX as u64) as i64;
        match largest_lower_bound(self.entries(), target, |i| self.entry(i).position as i64) {
            Some(i) => self.entry(i),
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Drops entries whose offset is `>= offset`.
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep =
            match largest_lower_bound(self.entries(), offset.0 - 1, |i| self.entry(i).offset.0) {
                Some(i) => i + 1,
                None => 0,
            };
        self.f.truncate_entries(keep);
    }

    /// Drops entries pointing at or beyond `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = (0..self.entries())
            .take_while(|&i| (self.entry(i).position as u64) < position)
            .count();
        self.f.truncate_entries(keep);
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.f.flush()
    }

    pub fn trim(&mut self) -> Result<(), StorageError> {
        self.f.trim(false)
    }

    pub fn resize(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.f.resize(max_bytes)
    }

    pub fn reset(&mut self) {
        self.f.truncate_entries(0);
    }
}

/// The `.timeindex` of one segment.
pub struct TimeIndex {
    base_offset: Offset,
    f: IndexFile,
}

impl TimeIndex {
    /// Valid entries: the strictly increasing (timestamp and offset) prefix
    /// with offsets in `[base, max_offset]`.
    pub fn open(
        fs: &Arc<dyn Fs>,
        path: &Path,
        base_offset: Offset,
        max_bytes: Option<u32>,
        max_offset: Offset,
    ) -> Result<Self, StorageError> {
        let f = IndexFile::open(fs, path, TIME_ENTRY_SIZE, max_bytes)?;
        let mut idx = TimeIndex { base_offset, f };
        let mut n = 0;
        let mut prev: Option<TimestampOffset> = None;
        while n < idx.f.scan_limit() {
            let e = idx.entry(n);
            let ok = e.offset <= max_offset
                && e.timestamp.0 >= 0
                && match prev {
                    None => true,
                    Some(p) => e.timestamp > p.timestamp && e.offset >= p.offset,
                };
            if !ok {
                break;
            }
            // An all-zero entry is preallocated space, not an entry.
            if e.timestamp.0 == 0 && e.offset == self_base(&idx) {
                break;
            }
            prev = Some(e);
            n += 1;
        }
        idx.f.entries = n;
        Ok(idx)
    }

    pub fn raw_capacity(&self) -> usize {
        self.f.capacity
    }

    pub fn entries(&self) -> usize {
        self.f.entries
    }

    pub fn is_full(&self) -> bool {
        self.f.is_full()
    }

    pub fn entry(&self, i: usize) -> TimestampOffset {
        let e = self.f.raw(i);
        TimestampOffset {
            timestamp: Timestamp(i64_at(e, 0)),
            offset: self.base_offset.plus(u32_at(e, 8) as i64),
        }
    }

    pub fn all_entries(&self) -> Vec<TimestampOffset> {
        (0..self.entries()).map(|i| self.entry(i)).collect()
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        match self.entries() {
            0 => None,
            n => Some(self.entry(n - 1)),
        }
    }

    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last
    /// entry's (Kafka's `maybeAppend`). `skip_full_check` lets the final
    /// entry of a rolled segment use the slot kept for it.
    pub fn maybe_append(
        &mut self,
        timestamp: Timestamp,
        offset: Offset,
        skip_full_check: bool,
    ) -> bool {
        let rel = offset.distance_from(self.base_offset);
        if (!skip_full_check && self.is_full())
            || self.f.entries >= self.f.capacity
            || !(0..=u32::MAX as i64).contains(&rel)
            || timestamp.0 < 0
        {
            return false;
        }
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp || offset < last.offset {
                return false;
            }
        }
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&timestamp.0.to_be_bytes());
        b[8..].copy_from_slice(&(rel as u32).to_be_bytes());
        self.f.push(&b)
    }

    /// Allocates disk space for `entries` more entries (see the module
    /// docs); ENOSPC when the disk is full.
    pub fn reserve(&mut self, entries: usize) -> Result<(), StorageError> {
        self.f.reserve(entries)
    }

    /// The entry with the largest timestamp `<= target`, or (NONE, base).
    pub fn lookup(&self, target: Timestamp) -> TimestampOffset {
        match warm_lower_bound(self.entries(), TIME_ENTRY_SIZE, target.0, |i| {
            self.entry(i).timestamp.0
        }) {
            Some(i) => self.entry(i),
            None => TimestampOffset {
                timestamp: Timestamp::NONE,
                offset: self.base_offset,
            },
        }
    }

    /// Drops entries whose offset is `>= offset`.
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep = (0..self.entries())
            .take_while(|&i| self.entry(i).offset < offset)
            .count();
        self.f.truncate_entries(keep);
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.f.flush()
    }

    pub fn trim(&mut self) -> Result<(), StorageError> {
        self.f.trim(false)
    }

    pub fn resize(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.f.resize(max_bytes)
    }

    pub fn reset(&mut self) {
        self.f.truncate_entries(0);
    }

    /// True when full, leaving room for the final entry a roll appends:
    /// Kafka rolls when either index is full.
    pub fn is_full_for_append(&self) -> bool {
        self.f.entries + 1 >= self.f.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimFs;

    fn fs() -> (SimFs, Arc<dyn Fs>) {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        (fs.clone(), Arc::new(fs))
    }

    #[test]
    fn offset_index_lookup_and_truncate() {
        let (sim, fs) = fs();
        let p = Path::new("/d/00000000000000000100.index");
        let mut idx = OffsetIndex::open(&fs, p, Offset(100), Some(80), 0).unwrap();
        assert_eq!(idx.raw_capacity(), 10);
        for i in 0..10u32 {
            assert!(idx.append(Offset(100 + 10 * i as i64 + 9), 1000 * (i + 1)));
        }
        assert!(idx.is_full());
        assert!(
            !idx.append(Offset(1000), 99_999),
            "full index refuses entries"
        );
        assert_eq!(
            idx.lookup(Offset(50)),
            OffsetPosition {
                offset: Offset(100),
                position: 0
            }
        );
        assert_eq!(idx.lookup(Offset(109)).position, 1000);
        assert_eq!(idx.lookup(Offset(118)).position, 1000);
        assert_eq!(idx.lookup(Offset(119)).position, 2000);
        assert_eq!(idx.lookup(Offset(10_000)).position, 10_000);
        assert_eq!(idx.lookup_by_position(2500).position, 2000);
        assert_eq!(idx.lookup_by_position(999).position, 0);
        idx.truncate_to(Offset(129));
        assert_eq!(idx.entries(), 2);
        assert!(!idx.append(Offset(110), 5000), "must be increasing");
        idx.trim().unwrap();
        assert_eq!(sim.contents(p).unwrap().len(), 16);
        drop(idx);
        // Reopened with a segment of 1500 bytes, the second entry is stale.
        let idx = OffsetIndex::open(&fs, p, Offset(100), None, 1500).unwrap();
        assert_eq!(idx.entries(), 1);
        assert_eq!(&sim.contents(p).unwrap()[..8], &[0, 0, 0, 9, 0, 0, 3, 232]);
    }

    #[test]
    fn preallocated_zero_tail_is_not_entries() {
        let (sim, fs) = fs();
        let p = Path::new("/d/0.index");
        let mut idx = OffsetIndex::open(&fs, p, Offset(0), Some(4096), 0).unwrap();
        idx.append(Offset(5), 4100);
        idx.append(Offset(9), 8300);
        idx.flush().unwrap();
        drop(idx);
        assert_eq!(sim.contents(p).unwrap().len(), 4096);
        let idx = OffsetIndex::open(&fs, p, Offset(0), Some(4096), 1 << 20).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.last_entry(),
            OffsetPosition {
                offset: Offset(9),
                position: 8300
            }
        );
    }

    #[test]
    fn the_slot_after_the_last_entry_is_always_allocated() {
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/d")).unwrap();
        sim.set_capacity(Some(1 << 20));
        let fs: Arc<dyn Fs> = Arc::new(sim.clone());
        let p = Path::new("/d/0.index");
        let mut idx = OffsetIndex::open(&fs, p, Offset(0), Some(1 << 16), 0).unwrap();
        assert_eq!(
            sim.used_bytes(),
            ALLOCATION_CHUNK,
            "first chunk before mapping"
        );
        let per_chunk = (ALLOCATION_CHUNK / 8) as u32;
        for i in 1..=per_chunk * 2 {
            idx.reserve(1).unwrap();
            assert!(idx.append(Offset(i as i64), i * 100));
            let slots = sim.used_bytes() / 8;
            assert!(slots > i as u64, "entry {i}: {slots} slots allocated");
        }
        idx.flush().unwrap();
        drop(idx);
        assert_eq!(sim.stats().unbacked_map_writes, 0);
        // A full disk: the next chunk cannot be had, and nothing faults.
        sim.set_capacity(Some(sim.used_bytes()));
        let mut idx = OffsetIndex::open(&fs, p, Offset(0), None, u64::MAX).unwrap();
        idx.resize(1 << 16).unwrap();
        // Entries go into what is allocated, then are skipped.
        let appended = (per_chunk * 2 + 1..per_chunk * 4)
            .take_while(|&i| idx.append(Offset(i as i64), i * 100))
            .count();
        assert!(
            appended < per_chunk as usize * 2,
            "a full disk refused the next chunk"
        );
        assert!(idx.reserve(1).is_err_and(|e| e.is_no_space()));
        idx.flush().unwrap();
        drop(idx);
        assert_eq!(sim.stats().unbacked_map_writes, 0);
    }

    #[test]
    fn time_index_keeps_increasing_timestamps() {
        let (sim, fs) = fs();
        let p = Path::new("/d/0.timeindex");
        let mut t = TimeIndex::open(&fs, p, Offset(0), Some(120), Offset(0)).unwrap();
        assert!(t.maybe_append(Timestamp(1000), Offset(3), false));
        assert!(!t.maybe_append(Timestamp(1000), Offset(5), false));
        assert!(!t.maybe_append(Timestamp(900), Offset(6), false));
        assert!(t.maybe_append(Timestamp(2000), Offset(8), false));
        assert_eq!(t.lookup(Timestamp(1500)).offset, Offset(3));
        assert_eq!(
            t.lookup(Timestamp(999)),
            TimestampOffset {
                timestamp: Timestamp::NONE,
                offset: Offset(0)
            }
        );
        assert_eq!(t.lookup(Timestamp(5000)).offset, Offset(8));
        t.truncate_to(Offset(8));
        assert_eq!(t.entries(), 1);
        t.trim().unwrap();
        drop(t);
        assert_eq!(
            sim.contents(p).unwrap(),
            [0, 0, 0, 0, 0, 0, 3, 232, 0, 0, 0, 3]
        );
        let t = TimeIndex::open(&fs, p, Offset(0), None, Offset(100)).unwrap();
        assert_eq!(t.last_entry().unwrap().timestamp, Timestamp(1000));
        let t2 = TimeIndex::open(&fs, p, Offset(0), None, Offset(2)).unwrap();
        assert_eq!(
            t2.entries(),
            0,
            "entry beyond the segment's last offset is stale"
        );
    }

    #[test]
    fn binary_search_edges() {
        let keys = [1i64, 3, 3, 7];
        assert_eq!(largest_lower_bound(4, 0, |i| keys[i]), None);
        assert_eq!(largest_lower_bound(4, 3, |i| keys[i]), Some(2));
        assert_eq!(largest_lower_bound(4, 100, |i| keys[i]), Some(3));
        assert_eq!(largest_lower_bound(0, 5, |i| keys[i]), None);
        // The warm section gives the same answers as a full search.
        let big: Vec<i64> = (0..5000).map(|i| i * 3).collect();
        for t in [-1, 0, 1, 3, 7000, 11_999, 12_000, 14_996, 14_997, 20_000] {
            assert_eq!(
                warm_lower_bound(big.len(), 8, t, |i| big[i]),
                largest_lower_bound(big.len(), t, |i| big[i]),
                "target {t}"
            );
        }
    }
}
