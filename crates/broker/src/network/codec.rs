//! The broker's use of the protocol crate: frames in, responses out.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseKind};
use sluice_protocol::{
    api_versions_fallback_frame, decode_request as decode, decode_request_with,
    encode_fetch_response, encode_response as encode, supported_range, DecodedRequest, FetchChunk,
    ProtocolError, RecordsRef, ANSWERED_WITH_ERROR, SUPPORTED_APIS,
};
use sluice_storage::FileSlice;

use super::sendfile::Chunk;
use crate::handlers::fetch::FetchPlan;

/// What the connection does with one frame.
pub enum Decoded {
    Request(Box<DecodedRequest>),
    /// Answer with these bytes without calling a handler (ApiVersions in a
    /// version this broker does not speak: the v0 fallback).
    Answer(Bytes),
    /// Close the connection; the string says why, for the log.
    Reject(String),
}

pub fn decode_request(frame: Bytes) -> Decoded {
    match decode(frame.clone()) {
        Ok(d) => Decoded::Request(Box::new(d)),
        // Not advertised, but Kafka answers it with an error code
        // (handlers/unsupported.rs); outside Kafka's range it closes.
        Err(ProtocolError::UnsupportedVersion {
            api_key,
            api_version,
            ..
        }) if supported_range(ANSWERED_WITH_ERROR, api_key)
            .is_some_and(|(lo, hi)| lo <= api_version && api_version <= hi) =>
        {
            match decode_request_with(frame, ANSWERED_WITH_ERROR) {
                Ok(d) => Decoded::Request(Box::new(d)),
                Err(e) => Decoded::Reject(e.to_string()),
            }
        }
        Err(ProtocolError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => match api_versions_fallback_frame(SUPPORTED_APIS, correlation_id) {
            Ok(bytes) => Decoded::Answer(bytes),
            Err(e) => Decoded::Reject(e.to_string()),
        },
        Err(e) => Decoded::Reject(e.to_string()),
    }
}

/// The complete frame answering `header`'s request with `body`.
pub fn encode_response(
    header: &RequestHeader,
    body: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let api_key = ApiKey::try_from(header.request_api_key).map_err(|_| ProtocolError::Encode {
        what: "response",
        version: header.request_api_version,
        message: format!("unknown api key {}", header.request_api_key),
    })?;
    encode(
        api_key,
        header.correlation_id,
        header.request_api_version,
        body,
    )
}

/// A Fetch response as chunks: encoded fields, and the file slices whose
/// bytes go in between.
pub fn fetch_chunks(header: &RequestHeader, plan: FetchPlan) -> Result<Vec<Chunk>, ProtocolError> {
    let FetchPlan { response, files } = plan;
    // One entry per partition in response order; file-backed ones carry
    // their slice, the rest are empty records.
    let mut records: Vec<Vec<Option<RecordsRef<Option<FileSlice>>>>> = response
        .responses
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    p.records.as_ref().map(|r| RecordsRef {
                        token: None,
                        len: r.len(),
                    })
                })
                .collect()
        })
        .collect();
    let mut inline: Vec<(usize, usize)> = Vec::new();
    for f in files {
        if let Some(slot) = records
            .get_mut(f.topic)
            .and_then(|t| t.get_mut(f.partition))
        {
            *slot = Some(RecordsRef {
                len: f.slice.len as usize,
                token: Some(f.slice),
            });
        }
    }
    // Partitions whose records are already in memory (not from a file).
    for (ti, t) in records.iter().enumerate() {
        for (pi, r) in t.iter().enumerate() {
            if matches!(r, Some(RecordsRef { token: None, len }) if *len > 0) {
                inline.push((ti, pi));
            }
        }
    }
    let inline_bytes: Vec<Bytes> = inline
        .iter()
        .map(|&(ti, pi)| {
            response.responses[ti].partitions[pi]
                .records
                .clone()
                .unwrap_or_default()
        })
        .collect();
    let flat = records.into_iter().flatten().collect();
    let layout = encode_fetch_response(
        header.correlation_id,
        header.request_api_version,
        response,
        flat,
    )?;
    let mut inline_iter = inline_bytes.into_iter();
    let mut chunks = Vec::with_capacity(layout.chunks.len());
    for c in layout.chunks {
        chunks.push(match c {
            FetchChunk::Bytes(b) => Chunk::Bytes(b),
            FetchChunk::Records {
                token: Some(slice), ..
            } => Chunk::File(slice),
            FetchChunk::Records { token: None, .. } => {
                Chunk::Bytes(inline_iter.next().unwrap_or_default())
            }
        });
    }
    Ok(chunks)
}
