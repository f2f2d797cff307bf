//! `--command-config FILE`: the Kafka client properties Kafka's own tools
//! take (`security.protocol`, `sasl.mechanism`, `sasl.jaas.config`,
//! `ssl.truststore.*`), so that `sluice acl`, `sluice quotas` and the
//! other raw-protocol commands reach a TLS or SASL listener with the same
//! file as `kafka-acls --command-config`. Read once per command; the raw
//! connection ([`super::raw`]) speaks TLS (rustls, PEM trust only) and
//! SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 with it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use sluice_auth::sasl::ScramMechanism;

/// `security.protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

pub use sluice_client::SaslLogin;

/// How the CLI's raw connections secure themselves.
#[derive(Clone, Debug)]
pub struct ClientSecurity {
    pub protocol: Protocol,
    pub sasl: Option<SaslLogin>,
    /// The trusted CAs (TLS protocols only). The broker's certificate must
    /// name the host dialled, as with Kafka's default
    /// `ssl.endpoint.identification.algorithm=https`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `ssl.truststore.location`, for librdkafka's `ssl.ca.location`.
    pub ca_location: Option<String>,
}

impl Default for ClientSecurity {
    fn default() -> Self {
        ClientSecurity {
            protocol: Protocol::Plaintext,
            sasl: None,
            tls: None,
            ca_location: None,
        }
    }
}

impl ClientSecurity {
    /// What the raw connection (`sluice-client`) needs of it.
    pub fn raw(&self) -> sluice_client::Security {
        sluice_client::Security {
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
        }
    }

    /// Reads a `--command-config` file.
    pub fn load(path: &Path) -> anyhow::Result<ClientSecurity> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --command-config {}", path.display()))?;
        Self::from_properties(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_properties(text: &str) -> anyhow::Result<ClientSecurity> {
        let props = sluice_broker::config::properties::parse_properties(text);
        let get = |k: &str| {
            props
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.trim())
        };
        let protocol = match get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase()
            .as_str()
        {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            other => bail!(
                "security.protocol={other} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            ),
        };
        let sasl = match protocol {
            Protocol::SaslPlaintext | Protocol::SaslSsl => Some(sasl_login(
                get("sasl.mechanism").unwrap_or("GSSAPI"),
                get("sasl.jaas.config").ok_or_else(|| anyhow!("sasl.jaas.config is missing"))?,
            )?),
            _ => None,
        };
        let tls = match protocol {
            Protocol::Ssl | Protocol::SaslSsl => Some(Arc::new(tls_config(&get)?)),
            _ => None,
        };
        Ok(ClientSecurity {
            protocol,
            sasl,
            tls,
            ca_location: get("ssl.truststore.location").map(str::to_string),
        })
    }

    /// The same settings in librdkafka's words, for the commands that go
    /// through it (a build without OpenSSL refuses SSL and SCRAM there).
    pub fn librdkafka(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(
            "security.protocol",
            match self.protocol {
                Protocol::Plaintext => "plaintext",
                Protocol::Ssl => "ssl",
                Protocol::SaslPlaintext => "sasl_plaintext",
                Protocol::SaslSsl => "sasl_ssl",
            }
            .to_string(),
        )];
        match &self.sasl {
            Some(SaslLogin::Plain { user, password }) => out.extend([
                ("sasl.mechanisms", "PLAIN".to_string()),
                ("sasl.username", user.clone()),
                ("sasl.password", password.clone()),
            ]),
            Some(SaslLogin::Scram {
                mechanism,
                user,
                password,
            }) => out.extend([
                ("sasl.mechanisms", mechanism.mechanism_name().to_string()),
                ("sasl.username", user.clone()),
                ("sasl.password", password.clone()),
            ]),
            None => {}
        }
        if let Some(ca) = &self.ca_location {
            out.push(("ssl.ca.location", ca.clone()));
        }
        out
    }
}

fn sasl_login(mechanism: &str, jaas: &str) -> anyhow::Result<SaslLogin> {
    let entry = sluice_auth::jaas::parse_single_entry(jaas)
        .map_err(|e| anyhow!("sasl.jaas.config: {e}"))?;
    let option = |k: &str| {
        entry
            .options
            .get(k)
            .cloned()
            .ok_or_else(|| anyhow!("sasl.jaas.config has no {k}"))
    };
    let (user, password) = (option("username")?, option("password")?);
    Ok(match mechanism {
        "PLAIN" => SaslLogin::Plain { user, password },
        m => match ScramMechanism::from_mechanism_name(m) {
            Some(mechanism) => SaslLogin::Scram {
                mechanism,
                user,
                password,
            },
            None => bail!(
                "sasl.mechanism={m}: the sluice CLI speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
            ),
        },
    })
}

/// The trust store: `ssl.truststore.type=PEM` with
/// `ssl.truststore.location` (a PEM file) or `ssl.truststore.certificates`
/// (PEM text), as Kafka's clients take them.
fn tls_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let kind = get("ssl.truststore.type").unwrap_or("JKS");
    if !kind.eq_ignore_ascii_case("PEM") {
        bail!("ssl.truststore.type={kind}: the sluice CLI reads PEM trust stores only (ssl.truststore.type=PEM)");
    }
    let certs: Vec<CertificateDer<'static>> = match (
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (Some(path), _) => CertificateDer::pem_file_iter(path)
            .with_context(|| format!("ssl.truststore.location={path}"))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("ssl.truststore.location={path}"))?,
        (None, Some(pem)) => CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .context("ssl.truststore.certificates")?,
        (None, None) => bail!("ssl.truststore.location or ssl.truststore.certificates is needed"),
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).context("a trusted certificate")?;
    }
    if roots.is_empty() {
        bail!("the trust store holds no certificate");
    }
    // ring, as the broker's TLS (no cmake or OpenSSL to build).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = r#"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";"#;

    #[test]
    fn reads_kafkas_client_keys() {
        let s = ClientSecurity::from_properties(&format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n{JAAS}\n"
        ))
        .unwrap();
        assert_eq!(s.protocol, Protocol::SaslPlaintext);
        assert!(s.tls.is_none());
        assert!(matches!(
            s.sasl,
            Some(SaslLogin::Scram { mechanism: ScramMechanism::Sha512, ref user, ref password })
                if user == "u" && password == "p"
        ));
        assert_eq!(
            ClientSecurity::from_properties("").unwrap().protocol,
            Protocol::Plaintext
        );
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for text in [
            "security.protocol=KERBEROS".to_string(),
            format!("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n{JAAS}"),
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN".to_string(),
            "security.protocol=SSL\nssl.truststore.location=/x.jks".to_string(),
            "security.protocol=SSL\nssl.truststore.type=PEM".to_string(),
        ] {
            assert!(ClientSecurity::from_properties(&text).is_err(), "{text}");
        }
    }
}
