//! The crate's one error type, [`ControllerError`]. Its variants carry
//! Kafka's meanings (the broker maps each to the Kafka error code of the
//! same name); no Kafka error code appears in this crate.
//!
//! A request that names several items (topics, partitions, resources)
//! gets one `Result` per item; a whole-request failure (this node is not
//! the active controller, the metadata log failed) is the outer error.

use sluice_metadata::BrokerId;
use uuid::Uuid;

use crate::log::{LeaderAndEpoch, LogError};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// INVALID_TOPIC_EXCEPTION: an illegal name, or one that collides with
    /// an existing topic's once '.' and '_' are identified.
    #[error("{0}")]
    InvalidTopic(String),
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("{0}")]
    UnknownTopicOrPartition(String),
    /// UNKNOWN_TOPIC_ID.
    #[error("Topic id {0} does not exist.")]
    UnknownTopicId(Uuid),
    /// INVALID_CONFIG.
    #[error("{0}")]
    InvalidConfig(String),
    /// POLICY_VIOLATION.
    #[error("{0}")]
    PolicyViolation(String),
    /// INVALID_REQUEST: a request that is malformed as a whole or in one
    /// item (duplicate names, both a count and an assignment, an illegal
    /// broker resource name ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// NOT_CONTROLLER: this node is not the active controller; the
    /// leader and epoch it knows of (the caller forwards there or retries).
    #[error("this node is not the active controller (leader {:?} at epoch {})", .0.leader, .0.epoch.0)]
    NotController(LeaderAndEpoch),
    /// BROKER_ID_NOT_REGISTERED.
    #[error("Broker {0} is not registered.")]
    BrokerIdNotRegistered(BrokerId),
    /// STALE_BROKER_EPOCH.
    #[error("Broker {broker} epoch {given} is stale (current {current}).")]
    StaleBrokerEpoch {
        broker: BrokerId,
        given: i64,
        current: i64,
    },
    /// DUPLICATE_BROKER_REGISTRATION: another incarnation of the broker
    /// holds a live session.
    #[error("Another incarnation of broker {0} is registered and alive.")]
    DuplicateBrokerRegistration(BrokerId),
    /// INCONSISTENT_CLUSTER_ID: the controller belongs to another cluster
    /// than the broker's `meta.properties` names (a remote controller's
    /// refusal of a registration; the in-process one cannot disagree).
    #[error("{0}")]
    InconsistentClusterId(String),
    /// ELECTION_NOT_NEEDED.
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE.
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE.
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    /// FENCED_LEADER_EPOCH: a request at an older leader epoch than the
    /// partition's.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// INVALID_UPDATE_VERSION: an AlterPartition based on an older
    /// partition epoch than the partition's.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// INELIGIBLE_REPLICA: an ISR member that is not registered, fenced,
    /// shutting down or at another broker epoch.
    #[error("{0}")]
    IneligibleReplica(String),
    /// NEW_LEADER_ELECTED: the change was committed but elected another
    /// leader than the one asking.
    #[error("{0}")]
    NewLeaderElected(String),
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancelled reassignment that is not
    /// in progress.
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    /// UNKNOWN_SERVER_ERROR: a condition that should not arise (producer
    /// ids exhausted, a generated record that does not replay).
    /// A SCRAM credential Kafka would not accept (UNACCEPTABLE_CREDENTIAL).
    #[error("{0}")]
    UnacceptableCredential(String),
    /// An unknown SCRAM mechanism (UNSUPPORTED_SASL_MECHANISM).
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    /// A credential to delete that does not exist (RESOURCE_NOT_FOUND).
    #[error("{0}")]
    ResourceNotFound(String),
    /// A user altered twice in one request (DUPLICATE_RESOURCE).
    #[error("{0}")]
    DuplicateResource(String),
    /// THROTTLING_QUOTA_EXCEEDED: a strict controller mutation quota
    /// (KIP-599) refused a topic while its quota group is in debt.
    #[error("The throttling quota has been exceeded.")]
    ThrottlingQuotaExceeded,
    #[error("{0}")]
    Internal(String),
    /// The metadata log refused or failed the append (NotLeader maps to
    /// NOT_CONTROLLER, Fatal and Shutdown to UNKNOWN_SERVER_ERROR /
    /// REQUEST_TIMED_OUT at the broker's discretion).
    #[error(transparent)]
    Log(#[from] LogError),
}

impl ControllerError {
    /// The same error again (answers that fan one failure out to every
    /// item of a request). `Log` errors keep their kind.
    pub fn duplicate(&self) -> ControllerError {
        use ControllerError as E;
        match self {
            E::TopicAlreadyExists(s) => E::TopicAlreadyExists(s.clone()),
            E::InvalidTopic(s) => E::InvalidTopic(s.clone()),
            E::InvalidPartitions(s) => E::InvalidPartitions(s.clone()),
            E::InvalidReplicationFactor(s) => E::InvalidReplicationFactor(s.clone()),
            E::InvalidReplicaAssignment(s) => E::InvalidReplicaAssignment(s.clone()),
            E::UnknownTopicOrPartition(s) => E::UnknownTopicOrPartition(s.clone()),
            E::UnknownTopicId(id) => E::UnknownTopicId(*id),
            E::InvalidConfig(s) => E::InvalidConfig(s.clone()),
            E::PolicyViolation(s) => E::PolicyViolation(s.clone()),
            E::InvalidRequest(s) => E::InvalidRequest(s.clone()),
            E::NotController(l) => E::NotController(*l),
            E::BrokerIdNotRegistered(b) => E::BrokerIdNotRegistered(*b),
            E::StaleBrokerEpoch {
                broker,
                given,
                current,
            } => E::StaleBrokerEpoch {
                broker: *broker,
                given: *given,
                current: *current,
            },
            E::DuplicateBrokerRegistration(b) => E::DuplicateBrokerRegistration(*b),
            E::InconsistentClusterId(s) => E::InconsistentClusterId(s.clone()),
            E::ElectionNotNeeded => E::ElectionNotNeeded,
            E::NoReassignmentInProgress => E::NoReassignmentInProgress,
            E::PreferredLeaderNotAvailable(s) => E::PreferredLeaderNotAvailable(s.clone()),
            E::EligibleLeadersNotAvailable(s) => E::EligibleLeadersNotAvailable(s.clone()),
            E::FencedLeaderEpoch(s) => E::FencedLeaderEpoch(s.clone()),
            E::InvalidUpdateVersion(s) => E::InvalidUpdateVersion(s.clone()),
            E::IneligibleReplica(s) => E::IneligibleReplica(s.clone()),
            E::NewLeaderElected(s) => E::NewLeaderElected(s.clone()),
            E::UnacceptableCredential(s) => E::UnacceptableCredential(s.clone()),
            E::UnsupportedSaslMechanism(s) => E::UnsupportedSaslMechanism(s.clone()),
            E::ResourceNotFound(s) => E::ResourceNotFound(s.clone()),
            E::DuplicateResource(s) => E::DuplicateResource(s.clone()),
            E::ThrottlingQuotaExceeded => E::ThrottlingQuotaExceeded,
            E::Internal(s) => E::Internal(s.clone()),
            E::Log(e) => E::Log(match e {
                LogError::NotLeader(l) => LogError::NotLeader(*l),
                LogError::Uncertain => LogError::Uncertain,
                LogError::TooLarge { records, bytes } => LogError::TooLarge {
                    records: *records,
                    bytes: *bytes,
                },
                LogError::Shutdown => LogError::Shutdown,
                LogError::Fatal(s) => LogError::Fatal(s.clone()),
            }),
        }
    }
}
