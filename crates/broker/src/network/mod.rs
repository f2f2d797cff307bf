//! The tokio network layer: listeners, connections, request framing,
//! response writing (with `sendfile` for fetched records on PLAINTEXT
//! listeners; through rustls on SSL ones, [`tls`]). [`security`] builds each
//! connection's stream and request context from its listener.
//!
//! Bounds: `max.connections` connections, and
//! `listener.name.<l>.max.connections` on a listener (a connection beyond
//! either is closed as soon as it is accepted, with a rate-limited WARN
//! naming the limit; the inter-broker listener of a broker with several is
//! outside the broker-wide one: `crate::quota::slots`),
//! `max.connections.per.ip` and the `ip` quotas' connection creation rate
//! (`crate::quota::connections`: closed at once, or after the throttle),
//! `socket.request.max.bytes` per request, and `queued.max.request.bytes`
//! over the request bytes all connections hold, taken as the bytes arrive
//! (readers stop reading their sockets while it is used up; see
//! [`frame`]). Idle connections close after `connections.max.idle.ms`, and
//! a request that stops arriving after `sluice.request.stall.timeout.ms`.
//! A connection's network time counts against its client's request quota
//! ([`net_time`]).

pub mod codec;
pub(crate) mod cold;
pub mod connection;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod net_time;
pub mod node_security;
pub mod read_ahead;
mod reauth;
pub mod sasl;
pub mod security;
pub mod sendfile;
pub mod tls;
pub mod tls_reload;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_transport::net::{Acceptor, BoxStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use connection::ConnectionConfig;
pub use frame::MemoryPool;
pub use sasl::SaslGate;
pub use security::ListenerTransport;

use crate::context::BrokerContext;
use crate::quota::connections::{ConnectionPermit, Refusal};
use crate::quota::slots::SlotRefusal;

/// glibc's allocator: serve allocations below 4 MiB from its arenas and
/// give memory back to the kernel only when more than 32 MiB sit free at
/// the top of a heap. With its adaptive defaults it returned the 1 MiB
/// request buffers after every few produce requests and the next ones
/// faulted in fresh pages (zeroed by the kernel, and on this class of VM
/// backed again by the hypervisor): 13% of the broker's CPU under produce
/// load went to those page faults. The cost is that up to 32 MiB per
/// arena may stay resident after a burst. Call once at start-up, before
/// threads are spawned. No-op on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

/// How long shutdown waits for connections to write their last responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// At most one WARN per this long about connections refused at
/// `max.connections` (per listener), so a flood does not flood the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limits the WARN about connections refused at `max.connections`.
struct RefusalLog {
    last: Option<tokio::time::Instant>,
    /// Refusals since the last WARN.
    unlogged: u64,
}

impl RefusalLog {
    fn refused(&mut self, peer: std::net::SocketAddr, listener: &str, refusal: SlotRefusal) {
        self.unlogged += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        let (key, limit) = match refusal {
            SlotRefusal::Broker { limit } => ("max.connections".to_string(), limit),
            SlotRefusal::Listener { limit } => {
                (format!("listener.name.{listener}.max.connections"), limit)
            }
        };
        tracing::warn!(
            %peer,
            max_connections = limit,
            refused = self.unlogged,
            "refusing connection: {key} ({limit}) reached; \
             {} connection(s) closed at accept since the last such warning",
            self.unlogged
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}

/// Where a listener's connections come from: a TCP socket (fetched
/// records go out with `sendfile`), or any other acceptor behind the
/// transport crate's socket seam (the deterministic simulation's network;
/// fetched records are copied).
pub enum Listener {
    Tcp(TcpListener),
    Other(Box<dyn Acceptor>),
}

enum Accepted {
    Tcp(TcpStream),
    Other(BoxStream),
}

impl Listener {
    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Other(a) => a.local_addr(),
        }
    }

    async fn accept(&mut self) -> io::Result<(Accepted, SocketAddr)> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, p)| (Accepted::Tcp(s), p)),
            Listener::Other(a) => a.accept().await.map(|(s, p)| (Accepted::Other(s), p)),
        }
    }
}

/// The per-IP limits of a new connection (`crate::quota::connections`).
fn admit(ctx: &BrokerContext, peer: SocketAddr) -> Result<ConnectionPermit, Refusal> {
    let image = ctx.image.has_client_quotas().then(|| ctx.image.image());
    let quotas = image.as_ref().map(|i| i.client_quotas());
    ctx.quotas
        .connections
        .admit(peer.ip(), quotas, ctx.clock.now_ms())
}

/// Kafka's `protectedListener`: the inter-broker listener of a broker
/// with several listeners is outside the broker-wide connection limits.
fn is_protected(ctx: &BrokerContext, listener: &str) -> bool {
    let inter_broker = ctx
        .config
        .kraft
        .as_ref()
        .and_then(|k| k.inter_broker_listener_name.as_deref());
    inter_broker.is_some_and(|l| l.eq_ignore_ascii_case(listener)) && ctx.config.listeners.len() > 1
}

/// Accepts connections on `listener` until `shutdown` becomes true, then
/// waits for every connection to answer the requests it has already read.
pub async fn accept_loop(
    mut listener: Listener,
    transport: Arc<ListenerTransport>,
    ctx: BrokerContext,
    config: ConnectionConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut refusals = RefusalLog {
        last: None,
        unlogged: 0,
    };
    let listener_name = transport.name.as_str().to_string();
    let protected = is_protected(&ctx, &listener_name);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Connection creation rates (KIP-612): over one, this listener
        // accepts nothing more until the throttle ends, then serves this
        // connection, as Kafka's acceptor waits.
        let delay =
            ctx.quotas
                .connections
                .accept_delay_ms(&listener_name, protected, ctx.clock.now_ms());
        if delay > 0 {
            tracing::debug!(%peer, listener = %listener_name, "connection creation rate exceeded; accepting after {delay} ms");
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(Duration::from_millis(delay as u64)) => {}
            }
        }
        let slot = match ctx
            .quotas
            .connections
            .slots
            .try_acquire(&listener_name, protected)
        {
            Ok(slot) => slot,
            Err(refusal) => {
                // Closed at once rather than left waiting in the backlog
                // without a word (what Kafka does); the client sees the
                // connection end and retries after its backoff.
                refusals.refused(peer, &listener_name, refusal);
                drop(stream);
                continue;
            }
        };
        let permit = match admit(&ctx, peer) {
            Ok(permit) => permit,
            Err(Refusal::TooMany { limit }) => {
                tracing::info!(
                    %peer,
                    "rejected connection from {}, address already has the configured maximum of {limit} connections",
                    peer.ip()
                );
                continue;
            }
            Err(Refusal::Throttled { ms }) => {
                ctx.quotas.connections.unrecord_accept(
                    &listener_name,
                    protected,
                    ctx.clock.now_ms(),
                );
                // Kafka delays closing it; the wait holds the connection's
                // slot, so throttled sockets are bounded by max.connections.
                tracing::debug!(%peer, "delaying closing of connection for {ms} ms");
                connections.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms.max(0) as u64)).await;
                    drop((stream, slot));
                });
                continue;
            }
        };
        tracing::debug!(%peer, "connection accepted");
        let ctx = ctx.clone();
        let config = config.clone();
        let shutdown = shutdown.clone();
        let transport = transport.clone();
        connections.spawn(async move {
            match stream {
                Accepted::Tcp(s) => transport.serve_tcp(s, peer, ctx, config, shutdown).await,
                Accepted::Other(s) => transport.serve_other(s, peer, ctx, config, shutdown).await,
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    // Connections answer what they have read, then close. A client that
    // stops reading its socket cannot hold the shutdown forever.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "closing connections that did not finish within the shutdown grace period"
        );
        connections.shutdown().await;
    }
}
