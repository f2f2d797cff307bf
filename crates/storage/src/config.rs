//! Domain names and per-topic configuration: `TopicPartition`, `LogConfig`
//! (Kafka 4.1 defaults and key names) and `LogManagerConfig`.

use std::fmt;
use std::path::PathBuf;

pub use sluice_record::{CompressionType, TimestampType};

/// A partition of a topic; its directory is `<topic>-<partition>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// `"orders-3"`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses `"orders-3"` (the topic may itself contain dashes). Rejects
    /// Kafka's deleted / future directory suffixes.
    pub fn from_dir_name(s: &str) -> Option<Self> {
        let (topic, part) = s.rsplit_once('-')?;
        if topic.is_empty() || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let partition: i32 = part.parse().ok()?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Effective per-topic log configuration. `Default` = Kafka 4.1 defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `segment.index.bytes`
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`
    pub index_interval_bytes: u32,
    /// `retention.ms` (-1 = forever)
    pub retention_ms: i64,
    /// `retention.bytes` (-1 = unlimited)
    pub retention_bytes: i64,
    /// `flush.messages` (1 = fsync before acknowledging)
    pub flush_messages: i64,
    /// `flush.ms`
    pub flush_ms: i64,
    /// `max.message.bytes`
    pub max_message_bytes: u32,
    /// `message.timestamp.type`
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`
    pub message_timestamp_after_max_ms: i64,
    /// `file.delete.delay.ms`
    pub file_delete_delay_ms: i64,
    /// `preallocate`. Accepted for Kafka compatibility but **not implemented
    /// yet**: segment files grow as they are written (the indexes are
    /// preallocated to `segment.index.bytes` regardless).
    pub preallocate: bool,
    /// `cleanup.policy` and the log cleaner's per-topic settings.
    pub compaction: CompactionConfig,
    /// `compression.type`: `None` for `producer` (batches are stored as
    /// received), else the codec every appended batch is stored in: a batch
    /// in another codec is re-encoded before it is written.
    pub compression: Option<CompressionType>,
}

/// `cleanup.policy`: `delete`, `compact` or `compact,delete`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    /// Parses Kafka's list syntax (`"compact,delete"`, any order, spaces ok).
    pub fn parse(s: &str) -> Option<Self> {
        let (mut compact, mut delete) = (false, false);
        for part in s.split(',').map(str::trim) {
            match part {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (true, false) => Some(CleanupPolicy::Compact),
            (false, true) => Some(CleanupPolicy::Delete),
            (false, false) => None,
        }
    }
    pub fn compact(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
    pub fn delete(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        })
    }
}

/// Per-topic log cleaner settings (Kafka 4.1 key names and defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionConfig {
    /// `cleanup.policy` (delete)
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio` (0.5)
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms` (0)
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (i64::MAX)
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms` (86400000)
    pub delete_retention_ms: i64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            file_delete_delay_ms: 60_000,
            preallocate: false,
            compaction: CompactionConfig::default(),
            compression: None,
        }
    }
}

/// Broker-wide storage settings.
#[derive(Clone, Debug)]
pub struct LogManagerConfig {
    /// `log.dirs`
    pub log_dirs: Vec<PathBuf>,
    /// Upper bound on segments of *inactive* (non-active) segments whose
    /// files are open at once (fds + index maps); least recently used ones
    /// are closed and reopened on demand. Active segments are always open.
    pub max_open_segment_files: usize,
    /// Segments recovered between two progress log lines.
    pub recovery_progress_every: usize,
    /// `producer.id.expiration.ms` and the bound on producers per partition.
    pub producer_state: crate::producer_state::ProducerStateConfig,
    /// `sluice.decompression.memory.bytes`: the broker-wide budget for
    /// decoding records ([`crate::budget`]).
    pub decompression_memory_bytes: usize,
}

impl Default for LogManagerConfig {
    fn default() -> Self {
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/tmp/sluice-logs")],
            max_open_segment_files: 1024,
            recovery_progress_every: 100,
            producer_state: Default::default(),
            decompression_memory_bytes: crate::budget::DEFAULT_DECOMPRESSION_MEMORY_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        let tp = TopicPartition::new("my-topic", 12);
        assert_eq!(tp.dir_name(), "my-topic-12");
        assert_eq!(tp.to_string(), "my-topic-12");
        assert_eq!(TopicPartition::from_dir_name("my-topic-12"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("t-"), None);
        assert_eq!(TopicPartition::from_dir_name("-1"), None);
        assert_eq!(TopicPartition::from_dir_name("t-1.abc-delete"), None);
    }
}
