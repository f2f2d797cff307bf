//! TLS for `SSL` listeners, in user space with rustls (ring provider: no
//! OpenSSL, no kernel TLS on this class of machine).
//!
//! Owns turning a listener's [`SslSettings`] into a rustls server
//! configuration at start (PEM keystore and truststore, from files or
//! inline text; client-certificate verification per `ssl.client.auth`; the
//! enabled TLS versions), and the handshake of each accepted connection:
//! bounded in time (the whole handshake must finish within the listener's
//! handshake timeout) and in memory (rustls bounds handshake messages and
//! its buffers), on the connection's own task, so a client that stalls or
//! sends garbage costs only its own connection slot. After the handshake
//! the connection's principal is `User:<subject DN, mapped>` for a
//! verified client certificate, else `User:ANONYMOUS`.
//!
//! The configuration is swapped whole when the keystore or truststore is
//! changed at runtime ([`super::tls_reload`], KIP-226): each handshake
//! reads the current one once, so a connection uses one configuration from
//! start to end, and connections already open are not touched.
//!
//! Records leave in full 16 KiB TLS records: rustls fragments plaintext at
//! its maximum, and the response writer hands it large writes
//! ([`super::sendfile`]'s copy path) which rustls encrypts and the socket
//! gets in one `writev` each (up to [`SEND_BUFFER`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sluice_auth::san::{self, SubjectAltName};
use sluice_auth::KafkaPrincipal;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ssl::{ClientAuth, KeyStore, Secret, SslSettings, TlsProtocol, TrustStore};
use crate::error::BrokerError;

use super::read_ahead::ReadAhead;

/// Bytes of TLS records rustls holds for a connection before it must write
/// them to the socket (its default is 64 KiB): one copy step of a response
/// ([`super::sendfile::COPY_STEP`]) and its record overhead, so each step
/// leaves in one `writev`. Bounded, and held only while a response is
/// being written.
pub const SEND_BUFFER: usize = super::sendfile::COPY_STEP + 16 * 1024;

/// A listener's TLS server side.
pub struct TlsServer {
    listener: String,
    /// Swapped whole by [`TlsServer::install`]; read once per handshake.
    current: RwLock<Arc<ActiveTls>>,
    handshake_timeout: Duration,
}

/// One built configuration of a listener and what it was built from.
pub struct ActiveTls {
    acceptor: TlsAcceptor,
    settings: SslSettings,
    stores: Stores,
    /// The subject of the keystore's leaf certificate (RFC 2253).
    subject: String,
    /// The SubjectAltNames of the keystore's leaf certificate.
    subject_alt_names: BTreeSet<SubjectAltName>,
}

/// Where the keystore and truststore come from and the text of their
/// files: a reload builds a new configuration only when this changed (a
/// file rewritten in place counts, as Kafka reloads a modified file).
#[derive(PartialEq)]
struct Stores {
    keystore: KeyStore,
    truststore: Option<TrustStore>,
    file_texts: Vec<Secret>,
}

/// Why a connection did not get past the handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake did not finish within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] io::Error),
    #[error("client certificate: {0}")]
    Principal(String),
}

fn tls_error(listener: &str, key: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::Tls {
        listener: listener.to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl TlsServer {
    /// Reads the listener's PEM material and builds its rustls
    /// configuration; any problem is an error naming the key.
    pub fn new(
        listener: &str,
        ssl: &SslSettings,
        handshake_timeout: Duration,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            listener: listener.to_string(),
            current: RwLock::new(Arc::new(build(listener, ssl)?)),
            handshake_timeout,
        })
    }

    /// The settings the current configuration was built from.
    pub fn settings(&self) -> SslSettings {
        self.current.read().settings.clone()
    }

    /// A configuration built from `ssl` when its keystore or truststore
    /// differs from the current one's (source or file text); `None` when
    /// nothing changed. Refused, as Kafka's `SslFactory` refuses it, when
    /// the new leaf certificate names another subject and
    /// `ssl.allow.dn.changes` is off, or lacks one of the current
    /// SubjectAltNames and `ssl.allow.san.changes` is off: clients and
    /// peers verify this broker by those names.
    pub fn prepare(&self, ssl: &SslSettings) -> Result<Option<ActiveTls>, BrokerError> {
        let current = self.current.read().clone();
        let stores = stores(&self.listener, ssl)?;
        if stores == current.stores {
            return Ok(None);
        }
        let next = build(&self.listener, ssl)?;
        if next.subject != current.subject && !ssl.allow_dn_changes {
            return Err(tls_error(
                &self.listener,
                keystore_key(&ssl.keystore),
                format!(
                    "Keystore DistinguishedName does not match: existing={}, new={}",
                    current.subject, next.subject
                ),
            ));
        }
        if !ssl.allow_san_changes
            && !next
                .subject_alt_names
                .is_superset(&current.subject_alt_names)
        {
            return Err(tls_error(
                &self.listener,
                keystore_key(&ssl.keystore),
                format!(
                    "Keystore SubjectAltNames do not match: existing={}, new={}",
                    san::display_set(&current.subject_alt_names),
                    san::display_set(&next.subject_alt_names)
                ),
            ));
        }
        Ok(Some(next))
    }

    /// Makes `next` the configuration of every handshake from now on.
    pub fn install(&self, next: ActiveTls) {
        *self.current.write() = Arc::new(next);
    }

    /// Runs the server side of the handshake on `tcp` and names the
    /// connection's principal. rustls reads the socket through a
    /// [`ReadAhead`] (one `recv` for several of its 4 KiB steps).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<ReadAhead>, KafkaPrincipal), HandshakeError> {
        let active = self.current.read().clone();
        let tcp = ReadAhead::new(tcp);
        let stream = tokio::time::timeout(self.handshake_timeout, active.acceptor.accept(tcp))
            .await
            .map_err(|_| HandshakeError::Timeout(self.handshake_timeout))?
            .map_err(HandshakeError::Failed)?;
        let mut stream = stream;
        stream.get_mut().1.set_buffer_limit(Some(SEND_BUFFER));
        let principal = {
            let (_, connection) = stream.get_ref();
            match connection.peer_certificates().and_then(|c| c.first()) {
                None => KafkaPrincipal::anonymous(),
                Some(cert) => {
                    let dn = sluice_auth::dn::subject_dn(cert)
                        .map_err(|e| HandshakeError::Principal(e.to_string()))?;
                    let name = active.settings.principal_mapper.map(&dn).ok_or_else(|| {
                        HandshakeError::Principal(format!(
                            "no ssl.principal.mapping.rules rule applies to {dn}"
                        ))
                    })?;
                    KafkaPrincipal::user(name)
                }
            }
        };
        Ok((stream, principal))
    }
}

fn keystore_key(keystore: &KeyStore) -> &str {
    match keystore {
        KeyStore::File { key, .. } | KeyStore::Inline { key, .. } => key,
    }
}

/// The sources of `ssl`'s stores and the text of their files.
fn stores(listener: &str, ssl: &SslSettings) -> Result<Stores, BrokerError> {
    let mut file_texts = Vec::new();
    if let KeyStore::File { key, path } = &ssl.keystore {
        file_texts.push(Secret(read_pem(listener, key, path)?));
    }
    if let Some(TrustStore::File { key, path }) = &ssl.truststore {
        file_texts.push(Secret(read_pem(listener, key, path)?));
    }
    Ok(Stores {
        keystore: ssl.keystore.clone(),
        truststore: ssl.truststore.clone(),
        file_texts,
    })
}

/// Reads the stores of `ssl` and builds its configuration. The files'
/// text is read before the configuration: were a file rewritten between
/// the two reads, the next reload sees a change and builds again.
fn build(listener: &str, ssl: &SslSettings) -> Result<ActiveTls, BrokerError> {
    let stores = stores(listener, ssl)?;
    let (config, leaf) = server_config_and_leaf(listener, ssl)?;
    let subject = sluice_auth::dn::subject_dn(&leaf).map_err(|e| {
        tls_error(
            listener,
            keystore_key(&ssl.keystore),
            format!("the certificate's subject cannot be read: {e}"),
        )
    })?;
    let subject_alt_names = san::subject_alt_names(&leaf).map_err(|e| {
        tls_error(
            listener,
            keystore_key(&ssl.keystore),
            format!("the certificate's SubjectAltNames cannot be read: {e}"),
        )
    })?;
    Ok(ActiveTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        settings: ssl.clone(),
        stores,
        subject,
        subject_alt_names,
    })
}

/// Logs a failed handshake (INFO, as Kafka logs failed authentication: a
/// client's mistake, not the broker's).
pub fn log_failed_handshake(listener: &str, peer: SocketAddr, error: &HandshakeError) {
    tracing::info!(%peer, listener, "closing connection: {error}");
}

/// Kafka's PEM values may come with their line breaks folded into spaces
/// (a `server.properties` value continued with `\`): rebuilds each
/// `-----BEGIN X----- … -----END X-----` block with its base64 body on a
/// line of its own, whitespace removed.
pub fn normalize_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_and_rest = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_and_rest.find(&end_marker) else {
            break;
        };
        let body: String = body_and_rest[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push_str(&format!("-----BEGIN {label}-----\n{body}\n{end_marker}\n"));
        rest = &body_and_rest[body_end + end_marker.len()..];
    }
    out
}

fn read_pem(listener: &str, key: &str, path: &std::path::Path) -> Result<String, BrokerError> {
    std::fs::read_to_string(path).map_err(|e| {
        tls_error(
            listener,
            key,
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

fn certificates(
    listener: &str,
    key: &str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, BrokerError> {
    let certs = CertificateDer::pem_slice_iter(normalize_pem(pem).as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(listener, key, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(listener, key, "no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(
    listener: &str,
    key: &str,
    pem: &str,
    password_set: bool,
) -> Result<PrivateKeyDer<'static>, BrokerError> {
    if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(tls_error(
            listener,
            key,
            format!(
                "the private key is encrypted{}; Sluice reads unencrypted keys only (PKCS#8, PKCS#1 or SEC1): decrypt it, e.g. `openssl pkcs8 -in key.pem -out plain.pem`, and drop ssl.key.password",
                if password_set { " (ssl.key.password)" } else { "" }
            ),
        ));
    }
    PrivateKeyDer::from_pem_slice(normalize_pem(pem).as_bytes()).map_err(|e| {
        tls_error(
            listener,
            key,
            format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

/// The key and certificate chain of `keystore`, with the key that supplied them.
fn load_keystore(
    listener: &str,
    keystore: &KeyStore,
    password_set: bool,
) -> Result<(String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), BrokerError> {
    Ok(match keystore {
        KeyStore::File { key, path } => {
            let pem = read_pem(listener, key, path)?;
            let private = private_key(listener, key, &pem, password_set)?;
            (key.clone(), certificates(listener, key, &pem)?, private)
        }
        KeyStore::Inline {
            key,
            private_key: pk,
            chain,
        } => {
            let private = private_key(listener, key, &pk.0, password_set)?;
            let chain = certificates(listener, "ssl.keystore.certificate.chain", &chain.0)?;
            (key.clone(), chain, private)
        }
    })
}

/// The CA certificates of `trust`, with the key that supplied them.
fn load_roots(listener: &str, trust: &TrustStore) -> Result<(String, RootCertStore), BrokerError> {
    let (trust_key, pem) = match trust {
        TrustStore::File { key, path } => (key.as_str(), read_pem(listener, key, path)?),
        TrustStore::Inline { key, certificates } => (key.as_str(), certificates.0.clone()),
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(listener, trust_key, &pem)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(listener, trust_key, format!("bad CA certificate: {e}")))?;
    }
    Ok((trust_key.to_string(), roots))
}

fn rustls_versions(protocols: &[TlsProtocol]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    protocols
        .iter()
        .map(|p| match p {
            TlsProtocol::Tls12 => &rustls::version::TLS12,
            TlsProtocol::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

/// The TLS client of a node dialling its peers on `listener` (issue 20):
/// the listener's truststore verifies them (and their names), its keystore,
/// if any, answers a request for a certificate.
pub fn client_config(
    listener: &str,
    ssl: &crate::config::node_security::ClientSsl,
) -> Result<rustls::ClientConfig, BrokerError> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (_, roots) = load_roots(listener, &ssl.truststore)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&rustls_versions(&ssl.protocols))
        .map_err(|e| tls_error(listener, "ssl.enabled.protocols", e.to_string()))?
        .with_root_certificates(roots);
    match &ssl.keystore {
        None => Ok(builder.with_no_client_auth()),
        Some(keystore) => {
            let (store_key, chain, key) = load_keystore(listener, keystore, false)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_error(
                    listener,
                    &store_key,
                    format!("the key does not fit the certificate chain: {e}"),
                )
            })
        }
    }
}

/// The rustls server configuration of an `SSL`/`SASL_SSL` listener.
pub fn server_config(listener: &str, ssl: &SslSettings) -> Result<ServerConfig, BrokerError> {
    server_config_and_leaf(listener, ssl).map(|(config, _)| config)
}

/// [`server_config`] and the keystore's leaf certificate.
fn server_config_and_leaf(
    listener: &str,
    ssl: &SslSettings,
) -> Result<(ServerConfig, CertificateDer<'static>), BrokerError> {
    let (store_key, chain, key) = load_keystore(listener, &ssl.keystore, ssl.key_password_set)?;
    let leaf = chain[0].clone();
    let store_key = store_key.as_str();
    // ring, not aws-lc-rs: the broker must build with gcc alone (no cmake
    // or OpenSSL headers needed). rustls deprecates this only because ring
    // has no post-quantum key exchange; the classical suites (AES-GCM with
    // the CPU's instructions, ChaCha20) are all there.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = rustls_versions(&ssl.protocols);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| tls_error(listener, "ssl.enabled.protocols", e.to_string()))?;
    let verifier = match (&ssl.truststore, ssl.client_auth) {
        (_, ClientAuth::None) | (None, _) => WebPkiClientVerifier::no_client_auth(),
        (Some(trust), auth) => {
            let (trust_key, roots) = load_roots(listener, trust)?;
            let trust_key = trust_key.as_str();
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            verifier
                .build()
                .map_err(|e| tls_error(listener, trust_key, e.to_string()))?
        }
    };
    let config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls_error(
                listener,
                store_key,
                format!("the key does not fit the certificate chain: {e}"),
            )
        })?;
    Ok((config, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ssl::Secret;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use sluice_auth::SslPrincipalMapper;
    use tokio::net::TcpListener;

    struct Pki {
        ca: String,
        server_key: String,
        server_chain: String,
        client_chain: Vec<CertificateDer<'static>>,
        client_key: PrivateKeyDer<'static>,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca_cert, &ca_key)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name = rcgen::DistinguishedName::new();
        client
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        client.distinguished_name.push(DnType::CommonName, "alice");
        let client = client.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
        Pki {
            ca: ca_cert.pem(),
            server_key: server_key.serialize_pem(),
            server_chain: server.pem(),
            client_chain: vec![client.der().clone()],
            client_key: PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes())
                .unwrap(),
        }
    }

    fn settings(pki: &Pki, client_auth: ClientAuth, rules: &str) -> SslSettings {
        SslSettings {
            keystore: KeyStore::Inline {
                key: "ssl.keystore.key".into(),
                private_key: Secret(pki.server_key.clone()),
                chain: Secret(pki.server_chain.clone()),
            },
            truststore: Some(TrustStore::Inline {
                key: "ssl.truststore.certificates".into(),
                certificates: Secret(pki.ca.clone()),
            }),
            client_auth,
            protocols: vec![TlsProtocol::Tls12, TlsProtocol::Tls13],
            principal_mapper: SslPrincipalMapper::from_rules(rules).unwrap(),
            allow_dn_changes: false,
            allow_san_changes: false,
            key_password_set: false,
        }
    }

    /// Handshakes a rustls client (with the client certificate when
    /// `with_cert`) against `server`; the server's answer.
    async fn handshake(
        pki: &Pki,
        server: &TlsServer,
        with_cert: bool,
    ) -> Result<KafkaPrincipal, HandshakeError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_cert {
            builder
                .with_client_auth_cert(pki.client_chain.clone(), pki.client_key.clone_key())
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name, tcp).await?;
            // Holds the connection open until the server has decided.
            let mut buf = [0u8; 1];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            Ok::<_, io::Error>(())
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let answer = server.accept(tcp).await.map(|(_, p)| p);
        client.abort();
        answer
    }

    #[tokio::test]
    async fn a_client_certificate_names_the_principal_through_the_mapping_rules() {
        let pki = pki();
        let timeout = Duration::from_secs(60);
        let server = TlsServer::new(
            "SSL",
            &settings(&pki, ClientAuth::Required, "DEFAULT"),
            timeout,
        )
        .unwrap();
        let p = handshake(&pki, &server, true).await.unwrap();
        assert_eq!(p.to_string(), "User:CN=alice,O=Acme\\, Inc.");
        assert!(handshake(&pki, &server, false).await.is_err());

        let mapped = settings(&pki, ClientAuth::Requested, "RULE:^CN=([^,]*),.*$/$1/U");
        let server = TlsServer::new("SSL", &mapped, timeout).unwrap();
        let p = handshake(&pki, &server, true).await.unwrap();
        assert_eq!(p.to_string(), "User:ALICE");
        let p = handshake(&pki, &server, false).await.unwrap();
        assert!(p.is_anonymous());

        let unmatched = settings(&pki, ClientAuth::Required, "RULE:^OU=(.*)$/$1/");
        let server = TlsServer::new("SSL", &unmatched, timeout).unwrap();
        assert!(matches!(
            handshake(&pki, &server, true).await,
            Err(HandshakeError::Principal(_))
        ));
    }

    #[test]
    fn bad_material_is_an_error_naming_the_key() {
        let pki = pki();
        let mut s = settings(&pki, ClientAuth::None, "DEFAULT");
        s.keystore = KeyStore::Inline {
            key: "ssl.keystore.key".into(),
            private_key: Secret(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----"
                    .into(),
            ),
            chain: Secret(pki.server_chain.clone()),
        };
        let Err(e) = TlsServer::new("SSL", &s, Duration::from_secs(1)) else {
            panic!("an encrypted key must be refused");
        };
        assert!(
            e.to_string().contains("ssl.keystore.key") && e.to_string().contains("encrypted"),
            "{e}"
        );
        s.keystore = KeyStore::File {
            key: "listener.name.ssl.ssl.keystore.location".into(),
            path: "/nonexistent/k.pem".into(),
        };
        let Err(e) = TlsServer::new("SSL", &s, Duration::from_secs(1)) else {
            panic!("a missing file must be refused");
        };
        assert!(
            e.to_string()
                .contains("listener.name.ssl.ssl.keystore.location"),
            "{e}"
        );
    }

    /// A self-signed keystore for `localhost` whose subject is `CN=<cn>`.
    fn keystore_for(cn: &str) -> KeyStore {
        keystore_with(cn, &["localhost"])
    }

    /// A self-signed keystore for the names `sans` whose subject is `CN=<cn>`.
    fn keystore_with(cn: &str, sans: &[&str]) -> KeyStore {
        let key = KeyPair::generate().unwrap();
        let sans = sans.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        KeyStore::Inline {
            key: "listener.name.ssl.ssl.keystore.key".into(),
            private_key: Secret(key.serialize_pem()),
            chain: Secret(cert.pem()),
        }
    }

    #[test]
    fn a_reload_needs_a_change_and_keeps_the_subject() {
        let mut s = settings(&pki(), ClientAuth::None, "DEFAULT");
        s.keystore = keystore_for("broker");
        let server = TlsServer::new("SSL", &s, Duration::from_secs(1)).unwrap();
        assert!(server.prepare(&s).unwrap().is_none(), "nothing changed");
        s.keystore = keystore_for("broker");
        let next = server
            .prepare(&s)
            .unwrap()
            .expect("a new key and certificate");
        server.install(next);
        assert_eq!(server.settings().keystore, s.keystore);
        assert!(server.prepare(&s).unwrap().is_none(), "installed");
        let mut other = s.clone();
        other.keystore = keystore_for("someone else");
        let Err(e) = server.prepare(&other) else {
            panic!("another subject must be refused");
        };
        assert!(
            e.to_string().contains("DistinguishedName does not match")
                && e.to_string().contains("CN=someone else"),
            "{e}"
        );
        other.keystore = KeyStore::File {
            key: "listener.name.ssl.ssl.keystore.location".into(),
            path: "/nonexistent/k.pem".into(),
        };
        assert!(server.prepare(&other).is_err());
        assert_eq!(server.settings().keystore, s.keystore, "the old one stays");
        // ssl.allow.dn.changes=true lets another subject in.
        other.keystore = keystore_for("someone else");
        other.allow_dn_changes = true;
        assert!(server.prepare(&other).unwrap().is_some());
    }

    #[test]
    fn a_reload_may_add_subject_alt_names_but_not_drop_them() {
        let mut s = settings(&pki(), ClientAuth::None, "DEFAULT");
        s.keystore = keystore_for("broker");
        let server = TlsServer::new("SSL", &s, Duration::from_secs(1)).unwrap();
        s.keystore = keystore_with("broker", &["localhost", "127.0.0.1"]);
        server.install(server.prepare(&s).unwrap().expect("a name added"));
        s.keystore = keystore_with("broker", &["localhost", "broker-1"]);
        let Err(e) = server.prepare(&s) else {
            panic!("a dropped SubjectAltName must be refused");
        };
        assert!(
            e.to_string().contains(
                "SubjectAltNames do not match: existing=[[2, localhost], [7, 127.0.0.1]], new=[[2, broker-1], [2, localhost]]"
            ),
            "{e}"
        );
        s.allow_san_changes = true;
        assert!(server.prepare(&s).unwrap().is_some());
    }

    #[test]
    fn folded_pem_is_rebuilt_and_text_around_it_dropped() {
        let folded = "junk -----BEGIN CERTIFICATE----- QUJD REVG -----END CERTIFICATE----- more";
        assert_eq!(
            normalize_pem(folded),
            "-----BEGIN CERTIFICATE-----\nQUJDREVG\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(normalize_pem("no pem here"), "");
    }
}
