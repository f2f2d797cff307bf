//! One client connection.
//!
//! Two tasks per connection: the *reader* reads and decodes frames as fast
//! as the client sends them (bounded by a small queue and by the broker-wide
//! request-bytes pool), the *processor* handles requests one at a time in
//! arrival order and writes each response before taking the next request.
//! So responses leave in request order while later requests are already
//! being read (pipelining), and a produce followed by a fetch on the same
//! connection sees its own write, as with Kafka.
//!
//! A client over a quota is muted after its throttled response is written
//! (KIP-219, Kafka's channel muting): the processor handles nothing and
//! the reader reads nothing until the throttle time has passed
//! (`RequestContext::throttle`, set by `handlers/throttled.rs`); a frame
//! the reader was already in the middle of is finished, nothing after it.
//! While the image holds client quotas, the reader's work and the
//! processor's work around each handler are the connection's network time,
//! charged to its request quota ([`super::net_time`]).
//!
//! A connection with no request in progress and no bytes read or written
//! for `connections.max.idle.ms` is closed (Kafka's idle reaper), and so is
//! one whose frame in progress gets no byte for
//! `sluice.request.stall.timeout.ms` (see [`super::frame`]), with a WARN
//! naming the client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{RequestHeader, RequestKind};
use sluice_protocol::DecodedRequest;
use sluice_transport::net::BoxStream;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::codec::{self, Decoded};
use super::frame::{FrameError, FrameReader, MemoryPool, Reservation};
use super::net_time::{Charged, NetTimeSwitch, Tally};
use super::reauth::Intercept;
use super::sendfile::{write_chunks, ResponseWriter};
use crate::context::BrokerContext;
use crate::handlers::{self, Response};
use crate::quota::thread_time::PollTimed;
use crate::request::{ConnectionThrottle, RequestContext};

/// Decoded requests a connection may hold before it stops reading.
const QUEUE_DEPTH: usize = 16;

enum Inbound {
    Request {
        request: Box<DecodedRequest>,
        reservation: Reservation,
    },
    /// A ready-made answer (the ApiVersions v0 fallback).
    Answer(Bytes),
    /// The stream is unusable; close after the answers already queued.
    Close(String),
}

/// Settings every connection shares.
#[derive(Clone)]
pub struct ConnectionConfig {
    pub max_request_bytes: usize,
    pub pool: MemoryPool,
    /// Close connections idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Abandon a frame that gets no byte for this long (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// A `SASL_PLAINTEXT` listener's authentication gate (`None`: the
    /// connection is `User:ANONYMOUS` on PLAINTEXT).
    pub sasl: Option<Arc<super::SaslGate>>,
}

/// What the reader needs to know about the processor to decide whether the
/// connection is idle.
struct Activity {
    start: Instant,
    /// Requests read but not yet answered.
    in_flight: AtomicUsize,
    /// Milliseconds after `start` of the last byte read or answer written.
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.touch_at(Instant::now());
    }

    fn touch_at(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.start).as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the connection becomes idle if nothing else happens.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }
}

/// Serves one TCP connection until the client leaves, a frame is
/// malformed, or the broker shuts down (then requests already read are
/// still answered). Fetched records go out with `sendfile`.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    request: RequestContext,
    ctx: BrokerContext,
    config: ConnectionConfig,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let (read_half, write_half) = stream.into_split();
    serve_halves(read_half, write_half, peer, request, ctx, config, shutdown).await;
}

/// [`serve`] on any other byte stream (the simulation's, a test's
/// in-memory one): the same code, with fetched records copied.
pub async fn serve_stream(
    stream: BoxStream,
    peer: SocketAddr,
    request: RequestContext,
    ctx: BrokerContext,
    config: ConnectionConfig,
    shutdown: watch::Receiver<bool>,
) {
    let (read_half, write_half) = tokio::io::split(stream);
    serve_halves(read_half, write_half, peer, request, ctx, config, shutdown).await;
}

async fn serve_halves<R, W>(
    read_half: R,
    write_half: W,
    peer: SocketAddr,
    request: RequestContext,
    ctx: BrokerContext,
    config: ConnectionConfig,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: ResponseWriter,
{
    let _active = crate::metrics::connection_opened();
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let mut frames = FrameReader::new(read_half, config.max_request_bytes, config.pool.clone())
        .with_stall_timeout(config.stall_timeout);
    let mut write_half = write_half;
    let switch = NetTimeSwitch::new(ctx.image.clone());
    // A SASL listener's connection authenticates before anything else;
    // its principal replaces the transport's (ANONYMOUS, or a TLS
    // client certificate's).
    let (request, reauth) = match &config.sasl {
        None => (request, None),
        Some(gate) => {
            let throttle = request.throttle.clone();
            let authenticated = Charged::new(
                super::sasl::authenticate(
                    &mut frames,
                    &mut write_half,
                    &ctx,
                    gate,
                    request,
                    config.idle_timeout,
                    shutdown.clone(),
                ),
                switch.clone(),
                throttle,
            )
            .await;
            match authenticated {
                Some((context, session)) => (
                    context,
                    Some(super::reauth::Reauth::new(gate.clone(), session)),
                ),
                None => return,
            }
        }
    };
    let activity = Arc::new(Activity {
        start: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
    });
    // All the reader's work (reads, TLS decryption, framing, decoding) is
    // network time of this connection.
    let reader = tokio::spawn(Charged::new(
        read_loop(
            frames,
            tx,
            shutdown,
            peer,
            config.idle_timeout,
            activity.clone(),
            request.throttle.clone(),
        ),
        switch.clone(),
        request.throttle.clone(),
    ));
    let processor = Processor {
        ctx: &ctx,
        peer,
        request_context: request,
        switch,
        activity: &activity,
    };
    processor.run(rx, write_half, reauth).await;
    reader.abort();
    tracing::debug!(%peer, "connection closed");
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut frames: FrameReader<R>,
    tx: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    idle_timeout: Option<Duration>,
    activity: Arc<Activity>,
    throttle: ConnectionThrottle,
) {
    // No idle check before this (set while a request is in flight, whose
    // answer will count as activity), so a long wait does not spin.
    let mut not_before = Instant::now();
    loop {
        if let Some(until) = throttle.muted_until() {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep_until(until) => {}
            }
            continue;
        }
        let idle_at = idle_timeout.map(|t| activity.idle_deadline(t).max(not_before));
        let next = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            next = frames.next_frame() => Some(next),
            _ = sleep_until_opt(idle_at) => None,
        };
        let Some(next) = next else {
            // Reading resumes where it stopped (the frame reader keeps its
            // partial state), unless the connection really is idle: no
            // request in flight, no byte read or written for the timeout.
            let Some(t) = idle_timeout else { continue };
            let now = Instant::now();
            if let Some(at) = frames.last_progress() {
                activity.touch_at(at);
            }
            if activity.idle_deadline(t) <= now {
                if activity.in_flight.load(Ordering::Acquire) == 0 {
                    tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    return;
                }
                not_before = now + t;
            }
            continue;
        };
        activity.touch();
        let item = match next {
            Ok(None) => return,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                return;
            }
            Err(e @ FrameError::Stalled { .. }) => Inbound::Close(format!("stalled request: {e}")),
            Err(e) => Inbound::Close(format!("bad frame: {e}")),
            Ok(Some(frame)) => match codec::decode_request(frame.bytes) {
                Decoded::Request(request) => Inbound::Request {
                    request,
                    reservation: frame.reservation,
                },
                Decoded::Answer(bytes) => Inbound::Answer(bytes),
                Decoded::Reject(reason) => Inbound::Close(reason),
            },
        };
        let closing = matches!(item, Inbound::Close(_));
        if !closing {
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        if tx.send(item).await.is_err() || closing {
            return;
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The processor of one connection: handles its requests in order and
/// writes each response before taking the next.
struct Processor<'a> {
    ctx: &'a BrokerContext,
    peer: SocketAddr,
    request_context: RequestContext,
    switch: NetTimeSwitch,
    activity: &'a Activity,
}

impl Processor<'_> {
    async fn run<W: ResponseWriter>(
        &self,
        mut rx: mpsc::Receiver<Inbound>,
        mut socket: W,
        mut reauth: Option<super::reauth::Reauth>,
    ) {
        let (ctx, peer, activity) = (self.ctx, self.peer, self.activity);
        let request_context = &self.request_context;
        let mut client_id: Option<String> = None;
        while let Some(item) = rx.recv().await {
            let (header, body, reservation) = match item {
                Inbound::Request {
                    request,
                    reservation,
                } => {
                    let DecodedRequest { header, body, .. } = *request;
                    (header, body, reservation)
                }
                Inbound::Answer(bytes) => {
                    if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                        return;
                    }
                    activity.touch();
                    activity.in_flight.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                Inbound::Close(reason) => {
                    tracing::warn!(%peer, client_id = client_id.as_deref().unwrap_or(""), "closing connection: {reason}");
                    return;
                }
            };
            if client_id.is_none() {
                client_id = header.client_id.as_ref().map(|c| c.as_str().to_string());
            }
            // A SASL connection: re-authentication requests are answered
            // there, and an expired session ends the connection (KIP-368).
            if let Some(r) = reauth.as_mut() {
                match r
                    .intercept(&header, &body, &mut socket, ctx, request_context, peer)
                    .await
                {
                    Intercept::Pass => {}
                    Intercept::Answered => {
                        drop(reservation);
                        if socket.flush().await.is_err() {
                            return;
                        }
                        activity.touch();
                        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
                        continue;
                    }
                    Intercept::Close(reason) => {
                        tracing::info!(%peer, client_id = client_id.as_deref().unwrap_or(""), "closing connection: {reason}");
                        return;
                    }
                }
            }
            log_client_software(peer, client_id.as_deref(), &header, &body);
            let observation = crate::metrics::Observation::start(&header, &body);
            let received = std::time::Instant::now();
            let response = handlers::handle_from(ctx, request_context, &header, body).await;
            if matches!(response, Response::Fetch(_)) {
                tracing::debug!(
                    target: super::cold::STAGES,
                    handler_us = received.elapsed().as_micros() as u64,
                    "fetch answered"
                );
            }
            // Everything after the handler is network time of the connection.
            let mut tally = Tally::new(&self.switch);
            let sent = PollTimed::new(
                std::pin::pin!(async {
                    observation.finish(ctx, &response);
                    drop(reservation);
                    self.send(&mut socket, &header, response, client_id.as_deref())
                        .await
                }),
                tally.sink(),
            )
            .await;
            tally.charge(&request_context.throttle);
            if !sent {
                return;
            }
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Some(muted) = request_context.throttle.response_sent() {
                tokio::time::sleep(muted).await;
            }
        }
    }

    /// Encodes and writes one response; `false` when the connection must
    /// close.
    async fn send<W: ResponseWriter>(
        &self,
        socket: &mut W,
        header: &RequestHeader,
        response: Response,
        client_id: Option<&str>,
    ) -> bool {
        let peer = self.peer;
        let written = match response {
            Response::Message(message) => match codec::encode_response(header, &message) {
                Ok(bytes) => socket.write_all(&bytes).await,
                Err(e) => {
                    tracing::error!(%peer, api_key = header.request_api_key, error = %e, "cannot encode response; closing connection");
                    return false;
                }
            },
            Response::Fetch(plan) => match codec::fetch_chunks(header, plan) {
                Ok(chunks) => write_chunks(socket, chunks).await,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "cannot encode fetch response; closing connection");
                    return false;
                }
            },
            Response::NoResponse => Ok(()),
            Response::Close(reason) => {
                tracing::warn!(%peer, client_id = client_id.unwrap_or(""), "closing connection: {reason}");
                return false;
            }
        };
        // A TLS stream may hold the last records until flushed (a no-op on TCP).
        let written = match written {
            Ok(()) => socket.flush().await,
            failed => failed,
        };
        if let Err(e) = written {
            tracing::debug!(%peer, error = %e, "write failed");
            return false;
        }
        true
    }
}

/// The INFO line of a client that names its software (ApiVersions v3+).
fn log_client_software(
    peer: SocketAddr,
    client_id: Option<&str>,
    header: &RequestHeader,
    body: &RequestKind,
) {
    if let RequestKind::ApiVersions(req) = body {
        if header.request_api_version >= 3 {
            tracing::info!(
                %peer,
                client_id = client_id.unwrap_or(""),
                client_software_name = req.client_software_name.as_str(),
                client_software_version = req.client_software_version.as_str(),
                "client connected"
            );
        }
    }
}
