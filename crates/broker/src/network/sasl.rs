//! The authentication gate of a `SASL_PLAINTEXT` connection, as Kafka's
//! `SaslServerAuthenticator` runs it, before any request reaches a handler.
//!
//! States: ApiVersions (at most once, before the handshake) or
//! SaslHandshake; then the mechanism's tokens, either raw size-prefixed
//! frames (after SaslHandshake v0, Kafka's pre-KIP-152 framing) or inside
//! SaslAuthenticate requests (after v1). Anything else before the exchange
//! completes closes the connection without an answer, as Kafka does (it
//! throws `IllegalSaslStateException`); so does a request whose size prefix
//! exceeds `sasl.server.max.receive.size` (checked before any of it is
//! buffered). A mechanism the listener does not enable is answered with
//! UNSUPPORTED_SASL_MECHANISM and the enabled list, then closed; a failed
//! exchange with SASL_AUTHENTICATION_FAILED and Kafka's message, then
//! closed after `connection.failed.authentication.delay.ms`. Each failure
//! is logged, at most [`FAILURE_LOG_BURST`] lines per
//! [`FAILURE_LOG_WINDOW`] across the broker (then one line counting the
//! rest), so a flood of wrong passwords cannot flood the log.
//!
//! Invariant: the gate returns a principal only when the mechanism
//! completed; it holds at most one request in memory at a time, of at most
//! `sasl.server.max.receive.size` bytes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseKind, SaslAuthenticateResponse,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_auth::oauth::jwks::MAX_JWKS_BYTES;
use sluice_auth::oauth::{
    BearerValidator, JsonWebKeySet, JwksValidator, TokenError, ValidatedToken,
};
use sluice_auth::sasl::{
    Credentials, SaslMechanism, SaslServer, SaslStep, ScramCredential, ScramMechanism, ScramServer,
};
use sluice_auth::{AuthError, KafkaPrincipal, ListenerName};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{self, Decoded};
use super::frame::FrameReader;
use super::reauth::Session;
use super::sendfile::ResponseWriter;
use crate::config::sasl::{OAuthSettings, SaslListenerConfig};
use crate::config::BrokerConfig;
use crate::context::BrokerContext;
use crate::error::BrokerError;
use crate::handlers::{self, Response};
use crate::request::RequestContext;

/// A SASL listener's settings, shared by its connections.
#[derive(Debug)]
pub struct SaslGate {
    pub listener: ListenerName,
    pub config: SaslListenerConfig,
    /// OAUTHBEARER's validator (its JWKS read when the listener started).
    pub bearer: Option<BearerValidator>,
    /// `sasl.server.max.receive.size`.
    pub max_receive_size: usize,
    /// `connection.failed.authentication.delay.ms`.
    pub failure_delay: Duration,
}

impl SaslGate {
    /// Kafka's session lifetime (`SaslServerAuthenticator`'s
    /// `calcCompletionTimesAndReturnSessionLifetimeMs`): the shorter of
    /// `mechanism`'s `connections.max.reauth.ms` (when positive) and the
    /// time left until the credential expires (an OAUTHBEARER token's
    /// `exp`), never negative; `None` when neither applies (the session
    /// never ends, and the client is told 0).
    pub fn session_lifetime_ms(
        &self,
        mechanism: SaslMechanism,
        credential_expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<i64> {
        let max_reauth = self
            .config
            .reauth_ms
            .get(&mechanism)
            .copied()
            .filter(|ms| *ms > 0);
        let left = credential_expires_at_ms.map(|exp| exp.saturating_sub(now_ms));
        match (max_reauth, left) {
            (None, None) => None,
            (Some(m), None) => Some(m),
            (None, Some(l)) => Some(l.max(0)),
            (Some(m), Some(l)) => Some(m.min(l).max(0)),
        }
    }
}

/// The gate of listener `name`, if it is a SASL listener. Reads the JWKS
/// of a listener that verifies signed OAUTHBEARER tokens.
pub fn gate_for(config: &BrokerConfig, name: &str) -> Result<Option<Arc<SaslGate>>, BrokerError> {
    let Some(sasl) = config.sasl_listeners.get(name) else {
        return Ok(None);
    };
    let bearer = match &sasl.oauth {
        None => None,
        Some(OAuthSettings::Unsecured(v)) => Some(BearerValidator::Unsecured(v.clone())),
        Some(OAuthSettings::Jwks { jwks_path, config }) => {
            let refused = |reason: String| BrokerError::Sasl {
                listener: name.to_string(),
                key: "sasl.oauthbearer.jwks.endpoint.url".into(),
                reason,
            };
            let bytes = read_bounded(jwks_path, MAX_JWKS_BYTES)
                .map_err(|e| refused(format!("cannot read {}: {e}", jwks_path.display())))?;
            let keys = JsonWebKeySet::parse(&bytes)
                .map_err(|e| refused(format!("{}: {e}", jwks_path.display())))?;
            tracing::info!(listener = name, keys = keys.len(), jwks = %jwks_path.display(), "OAUTHBEARER verifies signed tokens");
            Some(BearerValidator::Jwks(JwksValidator {
                keys,
                config: config.clone(),
            }))
        }
    };
    Ok(Some(Arc::new(SaslGate {
        listener: ListenerName::new(name),
        config: sasl.clone(),
        bearer,
        max_receive_size: config.sasl_server_max_receive_size,
        failure_delay: config.connection_failed_authentication_delay,
    })))
}

/// A file of at most `limit` bytes.
fn read_bounded(path: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(std::io::Error::other(format!("over {limit} bytes")));
    }
    Ok(bytes)
}

/// At most this many failure lines per [`FAILURE_LOG_WINDOW`].
pub const FAILURE_LOG_BURST: u32 = 20;
pub const FAILURE_LOG_WINDOW: Duration = Duration::from_secs(10);

struct FailureLog {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

static FAILURES: Mutex<FailureLog> = Mutex::new(FailureLog {
    window_start: None,
    logged: 0,
    suppressed: 0,
});

pub(super) fn log_failure(peer: SocketAddr, mechanism: &str, reason: &str) {
    let mut log = FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if log
        .window_start
        .is_none_or(|s| now.duration_since(s) >= FAILURE_LOG_WINDOW)
    {
        if log.suppressed > 0 {
            tracing::warn!(
                suppressed = log.suppressed,
                "{} more failed authentications were not logged",
                log.suppressed
            );
        }
        *log = FailureLog {
            window_start: Some(now),
            logged: 0,
            suppressed: 0,
        };
    }
    if log.logged < FAILURE_LOG_BURST {
        log.logged += 1;
        tracing::info!(%peer, mechanism, "Failed authentication with {peer} ({reason})");
    } else {
        log.suppressed += 1;
    }
}

/// `user`'s SCRAM credential for `mechanism` in the cluster metadata, as
/// the SCRAM server takes it (client listeners and the controller
/// listener alike).
pub(crate) fn scram_credential(
    image: &sluice_metadata::MetadataImage,
    mechanism: ScramMechanism,
    user: &str,
) -> Option<ScramCredential> {
    let c = image.scram_credential(user, mechanism.type_id())?;
    Some(ScramCredential {
        salt: c.salt.clone(),
        stored_key: c.stored_key.clone(),
        server_key: c.server_key.clone(),
        // A negative count is below the minimum: refused like one.
        iterations: u32::try_from(c.iterations).unwrap_or(0),
    })
}

/// Users' secrets as the mechanisms ask for them: PLAIN's from the
/// listener's JAAS entry, SCRAM's from the current metadata image.
struct BrokerCredentials<'a> {
    gate: &'a SaslGate,
    ctx: &'a BrokerContext,
    peer: SocketAddr,
}

impl Credentials for BrokerCredentials<'_> {
    fn plain_password(&self, user: &str) -> Option<String> {
        self.gate.config.plain_users.get(user).cloned()
    }

    fn scram_credential(&self, mechanism: ScramMechanism, user: &str) -> Option<ScramCredential> {
        scram_credential(&self.ctx.image.image(), mechanism, user)
    }

    fn validate_bearer(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        let Some(validator) = &self.gate.bearer else {
            return Err(TokenError::invalid(
                "OAUTHBEARER is not enabled on this listener",
            ));
        };
        let verdict = validator.validate(token, self.ctx.clock.now_ms());
        if let Err(e) = &verdict {
            // The client sees only Kafka's JSON status; the reason is logged.
            log_failure(self.peer, "OAUTHBEARER", &e.reason);
        }
        verdict
    }
}

pub(super) fn server_nonce() -> String {
    let mut bytes = [0u8; 24];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&sluice_runtime::random_u64().to_le_bytes());
    }
    ScramServer::nonce(&bytes)
}

/// Where the exchange is.
enum State {
    /// Nothing yet: ApiVersions or SaslHandshake.
    HandshakeOrVersions,
    /// After ApiVersions: SaslHandshake only.
    Handshake,
    /// Tokens of the mechanism; `framed`: inside SaslAuthenticate.
    Authenticate { server: SaslServer, framed: bool },
}

/// Why the gate closes the connection.
pub(super) enum Refusal {
    /// Close at once (protocol violation or I/O).
    Close(String),
    /// Authentication failed: the answer (if any) was sent; close after
    /// the failure delay.
    Failed,
}

/// Runs the exchange on a new connection, whose transport gave it
/// `transport` (listener, protocol, address). Returns the request context
/// of the authenticated principal, or `None` when the connection must close.
/// Frames are read with `sasl.server.max.receive.size` as their bound and
/// the reader's own bound is restored after.
pub async fn authenticate<R, W>(
    frames: &mut FrameReader<R>,
    socket: &mut W,
    ctx: &BrokerContext,
    gate: &SaslGate,
    transport: RequestContext,
    idle_timeout: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<(RequestContext, Session)>
where
    R: AsyncRead + Unpin,
    W: ResponseWriter,
{
    // The transport's context (listener, protocol, address); only the
    // principal changes once the client has authenticated.
    let context = transport;
    let peer = context
        .client_address
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let bound = frames.max_frame();
    frames.set_max_frame(bound.min(gate.max_receive_size));
    let mut state = State::HandshakeOrVersions;
    let outcome = loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break Err(Refusal::Close("broker shutting down".into())),
            next = frames.next_frame() => next,
            _ = sleep_opt(idle_timeout) => break Err(Refusal::Close("no authentication within connections.max.idle.ms".into())),
        };
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => break Err(Refusal::Close("client closed the connection".into())),
            Err(e) => break Err(Refusal::Close(format!("before authentication: {e}"))),
        };
        match step(&mut state, frame.bytes, socket, ctx, gate, &context, peer).await {
            Ok(Some(done)) => break Ok(done),
            Ok(None) => {}
            Err(r) => break Err(r),
        }
    };
    frames.set_max_frame(bound);
    match outcome {
        Ok((principal, session)) => {
            tracing::debug!(%peer, %principal, ?session, "authenticated");
            Some((
                RequestContext {
                    principal,
                    ..context
                },
                session,
            ))
        }
        Err(Refusal::Close(reason)) => {
            tracing::debug!(%peer, "closing unauthenticated connection: {reason}");
            None
        }
        Err(Refusal::Failed) => {
            tokio::time::sleep(gate.failure_delay).await;
            None
        }
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Handles one frame; the principal and its session once authenticated.
async fn step<W: ResponseWriter>(
    state: &mut State,
    frame: Bytes,
    socket: &mut W,
    ctx: &BrokerContext,
    gate: &SaslGate,
    context: &RequestContext,
    peer: SocketAddr,
) -> Result<Option<(KafkaPrincipal, Session)>, Refusal> {
    if let State::Authenticate {
        server,
        framed: false,
    } = state
    {
        // SaslHandshake v0: the token is the whole frame, and so is the
        // answer (size-prefixed, no Kafka header).
        let mechanism = server.mechanism();
        let outcome = server.evaluate(&frame, &BrokerCredentials { gate, ctx, peer });
        return match outcome {
            Ok(SaslStep::Continue(token)) => {
                write_raw(socket, &token).await?;
                Ok(None)
            }
            Ok(SaslStep::Complete {
                response,
                authorization_id,
                credential_expires_at_ms,
            }) => {
                write_raw(socket, &response).await?;
                // No SaslAuthenticate answer to carry the lifetime: such a
                // client cannot re-authenticate, and is cut off at the end.
                let lifetime = gate.session_lifetime_ms(
                    mechanism,
                    credential_expires_at_ms,
                    ctx.clock.now_ms(),
                );
                Ok(Some((
                    KafkaPrincipal::user(authorization_id),
                    Session::starting_now(mechanism, lifetime),
                )))
            }
            Err(e) => {
                log_failure(peer, mechanism.name(), &e.to_string());
                Err(Refusal::Failed)
            }
        };
    }
    // Every other state reads Kafka requests. Like Kafka, look at the api
    // key before decoding anything else.
    let api_key = match frame.get(..2) {
        Some(k) => i16::from_be_bytes([k[0], k[1]]),
        None => return Err(Refusal::Close("request shorter than its header".into())),
    };
    let allowed: &[ApiKey] = match state {
        State::HandshakeOrVersions => &[ApiKey::ApiVersions, ApiKey::SaslHandshake],
        State::Handshake => &[ApiKey::SaslHandshake],
        State::Authenticate { .. } => &[ApiKey::SaslAuthenticate],
    };
    if !allowed.iter().any(|k| *k as i16 == api_key) {
        return Err(Refusal::Close(format!(
            "unexpected Kafka request of api key {api_key} during SASL authentication"
        )));
    }
    let (header, body) = match codec::decode_request(frame) {
        Decoded::Request(r) => (r.header, r.body),
        Decoded::Answer(bytes) => {
            // ApiVersions in a version this broker does not speak: the v0
            // fallback; the client asks again.
            write_all(socket, &bytes).await?;
            return Ok(None);
        }
        Decoded::Reject(reason) => return Err(Refusal::Close(reason)),
    };
    match body {
        RequestKind::ApiVersions(_) => {
            let response = handlers::handle_from(ctx, context, &header, body).await;
            let Response::Message(message) = response else {
                return Err(Refusal::Close("ApiVersions gave no answer".into()));
            };
            respond(socket, &header, &message).await?;
            *state = State::Handshake;
            Ok(None)
        }
        RequestKind::SaslHandshake(req) => {
            let mechanism =
                answer_handshake(&header, req.mechanism.as_str(), socket, gate, peer).await?;
            *state = State::Authenticate {
                server: SaslServer::new(mechanism, server_nonce()),
                framed: header.request_api_version >= 1,
            };
            Ok(None)
        }
        RequestKind::SaslAuthenticate(req) => {
            let State::Authenticate { server, .. } = state else {
                return Err(Refusal::Close(
                    "SaslAuthenticate before SaslHandshake".into(),
                ));
            };
            let mechanism = server.mechanism();
            let done = authenticate_token(
                server,
                &header,
                &req.auth_bytes,
                socket,
                ctx,
                gate,
                peer,
                None,
            )
            .await?;
            Ok(done.map(|(principal, lifetime)| {
                (principal, Session::starting_now(mechanism, lifetime))
            }))
        }
        _ => Err(Refusal::Close(
            "unexpected request during SASL authentication".into(),
        )),
    }
}

/// Answers a SaslHandshake: the enabled mechanisms, and the one the client
/// asked for if it is one of them; else UNSUPPORTED_SASL_MECHANISM and a
/// failure.
pub(super) async fn answer_handshake<W: ResponseWriter>(
    header: &RequestHeader,
    requested: &str,
    socket: &mut W,
    gate: &SaslGate,
    peer: SocketAddr,
) -> Result<SaslMechanism, Refusal> {
    let enabled: Vec<StrBytes> = gate
        .config
        .mechanisms
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let mechanism = requested
        .parse::<SaslMechanism>()
        .ok()
        .filter(|m| gate.config.mechanisms.contains(m));
    let Some(mechanism) = mechanism else {
        let answer = SaslHandshakeResponse::default()
            .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
            .with_mechanisms(enabled);
        respond(socket, header, &ResponseKind::SaslHandshake(answer)).await?;
        log_failure(
            peer,
            requested,
            &format!("Unsupported SASL mechanism {requested}"),
        );
        return Err(Refusal::Failed);
    };
    let answer = SaslHandshakeResponse::default().with_mechanisms(enabled);
    respond(socket, header, &ResponseKind::SaslHandshake(answer)).await?;
    Ok(mechanism)
}

/// A SaslAuthenticate answer of SASL_AUTHENTICATION_FAILED.
pub(super) fn failed_answer(message: String) -> ResponseKind {
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(StrBytes::from_string(message))),
    )
}

/// One SaslAuthenticate token. At the end: the principal (which must be
/// `previous` when re-authenticating) and the session lifetime the answer
/// told the client (`None`: the session never ends).
#[allow(clippy::too_many_arguments)]
pub(super) async fn authenticate_token<W: ResponseWriter>(
    server: &mut SaslServer,
    header: &RequestHeader,
    token: &[u8],
    socket: &mut W,
    ctx: &BrokerContext,
    gate: &SaslGate,
    peer: SocketAddr,
    previous: Option<&KafkaPrincipal>,
) -> Result<Option<(KafkaPrincipal, Option<i64>)>, Refusal> {
    let mechanism = server.mechanism();
    let step = server
        .evaluate(token, &BrokerCredentials { gate, ctx, peer })
        .and_then(|step| match (step, previous) {
            (SaslStep::Complete { authorization_id, .. }, Some(p))
                if KafkaPrincipal::user(authorization_id.clone()) != *p =>
            {
                Err(AuthError::SaslAuthentication(format!(
                    "Cannot change principals during re-authentication from {}.{}: User.{authorization_id}",
                    p.principal_type(),
                    p.name()
                )))
            }
            (step, _) => Ok(step),
        });
    let (answer, principal) = match step {
        Ok(SaslStep::Continue(token)) => (
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token)),
            None,
        ),
        Ok(SaslStep::Complete {
            response,
            authorization_id,
            credential_expires_at_ms,
        }) => {
            let lifetime =
                gate.session_lifetime_ms(mechanism, credential_expires_at_ms, ctx.clock.now_ms());
            (
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(response))
                    .with_session_lifetime_ms(lifetime.unwrap_or(0)),
                Some((KafkaPrincipal::user(authorization_id), lifetime)),
            )
        }
        Err(e) => {
            log_failure(peer, mechanism.name(), &e.to_string());
            let message = match e {
                AuthError::SaslAuthentication(m) => m,
                // The detail may say whether the user exists: the client
                // gets Kafka's generic message.
                _ => format!(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
                ),
            };
            respond(socket, header, &failed_answer(message)).await?;
            return Err(Refusal::Failed);
        }
    };
    respond(socket, header, &ResponseKind::SaslAuthenticate(answer)).await?;
    Ok(principal)
}

pub(super) async fn respond<W: ResponseWriter>(
    socket: &mut W,
    header: &RequestHeader,
    message: &ResponseKind,
) -> Result<(), Refusal> {
    let bytes = codec::encode_response(header, message)
        .map_err(|e| Refusal::Close(format!("cannot encode response: {e}")))?;
    write_all(socket, &bytes).await
}

async fn write_raw<W: ResponseWriter>(socket: &mut W, token: &[u8]) -> Result<(), Refusal> {
    let mut out = Vec::with_capacity(4 + token.len());
    out.extend_from_slice(&(token.len() as u32).to_be_bytes());
    out.extend_from_slice(token);
    write_all(socket, &out).await
}

async fn write_all<W: ResponseWriter>(socket: &mut W, bytes: &[u8]) -> Result<(), Refusal> {
    socket
        .write_all(bytes)
        .await
        .map_err(|e| Refusal::Close(format!("write failed: {e}")))
}
