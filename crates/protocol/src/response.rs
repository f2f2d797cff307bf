//! Response encoding: size prefix, response header, kafka-protocol body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};

use crate::error::ProtocolError;
use crate::header::{encode_response_header, response_header_version};

/// Encode a complete response frame: 4-byte size, response header (version chosen by
/// [`response_header_version`]: v0 for ApiVersions and non-flexible versions, v1
/// otherwise) and `body` encoded at `version`.
///
/// `body` must be the response of `api_key`; `version` is normally the request's
/// version (0 for the ApiVersions fallback).
pub fn encode_response(
    api_key: ApiKey,
    correlation_id: i32,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let header_version = response_header_version(api_key, version);
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0); // size, patched below
    encode_response_header(&mut buf, correlation_id, header_version);
    body.encode(&mut buf, version)
        .map_err(|e| ProtocolError::Encode {
            what: api_name(api_key),
            version,
            message: e.to_string(),
        })?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| ProtocolError::Encode {
        what: api_name(api_key),
        version,
        message: format!("response of {} bytes exceeds i32::MAX", buf.len() - 4),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

pub(crate) fn api_name(api_key: ApiKey) -> &'static str {
    crate::schema::request_schema(api_key as i16)
        .map(|s| s.name.strip_suffix("Request").unwrap_or(s.name))
        .unwrap_or("response")
}
