//! `meta.properties` and the storage format step of a node, as Kafka 4.1.2's
//! `kafka-storage format` writes and its start-up checks them.
//!
//! Every log dir and the metadata log dir of a KRaft node hold a
//! `meta.properties`: `version=1`, the `cluster.id` every node of the
//! cluster shares, this node's `node.id` and the dir's own `directory.id`.
//! [`format`] writes them (temp file, fsync, rename, dir fsync) byte for
//! byte in Kafka's layout (`#`, the date line, then `node.id`,
//! `directory.id`, `version`, `cluster.id`); [`check_formatted`] is what a
//! node runs before it starts: the metadata log dir must be formatted, and
//! every formatted dir must name the same cluster and this node.
//!
//! Kafka's UUIDs ([`random_uuid`], [`uuid_to_base64`], [`parse_uuid`]) are
//! printed as 22 characters of unpadded URL-safe base64; the all-zero UUID
//! and the metadata topic's id (1) are reserved, and a random one never
//! starts with `-` (it would read as a command-line option).
//!
//! Differences from Kafka 4.1.2, on purpose: a cluster id that is not a
//! valid, unreserved UUID is refused (Kafka formats any string), and no
//! `bootstrap.checkpoint` is written: the controller writes its bootstrap
//! records into the metadata log itself on first start.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::error::StorageError;
use crate::fs::{write_all_at, Fs, OpenOptions};

/// The file name, in every formatted dir.
pub const META_PROPERTIES: &str = "meta.properties";
const TMP: &str = "meta.properties.tmp";

/// Kafka's reserved metadata topic id (`Uuid.METADATA_TOPIC_ID`).
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u128(1);

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded URL-safe base64 of the 16 bytes (22 characters), as Kafka prints ids.
pub fn uuid_to_base64(id: Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Parses Kafka's 22-character form; `None` unless it is exactly that
/// (the unused low bits of the last character must be zero, so every id has
/// one spelling).
pub fn uuid_from_base64(s: &str) -> Option<Uuid> {
    let s = s.as_bytes();
    if s.len() != 22 {
        return None;
    }
    let mut acc: u128 = 0;
    for &c in &s[..21] {
        let v = ALPHABET.iter().position(|&a| a == c)? as u128;
        acc = (acc << 6) | v;
    }
    // 21 * 6 = 126 bits; the last character holds the remaining 2 bits in its top.
    let last = ALPHABET.iter().position(|&a| a == s[21])? as u128;
    if last & 0b1111 != 0 {
        return None;
    }
    Some(Uuid::from_u128((acc << 2) | (last >> 4)))
}

/// A random UUID as `kafka-storage random-uuid` makes one: never reserved
/// (zero, the metadata topic id), never printed with a leading `-`.
pub fn random_uuid() -> Uuid {
    loop {
        let id = sluice_runtime::random_uuid();
        if id != Uuid::nil() && id != METADATA_TOPIC_ID && !uuid_to_base64(id).starts_with('-') {
            return id;
        }
    }
}

/// A cluster id for `format`: Kafka's form of a UUID, not a reserved one.
pub fn parse_uuid(s: &str) -> Result<Uuid, StorageError> {
    let invalid = |reason: &str| StorageError::InvalidClusterId {
        id: s.to_string(),
        reason: reason.to_string(),
    };
    let id = uuid_from_base64(s).ok_or_else(|| {
        invalid("it is not a UUID in Kafka's form (22 characters of URL-safe base64, e.g. from `sluice storage random-uuid`)")
    })?;
    if id == Uuid::nil() || id == METADATA_TOPIC_ID {
        return Err(invalid("it is a reserved UUID"));
    }
    Ok(id)
}

/// The contents of one `meta.properties` (version 1, KRaft).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    /// Absent in files written before KIP-858.
    pub directory_id: Option<Uuid>,
}

impl MetaProperties {
    /// The file as Kafka 4.1.2 writes it: `#`, the date line (Java's
    /// `Date.toString()` in UTC), then the keys in Kafka's order.
    pub fn encode(&self, now_ms: i64) -> String {
        let mut s = format!("#\n#{}\nnode.id={}\n", java_date_utc(now_ms), self.node_id);
        if let Some(d) = self.directory_id {
            s.push_str(&format!("directory.id={}\n", uuid_to_base64(d)));
        }
        s.push_str(&format!("version=1\ncluster.id={}\n", self.cluster_id));
        s
    }

    /// Parses a file: `version` must be 1 (0 is a ZooKeeper-era broker's),
    /// `cluster.id` and `node.id` present, `directory.id` a UUID if present.
    pub fn parse(path: &Path, text: &str) -> Result<MetaProperties, StorageError> {
        let bad = |reason: String| StorageError::InvalidMetaProperties {
            path: path.to_path_buf(),
            reason,
        };
        let props: BTreeMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        match props.get("version") {
            Some(&"1") => {}
            Some(v) => {
                return Err(bad(format!(
                    "version {v} is not supported (only version 1, KRaft)"
                )))
            }
            None => return Err(bad("no version".into())),
        }
        let cluster_id = props
            .get("cluster.id")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("no cluster.id".into()))?
            .to_string();
        let node_id = props
            .get("node.id")
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad("no valid node.id".into()))?;
        let directory_id = match props.get("directory.id") {
            None => None,
            Some(d) => Some(
                uuid_from_base64(d)
                    .ok_or_else(|| bad(format!("directory.id {d} is not a UUID")))?,
            ),
        };
        Ok(MetaProperties {
            cluster_id,
            node_id,
            directory_id,
        })
    }
}

/// `EEE MMM dd HH:mm:ss zzz yyyy` of a Unix time in ms, zone UTC.
fn java_date_utc(now_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = sluice_record::UtcDateTime::from_unix_ms(now_ms);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[t.weekday as usize],
        MONTHS[(t.month - 1) as usize],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads `dir/meta.properties`: `None` when the dir or the file is absent.
pub fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<MetaProperties>, StorageError> {
    let path = dir.join(META_PROPERTIES);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let file = fs
        .open(&path, &OpenOptions::read())
        .map_err(io_err("open", &path))?;
    let len = file.len().map_err(io_err("stat", &path))?;
    // A meta.properties is a few lines; a big one is not ours.
    if len > 64 * 1024 {
        return Err(StorageError::InvalidMetaProperties {
            path,
            reason: format!("{len} bytes is too big for a meta.properties"),
        });
    }
    let mut buf = vec![0u8; len as usize];
    crate::fs::read_exact_at(file.as_ref(), &mut buf, 0).map_err(io_err("read", &path))?;
    let text = String::from_utf8(buf).map_err(|_| StorageError::InvalidMetaProperties {
        path: path.clone(),
        reason: "not UTF-8".into(),
    })?;
    MetaProperties::parse(&path, &text).map(Some)
}

/// Writes `dir/meta.properties` durably: temp file, fsync, rename, dir fsync.
fn write(fs: &dyn Fs, dir: &Path, text: &str) -> Result<(), StorageError> {
    fs.create_dir_all(dir).map_err(io_err("create dir", dir))?;
    let tmp = dir.join(TMP);
    let file = fs
        .open(&tmp, &OpenOptions::create_truncate())
        .map_err(io_err("create", &tmp))?;
    write_all_at(file.as_ref(), text.as_bytes(), 0).map_err(|(_, e)| io_err("write", &tmp)(e))?;
    file.sync_data().map_err(io_err("fsync", &tmp))?;
    drop(file);
    let path = dir.join(META_PROPERTIES);
    fs.rename(&tmp, &path).map_err(io_err("rename", &path))?;
    fs.sync_dir(dir).map_err(io_err("fsync dir", dir))
}

/// The dirs of a node: its log dirs, then the metadata log dir unless it is one of them.
pub fn node_dirs(log_dirs: &[PathBuf], metadata_log_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = log_dirs.to_vec();
    if !dirs.iter().any(|d| d == metadata_log_dir) {
        dirs.push(metadata_log_dir.to_path_buf());
    }
    dirs
}

/// What `format` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatOutcome {
    /// Dirs written now, each with its new directory id.
    pub formatted: Vec<(PathBuf, Uuid)>,
    /// Dirs already formatted (for this cluster and node) and left alone.
    pub skipped: Vec<PathBuf>,
}

/// Formats `dirs` for `cluster_id` and `node_id`, as `kafka-storage format`:
/// every already formatted dir must belong to the same cluster and node
/// (else nothing is written); without `ignore_formatted` any formatted dir
/// refuses the whole call; otherwise the unformatted ones are written, each
/// with a fresh directory id.
pub fn format(
    fs: &dyn Fs,
    dirs: &[PathBuf],
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
    now_ms: i64,
) -> Result<FormatOutcome, StorageError> {
    parse_uuid(cluster_id)?;
    assert!(node_id >= 0, "node ids are validated by the config");
    let mut existing = Vec::new();
    for dir in dirs {
        if let Some(meta) = read(fs, dir)? {
            expect_same(dir, &meta, Some(cluster_id), node_id)?;
            existing.push(dir.clone());
        }
    }
    if let (Some(first), false) = (existing.first(), ignore_formatted) {
        return Err(StorageError::AlreadyFormatted { dir: first.clone() });
    }
    let mut outcome = FormatOutcome {
        formatted: Vec::new(),
        skipped: existing,
    };
    for dir in dirs.iter().filter(|d| !outcome.skipped.contains(d)) {
        let directory_id = random_uuid();
        let meta = MetaProperties {
            cluster_id: cluster_id.to_string(),
            node_id,
            directory_id: Some(directory_id),
        };
        write(fs, dir, &meta.encode(now_ms))?;
        outcome.formatted.push((dir.clone(), directory_id));
    }
    Ok(outcome)
}

fn expect_same(
    dir: &Path,
    meta: &MetaProperties,
    cluster_id: Option<&str>,
    node_id: i32,
) -> Result<(), StorageError> {
    let path = dir.join(META_PROPERTIES);
    if let Some(expected) = cluster_id {
        if meta.cluster_id != expected {
            return Err(StorageError::MetaPropertiesMismatch {
                path,
                key: "cluster.id",
                expected: expected.to_string(),
                found: meta.cluster_id.clone(),
            });
        }
    }
    if meta.node_id != node_id {
        return Err(StorageError::MetaPropertiesMismatch {
            path,
            key: "node.id",
            expected: node_id.to_string(),
            found: meta.node_id.to_string(),
        });
    }
    Ok(())
}

/// The start-up check of a node with `process.roles`: the metadata log dir
/// must be formatted, and every formatted dir must name one cluster, this
/// `node_id`, and a directory id no other dir has. Unformatted log dirs are
/// allowed (as in Kafka, the node formats them with the same cluster id).
/// Returns the cluster id.
pub fn check_formatted(
    fs: &dyn Fs,
    log_dirs: &[PathBuf],
    metadata_log_dir: &Path,
    node_id: i32,
) -> Result<String, StorageError> {
    let meta = read(fs, metadata_log_dir)?.ok_or_else(|| StorageError::NotFormatted {
        dir: metadata_log_dir.to_path_buf(),
    })?;
    let cluster_id = meta.cluster_id.clone();
    let mut directory_ids: Vec<(Uuid, PathBuf)> = Vec::new();
    for dir in node_dirs(log_dirs, metadata_log_dir) {
        let Some(meta) = read(fs, &dir)? else {
            continue;
        };
        expect_same(&dir, &meta, Some(&cluster_id), node_id)?;
        if let Some(id) = meta.directory_id {
            if let Some((_, other)) = directory_ids.iter().find(|(d, _)| *d == id) {
                return Err(StorageError::InvalidMetaProperties {
                    path: dir.join(META_PROPERTIES),
                    reason: format!(
                        "directory.id {} is also the id of {}; each dir needs its own (a copied dir?)",
                        uuid_to_base64(id),
                        other.display()
                    ),
                });
            }
            directory_ids.push((id, dir.clone()));
        }
    }
    Ok(cluster_id)
}

#[cfg(test)]
#[path = "meta_properties_tests.rs"]
mod tests;
