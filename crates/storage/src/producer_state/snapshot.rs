//! Producer state snapshot files (`<offset>.snapshot`): the format, its
//! versions and their decoding.
//!
//! All integers big-endian:
//!
//! ```text
//! magic "SLPS" | u16 version | i64 map_end_offset | u32 count
//! count x entry
//! u32 CRC-32C of everything before it
//!
//! version 1 entry: i64 producer_id | i16 epoch | i64 last_timestamp | u8 n | n x batch
//! version 2 entry: i64 producer_id | i16 epoch | i64 last_timestamp
//!                  | i32 coordinator_epoch | i64 current_txn_first_offset (-1: none)
//!                  | u8 n | n x batch
//! batch: i32 first_seq | i32 last_seq | i64 first_offset | i64 last_offset | i64 timestamp
//! ```
//!
//! Version 2 (transactions) is written; version 1 is still read (its
//! producers have no transaction open and coordinator epoch -1). Like
//! Kafka's snapshot, it holds no completed-but-unreplicated transactions:
//! those are rebuilt by the replay after it (or were stable when it was
//! taken). The open transactions are rebuilt from the entries. Unlike
//! Kafka's (one batch per producer), all retained batches are kept, so
//! duplicates of the last five batches are still recognized after a
//! restart.

use sluice_record::{Offset, ProducerEpoch, ProducerId, Timestamp};

use super::{BatchMetadata, ProducerStateEntry, ProducerStateManager, NUM_BATCHES_TO_RETAIN};

/// File name suffix of producer state snapshots.
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snapshot";

const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPS";
/// The version written.
const SNAPSHOT_VERSION: u16 = 2;
const ENTRY_FIXED_V1: usize = 8 + 2 + 8 + 1;
const ENTRY_FIXED_V2: usize = ENTRY_FIXED_V1 + 4 + 8;
const BATCH_SIZE: usize = 4 + 4 + 8 + 8 + 8;

/// Serialises the state in the current version (sorted by producer id, so
/// equal states give equal bytes).
pub fn encode_snapshot(state: &ProducerStateManager) -> Vec<u8> {
    let mut entries: Vec<&ProducerStateEntry> = state.producers.values().collect();
    entries.sort_by_key(|e| e.producer_id);
    let mut out = Vec::with_capacity(
        18 + entries.len() * (ENTRY_FIXED_V2 + NUM_BATCHES_TO_RETAIN * BATCH_SIZE) + 4,
    );
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&state.map_end_offset.0.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.producer_id.0.to_be_bytes());
        out.extend_from_slice(&e.producer_epoch.0.to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.0.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        let txn = e.current_txn_first_offset.map_or(-1, |o| o.0);
        out.extend_from_slice(&txn.to_be_bytes());
        out.push(e.batches.len() as u8);
        for b in &e.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.first_offset.0.to_be_bytes());
            out.extend_from_slice(&b.last_offset.0.to_be_bytes());
            out.extend_from_slice(&b.timestamp.0.to_be_bytes());
        }
    }
    let crc = sluice_record::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Why a snapshot file cannot be used (the log then rebuilds from an older
/// snapshot or from the start of the log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unusable producer state snapshot: {0}")]
pub struct SnapshotError(pub &'static str);

struct Cursor<'a> {
    buf: &'a [u8],
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let Some((a, rest)) = self.buf.split_first_chunk::<N>() else {
            return Err(SnapshotError("truncated"));
        };
        self.buf = rest;
        Ok(*a)
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
}

/// Parses a snapshot written by [`encode_snapshot`] (or by a version that
/// wrote version 1); checks magic, version and CRC, and the entries' own
/// rules, and never allocates more than the input justifies.
pub fn decode_snapshot(bytes: &[u8]) -> Result<ProducerStateManager, SnapshotError> {
    if bytes.len() < 4 + 2 + 8 + 4 + 4 {
        return Err(SnapshotError("too short"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if sluice_record::crc32c(body) != crc {
        return Err(SnapshotError("CRC mismatch"));
    }
    if &body[..4] != SNAPSHOT_MAGIC {
        return Err(SnapshotError("bad magic"));
    }
    let mut c = Cursor { buf: &body[4..] };
    let version = u16::from_be_bytes(c.take()?);
    let entry_fixed = match version {
        1 => ENTRY_FIXED_V1,
        2 => ENTRY_FIXED_V2,
        _ => return Err(SnapshotError("unknown version")),
    };
    let map_end = Offset(c.i64()?);
    let count = u32::from_be_bytes(c.take()?) as usize;
    if count > c.buf.len() / entry_fixed {
        return Err(SnapshotError("entry count exceeds file"));
    }
    let mut state = ProducerStateManager::new(map_end);
    state.producers.reserve(count);
    let mut previous: Option<ProducerId> = None;
    for _ in 0..count {
        let pid = ProducerId(c.i64()?);
        // Entries are written sorted by producer id: anything else is not a
        // file this code wrote.
        if previous.is_some_and(|p| p >= pid) {
            return Err(SnapshotError("producer ids not strictly increasing"));
        }
        previous = Some(pid);
        let epoch = ProducerEpoch(c.i16()?);
        let last_ts = Timestamp(c.i64()?);
        let mut entry = ProducerStateEntry::new(pid, epoch);
        entry.last_timestamp = last_ts;
        if version >= 2 {
            entry.coordinator_epoch = c.i32()?;
            entry.current_txn_first_offset = match c.i64()? {
                -1 => None,
                o if o >= 0 && o < map_end.0 => Some(Offset(o)),
                _ => return Err(SnapshotError("transaction first offset out of range")),
            };
        }
        let n = c.take::<1>()?[0] as usize;
        if n > NUM_BATCHES_TO_RETAIN {
            return Err(SnapshotError("too many batches"));
        }
        for _ in 0..n {
            entry.batches.push_back(BatchMetadata {
                first_seq: c.i32()?,
                last_seq: c.i32()?,
                first_offset: Offset(c.i64()?),
                last_offset: Offset(c.i64()?),
                timestamp: Timestamp(c.i64()?),
            });
        }
        state.producers.insert(pid, entry);
    }
    if !c.buf.is_empty() {
        return Err(SnapshotError("trailing bytes"));
    }
    state.rebuild_ongoing().map_err(SnapshotError)?;
    Ok(state)
}

/// `<20-digit offset>.snapshot`.
pub fn snapshot_file_name(offset: Offset) -> String {
    format!("{:020}{SNAPSHOT_FILE_SUFFIX}", offset.0)
}

/// The offset of a snapshot file name.
pub fn parse_snapshot_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(SNAPSHOT_FILE_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

/// A version-1 snapshot of `state` (what Sluice wrote before
/// transactions), for tests that check it is still read.
#[cfg(test)]
pub(super) fn encode_snapshot_v1(state: &ProducerStateManager) -> Vec<u8> {
    let mut entries: Vec<&ProducerStateEntry> = state.producers.values().collect();
    entries.sort_by_key(|e| e.producer_id);
    let mut out = Vec::new();
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&state.map_end_offset.0.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.producer_id.0.to_be_bytes());
        out.extend_from_slice(&e.producer_epoch.0.to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.0.to_be_bytes());
        out.push(e.batches.len() as u8);
        for b in &e.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.first_offset.0.to_be_bytes());
            out.extend_from_slice(&b.last_offset.0.to_be_bytes());
            out.extend_from_slice(&b.timestamp.0.to_be_bytes());
        }
    }
    let crc = sluice_record::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}
