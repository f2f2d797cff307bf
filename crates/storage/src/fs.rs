//! The syscall seam. Every file operation the storage engine performs goes
//! through [`Fs`] and [`FileHandle`], and every reading of the wall clock
//! through [`Clock`], so that [`crate::sim::SimFs`] can replace the real
//! thing, inject failures and simulate a power cut.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// How to open a file (a small, seam-owned copy of `std::fs::OpenOptions`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub create_new: bool,
    pub truncate: bool,
}

impl OpenOptions {
    /// Read only.
    pub fn read() -> Self {
        OpenOptions {
            read: true,
            ..Default::default()
        }
    }
    /// Read + write, creating the file if missing.
    pub fn read_write_create() -> Self {
        OpenOptions {
            read: true,
            write: true,
            create: true,
            ..Default::default()
        }
    }
    /// Read + write of an existing file.
    pub fn read_write() -> Self {
        OpenOptions {
            read: true,
            write: true,
            ..Default::default()
        }
    }
    /// Read + write, creating or truncating.
    pub fn create_truncate() -> Self {
        OpenOptions {
            read: true,
            write: true,
            create: true,
            truncate: true,
            ..Default::default()
        }
    }
}

/// A file system: the real one ([`RealFs`]) or the simulator.
pub trait Fs: Send + Sync + 'static {
    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<Arc<dyn FileHandle>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Entries (files and directories) directly inside `path`, as full paths.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    fn exists(&self, path: &Path) -> bool;
    fn is_dir(&self, path: &Path) -> bool;
    /// fsync of a directory: makes creations, renames and removals of its
    /// entries durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Which boot of the machine holds this file system's page cache
    /// (Linux's `/proc/sys/kernel/random/boot_id`): the same across crashes
    /// of the process, new after a reboot or a power cut. `None` when
    /// unknown, which callers must treat as "maybe rebooted".
    fn boot_id(&self) -> Option<String>;
}

/// An open file. All positional: no shared cursor, so one handle serves
/// concurrent readers and the appender.
pub trait FileHandle: Send + Sync {
    /// `pread`: may return fewer bytes than asked at end of file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// `pwrite`: may write fewer bytes than given (a short write).
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize>;
    /// `pwritev`: writes `bufs` one after another from `pos`; may write
    /// fewer bytes than given (a short write). The default writes the first
    /// non-empty buffer only, which is a valid short write.
    fn write_vectored_at(&self, bufs: &[io::IoSlice<'_>], pos: u64) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write_at(b, pos),
            None => Ok(0),
        }
    }
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves disk blocks for `[offset, offset+len)` (`posix_fallocate`:
    /// `fallocate(2)`, or writing zeros into holes where the file system
    /// has no fallocate), extending the file if the range ends past it.
    /// Afterwards writes into the range, through `write_at` or a map, need
    /// no new space: a map of an allocated range cannot fault on ENOSPC
    /// (SIGBUS). Fails with ENOSPC when the space cannot be had.
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Real files: `Some(fd)` so the network layer can `sendfile(2)`.
    /// Simulated: `None` (the caller falls back to `read_at`).
    fn raw_fd(&self) -> Option<RawFd>;
    /// True if `[pos, pos+len)` is in the page cache. Never blocks.
    fn is_resident(&self, pos: u64, len: u64) -> io::Result<bool>;
    /// Brings `[pos, pos+len)` into the page cache; may block on the disk.
    fn prefault(&self, pos: u64, len: u64) -> io::Result<()>;
    /// A shared writable memory map of the first `len` bytes (the file must
    /// be at least that long). Used for the indexes.
    fn map_mut(&self, len: u64) -> io::Result<Box<dyn MappedRegion>>;
}

impl fmt::Debug for dyn FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileHandle")
    }
}

/// A writable memory map. Writes become durable after [`MappedRegion::flush`]
/// (`msync`).
pub trait MappedRegion: Send + Sync {
    fn as_slice(&self) -> &[u8];
    fn as_mut_slice(&mut self) -> &mut [u8];
    fn flush(&self) -> io::Result<()>;
}

/// Reads exactly `buf.len()` bytes at `pos`, or fails with `UnexpectedEof`.
pub fn read_exact_at(file: &dyn FileHandle, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than expected",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `pos`, continuing after short writes. On error,
/// returns how many bytes were written before it.
pub fn write_all_at(file: &dyn FileHandle, buf: &[u8], pos: u64) -> Result<(), (usize, io::Error)> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.write_at(&buf[done..], pos + done as u64) {
            Ok(0) => {
                return Err((
                    done,
                    io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"),
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    Ok(())
}

/// Writes all of `bufs`, in order, from `pos`, continuing after short
/// writes. On error, returns how many bytes were written before it.
pub fn write_all_vectored_at(
    file: &dyn FileHandle,
    bufs: &[io::IoSlice<'_>],
    pos: u64,
) -> Result<(), (usize, io::Error)> {
    let mut done = 0usize;
    // Index of the first buffer not fully written, and how much of it was.
    let (mut i, mut into) = (0usize, 0usize);
    while i < bufs.len() {
        if into > 0 {
            // Finish a partly written buffer on its own.
            match file.write_at(&bufs[i][into..], pos + done as u64) {
                Ok(0) => return Err((done, write_zero())),
                Ok(n) => {
                    done += n;
                    into += n;
                    if into == bufs[i].len() {
                        (i, into) = (i + 1, 0);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((done, e)),
            }
            continue;
        }
        let batch = &bufs[i..bufs.len().min(i + MAX_IOVECS)];
        if batch.iter().all(|b| b.is_empty()) {
            i += batch.len();
            continue;
        }
        match file.write_vectored_at(batch, pos + done as u64) {
            Ok(0) => return Err((done, write_zero())),
            Ok(mut n) => {
                done += n;
                while i < bufs.len() && n > 0 && n >= bufs[i].len() {
                    n -= bufs[i].len();
                    i += 1;
                }
                into = n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    Ok(())
}

/// Buffers per `pwritev` call (Linux's IOV_MAX).
const MAX_IOVECS: usize = 1024;

fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes")
}

/// Source of wall-clock milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock(AtomicI64::new(now_ms))
    }
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// RealFs
// ---------------------------------------------------------------------------

/// The real file system: `std::fs` plus `libc` for `pread`/`pwrite`,
/// `fdatasync`, `preadv2(RWF_NOWAIT)`, `posix_fadvise`, and `memmap2`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

struct RealFile {
    file: std::fs::File,
}

fn cvt(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

impl FileHandle for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        // SAFETY: buf is a valid writable region of buf.len() bytes.
        cvt(unsafe {
            libc::pread(
                self.file.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                pos as libc::off_t,
            )
        })
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        // SAFETY: buf is a valid readable region of buf.len() bytes.
        cvt(unsafe {
            libc::pwrite(
                self.file.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                pos as libc::off_t,
            )
        })
    }

    fn write_vectored_at(&self, bufs: &[io::IoSlice<'_>], pos: u64) -> io::Result<usize> {
        let n = bufs.len().min(MAX_IOVECS);
        // SAFETY: `IoSlice` is ABI-compatible with `struct iovec` on Unix,
        // and the first `n` slices are valid readable regions.
        cvt(unsafe {
            libc::pwritev(
                self.file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                n as libc::c_int,
                pos as libc::off_t,
            )
        })
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: plain syscall on an owned fd. posix_fallocate returns the
        // error number instead of setting errno.
        let r = unsafe {
            libc::posix_fallocate(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        match r {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn is_resident(&self, pos: u64, len: u64) -> io::Result<bool> {
        if len == 0 {
            return Ok(true);
        }
        // Every page of the range: a range whose middle was evicted (memory
        // pressure evicts in LRU order, not by file range) would otherwise
        // reach sendfile on a network thread and block it on the disk.
        if let Some(all) = cachestat_resident(self.file.as_raw_fd(), pos, len) {
            return Ok(all);
        }
        // Kernels before 6.5 (or a seccomp filter) have no cachestat:
        // preadv2 with RWF_NOWAIT fails with EAGAIN instead of blocking when
        // the data is not cached. We probe the first and the last page of
        // the range into a small stack buffer (cheap, never blocks).
        let mut probe = [0u8; 1];
        for at in [pos, pos + len - 1] {
            let iov = libc::iovec {
                iov_base: probe.as_mut_ptr().cast(),
                iov_len: 1,
            };
            // SAFETY: one iovec pointing at a 1-byte stack buffer.
            let r = unsafe {
                libc::preadv2(
                    self.file.as_raw_fd(),
                    &iov,
                    1,
                    at as libc::off_t,
                    libc::RWF_NOWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(false),
                    // Kernels / file systems without RWF_NOWAIT: say "maybe not".
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => Ok(false),
                    _ => Err(e),
                };
            }
        }
        Ok(true)
    }

    fn prefault(&self, pos: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: plain advisory syscall on an owned fd.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                pos as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            );
        }
        // Then wait until every page is in: MADV_POPULATE_READ (Linux 5.14+)
        // on a mapping of the range faults the pages in, reading the disk
        // where needed, without copying the bytes anywhere (a read into a
        // buffer copied every prefaulted byte once more: the whole cold
        // read, ~0.2 CPU-s per 512 MiB here).
        if self.populate(pos, len).is_ok() {
            return Ok(());
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = pos;
        let end = pos + len;
        while at < end {
            let want = ((end - at) as usize).min(buf.len());
            let n = self.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break;
            }
            at += n as u64;
        }
        Ok(())
    }

    fn map_mut(&self, len: u64) -> io::Result<Box<dyn MappedRegion>> {
        if len == 0 {
            return Ok(Box::new(EmptyMap));
        }
        // SAFETY: the storage engine is the only writer of index files and
        // never truncates a file below the length of a live map of it.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(len as usize)
                .map_mut(&self.file)?
        };
        // Index lookups touch a few pages near the entry they want. Without
        // this hint every read fault maps the 16 neighbouring pages too
        // (fault-around) and triggers readahead, which with 1,000 partitions
        // (2,000 index maps) made up ~130 MB of the broker's RSS under load.
        // Advisory only: a kernel that refuses it just keeps its default.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Box::new(RealMap(map)))
    }
}

impl RealFile {
    /// Faults `[pos, pos+len)` (clamped to the file) into the page cache
    /// through a temporary read-only mapping; never touches the mapped
    /// bytes. An error (old kernel, no mapping possible) lets the caller
    /// fall back to reading.
    fn populate(&self, pos: u64, len: u64) -> io::Result<()> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let end = (pos + len).min(self.file.metadata()?.len());
        let start = pos / page * page;
        if end <= start {
            return Ok(());
        }
        // SAFETY: the mapping is private to this call and never read or
        // written through; if the file shrinks meanwhile, MADV_POPULATE_READ
        // reports an error instead of raising SIGBUS.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len((end - start) as usize)
                .map(&self.file)?
        };
        map.advise(memmap2::Advice::PopulateRead)
    }
}

/// `cachestat(2)` (Linux 6.5+, the same syscall number on every
/// architecture): whether every page of `[pos, pos+len)` is in the page
/// cache, counted by the kernel without mapping or reading the file. `None`
/// when the kernel or a seccomp filter refuses the call.
#[cfg(target_os = "linux")]
fn cachestat_resident(fd: RawFd, pos: u64, len: u64) -> Option<bool> {
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    static UNSUPPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let range = Range { off: pos, len };
    let mut stat = Stat::default();
    // SAFETY: both pointers are to live locals of the layout the kernel
    // expects (struct cachestat_range, struct cachestat); flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd as libc::c_uint,
            &range as *const Range,
            &mut stat as *mut Stat,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return None;
    }
    let pages = (pos + len - 1) / page - pos / page + 1;
    Some(stat.nr_cache >= pages)
}

#[cfg(not(target_os = "linux"))]
fn cachestat_resident(_fd: RawFd, _pos: u64, _len: u64) -> Option<bool> {
    None
}

pub(crate) struct EmptyMap;
impl MappedRegion for EmptyMap {
    fn as_slice(&self) -> &[u8] {
        &[]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut []
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

struct RealMap(memmap2::MmapMut);
impl MappedRegion for RealMap {
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<Arc<dyn FileHandle>> {
        let file = std::fs::OpenOptions::new()
            .read(opts.read)
            .write(opts.write)
            .create(opts.create)
            .create_new(opts.create_new)
            .truncate(opts.truncate)
            .open(path)
            .inspect_err(|e| {
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    crate::descriptors::warn_out_of_descriptors(path, e);
                }
            })?;
        Ok(Arc::new(RealFile { file }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            out.push(entry?.path());
        }
        out.sort();
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
    fn boot_id(&self) -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        let plain = id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        (plain && !id.is_empty() && id.len() <= 64).then(|| id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A file that writes at most the next of `limits` bytes per call (short
    /// writes at arbitrary points, within or across buffers).
    struct Stingy {
        data: parking_lot::Mutex<Vec<u8>>,
        limits: parking_lot::Mutex<std::collections::VecDeque<usize>>,
    }

    impl Stingy {
        fn take(&self) -> usize {
            self.limits.lock().pop_front().unwrap_or(usize::MAX).max(1)
        }
        fn put(&self, pos: u64, bytes: &[u8]) {
            let mut d = self.data.lock();
            let end = pos as usize + bytes.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[pos as usize..end].copy_from_slice(bytes);
        }
    }

    impl FileHandle for Stingy {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            unreachable!()
        }
        fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
            let n = buf.len().min(self.take());
            self.put(pos, &buf[..n]);
            Ok(n)
        }
        fn write_vectored_at(&self, bufs: &[io::IoSlice<'_>], pos: u64) -> io::Result<usize> {
            let mut left = self.take();
            let mut at = pos;
            for b in bufs {
                let n = b.len().min(left);
                self.put(at, &b[..n]);
                at += n as u64;
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok((at - pos) as usize)
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.data.lock().len() as u64)
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            unreachable!()
        }
        fn allocate(&self, _: u64, _: u64) -> io::Result<()> {
            unreachable!()
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn raw_fd(&self) -> Option<RawFd> {
            None
        }
        fn is_resident(&self, _: u64, _: u64) -> io::Result<bool> {
            Ok(true)
        }
        fn prefault(&self, _: u64, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn map_mut(&self, _: u64) -> io::Result<Box<dyn MappedRegion>> {
            unreachable!()
        }
    }

    proptest! {
        /// However the writes come up short, the file ends up holding the
        /// buffers' bytes back to back from the position.
        #[test]
        fn vectored_writes_survive_short_writes(
            bufs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..30),
            limits in prop::collection::vec(1usize..50, 0..60),
            pos in 0u64..10,
        ) {
            let f = Stingy {
                data: parking_lot::Mutex::new(Vec::new()),
                limits: parking_lot::Mutex::new(limits.into_iter().collect()),
            };
            let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
            write_all_vectored_at(&f, &slices, pos).unwrap();
            let want: Vec<u8> = bufs.concat();
            let got = f.data.lock().clone();
            let start = pos as usize;
            if want.is_empty() {
                prop_assert!(got.len() <= start);
            } else {
                prop_assert_eq!(&got[start..], &want[..]);
            }
        }
    }

    #[test]
    fn real_fs_vectored_write_and_more_buffers_than_iov_max() {
        let dir = tempfile::tempdir().unwrap();
        let f = RealFs
            .open(&dir.path().join("v"), &OpenOptions::read_write_create())
            .unwrap();
        let pieces: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let slices: Vec<io::IoSlice<'_>> = pieces.iter().map(|b| io::IoSlice::new(b)).collect();
        write_all_vectored_at(&*f, &slices, 3).unwrap();
        let mut back = vec![0u8; 3 + 4 * 3000];
        read_exact_at(&*f, &mut back, 0).unwrap();
        assert_eq!(&back[3..], &pieces.concat()[..]);
    }

    #[test]
    fn real_fs_positional_io_and_map() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let p = dir.path().join("f");
        let f = fs.open(&p, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*f, b"hello world", 0).unwrap();
        let mut buf = [0u8; 5];
        read_exact_at(&*f, &mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(f.len().unwrap(), 11);
        f.sync_data().unwrap();
        assert!(f.raw_fd().is_some());
        f.prefault(0, 11).unwrap();
        // After a read the page is cached (or the kernel cannot tell us).
        let _ = f.is_resident(0, 11).unwrap();
        f.set_len(4096).unwrap();
        let mut m = f.map_mut(4096).unwrap();
        m.as_mut_slice()[100] = 7;
        m.flush().unwrap();
        let mut one = [0u8; 1];
        read_exact_at(&*f, &mut one, 100).unwrap();
        assert_eq!(one[0], 7);
        assert!(read_exact_at(&*f, &mut [0u8; 10], 4090).is_err());
        assert_eq!(fs.read_dir(dir.path()).unwrap(), vec![p.clone()]);
        fs.sync_dir(dir.path()).unwrap();
    }

    /// Pages of `[pos, pos+len)` that mincore(2) reports resident: an oracle
    /// independent of `is_resident`.
    fn mincore_pages(f: &std::fs::File, len: usize) -> Vec<bool> {
        // SAFETY: a read-only shared mapping of an open file, only passed to
        // mincore and unmapped before returning.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            let mut v = vec![0u8; len.div_ceil(4096)];
            assert_eq!(libc::mincore(addr, len, v.as_mut_ptr()), 0);
            libc::munmap(addr, len);
            v.into_iter().map(|b| b & 1 == 1).collect()
        }
    }

    #[test]
    fn real_fs_residency_sees_a_hole_in_the_middle_of_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        let len = 64 * 4096;
        let f = RealFs.open(&p, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*f, &vec![1u8; len], 0).unwrap();
        f.sync_data().unwrap();
        let std_file = std::fs::File::open(&p).unwrap();
        // Drop the file, then read back only its first and last page without
        // readahead: the middle is a hole the ends do not show.
        // SAFETY: advisory calls on an open descriptor.
        unsafe {
            libc::posix_fadvise(std_file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            libc::posix_fadvise(std_file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
        }
        use std::os::unix::fs::FileExt;
        let mut one = [0u8; 1];
        std_file.read_exact_at(&mut one, 0).unwrap();
        std_file.read_exact_at(&mut one, len as u64 - 1).unwrap();
        let pages = mincore_pages(&std_file, len);
        if pages.iter().all(|&r| r) {
            // tmpfs and friends cannot drop pages: nothing to observe.
            return;
        }
        assert!(pages[0] && pages[63], "ends cached again: {pages:?}");
        assert!(!f.is_resident(0, len as u64).unwrap());
        assert!(f.is_resident(0, 4096).unwrap());
        assert!(f.is_resident(63 * 4096, 4096).unwrap());
        f.prefault(0, len as u64).unwrap();
        assert!(mincore_pages(&std_file, len).iter().all(|&r| r));
        assert!(f.is_resident(0, len as u64).unwrap());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(10);
        assert_eq!(c.now_ms(), 10);
        c.advance(5);
        assert_eq!(c.now_ms(), 15);
        c.set(1);
        assert_eq!(c.now_ms(), 1);
    }
}
