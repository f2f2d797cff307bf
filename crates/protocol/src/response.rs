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

/// Decode one response frame (the bytes after the size prefix) of `api_key` at
/// `version`, answering the request with `correlation_id`: the response header is
/// walked, the body checked by [`crate::validate_response_body`] against Kafka's spec
/// (every count and length bounded by the bytes that remain), and only then decoded
/// by kafka-protocol (byte fields such as Fetch records are slices of `frame`, not
/// copies). Never panics and never sizes an allocation from an unchecked length.
pub fn decode_response<T: kafka_protocol::protocol::Decodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    frame: Bytes,
) -> Result<T, ProtocolError> {
    let header_version = response_header_version(api_key, version);
    let header_len = crate::validate::walk_response_header(&frame, header_version)
        .map_err(|e| e.into_error("ResponseHeader", header_version))?;
    // The walker has seen at least the 4-byte correlation id.
    let got = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if got != correlation_id {
        return Err(ProtocolError::CorrelationMismatch {
            expected: correlation_id,
            got,
        });
    }
    let mut body = frame.slice(header_len..);
    crate::validate::validate_response_body(api_key as i16, version, &body).map_err(|mut e| {
        if let ProtocolError::Malformed {
            correlation_id: c, ..
        } = &mut e
        {
            *c = Some(correlation_id);
        }
        e
    })?;
    T::decode(&mut body, version).map_err(|e| ProtocolError::Decode {
        api_key,
        api_version: version,
        correlation_id,
        message: e.to_string(),
    })
}
