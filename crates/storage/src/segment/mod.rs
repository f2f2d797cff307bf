//! `LogSegment`: one `.log` file with its `.index`, `.timeindex` and
//! `.txnindex` (aborted transactions, `txn.rs`), plus the bounded cache of
//! open segment files.
//!
//! The active segment keeps its log open and its indexes mapped at
//! `segment.index.bytes` (an index holds no descriptor: one per segment).
//! Inactive segments have trimmed indexes and open
//! their files lazily; [`HandleCache`] keeps at most
//! `max_open_segment_files` of them open and closes the least recently used
//! (readers holding a [`FileSlice`] keep their own reference to the fd).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use sluice_record::{BatchHeader, Offset, RecordError, Timestamp, BATCH_HEADER_SIZE};

use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, write_all_vectored_at, FileHandle, Fs, OpenOptions};
use crate::index::{OffsetIndex, OffsetPosition, TimeIndex, TimestampOffset};
use crate::recovery::{self, Cut};
pub(crate) use crate::recovery::{Gaps, OffsetRules};
use crate::txn_index::{TxnIndex, TXN_INDEX_FILE_SUFFIX};

mod txn;

pub const LOG_FILE_SUFFIX: &str = ".log";
pub const INDEX_FILE_SUFFIX: &str = ".index";
pub const TIME_INDEX_FILE_SUFFIX: &str = ".timeindex";
pub const DELETED_FILE_SUFFIX: &str = ".deleted";

/// `00000000000000000042` — Kafka's 20-digit file name of a base offset.
pub fn file_name_prefix(base: Offset) -> String {
    format!("{:020}", base.0)
}

/// Parses `<20 digits>.log` into a base offset.
pub fn parse_log_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(LOG_FILE_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok().map(Offset)
}

/// A byte range of a segment file ending on a batch boundary, ready for
/// `sendfile` (via [`FileHandle::raw_fd`]) or [`FileSlice::read_to_vec`].
#[derive(Clone)]
pub struct FileSlice {
    pub file: Arc<dyn FileHandle>,
    pub position: u64,
    pub len: u32,
    /// One past the last offset of the slice's last batch (for metrics: a
    /// fetch from offset `o` serves `next_offset - o` offsets without the
    /// broker reading the record bytes). Compaction gaps inside the span
    /// are included.
    pub next_offset: Offset,
}

impl std::fmt::Debug for FileSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSlice")
            .field("position", &self.position)
            .field("len", &self.len)
            .finish()
    }
}

impl FileSlice {
    pub fn read_to_vec(&self) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; self.len as usize];
        read_exact_at(&*self.file, &mut buf, self.position)
            .map_err(|e| StorageError::io("read segment", PathBuf::from("<file slice>"), e))?;
        Ok(buf)
    }
}

pub(crate) struct SegmentFiles {
    pub log: Arc<dyn FileHandle>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentMeta {
    /// One past the last offset in the segment (the base if empty). For
    /// inactive segments loaded from disk: the next segment's base (an
    /// upper bound) until a scan refines it.
    pub next_offset: Offset,
    /// Largest batch max timestamp and the last offset of its batch.
    pub max_timestamp: Option<TimestampOffset>,
    /// The first batch's max timestamp (segment.ms rolls), else creation time.
    pub rolling_ts: Option<i64>,
    pub created_ms: i64,
    pub bytes_since_last_index_entry: u64,
    /// Index files missing or corrupt: rebuild from the log when opened.
    pub needs_index_rebuild: bool,
    pub max_timestamp_loaded: bool,
}

/// Why an append to the segment failed.
pub(crate) struct AppendFailure {
    pub error: StorageError,
    /// The segment could not be cut back to its last whole batch: the file
    /// holds garbage and the log directory must go offline.
    pub unrecoverable: bool,
}

struct SegmentPaths {
    log: PathBuf,
    index: PathBuf,
    time_index: PathBuf,
    txn_index: PathBuf,
}

impl SegmentPaths {
    fn new(dir: &Path, base: Offset) -> Self {
        let prefix = file_name_prefix(base);
        SegmentPaths {
            log: dir.join(format!("{prefix}{LOG_FILE_SUFFIX}")),
            index: dir.join(format!("{prefix}{INDEX_FILE_SUFFIX}")),
            time_index: dir.join(format!("{prefix}{TIME_INDEX_FILE_SUFFIX}")),
            txn_index: dir.join(format!("{prefix}{TXN_INDEX_FILE_SUFFIX}")),
        }
    }
}

/// The index settings a segment is created or loaded with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentConfig {
    pub index_max_bytes: u32,
    pub index_interval_bytes: u32,
}

/// A batch's position, header, and the file it is in.
pub(crate) type BatchAt = (u64, BatchHeader, Arc<dyn FileHandle>);

/// Decompression limit when decoding one batch for a timestamp lookup.
pub const MAX_DECOMPRESSED_FOR_TIMESTAMP: usize = 64 << 20;

static NEXT_SEGMENT_ID: AtomicU64 = AtomicU64::new(1);

pub struct LogSegment {
    id: u64,
    base_offset: Offset,
    paths: SegmentPaths,
    fs: Arc<dyn Fs>,
    index_max_bytes: u32,
    index_interval_bytes: AtomicU32,
    files: Mutex<Option<SegmentFiles>>,
    size: AtomicU64,
    meta: Mutex<SegmentMeta>,
    active: AtomicBool,
    cache: Arc<HandleCache>,
    /// The aborted transactions whose markers are in this segment.
    txn_index: TxnIndex,
}

/// Result of scanning a segment's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryResult {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    pub next_offset: Offset,
    pub batches: u64,
}

impl LogSegment {
    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    pub fn log_path(&self) -> PathBuf {
        self.paths.log.clone()
    }
    pub fn index_path(&self) -> PathBuf {
        self.paths.index.clone()
    }
    pub fn time_index_path(&self) -> PathBuf {
        self.paths.time_index.clone()
    }
    pub(crate) fn meta(&self) -> SegmentMeta {
        *self.meta.lock()
    }
    pub fn next_offset(&self) -> Offset {
        self.meta.lock().next_offset
    }
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
    /// True while the files are open.
    pub fn is_open(&self) -> bool {
        self.files.lock().is_some()
    }

    /// Creates a new, empty, active segment (replacing leftovers of a
    /// previous incarnation at the same base).
    pub(crate) fn create(
        fs: Arc<dyn Fs>,
        dir: &Path,
        base_offset: Offset,
        cfg: SegmentConfig,
        cache: Arc<HandleCache>,
        now_ms: i64,
    ) -> Result<Arc<Self>, StorageError> {
        let paths = SegmentPaths::new(dir, base_offset);
        let txn_index = TxnIndex::create(fs.clone(), paths.txn_index.clone(), base_offset)?;
        let seg = Arc::new(LogSegment {
            id: NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed),
            base_offset,
            paths,
            fs,
            index_max_bytes: cfg.index_max_bytes,
            index_interval_bytes: AtomicU32::new(cfg.index_interval_bytes),
            files: Mutex::new(None),
            size: AtomicU64::new(0),
            meta: Mutex::new(SegmentMeta {
                next_offset: base_offset,
                max_timestamp: None,
                rolling_ts: None,
                created_ms: now_ms,
                bytes_since_last_index_entry: 0,
                needs_index_rebuild: false,
                max_timestamp_loaded: true,
            }),
            active: AtomicBool::new(true),
            cache,
            txn_index,
        });
        let paths = [seg.log_path(), seg.index_path(), seg.time_index_path()];
        let created = paths.iter().try_for_each(|p| {
            seg.fs
                .open(p, &OpenOptions::create_truncate())
                .map(drop)
                .ctx("create segment file", p)
        });
        // Opening allocates the indexes' first pages: on a full disk the
        // segment is not created (no file is left for a load to trust).
        if let Err(e) = created.and_then(|_| seg.ensure_open()) {
            *seg.files.lock() = None;
            for p in &paths {
                let _ = seg.fs.remove_file(p);
            }
            return Err(e);
        }
        Ok(seg)
    }

    /// A segment found on disk, files closed. `next_offset_bound` is the next
    /// segment's base (or `None` for the last one).
    pub(crate) fn load(
        fs: Arc<dyn Fs>,
        dir: &Path,
        base_offset: Offset,
        cfg: SegmentConfig,
        cache: Arc<HandleCache>,
        next_offset_bound: Option<Offset>,
        now_ms: i64,
    ) -> Result<Arc<Self>, StorageError> {
        let paths = SegmentPaths::new(dir, base_offset);
        let txn_index = TxnIndex::open(fs.clone(), paths.txn_index.clone(), base_offset)?;
        let seg = Arc::new(LogSegment {
            id: NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed),
            base_offset,
            paths,
            fs,
            index_max_bytes: cfg.index_max_bytes,
            index_interval_bytes: AtomicU32::new(cfg.index_interval_bytes),
            files: Mutex::new(None),
            size: AtomicU64::new(0),
            meta: Mutex::new(SegmentMeta {
                next_offset: next_offset_bound.unwrap_or(base_offset),
                max_timestamp: None,
                rolling_ts: None,
                created_ms: now_ms,
                bytes_since_last_index_entry: 0,
                needs_index_rebuild: false,
                max_timestamp_loaded: false,
            }),
            active: AtomicBool::new(false),
            cache,
            txn_index,
        });
        let lp = seg.log_path();
        let f = seg
            .fs
            .open(&lp, &OpenOptions::read())
            .ctx("open segment", &lp)?;
        seg.size
            .store(f.len().ctx("stat segment", &lp)?, Ordering::Release);
        drop(f);
        let missing = !seg.fs.exists(&seg.index_path()) || !seg.fs.exists(&seg.time_index_path());
        seg.meta.lock().needs_index_rebuild = missing;
        Ok(seg)
    }

    fn open_files_locked(&self, slot: &mut Option<SegmentFiles>) -> Result<bool, StorageError> {
        if slot.is_some() {
            return Ok(false);
        }
        let lp = self.log_path();
        let log = self
            .fs
            .open(&lp, &OpenOptions::read_write())
            .ctx("open segment", &lp)?;
        let active = self.is_active();
        let max = if active {
            Some(self.index_max_bytes)
        } else {
            None
        };
        let size = self.size();
        let meta = *self.meta.lock();
        let offset_index =
            OffsetIndex::open(&self.fs, &self.index_path(), self.base_offset, max, size)?;
        let max_offset = if meta.next_offset > self.base_offset && !active {
            meta.next_offset.plus(-1)
        } else {
            Offset(i64::MAX)
        };
        let time_index = TimeIndex::open(
            &self.fs,
            &self.time_index_path(),
            self.base_offset,
            max,
            max_offset,
        )?;
        let corrupt = !active
            && (offset_index.entries() != offset_index.raw_capacity()
                || time_index.entries() != time_index.raw_capacity());
        *slot = Some(SegmentFiles {
            log,
            offset_index,
            time_index,
        });
        if corrupt || meta.needs_index_rebuild {
            tracing::warn!(segment = %lp.display(), "index missing, corrupt or stale; rebuilding it");
            let files = slot.as_mut().expect("just opened");
            if !active {
                files.offset_index.resize(self.index_max_bytes)?;
                files.time_index.resize(self.index_max_bytes)?;
            }
            let r = self.rebuild_indexes(files, !active)?;
            if !active {
                files.offset_index.trim()?;
                files.time_index.trim()?;
            }
            let mut m = self.meta.lock();
            m.needs_index_rebuild = false;
            if r.valid_bytes < size {
                tracing::warn!(segment = %lp.display(), valid = r.valid_bytes, size, "segment has invalid bytes past its last whole batch");
            }
        }
        Ok(!active)
    }

    /// Opens the files if closed; registers the segment in the LRU when it
    /// is inactive.
    pub(crate) fn ensure_open(self: &Arc<Self>) -> Result<(), StorageError> {
        let registered = {
            let mut slot = self.files.lock();
            self.open_files_locked(&mut slot)?
        };
        if registered || !self.is_active() {
            self.cache.touch(self);
        }
        Ok(())
    }

    pub(crate) fn with_files<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut SegmentFiles) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let opened_inactive;
        let r = {
            let mut slot = self.files.lock();
            opened_inactive = self.open_files_locked(&mut slot)?;
            f(slot.as_mut().expect("opened"))
        };
        if opened_inactive || !self.is_active() {
            self.cache.touch(self);
        }
        r
    }

    /// Closes the files of an inactive segment (LRU eviction).
    pub(crate) fn close_files(&self) {
        let mut slot = self.files.lock();
        if self.is_active() {
            return;
        }
        if let Some(files) = slot.take() {
            let _ = files.offset_index.flush();
            let _ = files.time_index.flush();
        }
    }

    /// Appends already validated batches, given as consecutive pieces,
    /// with one positional (vectored) write.
    pub(crate) fn append(
        self: &Arc<Self>,
        bytes: &[std::io::IoSlice<'_>],
        headers: &[(usize, BatchHeader)],
        index_interval_bytes: u32,
    ) -> Result<(), AppendFailure> {
        let start = self.size();
        let total: usize = bytes.iter().map(|b| b.len()).sum();
        let fail = |error, unrecoverable| AppendFailure {
            error,
            unrecoverable,
        };
        let mut slot = self.files.lock();
        self.open_files_locked(&mut slot)
            .map_err(|e| fail(e, false))?;
        let files = slot.as_mut().expect("opened");
        // Index pages for every entry this call may add are allocated before
        // the log is written: on a full disk the append is refused whole.
        files
            .offset_index
            .reserve(headers.len())
            .and_then(|_| files.time_index.reserve(headers.len() + 1))
            .map_err(|e| fail(e, false))?;
        if let Err((written, e)) = write_all_vectored_at(&*files.log, bytes, start) {
            // Cut back to the last whole batch; if even that fails the file
            // holds a torn batch and the directory must go offline.
            let unrecoverable = files.log.set_len(start).is_err();
            let op = if written > 0 {
                "short write to segment"
            } else {
                "write segment"
            };
            return Err(fail(
                StorageError::io(op, self.log_path(), e),
                unrecoverable,
            ));
        }
        let mut meta = self.meta.lock();
        for (pos, h) in headers {
            let position = start + *pos as u64;
            if meta.bytes_since_last_index_entry > index_interval_bytes as u64 {
                files.offset_index.append(h.last_offset(), position as u32);
                if let Some(m) = meta.max_timestamp {
                    files.time_index.maybe_append(m.timestamp, m.offset, false);
                }
                meta.bytes_since_last_index_entry = 0;
            }
            // The max-timestamp entry is updated after the index check, as
            // in Kafka's LogSegment.append (entries describe earlier batches).
            if meta
                .max_timestamp
                .is_none_or(|m| h.max_timestamp > m.timestamp)
            {
                meta.max_timestamp = Some(TimestampOffset {
                    timestamp: h.max_timestamp,
                    offset: h.last_offset(),
                });
            }
            if meta.rolling_ts.is_none() {
                meta.rolling_ts = Some(h.max_timestamp.0);
            }
            meta.bytes_since_last_index_entry += h.size() as u64;
            meta.next_offset = h.next_offset();
        }
        self.size.store(start + total as u64, Ordering::Release);
        Ok(())
    }

    /// Whether appending `bytes` more bytes ending at `last_offset` needs a
    /// new segment first (Kafka's `shouldRoll`).
    pub(crate) fn should_roll(
        self: &Arc<Self>,
        segment_bytes: u64,
        segment_ms: i64,
        append_bytes: u64,
        last_offset: Offset,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let size = self.size();
        if size == 0 {
            return Ok(false);
        }
        if size + append_bytes > segment_bytes {
            return Ok(true);
        }
        if last_offset.distance_from(self.base_offset) > i32::MAX as i64 {
            return Ok(true);
        }
        let meta = self.meta();
        let since = meta.rolling_ts.unwrap_or(meta.created_ms);
        if now_ms.saturating_sub(since) > segment_ms {
            return Ok(true);
        }
        self.with_files(|f| Ok(f.offset_index.is_full() || f.time_index.is_full_for_append()))
    }

    /// Turns the active segment into an inactive one: final time index
    /// entry, indexes trimmed to size, files left to the LRU.
    pub(crate) fn make_inactive(self: &Arc<Self>) -> Result<(), StorageError> {
        {
            let mut slot = self.files.lock();
            self.open_files_locked(&mut slot)?;
            let files = slot.as_mut().expect("opened");
            if let Some(m) = self.meta.lock().max_timestamp {
                files.time_index.maybe_append(m.timestamp, m.offset, true);
            }
            files.offset_index.trim()?;
            files.time_index.trim()?;
            self.active.store(false, Ordering::Release);
        }
        self.cache.touch(self);
        Ok(())
    }

    /// Makes an inactive segment active again (after truncation).
    pub(crate) fn make_active(self: &Arc<Self>) -> Result<(), StorageError> {
        self.cache.remove(self.id);
        let mut slot = self.files.lock();
        self.open_files_locked(&mut slot)?;
        let files = slot.as_mut().expect("opened");
        // Active only once both indexes can grow (a full disk refuses).
        files.offset_index.resize(self.index_max_bytes)?;
        files.time_index.resize(self.index_max_bytes)?;
        self.active.store(true, Ordering::Release);
        Ok(())
    }

    /// `fdatasync` of the log. The indexes are not synced here (that would
    /// triple the fsyncs of every group commit): they are msynced when the
    /// segment is rolled or closed, and recovery never trusts them blindly —
    /// the active segment is always rebuilt after an unclean shutdown, and an
    /// inactive segment's index that is not a clean, in-range, increasing
    /// sequence of exactly its file's length is rebuilt when opened.
    pub(crate) fn flush(self: &Arc<Self>) -> Result<(), StorageError> {
        let lp = self.log_path();
        self.with_files(|f| f.log.sync_data().ctx("fsync segment", &lp))?;
        self.txn_index.sync()
    }

    /// Trims indexes and drops the files (clean close).
    pub(crate) fn close(&self) -> Result<(), StorageError> {
        self.cache.remove(self.id);
        let mut slot = self.files.lock();
        if let Some(mut files) = slot.take() {
            if self.is_active() {
                files.offset_index.trim()?;
                files.time_index.trim()?;
            } else {
                files.offset_index.flush()?;
                files.time_index.flush()?;
            }
        }
        Ok(())
    }

    /// Renames the segment's files to `*.deleted`; returns the new paths.
    pub(crate) fn rename_to_deleted(&self) -> Result<Vec<PathBuf>, StorageError> {
        self.cache.remove(self.id);
        self.active.store(false, Ordering::Release);
        *self.files.lock() = None;
        let mut out = Vec::new();
        let files = [
            self.log_path(),
            self.index_path(),
            self.time_index_path(),
            self.txn_index_path(),
        ];
        for p in files {
            if self.fs.exists(&p) {
                let mut to = p.clone().into_os_string();
                to.push(DELETED_FILE_SUFFIX);
                let to = PathBuf::from(to);
                self.fs
                    .rename(&p, &to)
                    .ctx("rename segment to .deleted", &p)?;
                out.push(to);
            }
        }
        Ok(out)
    }

    /// Reads the header of the batch at `pos` (framing checked, no CRC).
    fn header_at(log: &dyn FileHandle, pos: u64, path: &Path) -> Result<BatchHeader, StorageError> {
        let mut h = [0u8; BATCH_HEADER_SIZE];
        read_exact_at(log, &mut h, pos).ctx("read segment", path)?;
        Ok(BatchHeader::parse(&h)?)
    }

    /// Position and header of the first batch whose last offset is
    /// `>= target`, scanning from the index entry below it; `None` past the
    /// end of the segment.
    pub(crate) fn translate_offset(
        self: &Arc<Self>,
        target: Offset,
    ) -> Result<Option<BatchAt>, StorageError> {
        let size = self.size();
        let (log, start) =
            self.with_files(|f| Ok((f.log.clone(), f.offset_index.lookup(target))))?;
        let lp = self.log_path();
        let mut pos = start.position as u64;
        while pos + BATCH_HEADER_SIZE as u64 <= size {
            let h = Self::header_at(&*log, pos, &lp)?;
            if h.last_offset() >= target {
                return Ok(Some((pos, h, log)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Calls `f` with the header of every whole batch whose last offset is
    /// `>= from`, in order (producer state replay reads only headers).
    pub(crate) fn for_each_header_from(
        self: &Arc<Self>,
        from: Offset,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let size = self.size();
        let lp = self.log_path();
        let Some((mut pos, _, log)) = self.translate_offset(from)? else {
            return Ok(());
        };
        while pos + BATCH_HEADER_SIZE as u64 <= size {
            let h = Self::header_at(&*log, pos, &lp)?;
            if h.size() < BATCH_HEADER_SIZE || pos + h.size() as u64 > size {
                break;
            }
            f(&h);
            pos += h.size() as u64;
        }
        Ok(())
    }

    /// A slice starting at the batch holding `fetch_offset`, ending on a
    /// batch boundary, holding only batches that end before `max_offset`
    /// (exclusive), at most `max_bytes` unless the first batch alone is
    /// bigger and `min_one_batch` (KIP-74).
    pub(crate) fn read(
        self: &Arc<Self>,
        fetch_offset: Offset,
        max_bytes: usize,
        max_offset: Offset,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, StorageError> {
        let size = self.size();
        let Some((start, first, log)) = self.translate_offset(fetch_offset)? else {
            return Ok(None);
        };
        if first.next_offset() > max_offset {
            return Ok(None);
        }
        let first_size = first.size() as u64;
        if first_size > max_bytes as u64 && !min_one_batch {
            return Ok(None);
        }
        let mut end = start + first_size;
        let mut next_offset = Some(first.next_offset());
        let limit = start.saturating_add(max_bytes as u64).min(size);
        if end < limit {
            // Jump through the index to the last indexed batch that starts
            // within the budget; every batch before it ends before it.
            let jump = self.with_files(|f| Ok(f.offset_index.lookup_by_position(limit)))?;
            if jump.position as u64 > end && jump.offset < max_offset {
                // The indexed batch ends at its last offset = jump.offset.
                end = jump.position as u64;
                // The slice now ends where that batch begins; its base
                // offset (read below) bounds the slice's offsets.
                next_offset = None;
            }
            let lp = self.log_path();
            while end + BATCH_HEADER_SIZE as u64 <= size {
                let h = Self::header_at(&*log, end, &lp)?;
                let next_end = end + h.size() as u64;
                if next_end > limit || h.next_offset() > max_offset {
                    next_offset.get_or_insert(h.base_offset);
                    break;
                }
                end = next_end;
                next_offset = Some(h.next_offset());
            }
        }
        Ok(Some(FileSlice {
            file: log,
            position: start,
            len: (end - start).min(u32::MAX as u64) as u32,
            // Unknown only if the indexed batch's header was not read (it
            // is whole on disk, so it is): `max_offset` bounds it anyway.
            next_offset: next_offset.unwrap_or(max_offset),
        }))
    }

    /// The first record with timestamp `>= ts` at or after `start_offset`:
    /// the time index narrows the scan, batch headers skip whole batches, and
    /// the one candidate batch is decoded (decompressed if needed, at most
    /// [`MAX_DECOMPRESSED_FOR_TIMESTAMP`] bytes) to find the record, as Kafka
    /// does. If that batch cannot be decoded, its base offset (clamped to
    /// `start_offset`) and max timestamp are returned.
    pub(crate) fn find_offset_by_timestamp(
        self: &Arc<Self>,
        ts: Timestamp,
        start_offset: Offset,
    ) -> Result<Option<(Offset, Timestamp)>, StorageError> {
        let size = self.size();
        let (log, pos) = self.with_files(|f| {
            let t = f.time_index.lookup(ts);
            let p = f.offset_index.lookup(t.offset.max(start_offset));
            Ok((f.log.clone(), p.position as u64))
        })?;
        let lp = self.log_path();
        let mut pos = pos;
        while pos + BATCH_HEADER_SIZE as u64 <= size {
            let h = Self::header_at(&*log, pos, &lp)?;
            if h.max_timestamp >= ts && h.last_offset() >= start_offset {
                let fallback = (h.base_offset.max(start_offset), h.max_timestamp);
                if pos + h.size() as u64 > size {
                    return Ok(Some(fallback));
                }
                let mut buf = vec![0u8; h.size()];
                read_exact_at(&*log, &mut buf, pos).ctx("read segment", &lp)?;
                let Ok(reader) =
                    sluice_record::BatchReader::new(&buf, MAX_DECOMPRESSED_FOR_TIMESTAMP)
                else {
                    return Ok(Some(fallback));
                };
                for r in reader.records() {
                    match r {
                        Ok(rec) if rec.timestamp >= ts && rec.offset >= start_offset => {
                            return Ok(Some((rec.offset, rec.timestamp)));
                        }
                        Ok(_) => {}
                        Err(_) => return Ok(Some(fallback)),
                    }
                }
                // Max timestamp said yes but no record did (a producer-set
                // max above its records): keep scanning.
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// The segment's largest timestamp, loading it from the time index of an
    /// inactive segment on first use.
    pub(crate) fn max_timestamp(self: &Arc<Self>) -> Result<Option<TimestampOffset>, StorageError> {
        {
            let m = self.meta.lock();
            if m.max_timestamp_loaded {
                return Ok(m.max_timestamp);
            }
        }
        let last = self.with_files(|f| Ok(f.time_index.last_entry()))?;
        let mut m = self.meta.lock();
        m.max_timestamp = last;
        m.max_timestamp_loaded = true;
        Ok(last)
    }

    /// Recomputes next offset, max timestamp, rolling timestamp and the
    /// bytes since the last index entry from the indexes plus a scan of the
    /// batches after the last offset index entry (framing only).
    pub(crate) fn load_tail_state(self: &Arc<Self>) -> Result<(), StorageError> {
        let size = self.size();
        let lp = self.log_path();
        let (log, last, time_last) = self.with_files(|f| {
            Ok((
                f.log.clone(),
                f.offset_index.last_entry(),
                f.time_index.last_entry(),
            ))
        })?;
        let mut next = self.base_offset;
        let mut max_ts = time_last;
        let mut pos = last.position as u64;
        let mut rolling = None;
        if size >= BATCH_HEADER_SIZE as u64 {
            rolling = Some(Self::header_at(&*log, 0, &lp)?.max_timestamp.0);
        }
        while pos + BATCH_HEADER_SIZE as u64 <= size {
            let h = Self::header_at(&*log, pos, &lp)?;
            if pos + h.size() as u64 > size {
                break;
            }
            if max_ts.is_none_or(|m| h.max_timestamp > m.timestamp) {
                max_ts = Some(TimestampOffset {
                    timestamp: h.max_timestamp,
                    offset: h.last_offset(),
                });
            }
            next = h.next_offset();
            pos += h.size() as u64;
        }
        let mut m = self.meta.lock();
        m.next_offset = next.max(self.base_offset);
        m.max_timestamp = max_ts;
        m.max_timestamp_loaded = true;
        m.rolling_ts = rolling;
        m.bytes_since_last_index_entry = if last.position == 0 && size > 0 {
            size
        } else {
            size - last.position as u64
        };
        Ok(())
    }

    /// Validates every batch (framing, CRC, and the offset rules of
    /// [`crate::recovery`]), rebuilds both indexes from scratch, and cuts
    /// the file at the first invalid batch. `final_time_entry`: add the
    /// max-timestamp entry a roll adds (for non-last segments).
    pub(crate) fn recover(
        self: &Arc<Self>,
        final_time_entry: bool,
        rules: &OffsetRules,
    ) -> Result<RecoveryResult, StorageError> {
        let index_interval_bytes = self.index_interval_bytes.load(Ordering::Relaxed);
        let mut slot = self.files.lock();
        self.open_files_locked(&mut slot)?;
        let files = slot.as_mut().expect("opened");
        files.offset_index.resize(self.index_max_bytes)?;
        files.time_index.resize(self.index_max_bytes)?;
        let mut r =
            self.rebuild_with_interval(files, final_time_entry, index_interval_bytes, rules)?;
        let lp = self.log_path();
        let file_len = files.log.len().ctx("stat segment", &lp)?;
        if r.valid_bytes < file_len {
            files
                .log
                .set_len(r.valid_bytes)
                .ctx("truncate segment", &lp)?;
            r.truncated_bytes = file_len - r.valid_bytes;
        }
        if !self.is_active() {
            files.offset_index.trim()?;
            files.time_index.trim()?;
        }
        Ok(r)
    }

    fn rebuild_indexes(
        &self,
        files: &mut SegmentFiles,
        final_time_entry: bool,
    ) -> Result<RecoveryResult, StorageError> {
        let interval = self.index_interval_bytes.load(Ordering::Relaxed);
        self.rebuild_with_interval(files, final_time_entry, interval, &OffsetRules::relaxed())
    }

    /// The recovery walk. A batch is indexed only once the batch after it
    /// (or the end of the segment) has been checked, because the offset
    /// rules may cut at the batch before the one that breaks them.
    fn rebuild_with_interval(
        &self,
        files: &mut SegmentFiles,
        final_time_entry: bool,
        interval: u32,
        rules: &OffsetRules,
    ) -> Result<RecoveryResult, StorageError> {
        let lp = self.log_path();
        let file_len = files.log.len().ctx("stat segment", &lp)?;
        files.offset_index.reset();
        files.time_index.reset();
        let log = files.log.clone();
        let mut reader = ChunkReader::new(&*log, file_len);
        let mut pos = 0u64;
        let mut walk = IndexWalk::new(self.base_offset, interval);
        let mut pending: Option<(u64, BatchHeader)> = None;
        let mut whole = true;
        while pos < file_len {
            let Some(batch) = reader.batch_at(pos).ctx("read segment", &lp)? else {
                whole = false;
                break;
            };
            // Stored batches may have had records removed by compaction.
            let h = match BatchHeader::validate_stored(batch) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(segment = %lp.display(), position = pos, error = %e, "invalid batch; truncating");
                    whole = false;
                    break;
                }
            };
            let prev = pending.as_ref().map(|(_, p)| p);
            match recovery::check_batch(self.base_offset, &h, prev, rules) {
                Ok(()) => {}
                Err(Cut::Here(why)) => {
                    tracing::warn!(segment = %lp.display(), position = pos, base_offset = h.base_offset.0, last_offset = h.last_offset().0, reason = why, "batch offsets invalid; truncating");
                    whole = false;
                    break;
                }
                Err(Cut::BeforePrevious(why)) => {
                    let (at, p) = pending.take().expect("a previous batch");
                    tracing::warn!(segment = %lp.display(), position = at, base_offset = p.base_offset.0, next_base_offset = h.base_offset.0, reason = why, "batch offsets invalid; truncating before the previous batch too");
                    whole = false;
                    break;
                }
            }
            if let Some((at, p)) = pending.replace((pos, h)) {
                walk.add(files, at, &p);
            }
            pos += h.size() as u64;
        }
        if let Some((at, p)) = pending {
            if !whole || recovery::keep_last_batch(&p, rules) {
                walk.add(files, at, &p);
            } else {
                tracing::warn!(segment = %lp.display(), position = at, base_offset = p.base_offset.0, next_segment = ?rules.next_segment_base, "segment does not end at the next segment's base; truncating its last batch");
            }
        }
        if final_time_entry {
            if let Some(m) = walk.max_ts {
                files.time_index.maybe_append(m.timestamp, m.offset, true);
            }
        }
        self.size.store(walk.end, Ordering::Release);
        let mut m = self.meta.lock();
        m.next_offset = walk.next;
        m.max_timestamp = walk.max_ts;
        m.max_timestamp_loaded = true;
        m.rolling_ts = walk.rolling;
        m.bytes_since_last_index_entry = walk.since;
        Ok(RecoveryResult {
            valid_bytes: walk.end,
            truncated_bytes: 0,
            next_offset: walk.next,
            batches: walk.batches,
        })
    }

    /// Removes every batch whose last offset is `>= offset`: the batch
    /// containing `offset` goes too. Returns bytes removed.
    pub(crate) fn truncate_to(self: &Arc<Self>, offset: Offset) -> Result<u64, StorageError> {
        let Some((pos, first_gone, _)) = self.translate_offset(offset)? else {
            return Ok(0);
        };
        let size = self.size();
        let lp = self.log_path();
        self.with_files(|f| {
            f.offset_index.truncate_to_position(pos);
            f.time_index.truncate_to(offset);
            f.log.set_len(pos).ctx("truncate segment", &lp)
        })?;
        // Markers are one-record batches: those in the removed batches are
        // at or after the first removed batch's base.
        self.txn_index
            .truncate_to(first_gone.base_offset.min(offset))?;
        self.size.store(pos, Ordering::Release);
        self.load_tail_state()?;
        Ok(size - pos)
    }

    /// Entries of both indexes (tests and tools).
    pub fn index_entries(
        self: &Arc<Self>,
    ) -> Result<(Vec<OffsetPosition>, Vec<TimestampOffset>), StorageError> {
        self.with_files(|f| Ok((f.offset_index.all_entries(), f.time_index.all_entries())))
    }
}

/// Index and segment state built batch by batch by the recovery walk
/// (Kafka's indexing rule: an entry before a batch once more than
/// `index.interval.bytes` were added since the last one).
struct IndexWalk {
    interval: u64,
    since: u64,
    max_ts: Option<TimestampOffset>,
    rolling: Option<i64>,
    next: Offset,
    end: u64,
    batches: u64,
}

impl IndexWalk {
    fn new(base: Offset, interval: u32) -> Self {
        IndexWalk {
            interval: interval as u64,
            since: 0,
            max_ts: None,
            rolling: None,
            next: base,
            end: 0,
            batches: 0,
        }
    }

    fn add(&mut self, files: &mut SegmentFiles, pos: u64, h: &BatchHeader) {
        if self.since > self.interval {
            files.offset_index.append(h.last_offset(), pos as u32);
            if let Some(m) = self.max_ts {
                files.time_index.maybe_append(m.timestamp, m.offset, false);
            }
            self.since = 0;
        }
        if self.max_ts.is_none_or(|m| h.max_timestamp > m.timestamp) {
            self.max_ts = Some(TimestampOffset {
                timestamp: h.max_timestamp,
                offset: h.last_offset(),
            });
        }
        self.rolling.get_or_insert(h.max_timestamp.0);
        self.since += h.size() as u64;
        self.next = h.next_offset();
        self.end = pos + h.size() as u64;
        self.batches += 1;
    }
}

/// Reads a file in large chunks and hands out whole batches by position,
/// never allocating more than the file holds.
struct ChunkReader<'a> {
    file: &'a dyn FileHandle,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const CHUNK: usize = 1 << 20;

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn FileHandle, file_len: u64) -> Self {
        ChunkReader {
            file,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    fn ensure(&mut self, pos: u64, len: u64) -> std::io::Result<bool> {
        if pos + len > self.file_len {
            return Ok(false);
        }
        let have_end = self.buf_start + self.buf.len() as u64;
        if pos >= self.buf_start && pos + len <= have_end {
            return Ok(true);
        }
        let want = (len as usize)
            .max(CHUNK)
            .min((self.file_len - pos) as usize);
        self.buf.resize(want, 0);
        read_exact_at(self.file, &mut self.buf, pos)?;
        self.buf_start = pos;
        Ok(true)
    }

    /// The bytes of the batch at `pos` (as long as its length field says,
    /// if the file holds that many), or `None` at a torn end.
    fn batch_at(&mut self, pos: u64) -> std::io::Result<Option<&[u8]>> {
        if !self.ensure(pos, sluice_record::LOG_OVERHEAD as u64)? {
            return Ok(None);
        }
        let at = (pos - self.buf_start) as usize;
        let size = match BatchHeader::peek_size(&self.buf[at..]) {
            Ok(s) => s as u64,
            Err(RecordError::BatchLengthTooSmall(_)) | Err(_) => return Ok(None),
        };
        if !self.ensure(pos, size)? {
            return Ok(None);
        }
        let at = (pos - self.buf_start) as usize;
        Ok(Some(&self.buf[at..at + size as usize]))
    }
}

/// A bounded LRU of inactive segments with open files.
pub struct HandleCache {
    capacity: usize,
    inner: Mutex<LruInner>,
}

#[derive(Default)]
struct LruInner {
    tick: u64,
    by_id: HashMap<u64, (u64, Weak<LogSegment>)>,
    by_tick: BTreeMap<u64, u64>,
}

impl HandleCache {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(HandleCache {
            capacity: capacity.max(1),
            inner: Mutex::new(LruInner::default()),
        })
    }

    /// Inactive segments currently holding open files.
    pub fn open_count(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    fn touch(&self, seg: &Arc<LogSegment>) {
        let victims: Vec<Arc<LogSegment>> = {
            let mut g = self.inner.lock();
            g.tick += 1;
            let tick = g.tick;
            if let Some((old, _)) = g.by_id.insert(seg.id, (tick, Arc::downgrade(seg))) {
                g.by_tick.remove(&old);
            }
            g.by_tick.insert(tick, seg.id);
            let mut victims = Vec::new();
            while g.by_id.len() > self.capacity {
                let Some((&t, &id)) = g.by_tick.iter().next() else {
                    break;
                };
                g.by_tick.remove(&t);
                if let Some((_, w)) = g.by_id.remove(&id) {
                    if let Some(s) = w.upgrade() {
                        victims.push(s);
                    }
                }
            }
            victims
        };
        for v in victims {
            v.close_files();
        }
    }

    fn remove(&self, id: u64) {
        let mut g = self.inner.lock();
        if let Some((t, _)) = g.by_id.remove(&id) {
            g.by_tick.remove(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_have_twenty_digits() {
        assert_eq!(file_name_prefix(Offset(42)), "00000000000000000042");
        assert_eq!(
            parse_log_file_name("00000000000000000042.log"),
            Some(Offset(42))
        );
        assert_eq!(parse_log_file_name("42.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_file_name("0000000000000000004x.log"), None);
    }
}
