//! Broker: the Kafka-facing server. Owns the config table, the network
//! layer (framing, pipelining, zero-copy fetch), one handler module per API,
//! the metadata path (`metadata`: the quorum controller on this node's
//! metadata log behind the `ControllerClient` seam, the broker lifecycle,
//! the loader, the publishers that apply metadata changes to broker
//! configs, logs, partitions and the group coordinator, and the image
//! cache handlers answer from), and the partitions (a `Log` plus its high
//! watermark, leader epoch and fetch waiters), and the replica fetchers
//! that make this broker a follower (`replica_fetcher`).
//!
//! Storage errors and protocol errors become Kafka error codes here and
//! nowhere else.

pub mod config;
pub mod context;
pub mod error;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod metrics;
pub mod network;
pub mod partition;
pub mod replica;
pub mod replica_fetcher;
pub mod server;

pub use config::BrokerConfig;
pub use context::BrokerContext;
pub use error::BrokerError;
pub use server::Broker;
