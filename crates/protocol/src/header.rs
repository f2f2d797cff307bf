//! Request header parsing (v1–v2; v0 only existed for ControlledShutdown v0, which Kafka 4
//! removed) and response header encoding (v0/v1), with Kafka's header-version mapping.

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::error::ProtocolError;
use crate::schema::is_flexible;
use crate::validate::walk_header;

/// The request header version a client uses for `api_version` of `api_key`: 2 for
/// flexible versions, 1 otherwise. Versions newer than the spec knows follow the
/// same rule (flexible versions are open-ended), which is how an ApiVersions request
/// newer than the broker still has a readable header.
pub fn request_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if is_flexible(api_key as i16, api_version).unwrap_or(false) {
        2
    } else {
        1
    }
}

/// The response header version for `api_version` of `api_key`: 1 for flexible
/// versions, 0 otherwise, and always 0 for ApiVersions (so a client can read the
/// answer before it knows which versions the broker speaks).
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        return 0;
    }
    if is_flexible(api_key as i16, api_version).unwrap_or(false) {
        1
    } else {
        0
    }
}

/// A parsed request header and where the body starts in the frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedHeader {
    /// The header as kafka-protocol represents it. `client_id` is decoded leniently
    /// (invalid UTF-8 replaced), as Kafka's Java reader does; header tagged fields are
    /// validated and skipped (Kafka defines none).
    pub header: RequestHeader,
    pub api_key: ApiKey,
    /// Length of the header in the frame; the body starts here.
    pub header_len: usize,
}

/// Read the fixed start of a request: api key, api version, correlation id. Works for
/// any frame of at least 8 bytes, whatever the api key.
pub fn peek_request_ids(frame: &[u8]) -> Result<(i16, i16, i32), ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::HeaderTruncated { len: frame.len() });
    }
    Ok((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    ))
}

/// Parse the request header at the start of `frame` (the bytes after the size prefix).
///
/// Errors: [`ProtocolError::HeaderTruncated`] when not even the correlation id is there,
/// [`ProtocolError::UnknownApiKey`] for an api key Kafka does not define,
/// [`ProtocolError::Malformed`] (with the correlation id) for a bad client id or tagged
/// fields. The version is not checked here; see [`crate::decode_request`].
pub fn parse_request_header(frame: &[u8]) -> Result<ParsedHeader, ProtocolError> {
    let (key, api_version, correlation_id) = peek_request_ids(frame)?;
    let api_key = ApiKey::try_from(key)
        .ok()
        .filter(|_| crate::schema::request_schema(key).is_some())
        .ok_or(ProtocolError::UnknownApiKey {
            api_key: key,
            correlation_id,
        })?;
    let header_version = request_header_version(api_key, api_version);
    let header_len = walk_header(frame, header_version).map_err(|e| {
        let mut err = e.into_error("RequestHeader", header_version);
        if let ProtocolError::Malformed {
            correlation_id: c, ..
        } = &mut err
        {
            *c = Some(correlation_id);
        }
        err
    })?;
    // The walker has checked the client id: int16 length (-1 = null) and its bytes.
    let len = i16::from_be_bytes([frame[8], frame[9]]);
    let client_id = if len < 0 {
        None
    } else {
        let raw = &frame[10..10 + len as usize];
        Some(StrBytes::from_string(
            String::from_utf8_lossy(raw).into_owned(),
        ))
    };
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id);
    Ok(ParsedHeader {
        header,
        api_key,
        header_len,
    })
}

/// Append a response header of `header_version` (0: correlation id; 1: correlation id
/// and an empty tagged-field section) to `buf`.
pub fn encode_response_header<B: BufMut>(buf: &mut B, correlation_id: i32, header_version: i16) {
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0);
    }
}

/// Encoded size of a response header of `header_version`.
pub fn response_header_len(header_version: i16) -> usize {
    if header_version >= 1 {
        5
    } else {
        4
    }
}

/// A response header as bytes.
pub fn response_header_bytes(correlation_id: i32, header_version: i16) -> Bytes {
    let mut v = Vec::with_capacity(5);
    encode_response_header(&mut v, correlation_id, header_version);
    Bytes::from(v)
}
