//! One connection of the channel: a writer task sending request frames in
//! order, a reader task matching response frames to their callers by
//! correlation id, and the API versions the peer announced.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use sluice_protocol::{kafka_protocol, FrameReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{decode_response, encode_request, ChannelConfig};
use crate::error::TransportError;
use crate::net::Connector;
use crate::voters::QuorumVoter;

type Pending = Arc<Mutex<BTreeMap<i32, oneshot::Sender<Bytes>>>>;

/// The ApiVersions version the channel asks with (Kafka 2.4+).
const API_VERSIONS_VERSION: i16 = 3;

pub(crate) struct Conn {
    pub voter_id: i32,
    address: String,
    out: mpsc::Sender<Bytes>,
    pending: Pending,
    open: Arc<AtomicBool>,
    next_cid: AtomicI32,
    versions: Vec<(i16, i16, i16)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Conn {
    /// Connects to `voter` and asks its API versions.
    pub async fn open(
        connector: &dyn Connector,
        voter: &QuorumVoter,
        config: &ChannelConfig,
    ) -> Result<Arc<Conn>, TransportError> {
        let address = voter.address();
        let stream =
            connector
                .connect(address.clone())
                .await
                .map_err(|source| TransportError::Io {
                    what: "connecting to controller",
                    addr: address.parse().ok(),
                    source,
                })?;
        let (rd, wr) = tokio::io::split(stream);
        let pending: Pending = Arc::default();
        let open = Arc::new(AtomicBool::new(true));
        let (out, rx) = mpsc::channel(config.max_in_flight.max(1));
        let reader = tokio::spawn(read_loop(
            rd,
            pending.clone(),
            open.clone(),
            config.max_response_bytes,
            address.clone(),
        ));
        let writer = tokio::spawn(write_loop(wr, rx, open.clone()));
        let mut conn = Conn {
            voter_id: voter.id,
            address,
            out,
            pending,
            open,
            next_cid: AtomicI32::new(0),
            versions: Vec::new(),
            tasks: vec![reader, writer],
        };
        conn.versions = conn.api_versions(config).await?;
        tracing::debug!(voter = voter.id, address = %conn.address, "connected to controller");
        Ok(Arc::new(conn))
    }

    async fn api_versions(
        &self,
        config: &ChannelConfig,
    ) -> Result<Vec<(i16, i16, i16)>, TransportError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let cid = self.next_correlation_id();
        let frame = encode_request(&req, ApiKey::ApiVersions, API_VERSIONS_VERSION, cid, config)?;
        let answer = self.call(frame, cid).await?;
        let resp: ApiVersionsResponse =
            decode_response(answer, API_VERSIONS_VERSION).map_err(|m| self.bad(&m))?;
        if resp.error_code != 0 {
            return Err(TransportError::Rejected {
                code: resp.error_code,
                message: format!(
                    "ApiVersions v{API_VERSIONS_VERSION} refused by {}",
                    self.address
                ),
            });
        }
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect())
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    pub fn next_correlation_id(&self) -> i32 {
        // Wraps at i32::MAX back to 0 (never negative).
        self.next_cid.fetch_add(1, Ordering::SeqCst) & i32::MAX
    }

    /// The highest version of `key` both sides speak within `min..=max`.
    pub fn version_for(&self, key: ApiKey, min: i16, max: i16) -> Result<i16, TransportError> {
        let theirs = self.versions.iter().find(|(k, _, _)| *k == key as i16);
        match theirs {
            Some(&(_, lo, hi)) if hi.min(max) >= lo.max(min) => Ok(hi.min(max)),
            _ => Err(TransportError::Rejected {
                code: 35,
                message: format!(
                    "controller {} does not support {key:?} v{min}-{max}",
                    self.address
                ),
            }),
        }
    }

    pub fn bad(&self, message: &str) -> TransportError {
        TransportError::BadResponse {
            addr: self
                .address
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            message: format!("{} ({})", message, self.address),
        }
    }

    /// Sends `frame` (correlation id `cid`) and waits for its answer.
    pub async fn call(&self, frame: Bytes, cid: i32) -> Result<Bytes, TransportError> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(cid, tx);
        let closed = || TransportError::Io {
            what: "controller connection closed",
            addr: self.address.parse().ok(),
            source: std::io::ErrorKind::ConnectionAborted.into(),
        };
        if !self.is_open() || self.out.send(frame).await.is_err() {
            self.pending.lock().remove(&cid);
            return Err(closed());
        }
        rx.await.map_err(|_| closed())
    }
}

async fn write_loop(
    mut wr: tokio::io::WriteHalf<crate::net::BoxStream>,
    mut rx: mpsc::Receiver<Bytes>,
    open: Arc<AtomicBool>,
) {
    while let Some(frame) = rx.recv().await {
        if wr.write_all(&frame).await.is_err() {
            break;
        }
    }
    open.store(false, Ordering::SeqCst);
    let _ = wr.shutdown().await;
}

async fn read_loop(
    mut rd: tokio::io::ReadHalf<crate::net::BoxStream>,
    pending: Pending,
    open: Arc<AtomicBool>,
    max_response_bytes: usize,
    address: String,
) {
    let mut frames = FrameReader::new(max_response_bytes);
    'conn: loop {
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) if frame.len() >= 4 => {
                    let cid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                    let Some(tx) = pending.lock().remove(&cid) else {
                        tracing::warn!(%address, cid, "controller answered an unknown correlation id; closing");
                        break 'conn;
                    };
                    let _ = tx.send(frame);
                }
                Ok(Some(_)) => {
                    tracing::warn!(%address, "controller sent a frame without a header; closing");
                    break 'conn;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%address, error = %e, "bad frame from controller; closing");
                    break 'conn;
                }
            }
        }
        match rd.read_buf(frames.read_buf()).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    open.store(false, Ordering::SeqCst);
    pending.lock().clear();
}
