//! KIP-226 keystore reload: the TLS servers of this broker's `SSL` and
//! `SASL_SSL` listeners, rebuilt when a dynamic broker config changes their
//! keystore or truststore (`listener.name.<l>.ssl.keystore.location` and
//! the other store keys), or names the same file again after it was
//! rewritten, as Kafka's `SslFactory.reconfigure` does.
//!
//! Owns resolving each listener's stores from the static configs overlaid
//! by the dynamic ones, validating the new configuration before anything
//! is committed (a bad file is refused with Kafka's message and the old
//! certificate stays in use) and installing it: new connections present
//! the new certificate, open ones keep theirs. Only the stores are
//! reloaded; `ssl.client.auth`, the protocols and the mapping rules keep
//! their start values, as in Kafka.
//!
//! Also owns the TLS clients this node dials its peers with (the
//! inter-broker and controller listeners, registered with
//! [`TlsListeners::add_peer`]): the same change of their listener's stores
//! rebuilds them, as Kafka reconfigures the replica fetchers' channel
//! builder, and new peer connections show the new certificate.
//!
//! Invariant: a listener's configuration is replaced only by one that was
//! built and checked in full; a failure on one listener installs nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_auth::SecurityProtocol;
use sluice_transport::security::ClientTls;

use super::tls::{ActiveTls, TlsServer};
// The store keys Kafka reconfigures per listener are the ones it changes
// only per listener (`SslConfigs.RECONFIGURABLE_CONFIGS`).
use crate::config::dynamic::{DynamicBrokerConfigs, LISTENER_PREFIX_ONLY as STORE_KEYS};
use crate::config::node_security::{client_ssl, ClientSsl, NodeClientConfig};
use crate::config::ssl::{self, LISTENER_PREFIX};

/// Whether `key` (as named in an alter request or stored) is a
/// listener's store key: changing it, even to the same value, reloads.
pub fn is_store_key(key: &str) -> bool {
    ssl::listener_key(key).is_some_and(|base| STORE_KEYS.contains(&base))
}

/// The TLS servers of this broker's listeners, and the TLS clients it
/// dials its peers with.
#[derive(Default)]
pub struct TlsListeners {
    servers: Vec<(String, SecurityProtocol, Arc<TlsServer>)>,
    /// Registered after start (the node builds its peer clients first).
    peers: Mutex<Vec<PeerTls>>,
}

/// One path's TLS client: its listener and the stores `tls` was built from.
struct PeerTls {
    listener: String,
    protocol: SecurityProtocol,
    ssl: ClientSsl,
    tls: ClientTls,
}

impl TlsListeners {
    pub fn new(servers: Vec<(String, SecurityProtocol, Arc<TlsServer>)>) -> Self {
        Self {
            servers,
            peers: Mutex::default(),
        }
    }

    /// Registers the TLS client of one path to the peers (`config` is what
    /// it was built from); nothing for a path without TLS.
    pub fn add_peer(&self, config: &NodeClientConfig, tls: Option<&ClientTls>) {
        if let (Some(ssl), Some(tls)) = (&config.ssl, tls) {
            self.peers.lock().push(PeerTls {
                listener: config.listener.clone(),
                protocol: config.protocol,
                ssl: ssl.clone(),
                tls: tls.clone(),
            });
        }
    }

    /// The peer clients `configs` rebuild: every one, since a file named
    /// again may have been rewritten (the caller reloads only when a store
    /// key was named). The error is Kafka's message.
    fn plan_peers(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<Vec<(ClientTls, ClientSsl, rustls::ClientConfig)>, String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!("Validation of dynamic config update of SSLFactory failed: {e}")
        };
        let mut out = Vec::new();
        for peer in self.peers.lock().iter() {
            let Some(ssl) =
                client_ssl(configs, &peer.listener, peer.protocol).map_err(|e| failed(&e))?
            else {
                continue;
            };
            let config = super::tls::client_config(&peer.listener, &ssl).map_err(|e| failed(&e))?;
            out.push((peer.tls.clone(), ssl, config));
        }
        Ok(out)
    }

    /// The configurations `explicit` overlaid by `dynamic` make, for the
    /// listeners whose stores changed. The error is Kafka's message.
    fn plan(
        &self,
        explicit: &BTreeMap<String, String>,
        dynamic: &DynamicBrokerConfigs,
    ) -> Result<Vec<(&str, &TlsServer, ActiveTls)>, String> {
        let configs = overlaid(explicit, dynamic);
        let mut out = Vec::new();
        for (listener, protocol, server) in &self.servers {
            let failed = |e: &dyn std::fmt::Display| {
                format!("Validation of dynamic config update of SSLFactory failed: {e}")
            };
            let resolved = ssl::resolve(&configs, listener, *protocol).map_err(|e| failed(&e))?;
            let Some(stores) = resolved.ssl else { continue };
            let mut settings = server.settings();
            settings.keystore = stores.keystore;
            settings.truststore = stores.truststore;
            settings.key_password_set = stores.key_password_set;
            if let Some(next) = server.prepare(&settings).map_err(|e| failed(&e))? {
                out.push((listener.as_str(), server.as_ref(), next));
            }
        }
        Ok(out)
    }

    /// Checks that the stores `dynamic` names can be loaded and may replace
    /// the current ones; installs nothing.
    pub fn validate(
        &self,
        explicit: &BTreeMap<String, String>,
        dynamic: &DynamicBrokerConfigs,
    ) -> Result<(), String> {
        self.plan(explicit, dynamic)?;
        self.plan_peers(&overlaid(explicit, dynamic)).map(|_| ())
    }

    /// Installs the configurations whose stores changed (all or none);
    /// the number of listeners reloaded.
    pub fn reconfigure(
        &self,
        explicit: &BTreeMap<String, String>,
        dynamic: &DynamicBrokerConfigs,
    ) -> Result<usize, String> {
        let planned = self.plan(explicit, dynamic)?;
        let peers = self.plan_peers(&overlaid(explicit, dynamic))?;
        let n = planned.len();
        for (listener, server, next) in planned {
            server.install(next);
            tracing::info!(
                listener,
                "reloaded the listener's SSL keystore and truststore"
            );
        }
        let mut registered = self.peers.lock();
        for (tls, ssl, config) in peers {
            tls.replace(config);
            for peer in registered.iter_mut().filter(|p| p.tls.same(&tls)) {
                if peer.ssl != ssl {
                    tracing::info!(
                        listener = peer.listener,
                        "connections to peers on this listener use the reloaded SSL keystore and truststore"
                    );
                }
                peer.ssl = ssl.clone();
            }
        }
        Ok(n)
    }
}

/// `explicit` with the cluster-default and then the per-broker dynamic
/// configs over it; a dynamic per-listener key replaces the static one
/// whatever the case of its listener name (Kafka lower-cases it).
fn overlaid(
    explicit: &BTreeMap<String, String>,
    dynamic: &DynamicBrokerConfigs,
) -> BTreeMap<String, String> {
    let mut out = explicit.clone();
    for level in [&dynamic.cluster_default, &dynamic.broker] {
        for (k, v) in level {
            if k.starts_with(LISTENER_PREFIX) {
                out.retain(|old, _| !old.eq_ignore_ascii_case(k));
            }
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_listener_store_keys_reload() {
        assert!(is_store_key("listener.name.ssl.ssl.keystore.location"));
        assert!(is_store_key(
            "listener.name.EXTERNAL.ssl.truststore.certificates"
        ));
        assert!(!is_store_key("ssl.keystore.location"));
        assert!(!is_store_key("listener.name.ssl.ssl.client.auth"));
        assert!(!is_store_key("log.retention.ms"));
    }

    #[test]
    fn a_dynamic_listener_key_hides_the_static_one_in_any_case() {
        let explicit = BTreeMap::from([
            (
                "listener.name.SSL.ssl.keystore.location".to_string(),
                "/old".to_string(),
            ),
            ("log.retention.ms".to_string(), "1".to_string()),
        ]);
        let mut dynamic = DynamicBrokerConfigs::default();
        dynamic.broker.insert(
            "listener.name.ssl.ssl.keystore.location".into(),
            "/new".into(),
        );
        let out = overlaid(&explicit, &dynamic);
        assert_eq!(out.len(), 2);
        assert_eq!(out["listener.name.ssl.ssl.keystore.location"], "/new");
    }
}

#[cfg(test)]
mod peer_tests {
    //! The clients a node dials its peers with follow a reload of their
    //! listener's stores: a server asking for a certificate sees the new one.
    use std::path::Path;
    use std::time::Duration;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use sluice_auth::SslPrincipalMapper;

    use super::*;
    use crate::config::ssl::{ClientAuth, KeyStore, Secret, SslSettings, TlsProtocol, TrustStore};

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    /// (key PEM, certificate PEM) for `localhost`, subject `CN=<cn>`.
    fn issue(ca: &Ca, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        (key.serialize_pem(), cert.pem())
    }

    fn write_pem(dir: &Path, name: &str, (key, cert): (String, String)) -> String {
        let path = dir.join(name);
        std::fs::write(&path, key + &cert).unwrap();
        path.display().to_string()
    }

    /// The principal `server` names for a connection from `client`.
    async fn principal_seen(server: &TlsServer, client: &ClientTls) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connector = tokio_rustls::TlsConnector::from(client.current());
        let dial = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name, tcp).await.unwrap();
            let mut buf = [0u8; 1];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let (_, principal) = server.accept(tcp).await.unwrap();
        dial.abort();
        principal.to_string()
    }

    #[tokio::test]
    async fn a_store_change_reloads_the_clients_to_peers() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let ca_path = ca_path.display().to_string();
        let old = write_pem(dir.path(), "old.pem", issue(&ca, "node-old"));
        let new = write_pem(dir.path(), "new.pem", issue(&ca, "node-new"));

        // A peer's listener that requires a certificate from this CA.
        let (server_key, server_cert) = issue(&ca, "peer");
        let server = TlsServer::new(
            "SSL",
            &SslSettings {
                keystore: KeyStore::Inline {
                    key: "ssl.keystore.key".into(),
                    private_key: Secret(server_key),
                    chain: Secret(server_cert),
                },
                truststore: Some(TrustStore::File {
                    key: "ssl.truststore.location".into(),
                    path: ca_path.clone().into(),
                }),
                client_auth: ClientAuth::Required,
                protocols: vec![TlsProtocol::Tls13],
                principal_mapper: SslPrincipalMapper::default(),
                allow_dn_changes: false,
                allow_san_changes: false,
                key_password_set: false,
            },
            Duration::from_secs(30),
        )
        .unwrap();

        let explicit = BTreeMap::from([
            ("ssl.keystore.type".to_string(), "PEM".to_string()),
            ("ssl.truststore.type".to_string(), "PEM".to_string()),
            ("ssl.keystore.location".to_string(), old.clone()),
            ("ssl.truststore.location".to_string(), ca_path),
        ]);
        let config = crate::config::node_security::client(
            &explicit,
            "SSL",
            SecurityProtocol::Ssl,
            "sasl.mechanism.inter.broker.protocol",
        )
        .unwrap();
        let ssl = config.ssl.as_ref().unwrap();
        let slot = ClientTls::new(super::super::tls::client_config("SSL", ssl).unwrap());
        let listeners = TlsListeners::new(Vec::new());
        listeners.add_peer(&config, Some(&slot));
        assert_eq!(principal_seen(&server, &slot).await, "User:CN=node-old");

        let mut dynamic = DynamicBrokerConfigs::default();
        dynamic.broker.insert(
            "listener.name.ssl.ssl.keystore.location".into(),
            "/nonexistent/new.pem".into(),
        );
        assert!(listeners.validate(&explicit, &dynamic).is_err());
        assert_eq!(principal_seen(&server, &slot).await, "User:CN=node-old");
        dynamic
            .broker
            .insert("listener.name.ssl.ssl.keystore.location".into(), new);
        listeners.validate(&explicit, &dynamic).unwrap();
        listeners.reconfigure(&explicit, &dynamic).unwrap();
        assert_eq!(principal_seen(&server, &slot).await, "User:CN=node-new");
    }
}
