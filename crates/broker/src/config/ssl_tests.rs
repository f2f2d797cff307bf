use super::*;
use crate::config::BrokerConfig;

fn config(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::with_overrides(pairs)
}

const SSL_LISTENER: (&str, &str) = ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0");

#[test]
fn an_ssl_listener_with_a_pem_keystore_resolves() {
    let c = config(&[
        SSL_LISTENER,
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
    ])
    .unwrap();
    let ssl = c.listener_security("SSL").ssl.expect("SSL settings");
    assert_eq!(
        ssl.keystore,
        KeyStore::File {
            key: "ssl.keystore.location".into(),
            path: "/k.pem".into()
        }
    );
    assert_eq!(ssl.client_auth, ClientAuth::None);
    assert_eq!(ssl.protocols, vec![TlsProtocol::Tls12, TlsProtocol::Tls13]);
    assert!(ssl.truststore.is_none());
    assert_eq!(
        c.listener_security("PLAINTEXT").protocol,
        SecurityProtocol::Plaintext
    );
    assert!(c.listener_security("PLAINTEXT").ssl.is_none());
}

#[test]
fn named_listeners_take_their_protocol_from_the_map_and_their_keys_win() {
    let c = config(&[
        ("listeners", "CLIENT://127.0.0.1:0,INTERNAL://127.0.0.1:0"),
        (
            "listener.security.protocol.map",
            "CLIENT:SSL,INTERNAL:PLAINTEXT",
        ),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/broad.pem"),
        ("listener.name.client.ssl.keystore.location", "/client.pem"),
        ("listener.name.client.ssl.client.auth", "required"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
        ("ssl.principal.mapping.rules", "RULE:^CN=(.*)$/$1/L,DEFAULT"),
    ])
    .unwrap();
    let client = c.listener_security("CLIENT");
    assert_eq!(client.protocol, SecurityProtocol::Ssl);
    let ssl = client.ssl.unwrap();
    assert_eq!(
        ssl.keystore,
        KeyStore::File {
            key: "listener.name.client.ssl.keystore.location".into(),
            path: "/client.pem".into()
        }
    );
    assert_eq!(ssl.client_auth, ClientAuth::Required);
    assert!(matches!(ssl.truststore, Some(TrustStore::Inline { .. })));
    assert_eq!(
        ssl.principal_mapper.map("CN=Alice").as_deref(),
        Some("alice")
    );
    assert!(c.listener_security("INTERNAL").ssl.is_none());
}

#[test]
fn jks_and_pkcs12_stores_are_refused_naming_pem() {
    for (ty_key, extra) in [
        ("ssl.keystore.type", None),
        (
            "ssl.truststore.type",
            Some(("ssl.truststore.location", "/t.jks")),
        ),
    ] {
        let mut pairs = vec![SSL_LISTENER, ("ssl.keystore.location", "/k.jks")];
        if let Some(e) = extra {
            pairs.push(("ssl.keystore.type", "PEM"));
            pairs.push(e);
        }
        let err = config(&pairs).unwrap_err();
        assert_eq!(err.key(), Some(ty_key), "{err}");
        assert!(
            err.to_string().contains("type JKS is not supported"),
            "{err}"
        );
        assert!(err.to_string().contains("ssl.keystore.type=PEM"), "{err}");
    }
    let err = config(&[
        SSL_LISTENER,
        ("ssl.keystore.type", "PKCS12"),
        ("ssl.keystore.location", "/k.p12"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("PKCS12"), "{err}");
}

#[test]
fn missing_or_contradictory_stores_are_clear_errors() {
    let err = config(&[SSL_LISTENER]).unwrap_err();
    assert_eq!(err.key(), Some("ssl.keystore.location"));
    assert!(err.to_string().contains("needs a keystore"), "{err}");
    let pem = ("ssl.keystore.type", "PEM");
    let err = config(&[SSL_LISTENER, pem, ("ssl.keystore.key", "k")]).unwrap_err();
    assert_eq!(err.key(), Some("ssl.keystore.certificate.chain"));
    let err = config(&[
        SSL_LISTENER,
        pem,
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.client.auth", "required"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("needs a truststore"), "{err}");
    let err = config(&[
        SSL_LISTENER,
        pem,
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.client.auth", "sometimes"),
    ])
    .unwrap_err();
    assert_eq!(err.key(), Some("ssl.client.auth"));
    let err = config(&[
        SSL_LISTENER,
        pem,
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.enabled.protocols", "TLSv1.1,TLSv1"),
    ])
    .unwrap_err();
    assert_eq!(err.key(), Some("ssl.enabled.protocols"));
    let err = config(&[
        SSL_LISTENER,
        pem,
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.principal.mapping.rules", "RULE:oops"),
    ])
    .unwrap_err();
    assert_eq!(err.key(), Some("ssl.principal.mapping.rules"));
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let c = config(&[
        SSL_LISTENER,
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.key", "TOPSECRET"),
        ("ssl.keystore.certificate.chain", "CHAIN"),
        ("listener.name.ssl.ssl.key.password", "KEYSECRET"),
        (
            "listener.name.client.plain.sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"JAASSECRET\";",
        ),
    ])
    .unwrap();
    // The whole config, as a log line would print it.
    let shown = format!("{c:?}");
    for secret in ["TOPSECRET", "KEYSECRET", "JAASSECRET"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("ssl.keystore.type"),
        "non-secret keys are shown"
    );
}

/// A SASL_SSL listener gets TLS settings like an SSL one, but takes
/// `ssl.client.auth` only from its own prefixed key (Kafka's
/// `ChannelBuilders`): the broker-wide `required` of the SSL listener does
/// not ask SASL clients for certificates.
#[test]
fn sasl_ssl_listeners_take_client_auth_only_from_their_prefix() {
    let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret";"#;
    let base = [
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", jaas),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", "/t.pem"),
        ("ssl.client.auth", "required"),
    ];
    let c = config(&base).unwrap();
    assert_eq!(
        c.listener_security("SSL").ssl.unwrap().client_auth,
        ClientAuth::Required
    );
    let sasl_ssl = c.listener_security("SASL_SSL");
    assert_eq!(sasl_ssl.protocol, SecurityProtocol::SaslSsl);
    assert_eq!(sasl_ssl.ssl.unwrap().client_auth, ClientAuth::None);
    assert!(c.sasl_listeners.contains_key("SASL_SSL"));
    let c = config(
        &[
            &base[..],
            &[("listener.name.sasl_ssl.ssl.client.auth", "requested")],
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        c.listener_security("SASL_SSL").ssl.unwrap().client_auth,
        ClientAuth::Requested
    );
    // Without a keystore it cannot serve TLS: refused at start.
    let err = config(&[
        ("listeners", "SASL_SSL://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", jaas),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("keystore"), "{err}");
}

#[test]
fn unknown_prefixed_keys_are_refused() {
    assert!(config(&[("listener.name.ssl.no.such.key", "1")]).is_err());
    // A Kafka ssl key Sluice does not implement is accepted with a warning, per listener too.
    let c = config(&[("listener.name.ssl.ssl.cipher.suites", "x")]).unwrap();
    assert!(c
        .unimplemented_keys
        .contains(&"listener.name.ssl.ssl.cipher.suites".to_string()));
}
