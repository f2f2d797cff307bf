//! Durable cluster metadata: `meta.properties` (cluster id, node id) and the
//! topics (name, topic id, partition count, config overrides).
//!
//! Every change is written to a temporary file, fsynced, renamed over the
//! topics file and the directory fsynced — all through the [`Fs`] seam —
//! before it is acknowledged. Topic operations also create and delete the
//! partitions' logs (`LogManager`) and put them on- and offline
//! (`ReplicaManager`).
//!
//! The store is this node's single-voter metadata quorum (what DescribeQuorum
//! reports for `__cluster_metadata-0`): every committed change gets the next
//! metadata offset, written in the same file (same rename) as the change, so
//! the high watermark after a restart is the largest offset any metadata file
//! holds and never goes backwards. `quorum-state` holds the leader epoch,
//! bumped durably on every start (the node elects itself), as Kafka's
//! `quorum-state` file does for a KRaft voter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{Fs, LogConfig, LogManager, OpenOptions, StorageError, TopicPartition};
use uuid::Uuid;

use crate::config::{BrokerConfig, ConfigError};
use crate::context::BrokerContext;
use crate::partition::ReplicaManager;

/// File names inside the first log dir.
const META_PROPERTIES: &str = "meta.properties";
const TOPICS_FILE: &str = "topics.meta";
const TOPICS_TMP: &str = "topics.meta.tmp";
const GROUP_CONFIGS_FILE: &str = "group_configs.meta";
const GROUP_CONFIGS_TMP: &str = "group_configs.meta.tmp";
/// The metadata quorum's leader epoch (Kafka's file name for a KRaft voter's election state).
const QUORUM_STATE_FILE: &str = "quorum-state";
const QUORUM_STATE_TMP: &str = "quorum-state.tmp";
/// Most groups that may have config overrides (clients grow this map).
pub const MAX_GROUPS_WITH_CONFIGS: usize = 10_000;
/// Our own metadata files are small; refuse absurd sizes instead of allocating them.
const MAX_METADATA_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Kafka's longest topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Kafka's upper bound on partitions per topic is the i32 range; we bound it
/// lower so a single request cannot make the broker create millions of logs.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// One topic as the broker knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (validated against the config table).
    pub configs: BTreeMap<String, String>,
}

impl TopicMetadata {
    /// Kafka's internal topics (`__consumer_offsets`, `__transaction_state`).
    pub fn is_internal(&self) -> bool {
        matches!(
            self.name.as_str(),
            "__consumer_offsets" | "__transaction_state"
        )
    }

    pub fn topic_partitions(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        (0..self.partitions).map(|p| TopicPartition::new(self.name.clone(), p))
    }
}

/// Errors of topic operations; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("invalid topic name '{topic}': {reason}")]
    InvalidTopic { topic: String, reason: String },
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic id {0} does not exist")]
    UnknownTopicId(Uuid),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    #[error("metadata {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt metadata file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: node.id {found} does not match the configured node.id {configured}")]
    NodeIdMismatch {
        path: PathBuf,
        found: i32,
        configured: i32,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl MetadataError {
    /// True if the disk (or quota) is full (ENOSPC, EDQUOT).
    pub fn is_no_space(&self) -> bool {
        match self {
            MetadataError::Io { source, .. } => sluice_storage::headroom::is_no_space(source),
            MetadataError::Storage(e) => e.is_no_space(),
            _ => false,
        }
    }

    /// The Kafka error code a client sees.
    pub fn kafka_error_code(&self) -> i16 {
        let e = match self {
            MetadataError::InvalidTopic { .. } => ResponseError::InvalidTopicException,
            MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            MetadataError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            MetadataError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            MetadataError::Config(_) => ResponseError::InvalidConfig,
            MetadataError::DeletionDisabled => ResponseError::TopicDeletionDisabled,
            MetadataError::InvalidRequest(_) => ResponseError::InvalidRequest,
            MetadataError::Io { .. } | MetadataError::Storage(_) => {
                ResponseError::KafkaStorageError
            }
            MetadataError::Corrupt { .. } | MetadataError::NodeIdMismatch { .. } => {
                ResponseError::UnknownServerError
            }
        };
        e.code()
    }
}

/// Kafka's topic name rules; checked before any path is built from a name.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let fail = |reason: &str| {
        Err(MetadataError::InvalidTopic {
            topic: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return fail("Topic name is illegal, it can't be empty");
    }
    if name == "." || name == ".." {
        return fail("Topic name cannot be \".\" or \"..\"");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return fail("Topic name is illegal, it can't be longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return fail(
            "Topic name contains characters other than ASCII alphanumerics, '.', '_' and '-'",
        );
    }
    Ok(())
}

/// Kafka treats '.' and '_' as colliding (metric names).
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

struct Meta {
    cluster_id: String,
    /// `directory.id` of the metadata log dir (the first of `log.dirs`).
    directory_id: Uuid,
    /// This start's leader epoch of the metadata quorum.
    leader_epoch: LeaderEpoch,
}

/// The durable topic registry. Reads are lock-free of I/O; changes are
/// serialized and fsynced before they return.
pub struct MetadataStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    meta: Meta,
    topics: RwLock<BTreeMap<String, TopicMetadata>>,
    /// KIP-848 group config overrides: group id -> key -> value.
    group_configs: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    /// Serializes changes (persist + log creation/deletion).
    write_lock: Mutex<()>,
    /// Metadata offset after the last committed change (the metadata
    /// quorum's high watermark and log end offset). Advanced only under
    /// `write_lock`, after the change carrying it is durable.
    high_watermark: AtomicI64,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore")
            .field("dir", &self.dir)
            .field("cluster_id", &self.meta.cluster_id)
            .field("leader_epoch", &self.meta.leader_epoch)
            .field("high_watermark", &self.high_watermark())
            .finish()
    }
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> MetadataError + 'a {
    move |source| MetadataError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A Kafka-style id: random, not the zero/metadata id, base64 form not starting with '-'.
fn new_kafka_uuid() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        let first = id.as_bytes()[0];
        // URL-safe base64 of the first 6 bits: index 62 is '-'.
        if first >> 2 != 62 && id.as_u128() > 1 {
            return id;
        }
    }
}

/// URL-safe base64 without padding (how Kafka prints cluster and topic ids).
pub fn uuid_to_base64(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of [`uuid_to_base64`] (22 URL-safe base64 characters).
pub fn uuid_from_base64(s: &str) -> Option<Uuid> {
    let s = s.as_bytes();
    if s.len() != 22 {
        return None;
    }
    let mut n: u128 = 0;
    for (i, &c) in s.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        if i < 21 {
            n = (n << 6) | u128::from(v);
        } else {
            // 21 x 6 = 126 bits; the last character carries the final 2 bits
            // in its high bits, and its low 4 bits must be zero.
            if v & 0x0f != 0 {
                return None;
            }
            n = (n << 2) | u128::from(v >> 4);
        }
    }
    Some(Uuid::from_u128(n))
}

pub(crate) fn read_file(fs: &dyn Fs, path: &Path) -> Result<Option<String>, MetadataError> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let file = fs
        .open(path, &OpenOptions::read())
        .map_err(io_err("open", path))?;
    let len = file.len().map_err(io_err("stat", path))?;
    if len > MAX_METADATA_FILE_BYTES {
        return Err(MetadataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is larger than any metadata file Sluice writes"),
        });
    }
    let mut buf = vec![0u8; len as usize];
    sluice_storage::fs::read_exact_at(file.as_ref(), &mut buf, 0).map_err(io_err("read", path))?;
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| MetadataError::Corrupt {
            path: path.to_path_buf(),
            reason: "not UTF-8".into(),
        })
}

/// Writes `contents` durably: temp file, fsync, rename, directory fsync.
/// On a full disk the write uses the log dir's metadata headroom
/// (`sluice_storage::headroom`), so deletions can still be recorded.
pub(crate) fn write_durably(
    fs: &dyn Fs,
    dir: &Path,
    tmp_name: &str,
    name: &str,
    contents: &[u8],
) -> Result<(), MetadataError> {
    sluice_storage::headroom::retry_on_no_space(
        fs,
        dir,
        || write_durably_once(fs, dir, tmp_name, name, contents),
        MetadataError::is_no_space,
    )
}

fn write_durably_once(
    fs: &dyn Fs,
    dir: &Path,
    tmp_name: &str,
    name: &str,
    contents: &[u8],
) -> Result<(), MetadataError> {
    let tmp = dir.join(tmp_name);
    let dst = dir.join(name);
    let file = fs
        .open(&tmp, &OpenOptions::create_truncate())
        .map_err(io_err("create", &tmp))?;
    sluice_storage::fs::write_all_at(file.as_ref(), contents, 0)
        .map_err(|(_, e)| io_err("write", &tmp)(e))?;
    file.sync_data().map_err(io_err("fsync", &tmp))?;
    drop(file);
    fs.rename(&tmp, &dst).map_err(io_err("rename", &dst))?;
    fs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
    Ok(())
}

/// Escapes a key or value for the line formats of the metadata files (also
/// the dynamic broker config file): anything but `[A-Za-z0-9._-,:/]` as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._-,:/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`percent_encode`]; `None` for a malformed escape or non-UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The first lines of a metadata file: `version=2` and the metadata offset
/// of the last change written to it.
fn encode_header(offset: Offset) -> String {
    format!("version=2\noffset {offset}\n")
}

/// Reads what [`encode_header`] wrote. A `version=1` file (written before
/// metadata offsets existed) has no offset line and counts as offset 0.
fn decode_header<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
    corrupt: impl Fn(String) -> MetadataError,
) -> Result<(Offset, usize), MetadataError> {
    match lines.next() {
        Some("version=1") => Ok((Offset::ZERO, 1)),
        Some("version=2") => {
            let line = lines.next().unwrap_or_default();
            line.strip_prefix("offset ")
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .map(|n| (Offset(n), 2))
                .ok_or_else(|| corrupt(format!("line 2: bad offset line {line:?}")))
        }
        _ => Err(corrupt("missing or unknown version line".into())),
    }
}

/// Serializes the topic registry (one line per topic / config entry).
fn encode_topics(topics: &BTreeMap<String, TopicMetadata>, offset: Offset) -> String {
    let mut out = encode_header(offset);
    for t in topics.values() {
        let _ = writeln!(
            out,
            "topic {} {} {}",
            t.name,
            t.topic_id.hyphenated(),
            t.partitions
        );
        for (k, v) in &t.configs {
            let _ = writeln!(out, "config {} {}", percent_encode(k), percent_encode(v));
        }
    }
    let _ = writeln!(out, "end {}", topics.len());
    out
}

fn decode_topics(
    path: &Path,
    text: &str,
) -> Result<(BTreeMap<String, TopicMetadata>, Offset), MetadataError> {
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let (offset, header_lines) = decode_header(&mut lines, corrupt)?;
    let mut topics = BTreeMap::new();
    let mut current: Option<TopicMetadata> = None;
    let mut ended = false;
    for (n, line) in lines.enumerate() {
        let bad = || corrupt(format!("line {}: {line:?}", n + 1 + header_lines));
        if ended {
            return Err(bad());
        }
        let mut parts = line.split(' ');
        match parts.next() {
            Some("topic") => {
                let (Some(name), Some(id), Some(p), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                validate_topic_name(name).map_err(|_| bad())?;
                let topic_id = Uuid::parse_str(id).map_err(|_| bad())?;
                let partitions: i32 = p.parse().map_err(|_| bad())?;
                if partitions < 1 {
                    return Err(bad());
                }
                if let Some(t) = current.take() {
                    topics.insert(t.name.clone(), t);
                }
                current = Some(TopicMetadata {
                    name: name.to_string(),
                    topic_id,
                    partitions,
                    configs: BTreeMap::new(),
                });
            }
            Some("config") => {
                let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(bad());
                };
                let t = current.as_mut().ok_or_else(bad)?;
                let k = percent_decode(k).ok_or_else(bad)?;
                let v = percent_decode(v).ok_or_else(bad)?;
                t.configs.insert(k, v);
            }
            Some("end") => {
                if let Some(t) = current.take() {
                    topics.insert(t.name.clone(), t);
                }
                let count: usize = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
                if count != topics.len() {
                    return Err(corrupt(format!(
                        "end line says {count} topics, found {}",
                        topics.len()
                    )));
                }
                ended = true;
            }
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err(corrupt("truncated (no end line)".into()));
    }
    Ok((topics, offset))
}

/// Serializes the group config overrides (one line per group / entry).
fn encode_group_configs(
    groups: &BTreeMap<String, BTreeMap<String, String>>,
    offset: Offset,
) -> String {
    let mut out = encode_header(offset);
    for (g, configs) in groups {
        let _ = writeln!(out, "group {}", percent_encode(g));
        for (k, v) in configs {
            let _ = writeln!(out, "config {} {}", percent_encode(k), percent_encode(v));
        }
    }
    let _ = writeln!(out, "end {}", groups.len());
    out
}

/// The group config overrides and the metadata offset of their last change.
type GroupConfigsFile = (BTreeMap<String, BTreeMap<String, String>>, Offset);

fn decode_group_configs(path: &Path, text: &str) -> Result<GroupConfigsFile, MetadataError> {
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let (offset, header_lines) = decode_header(&mut lines, corrupt)?;
    let mut groups: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut ended = false;
    for (n, line) in lines.enumerate() {
        let bad = || corrupt(format!("line {}: {line:?}", n + 1 + header_lines));
        if ended {
            return Err(bad());
        }
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["group", g] => {
                let g = percent_decode(g).ok_or_else(bad)?;
                groups.entry(g.clone()).or_default();
                current = Some(g);
            }
            ["config", k, v] => {
                let g = current.as_ref().ok_or_else(bad)?;
                let k = percent_decode(k).ok_or_else(bad)?;
                let v = percent_decode(v).ok_or_else(bad)?;
                groups.entry(g.clone()).or_default().insert(k, v);
            }
            ["end", count] => {
                if count.parse::<usize>().ok() != Some(groups.len()) {
                    return Err(bad());
                }
                ended = true;
            }
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err(corrupt("truncated (no end line)".into()));
    }
    Ok((groups, offset))
}

/// `quorum-state`: the leader epoch of the metadata quorum.
fn encode_quorum_state(epoch: LeaderEpoch) -> String {
    format!("version=1\nleader_epoch {}\nend\n", epoch.0)
}

fn decode_quorum_state(path: &Path, text: &str) -> Result<LeaderEpoch, MetadataError> {
    let mut lines = text.lines();
    match (lines.next(), lines.next(), lines.next(), lines.next()) {
        (Some("version=1"), Some(epoch), Some("end"), None) => epoch
            .strip_prefix("leader_epoch ")
            .and_then(|e| e.parse::<i32>().ok())
            .filter(|e| *e >= 0)
            .map(LeaderEpoch),
        _ => None,
    }
    .ok_or_else(|| MetadataError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a quorum-state file: {text:?}"),
    })
}

/// Makes this start's leader epoch durable in `quorum-state`. On a disk
/// so full that even the metadata headroom is gone, the file is rewritten
/// in place (its block is already allocated; the few bytes fit one
/// sector), and if even that fails the broker starts anyway with a WARN:
/// it must come up on a full disk to serve reads and delete topics.
fn write_leader_epoch(fs: &dyn Fs, dir: &Path, epoch: LeaderEpoch) -> Result<(), MetadataError> {
    let text = encode_quorum_state(epoch);
    let err = match write_durably(
        fs,
        dir,
        QUORUM_STATE_TMP,
        QUORUM_STATE_FILE,
        text.as_bytes(),
    ) {
        Err(e) if e.is_no_space() => e,
        other => return other,
    };
    let path = dir.join(QUORUM_STATE_FILE);
    let in_place = fs.open(&path, &OpenOptions::read_write()).and_then(|f| {
        sluice_storage::fs::write_all_at(f.as_ref(), text.as_bytes(), 0).map_err(|(_, e)| e)?;
        f.set_len(text.len() as u64)?;
        f.sync_data()
    });
    match in_place {
        Ok(()) => {
            tracing::warn!(path = %path.display(), leader_epoch = epoch.0, error = %err, "disk full: leader epoch written in place");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), leader_epoch = epoch.0, error = %e, "disk full: leader epoch not durable; serving anyway");
        }
    }
    Ok(())
}

fn parse_meta_properties(text: &str) -> BTreeMap<String, String> {
    crate::config::parse_properties(text).into_iter().collect()
}

impl MetadataStore {
    /// Reads (or, on first start, creates) `meta.properties` in every log dir and
    /// the topics file in the first log dir.
    pub fn open(config: &BrokerConfig, fs: Arc<dyn Fs>) -> Result<Self, MetadataError> {
        let dir = config
            .log_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("./data"));
        let mut cluster_id: Option<String> = None;
        for d in &config.log_dirs {
            fs.create_dir_all(d).map_err(io_err("create dir", d))?;
            let path = d.join(META_PROPERTIES);
            if let Some(text) = read_file(fs.as_ref(), &path)? {
                let props = parse_meta_properties(&text);
                let node: i32 = props
                    .get("node.id")
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| MetadataError::Corrupt {
                        path: path.clone(),
                        reason: "no valid node.id".into(),
                    })?;
                if node != config.node_id {
                    return Err(MetadataError::NodeIdMismatch {
                        path,
                        found: node,
                        configured: config.node_id,
                    });
                }
                let cid = props
                    .get("cluster.id")
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| MetadataError::Corrupt {
                        path: path.clone(),
                        reason: "no cluster.id".into(),
                    })?;
                match &cluster_id {
                    Some(existing) if *existing != cid => {
                        return Err(MetadataError::Corrupt {
                            path,
                            reason: format!(
                                "cluster.id {cid} differs from {existing} in another log dir"
                            ),
                        })
                    }
                    _ => cluster_id = Some(cid),
                }
            }
        }
        let cluster_id = cluster_id.unwrap_or_else(|| uuid_to_base64(new_kafka_uuid()));
        for d in &config.log_dirs {
            if !fs.exists(&d.join(META_PROPERTIES)) {
                let text = format!(
                    "#\n#Written by Sluice\ncluster.id={cluster_id}\ndirectory.id={}\nnode.id={}\nversion=1\n",
                    uuid_to_base64(new_kafka_uuid()),
                    config.node_id
                );
                write_durably(
                    fs.as_ref(),
                    d,
                    "meta.properties.tmp",
                    META_PROPERTIES,
                    text.as_bytes(),
                )?;
            }
        }
        let meta_path = dir.join(META_PROPERTIES);
        let directory_id = read_file(fs.as_ref(), &meta_path)?
            .map(|text| parse_meta_properties(&text))
            .and_then(|props| props.get("directory.id").map(|d| d.trim().to_string()))
            .and_then(|d| uuid_from_base64(&d))
            .unwrap_or(Uuid::nil());
        let topics_path = dir.join(TOPICS_FILE);
        let (topics, topics_offset) = match read_file(fs.as_ref(), &topics_path)? {
            Some(text) => decode_topics(&topics_path, &text)?,
            None => (BTreeMap::new(), Offset::ZERO),
        };
        let groups_path = dir.join(GROUP_CONFIGS_FILE);
        let (group_configs, groups_offset) = match read_file(fs.as_ref(), &groups_path)? {
            Some(text) => decode_group_configs(&groups_path, &text)?,
            None => (BTreeMap::new(), Offset::ZERO),
        };
        // This start is a new election of the single voter: a new epoch,
        // durable before anything is served in it.
        let state_path = dir.join(QUORUM_STATE_FILE);
        let previous_epoch = match read_file(fs.as_ref(), &state_path)? {
            Some(text) => decode_quorum_state(&state_path, &text)?,
            None => LeaderEpoch(0),
        };
        let leader_epoch = previous_epoch
            .0
            .checked_add(1)
            .map(LeaderEpoch)
            .ok_or_else(|| MetadataError::Corrupt {
                path: state_path.clone(),
                reason: "leader epoch at i32::MAX".into(),
            })?;
        write_leader_epoch(fs.as_ref(), &dir, leader_epoch)?;
        let high_watermark = topics_offset.max(groups_offset);
        tracing::info!(
            leader_epoch = leader_epoch.0,
            high_watermark = high_watermark.value(),
            "metadata quorum: this node is the leader (single voter)"
        );
        Ok(MetadataStore {
            fs,
            dir,
            meta: Meta {
                cluster_id,
                directory_id,
                leader_epoch,
            },
            topics: RwLock::new(topics),
            group_configs: RwLock::new(group_configs),
            write_lock: Mutex::new(()),
            high_watermark: AtomicI64::new(high_watermark.value()),
        })
    }

    /// The metadata offset after the last committed change: the metadata
    /// quorum's high watermark (and, with one voter, its log end offset).
    pub fn high_watermark(&self) -> Offset {
        Offset(self.high_watermark.load(Ordering::Acquire))
    }

    /// The metadata quorum's leader epoch: one more on every start.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.meta.leader_epoch
    }

    /// `directory.id` of the log dir holding the metadata (nil if its
    /// `meta.properties` has none).
    pub fn directory_id(&self) -> Uuid {
        self.meta.directory_id
    }

    /// Writes one change durably in `name` and, once it is, advances the
    /// high watermark to the offset the file carries. Callers hold `write_lock`.
    fn commit(
        &self,
        tmp_name: &str,
        name: &str,
        encode: impl FnOnce(Offset) -> String,
    ) -> Result<(), MetadataError> {
        debug_assert!(self.write_lock.is_locked());
        let offset = self.high_watermark().plus(1);
        write_durably(
            self.fs.as_ref(),
            &self.dir,
            tmp_name,
            name,
            encode(offset).as_bytes(),
        )?;
        self.high_watermark.store(offset.value(), Ordering::Release);
        Ok(())
    }

    /// Commits a metadata change that lives outside this store's files
    /// (e.g. dynamic broker configs): under the metadata write lock,
    /// `persist` gets the change's metadata offset and must store it
    /// durably *with* the change (same atomic write); when it returns `Ok`
    /// the high watermark advances to that offset. At start, hand the offset
    /// read back from that file to [`MetadataStore::recover_offset`].
    /// `persist` must not call back into this store (the lock is held).
    pub fn commit_external<T, E>(
        &self,
        persist: impl FnOnce(Offset) -> Result<T, E>,
    ) -> Result<T, E> {
        let _guard = self.write_lock.lock();
        let offset = self.high_watermark().plus(1);
        let out = persist(offset)?;
        self.high_watermark.store(offset.value(), Ordering::Release);
        Ok(out)
    }

    /// Raises the high watermark to an offset a file written through
    /// [`MetadataStore::commit_external`] holds (call before serving).
    pub fn recover_offset(&self, offset: Offset) {
        let _guard = self.write_lock.lock();
        self.high_watermark
            .fetch_max(offset.value(), Ordering::AcqRel);
    }

    /// Puts every known partition online: loads (or creates) its log with the
    /// topic's effective config and adds it to the ReplicaManager. Partition
    /// directories of unknown topics (deleted while the broker was down) are deleted.
    pub fn load_logs(
        &self,
        logs: &LogManager,
        replicas: &ReplicaManager,
        config: &BrokerConfig,
    ) -> Result<(), MetadataError> {
        let topics = self.topics.read().clone();
        for tp in logs.on_disk_partitions() {
            let known = topics
                .get(&tp.topic)
                .is_some_and(|t| tp.partition >= 0 && tp.partition < t.partitions);
            if !known {
                tracing::info!(partition = %tp, "deleting log of a partition that no longer exists");
                // LogManager deletes loaded logs only: load it first. A stray
                // log that cannot even be loaded is removed directly, so a
                // topic re-created under the same name never sees its data.
                match logs.get_or_create_log(&tp, LogConfig::default()) {
                    Ok(_) => logs.delete_log(&tp)?,
                    Err(e) => {
                        tracing::warn!(partition = %tp, error = %e, "stray log does not load; removing its directory");
                        for dir in &config.log_dirs {
                            let path = dir.join(tp.dir_name());
                            if self.fs.exists(&path) {
                                self.fs
                                    .remove_dir_all(&path)
                                    .map_err(io_err("remove stray log", &path))?;
                                self.fs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
                            }
                        }
                    }
                }
            }
        }
        let mut progress =
            LoadProgress::new(topics.values().map(|t| t.partitions.max(0) as usize).sum());
        for t in topics.values() {
            let log_config = match config.topic_log_config(&t.configs) {
                Ok(c) => c,
                Err(e) => {
                    // A stored override this build does not accept (e.g. written
                    // by a newer version): serve the topic without it rather
                    // than refuse to start.
                    let valid: BTreeMap<String, String> = t
                        .configs
                        .iter()
                        .filter(|(k, v)| {
                            let one = BTreeMap::from([((*k).clone(), (*v).clone())]);
                            config.topic_log_config(&one).is_ok()
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    tracing::warn!(topic = %t.name, error = %e, "ignoring stored topic configs this broker does not accept");
                    config.topic_log_config(&valid)?
                }
            };
            for tp in t.topic_partitions() {
                match logs.get_or_create_log(&tp, log_config.clone()) {
                    Ok(log) => {
                        replicas.add_partition(log);
                    }
                    // A partition whose log cannot be created on a full
                    // disk stays offline; the broker starts and serves the
                    // rest (deleting topics frees space).
                    Err(e) if e.is_no_space() => {
                        tracing::warn!(partition = %tp, error = %e, "disk full: partition offline");
                    }
                    Err(e) => return Err(e.into()),
                }
                progress.loaded_one();
            }
        }
        Ok(())
    }

    /// Kafka-style (base64) cluster id.
    pub fn cluster_id(&self) -> String {
        self.meta.cluster_id.clone()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMetadata> {
        self.topics
            .read()
            .values()
            .find(|t| t.topic_id == id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicMetadata> {
        self.topics.read().values().cloned().collect()
    }

    fn persist(&self, topics: &BTreeMap<String, TopicMetadata>) -> Result<(), MetadataError> {
        self.commit(TOPICS_TMP, TOPICS_FILE, |offset| {
            encode_topics(topics, offset)
        })
    }

    /// Checks a CreateTopics request without changing anything. Returns the
    /// partition count that would be used.
    pub fn validate_create(
        &self,
        config: &BrokerConfig,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<i32, MetadataError> {
        validate_topic_name(name)?;
        let topics = self.topics.read();
        if topics.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists(name.to_string()));
        }
        let key = collision_key(name);
        if let Some(other) = topics.values().find(|t| collision_key(&t.name) == key) {
            return Err(MetadataError::InvalidTopic {
                topic: name.to_string(),
                reason: format!(
                    "Topic '{name}' collides with existing topic: {}",
                    other.name
                ),
            });
        }
        drop(topics);
        let partitions = match partitions {
            -1 => config.num_partitions,
            p if p < 1 => {
                return Err(MetadataError::InvalidPartitions(
                    "Number of partitions must be larger than 0.".into(),
                ))
            }
            p => p,
        };
        if partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(MetadataError::InvalidPartitions(format!(
                "Number of partitions {partitions} is larger than Sluice's limit of {MAX_PARTITIONS_PER_TOPIC}."
            )));
        }
        match replication_factor {
            -1 | 1 => {}
            rf if rf < 1 => {
                return Err(MetadataError::InvalidReplicationFactor(
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .into(),
                ))
            }
            rf => {
                return Err(MetadataError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."
                )))
            }
        }
        config.topic_log_config(configs)?;
        Ok(partitions)
    }

    /// Creates a topic: validates, persists (fsynced), creates the logs and
    /// puts the partitions online. `partitions` -1 = `num.partitions`.
    pub fn create_topic(
        &self,
        ctx: &BrokerContext,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        let _guard = self.write_lock.lock();
        let partitions =
            self.validate_create(&ctx.config, name, partitions, replication_factor, &configs)?;
        let log_config = ctx.config.topic_log_config(&configs)?;
        let mut topic_id = new_kafka_uuid();
        while self.topic_by_id(topic_id).is_some() {
            topic_id = new_kafka_uuid();
        }
        let topic = TopicMetadata {
            name: name.to_string(),
            topic_id,
            partitions,
            configs: configs
                .into_iter()
                .map(|(k, v)| (k, v.trim().to_string()))
                .collect(),
        };
        let before = self.topics.read().clone();
        let mut next = before.clone();
        next.insert(topic.name.clone(), topic.clone());
        self.persist(&next)?;
        // The topic is durable now; publish it even if a log cannot be created
        // (the next start creates the missing logs).
        let result = topic.topic_partitions().try_for_each(|tp| {
            let log = ctx.logs.get_or_create_log(&tp, log_config.clone())?;
            ctx.replicas.add_partition(log);
            Ok::<(), MetadataError>(())
        });
        if let Err(e) = &result {
            // Except on a full disk: the next start could not create them
            // either. The topic is taken back instead.
            if e.is_no_space() && self.undo_create(ctx, &topic, &before) {
                tracing::warn!(topic = %topic.name, partitions, error = %e, "disk full: topic not created");
                return result.map(|_| topic);
            }
        }
        *self.topics.write() = next;
        result?;
        tracing::info!(topic = %topic.name, topic_id = %uuid_to_base64(topic.topic_id), partitions, "created topic");
        Ok(topic)
    }

    /// Takes back a topic whose logs could not all be created: deletes the
    /// logs made so far (freeing their space) and persists the topics
    /// without it. `false` if the removal could not be persisted (the
    /// topic then stays, as a partly created one).
    fn undo_create(
        &self,
        ctx: &BrokerContext,
        topic: &TopicMetadata,
        before: &BTreeMap<String, TopicMetadata>,
    ) -> bool {
        for tp in topic.topic_partitions() {
            ctx.replicas.remove_partition(&tp);
            if ctx.logs.get_log(&tp).is_some() {
                if let Err(e) = ctx.logs.delete_log(&tp) {
                    tracing::warn!(partition = %tp, error = %e, "cannot delete the log of a topic not created");
                }
            }
        }
        match self.persist(before) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(topic = %topic.name, error = %e, "cannot take back a partly created topic");
                false
            }
        }
    }

    /// Creates `name` with the broker defaults if it does not exist yet
    /// (Metadata auto-creation); returns the existing topic otherwise.
    pub fn auto_create_topic(
        &self,
        ctx: &BrokerContext,
        name: &str,
    ) -> Result<TopicMetadata, MetadataError> {
        validate_topic_name(name)?;
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        match self.create_topic(ctx, name, -1, -1, BTreeMap::new()) {
            Err(MetadataError::TopicAlreadyExists(_)) => self
                .topic(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.into())),
            other => other,
        }
    }

    /// Deletes a topic: persists the removal, takes the partitions offline and
    /// deletes their logs. Returns the deleted topic.
    pub fn delete_topic(
        &self,
        ctx: &BrokerContext,
        name: &str,
    ) -> Result<TopicMetadata, MetadataError> {
        if !ctx.config.delete_topic_enable {
            return Err(MetadataError::DeletionDisabled);
        }
        let _guard = self.write_lock.lock();
        let mut next = self.topics.read().clone();
        let topic = next
            .remove(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.persist(&next)?;
        *self.topics.write() = next;
        for tp in topic.topic_partitions() {
            ctx.replicas.remove_partition(&tp);
            if ctx.logs.get_log(&tp).is_some() {
                ctx.logs.delete_log(&tp)?;
            }
        }
        // Committed offsets of the deleted topic go too (tombstoned in
        // __consumer_offsets), so a re-created topic starts clean, as in Kafka.
        let offsets_dropped = ctx.groups.on_topic_deleted(&topic.name);
        tracing::info!(topic = %topic.name, topic_id = %uuid_to_base64(topic.topic_id), offsets_dropped, "deleted topic");
        Ok(topic)
    }

    /// Checks a CreatePartitions request without changing anything.
    pub fn validate_create_partitions(
        &self,
        name: &str,
        new_total: i32,
    ) -> Result<TopicMetadata, MetadataError> {
        let topic = self
            .topic(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if new_total < topic.partitions {
            return Err(MetadataError::InvalidPartitions(format!(
                "Topic currently has {} partitions, which is higher than the requested {new_total}.",
                topic.partitions
            )));
        }
        if new_total == topic.partitions {
            return Err(MetadataError::InvalidPartitions(format!(
                "Topic already has {} partitions.",
                topic.partitions
            )));
        }
        if new_total > MAX_PARTITIONS_PER_TOPIC {
            return Err(MetadataError::InvalidPartitions(format!(
                "Number of partitions {new_total} is larger than Sluice's limit of {MAX_PARTITIONS_PER_TOPIC}."
            )));
        }
        Ok(topic)
    }

    /// Grows a topic to `new_total` partitions.
    pub fn create_partitions(
        &self,
        ctx: &BrokerContext,
        name: &str,
        new_total: i32,
    ) -> Result<TopicMetadata, MetadataError> {
        let _guard = self.write_lock.lock();
        let mut topic = self.validate_create_partitions(name, new_total)?;
        let log_config = ctx.config.topic_log_config(&topic.configs)?;
        let old = topic.partitions;
        topic.partitions = new_total;
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), topic.clone());
        self.persist(&next)?;
        for p in old..new_total {
            let tp = TopicPartition::new(name, p);
            let log = ctx.logs.get_or_create_log(&tp, log_config.clone())?;
            ctx.replicas.add_partition(log);
        }
        *self.topics.write() = next;
        tracing::info!(topic = %name, from = old, to = new_total, "added partitions");
        Ok(topic)
    }

    /// Replaces a topic's config overrides (validated first) and applies the
    /// new effective config to its logs.
    pub fn alter_topic_config(
        &self,
        ctx: &BrokerContext,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        self.update_topic_config(ctx, name, false, |_| Ok(configs))
    }

    /// A group's config overrides (empty when it has none).
    pub fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.group_configs
            .read()
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every group with config overrides.
    pub fn all_group_configs(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.group_configs.read().clone()
    }

    /// Read-modify-write of a group's config overrides: `f` computes the new
    /// set from the current one, `validate` checks it; unless `validate_only`
    /// the result is persisted and then handed to `on_commit` (still under
    /// the write lock, so concurrent changes reach it in order).
    pub fn update_group_config(
        &self,
        group_id: &str,
        validate_only: bool,
        f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
        validate: impl FnOnce(&BTreeMap<String, String>) -> Result<(), MetadataError>,
        on_commit: impl FnOnce(&BTreeMap<String, String>),
    ) -> Result<BTreeMap<String, String>, MetadataError> {
        let _guard = self.write_lock.lock();
        let current = self.group_configs(group_id);
        let next_configs = f(&current)?;
        validate(&next_configs)?;
        if validate_only {
            return Ok(next_configs);
        }
        let mut next = self.group_configs.read().clone();
        if next_configs.is_empty() {
            next.remove(group_id);
        } else {
            if !next.contains_key(group_id) && next.len() >= MAX_GROUPS_WITH_CONFIGS {
                return Err(MetadataError::InvalidRequest(format!(
                    "at most {MAX_GROUPS_WITH_CONFIGS} groups may have config overrides"
                )));
            }
            next.insert(group_id.to_string(), next_configs.clone());
        }
        self.commit(GROUP_CONFIGS_TMP, GROUP_CONFIGS_FILE, |offset| {
            encode_group_configs(&next, offset)
        })?;
        *self.group_configs.write() = next;
        on_commit(&next_configs);
        Ok(next_configs)
    }

    /// Read-modify-write of a topic's config overrides under the metadata
    /// lock (IncrementalAlterConfigs): `f` maps the current overrides to the
    /// new ones, which are validated and, unless `validate_only`, stored
    /// durably and applied to the topic's logs.
    pub fn update_topic_config(
        &self,
        ctx: &BrokerContext,
        name: &str,
        validate_only: bool,
        f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
    ) -> Result<TopicMetadata, MetadataError> {
        let _guard = self.write_lock.lock();
        let mut topic = self
            .topic(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let configs = f(&topic.configs)?;
        let log_config = ctx.config.topic_log_config(&configs)?;
        topic.configs = configs
            .into_iter()
            .map(|(k, v)| (k, v.trim().to_string()))
            .collect();
        if validate_only {
            return Ok(topic);
        }
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), topic.clone());
        self.persist(&next)?;
        *self.topics.write() = next;
        for tp in topic.topic_partitions() {
            if let Some(p) = ctx.replicas.get_partition(&tp) {
                p.log().update_config(log_config.clone());
            }
        }
        Ok(topic)
    }
}

/// Start-up progress of loading (and after an unclean shutdown, recovering)
/// partition logs: a log line every [`LoadProgress::EVERY`] partitions or
/// [`LoadProgress::INTERVAL`], so a long recovery shows it is moving.
struct LoadProgress {
    total: usize,
    loaded: usize,
    started: std::time::Instant,
    last_report: std::time::Instant,
}

impl LoadProgress {
    const EVERY: usize = 100;
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

    fn new(total: usize) -> Self {
        let now = std::time::Instant::now();
        LoadProgress {
            total,
            loaded: 0,
            started: now,
            last_report: now,
        }
    }

    fn loaded_one(&mut self) {
        self.loaded += 1;
        if self.loaded == self.total {
            return;
        }
        if self.loaded % Self::EVERY == 0 || self.last_report.elapsed() >= Self::INTERVAL {
            self.last_report = std::time::Instant::now();
            tracing::info!(
                loaded = self.loaded,
                total = self.total,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "loading partition logs: {}/{} partitions",
                self.loaded,
                self.total
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "ü",
            "../x",
            &"x".repeat(250),
            "a\0",
        ] {
            let err = validate_topic_name(bad).unwrap_err();
            assert_eq!(err.kafka_error_code(), 17, "{bad:?}");
        }
    }

    #[test]
    fn base64_ids_match_kafka_form() {
        // Kafka prints Uuid 0x...01 as "AAAAAAAAAAAAAAAAAAAAAQ".
        assert_eq!(uuid_to_base64(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(
            uuid_to_base64(Uuid::from_u128(u128::MAX)),
            "_____________________w"
        );
        for _ in 0..1000 {
            let s = uuid_to_base64(new_kafka_uuid());
            assert_eq!(s.len(), 22);
            assert!(!s.starts_with('-'));
        }
    }

    mod durability {
        use super::*;
        use sluice_storage::{Clock, FaultKind, ManualClock, SimFs};

        fn config() -> BrokerConfig {
            // small indexes keep the simulated file system small
            BrokerConfig::with_overrides(&[
                ("log.dirs", "/sim/data"),
                ("num.partitions", "2"),
                ("log.index.size.max.bytes", "4096"),
            ])
            .unwrap()
        }

        /// A broker's state on `fs` as `Broker::start` builds it.
        fn open(fs: &Arc<SimFs>) -> Result<BrokerContext, MetadataError> {
            let config = config();
            let fs_dyn: Arc<dyn Fs> = fs.clone();
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_700_000_000_000));
            let logs =
                LogManager::open(config.log_manager_config(), fs_dyn.clone(), clock.clone())?;
            let metadata = MetadataStore::open(&config, fs_dyn.clone())?;
            let replicas = ReplicaManager::new();
            metadata.load_logs(&logs, &replicas, &config)?;
            Ok(BrokerContext {
                config: Arc::new(config),
                metadata: Arc::new(metadata),
                replicas: Arc::new(replicas),
                logs: Arc::new(logs),
                fs: fs_dyn,
                groups: Arc::new(crate::group::GroupCoordinator::new(
                    crate::group::GroupConfig::default(),
                    clock.clone(),
                )),
                clock,
            })
        }

        fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }

        #[test]
        fn acknowledged_changes_survive_a_power_cut() {
            for seed in 0..12u64 {
                let fs = Arc::new(SimFs::new());
                let ctx = open(&fs).unwrap();
                let cluster_id = ctx.metadata.cluster_id();
                let a = ctx
                    .metadata
                    .create_topic(&ctx, "a", 3, 1, overrides(&[("retention.ms", "1000")]))
                    .unwrap();
                let b = ctx.metadata.auto_create_topic(&ctx, "b").unwrap();
                ctx.metadata.create_partitions(&ctx, "b", 4).unwrap();
                ctx.metadata
                    .alter_topic_config(&ctx, "a", overrides(&[("retention.ms", "2000")]))
                    .unwrap();
                ctx.metadata
                    .create_topic(&ctx, "gone", 1, 1, BTreeMap::new())
                    .unwrap();
                ctx.metadata.delete_topic(&ctx, "gone").unwrap();
                drop(ctx);
                fs.crash(seed);

                let ctx = open(&fs).unwrap();
                assert_eq!(ctx.metadata.cluster_id(), cluster_id, "seed {seed}");
                let a2 = ctx.metadata.topic("a").unwrap();
                assert_eq!(a2.topic_id, a.topic_id, "seed {seed}");
                assert_eq!(a2.partitions, 3);
                assert_eq!(a2.configs, overrides(&[("retention.ms", "2000")]));
                let b2 = ctx.metadata.topic("b").unwrap();
                assert_eq!((b2.topic_id, b2.partitions), (b.topic_id, 4), "seed {seed}");
                assert!(ctx.metadata.topic("gone").is_none(), "seed {seed}");
                // every partition is online again, with the topic's config
                for p in 0..4 {
                    assert!(ctx
                        .replicas
                        .get_partition(&TopicPartition::new("b", p))
                        .is_some());
                }
                let pa = ctx
                    .replicas
                    .get_partition(&TopicPartition::new("a", 2))
                    .unwrap();
                assert_eq!(pa.log().config().retention_ms, 2000);
                assert!(ctx
                    .replicas
                    .get_partition(&TopicPartition::new("gone", 0))
                    .is_none());
                // re-creating a deleted name gives a new id
                let again = ctx
                    .metadata
                    .create_topic(&ctx, "gone", 1, 1, BTreeMap::new())
                    .unwrap();
                assert_ne!(again.topic_id, a.topic_id);
            }
        }

        /// One step of the metadata-offset state machine test.
        #[derive(Clone, Debug)]
        enum Op {
            CreateTopic(u8),
            DeleteTopic(u8),
            AddPartition(u8),
            AlterTopicConfig(u8, u16),
            SetGroupConfig(u8, u16),
            ValidateOnlyGroupConfig(u8),
            /// A change whose fsync fails: not acknowledged.
            FailedCreate(u8),
            Restart,
            Crash(u64),
        }

        fn arb_op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..4u8).prop_map(Op::CreateTopic),
                (0..4u8).prop_map(Op::DeleteTopic),
                (0..4u8).prop_map(Op::AddPartition),
                (0..4u8, 1..5000u16).prop_map(|(t, v)| Op::AlterTopicConfig(t, v)),
                (0..3u8, 1..5000u16).prop_map(|(g, v)| Op::SetGroupConfig(g, v)),
                (0..3u8).prop_map(Op::ValidateOnlyGroupConfig),
                (0..4u8).prop_map(Op::FailedCreate),
                Just(Op::Restart),
                any::<u64>().prop_map(Op::Crash),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            /// The metadata offset (high watermark) advances by exactly one
            /// per acknowledged change, not at all for refused, failed or
            /// validate-only ones, and survives restarts and power cuts
            /// unchanged; the leader epoch grows by one per start.
            #[test]
            fn metadata_offset_counts_committed_changes_across_restarts(
                ops in proptest::collection::vec(arb_op(), 1..14)
            ) {
                let fs = Arc::new(SimFs::new());
                let mut ctx = open(&fs).unwrap();
                let mut expected = 0i64;
                let mut epoch = 1;
                prop_assert_eq!(ctx.metadata.high_watermark(), Offset(0));
                prop_assert_eq!(ctx.metadata.leader_epoch(), LeaderEpoch(1));
                for op in ops {
                    let m = ctx.metadata.clone();
                    let committed = match &op {
                        Op::CreateTopic(t) => m
                            .create_topic(&ctx, &format!("t{t}"), 1, 1, BTreeMap::new())
                            .is_ok(),
                        Op::DeleteTopic(t) => m.delete_topic(&ctx, &format!("t{t}")).is_ok(),
                        Op::AddPartition(t) => {
                            let name = format!("t{t}");
                            match m.topic(&name) {
                                Some(topic) => m
                                    .create_partitions(&ctx, &name, topic.partitions + 1)
                                    .is_ok(),
                                None => m.create_partitions(&ctx, &name, 2).is_ok(),
                            }
                        }
                        Op::AlterTopicConfig(t, v) => m
                            .alter_topic_config(
                                &ctx,
                                &format!("t{t}"),
                                overrides(&[("retention.ms", &v.to_string())]),
                            )
                            .is_ok(),
                        Op::SetGroupConfig(g, v) => m
                            .update_group_config(
                                &format!("g{g}"),
                                false,
                                |_| Ok(overrides(&[("k", &v.to_string())])),
                                |_| Ok(()),
                                |_| {},
                            )
                            .is_ok(),
                        Op::ValidateOnlyGroupConfig(g) => {
                            m.update_group_config(
                                &format!("g{g}"),
                                true,
                                |_| Ok(overrides(&[("k", "1")])),
                                |_| Ok(()),
                                |_| {},
                            )
                            .unwrap();
                            false
                        }
                        Op::FailedCreate(t) => {
                            fs.inject(sluice_storage::Fault::once(
                                TOPICS_TMP,
                                FaultKind::SyncError(libc::EIO),
                            ));
                            let name = format!("f{t}");
                            let r = m.create_topic(&ctx, &name, 1, 1, BTreeMap::new());
                            let visible = m.topic(&name).is_some();
                            // refused when new; TopicAlreadyExists (no write) when not
                            prop_assert!(r.is_err());
                            prop_assert_eq!(visible, matches!(r, Err(MetadataError::TopicAlreadyExists(_))));
                            false
                        }
                        Op::Restart | Op::Crash(_) => {
                            ctx.logs.shutdown().unwrap();
                            drop(m);
                            drop(ctx);
                            if let Op::Crash(seed) = op {
                                fs.crash(seed);
                            }
                            ctx = open(&fs).unwrap();
                            epoch += 1;
                            false
                        }
                    };
                    if committed {
                        expected += 1;
                    }
                    prop_assert_eq!(ctx.metadata.high_watermark(), Offset(expected), "after {:?}", op);
                    prop_assert_eq!(ctx.metadata.leader_epoch(), LeaderEpoch(epoch), "after {:?}", op);
                }
            }
        }

        #[test]
        fn external_changes_take_the_next_offset_only_when_they_commit() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            let m = &ctx.metadata;
            m.create_topic(&ctx, "t", 1, 1, BTreeMap::new()).unwrap();
            let got = m.commit_external(Ok::<_, MetadataError>).unwrap();
            assert_eq!(got, Offset(2), "the change after the topic's");
            assert_eq!(m.high_watermark(), Offset(2));
            let failed: Result<(), MetadataError> =
                m.commit_external(|_| Err(MetadataError::InvalidRequest("no".into())));
            assert!(failed.is_err());
            assert_eq!(
                m.high_watermark(),
                Offset(2),
                "a failed change takes no offset"
            );
            drop(ctx);
            // Restarted: the topics file holds 1; the external file (say) 2.
            let ctx = open(&fs).unwrap();
            assert_eq!(ctx.metadata.high_watermark(), Offset(1));
            ctx.metadata.recover_offset(Offset(2));
            ctx.metadata.recover_offset(Offset(0));
            assert_eq!(ctx.metadata.high_watermark(), Offset(2), "never lowered");
            ctx.metadata.delete_topic(&ctx, "t").unwrap();
            assert_eq!(ctx.metadata.high_watermark(), Offset(3));
        }

        #[test]
        fn files_from_before_metadata_offsets_load_as_offset_zero() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            ctx.metadata
                .create_topic(&ctx, "old", 2, 1, BTreeMap::new())
                .unwrap();
            assert_eq!(ctx.metadata.high_watermark(), Offset(1));
            drop(ctx);
            let path = Path::new("/sim/data").join(TOPICS_FILE);
            let text = String::from_utf8(fs.contents(&path).unwrap()).unwrap();
            let old = text.replace("version=2\noffset 1\n", "version=1\n");
            assert_ne!(old, text);
            fs.set_contents(&path, old.as_bytes());
            let ctx = open(&fs).unwrap();
            assert_eq!(ctx.metadata.topic("old").unwrap().partitions, 2);
            assert_eq!(ctx.metadata.high_watermark(), Offset(0));
            ctx.metadata.delete_topic(&ctx, "old").unwrap();
            assert_eq!(ctx.metadata.high_watermark(), Offset(1));
        }

        #[test]
        fn directory_id_is_the_metadata_dirs_and_stays() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            let id = ctx.metadata.directory_id();
            assert_ne!(id, Uuid::nil());
            let props = String::from_utf8(
                fs.contents(&Path::new("/sim/data").join(META_PROPERTIES))
                    .unwrap(),
            )
            .unwrap();
            assert!(
                props.contains(&format!("directory.id={}\n", uuid_to_base64(id))),
                "{props}"
            );
            drop(ctx);
            assert_eq!(open(&fs).unwrap().metadata.directory_id(), id);
        }

        #[test]
        fn a_failed_fsync_is_not_acknowledged_and_changes_nothing() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            ctx.metadata
                .create_topic(&ctx, "kept", 1, 1, BTreeMap::new())
                .unwrap();
            fs.inject(sluice_storage::Fault::once(
                TOPICS_TMP,
                FaultKind::SyncError(libc::EIO),
            ));
            let err = ctx
                .metadata
                .create_topic(&ctx, "lost", 1, 1, BTreeMap::new())
                .unwrap_err();
            assert_eq!(
                err.kafka_error_code(),
                ResponseError::KafkaStorageError.code()
            );
            assert!(ctx.metadata.topic("lost").is_none());
            assert!(ctx
                .replicas
                .get_partition(&TopicPartition::new("lost", 0))
                .is_none());
            drop(ctx);
            fs.crash(7);
            let ctx = open(&fs).unwrap();
            assert!(ctx.metadata.topic("kept").is_some());
            assert!(ctx.metadata.topic("lost").is_none());
        }

        #[test]
        fn a_full_disk_refuses_topics_but_starts_serves_and_deletes() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            ctx.metadata
                .create_topic(&ctx, "big", 1, 1, BTreeMap::new())
                .unwrap();
            let big = TopicPartition::new("big", 0);
            let log = ctx.logs.get_log(&big).unwrap();
            let mut b = sluice_record::BatchBuilder::new(sluice_record::CompressionType::None);
            for _ in 0..200 {
                b.append(
                    sluice_record::Timestamp(1),
                    None,
                    Some(&[5u8; 1000][..]),
                    &[],
                )
                .unwrap();
            }
            let mut batch = b.build().unwrap();
            log.append_as_leader(&mut batch, LeaderEpoch(0)).unwrap();
            drop(log);
            let epoch = ctx.metadata.leader_epoch();
            fs.set_capacity(Some(fs.used_bytes()));

            let err = ctx
                .metadata
                .create_topic(&ctx, "eight", 8, 1, BTreeMap::new())
                .unwrap_err();
            assert!(err.is_no_space(), "{err}");
            assert_eq!(
                err.kafka_error_code(),
                ResponseError::KafkaStorageError.code()
            );
            assert!(ctx.metadata.topic("eight").is_none());
            assert!(!fs
                .list_files()
                .iter()
                .any(|p| p.to_string_lossy().contains("eight-")));
            drop(ctx);

            // Restarts on the full disk (a new leader epoch) and serves reads.
            let ctx = open(&fs).unwrap();
            assert_eq!(ctx.metadata.leader_epoch(), LeaderEpoch(epoch.0 + 1));
            assert!(ctx.metadata.topic("eight").is_none());
            let got = ctx
                .logs
                .get_log(&big)
                .unwrap()
                .read_to_vec(Offset(0), 1 << 20);
            assert_eq!(got.unwrap().len(), batch.len());
            // Deleting a topic frees the room a new one needs.
            ctx.metadata.delete_topic(&ctx, "big").unwrap();
            ctx.metadata
                .create_topic(&ctx, "eight", 8, 1, BTreeMap::new())
                .unwrap();
            drop(ctx);
            let ctx = open(&fs).unwrap();
            assert!(ctx.metadata.topic("big").is_none());
            assert_eq!(ctx.metadata.topic("eight").unwrap().partitions, 8);
            assert_eq!(fs.stats().unbacked_map_writes, 0);
        }

        #[test]
        fn topic_errors_map_to_kafka_codes() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            let m = &ctx.metadata;
            let code = |r: Result<TopicMetadata, MetadataError>| r.unwrap_err().kafka_error_code();
            m.create_topic(&ctx, "t", -1, -1, BTreeMap::new()).unwrap();
            assert_eq!(m.topic("t").unwrap().partitions, 2, "num.partitions");
            assert_eq!(code(m.create_topic(&ctx, "t", 1, 1, BTreeMap::new())), 36);
            assert_eq!(code(m.create_topic(&ctx, "u", 0, 1, BTreeMap::new())), 37);
            assert_eq!(code(m.create_topic(&ctx, "u", 1, 2, BTreeMap::new())), 38);
            assert_eq!(
                code(m.create_topic(&ctx, "u", 1, 1, overrides(&[("x", "1")]))),
                40
            );
            assert_eq!(
                code(m.create_topic(&ctx, "../u", 1, 1, BTreeMap::new())),
                17
            );
            assert_eq!(code(m.create_partitions(&ctx, "t", 1)), 37);
            assert_eq!(code(m.create_partitions(&ctx, "nope", 5)), 3);
            assert_eq!(code(m.delete_topic(&ctx, "nope")), 3);
            assert_eq!(
                code(m.alter_topic_config(&ctx, "t", overrides(&[("retention.ms", "x")]))),
                40
            );
            // nothing of the failed calls was created
            assert_eq!(m.topics().len(), 1);
        }

        #[test]
        fn a_stored_override_this_build_rejects_does_not_prevent_start() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            ctx.metadata
                .create_topic(&ctx, "t", 1, 1, overrides(&[("retention.ms", "1000")]))
                .unwrap();
            drop(ctx);
            // a topics file as a newer version might have written it
            let path = Path::new("/sim/data").join(TOPICS_FILE);
            let text = String::from_utf8(fs.contents(&path).unwrap()).unwrap();
            let text = text.replace(
                "config retention.ms 1000\n",
                "config retention.ms 1000\nconfig future.key 1\n",
            );
            assert!(text.contains("future.key"), "{text}");
            fs.set_contents(&path, text.as_bytes());
            let ctx = open(&fs).unwrap();
            let p = ctx
                .replicas
                .get_partition(&TopicPartition::new("t", 0))
                .unwrap();
            assert_eq!(
                p.log().config().retention_ms,
                1000,
                "valid overrides still apply"
            );
        }

        #[test]
        fn stray_partition_dirs_are_deleted_and_node_id_is_checked() {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            ctx.metadata
                .create_topic(&ctx, "t", 1, 1, BTreeMap::new())
                .unwrap();
            // a log the metadata does not know (e.g. its deletion was persisted but not done)
            ctx.logs
                .get_or_create_log(&TopicPartition::new("stray", 0), LogConfig::default())
                .unwrap();
            ctx.logs.shutdown().unwrap();
            drop(ctx);
            let ctx = open(&fs).unwrap();
            assert!(ctx
                .replicas
                .get_partition(&TopicPartition::new("stray", 0))
                .is_none());
            assert!(ctx
                .replicas
                .get_partition(&TopicPartition::new("t", 0))
                .is_some());
            assert!(
                !ctx.fs.exists(Path::new("/sim/data/stray-0")),
                "stray log removed from service"
            );
            drop(ctx);

            let other =
                BrokerConfig::with_overrides(&[("log.dirs", "/sim/data"), ("node.id", "2")])
                    .unwrap();
            let fs_dyn: Arc<dyn Fs> = fs.clone();
            let err = MetadataStore::open(&other, fs_dyn).unwrap_err();
            assert!(matches!(
                err,
                MetadataError::NodeIdMismatch {
                    found: 1,
                    configured: 2,
                    ..
                }
            ));
        }
    }

    fn arb_topic() -> impl Strategy<Value = TopicMetadata> {
        (
            "[a-zA-Z0-9._-]{1,40}",
            any::<u128>(),
            1..1000i32,
            proptest::collection::btree_map("[a-z.]{1,20}", "\\PC{0,30}", 0..4),
        )
            .prop_filter("not . or ..", |(n, ..)| n != "." && n != "..")
            .prop_map(|(name, id, partitions, configs)| TopicMetadata {
                name,
                topic_id: Uuid::from_u128(id),
                partitions,
                configs,
            })
    }

    proptest! {
        #[test]
        fn topics_file_round_trips(
            topics in proptest::collection::vec(arb_topic(), 0..8),
            offset in 0..i64::MAX,
        ) {
            let map: BTreeMap<String, TopicMetadata> =
                topics.into_iter().map(|t| (t.name.clone(), t)).collect();
            let text = encode_topics(&map, Offset(offset));
            let back = decode_topics(Path::new("t"), &text).unwrap();
            prop_assert_eq!(back, (map, Offset(offset)));
        }

        #[test]
        fn truncated_topics_file_is_detected(topics in proptest::collection::vec(arb_topic(), 1..5), cut in 0.0f64..1.0) {
            let map: BTreeMap<String, TopicMetadata> =
                topics.into_iter().map(|t| (t.name.clone(), t)).collect();
            let text = encode_topics(&map, Offset(12));
            let at = ((text.len() - 1) as f64 * cut) as usize;
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
            // a cut anywhere but after the final newline loses the end line
            prop_assert!(decode_topics(Path::new("t"), &text[..at]).is_err());
        }

        #[test]
        fn base64_ids_round_trip(id in any::<u128>()) {
            let id = Uuid::from_u128(id);
            prop_assert_eq!(uuid_from_base64(&uuid_to_base64(id)), Some(id));
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,200}") {
            let _ = uuid_from_base64(&s);
            let _ = decode_topics(Path::new("t"), &s);
            let _ = decode_group_configs(Path::new("g"), &s);
            let _ = decode_quorum_state(Path::new("q"), &s);
        }

        #[test]
        fn group_configs_file_round_trips(
            groups in proptest::collection::btree_map(
                "\\PC{0,20}",
                proptest::collection::btree_map("[a-z.]{1,20}", "\\PC{0,30}", 0..4),
                0..6,
            ),
            cut in 0.0f64..1.0,
            offset in 0..i64::MAX,
        ) {
            let text = encode_group_configs(&groups, Offset(offset));
            prop_assert_eq!(
                decode_group_configs(Path::new("g"), &text).unwrap(),
                (groups, Offset(offset))
            );
            let at = ((text.len() - 1) as f64 * cut) as usize;
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
            prop_assert!(decode_group_configs(Path::new("g"), &text[..at]).is_err());
        }
    }
}
