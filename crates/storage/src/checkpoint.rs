//! Offset checkpoint files in Kafka's text format
//! (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `replication-offset-checkpoint`):
//!
//! ```text
//! 0                 <- version
//! 2                 <- number of entries
//! orders 0 1234     <- topic partition offset
//! orders 1 99
//! ```
//!
//! Written to `<name>.tmp`, fsynced, renamed over the old file, and the
//! directory fsynced, so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_record::Offset;

use crate::error::{IoContext, StorageError};
use crate::fs::{read_exact_at, write_all_at, Fs, OpenOptions};
use crate::TopicPartition;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// The high watermark of every partition of the dir (Kafka's name).
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
const VERSION: i32 = 0;
/// Checkpoint files bigger than this are rejected rather than read.
const MAX_CHECKPOINT_BYTES: u64 = 64 << 20;

pub type Checkpoint = BTreeMap<TopicPartition, Offset>;

pub fn format(entries: &Checkpoint) -> String {
    let mut s = format!("{VERSION}\n{}\n", entries.len());
    for (tp, off) in entries {
        s.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, off.0));
    }
    s
}

/// Parses a checkpoint; `None` if it is malformed.
pub fn parse(text: &str) -> Option<Checkpoint> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<i32>().ok()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = Checkpoint::new();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let topic = parts.next()?;
        let partition: i32 = parts.next()?.parse().ok()?;
        let offset: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        out.insert(TopicPartition::new(topic, partition), Offset(offset));
    }
    if out.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return None;
    }
    Some(out)
}

/// Reads `<dir>/<name>`. A missing file is an empty checkpoint; a malformed
/// one is logged and treated as empty (recovery then scans everything).
pub fn read(fs: &dyn Fs, dir: &Path, name: &str) -> Result<Checkpoint, StorageError> {
    let path = dir.join(name);
    let Some(buf) = read_bytes(fs, dir, name, MAX_CHECKPOINT_BYTES)? else {
        return Ok(Checkpoint::new());
    };
    match std::str::from_utf8(&buf).ok().and_then(parse) {
        Some(c) => Ok(c),
        None => {
            tracing::warn!(path = %path.display(), "malformed checkpoint file, ignoring it");
            Ok(Checkpoint::new())
        }
    }
}

/// The bytes of `<dir>/<name>`: `None` if it does not exist; a file over
/// `max` bytes is logged and read as empty (its parser then refuses it).
pub fn read_bytes(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let path = dir.join(name);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let f = fs
        .open(&path, &OpenOptions::read())
        .ctx("open checkpoint", &path)?;
    let len = f.len().ctx("stat checkpoint", &path)?;
    if len > max {
        tracing::warn!(path = %path.display(), len, "checkpoint file too large, ignoring it");
        return Ok(Some(Vec::new()));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*f, &mut buf, 0).ctx("read checkpoint", &path)?;
    Ok(Some(buf))
}

/// Atomically replaces `<dir>/<name>` with `entries`.
pub fn write(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    entries: &Checkpoint,
) -> Result<(), StorageError> {
    write_bytes(fs, dir, name, format(entries).as_bytes())
}

/// Atomically replaces `<dir>/<name>` with `bytes`: `<name>.tmp` written
/// and fsynced, renamed over the old file, the directory fsynced.
pub fn write_bytes(fs: &dyn Fs, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let f = fs
        .open(&tmp, &OpenOptions::create_truncate())
        .ctx("create checkpoint", &tmp)?;
    write_all_at(&*f, bytes, 0)
        .map_err(|(_, e)| e)
        .ctx("write checkpoint", &tmp)?;
    f.sync_data().ctx("fsync checkpoint", &tmp)?;
    drop(f);
    fs.rename(&tmp, &path).ctx("rename checkpoint", &path)?;
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimFs;

    #[test]
    fn kafka_text_format_round_trips() {
        let mut c = Checkpoint::new();
        c.insert(TopicPartition::new("a-b", 0), Offset(10));
        c.insert(TopicPartition::new("x", 7), Offset(0));
        let text = format(&c);
        assert_eq!(text, "0\n2\na-b 0 10\nx 7 0\n");
        assert_eq!(parse(&text), Some(c));
        assert_eq!(parse("0\n2\na 0 1\n"), None, "count larger than entries");
        assert_eq!(parse("1\n0\n"), None, "unknown version");
        assert_eq!(parse("0\n1\na zero 1\n"), None);
    }

    #[test]
    fn write_is_atomic_and_survives_crash() {
        let fs = SimFs::new();
        let dir = Path::new("/logs");
        fs.create_dir_all(dir).unwrap();
        let mut c = Checkpoint::new();
        c.insert(TopicPartition::new("t", 1), Offset(5));
        write(&fs, dir, RECOVERY_POINT_CHECKPOINT, &c).unwrap();
        fs.crash(9);
        assert_eq!(read(&fs, dir, RECOVERY_POINT_CHECKPOINT).unwrap(), c);
        assert!(read(&fs, dir, LOG_START_OFFSET_CHECKPOINT)
            .unwrap()
            .is_empty());
    }
}
