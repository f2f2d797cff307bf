//! Zero-copy Fetch response layout.
//!
//! A Fetch response is mostly record bytes that already sit in segment files. The
//! broker writes it as: encoded bytes up to a partition's records, the records straight
//! from the file (`sendfile`), the bytes up to the next partition's records, and so on.
//! [`encode_fetch_response`] produces that sequence of chunks for any Fetch version
//! v4+, byte-for-byte identical to what kafka-protocol encodes for the same response
//! with the records inlined.
//!
//! How: kafka-protocol encodes the response twice, once with every partition's records
//! null and once with every partition's records empty. The two encodings have the same
//! length and differ exactly in each partition's records length prefix (`ff ff ff ff`
//! against `00 00 00 00` in classic versions, `00` against `01` in flexible ones), so
//! the differing bytes locate each records field without any Fetch-specific offset
//! arithmetic. The real length prefix is then written there and the records follow as
//! a [`FetchChunk::Records`].

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::protocol::Encodable;

use crate::error::ProtocolError;
use crate::header::{encode_response_header, response_header_len, response_header_version};

/// The records of one partition: `len` bytes that the caller will write itself,
/// identified by `token` (for example a file slice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsRef<T> {
    pub token: T,
    pub len: usize,
}

/// One piece of an encoded Fetch response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchChunk<T> {
    /// Encoded bytes to write as they are.
    Bytes(Bytes),
    /// `len` record bytes the caller writes from `token` (e.g. with `sendfile`).
    Records { token: T, len: usize },
}

/// A complete Fetch response frame as chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLayout<T> {
    /// The frame in order. The first chunk starts with the 4-byte size prefix and the
    /// response header. Partitions with zero-length records get no `Records` chunk.
    pub chunks: Vec<FetchChunk<T>>,
    /// The value of the size prefix: every byte of the frame after the prefix.
    pub frame_size: usize,
}

/// Encode a Fetch response (`version` 4 or later) whose records are written by the
/// caller.
///
/// `records` holds one entry per partition, in the order of `response.responses` and
/// then each topic's `partitions`: `None` for null records, `Some` for records of a given
/// length. The `records` fields inside `response` are ignored.
pub fn encode_fetch_response<T>(
    correlation_id: i32,
    version: i16,
    mut response: FetchResponse,
    records: Vec<Option<RecordsRef<T>>>,
) -> Result<FetchLayout<T>, ProtocolError> {
    let err = |message: String| ProtocolError::Encode {
        what: "Fetch",
        version,
        message,
    };
    if version < 4 {
        return Err(err("fetch layout needs version 4 or later".into()));
    }
    let partitions: usize = response.responses.iter().map(|t| t.partitions.len()).sum();
    if records.len() != partitions {
        return Err(err(format!(
            "{} records entries for {partitions} partitions",
            records.len()
        )));
    }
    let flexible = response_header_version(ApiKey::Fetch, version) == 1;
    let (null_marker, empty_marker): (&[u8], &[u8]) = if flexible {
        (&[0x00], &[0x01])
    } else {
        (&[0xff; 4], &[0x00; 4])
    };

    let encode = |resp: &FetchResponse| -> Result<BytesMut, ProtocolError> {
        let size = resp.compute_size(version).map_err(|e| err(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(size);
        resp.encode(&mut buf, version)
            .map_err(|e| err(e.to_string()))?;
        Ok(buf)
    };
    set_all_records(&mut response, None);
    let with_null = encode(&response)?;
    set_all_records(&mut response, Some(Bytes::new()));
    let with_empty = encode(&response)?;
    if with_null.len() != with_empty.len() {
        return Err(err(
            "null and empty records encode to different lengths".into()
        ));
    }

    // Positions of each partition's records length prefix.
    let m = null_marker.len();
    let mut positions = Vec::with_capacity(partitions);
    let mut i = 0;
    while i < with_null.len() {
        if with_null[i] == with_empty[i] {
            i += 1;
            continue;
        }
        if with_null.get(i..i + m) != Some(null_marker)
            || with_empty.get(i..i + m) != Some(empty_marker)
        {
            return Err(err(format!("unexpected difference at byte {i}")));
        }
        positions.push(i);
        i += m;
    }
    if positions.len() != partitions {
        return Err(err(format!(
            "found {} records fields for {partitions} partitions",
            positions.len()
        )));
    }

    // Length prefix of each partition's records, and the frame size they give.
    let header_version = response_header_version(ApiKey::Fetch, version);
    let mut prefixes = Vec::with_capacity(partitions);
    let mut frame_size = response_header_len(header_version) + with_empty.len();
    for rec in &records {
        let mut prefix = [0u8; 5];
        let n = match rec {
            None => {
                prefix[..m].copy_from_slice(null_marker);
                m
            }
            Some(RecordsRef { len, .. }) if flexible => {
                let n = u32::try_from(*len)
                    .ok()
                    .and_then(|l| l.checked_add(1))
                    .ok_or_else(|| err(format!("records of {len} bytes too long")))?;
                put_uvarint(&mut prefix, n)
            }
            Some(RecordsRef { len, .. }) => {
                let n = i32::try_from(*len)
                    .map_err(|_| err(format!("records of {len} bytes too long")))?;
                prefix[..4].copy_from_slice(&n.to_be_bytes());
                4
            }
        };
        let len = rec.as_ref().map_or(0, |r| r.len);
        frame_size = frame_size
            .checked_add(n + len - m)
            .ok_or_else(|| err("response size overflows".into()))?;
        prefixes.push((prefix, n));
    }
    let size = i32::try_from(frame_size)
        .map_err(|_| err(format!("response of {frame_size} bytes exceeds i32::MAX")))?;

    let mut chunks = Vec::new();
    let mut cur =
        BytesMut::with_capacity(4 + frame_size.min(with_empty.len() + 5 * partitions + 9));
    cur.put_i32(size);
    encode_response_header(&mut cur, correlation_id, header_version);
    let mut last = 0;
    for ((pos, rec), (prefix, n)) in positions.into_iter().zip(records).zip(prefixes) {
        cur.extend_from_slice(&with_empty[last..pos]);
        cur.extend_from_slice(&prefix[..n]);
        last = pos + m;
        if let Some(RecordsRef { token, len }) = rec {
            if len > 0 {
                chunks.push(FetchChunk::Bytes(std::mem::take(&mut cur).freeze()));
                chunks.push(FetchChunk::Records { token, len });
            }
        }
    }
    cur.extend_from_slice(&with_empty[last..]);
    if !cur.is_empty() {
        chunks.push(FetchChunk::Bytes(cur.freeze()));
    }
    Ok(FetchLayout { chunks, frame_size })
}

fn set_all_records(response: &mut FetchResponse, value: Option<Bytes>) {
    for topic in &mut response.responses {
        for p in &mut topic.partitions {
            p.records = value.clone();
        }
    }
}

/// Write `v` as an unsigned varint into `out`, returning its length (at most 5).
fn put_uvarint(out: &mut [u8; 5], mut v: u32) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}
