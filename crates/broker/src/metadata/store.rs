//! `MetadataStore`: the single node's controller side. It validates topic
//! and group-config changes, makes them durable in the single-node files
//! (`meta.properties`, `topics.meta`, `group_configs.meta`,
//! `quorum-state`; see [`super::files`]) and then appends the same change
//! as metadata records to the node's metadata log
//! ([`super::local_log::LocalMetadataLog`]), which the loader publishes.
//! It never touches logs, partitions or the group coordinator: the
//! publishers do, from the records.
//!
//! Every change is written to a temporary file, fsynced, renamed over the
//! file and the directory fsynced — all through the [`Fs`] seam — before it
//! is appended to the metadata log (and so before it is acknowledged).
//!
//! The store is this node's single-voter metadata quorum (what DescribeQuorum
//! reports for `__cluster_metadata-0`): every committed change gets the next
//! metadata offset, written in the same file (same rename) as the change, so
//! the high watermark after a restart is the largest offset any metadata file
//! holds and never goes backwards. `quorum-state` holds the leader epoch,
//! bumped durably on every start (the node elects itself), as Kafka's
//! `quorum-state` file does for a KRaft voter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use sluice_metadata::{BrokerId, ConfigResourceType, MetadataRecord};
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{Fs, StorageError, TopicPartition};
use uuid::Uuid;

pub use super::files::MAX_GROUPS_WITH_CONFIGS;
use super::files::*;
use super::local_log::LocalMetadataLog;
use super::names::{collision_key, new_kafka_uuid, uuid_from_base64, uuid_to_base64};
use super::names::{validate_topic_name, MAX_PARTITIONS_PER_TOPIC};
use super::records;
use crate::config::{BrokerConfig, ConfigError};

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
        super::names::is_internal_topic(&self.name)
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
    /// A partition's log could not be created where the change placed it.
    #[error("log of {partition} unavailable: {message}")]
    LogUnavailable {
        partition: TopicPartition,
        message: String,
        no_space: bool,
    },
    #[error("{0}")]
    LoaderStopped(String),
}

impl MetadataError {
    /// True if the disk (or quota) is full (ENOSPC, EDQUOT).
    pub fn is_no_space(&self) -> bool {
        match self {
            MetadataError::Io { source, .. } => sluice_storage::headroom::is_no_space(source),
            MetadataError::Storage(e) => e.is_no_space(),
            MetadataError::LogUnavailable { no_space, .. } => *no_space,
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
            MetadataError::Io { .. }
            | MetadataError::Storage(_)
            | MetadataError::LogUnavailable { .. } => ResponseError::KafkaStorageError,
            MetadataError::Corrupt { .. }
            | MetadataError::NodeIdMismatch { .. }
            | MetadataError::LoaderStopped(_) => ResponseError::UnknownServerError,
        };
        e.code()
    }
}

struct Meta {
    cluster_id: String,
    /// `directory.id` of the metadata log dir (the first of `log.dirs`).
    directory_id: Uuid,
    /// This start's leader epoch of the metadata quorum.
    leader_epoch: LeaderEpoch,
}

/// The durable topic registry. Reads are lock-free of I/O; changes are
/// serialized and fsynced, then appended to the metadata log, before they
/// return.
pub struct MetadataStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    meta: Meta,
    node: BrokerId,
    /// Where committed changes go as records (the loader reads it).
    log: LocalMetadataLog,
    topics: RwLock<BTreeMap<String, TopicMetadata>>,
    /// KIP-848 group config overrides: group id -> key -> value.
    group_configs: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    /// Serializes changes (persist + append to the metadata log).
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
        let node = BrokerId(config.node_id);
        let log = LocalMetadataLog::new(node, leader_epoch);
        log.append_committed(
            records::bootstrap_records(config, directory_id, &topics, &group_configs),
            now_ms(),
        );
        Ok(MetadataStore {
            fs,
            dir,
            node,
            log,
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

    /// The metadata log this store appends its committed changes to.
    pub fn metadata_log(&self) -> LocalMetadataLog {
        self.log.clone()
    }

    /// Appends the records of a change that is durable now; returns their
    /// last offset in the metadata log (callers wait until it is published).
    fn append(&self, records: Vec<MetadataRecord>) -> Offset {
        debug_assert!(self.write_lock.is_locked());
        self.log.append_committed(records, now_ms())
    }

    /// The last offset of the metadata log (for changes that append nothing).
    fn last_appended(&self) -> Offset {
        Offset(self.log.end_offset().0 - 1)
    }

    /// Kafka-style (base64) cluster id.
    pub fn cluster_id(&self) -> String {
        self.meta.cluster_id.clone()
    }

    /// A topic as the store (the controller side) knows it.
    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.topics.read().get(name).cloned()
    }

    fn topic_by_id(&self, id: Uuid) -> Option<TopicMetadata> {
        self.topics
            .read()
            .values()
            .find(|t| t.topic_id == id)
            .cloned()
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

    /// Creates a topic: validates, persists (fsynced) and appends its
    /// records. `partitions` -1 = `num.partitions`. Returns the topic and
    /// the offset of its records in the metadata log.
    pub fn create_topic(
        &self,
        config: &BrokerConfig,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<(TopicMetadata, Offset), MetadataError> {
        let _guard = self.write_lock.lock();
        let partitions =
            self.validate_create(config, name, partitions, replication_factor, &configs)?;
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
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), topic.clone());
        self.persist(&next)?;
        *self.topics.write() = next;
        let offset = self.append(records::create_topic(&topic, self.node));
        tracing::info!(topic = %topic.name, topic_id = %uuid_to_base64(topic.topic_id), partitions, "created topic");
        Ok((topic, offset))
    }

    /// Deletes a topic: persists the removal and appends its record.
    pub fn delete_topic(&self, name: &str) -> Result<(TopicMetadata, Offset), MetadataError> {
        let _guard = self.write_lock.lock();
        let mut next = self.topics.read().clone();
        let topic = next
            .remove(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.persist(&next)?;
        *self.topics.write() = next;
        let offset = self.append(records::remove_topic(topic.topic_id));
        tracing::info!(topic = %topic.name, topic_id = %uuid_to_base64(topic.topic_id), "deleting topic");
        Ok((topic, offset))
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
        name: &str,
        new_total: i32,
    ) -> Result<(TopicMetadata, Offset), MetadataError> {
        let _guard = self.write_lock.lock();
        let mut topic = self.validate_create_partitions(name, new_total)?;
        let old = topic.partitions;
        topic.partitions = new_total;
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), topic.clone());
        self.persist(&next)?;
        *self.topics.write() = next;
        let offset = self.append(
            (old..new_total)
                .map(|p| records::partition_record(topic.topic_id, p, self.node))
                .collect(),
        );
        tracing::info!(topic = %name, from = old, to = new_total, "added partitions");
        Ok((topic, offset))
    }

    /// The group config overrides as the store knows them.
    fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.group_configs
            .read()
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Read-modify-write of a group's config overrides: `f` computes the new
    /// set from the current one, `validate` checks it; unless `validate_only`
    /// the result is persisted and appended as GROUP config records.
    pub fn update_group_config(
        &self,
        group_id: &str,
        validate_only: bool,
        f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
        validate: impl FnOnce(&BTreeMap<String, String>) -> Result<(), MetadataError>,
    ) -> Result<(BTreeMap<String, String>, Offset), MetadataError> {
        let _guard = self.write_lock.lock();
        let current = self.group_configs(group_id);
        let next_configs = f(&current)?;
        validate(&next_configs)?;
        if validate_only {
            return Ok((next_configs, self.last_appended()));
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
        let offset = self.append(records::config_changes(
            ConfigResourceType::Group,
            group_id,
            &current,
            &next_configs,
        ));
        Ok((next_configs, offset))
    }

    /// Read-modify-write of a topic's config overrides under the metadata
    /// lock (IncrementalAlterConfigs): `f` maps the current overrides to the
    /// new ones, which are validated and, unless `validate_only`, stored
    /// durably and appended as TOPIC config records.
    pub fn update_topic_config(
        &self,
        config: &BrokerConfig,
        name: &str,
        validate_only: bool,
        f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
    ) -> Result<(TopicMetadata, Offset), MetadataError> {
        let _guard = self.write_lock.lock();
        let mut topic = self
            .topic(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let configs = f(&topic.configs)?;
        config.topic_log_config(&configs)?;
        let before = std::mem::replace(
            &mut topic.configs,
            configs
                .into_iter()
                .map(|(k, v)| (k, v.trim().to_string()))
                .collect(),
        );
        if validate_only {
            return Ok((topic, self.last_appended()));
        }
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), topic.clone());
        self.persist(&next)?;
        *self.topics.write() = next;
        let offset = self.append(records::config_changes(
            ConfigResourceType::Topic,
            name,
            &before,
            &topic.configs,
        ));
        Ok((topic, offset))
    }
}

/// Wall-clock milliseconds, for the append time of metadata batches
/// (informational only).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
