//! Test support: starts the real `sluice` binary on an ephemeral port
//! ([`SluiceProcess`]), the pinned reference Apache Kafka
//! ([`ReferenceKafka`]) and a three-node reference Kafka cluster
//! ([`ReferenceKafkaCluster`]) for comparisons, and reads leadership with a
//! raw Metadata request ([`metadata`]). Used by integration tests of every
//! client driver and by fault tests.

pub mod cluster;
mod kafka;
mod kafka_cluster;
pub mod metadata;
mod process;

pub use cluster::{ClusterLayout, ClusterNode, SluiceCluster};
pub use kafka::ReferenceKafka;
pub use kafka_cluster::ReferenceKafkaCluster;
pub use process::{locate_sluice_binary, SluiceProcess};

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong starting or stopping a broker under test.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("cannot find the sluice binary (looked at {0:?}); build it with `cargo build -p sluice` or set SLUICE_BIN")]
    BinaryNotFound(Vec<PathBuf>),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {timeout:?}; its output:\n{output}")]
    NotReady {
        what: &'static str,
        timeout: Duration,
        output: String,
    },
    #[error("{what} exited early ({status}); its output:\n{output}")]
    Exited {
        what: &'static str,
        status: String,
        output: String,
    },
    #[error("{0} is not running")]
    NotRunning(&'static str),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
    let what = what.into();
    move |source| TestkitError::Io { what, source }
}
