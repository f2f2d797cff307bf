//! What each listener speaks, built once at start from its config: the
//! listener's name and security protocol, and its TLS server for `SSL`.
//!
//! Owns the one place a connection's byte stream and [`RequestContext`]
//! are made ([`ListenerTransport::serve_tcp`]): PLAINTEXT connections are
//! served as accepted (fetched records with `sendfile`), SSL connections
//! after a bounded handshake on their own task (fetched records read into
//! the buffers rustls encrypts). Every request of a connection carries its
//! listener, protocol and principal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_auth::{KafkaPrincipal, ListenerName, SecurityProtocol};
use sluice_transport::net::BoxStream;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::connection::{self, ConnectionConfig};
use super::net_time::{Charged, NetTimeSwitch};
use super::tls::{self, TlsServer};
use crate::config::ssl::ListenerSecurity;
use crate::context::BrokerContext;
use crate::error::BrokerError;
use crate::request::{ConnectionThrottle, RequestContext};

/// One listener's protocol and, for `SSL`, its TLS server.
pub struct ListenerTransport {
    pub name: ListenerName,
    pub protocol: SecurityProtocol,
    tls: Option<Arc<TlsServer>>,
}

impl ListenerTransport {
    /// A `PLAINTEXT` listener called `name`.
    pub fn plaintext(name: &str) -> Self {
        Self {
            name: ListenerName::new(name),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
        }
    }

    /// The listener `name` as configured; reads its keystore and
    /// truststore. `handshake_timeout` bounds each TLS handshake.
    pub fn new(
        name: &str,
        security: &ListenerSecurity,
        handshake_timeout: Duration,
    ) -> Result<Self, BrokerError> {
        let tls = match &security.ssl {
            Some(ssl) => Some(Arc::new(TlsServer::new(name, ssl, handshake_timeout)?)),
            None => None,
        };
        Ok(Self {
            name: ListenerName::new(name),
            protocol: security.protocol,
            tls,
        })
    }

    /// The TLS server of an `SSL`/`SASL_SSL` listener (reloaded at runtime).
    pub fn tls_server(&self) -> Option<Arc<TlsServer>> {
        self.tls.clone()
    }

    /// The context of every request of a connection from `peer`.
    pub fn context(&self, principal: KafkaPrincipal, peer: SocketAddr) -> RequestContext {
        RequestContext {
            principal,
            listener: self.name.clone(),
            security_protocol: self.protocol,
            client_address: Some(peer),
            throttle: Default::default(),
        }
    }

    /// Serves one accepted TCP connection until it ends.
    pub async fn serve_tcp(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        ctx: BrokerContext,
        config: ConnectionConfig,
        shutdown: watch::Receiver<bool>,
    ) {
        let Some(tls) = &self.tls else {
            let request = self.context(KafkaPrincipal::anonymous(), peer);
            return connection::serve(stream, peer, request, ctx, config, shutdown).await;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set_nodelay failed");
        }
        // The handshake is network time of the connection's client (Kafka
        // charges it with the first request).
        let throttle = ConnectionThrottle::default();
        let switch = NetTimeSwitch::new(ctx.image.clone());
        match Charged::new(tls.accept(stream), switch, throttle.clone()).await {
            Ok((stream, principal)) => {
                tracing::debug!(%peer, listener = %self.name, %principal, "TLS handshake done");
                let request = RequestContext {
                    throttle,
                    ..self.context(principal, peer)
                };
                connection::serve_stream(Box::new(stream), peer, request, ctx, config, shutdown)
                    .await
            }
            Err(e) => tls::log_failed_handshake(self.name.as_str(), peer, &e),
        }
    }

    /// Serves a connection from another acceptor (the simulation's
    /// network): plaintext, on this listener's name.
    pub async fn serve_other(
        self: Arc<Self>,
        stream: BoxStream,
        peer: SocketAddr,
        ctx: BrokerContext,
        config: ConnectionConfig,
        shutdown: watch::Receiver<bool>,
    ) {
        let request = self.context(KafkaPrincipal::anonymous(), peer);
        connection::serve_stream(stream, peer, request, ctx, config, shutdown).await
    }
}
