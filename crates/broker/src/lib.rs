//! Broker: the Kafka-facing server. Owns the config table, the network
//! layer (framing, pipelining, zero-copy fetch), one handler module per API,
//! the metadata path (`metadata`: the quorum controller on this node's
//! metadata log behind the `ControllerClient` seam, the broker lifecycle,
//! the loader, the publishers that apply metadata changes to broker
//! configs, logs, partitions and the group coordinator, and the image
//! cache handlers answer from), and the partitions (a `Log` plus its high
//! watermark, leader epoch and fetch waiters), the leader side of
//! replication (`replica`: followers' progress, the ISR and its changes,
//! the high watermark, the `acks=all` purgatory), and the replica fetchers
//! that make this broker a follower (`replica_fetcher`).
//!
//! Where things are:
//! - `config/`: the one config table (every broker and topic key with type,
//!   default, range, doc), dynamic broker configs (KIP-226), group configs,
//!   the cluster roles and `server.properties`.
//! - `network/`: bounded frame reading (a pool budget taken as bytes
//!   arrive), per-connection pipelining with in-order responses, the idle
//!   reaper and `max.connections`, `sendfile` writes, and `cold.rs`: a fetch
//!   range not wholly resident is prefaulted on dedicated threads first
//!   (KAFKA-7504).
//! - `handlers/`: one module per API; `unsupported.rs` answers what Kafka
//!   serves and Sluice does not with Kafka's error for an absent feature;
//!   `leadership.rs` decides which partitions this broker serves.
//! - `partition.rs`: `ReplicaManager` and `Partition` (log, high watermark,
//!   waiters); `replica/`: the leader side of ISR replication (`isr.rs` the
//!   pure rules, `leader.rs` roles and appends, `purgatory.rs`, `alter.rs`
//!   the AlterPartition sender, `selector.rs` KIP-392, `quota.rs` the
//!   replication throttles); `replica_fetcher/`: the follower side.
//! - `metadata/`: `MetadataServices` (start-up wiring and shutdown order),
//!   the controller seam and channel, the broker lifecycle, the loader and
//!   publishers, the image cache, producer ids.
//! - `group/`: the group coordinator (classic and KIP-848 groups as pure
//!   state machines, their `__consumer_offsets` records, the async layer).
//! - `txn/`: the transaction coordinator (`__transaction_state` records,
//!   states and transitions as pure code; the state partitions, the
//!   requests, markers to every partition of an ended transaction);
//!   `coordinator/`: what both coordinators share (the bounded record
//!   codec, the partition a key maps to).
//! - `metrics.rs`: Prometheus `/metrics` and `/health`.
//!
//! Storage errors and protocol errors become Kafka error codes here and
//! nowhere else.

pub mod authz;
pub mod config;
pub mod context;
pub mod coordinator;
pub mod error;
pub mod group;
pub mod handlers;
pub mod log_dir_failure;
pub mod metadata;
pub mod metrics;
pub mod network;
pub mod partition;
pub mod quota;
pub mod replica;
pub mod replica_fetcher;
pub mod request;
pub mod server;
pub mod txn;

pub use config::BrokerConfig;
pub use context::BrokerContext;
pub use error::BrokerError;
pub use server::Broker;
