//! One connection of a fetcher to its leader's inter-broker listener:
//! ApiVersions first (to pick the Fetch and ListOffsets versions both sides
//! speak), then one request at a time, each answer read as a size-bounded
//! frame and checked against Kafka's spec before kafka-protocol decodes it.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::{decode_response, request_header_version, FrameReader};
use sluice_transport::net::{BoxStream, Connector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::FetcherError;

/// Fetch versions this follower speaks: 13 (topic ids) to 17 (Kafka 4.1's
/// replica fetches; v18 only adds a field for KRaft's own replication).
pub const FETCH_VERSIONS: (i16, i16) = (13, 17);
/// ListOffsets versions: CurrentLeaderEpoch (v4) up to Kafka 4.1's v10.
pub const LIST_OFFSETS_VERSIONS: (i16, i16) = (4, 10);
const API_VERSIONS_VERSION: i16 = 3;
/// Largest ApiVersions answer accepted.
const MAX_SMALL_RESPONSE: usize = 1 << 20;

/// A connection to the leader, with the versions agreed on.
pub struct LeaderConnection {
    address: String,
    client_id: String,
    stream: BoxStream,
    next_cid: i32,
    pub fetch_version: i16,
    pub list_offsets_version: i16,
}

impl LeaderConnection {
    /// Connects to `address` and asks the leader's API versions, all within `timeout`.
    pub async fn open(
        connector: &dyn Connector,
        address: &str,
        client_id: String,
        timeout: Duration,
    ) -> Result<LeaderConnection, FetcherError> {
        let stream = tokio::time::timeout(timeout, connector.connect(address.to_string()))
            .await
            .map_err(|_| FetcherError::Timeout {
                address: address.to_string(),
                timeout,
            })?
            .map_err(|source| FetcherError::Io {
                address: address.to_string(),
                what: "connecting",
                source,
            })?;
        let mut conn = LeaderConnection {
            address: address.to_string(),
            client_id,
            stream,
            next_cid: 0,
            fetch_version: -1,
            list_offsets_version: -1,
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = conn
            .call(
                ApiKey::ApiVersions,
                API_VERSIONS_VERSION,
                &req,
                MAX_SMALL_RESPONSE,
                timeout,
            )
            .await?;
        if resp.error_code != 0 {
            return Err(conn.rejected(resp.error_code, "ApiVersions"));
        }
        let pick = |key: ApiKey, (min, max): (i16, i16)| {
            let theirs = resp.api_keys.iter().find(|k| k.api_key == key as i16)?;
            let hi = theirs.max_version.min(max);
            (hi >= theirs.min_version.max(min)).then_some(hi)
        };
        conn.fetch_version =
            pick(ApiKey::Fetch, FETCH_VERSIONS).ok_or_else(|| FetcherError::Unsupported {
                address: address.to_string(),
                api: "Fetch",
                min: FETCH_VERSIONS.0,
                max: FETCH_VERSIONS.1,
            })?;
        conn.list_offsets_version =
            pick(ApiKey::ListOffsets, LIST_OFFSETS_VERSIONS).ok_or_else(|| {
                FetcherError::Unsupported {
                    address: address.to_string(),
                    api: "ListOffsets",
                    min: LIST_OFFSETS_VERSIONS.0,
                    max: LIST_OFFSETS_VERSIONS.1,
                }
            })?;
        Ok(conn)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn rejected(&self, code: i16, api: &'static str) -> FetcherError {
        FetcherError::Rejected {
            address: self.address.clone(),
            api,
            code,
        }
    }

    /// Sends `req` and reads its answer, a frame of at most `max_frame`
    /// bytes, within `timeout`. After an error the connection is unusable.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
        max_frame: usize,
        timeout: Duration,
    ) -> Result<Resp, FetcherError> {
        let cid = self.next_cid;
        self.next_cid = (self.next_cid + 1) & i32::MAX;
        let frame = encode_request(key, version, cid, &self.client_id, req)?;
        let address = self.address.clone();
        let exchange = async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|source| FetcherError::Io {
                    address: address.clone(),
                    what: "sending",
                    source,
                })?;
            read_frame(&mut self.stream, max_frame, &address).await
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetcherError::Timeout {
                address: self.address.clone(),
                timeout,
            })??;
        decode_response(key, version, cid, answer).map_err(|source| FetcherError::Protocol {
            address: self.address.clone(),
            source,
        })
    }
}

/// A request frame: size, header, body.
fn encode_request<Req: Encodable>(
    key: ApiKey,
    version: i16,
    cid: i32,
    client_id: &str,
    req: &Req,
) -> Result<Bytes, FetcherError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(cid)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let encode_err = |e: String| FetcherError::Encode(format!("{key:?} v{version}: {e}"));
    header
        .encode(&mut buf, request_header_version(key, version))
        .map_err(|e| encode_err(e.to_string()))?;
    req.encode(&mut buf, version)
        .map_err(|e| encode_err(e.to_string()))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one size-prefixed frame of at most `max_frame` bytes: the prefix is
/// checked before anything of the frame is buffered.
async fn read_frame(
    stream: &mut BoxStream,
    max_frame: usize,
    address: &str,
) -> Result<Bytes, FetcherError> {
    let mut frames = FrameReader::new(max_frame);
    loop {
        match frames.next_frame() {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(source) => {
                return Err(FetcherError::Protocol {
                    address: address.to_string(),
                    source,
                })
            }
        }
        let n = stream
            .read_buf(frames.read_buf())
            .await
            .map_err(|source| FetcherError::Io {
                address: address.to_string(),
                what: "reading",
                source,
            })?;
        if n == 0 {
            return Err(FetcherError::Io {
                address: address.to_string(),
                what: "reading",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
    }
}
