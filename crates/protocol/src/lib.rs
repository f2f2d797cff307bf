//! Kafka wire protocol for Sluice: framing, request/response headers, a bounds-checking
//! pass over every request body before the `kafka-protocol` crate decodes it, the
//! advertised API versions, and the zero-copy Fetch response layout.
//!
//! This crate owns the bytes-to-`kafka-protocol`-types edge; the broker works with
//! `kafka_protocol::messages` types and storage never sees them.
//!
//! **Why the validation pass exists**: kafka-protocol 0.18 decodes arrays with
//! `Vec::with_capacity(count)` where `count` comes from the wire, so a 7-byte Metadata
//! v12 body can make the process abort on a failed allocation. [`validate_request_body`]
//! walks the body against Kafka's own message specs (generated into `schema_gen.rs` by
//! `gen/gen_schema.py`) and rejects any count or length that does not fit in the bytes
//! remaining, and caps a request at [`MAX_REQUEST_ELEMENTS`] array elements so that
//! decoding cannot expand a request far beyond its wire size. [`decode_request`] always
//! runs it first. The same table covers responses ([`validate_response_body`], run by
//! [`decode_response`]) for a node that is a client of another, such as a follower
//! fetching from its leader.

mod error;
mod fetch;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod request;
mod response;
mod schema;
#[rustfmt::skip]
mod schema_gen;
#[cfg(test)]
mod schema_tests;
mod validate;
mod versions;

pub use error::{MalformedReason, ProtocolError};
pub use fetch::{encode_fetch_response, FetchChunk, FetchLayout, RecordsRef};
pub use frame::{parse_size_prefix, FrameReader, DEFAULT_MAX_REQUEST_BYTES, MIN_READ, READ_CHUNK};
pub use header::{
    encode_response_header, parse_request_header, peek_request_ids, request_header_version,
    response_header_bytes, response_header_len, response_header_version, ParsedHeader,
};
pub use request::{decode_request, decode_request_with, DecodedRequest};
pub use response::{decode_response, encode_response};
pub use validate::{validate_request_body, validate_response_body, MAX_REQUEST_ELEMENTS};
pub use versions::{
    api_versions_fallback_frame, api_versions_response, supported_range, with_features,
    ANSWERED_WITH_ERROR, SUPPORTED_APIS,
};

/// The kafka-protocol crate, re-exported so callers use the same version.
pub use kafka_protocol;

/// The Apache Kafka release whose message specs the validation table was generated from.
pub const SCHEMA_KAFKA_VERSION: &str = schema_gen::KAFKA_VERSION;

/// Every `(api key, min, max)` the validation table knows, for tests and fuzzing over
/// all request APIs.
pub fn schema_request_versions() -> Vec<(i16, &'static str, i16, i16)> {
    schema::all_requests()
        .iter()
        .map(|s| (s.api_key, s.name, s.valid.lo, s.valid.hi))
        .collect()
}
