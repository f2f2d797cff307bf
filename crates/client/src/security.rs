//! How a [`RawConnection`](crate::RawConnection) secures itself: TLS with
//! rustls, then a SASL login (PLAIN, or SCRAM with the server's signature
//! checked), as Kafka's client security keys ask (the `sluice` CLI's
//! `--command-config` builds a [`Security`] from them).

use std::sync::Arc;

/// `sasl.mechanism` with the JAAS entry's login.
pub use sluice_auth::sasl::SaslLogin;

/// TLS (with the trusted CAs), SASL, both or neither (the default:
/// PLAINTEXT).
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// The broker's certificate must name the host dialled, as with
    /// Kafka's default `ssl.endpoint.identification.algorithm=https`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

/// The TLS server name of `host:port` (an IP address or a DNS name).
pub(crate) fn server_name(addr: &str) -> Option<rustls_pki_types::ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls_pki_types::ServerName::try_from(host.to_string()).ok()
}
