//! The transaction coordinator (KIP-98, KIP-890), Kafka's
//! `TransactionCoordinator`, `TransactionStateManager` and
//! `TransactionMarkerChannelManager`:
//!
//! - [`records`]: what `__transaction_state` stores for each
//!   transactional id; [`state`] and [`metadata`]: how a transaction's
//!   state may move (prepare, write, complete); [`load`]: replaying a
//!   partition;
//! - [`state_manager`]: the `__transaction_state` partitions this broker
//!   leads, their transactional ids, and the one write path (append,
//!   then wait for the ISR);
//! - [`coordinator`]: InitProducerId with a transactional id,
//!   AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, and the aborts of
//!   timed-out transactions;
//! - [`admin`]: DescribeTransactions and ListTransactions;
//! - [`markers`]: writing the commit/abort markers to every partition of
//!   an ended transaction (this broker's partitions directly, other
//!   brokers' with WriteTxnMarkers), then the transaction's completion.
//!
//! A transactional id lives in partition
//! [`crate::coordinator::partition_for`] of `__transaction_state`, so
//! Kafka and Sluice agree on every coordinator.

pub mod admin;
pub mod config;
pub mod coordinator;
mod end;
pub mod load;
pub mod local_markers;
pub mod marker_writer;
pub mod markers;
pub mod metadata;
pub mod peer;
pub mod records;
pub mod state;
pub mod state_manager;
mod verify;

pub use config::TransactionConfig;
pub use coordinator::TransactionCoordinator;
pub use metadata::{Refusal, TransactionMetadata, TransactionVersion, Transition};
pub use records::TransactionLogValue;
pub use state::TransactionState;
pub use verify::LeaderAsk;

/// The `tracing` target of the per-stage timings of a transaction's end
/// (debug events: `RUST_LOG=sluice_broker::txn::stages=debug`): EndTxn's
/// prepare write and answer, the marker job's queueing, marker writes and
/// completion, and a local marker append's hand-offs.
pub const STAGES: &str = "sluice_broker::txn::stages";

/// The internal topic of transaction states.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Why a transaction request failed: one Kafka error code each
/// ([`TxnError::code`]), put on the wire by the handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("this broker is not the transactional id's coordinator")]
    NotCoordinator,
    #[error("the coordinator is loading the transactional id's partition of __transaction_state")]
    CoordinatorLoadInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("another change of the transaction is in progress")]
    ConcurrentTransactions,
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the producer id does not belong to the transactional id")]
    InvalidProducerIdMapping,
    #[error("the request does not fit the transaction's state")]
    InvalidTxnState,
    #[error("transaction.timeout.ms is larger than transaction.max.timeout.ms, or not positive")]
    InvalidTransactionTimeout,
    #[error("invalid request")]
    InvalidRequest,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    #[error("the transaction state could not be written")]
    UnknownServerError,
    #[error("no such transactional id")]
    TransactionalIdNotFound,
    #[error("the regular expression is not valid")]
    InvalidRegularExpression,
}

impl TxnError {
    /// The Kafka error code.
    pub fn code(self) -> i16 {
        match self {
            TxnError::UnknownServerError => -1,
            TxnError::UnknownTopicOrPartition => 3,
            TxnError::CoordinatorLoadInProgress => 14,
            TxnError::CoordinatorNotAvailable => 15,
            TxnError::NotCoordinator => 16,
            TxnError::InvalidRequest => 42,
            TxnError::InvalidTxnState => 48,
            TxnError::InvalidProducerIdMapping => 49,
            TxnError::InvalidTransactionTimeout => 50,
            TxnError::ConcurrentTransactions => 51,
            TxnError::OperationNotAttempted => 55,
            TxnError::ProducerFenced => 90,
            TxnError::TransactionalIdNotFound => 105,
            TxnError::InvalidRegularExpression => 128,
        }
    }
}

/// `Some(e)` -> e's code, `None` -> 0.
pub fn error_code(e: Option<TxnError>) -> i16 {
    e.map_or(0, TxnError::code)
}

/// `e`'s code for a request of `version`: clients older than
/// `fenced_since` do not know PRODUCER_FENCED and get
/// INVALID_PRODUCER_EPOCH instead, as Kafka answers them.
pub fn fenced_code(e: TxnError, version: i16, fenced_since: i16) -> i16 {
    if e == TxnError::ProducerFenced && version < fenced_since {
        47
    } else {
        e.code()
    }
}

/// The transaction coordinator of a broker, wired to its partitions, its
/// image, its controller channel and its way to other brokers.
pub fn build(
    config: &crate::config::BrokerConfig,
    state: std::sync::Arc<state_manager::TransactionStateManager>,
    services: &crate::metadata::MetadataServices,
    replicas: std::sync::Arc<crate::partition::ReplicaManager>,
    groups: std::sync::Arc<crate::group::GroupCoordinator>,
) -> std::sync::Arc<TransactionCoordinator> {
    use std::sync::Arc;
    use std::time::Duration;
    let timeout = Duration::from_millis(state.config().request_timeout_ms.max(1) as u64);
    let listener = crate::replica_fetcher::ReplicaFetcherConfig::from_broker(config).listener_name;
    let local = Arc::new(local_markers::ReplicaMarkers::new(
        replicas, groups, timeout,
    ));
    let peers = Arc::new(peer::Peers::new(
        sluice_metadata::BrokerId(config.node_id),
        services.cache.clone(),
        services.connector.clone(),
        listener,
        timeout,
    ));
    let writer = Arc::new(marker_writer::BrokerMarkerWriter::new(peers.clone(), local));
    let markers = Arc::new(markers::MarkerChannel::new(
        writer,
        services.cache.clone(),
        state.clone(),
    ));
    Arc::new(TransactionCoordinator::new(
        state,
        markers,
        services.controller.clone(),
        peers,
    ))
}
