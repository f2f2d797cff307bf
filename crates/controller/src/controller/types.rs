//! The requests and answers of the quorum controller, in domain types
//! (no wire types, no error codes). Names follow Kafka's request fields.

use std::collections::BTreeMap;

use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType};
use sluice_record::ProducerId;
use uuid::Uuid;

use crate::error::ControllerError;

/// Config keys with their values (`None`: null on the wire).
pub type ConfigKeys = Vec<(String, Option<String>)>;

/// One topic of a CreateTopics request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    /// -1: `num.partitions` ([`super::ControllerConfig::default_num_partitions`]).
    /// Must be -1 when `assignments` is given.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`. Must be -1 when `assignments` is
    /// given.
    pub replication_factor: i16,
    /// Explicit replica lists (partition ids 0..n-1, each once), or empty.
    pub assignments: Vec<ReplicaAssignment>,
    /// Topic config overrides; a `None` value is refused (INVALID_CONFIG).
    pub configs: ConfigKeys,
}

impl CreateTopic {
    /// A topic with the cluster's default partition count and
    /// replication factor and no overrides.
    pub fn named(name: impl Into<String>) -> Self {
        CreateTopic {
            name: name.into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        }
    }
}

/// Kafka's `CreatableReplicaAssignment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAssignment {
    pub partition: i32,
    pub replicas: Vec<BrokerId>,
}

/// What CreateTopics answers for a topic it created (or, with
/// `validate_only`, would create: then `topic_id` is the nil id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// The overrides it was created with.
    pub configs: BTreeMap<String, String>,
}

/// A topic of a DeleteTopics request: by name (v0-5) or by id (v6+).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// A deleted topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedTopic {
    pub name: String,
    pub topic_id: Uuid,
}

/// One topic of a CreatePartitions request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatePartitions {
    pub topic: String,
    /// The new total partition count.
    pub count: i32,
    /// Replica lists of the new partitions (count - current of them), or
    /// `None` to place them.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
}

/// An IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set,
    Delete,
    /// Adds values to a list-typed key (comma-separated), skipping those
    /// present.
    Append,
    /// Removes values from a list-typed key.
    Subtract,
}

/// One key change of an IncrementalAlterConfigs resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigAlteration {
    pub name: String,
    pub op: AlterConfigOp,
    pub value: Option<String>,
}

/// Kafka's `ElectionType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica if it is in the ISR and usable.
    Preferred,
    /// Elect a leader for a partition without one: from the ISR, the ELR,
    /// else any usable replica (which may lack acknowledged data; the
    /// partition is marked RECOVERING, KIP-704).
    Unclean,
}

/// The result of one partition's election.
#[derive(Debug)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    pub result: Result<(), ControllerError>,
}

/// A block of producer ids handed to a broker (AllocateProducerIds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdsBlock {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    pub first_producer_id: ProducerId,
    pub size: i32,
}

/// Validates config overrides for the controller. The broker supplies it:
/// it knows the config keys, their types and ranges, and the policies.
pub trait ConfigValidator: Send + Sync + 'static {
    /// Checks the full set of overrides `resource` would have after a
    /// change (or at creation, for a new topic). `Err` is usually
    /// [`ControllerError::InvalidConfig`] or
    /// [`ControllerError::PolicyViolation`].
    fn validate(
        &self,
        resource: &ConfigResource,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ControllerError>;

    /// For APPEND and SUBTRACT: `Some(default value as a list)` if `name`
    /// is a list-typed key of `resource_type`, `None` if it is not a list
    /// (the operation is refused with INVALID_CONFIG).
    fn list_default(&self, resource_type: ConfigResourceType, name: &str) -> Option<Vec<String>>;
}

/// Accepts every override and knows no list-typed key (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct PermissiveValidator;

impl ConfigValidator for PermissiveValidator {
    fn validate(
        &self,
        _resource: &ConfigResource,
        _configs: &BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        Ok(())
    }

    fn list_default(&self, _resource_type: ConfigResourceType, _name: &str) -> Option<Vec<String>> {
        None
    }
}
