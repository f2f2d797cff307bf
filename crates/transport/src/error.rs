//! The crate's one error type.

use std::net::SocketAddr;

use sluice_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A socket operation failed.
    #[error("{what} {addr:?}: {source}")]
    Io {
        what: &'static str,
        addr: Option<SocketAddr>,
        #[source]
        source: std::io::Error,
    },
    /// A frame or body that does not follow Kafka's protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A response that does not decode or does not match its request.
    #[error("bad response from {addr}: {message}")]
    BadResponse { addr: SocketAddr, message: String },
    /// `controller.quorum.voters` does not parse.
    #[error("invalid controller.quorum.voters '{value}': {reason}")]
    InvalidVoters { value: String, reason: String },
    /// No voter answered as the active controller within the request's
    /// deadline.
    #[error("no active controller answered within {timeout_ms} ms (last error: {last})")]
    ControllerUnavailable { timeout_ms: u64, last: String },
    /// The request or the channel was closed.
    #[error("the controller channel is shut down")]
    Shutdown,
    /// A connection that did not pass a secured listener's TLS handshake
    /// or SASL authentication.
    #[error("connection from {peer} refused: {reason}")]
    Authentication { peer: SocketAddr, reason: String },
    /// The controller answered with an error the caller must handle.
    #[error("controller answered error code {code}: {message}")]
    Rejected { code: i16, message: String },
}
