//! The controller layer of the cluster (issue 16): the replicated metadata
//! log behind one seam, and the quorum controller that turns requests into
//! metadata records and answers only after they commit.
//!
//! - [`log`]: the seam. [`MetadataLog`] is what every node sees of the
//!   metadata log (`__cluster_metadata-0`): who leads it at which epoch,
//!   an append that returns only once its batch is committed, and an
//!   ordered stream of committed batches and snapshots for whoever builds
//!   the [`sluice_metadata::MetadataImage`]. It has two sides: the
//!   single-voter log (one node, its own controller, committed when
//!   durable on its disk) and the openraft quorum (committed when durable
//!   on a majority of voters). Code above the seam cannot tell them apart.
//! - [`raft`]: the openraft quorum ([`raft::RaftMetadataLog`], as a voter
//!   or as an observer that follows the log without voting, for
//!   broker-only nodes): log storage and state machine on the storage
//!   crate's `Fs` seam, the internal RPC
//!   between voters on a transport seam (tokio TCP, or turmoil in
//!   simulations).
//! - [`single_voter`]: [`SingleVoterLog`], the seam for a node that is its
//!   own only voter: `__cluster_metadata-0` on disk as Kafka lays it out
//!   (storage log, `quorum-state`, `.checkpoint` snapshots).
//! - [`controller`]: [`QuorumController`], the active controller's
//!   operations (topics, partitions, configs, elections, producer ids,
//!   broker registration, heartbeats and fencing) over any
//!   [`MetadataLog`], answering only after commit; errors are
//!   [`ControllerError`] ([`error`]).
//! - [`client`]: [`client::ControllerClient`], the seam a broker calls the
//!   active controller through (committed answers with the metadata offset
//!   to wait for), implemented here for the in-process
//!   `Arc<QuorumController>` and in sluice-transport for a remote one. Not
//!   re-exported at the root: in scope, its methods would shadow
//!   `QuorumController`'s own on an `Arc<QuorumController>` for code that
//!   imports this crate with `*`.
//! - [`testing`] (hidden): the seam's conformance suite
//!   ([`testing::run_conformance`]) and [`testing::MemoryLog`] for tests
//!   above the seam.
//!
//! Invariants of the seam (each implementation's conformance tests check
//! them):
//! - **Committed means durable where it counts.** An append resolves `Ok`
//!   only after its batch is fsynced on a majority of voters (one, for the
//!   single voter); a listener never sees an uncommitted batch.
//! - **One order for everyone.** Every listener on every node sees the
//!   same batches with the same offsets and epochs in the same order;
//!   offsets are consecutive per record, epochs never go back.
//! - **An append is all or nothing.** A batch's records commit together at
//!   consecutive offsets, or none of them does.
//! - **Fail loudly.** A storage error on the metadata log is fatal
//!   ([`LogError::Fatal`]): the node stops rather than serve a state it
//!   cannot trust.

pub mod client;
pub mod controller;
pub mod error;
pub mod log;
pub mod quota;
pub mod raft;
pub mod single_voter;
#[doc(hidden)]
pub mod testing;

pub use controller::{
    AclCreateResults, AclDeleteResults, AlterConfigOp, AlterPartitionItem, AlterPartitionReply,
    AlterPartitionRequest, AlterPartitionResult, BrokerHeartbeat, BrokerRegistrationRequest,
    ConfigAlteration, ConfigKeys, ConfigValidator, ControllerConfig, CreatePartitions, CreateTopic,
    CreatedTopic, DeletedTopic, ElectionResult, ElectionType, FeatureUpdate, HeartbeatReply,
    OngoingReassignment, PartitionState, PermissiveValidator, ProducerIdsBlock, QuorumController,
    ReassignPartition, ReassignmentResult, RegisteredBroker, ReplicaAssignment, ScramDeletion,
    ScramResults, ScramUpsertion, TopicRef, UpgradeType, MAX_ACL_RECORDS_PER_REQUEST,
    MAX_SCRAM_ITERATIONS,
};
pub use controller::{QuotaAlteration, QuotaEntityPairs, QuotaResults};
pub use controller::{SessionExpiry, RECENT_EXPIRIES};
pub use error::ControllerError;
pub use log::{
    BoxFuture, CommittedBatch, LeaderAndEpoch, LogError, LogEvent, LogListener, MetadataLog,
    NodeId, QuorumInfo, VoterState,
};
pub use quota::mutation::{MutationRequester, Throttled};
pub use single_voter::{SingleVoterConfig, SingleVoterLog, SnapshotId};
