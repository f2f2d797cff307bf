//! What a handler knows of a request besides its header and body: who sent
//! it and over which listener. The network layer builds one per
//! connection once the connection's principal is known; handlers read it
//! and never reach back into the connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use sluice_auth::{KafkaPrincipal, ListenerName, SecurityProtocol};

/// The sender of a request, as Kafka's `RequestContext` carries it.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Who the connection authenticated as (`User:ANONYMOUS` without
    /// authentication).
    pub principal: KafkaPrincipal,
    /// The listener the connection came in on.
    pub listener: ListenerName,
    /// What that listener speaks.
    pub security_protocol: SecurityProtocol,
    /// The connection's remote address; `None` for requests the broker
    /// makes of itself (tests, fuzzing). JoinGroup records it as a
    /// member's host.
    pub client_address: Option<SocketAddr>,
    /// The connection's client-quota throttle (KIP-219), shared by the
    /// connection's reader and processor and the handlers.
    pub throttle: ConnectionThrottle,
}

/// A quota throttle of one connection: a handler asks for it while
/// answering; once the response is written the connection is muted (reads
/// and handles no request) until it ends. It also holds the connection's
/// network time not yet charged to a request quota.
#[derive(Clone, Debug, Default)]
pub struct ConnectionThrottle(Arc<ThrottleState>);

#[derive(Debug, Default)]
struct ThrottleState {
    /// Asked for by the request being answered (ms; 0 = none).
    pending_ms: AtomicI64,
    /// Whether `muted_until` may be in the future (the reader's fast path:
    /// one load per frame while the client was never throttled).
    muted: AtomicBool,
    muted_until: Mutex<Option<Instant>>,
    /// Network time (ns) spent on this connection and not yet charged to
    /// a request quota (`network/net_time.rs`).
    network_ns: AtomicU64,
}

impl ConnectionThrottle {
    /// Mutes the connection for `ms` once the current response is sent.
    pub fn mute_after_response(&self, ms: i64) {
        self.0.pending_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Called when a response was written: starts the mute it asked for
    /// and returns how long it lasts.
    pub fn response_sent(&self) -> Option<Duration> {
        let ms = self.0.pending_ms.swap(0, Ordering::AcqRel);
        if ms <= 0 {
            return None;
        }
        let d = Duration::from_millis(ms as u64);
        *self.0.muted_until.lock() = Some(Instant::now() + d);
        self.0.muted.store(true, Ordering::Release);
        Some(d)
    }

    /// Adds network time (reading, decoding, encoding, writing, TLS) to
    /// what the connection's next measured request is charged.
    pub fn charge_network_time(&self, spent: Duration) {
        let ns = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.0.network_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The network time charged since the last call, taken.
    pub fn take_network_time(&self) -> Duration {
        Duration::from_nanos(self.0.network_ns.swap(0, Ordering::Relaxed))
    }

    /// The end of the current mute, if one is in force.
    pub fn muted_until(&self) -> Option<Instant> {
        if !self.0.muted.load(Ordering::Acquire) {
            return None;
        }
        let mut until = self.0.muted_until.lock();
        match *until {
            Some(t) if t > Instant::now() => Some(t),
            _ => {
                *until = None;
                self.0.muted.store(false, Ordering::Release);
                None
            }
        }
    }
}

impl RequestContext {
    /// An unauthenticated connection on a `PLAINTEXT` listener.
    pub fn plaintext(client_address: Option<SocketAddr>) -> Self {
        Self {
            principal: KafkaPrincipal::anonymous(),
            listener: ListenerName::new("PLAINTEXT"),
            security_protocol: SecurityProtocol::Plaintext,
            client_address,
            throttle: ConnectionThrottle::default(),
        }
    }
}
