//! The crate's one error type. Decoding errors name what is wrong with the
//! bytes; replay errors name the record that does not fit the image (a
//! metadata log that produces one is corrupt or was written by a buggy
//! controller); placement errors become INVALID_REPLICATION_FACTOR or
//! INVALID_PARTITIONS at the broker edge (Kafka error codes live only in
//! `crates/broker`).

use sluice_record::Offset;
use uuid::Uuid;

use crate::types::{BrokerEpoch, BrokerId};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    // ---- decoding untrusted bytes ----
    #[error("metadata record truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed metadata record: {0}")]
    Malformed(&'static str),
    #[error("unknown metadata record frame version {0} (only 1 is supported)")]
    UnknownFrameVersion(u32),
    #[error("unknown metadata record api key {0}")]
    UnknownApiKey(u32),
    #[error("unsupported version {version} of metadata record api key {api_key}")]
    UnsupportedVersion { api_key: i16, version: u32 },
    #[error("{0} byte(s) of garbage after metadata record api key {1}")]
    TrailingBytes(usize, i16),

    // ---- encoding ----
    #[error("field {0} is too long to be serialized")]
    FieldTooLong(&'static str),

    // ---- replaying records onto an image ----
    #[error("record at offset {offset} does not follow the last applied offset {last}")]
    OffsetNotIncreasing { last: Offset, offset: Offset },
    #[error("topic id {0} does not exist")]
    UnknownTopicId(Uuid),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("topic id {0} already exists")]
    TopicIdAlreadyExists(Uuid),
    #[error("partition {partition} of topic id {topic_id} does not exist")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error("partition {partition} of topic id {topic_id}: {reason}")]
    InvalidPartition {
        topic_id: Uuid,
        partition: i32,
        reason: &'static str,
    },
    #[error("no registration of broker {broker} with epoch {epoch}")]
    UnknownBroker {
        broker: BrokerId,
        epoch: BrokerEpoch,
    },
    #[error("invalid value {value} of {field}")]
    InvalidValue { field: &'static str, value: i64 },
    /// A client quota entity Kafka would not accept (its message).
    #[error("invalid client quota entity: {0}")]
    InvalidQuotaEntity(String),
    #[error("unknown config resource type {0}")]
    UnknownConfigResourceType(i8),
    #[error("next producer id {next} does not advance past {current}")]
    ProducerIdNotIncreasing { current: i64, next: i64 },
    #[error("invalid ACL: {0}")]
    InvalidAcl(String),
    #[error("ACL id {0} already exists")]
    AclIdAlreadyExists(Uuid),
    #[error("ACL id {0} does not exist")]
    UnknownAclId(Uuid),

    // ---- replica placement ----
    #[error("invalid replication factor {requested}: {available} usable broker(s)")]
    InvalidReplicationFactor { requested: i32, available: usize },
    #[error("invalid partition count {0}")]
    InvalidPartitionCount(i32),
}
