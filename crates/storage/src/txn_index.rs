//! The aborted-transaction index of a segment (`<base>.txnindex`, Kafka's
//! `TransactionIndex`): one entry per ABORT marker written in the segment,
//! so a read_committed fetch can list the aborted transactions overlapping
//! what it returns without reading record data.
//!
//! The file is Kafka's: entries of 34 bytes, big-endian,
//!
//! ```text
//! i16 version (0) | i64 producer_id | i64 first_offset | i64 last_offset | i64 last_stable_offset
//! ```
//!
//! in the order the markers were written (strictly increasing
//! `last_offset`, the marker's offset). `last_stable_offset` is the
//! partition's last stable offset at the marker: every transaction that
//! started below it had ended by then, so a search whose upper bound is at
//! or below it can stop (Kafka's `TxnIndexSearchResult.isComplete`).
//!
//! The file is created on the first entry (a missing file is an empty
//! index, as in Kafka, and as every segment written before transactions
//! has), written with `pwrite` through the [`Fs`] seam (no map, no held
//! descriptor: it is opened per operation, which only aborts, truncation,
//! recovery and read_committed fetches of segments that have entries do),
//! and fsynced when its segment is flushed. Nothing of it is kept in
//! memory but its length and its last entry's offset. Entries are checked
//! when read: a version other than 0, offsets out of order or outside the
//! segment, or a length that is not a whole number of entries is
//! [`CorruptTxnIndex`]; the log rebuilds such an index on load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_record::{Offset, ProducerId};

use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, write_all_at, Fs, OpenOptions};

pub const TXN_INDEX_FILE_SUFFIX: &str = ".txnindex";
/// Bytes of one entry.
pub const ABORTED_TXN_SIZE: usize = 34;
/// The entry version Kafka writes (and reads).
pub const ABORTED_TXN_VERSION: i16 = 0;
/// Entries read per `pread` (about 64 KiB).
const CHUNK_ENTRIES: usize = 1927;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    /// The ABORT marker's offset.
    pub last_offset: Offset,
    /// The partition's last stable offset at the marker.
    pub last_stable_offset: Offset,
}

/// Why an index file (or entry) is not one this log wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt transaction index: {0}")]
pub struct CorruptTxnIndex(pub &'static str);

impl AbortedTxn {
    pub fn encode(&self) -> [u8; ABORTED_TXN_SIZE] {
        let mut b = [0u8; ABORTED_TXN_SIZE];
        b[0..2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.0.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.0.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.0.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.0.to_be_bytes());
        b
    }

    /// Decodes one entry and checks what holds for any entry Kafka or
    /// Sluice writes: version 0, a producer id, `0 <= first <= last`,
    /// `0 <= last_stable <= last + 1`.
    pub fn decode(b: &[u8; ABORTED_TXN_SIZE]) -> Result<Self, CorruptTxnIndex> {
        let i64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(x)
        };
        if i16::from_be_bytes([b[0], b[1]]) != ABORTED_TXN_VERSION {
            return Err(CorruptTxnIndex("unknown entry version"));
        }
        let t = AbortedTxn {
            producer_id: ProducerId(i64_at(2)),
            first_offset: Offset(i64_at(10)),
            last_offset: Offset(i64_at(18)),
            last_stable_offset: Offset(i64_at(26)),
        };
        if t.producer_id.0 < 0 {
            return Err(CorruptTxnIndex("negative producer id"));
        }
        if t.first_offset.0 < 0 || t.last_offset < t.first_offset {
            return Err(CorruptTxnIndex("transaction offsets out of order"));
        }
        if t.last_stable_offset.0 < 0 || t.last_stable_offset > t.last_offset.plus(1) {
            return Err(CorruptTxnIndex("last stable offset out of range"));
        }
        Ok(t)
    }
}

/// Checks one entry against its predecessor and the segment's base: the
/// marker lies in the segment, markers increase.
fn check_order(
    t: &AbortedTxn,
    previous: Option<Offset>,
    base: Offset,
) -> Result<(), CorruptTxnIndex> {
    if t.last_offset < base {
        return Err(CorruptTxnIndex("marker below the segment's base offset"));
    }
    if previous.is_some_and(|p| t.last_offset <= p) {
        return Err(CorruptTxnIndex("markers do not increase"));
    }
    Ok(())
}

/// Decodes a whole index file of the segment based at `base` (tests,
/// fuzzing, tools; the log reads in chunks). Never allocates more than
/// `bytes` justifies.
pub fn decode_entries(bytes: &[u8], base: Offset) -> Result<Vec<AbortedTxn>, CorruptTxnIndex> {
    if bytes.len() % ABORTED_TXN_SIZE != 0 {
        return Err(CorruptTxnIndex("length is not a whole number of entries"));
    }
    let mut out = Vec::with_capacity(bytes.len() / ABORTED_TXN_SIZE);
    let mut previous = None;
    for chunk in bytes.chunks_exact(ABORTED_TXN_SIZE) {
        let mut e = [0u8; ABORTED_TXN_SIZE];
        e.copy_from_slice(chunk);
        let t = AbortedTxn::decode(&e)?;
        check_order(&t, previous, base)?;
        previous = Some(t.last_offset);
        out.push(t);
    }
    Ok(out)
}

/// Kafka's `collectAbortedTxns` over decoded entries: those overlapping
/// `[start, upper)`, and whether the search is complete (an entry's last
/// stable offset reached `upper`: no later marker can end a transaction
/// that started below it).
pub fn collect_overlapping(
    entries: impl IntoIterator<Item = AbortedTxn>,
    start: Offset,
    upper: Offset,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    for t in entries {
        if t.last_offset >= start && t.first_offset < upper {
            out.push(t);
        }
        if t.last_stable_offset >= upper {
            return true;
        }
    }
    false
}

/// What is known of the last entry.
#[derive(Clone, Copy, Debug)]
enum Last {
    /// Not read yet (a loaded segment that was never checked or appended to).
    Unknown,
    Known(Option<Offset>),
}

struct State {
    last: Last,
    /// Written (or truncated) since the last fsync.
    dirty: bool,
}

/// The `.txnindex` file of one segment.
pub struct TxnIndex {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    base: Offset,
    /// Bytes in the file (0 when it does not exist); readers read at most
    /// this far.
    len: AtomicU64,
    state: Mutex<State>,
}

impl std::fmt::Debug for TxnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnIndex")
            .field("path", &self.path)
            .field("len", &self.len_bytes())
            .finish()
    }
}

impl TxnIndex {
    /// The index of a segment found on disk (its file may not exist).
    pub(crate) fn open(fs: Arc<dyn Fs>, path: PathBuf, base: Offset) -> Result<Self, StorageError> {
        let len = if fs.exists(&path) {
            let f = fs
                .open(&path, &OpenOptions::read())
                .ctx("open transaction index", &path)?;
            f.len().ctx("stat transaction index", &path)?
        } else {
            0
        };
        Ok(TxnIndex {
            fs,
            path,
            base,
            len: AtomicU64::new(len),
            state: Mutex::new(State {
                last: if len == 0 {
                    Last::Known(None)
                } else {
                    Last::Unknown
                },
                dirty: false,
            }),
        })
    }

    /// The index of a new segment: a leftover file of an earlier segment at
    /// the same base is removed.
    pub(crate) fn create(
        fs: Arc<dyn Fs>,
        path: PathBuf,
        base: Offset,
    ) -> Result<Self, StorageError> {
        if fs.exists(&path) {
            fs.remove_file(&path)
                .ctx("remove stale transaction index", &path)?;
        }
        Ok(TxnIndex {
            fs,
            path,
            base,
            len: AtomicU64::new(0),
            state: Mutex::new(State {
                last: Last::Known(None),
                dirty: false,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file (entries x 34).
    pub fn len_bytes(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len_bytes() == 0
    }

    fn corrupt(&self, e: CorruptTxnIndex) -> StorageError {
        StorageError::CorruptTxnIndex {
            path: self.path.clone(),
            reason: e.0,
        }
    }

    /// Calls `f(position, entry)` for the entries in the first `len` bytes,
    /// in order, until it returns false. Reads in chunks; a file that ends
    /// early (truncated meanwhile) ends the walk.
    fn walk(
        &self,
        len: u64,
        mut f: impl FnMut(u64, AbortedTxn) -> bool,
    ) -> Result<(), StorageError> {
        if len == 0 {
            return Ok(());
        }
        if len % ABORTED_TXN_SIZE as u64 != 0 {
            return Err(self.corrupt(CorruptTxnIndex("length is not a whole number of entries")));
        }
        let file = self
            .fs
            .open(&self.path, &OpenOptions::read())
            .ctx("open transaction index", &self.path)?;
        let len = len.min(file.len().ctx("stat transaction index", &self.path)?);
        let len = len - len % ABORTED_TXN_SIZE as u64;
        let mut buf = vec![0u8; (CHUNK_ENTRIES * ABORTED_TXN_SIZE).min(len as usize)];
        let mut pos = 0u64;
        let mut previous = None;
        while pos < len {
            let n = ((len - pos) as usize).min(buf.len());
            read_exact_at(&*file, &mut buf[..n], pos).ctx("read transaction index", &self.path)?;
            for (i, chunk) in buf[..n].chunks_exact(ABORTED_TXN_SIZE).enumerate() {
                let mut e = [0u8; ABORTED_TXN_SIZE];
                e.copy_from_slice(chunk);
                let t = AbortedTxn::decode(&e).map_err(|e| self.corrupt(e))?;
                check_order(&t, previous, self.base).map_err(|e| self.corrupt(e))?;
                previous = Some(t.last_offset);
                if !f(pos + (i * ABORTED_TXN_SIZE) as u64, t) {
                    return Ok(());
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    /// Reads and checks every entry (on load); learns the last one.
    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        let mut last = None;
        self.walk(self.len_bytes(), |_, t| {
            last = Some(t.last_offset);
            true
        })?;
        self.state.lock().last = Last::Known(last);
        Ok(())
    }

    /// Calls `f` with every entry, in order, until it returns false
    /// (entries are checked as they are read; a chunk at a time in memory).
    pub(crate) fn for_each_entry(
        &self,
        mut f: impl FnMut(AbortedTxn) -> bool,
    ) -> Result<(), StorageError> {
        self.walk(self.len_bytes(), |_, t| f(t))
    }

    /// Every entry (tests and tools).
    pub fn entries(&self) -> Result<Vec<AbortedTxn>, StorageError> {
        let mut out = Vec::new();
        self.walk(self.len_bytes(), |_, t| {
            out.push(t);
            true
        })?;
        Ok(out)
    }

    /// The entries overlapping `[start, upper)` (appended to `out`) and
    /// whether the search is complete (see [`collect_overlapping`]).
    pub(crate) fn collect(
        &self,
        start: Offset,
        upper: Offset,
        out: &mut Vec<AbortedTxn>,
    ) -> Result<bool, StorageError> {
        let mut complete = false;
        self.walk(self.len_bytes(), |_, t| {
            complete = collect_overlapping([t], start, upper, out);
            !complete
        })?;
        Ok(complete)
    }

    /// Appends entries for ABORT markers just written (or about to be) to
    /// this segment. Their markers must lie in the segment, after the last
    /// entry's. Returns whether the file was created (its directory entry
    /// then needs an fsync). On a failed write the file is cut back to what
    /// it held.
    pub(crate) fn append(&self, entries: &[AbortedTxn]) -> Result<bool, StorageError> {
        if entries.is_empty() {
            return Ok(false);
        }
        let mut st = self.state.lock();
        let len = self.len_bytes();
        let mut last = match st.last {
            Last::Known(l) => l,
            Last::Unknown => {
                let mut last = None;
                self.walk(len, |_, t| {
                    last = Some(t.last_offset);
                    true
                })?;
                last
            }
        };
        let mut buf = Vec::with_capacity(entries.len() * ABORTED_TXN_SIZE);
        for t in entries {
            // The disk boundary: only well-formed, ordered entries go out.
            let e = t.encode();
            AbortedTxn::decode(&e).map_err(|e| self.corrupt(e))?;
            check_order(t, last, self.base).map_err(|e| self.corrupt(e))?;
            last = Some(t.last_offset);
            buf.extend_from_slice(&e);
        }
        let created = len == 0 && !self.fs.exists(&self.path);
        let file = self
            .fs
            .open(&self.path, &OpenOptions::read_write_create())
            .ctx("open transaction index", &self.path)?;
        if let Err((_, e)) = write_all_at(&*file, &buf, len) {
            let _ = file.set_len(len);
            return Err(StorageError::io("write transaction index", &self.path, e));
        }
        self.len.store(len + buf.len() as u64, Ordering::Release);
        st.last = Last::Known(last);
        st.dirty = true;
        Ok(created)
    }

    /// Cuts the file back to `len` bytes (undoing an append whose log
    /// write failed).
    pub(crate) fn cut_to(&self, len: u64) -> Result<(), StorageError> {
        let mut st = self.state.lock();
        if self.len_bytes() <= len {
            return Ok(());
        }
        let file = self
            .fs
            .open(&self.path, &OpenOptions::read_write())
            .ctx("open transaction index", &self.path)?;
        file.set_len(len)
            .ctx("truncate transaction index", &self.path)?;
        self.len.store(len, Ordering::Release);
        st.last = Last::Unknown;
        st.dirty = true;
        Ok(())
    }

    /// Removes the entries whose marker is at or after `offset` (Kafka's
    /// `truncateTo`).
    pub(crate) fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        let len = self.len_bytes();
        let mut cut = None;
        self.walk(len, |pos, t| {
            if t.last_offset >= offset {
                cut = Some(pos);
                return false;
            }
            true
        })?;
        if let Some(pos) = cut {
            self.cut_to(pos)?;
        }
        Ok(())
    }

    /// Removes every entry (a segment whose index is rebuilt).
    pub(crate) fn reset(&self) -> Result<(), StorageError> {
        self.cut_to(0)?;
        self.state.lock().last = Last::Known(None);
        Ok(())
    }

    /// fsyncs the file if it changed since the last call.
    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        let mut st = self.state.lock();
        if !st.dirty {
            return Ok(());
        }
        if self.fs.exists(&self.path) {
            let f = self
                .fs
                .open(&self.path, &OpenOptions::read_write())
                .ctx("open transaction index", &self.path)?;
            f.sync_data().ctx("fsync transaction index", &self.path)?;
        }
        st.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(pid),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn kafkas_entry_layout() {
        let t = txn(0x0102, 3, 9, 10);
        let b = t.encode();
        assert_eq!(&b[..2], &[0, 0]);
        assert_eq!(&b[2..10], &0x0102i64.to_be_bytes());
        assert_eq!(&b[10..18], &3i64.to_be_bytes());
        assert_eq!(&b[18..26], &9i64.to_be_bytes());
        assert_eq!(&b[26..34], &10i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&b), Ok(t));
    }

    #[test]
    fn bad_entries_and_files_are_refused() {
        let mut v1 = txn(1, 0, 1, 2).encode();
        v1[1] = 1;
        assert!(AbortedTxn::decode(&v1).is_err());
        for bad in [
            txn(-1, 0, 1, 2),
            txn(1, 5, 4, 5),
            txn(1, -1, 4, 5),
            txn(1, 0, 4, 6),
            txn(1, 0, 4, -1),
        ] {
            assert!(AbortedTxn::decode(&bad.encode()).is_err(), "{bad:?}");
        }
        let a = txn(1, 10, 12, 13).encode();
        let b = txn(2, 11, 14, 11).encode();
        let ok = [a, b].concat();
        assert_eq!(decode_entries(&ok, Offset(10)).unwrap().len(), 2);
        // Out of order, below the segment, a partial entry.
        assert!(decode_entries(&[b, a].concat(), Offset(10)).is_err());
        assert!(decode_entries(&ok, Offset(13)).is_err());
        assert!(decode_entries(&ok[..ok.len() - 1], Offset(10)).is_err());
    }

    #[test]
    fn search_stops_at_a_last_stable_offset_past_the_range() {
        let entries = [txn(1, 0, 5, 3), txn(2, 3, 8, 9), txn(3, 20, 25, 26)];
        let mut out = Vec::new();
        // [4, 9): the first two overlap; the second's LSO 9 >= 9 ends it.
        assert!(collect_overlapping(entries, Offset(4), Offset(9), &mut out));
        assert_eq!(out, vec![entries[0], entries[1]]);
        out.clear();
        // [6, 30): not complete within these entries.
        assert!(!collect_overlapping(
            entries,
            Offset(6),
            Offset(30),
            &mut out
        ));
        assert_eq!(out, vec![entries[1], entries[2]]);
    }

    fn entry() -> impl Strategy<Value = (i64, i64, i64, i64)> {
        (0i64..1000, 0i64..50, 1i64..50, 0i64..60)
    }

    proptest! {
        /// Encode/decode round trip of well-formed index files.
        #[test]
        fn well_formed_files_round_trip(raw in prop::collection::vec(entry(), 0..40), base in 0i64..100) {
            let mut last = base;
            let mut txns = Vec::new();
            for (pid, back, step, lso) in raw {
                last += step;
                let first = (last - back).max(0);
                txns.push(txn(pid, first, last, lso.min(last + 1)));
            }
            let bytes: Vec<u8> = txns.iter().flat_map(|t| t.encode()).collect();
            prop_assert_eq!(decode_entries(&bytes, Offset(base)).unwrap(), txns);
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            crate::fuzzing::txn_index(&bytes);
        }

        /// Corrupting one byte of a well-formed file, or cutting it short,
        /// never panics the reader, and what still decodes is re-encoded
        /// to the same bytes.
        #[test]
        fn damaged_files_decode_without_panicking(raw in prop::collection::vec(entry(), 1..20), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let mut last = 0;
            let mut bytes = vec![0u8];
            for (pid, back, step, lso) in raw {
                last += step;
                bytes.extend(txn(pid, (last - back).max(0), last, lso.min(last + 1)).encode());
            }
            let i = 1 + at.index(bytes.len() - 1);
            bytes[i] = byte;
            crate::fuzzing::txn_index(&bytes);
            bytes.truncate(1 + cut.index(bytes.len() - 1));
            crate::fuzzing::txn_index(&bytes);
        }
    }
}
