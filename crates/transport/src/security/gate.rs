//! The server side of node-to-node security: the controller listener's
//! gate, which every connection passes before it is classified as Kafka's
//! protocol or the metadata quorum's RPC (`listener.rs`). TLS with the
//! listener's keystore (a client certificate's subject, mapped by
//! `ssl.principal.mapping.rules`, names the principal), then, on a SASL
//! listener, Kafka's `SaslServerAuthenticator` exchange in Kafka's framing:
//! ApiVersions (answered), SaslHandshake v1, SaslAuthenticate until the
//! mechanism completes. Both the controller APIs and the raft RPC thus see
//! an authenticated principal, as Kafka's controller listener does.
//!
//! Bounds: the whole gate runs within the handshake timeout; it holds one
//! request at a time of at most [`MAX_SASL_REQUEST_BYTES`] (Kafka's default
//! `sasl.server.max.receive.size`); anything but ApiVersions, SaslHandshake
//! and SaslAuthenticate before the exchange completes closes the
//! connection, as Kafka does.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_auth::sasl::{Credentials, SaslMechanism, SaslServer, SaslStep, ScramServer};
use sluice_auth::{KafkaPrincipal, SslPrincipalMapper};
use sluice_controller::raft::BoxConn;
use sluice_protocol::{
    api_versions_fallback_frame, api_versions_response, decode_request_with, encode_response,
    kafka_protocol, FrameReader, ProtocolError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::TransportError;

/// Kafka's default `sasl.server.max.receive.size`.
pub const MAX_SASL_REQUEST_BYTES: usize = 524_288;

/// What the gate answers before authentication.
const GATE_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// Where a SASL controller listener finds users' secrets: PLAIN's JAAS
/// users, SCRAM credentials of the controller's metadata image.
pub type SharedCredentials = Arc<dyn Credentials + Send + Sync>;

/// The TLS side of a secured listener.
#[derive(Clone)]
pub struct TlsAccept {
    pub config: Arc<rustls::ServerConfig>,
    pub mapper: SslPrincipalMapper,
}

/// The SASL side of a secured listener.
#[derive(Clone)]
pub struct SaslAccept {
    /// Enabled mechanisms, in the configured order.
    pub mechanisms: Vec<SaslMechanism>,
    pub credentials: SharedCredentials,
}

/// How one listener of node-to-node traffic admits a connection.
#[derive(Clone)]
pub struct ServerSecurity {
    /// The listener's name (log lines).
    pub listener: String,
    pub tls: Option<TlsAccept>,
    pub sasl: Option<SaslAccept>,
    /// Bounds the TLS handshake and the SASL exchange together.
    pub handshake_timeout: Duration,
    /// The API versions answered to ApiVersions before authentication.
    pub apis: Vec<(ApiKey, i16, i16)>,
}

impl fmt::Debug for ServerSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSecurity")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| &s.mechanisms))
            .finish()
    }
}

fn refused(peer: SocketAddr, reason: impl Into<String>) -> TransportError {
    TransportError::Authentication {
        peer,
        reason: reason.into(),
    }
}

impl ServerSecurity {
    /// Runs TLS and SASL (as configured) on a new connection from `peer`:
    /// the stream to read requests from and the connection's principal.
    pub async fn admit<S>(
        &self,
        stream: S,
        peer: SocketAddr,
    ) -> Result<(BoxConn, KafkaPrincipal), TransportError>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        let timeout = self.handshake_timeout;
        tokio::time::timeout(timeout, self.admit_unbounded(stream, peer))
            .await
            .map_err(|_| refused(peer, format!("not authenticated within {timeout:?}")))?
    }

    async fn admit_unbounded<S>(
        &self,
        stream: S,
        peer: SocketAddr,
    ) -> Result<(BoxConn, KafkaPrincipal), TransportError>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        let (mut conn, mut principal): (BoxConn, _) = match &self.tls {
            None => (Box::new(stream), KafkaPrincipal::anonymous()),
            Some(tls) => {
                let s = tokio_rustls::TlsAcceptor::from(tls.config.clone())
                    .accept(stream)
                    .await
                    .map_err(|e| refused(peer, format!("TLS handshake failed: {e}")))?;
                let principal = match s.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    None => KafkaPrincipal::anonymous(),
                    Some(cert) => {
                        let dn = sluice_auth::dn::subject_dn(cert)
                            .map_err(|e| refused(peer, format!("client certificate: {e}")))?;
                        let name = tls.mapper.map(&dn).ok_or_else(|| {
                            refused(
                                peer,
                                format!("no ssl.principal.mapping.rules rule applies to {dn}"),
                            )
                        })?;
                        KafkaPrincipal::user(name)
                    }
                };
                (Box::new(s), principal)
            }
        };
        if let Some(sasl) = &self.sasl {
            principal = self.sasl_exchange(&mut conn, sasl, peer).await?;
        }
        Ok((conn, principal))
    }

    /// Kafka's server side of SaslHandshake v1 + SaslAuthenticate.
    async fn sasl_exchange(
        &self,
        conn: &mut BoxConn,
        sasl: &SaslAccept,
        peer: SocketAddr,
    ) -> Result<KafkaPrincipal, TransportError> {
        let mut frames = FrameReader::new(MAX_SASL_REQUEST_BYTES);
        let mut server: Option<SaslServer> = None;
        let mut answered_api_versions = false;
        loop {
            let frame = read_frame(conn, &mut frames, peer).await?;
            let req = match decode_request_with(frame, GATE_APIS) {
                Ok(r) => r,
                Err(ProtocolError::UnsupportedVersion {
                    api_key: ApiKey::ApiVersions,
                    correlation_id,
                    ..
                }) => {
                    let b = api_versions_fallback_frame(&self.apis, correlation_id)?;
                    write(conn, &b, peer).await?;
                    continue;
                }
                Err(e) => return Err(refused(peer, format!("before authentication: {e}"))),
            };
            let (key, version, cid) = (req.api_key, req.api_version(), req.correlation_id());
            let (answer, after) = match req.body {
                RequestKind::ApiVersions(_) if !answered_api_versions && server.is_none() => {
                    answered_api_versions = true;
                    let mut apis = self.apis.clone();
                    apis.extend(GATE_APIS.iter().filter(|(k, ..)| *k != ApiKey::ApiVersions));
                    apis.sort_by_key(|(k, ..)| *k as i16);
                    let resp = api_versions_response(&apis, 0);
                    (ResponseKind::ApiVersions(resp), After::Next)
                }
                RequestKind::SaslHandshake(r) if server.is_none() => {
                    let wanted = r.mechanism.as_str();
                    let enabled: Vec<StrBytes> = sasl
                        .mechanisms
                        .iter()
                        .map(|m| StrBytes::from_static_str(m.name()))
                        .collect();
                    let resp = SaslHandshakeResponse::default().with_mechanisms(enabled);
                    match sasl.mechanisms.iter().find(|m| m.name() == wanted) {
                        Some(m) => {
                            server = Some(SaslServer::new(*m, server_nonce()));
                            (ResponseKind::SaslHandshake(resp), After::Next)
                        }
                        None => {
                            (
                                ResponseKind::SaslHandshake(resp.with_error_code(
                                    ResponseError::UnsupportedSaslMechanism.code(),
                                )),
                                After::Refuse(format!("SASL mechanism {wanted} is not enabled")),
                            )
                        }
                    }
                }
                RequestKind::SaslAuthenticate(r) if server.is_some() => {
                    let s = server.as_mut().expect("checked by the guard");
                    match s.evaluate(&r.auth_bytes, &*sasl.credentials) {
                        Ok(SaslStep::Continue(challenge)) => (
                            ResponseKind::SaslAuthenticate(
                                SaslAuthenticateResponse::default()
                                    .with_auth_bytes(challenge.into()),
                            ),
                            After::Next,
                        ),
                        Ok(SaslStep::Complete {
                            response,
                            authorization_id,
                            ..
                        }) => (
                            ResponseKind::SaslAuthenticate(
                                SaslAuthenticateResponse::default()
                                    .with_auth_bytes(response.into()),
                            ),
                            After::Admit(KafkaPrincipal::user(authorization_id)),
                        ),
                        Err(e) => (
                            ResponseKind::SaslAuthenticate(
                                SaslAuthenticateResponse::default()
                                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                    .with_error_message(Some(StrBytes::from_static_str(
                                        "Authentication failed: Invalid username or password",
                                    ))),
                            ),
                            After::Refuse(format!(
                                "SASL {} authentication failed: {e}",
                                s.mechanism()
                            )),
                        ),
                    }
                }
                _ => {
                    return Err(refused(
                        peer,
                        format!("{key:?} v{version} before SASL authentication completed"),
                    ))
                }
            };
            let b = encode_response(key, cid, version, &answer)?;
            write(conn, &b, peer).await?;
            match after {
                After::Next => {}
                After::Refuse(why) => return Err(refused(peer, why)),
                After::Admit(_) if frames.buffered() > 0 => {
                    return Err(refused(
                        peer,
                        "sent a request before its SASL authentication was answered",
                    ))
                }
                After::Admit(principal) => return Ok(principal),
            }
        }
    }
}

/// What the gate does once a request's answer is written.
enum After {
    /// Read the next request.
    Next,
    /// Authenticated: the connection goes on as this principal.
    Admit(KafkaPrincipal),
    /// Close the connection, logging why.
    Refuse(String),
}

/// A fresh SCRAM server nonce.
fn server_nonce() -> String {
    ScramServer::nonce(&sluice_runtime::random_bytes::<24>())
}

async fn read_frame(
    conn: &mut BoxConn,
    frames: &mut FrameReader,
    peer: SocketAddr,
) -> Result<bytes::Bytes, TransportError> {
    loop {
        if let Some(f) = frames.next_frame()? {
            return Ok(f);
        }
        let n = conn
            .read_buf(frames.read_buf())
            .await
            .map_err(|e| refused(peer, format!("read failed during authentication: {e}")))?;
        if n == 0 {
            return Err(refused(peer, "closed the connection during authentication"));
        }
    }
}

async fn write(conn: &mut BoxConn, bytes: &[u8], peer: SocketAddr) -> Result<(), TransportError> {
    conn.write_all(bytes)
        .await
        .and(conn.flush().await)
        .map_err(|e| refused(peer, format!("write failed during authentication: {e}")))
}
