//! KIP-368 re-authentication of an authenticated SASL connection, as
//! Kafka's `SaslServerAuthenticator` and `SocketServer` do it.
//!
//! When `connections.max.reauth.ms` (per listener and mechanism:
//! `listener.name.<l>.<mechanism>.connections.max.reauth.ms`) is positive,
//! or the credential expires (an OAUTHBEARER token's `exp`), the last
//! SaslAuthenticate answer (v1+) carries the shorter of the two as
//! `session_lifetime_ms` and the session ends that long after
//! authentication. A client (librdkafka, Java) re-authenticates before
//! then on the same connection: SaslHandshake v1, then SaslAuthenticate
//! requests, between its ordinary requests. The connection's processor
//! hands each request to [`Reauth::intercept`] first:
//! - SaslHandshake starts a re-authentication, even after the session
//!   ended (Kafka checks it before the expiry), if the session has an end
//!   and no re-authentication started in the last second; otherwise it
//!   goes to its handler, which answers ILLEGAL_SASL_STATE, as Kafka's
//!   `KafkaChannel.maybeBeginServerReauthentication` decides. The mechanism must be the
//!   session's: another is accepted by the handshake and refused by the
//!   next SaslAuthenticate, with Kafka's message.
//! - SaslAuthenticate continues it; at the end the principal must be the
//!   session's ("Cannot change principals during re-authentication"), and
//!   the session gets a new lifetime. A failure is answered with
//!   SASL_AUTHENTICATION_FAILED, then the connection closes after
//!   `connection.failed.authentication.delay.ms`.
//! - Any other request during an exchange closes the connection; after
//!   the session ended it closes the connection too (Kafka's "expired
//!   channel"), so a client that does not re-authenticate is cut off.
//!
//! Invariant: requests are answered in order (the processor handles one
//! at a time), so the exchange never interleaves with another answer.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, RequestKind};
use sluice_auth::sasl::{SaslMechanism, SaslServer};
use tokio::time::Instant;

use super::sasl::{self, Refusal, SaslGate};
use super::sendfile::ResponseWriter;
use crate::context::BrokerContext;
use crate::request::RequestContext;

/// A SASL connection's authenticated session.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub mechanism: SaslMechanism,
    /// When the session ends; `None`: never (`connections.max.reauth.ms`
    /// is 0).
    pub expires_at: Option<Instant>,
}

impl Session {
    /// A session that began now and lasts `lifetime_ms` (`None`: for ever;
    /// `Some(0)`: it has ended already, as with a token that expired within
    /// the clock skew).
    pub fn starting_now(mechanism: SaslMechanism, lifetime_ms: Option<i64>) -> Session {
        let expires_at = lifetime_ms.map(|ms| {
            Instant::now() + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        });
        Session {
            mechanism,
            expires_at,
        }
    }

    fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| Instant::now() >= at)
    }
}

/// Where a re-authentication is.
enum Exchange {
    /// The mechanism's tokens, in SaslAuthenticate requests.
    Running(SaslServer),
    /// The client asked for another mechanism: its next SaslAuthenticate
    /// fails with this message.
    BadMechanism(String),
}

/// What [`Reauth::intercept`] did with a request.
pub enum Intercept {
    /// Not a re-authentication request: handle it as usual.
    Pass,
    /// Answered here.
    Answered,
    /// Close the connection (the reason is for the log).
    Close(String),
}

/// The re-authentication state of one SASL connection.
pub struct Reauth {
    gate: Arc<SaslGate>,
    session: Session,
    exchange: Option<Exchange>,
    /// When the last re-authentication began.
    last_start: Option<Instant>,
}

/// Kafka's `MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS`.
const MIN_REAUTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Reauth {
    pub fn new(gate: Arc<SaslGate>, session: Session) -> Reauth {
        Reauth {
            gate,
            session,
            exchange: None,
            last_start: None,
        }
    }

    /// See the module docs. `context.principal` is the session's.
    pub async fn intercept<W: ResponseWriter>(
        &mut self,
        header: &RequestHeader,
        body: &RequestKind,
        socket: &mut W,
        ctx: &BrokerContext,
        context: &RequestContext,
        peer: SocketAddr,
    ) -> Intercept {
        let outcome = match (body, self.exchange.is_some()) {
            (RequestKind::SaslHandshake(req), false) if self.may_begin() => {
                self.last_start = Some(Instant::now());
                self.handshake(header, req.mechanism.as_str(), socket, peer)
                    .await
            }
            (RequestKind::SaslAuthenticate(req), true) => {
                self.authenticate(header, &req.auth_bytes, socket, ctx, context, peer)
                    .await
            }
            (_, true) => Err(Refusal::Close(
                "unexpected request during SASL re-authentication".into(),
            )),
            (_, false) if self.session.expired() => {
                crate::metrics::expired_session_killed();
                Err(Refusal::Close(
                    "its SASL session expired (connections.max.reauth.ms) and it did not re-authenticate"
                        .into(),
                ))
            }
            (_, false) => return Intercept::Pass,
        };
        match outcome {
            Ok(()) => Intercept::Answered,
            Err(Refusal::Close(reason)) => Intercept::Close(reason),
            Err(Refusal::Failed) => {
                tokio::time::sleep(self.gate.failure_delay).await;
                Intercept::Close("SASL re-authentication failed".into())
            }
        }
    }

    /// Whether a SaslHandshake now begins a re-authentication.
    fn may_begin(&self) -> bool {
        self.session.expires_at.is_some()
            && self
                .last_start
                .is_none_or(|at| at.elapsed() >= MIN_REAUTH_INTERVAL)
    }

    async fn handshake<W: ResponseWriter>(
        &mut self,
        header: &RequestHeader,
        requested: &str,
        socket: &mut W,
        peer: SocketAddr,
    ) -> Result<(), Refusal> {
        if header.request_api_version < 1 {
            return Err(Refusal::Close(
                "re-authentication with SaslHandshake v0 (it needs v1)".into(),
            ));
        }
        let mechanism = sasl::answer_handshake(header, requested, socket, &self.gate, peer).await?;
        self.exchange = Some(if mechanism == self.session.mechanism {
            Exchange::Running(SaslServer::new(mechanism, sasl::server_nonce()))
        } else {
            Exchange::BadMechanism(format!(
                "SASL mechanism '{mechanism}' requested by client is not supported for re-authentication of mechanism '{}'",
                self.session.mechanism
            ))
        });
        Ok(())
    }

    async fn authenticate<W: ResponseWriter>(
        &mut self,
        header: &RequestHeader,
        token: &[u8],
        socket: &mut W,
        ctx: &BrokerContext,
        context: &RequestContext,
        peer: SocketAddr,
    ) -> Result<(), Refusal> {
        let server = match self.exchange.as_mut() {
            Some(Exchange::Running(server)) => server,
            Some(Exchange::BadMechanism(message)) => {
                let message = message.clone();
                sasl::log_failure(peer, self.session.mechanism.name(), &message);
                sasl::respond(socket, header, &sasl::failed_answer(message)).await?;
                return Err(Refusal::Failed);
            }
            None => unreachable!("SaslAuthenticate is routed here only during an exchange"),
        };
        let done = sasl::authenticate_token(
            server,
            header,
            token,
            socket,
            ctx,
            &self.gate,
            peer,
            Some(&context.principal),
        )
        .await?;
        if let Some((_, lifetime_ms)) = done {
            self.session = Session::starting_now(self.session.mechanism, lifetime_ms);
            self.exchange = None;
            crate::metrics::reauthenticated();
            tracing::debug!(%peer, principal = %context.principal, ?lifetime_ms, "re-authenticated");
        }
        Ok(())
    }
}
