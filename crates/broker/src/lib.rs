//! Broker: the Kafka-facing server. Owns the config table, the network
//! layer (framing, pipelining, zero-copy fetch), one handler module per API,
//! the topic metadata store, and the partitions (a `Log` plus its
//! high watermark and fetch waiters).
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
pub mod server;

pub use config::BrokerConfig;
pub use context::BrokerContext;
pub use error::BrokerError;
pub use server::Broker;
