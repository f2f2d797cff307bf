//! The follower side of replication (issue 17): this broker's replica
//! fetchers, as Kafka's `ReplicaFetcherManager` / `ReplicaFetcherThread`.
//!
//! - [`manager`]: [`ReplicaFetcherManager`], the partitions this broker
//!   follows grouped by leader into `num.replica.fetchers` tasks per source
//!   broker; the metadata publisher adds and removes them ([`publish`]).
//! - [`task`]: one fetcher task: a connection to the leader's inter-broker
//!   listener ([`conn`]: ApiVersions, then Fetch v13-17 and ListOffsets,
//!   every answer a bounded frame checked against Kafka's spec before it is
//!   decoded), one incremental fetch session ([`session`], KIP-227) and the
//!   `replica.fetch.*` long poll ([`request`]).
//! - [`apply`]: what each partition's answer does to the local replica
//!   (append byte for byte, follower high watermark, DivergingEpoch
//!   truncation, out-of-range, fenced, storage errors).
//! - [`replica`]: the seam to the logs the fetcher writes
//!   ([`FollowerReplica`], [`ReplicaSource`]), so tests use fakes.
//! - [`config`]: Kafka's `replica.fetch.*`, `replica.socket.timeout.ms`
//!   and `num.replica.fetchers` keys.
//!
//! A follower never serves consumers: the handlers' leadership checks stay.
//! The network goes through the transport crate's socket seam
//! ([`sluice_transport::net::Connector`]), so a simulation can replace it.

pub mod apply;
pub mod config;
pub mod conn;
mod local;
pub mod manager;
pub mod publish;
pub mod replica;
pub mod request;
pub mod session;
pub mod task;

#[cfg(test)]
mod tests;

pub use config::ReplicaFetcherConfig;
pub use manager::{InitialFetchState, LeaderEndpoint, ReplicaFetcherManager};
pub use replica::{FollowerAppend, FollowerReplica, ReplicaSource};

use std::time::Duration;

use sluice_protocol::ProtocolError;

/// Why a fetcher's exchange with its leader failed (the fetcher backs off
/// and reconnects; partitions are not affected).
#[derive(Debug, thiserror::Error)]
pub enum FetcherError {
    #[error("{what} {address}: {source}")]
    Io {
        address: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {address} within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("refused answer from {address}: {source}")]
    Protocol {
        address: String,
        #[source]
        source: ProtocolError,
    },
    #[error("{address} answered {api} with error code {code}")]
    Rejected {
        address: String,
        api: &'static str,
        code: i16,
    },
    #[error("{address} speaks no {api} version in {min}..={max}")]
    Unsupported {
        address: String,
        api: &'static str,
        min: i16,
        max: i16,
    },
    #[error("cannot encode {0}")]
    Encode(String),
}
