//! The client side of node-to-node security: a broker dialling another
//! broker (replica fetchers, AddPartitionsToTxn verification, transaction
//! markers) or a controller (the controller channel, the metadata quorum's
//! RPC) as Kafka's `NetworkClient` does on a secured listener: TLS first
//! (the listener's truststore, its keystore when the server asks for a
//! certificate, the peer's name checked as with Kafka's default
//! `ssl.endpoint.identification.algorithm=https`), then SaslHandshake v1
//! and SaslAuthenticate with the node's own login (PLAIN, or SCRAM with the
//! server's signature checked). The stream is handed back at a frame
//! boundary, so whoever uses it next starts with its own first request.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_controller::raft::{Acceptor as RaftAcceptor, BoxConn, Transport as RaftTransport};
use sluice_protocol::{kafka_protocol, FrameReader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::net::{BoxFuture, BoxStream, Connector};

/// The largest SASL response frame a node accepts from a peer.
const MAX_SASL_RESPONSE_BYTES: usize = 64 << 10;

/// The node's own SASL login (`sasl.mechanism.inter.broker.protocol` or
/// `sasl.mechanism.controller.protocol`, with the `username` and
/// `password` of the listener's JAAS entry).
pub use sluice_auth::sasl::SaslLogin;

/// A node's TLS client configuration on one path, shared by every
/// connector that dials there and swapped whole when the listener's stores
/// are reloaded (KIP-226): each new connection reads the current one,
/// connections already open keep theirs.
#[derive(Clone)]
pub struct ClientTls(Arc<parking_lot::RwLock<Arc<rustls::ClientConfig>>>);

impl ClientTls {
    pub fn new(config: rustls::ClientConfig) -> Self {
        Self(Arc::new(parking_lot::RwLock::new(Arc::new(config))))
    }

    /// The configuration of the next connection.
    pub fn current(&self) -> Arc<rustls::ClientConfig> {
        self.0.read().clone()
    }

    /// Whether `other` is this slot (a clone of it).
    pub fn same(&self, other: &ClientTls) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Makes `config` the configuration of every connection from now on.
    pub fn replace(&self, config: rustls::ClientConfig) {
        *self.0.write() = Arc::new(config);
    }
}

/// How a node secures the connections it opens to one kind of peer.
/// The default is PLAINTEXT.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    /// TLS with this configuration (trusted CAs, the node's certificate).
    pub tls: Option<ClientTls>,
    pub sasl: Option<SaslLogin>,
    /// Bounds the TLS handshake and the SASL exchange together.
    pub handshake_timeout: Duration,
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ClientSecurity {
    pub fn is_plaintext(&self) -> bool {
        self.tls.is_none() && self.sasl.is_none()
    }

    /// Secures `stream`, a fresh connection to `address` (`host:port`):
    /// TLS, then SASL, as configured. Errors say which step failed.
    pub async fn secure<S>(&self, stream: S, address: &str) -> io::Result<BoxConn>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        let timeout = if self.handshake_timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            self.handshake_timeout
        };
        tokio::time::timeout(timeout, self.secure_unbounded(stream, address))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("securing the connection to {address} took more than {timeout:?}"),
                )
            })?
    }

    async fn secure_unbounded<S>(&self, stream: S, address: &str) -> io::Result<BoxConn>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        let mut conn: BoxConn = match &self.tls {
            None => Box::new(stream),
            Some(config) => {
                let name = server_name(address).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{address}: the host is not a TLS server name"),
                    )
                })?;
                let tls = tokio_rustls::TlsConnector::from(config.current())
                    .connect(name, stream)
                    .await
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("TLS handshake with {address}: {e}"))
                    })?;
                Box::new(tls)
            }
        };
        if let Some(login) = &self.sasl {
            sasl_login(&mut conn, login).await.map_err(|reason| {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("SASL authentication ({login:?}) with {address} failed: {reason}"),
                )
            })?;
        }
        Ok(conn)
    }
}

/// The TLS server name of `host:port` (an IP address or a DNS name).
fn server_name(address: &str) -> Option<rustls_pki_types::ServerName<'static>> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls_pki_types::ServerName::try_from(host.to_string()).ok()
}

/// SaslHandshake v1, then SaslAuthenticate v2 tokens until the mechanism
/// completes; `Err` says why it failed.
async fn sasl_login(conn: &mut BoxConn, login: &SaslLogin) -> Result<(), String> {
    let mut frames = FrameReader::new(MAX_SASL_RESPONSE_BYTES);
    let hs: SaslHandshakeResponse = call(
        conn,
        &mut frames,
        ApiKey::SaslHandshake,
        1,
        0,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism())),
    )
    .await?;
    if hs.error_code != 0 {
        let enabled: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(format!(
            "SaslHandshake answered error {}; the listener enables {enabled:?}",
            hs.error_code
        ));
    }
    let mut exchange = login.exchange(&sluice_runtime::random_bytes());
    let mut token = exchange.first();
    for correlation_id in 1.. {
        let answer = authenticate(conn, &mut frames, correlation_id, token).await?;
        match exchange.next(&answer).map_err(|e| e.to_string())? {
            Some(next) => token = next,
            None => break,
        }
    }
    Ok(())
}

/// One SaslAuthenticate v2 round: the server's token, or why it failed.
async fn authenticate(
    conn: &mut BoxConn,
    frames: &mut FrameReader,
    correlation_id: i32,
    token: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let resp: SaslAuthenticateResponse = call(
        conn,
        frames,
        ApiKey::SaslAuthenticate,
        2,
        correlation_id,
        &req,
    )
    .await?;
    if resp.error_code != 0 {
        return Err(format!(
            "error {}: {}",
            resp.error_code,
            resp.error_message.as_ref().map_or("", |m| m.as_str())
        ));
    }
    Ok(resp.auth_bytes.to_vec())
}

/// Sends one request frame and reads its answer.
async fn call<R, T>(
    conn: &mut BoxConn,
    frames: &mut FrameReader,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    req: &R,
) -> Result<T, String>
where
    R: Request,
    T: Decodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-node")));
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| e.to_string())?;
    req.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    conn.write_all(&buf).await.map_err(|e| e.to_string())?;
    conn.flush().await.map_err(|e| e.to_string())?;
    let mut frame = loop {
        if let Some(f) = frames.next_frame().map_err(|e| e.to_string())? {
            break f;
        }
        let n = conn
            .read_buf(frames.read_buf())
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the peer closed the connection during {key:?}"));
        }
    };
    let header =
        kafka_protocol::messages::ResponseHeader::decode(&mut frame, T::header_version(version))
            .map_err(|e| format!("{key:?} response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "{key:?} answered correlation id {} instead of {correlation_id}",
            header.correlation_id
        ));
    }
    T::decode(&mut frame, version).map_err(|e| format!("{key:?} response v{version}: {e}"))
}

/// A [`Connector`] (and the metadata quorum's raft [`RaftTransport`]) that
/// secures every connection it opens with a [`ClientSecurity`].
///
/// The raft RPC bounds each connect by one heartbeat, which a TLS
/// handshake and a SASL exchange can outlast on a busy machine; cut short,
/// every attempt would start over and never finish. So a raft connect runs
/// on its own task, and a call cut short leaves it there for the next call
/// to the same address to pick up (one at a time per address).
pub struct SecureConnector {
    security: ClientSecurity,
    pending: parking_lot::Mutex<BTreeMap<String, PendingConnect>>,
    /// When a refused login was last logged, per address.
    warned: Arc<parking_lot::Mutex<BTreeMap<String, std::time::Instant>>>,
}

/// At most one line per address in this long about a refused login.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Logs `e` when it is a refused TLS handshake or SASL login (WARN, at most
/// once per [`REFUSAL_LOG_INTERVAL`] per address): a node with a wrong
/// password or certificate says why it cannot reach its peers.
fn log_refusal(
    warned: &parking_lot::Mutex<BTreeMap<String, std::time::Instant>>,
    what: &str,
    addr: &str,
    e: &io::Error,
) {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return;
    }
    let now = std::time::Instant::now();
    let mut warned = warned.lock();
    if warned
        .get(addr)
        .is_some_and(|t| now.duration_since(*t) < REFUSAL_LOG_INTERVAL)
    {
        return;
    }
    warned.insert(addr.to_string(), now);
    tracing::warn!("{what} to {addr}: {e}");
}

type PendingConnect = Arc<tokio::sync::Mutex<Option<JoinHandle<io::Result<BoxConn>>>>>;

impl SecureConnector {
    pub fn new(security: ClientSecurity) -> Self {
        Self {
            security,
            pending: Default::default(),
            warned: Default::default(),
        }
    }

    /// The connection being made to `addr` (started if none is), awaited
    /// until it is done or this call is dropped.
    async fn raft_connect(&self, addr: &str) -> io::Result<BoxConn> {
        let slot = self
            .pending
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut pending = slot.lock().await;
        let handle = pending.get_or_insert_with(|| {
            let (security, addr) = (self.security.clone(), addr.to_string());
            tokio::spawn(async move {
                let s = tcp(&addr).await?;
                security.secure(s, &addr).await
            })
        });
        let done = handle.await;
        *pending = None;
        done.map_err(|e| io::Error::other(format!("connecting to {addr}: {e}")))?
    }
}

async fn tcp(address: &str) -> io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(address).await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

impl Connector for SecureConnector {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        let (security, warned) = (self.security.clone(), self.warned.clone());
        Box::pin(async move {
            let s = tcp(&address).await?;
            let conn = security.secure(s, &address).await;
            if let Err(e) = &conn {
                log_refusal(&warned, "connection", &address, e);
            }
            Ok(Box::new(conn?) as BoxStream)
        })
    }
}

impl RaftTransport for SecureConnector {
    fn connect<'a>(
        &'a self,
        addr: &'a str,
    ) -> sluice_controller::BoxFuture<'a, io::Result<BoxConn>> {
        Box::pin(async move {
            let secured = self.raft_connect(addr).await;
            if let Err(e) = &secured {
                // openraft retries quietly: say why a voter is unreachable.
                log_refusal(&self.warned, "metadata quorum RPC", addr, e);
            }
            secured
        })
    }

    fn bind<'a>(
        &'a self,
        addr: &'a str,
    ) -> sluice_controller::BoxFuture<'a, io::Result<Box<dyn RaftAcceptor>>> {
        Box::pin(async move {
            Ok(
                Box::new(sluice_controller::raft::TcpAcceptor::bind(addr).await?)
                    as Box<dyn RaftAcceptor>,
            )
        })
    }
}
