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
//! Invariant: a listener's configuration is replaced only by one that was
//! built and checked in full; a failure on one listener installs nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_auth::SecurityProtocol;

use super::tls::{ActiveTls, TlsServer};
// The store keys Kafka reconfigures per listener are the ones it changes
// only per listener (`SslConfigs.RECONFIGURABLE_CONFIGS`).
use crate::config::dynamic::{DynamicBrokerConfigs, LISTENER_PREFIX_ONLY as STORE_KEYS};
use crate::config::ssl::{self, LISTENER_PREFIX};

/// Whether `key` (as named in an alter request or stored) is a
/// listener's store key: changing it, even to the same value, reloads.
pub fn is_store_key(key: &str) -> bool {
    ssl::listener_key(key).is_some_and(|base| STORE_KEYS.contains(&base))
}

/// The TLS servers of this broker's listeners.
#[derive(Default)]
pub struct TlsListeners {
    servers: Vec<(String, SecurityProtocol, Arc<TlsServer>)>,
}

impl TlsListeners {
    pub fn new(servers: Vec<(String, SecurityProtocol, Arc<TlsServer>)>) -> Self {
        Self { servers }
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
        self.plan(explicit, dynamic).map(|_| ())
    }

    /// Installs the configurations whose stores changed (all or none);
    /// the number of listeners reloaded.
    pub fn reconfigure(
        &self,
        explicit: &BTreeMap<String, String>,
        dynamic: &DynamicBrokerConfigs,
    ) -> Result<usize, String> {
        let planned = self.plan(explicit, dynamic)?;
        let n = planned.len();
        for (listener, server, next) in planned {
            server.install(next);
            tracing::info!(
                listener,
                "reloaded the listener's SSL keystore and truststore"
            );
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
