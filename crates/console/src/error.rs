//! The crate's error type.

use sluice_client::ClientError;

/// Why a console page could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No bootstrap broker answered.
    #[error("cannot reach the cluster at {brokers}: {source}")]
    Unreachable {
        brokers: String,
        #[source]
        source: ClientError,
    },
    /// A request to a broker failed on the wire.
    #[error("request to broker {broker} failed: {source}")]
    Client {
        broker: String,
        #[source]
        source: ClientError,
    },
    /// A broker answered with a Kafka error.
    #[error("{what}: {error}")]
    Kafka { what: String, error: String },
    /// A broker's metrics endpoint could not be read (or is another's).
    #[error("metrics of broker {broker}: {error}")]
    Metrics { broker: String, error: String },
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request's parameters are invalid.
    #[error("{0}")]
    BadRequest(String),
    /// A write was asked for but the console is read-only.
    #[error("this console is read-only; start it with --allow-writes to change the cluster")]
    WritesDisabled,
    /// A request to a loopback console named another host (DNS rebinding).
    #[error("this console answers only requests to localhost, not to host {0:?}")]
    ForeignHost(String),
    /// A form was posted from another origin.
    #[error("cross-origin form post refused")]
    CrossOrigin,
    /// Building a record batch failed.
    #[error("building the record batch: {0}")]
    Record(#[from] sluice_record::RecordError),
    /// The blocking task running a Kafka exchange died.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ConsoleError {
    /// The HTTP status this error is shown with.
    pub fn status(&self) -> u16 {
        match self {
            ConsoleError::Unreachable { .. } | ConsoleError::Client { .. } => 502,
            ConsoleError::Kafka { .. } | ConsoleError::Metrics { .. } => 502,
            ConsoleError::NotFound(_) => 404,
            ConsoleError::BadRequest(_) | ConsoleError::Record(_) => 400,
            ConsoleError::WritesDisabled
            | ConsoleError::CrossOrigin
            | ConsoleError::ForeignHost(_) => 403,
            ConsoleError::Internal(_) => 500,
        }
    }

    /// A short title for the error page.
    pub fn title(&self) -> &'static str {
        match self {
            ConsoleError::Unreachable { .. } => "Cluster unreachable",
            ConsoleError::Client { .. } => "Broker request failed",
            ConsoleError::Kafka { .. } => "The cluster refused the request",
            ConsoleError::Metrics { .. } => "Broker metrics unreadable",
            ConsoleError::NotFound(_) => "Not found",
            ConsoleError::BadRequest(_) | ConsoleError::Record(_) => "Invalid request",
            ConsoleError::WritesDisabled => "Read-only console",
            ConsoleError::CrossOrigin | ConsoleError::ForeignHost(_) => "Refused",
            ConsoleError::Internal(_) => "Internal error",
        }
    }
}
