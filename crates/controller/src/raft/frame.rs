//! Checksummed frames on disk, and the compact codec (bincode 1.x with a
//! size limit) used on disk and on the wire.
//!
//! A frame is `len: u32 LE | crc32c(payload): u32 LE | crc32c(the first
//! 8 bytes): u32 LE | payload`, with `0 < len <= MAX_FRAME`. The header's
//! own checksum lets recovery find intact frames after a damaged one (a
//! flipped length would otherwise hide everything behind it). Files written whole (the vote, the snapshot) go
//! through [`write_atomically`]: a temporary file, fsynced, renamed over
//! the old one, and the directory fsynced, so a reader sees either the old
//! or the new file and never a torn one. A bad frame in such a file is
//! corruption, never a torn write.

use std::io;
use std::path::Path;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_storage::fs::{read_exact_at, write_all_at};
use sluice_storage::{Fs, OpenOptions};

/// The largest frame on disk (a snapshot of a very large image fits).
pub(crate) const MAX_FRAME: u64 = 1 << 30;
pub(crate) const HEADER: usize = 12;

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit)
}

/// Serializes with the crate's codec.
pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    options(MAX_FRAME)
        .serialize(value)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Deserializes untrusted bytes: no allocation beyond `bytes.len()`
/// worth of claimed lengths, an error (never a panic) on bad input.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    options(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Appends one frame holding `payload` to `out`.
pub(crate) fn put_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(!payload.is_empty() && payload.len() as u64 <= MAX_FRAME);
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let hcrc = crc32c::crc32c(&out[start..start + 8]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What lies at the start of a buffer.
pub(crate) enum Parsed<'a> {
    /// A whole, intact frame: its payload and its total size.
    Frame(&'a [u8], usize),
    /// Not an intact frame (torn, damaged, or not a frame at all).
    Bad,
}

/// Whether an intact frame starts anywhere in `buf` (recovery's test that
/// a bad frame is not the torn tail).
pub(crate) fn any_frame_in(buf: &[u8]) -> Option<usize> {
    (0..buf.len().saturating_sub(HEADER))
        .find(|&i| matches!(parse_frame(&buf[i..]), Parsed::Frame(..)))
}

pub(crate) fn parse_frame(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < HEADER {
        return Parsed::Bad;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let hcrc = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    if crc32c::crc32c(&buf[..8]) != hcrc || len == 0 || len as u64 > MAX_FRAME {
        return Parsed::Bad;
    }
    let total = HEADER + len;
    if buf.len() < total {
        return Parsed::Bad;
    }
    let payload = &buf[HEADER..total];
    if crc32c::crc32c(payload) != crc {
        return Parsed::Bad;
    }
    Parsed::Frame(payload, total)
}

/// Reads a whole file (they are small: the log of a metadata quorum is
/// compacted by snapshots).
pub(crate) fn read_file(fs: &dyn Fs, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let file = fs.open(path, &OpenOptions::read())?;
    let len = file.len()?;
    let mut buf = vec![0; len as usize];
    read_exact_at(&*file, &mut buf, 0)?;
    Ok(Some(buf))
}

/// Writes `payload` as the single frame of `dir/name`, atomically and
/// durably (see the module docs).
pub(crate) fn write_atomically(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    payload: &[u8],
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut buf = Vec::with_capacity(payload.len() + HEADER);
    put_frame(payload, &mut buf);
    let file = fs.open(&tmp, &OpenOptions::create_truncate())?;
    write_all_at(&*file, &buf, 0).map_err(|(_, e)| e)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, &dir.join(name))?;
    fs.sync_dir(dir)
}

/// Reads a file written by [`write_atomically`]; a bad frame is corruption.
pub(crate) fn read_atomic(fs: &dyn Fs, dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    let Some(buf) = read_file(fs, &path)? else {
        return Ok(None);
    };
    match parse_frame(&buf) {
        Parsed::Frame(payload, total) if total == buf.len() => Ok(Some(payload.to_vec())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is corrupt (bad checksum or length)", path.display()),
        )),
    }
}
