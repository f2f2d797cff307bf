//! Request decoding: header, bounds-checking pass, then kafka-protocol.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};

use crate::error::ProtocolError;
use crate::header::parse_request_header;
use crate::validate::validate_request_body;
use crate::versions::{supported_range, SUPPORTED_APIS};

/// A request ready for a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

impl DecodedRequest {
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Decode one request frame (the bytes after the size prefix) for an API version in
/// [`SUPPORTED_APIS`]. See [`decode_request_with`].
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, ProtocolError> {
    decode_request_with(frame, SUPPORTED_APIS)
}

/// Decode one request frame for an API version in `supported`.
///
/// The header is parsed, the version checked against `supported`, the body walked by
/// [`validate_request_body`] against Kafka's spec, and only then decoded by
/// kafka-protocol (byte fields such as Produce records are slices of `frame`, not
/// copies). Never panics and never sizes an allocation from an unchecked length.
///
/// Errors carry the correlation id whenever the header got that far: an
/// [`ProtocolError::UnsupportedVersion`] for ApiVersions is answered with
/// [`crate::api_versions_fallback_frame`]; one for an API of [`crate::ANSWERED_WITH_ERROR`]
/// in its range is decoded with that table and answered with an error; anything else
/// should close the connection.
pub fn decode_request_with(
    frame: Bytes,
    supported: &[(ApiKey, i16, i16)],
) -> Result<DecodedRequest, ProtocolError> {
    let parsed = parse_request_header(&frame)?;
    let api_key = parsed.api_key;
    let version = parsed.header.request_api_version;
    let correlation_id = parsed.header.correlation_id;
    // Outside the advertised range, or advertised but not a version Kafka's specs (and
    // so the validation table) define, such as Produce v0-v2 that Kafka 4 still lists.
    let in_spec =
        crate::schema::request_schema(api_key as i16).is_some_and(|s| s.valid.contains(version));
    match supported_range(supported, api_key) {
        Some((lo, hi)) if lo <= version && version <= hi && in_spec => {}
        _ => {
            return Err(ProtocolError::UnsupportedVersion {
                api_key,
                api_version: version,
                correlation_id,
            })
        }
    }
    let mut body = frame.slice(parsed.header_len..);
    validate_request_body(api_key as i16, version, &body).map_err(|mut e| {
        if let ProtocolError::Malformed {
            correlation_id: c, ..
        } = &mut e
        {
            *c = Some(correlation_id);
        }
        e
    })?;
    let decoded =
        RequestKind::decode(api_key, &mut body, version).map_err(|e| ProtocolError::Decode {
            api_key,
            api_version: version,
            correlation_id,
            message: e.to_string(),
        })?;
    Ok(DecodedRequest {
        header: parsed.header,
        api_key,
        body: decoded,
    })
}
