//! `SimFs`: a deterministic in-memory file system behind the [`Fs`] seam.
//!
//! It tracks, per file, the bytes as the process sees them and the bytes a
//! completed `fdatasync` has made durable, and per directory which entries a
//! completed directory fsync has made durable. [`SimFs::crash`] simulates a
//! power cut: unsynced directory entries vanish (and unsynced removals come
//! back), and each file keeps its durable bytes plus a random prefix of the
//! unsynced tail (partial pages included, sometimes with a zero-filled end,
//! as a file system that extended the size before writing the data would).
//!
//! Simplifications, documented: directories themselves are durable as soon
//! as they are created, renamed or removed; `MappedRegion::flush` on a map
//! makes the whole file durable (maps are only used for index files, which
//! are written through the map alone).
//!
//! Faults can be injected per path: write errors (ENOSPC, EIO...), short
//! writes, failing fsyncs, failing reads, and reads that block until
//! released.
//!
//! A capacity ([`SimFs::set_capacity`]) makes the disk small: each file's
//! allocated bytes are modelled as a prefix (`write_at` and `allocate`
//! extend it, `set_len` below it frees, removal frees with the last
//! name and handle), a write past the free space is short or fails with
//! ENOSPC, and `allocate` fails whole. `set_len` past the end is sparse (no
//! space), as on ext4 or tmpfs; a map write that lands past the allocated
//! prefix when no space is left is what faults with SIGBUS on a real file
//! system: the simulator counts it ([`SimStats::unbacked_map_writes`]) and
//! fails the flush. Handles opened before a crash fail afterwards, as the process
//! that owned them is gone.
//!
//! A speed ([`SimFs::set_speed`], [`DiskSpeed`]) makes the disk slow or
//! stalled in simulated time: writes and fsyncs charge their latency to
//! the work that made them (see `speed.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fs::{FileHandle, Fs, MappedRegion, OpenOptions};

mod speed;
pub use speed::DiskSpeed;

/// What an injected fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `write_at` fails with this errno (e.g. `libc::ENOSPC`, `libc::EIO`).
    WriteError(i32),
    /// `write_at` writes at most this many bytes and reports the short count.
    ShortWrite(usize),
    /// `sync_data` fails with this errno; nothing becomes durable.
    SyncError(i32),
    /// `read_at` fails with this errno.
    ReadError(i32),
    /// `read_at` blocks until [`SimFs::release_blocked_reads`].
    BlockRead,
}

/// A fault that fires on the next `times` matching operations on files whose
/// path contains `path_contains`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub path_contains: String,
    pub kind: FaultKind,
    pub times: u32,
}

impl Fault {
    pub fn once(path_contains: impl Into<String>, kind: FaultKind) -> Self {
        Fault {
            path_contains: path_contains.into(),
            kind,
            times: 1,
        }
    }
}

/// Operation counters (for tests that check syscall counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub writes: u64,
    pub syncs: u64,
    pub dir_syncs: u64,
    pub reads: u64,
    /// Handles currently open (not yet dropped).
    pub open_handles: u64,
    /// Memory maps currently alive.
    pub live_maps: u64,
    /// Map writes into unallocated space on a full disk (a SIGBUS on a
    /// real file system): must stay 0.
    pub unbacked_map_writes: u64,
    /// Injected faults that have fired (see [`SimFs::inject`]).
    pub faults_fired: u64,
}

#[derive(Default)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
    resident: bool,
    /// Bytes backed by disk blocks (a prefix; see the module docs).
    allocated: u64,
}

#[derive(Default)]
struct State {
    files: HashMap<u64, FileData>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_id: u64,
    generation: u64,
    /// Boots of the simulated machine: one more after every power cut.
    boots: u64,
    faults: Vec<Fault>,
    reads_released: bool,
    stats: SimStats,
    /// Disk size in bytes (`None`: unbounded).
    capacity: Option<u64>,
    /// Open handles per file id in the current generation: as on POSIX, an
    /// unlinked (or renamed-over) file's data lives until its last handle
    /// is dropped, so a reader holding a segment the cleaner replaced can
    /// finish.
    open_refs: HashMap<u64, u64>,
    /// How fast writes and fsyncs are (the disk's, so it outlives crashes).
    speed: DiskSpeed,
}

impl State {
    fn take_fault(&mut self, path: &Path, pred: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let p = path.to_string_lossy();
        let idx = self
            .faults
            .iter()
            .position(|f| pred(&f.kind) && p.contains(f.path_contains.as_str()))?;
        let f = &mut self.faults[idx];
        let kind = f.kind.clone();
        f.times = f.times.saturating_sub(1);
        if f.times == 0 {
            self.faults.remove(idx);
        }
        self.stats.faults_fired += 1;
        Some(kind)
    }

    fn used(&self) -> u64 {
        self.files.values().map(|f| f.allocated).sum()
    }

    /// Bytes that may still be allocated.
    fn available(&self) -> u64 {
        match self.capacity {
            Some(c) => c.saturating_sub(self.used()),
            None => u64::MAX,
        }
    }

    /// Whether a map of file `id` whose bytes are `buf` wrote past the
    /// file's allocated prefix; allocates what it wrote if there is room.
    /// `false`: the write had no space (SIGBUS on a real file system).
    fn back_map_write(&mut self, id: u64, buf: &[u8]) -> bool {
        let avail = self.available();
        let Some(f) = self.files.get_mut(&id) else {
            return true;
        };
        // Pages (4 KiB) past the allocated prefix that the map changed,
        // compared a page at a time; the last one bounds the allocation.
        const PAGE: usize = 4096;
        let from = (f.allocated as usize).min(buf.len());
        let mut end = buf.len();
        let mut written = None;
        while end > from {
            let start = ((end - 1) / PAGE * PAGE).max(from);
            let old = f.data.get(start..end.min(f.data.len())).unwrap_or(&[]);
            let changed = if old.len() == end - start {
                buf[start..end] != *old
            } else {
                buf[start..end]
                    .iter()
                    .enumerate()
                    .any(|(i, b)| old.get(i).copied().unwrap_or(0) != *b)
            };
            if changed {
                written = Some(end);
                break;
            }
            end = start;
        }
        let Some(last) = written else { return true };
        let need = last as u64 - f.allocated;
        if need > avail {
            self.stats.unbacked_map_writes += 1;
            return false;
        }
        f.allocated = last as u64;
        true
    }

    fn gc(&mut self) {
        let live: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .chain(self.open_refs.keys())
            .copied()
            .collect();
        self.files.retain(|id, _| live.contains(id));
    }
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl sluice_runtime::disk::DiskNow for Shared {
    fn cost(&self, sync: bool) -> sluice_runtime::disk::DiskCost {
        self.state.lock().speed.cost(sync)
    }
}

/// The simulated file system. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SimFs {
    shared: Arc<Shared>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl SimFs {
    pub fn new() -> Self {
        let mut state = State::default();
        state.dirs.insert(PathBuf::from("/"));
        SimFs {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                cv: Condvar::new(),
            }),
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.state.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.state.lock().faults.clear();
    }

    /// Lets every read blocked by [`FaultKind::BlockRead`] continue.
    pub fn release_blocked_reads(&self) {
        let mut st = self.shared.state.lock();
        st.reads_released = true;
        st.faults.retain(|f| f.kind != FaultKind::BlockRead);
        self.shared.cv.notify_all();
    }

    pub fn stats(&self) -> SimStats {
        self.shared.state.lock().stats
    }

    /// Bounds the disk at `bytes` (`None`: unbounded). Files already over
    /// it keep their bytes; nothing more can be allocated until enough is freed.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.shared.state.lock().capacity = bytes;
    }

    /// Makes the disk slow, stalled or instant again; a stall it replaces
    /// is released.
    pub fn set_speed(&self, speed: DiskSpeed) {
        let old = std::mem::replace(&mut self.shared.state.lock().speed, speed);
        old.release();
    }

    /// The disk's bound, if any (see [`SimFs::set_capacity`]).
    pub fn capacity(&self) -> Option<u64> {
        self.shared.state.lock().capacity
    }

    /// Bytes allocated by every live file.
    pub fn used_bytes(&self) -> u64 {
        self.shared.state.lock().used()
    }

    /// Marks a file as not in the page cache (`is_resident` turns false
    /// until `prefault` or a read).
    pub fn evict_from_cache(&self, path: &Path) {
        let mut st = self.shared.state.lock();
        if let Some(id) = st.names.get(path).copied() {
            if let Some(f) = st.files.get_mut(&id) {
                f.resident = false;
            }
        }
    }

    /// The bytes of a file as the process currently sees them.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.shared.state.lock();
        let id = st.names.get(path)?;
        st.files.get(id).map(|f| f.data.clone())
    }

    /// Replaces a file's bytes (and makes them durable): for corruption tests.
    pub fn set_contents(&self, path: &Path, bytes: &[u8]) {
        let mut st = self.shared.state.lock();
        let id = match st.names.get(path) {
            Some(id) => *id,
            None => {
                let id = st.next_id;
                st.next_id += 1;
                st.names.insert(path.to_path_buf(), id);
                st.durable_names.insert(path.to_path_buf(), id);
                st.files.insert(id, FileData::default());
                id
            }
        };
        let f = st.files.get_mut(&id).expect("file of a live name");
        f.data = bytes.to_vec();
        f.durable = bytes.to_vec();
        f.allocated = bytes.len() as u64;
    }

    /// All file paths currently visible.
    pub fn list_files(&self) -> Vec<PathBuf> {
        self.shared.state.lock().names.keys().cloned().collect()
    }

    /// Simulates `kill -9` of the process: its handles are gone (they fail
    /// from now on, as after [`SimFs::crash`]), but every byte it wrote and
    /// every name it made stays, synced or not: the kernel's page cache
    /// outlives a process. Only a later [`SimFs::crash`] (a power cut) can
    /// still lose what was never synced.
    pub fn kill(&self) {
        let mut st = self.shared.state.lock();
        st.generation += 1;
        st.open_refs.clear();
        st.gc();
        st.faults.clear();
        st.reads_released = true;
        self.shared.cv.notify_all();
        st.reads_released = false;
    }

    /// Simulates a power cut, deterministic in `seed`. See the module docs.
    pub fn crash(&self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut st = self.shared.state.lock();
        st.generation += 1;
        st.boots += 1;
        // The process that held the handles is gone.
        st.open_refs.clear();
        st.names = st.durable_names.clone();
        st.gc();
        let mut ids: Vec<u64> = st.files.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let f = st.files.get_mut(&id).expect("listed id");
            let p = f
                .data
                .iter()
                .zip(f.durable.iter())
                .take_while(|(a, b)| a == b)
                .count();
            let keep_nothing = f.data == f.durable || rng.gen_ratio(1, 4);
            let result = if keep_nothing {
                f.durable.clone()
            } else {
                let k = rng.gen_range(p..=f.data.len());
                let mut kept = f.data[..k].to_vec();
                if k > p && rng.gen_ratio(1, 4) {
                    let z = rng.gen_range(p..k);
                    kept[z..].fill(0);
                }
                kept
            };
            f.allocated = f.allocated.min(result.len() as u64);
            f.data = result.clone();
            f.durable = result;
            f.resident = false;
        }
        st.faults.clear();
        st.reads_released = true;
        self.shared.cv.notify_all();
        st.reads_released = false;
    }

    fn parent(path: &Path) -> PathBuf {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    }
}

struct SimHandle {
    shared: Arc<Shared>,
    id: u64,
    path: PathBuf,
    generation: u64,
    writable: bool,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.stats.open_handles -= 1;
        if st.generation == self.generation {
            if let Some(n) = st.open_refs.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    st.open_refs.remove(&self.id);
                    st.gc();
                }
            }
        }
    }
}

impl SimHandle {
    fn check(&self, st: &State) -> io::Result<()> {
        if st.generation != self.generation {
            return Err(io::Error::other(
                "stale handle: the simulated machine crashed",
            ));
        }
        Ok(())
    }
}

impl FileHandle for SimHandle {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        loop {
            let blocked = st.faults.iter().any(|f| {
                f.kind == FaultKind::BlockRead
                    && self
                        .path
                        .to_string_lossy()
                        .contains(f.path_contains.as_str())
            });
            if !blocked || st.reads_released {
                break;
            }
            self.shared.cv.wait(&mut st);
            self.check(&st)?;
        }
        if let Some(FaultKind::ReadError(code)) =
            st.take_fault(&self.path, |k| matches!(k, FaultKind::ReadError(_)))
        {
            return Err(errno(code));
        }
        st.stats.reads += 1;
        let f = st
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        f.resident = true;
        let pos = pos as usize;
        if pos >= f.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(f.data.len() - pos);
        buf[..n].copy_from_slice(&f.data[pos..pos + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        if !self.writable {
            return Err(errno(libc::EBADF));
        }
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        st.stats.writes += 1;
        st.speed.charge(self.shared.clone(), false);
        let fault = st.take_fault(&self.path, |k| {
            matches!(k, FaultKind::WriteError(_) | FaultKind::ShortWrite(_))
        });
        let mut n = match fault {
            Some(FaultKind::WriteError(code)) => return Err(errno(code)),
            Some(FaultKind::ShortWrite(max)) => buf.len().min(max),
            _ => buf.len(),
        };
        let avail = st.available();
        let f = st
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        // Space: as much of the write as fits (a short write), else ENOSPC.
        let need = (pos + n as u64).saturating_sub(f.allocated);
        if need > avail {
            let fits = (f.allocated + avail).saturating_sub(pos) as usize;
            if fits == 0 {
                return Err(errno(libc::ENOSPC));
            }
            n = n.min(fits);
        }
        f.allocated = f.allocated.max(pos + n as u64);
        let pos = pos as usize;
        if f.data.len() < pos + n {
            f.data.resize(pos + n, 0);
        }
        f.data[pos..pos + n].copy_from_slice(&buf[..n]);
        f.resident = true;
        Ok(n)
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.shared.state.lock();
        self.check(&st)?;
        let f = st
            .files
            .get(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        Ok(f.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        let f = st
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        f.data.resize(len as usize, 0);
        f.allocated = f.allocated.min(len);
        Ok(())
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(errno(libc::EBADF));
        }
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        st.speed.charge(self.shared.clone(), false);
        let avail = st.available();
        let f = st
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        let end = offset + len;
        if end.saturating_sub(f.allocated) > avail {
            return Err(errno(libc::ENOSPC));
        }
        f.allocated = f.allocated.max(end);
        if (f.data.len() as u64) < end {
            f.data.resize(end as usize, 0);
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        st.stats.syncs += 1;
        st.speed.charge(self.shared.clone(), true);
        if let Some(FaultKind::SyncError(code)) =
            st.take_fault(&self.path, |k| matches!(k, FaultKind::SyncError(_)))
        {
            return Err(errno(code));
        }
        let f = st
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        f.durable = f.data.clone();
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn is_resident(&self, _pos: u64, _len: u64) -> io::Result<bool> {
        let st = self.shared.state.lock();
        self.check(&st)?;
        Ok(st.files.get(&self.id).map(|f| f.resident).unwrap_or(false))
    }

    fn prefault(&self, _pos: u64, _len: u64) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        if let Some(f) = st.files.get_mut(&self.id) {
            f.resident = true;
        }
        Ok(())
    }

    fn map_mut(&self, len: u64) -> io::Result<Box<dyn MappedRegion>> {
        let mut st = self.shared.state.lock();
        self.check(&st)?;
        let f = st
            .files
            .get(&self.id)
            .ok_or_else(|| not_found(&self.path))?;
        if (f.data.len() as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "map longer than the file",
            ));
        }
        let buf = f.data[..len as usize].to_vec();
        st.stats.live_maps += 1;
        Ok(Box::new(SimMap {
            shared: self.shared.clone(),
            id: self.id,
            generation: self.generation,
            buf,
        }))
    }
}

struct SimMap {
    shared: Arc<Shared>,
    id: u64,
    generation: u64,
    buf: Vec<u8>,
}

impl Drop for SimMap {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.stats.live_maps -= 1;
        // Unflushed map writes are dropped (see `flush`), but a write into
        // unallocated space on a full disk would already have faulted.
        if st.generation == self.generation && st.capacity.is_some() {
            let buf = std::mem::take(&mut self.buf);
            st.back_map_write(self.id, &buf);
        }
    }
}

impl MappedRegion for SimMap {
    fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn flush(&self) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if st.generation != self.generation {
            return Err(io::Error::other("stale map: the simulated machine crashed"));
        }
        st.speed.charge(self.shared.clone(), true);
        if !st.back_map_write(self.id, &self.buf) {
            return Err(io::Error::other(
                "map write into unallocated space on a full disk (SIGBUS on a real file system)",
            ));
        }
        if let Some(f) = st.files.get_mut(&self.id) {
            if f.data.len() < self.buf.len() {
                f.data.resize(self.buf.len(), 0);
            }
            f.data[..self.buf.len()].copy_from_slice(&self.buf);
            f.durable = f.data.clone();
        }
        Ok(())
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<Arc<dyn FileHandle>> {
        let mut st = self.shared.state.lock();
        let parent = Self::parent(path);
        if !st.dirs.contains(&parent) {
            return Err(not_found(&parent));
        }
        if st.dirs.contains(path) {
            return Err(errno(libc::EISDIR));
        }
        let id = match st.names.get(path).copied() {
            Some(_) if opts.create_new => return Err(errno(libc::EEXIST)),
            Some(id) => {
                if opts.truncate {
                    let f = st.files.get_mut(&id).expect("live");
                    f.data.clear();
                    f.allocated = 0;
                }
                id
            }
            None if opts.create || opts.create_new => {
                let id = st.next_id;
                st.next_id += 1;
                st.files.insert(
                    id,
                    FileData {
                        resident: true,
                        ..Default::default()
                    },
                );
                st.names.insert(path.to_path_buf(), id);
                id
            }
            None => return Err(not_found(path)),
        };
        st.stats.open_handles += 1;
        *st.open_refs.entry(id).or_insert(0) += 1;
        Ok(Arc::new(SimHandle {
            shared: self.shared.clone(),
            id,
            path: path.to_path_buf(),
            generation: st.generation,
            writable: opts.write,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        for anc in path.ancestors() {
            if st.names.contains_key(anc) {
                return Err(errno(libc::ENOTDIR));
            }
        }
        for anc in path.ancestors() {
            if !anc.as_os_str().is_empty() {
                st.dirs.insert(anc.to_path_buf());
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        st.names.remove(path).ok_or_else(|| not_found(path))?;
        st.gc();
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        st.dirs.retain(|d| !d.starts_with(path));
        st.names.retain(|p, _| !p.starts_with(path));
        st.durable_names.retain(|p, _| !p.starts_with(path));
        st.gc();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if st.dirs.contains(from) {
            // Directory renames are immediately durable (see module docs).
            let moved: Vec<PathBuf> = st
                .dirs
                .iter()
                .filter(|d| d.starts_with(from))
                .cloned()
                .collect();
            for d in moved {
                st.dirs.remove(&d);
                let rest = d.strip_prefix(from).expect("prefix");
                st.dirs.insert(to.join(rest));
            }
            let st = &mut *st;
            for names in [&mut st.names, &mut st.durable_names] {
                let moved: Vec<(PathBuf, u64)> = names
                    .iter()
                    .filter(|(p, _)| p.starts_with(from))
                    .map(|(p, id)| (p.clone(), *id))
                    .collect();
                for (p, id) in moved {
                    names.remove(&p);
                    let rest = p.strip_prefix(from).expect("prefix");
                    names.insert(to.join(rest), id);
                }
            }
            return Ok(());
        }
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        if !st.dirs.contains(&Self::parent(to)) {
            st.names.insert(from.to_path_buf(), id);
            return Err(not_found(&Self::parent(to)));
        }
        st.names.insert(to.to_path_buf(), id);
        st.gc();
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let st = self.shared.state.lock();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut out: Vec<PathBuf> = st
            .names
            .keys()
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        out.extend(st.dirs.iter().filter(|d| d.parent() == Some(path)).cloned());
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.shared.state.lock();
        st.names.contains_key(path) || st.dirs.contains(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.shared.state.lock().dirs.contains(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        st.stats.dir_syncs += 1;
        st.speed.charge(self.shared.clone(), true);
        st.durable_names.retain(|p, _| p.parent() != Some(path));
        let current: Vec<(PathBuf, u64)> = st
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(path))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        st.durable_names.extend(current);
        st.gc();
        Ok(())
    }
    fn boot_id(&self) -> Option<String> {
        Some(format!("sim-boot-{}", self.shared.state.lock().boots))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{read_exact_at, write_all_at};

    fn setup() -> (SimFs, PathBuf) {
        let fs = SimFs::new();
        let d = PathBuf::from("/data/t-0");
        fs.create_dir_all(&d).unwrap();
        (fs, d)
    }

    #[test]
    fn unsynced_file_vanishes_without_dir_sync() {
        let (fs, d) = setup();
        let f = fs
            .open(&d.join("a"), &OpenOptions::read_write_create())
            .unwrap();
        write_all_at(&*f, b"abc", 0).unwrap();
        f.sync_data().unwrap();
        drop(f);
        fs.crash(1);
        assert!(!fs.exists(&d.join("a")), "entry was never made durable");
    }

    #[test]
    fn a_killed_process_keeps_its_unsynced_writes_until_the_power_goes() {
        let (fs, d) = setup();
        let p = d.join("a");
        let f = fs.open(&p, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*f, b"never synced", 0).unwrap();
        fs.kill();
        assert!(f.write_at(b"x", 0).is_err(), "the dead process's handle");
        assert_eq!(fs.contents(&p).unwrap(), b"never synced");
        // Still not durable: a power cut now loses the file (its name was
        // never synced either).
        fs.crash(1);
        assert!(!fs.exists(&p));
    }

    #[test]
    fn synced_bytes_survive_and_unsynced_tail_is_a_prefix() {
        for seed in 0..50 {
            let (fs, d) = setup();
            let p = d.join("a");
            let f = fs.open(&p, &OpenOptions::read_write_create()).unwrap();
            fs.sync_dir(&d).unwrap();
            write_all_at(&*f, b"durable-", 0).unwrap();
            f.sync_data().unwrap();
            write_all_at(&*f, b"volatile-tail", 8).unwrap();
            drop(f);
            fs.crash(seed);
            let got = fs.contents(&p).unwrap();
            assert!(got.starts_with(b"durable-"), "seed {seed}: {got:?}");
            let full = b"durable-volatile-tail";
            assert!(got.len() <= full.len());
            for (i, b) in got.iter().enumerate().skip(8) {
                assert!(*b == full[i] || *b == 0, "seed {seed}: byte {i}");
            }
        }
    }

    #[test]
    fn faults_fire_and_stale_handles_fail() {
        let (fs, d) = setup();
        let p = d.join("seg.log");
        let f = fs.open(&p, &OpenOptions::read_write_create()).unwrap();
        fs.inject(Fault::once(".log", FaultKind::WriteError(libc::ENOSPC)));
        let e = f.write_at(b"x", 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        fs.inject(Fault::once(".log", FaultKind::ShortWrite(2)));
        assert_eq!(f.write_at(b"xyz", 0).unwrap(), 2);
        fs.inject(Fault::once(".log", FaultKind::SyncError(libc::EIO)));
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
        fs.inject(Fault::once(".log", FaultKind::ReadError(libc::EIO)));
        assert!(read_exact_at(&*f, &mut [0u8; 1], 0).is_err());
        assert_eq!(fs.stats().open_handles, 1);
        fs.crash(0);
        assert!(f.len().is_err());
        drop(f);
        assert_eq!(fs.stats().open_handles, 0);
    }

    #[test]
    fn unlinked_and_renamed_over_files_live_while_a_handle_is_open() {
        let (fs, d) = setup();
        let old = d.join("00.log");
        let f = fs.open(&old, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*f, b"old bytes", 0).unwrap();
        fs.sync_dir(&d).unwrap();
        // A cleaner-style swap: a new file renamed over the old name.
        let new = d.join("00.log.swap");
        let g = fs.open(&new, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*g, b"new", 0).unwrap();
        fs.rename(&new, &old).unwrap();
        fs.sync_dir(&d).unwrap();
        let mut buf = [0u8; 9];
        read_exact_at(&*f, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"old bytes", "an open handle keeps reading its file");
        assert_eq!(fs.contents(&old).unwrap(), b"new");
        fs.remove_file(&old).unwrap();
        fs.sync_dir(&d).unwrap();
        read_exact_at(&*g, &mut buf[..3], 0).unwrap();
        assert_eq!(&buf[..3], b"new");
        let files_before = fs.shared.state.lock().files.len();
        drop(f);
        drop(g);
        let files_after = fs.shared.state.lock().files.len();
        assert_eq!(
            files_before - files_after,
            2,
            "data is freed with the last handle"
        );
    }

    #[test]
    fn blocked_reads_wait_for_release() {
        let (fs, d) = setup();
        let p = d.join("x");
        let f = fs.open(&p, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*f, b"data", 0).unwrap();
        fs.inject(Fault::once("x", FaultKind::BlockRead));
        let f2 = f.clone();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 4];
            read_exact_at(&*f2, &mut b, 0).map(|_| b)
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs.release_blocked_reads();
        assert_eq!(&t.join().unwrap().unwrap(), b"data");
    }

    #[test]
    fn rename_and_remove_need_dir_sync_to_survive() {
        let (fs, d) = setup();
        let a = d.join("a");
        let b = d.join("b");
        let f = fs.open(&a, &OpenOptions::read_write_create()).unwrap();
        write_all_at(&*f, b"1", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&d).unwrap();
        fs.rename(&a, &b).unwrap();
        drop(f);
        fs.crash(3);
        assert!(fs.exists(&a) && !fs.exists(&b));
        fs.rename(&a, &b).unwrap();
        fs.sync_dir(&d).unwrap();
        fs.crash(4);
        assert!(!fs.exists(&a) && fs.exists(&b));
        assert_eq!(fs.contents(&b).unwrap(), b"1");
    }

    #[test]
    fn map_writes_are_visible_after_flush() {
        let (fs, d) = setup();
        let p = d.join("i");
        let f = fs.open(&p, &OpenOptions::read_write_create()).unwrap();
        f.set_len(16).unwrap();
        let mut m = f.map_mut(16).unwrap();
        m.as_mut_slice()[0] = 9;
        m.flush().unwrap();
        assert_eq!(fs.contents(&p).unwrap()[0], 9);
        assert_eq!(fs.stats().live_maps, 1);
        drop(m);
        assert_eq!(fs.stats().live_maps, 0);
    }
}
