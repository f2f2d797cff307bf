//! One controller listener for two protocols.
//!
//! A voter is reachable at one address, its entry in
//! `controller.quorum.voters`, as in Kafka, where the Raft RPCs and the
//! controller APIs share the CONTROLLER listener. Sluice speaks two
//! protocols there: the metadata quorum's RPC
//! ([`sluice_controller::raft::network`]: `len: u32 | version: u8 | body`,
//! version [`RPC_VERSION`]) and Kafka's request protocol for brokers and
//! admin forwarding (`len: i32 | api_key: i16 | ...`). Kafka's API keys
//! are all below 256, so the fifth byte of a Kafka connection is the high
//! byte of its first API key, 0; the quorum RPC's fifth byte is its version,
//! never 0. [`SplitListener`] peeks those five bytes of each new connection
//! (consuming nothing) and hands the connection to the matching side.
//!
//! On a secured controller listener (SSL, SASL_SSL, SASL_PLAINTEXT) each
//! connection first passes the [`ServerSecurity`] gate (TLS, then Kafka's
//! SASL exchange); the five bytes are then read from the decrypted stream
//! and replayed ([`Prefixed`]). Every connection carries its principal:
//! the Kafka side's requests are authorized by the controller server, and
//! a quorum connection whose principal may not speak the quorum RPC
//! ([`Admission::quorum_allowed`]: Kafka's CLUSTER_ACTION) is closed with
//! a log line before raft sees a byte.
//!
//! Bounds: at most [`SplitConfig::max_pending`] connections are being
//! classified at once (more wait in the kernel's accept queue); one that
//! has not sent five bytes within [`SplitConfig::classify_timeout`] is
//! closed, as is one whose fifth byte is neither; each side buffers at
//! most [`SplitConfig::queue`] classified connections before the
//! classifier waits for it to accept.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_auth::KafkaPrincipal;
use tokio::io::AsyncReadExt;

use sluice_controller::raft::network::RPC_VERSION;
use sluice_controller::raft::{Acceptor as RaftAcceptor, BoxConn};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::net::{Accepted, Acceptor, BoxFuture, BoxStream};
use crate::security::{Prefixed, ServerSecurity};

/// A classified connection: its stream, peer and principal.
type Conn = (BoxConn, SocketAddr, KafkaPrincipal);

/// Whether a principal connected from an address may speak the metadata
/// quorum's RPC.
pub type QuorumAllowed = Arc<dyn Fn(&KafkaPrincipal, SocketAddr) -> bool + Send + Sync>;

/// Who gets past the controller listener (see the module docs); the
/// default admits everyone as `User:ANONYMOUS` over PLAINTEXT.
#[derive(Clone, Default)]
pub struct Admission {
    pub security: Option<Arc<ServerSecurity>>,
    pub quorum_allowed: Option<QuorumAllowed>,
}

/// The fifth byte of a Kafka request connection (high byte of an API key).
const KAFKA_FIFTH_BYTE: u8 = 0;

/// Which protocol a connection speaks, from its first five bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Kafka's request protocol (controller APIs).
    Kafka,
    /// The metadata quorum's RPC.
    Quorum,
}

/// Classifies a connection by its first five bytes; `None` for neither.
pub fn classify(head: &[u8; 5]) -> Option<Protocol> {
    match head[4] {
        KAFKA_FIFTH_BYTE => Some(Protocol::Kafka),
        RPC_VERSION => Some(Protocol::Quorum),
        _ => None,
    }
}

/// Bounds of the classifier (see the module docs).
#[derive(Clone, Debug)]
pub struct SplitConfig {
    pub max_pending: usize,
    pub classify_timeout: Duration,
    pub queue: usize,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            max_pending: 256,
            classify_timeout: Duration::from_secs(10),
            queue: 64,
        }
    }
}

/// A bound controller listener split into its two sides.
pub struct SplitListener {
    local_addr: SocketAddr,
    kafka: mpsc::Receiver<Conn>,
    quorum: mpsc::Receiver<Conn>,
    task: JoinHandle<()>,
}

impl SplitListener {
    /// Binds `addr` and starts classifying its connections on the current
    /// tokio runtime.
    pub async fn bind(addr: SocketAddr, config: SplitConfig) -> io::Result<SplitListener> {
        Self::bind_admitting(addr, config, Admission::default()).await
    }

    /// [`SplitListener::bind`], each connection admitted by `admission`.
    pub async fn bind_admitting(
        addr: SocketAddr,
        config: SplitConfig,
        admission: Admission,
    ) -> io::Result<SplitListener> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (kafka_tx, kafka) = mpsc::channel(config.queue.max(1));
        let (quorum_tx, quorum) = mpsc::channel(config.queue.max(1));
        let task = tokio::spawn(accept_loop(
            listener, config, admission, kafka_tx, quorum_tx,
        ));
        Ok(SplitListener {
            local_addr,
            kafka,
            quorum,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The two sides: the Kafka-protocol acceptor (for the
    /// [`ControllerServer`](crate::ControllerServer)) and the quorum RPC
    /// acceptor (for the `RaftMetadataLog`). Dropping both stops the
    /// listener.
    pub fn split(self) -> (KafkaSide, QuorumSide) {
        let stop = Arc::new(StopOnDrop(self.task));
        (
            KafkaSide {
                rx: self.kafka,
                local_addr: self.local_addr,
                _stop: stop.clone(),
            },
            QuorumSide {
                rx: self.quorum,
                _stop: stop,
            },
        )
    }
}

/// Aborts the accept loop when the last side is dropped.
struct StopOnDrop(JoinHandle<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: SplitConfig,
    admission: Admission,
    kafka: mpsc::Sender<Conn>,
    quorum: mpsc::Sender<Conn>,
) {
    let pending = Arc::new(Semaphore::new(config.max_pending.max(1)));
    loop {
        let Ok(permit) = pending.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (kafka, quorum, timeout) = (kafka.clone(), quorum.clone(), config.classify_timeout);
        let admission = admission.clone();
        tokio::spawn(async move {
            let classified =
                tokio::time::timeout(timeout, admit_and_classify(stream, peer, &admission)).await;
            let (protocol, conn) = match classified {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    log_refusal(peer, &e);
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "controller listener: no request header within {timeout:?}; closing");
                    return;
                }
            };
            drop(permit);
            let side = match protocol {
                Some(Protocol::Kafka) => kafka,
                Some(Protocol::Quorum) => {
                    if let Some(allowed) = &admission.quorum_allowed {
                        if !allowed(&conn.2, peer) {
                            tracing::info!(target: "kafka.authorizer.logger", %peer, principal = %conn.2, "Principal = {} is Denied operation = CLUSTER_ACTION from host = {} on resource = Cluster:LITERAL:kafka-cluster (metadata quorum RPC); closing", conn.2, peer.ip());
                            return;
                        }
                    }
                    quorum
                }
                None => {
                    tracing::warn!(%peer, "controller listener: neither a Kafka request nor a metadata quorum RPC; closing");
                    return;
                }
            };
            // A side that was dropped (its server stopped) closes the
            // connection by dropping it here.
            let _ = side.send(conn).await;
        });
    }
}

fn log_refusal(peer: SocketAddr, e: &io::Error) {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, error = %e, "controller listener: connection closed before its first request")
        }
        io::ErrorKind::PermissionDenied => {
            tracing::info!(%peer, "controller listener: closing connection: {e}")
        }
        _ => tracing::debug!(%peer, error = %e, "controller listener: closing connection"),
    }
}

/// The gate (when secured), then the first five bytes: which side the
/// connection goes to.
async fn admit_and_classify(
    stream: TcpStream,
    peer: SocketAddr,
    admission: &Admission,
) -> io::Result<(Option<Protocol>, Conn)> {
    let Some(security) = &admission.security else {
        let head = peek_head(&stream).await?;
        let conn: BoxConn = Box::new(stream);
        return Ok((classify(&head), (conn, peer, KafkaPrincipal::anonymous())));
    };
    let (mut conn, principal) = security
        .admit(stream, peer)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?;
    let mut head = [0u8; 5];
    conn.read_exact(&mut head).await?;
    let conn: BoxConn = Box::new(Prefixed::new(head.to_vec(), conn));
    Ok((classify(&head), (conn, peer, principal)))
}

/// Waits until the first five bytes have arrived and returns them,
/// without consuming them.
async fn peek_head(stream: &TcpStream) -> io::Result<[u8; 5]> {
    let mut head = [0u8; 5];
    loop {
        let n = stream.peek(&mut head).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if n == head.len() {
            return Ok(head);
        }
        // Fewer bytes so far: peek would return them again at once.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The Kafka-protocol side of a [`SplitListener`].
pub struct KafkaSide {
    rx: mpsc::Receiver<Conn>,
    local_addr: SocketAddr,
    _stop: Arc<StopOnDrop>,
}

impl Acceptor for KafkaSide {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let a = self.accept_admitted().await?;
            Ok((a.stream, a.peer))
        })
    }

    fn accept_admitted(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some((s, peer, principal)) => Ok(Accepted {
                    stream: Box::new(s) as BoxStream,
                    peer,
                    principal,
                }),
                None => Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "controller listener stopped",
                )),
            }
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// The metadata-quorum side of a [`SplitListener`].
pub struct QuorumSide {
    rx: mpsc::Receiver<Conn>,
    _stop: Arc<StopOnDrop>,
}

impl RaftAcceptor for QuorumSide {
    fn accept(&mut self) -> sluice_controller::BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some((s, peer, _)) => Ok((s, peer.to_string())),
                None => Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "controller listener stopped",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_and_quorum_heads_are_told_apart() {
        // ApiVersions v3 (key 18), BrokerRegistration (62): high byte 0.
        assert_eq!(classify(&[0, 0, 0, 40, 0]), Some(Protocol::Kafka));
        assert_eq!(classify(&[0, 0, 1, 0, 0]), Some(Protocol::Kafka));
        assert_eq!(classify(&[0, 0, 0, 9, RPC_VERSION]), Some(Protocol::Quorum));
        assert_eq!(classify(&[0, 0, 0, 9, 0x7f]), None);
        assert_ne!(RPC_VERSION, KAFKA_FIFTH_BYTE);
    }
}
