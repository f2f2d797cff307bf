//! The crate's error type.

use kafka_protocol::messages::ApiKey;

/// Why a frame, header or body could not be read or a response could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The 4-byte size prefix is negative.
    #[error("frame size {0} is negative")]
    NegativeFrameSize(i32),

    /// The 4-byte size prefix is larger than `socket.request.max.bytes`.
    #[error("frame size {size} exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: usize, max: usize },

    /// A response frame answers another request than the one outstanding.
    #[error("response correlation id {got} does not match the request's {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },

    /// The frame is too short to hold api key, api version and correlation id.
    #[error("request header truncated: frame is {len} bytes")]
    HeaderTruncated { len: usize },

    /// The api key is not one Kafka defines (or kafka-protocol can decode).
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },

    /// The api key is known but this broker does not handle this version of it.
    #[error("unsupported version {api_version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
    },

    /// The header or body does not match Kafka's message spec for its version.
    #[error("malformed {api} v{api_version} at byte {offset} ({field}): {reason}")]
    Malformed {
        api: &'static str,
        api_version: i16,
        /// The spec field being read when the problem was found.
        field: &'static str,
        /// Offset in the body (or header) where the problem was found.
        offset: usize,
        reason: MalformedReason,
        /// Filled in when the header was already read.
        correlation_id: Option<i32>,
    },

    /// The body passed validation but kafka-protocol rejected it (for example a string
    /// that is not UTF-8).
    #[error(
        "cannot decode {api_key:?} v{api_version} (correlation id {correlation_id}): {message}"
    )]
    Decode {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        message: String,
    },

    /// A response could not be encoded (a field set that the version cannot carry,
    /// or a mismatch between the response layout and its records).
    #[error("cannot encode {what} v{version}: {message}")]
    Encode {
        what: &'static str,
        version: i16,
        message: String,
    },
}

impl ProtocolError {
    /// The request's correlation id, when the header got far enough to have one; the
    /// broker uses it to answer (UNSUPPORTED_VERSION) or to name the request in a log line.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            ProtocolError::UnknownApiKey { correlation_id, .. }
            | ProtocolError::UnsupportedVersion { correlation_id, .. }
            | ProtocolError::Decode { correlation_id, .. } => Some(*correlation_id),
            ProtocolError::Malformed { correlation_id, .. } => *correlation_id,
            _ => None,
        }
    }
}

/// What exactly is wrong in a malformed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReason {
    /// Fewer bytes remain than a fixed-size field or a declared length needs.
    #[error("needs {needed} bytes, {remaining} remain")]
    Truncated { needed: u64, remaining: usize },
    /// An array count larger than the bytes remaining (every element takes at least one).
    #[error("array count {count} exceeds the {remaining} bytes remaining")]
    ArrayTooLong { count: u64, remaining: usize },
    /// More array elements in one request than [`crate::MAX_REQUEST_ELEMENTS`].
    #[error("{0} array elements exceed the per-request limit")]
    TooManyElements(u64),
    /// A length prefix below -1 (or null where the spec does not allow it).
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// Null in a version where the field is not nullable.
    #[error("null is not allowed in this version")]
    UnexpectedNull,
    /// A string longer than Kafka's 32767-byte limit.
    #[error("string length {0} exceeds 32767")]
    StringTooLong(u64),
    /// A varint longer than 5 bytes.
    #[error("varint is longer than 5 bytes")]
    VarintTooLong,
    /// A tagged-field number above `i32::MAX`.
    #[error("tag {0} is not a valid tag number")]
    InvalidTag(u32),
    /// A nullable struct's presence byte is neither -1 nor 1.
    #[error("presence byte {0} is neither -1 nor 1")]
    InvalidPresence(i8),
    /// A known tagged field whose content does not fill its declared size exactly.
    #[error("tagged field {tag} declares {declared} bytes but its content takes {used}")]
    TaggedFieldSize {
        tag: u32,
        declared: usize,
        used: usize,
    },
    /// The request API/version is not in the schema table.
    #[error("no schema for api key {api_key} version {api_version}")]
    NoSchema { api_key: i16, api_version: i16 },
}
