//! The crate's error type.

use sluice_protocol::ProtocolError;

/// Why a request to a broker failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No bootstrap address was given.
    #[error("no brokers given")]
    NoBrokers,
    /// The address could not be resolved or connected to.
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection failed while sending or receiving.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The TLS session could not be set up.
    #[error("TLS to {addr}: {message}")]
    Tls { addr: String, message: String },
    /// The SASL login was refused or failed.
    #[error("SASL {login} at {addr}: {message}")]
    Sasl {
        login: String,
        addr: String,
        message: String,
    },
    /// ApiVersions failed.
    #[error("ApiVersions failed with error code {0}")]
    ApiVersions(i16),
    /// The broker speaks no version of the API this client can use.
    #[error("the broker does not support API key {api_key} in a version this tool speaks")]
    UnsupportedApi { api_key: i16 },
    /// The response frame's size prefix is negative or too large.
    #[error("invalid response size {0}")]
    ResponseSize(i64),
    /// The request could not be encoded.
    #[error("encoding request (API key {api_key}): {message}")]
    Encode { api_key: i16, message: String },
    /// The response did not pass the bounds check or did not decode.
    #[error("reading response (API key {api_key} v{version}): {source}")]
    Decode {
        api_key: i16,
        version: i16,
        #[source]
        source: ProtocolError,
    },
}
