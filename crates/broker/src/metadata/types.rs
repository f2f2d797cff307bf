//! What the broker's metadata path hands to handlers: [`TopicMetadata`]
//! (a topic as handlers see it) and [`MetadataError`] (why a metadata
//! write or read failed), each mapping to one Kafka error code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kafka_protocol::error::ResponseError;
use sluice_controller::ControllerError;
use sluice_storage::{StorageError, TopicPartition};
use uuid::Uuid;

use crate::config::ConfigError;

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

/// Errors of metadata operations; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("invalid topic name '{topic}': {reason}")]
    InvalidTopic { topic: String, reason: String },
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    /// The controller refused or failed the change (its message is Kafka's).
    #[error(transparent)]
    Controller(#[from] ControllerError),
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
            MetadataError::Controller(e) => return sluice_transport::controller_error_code(e),
            MetadataError::InvalidTopic { .. } => ResponseError::InvalidTopicException,
            MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
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
