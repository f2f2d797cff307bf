//! SASL/OAUTHBEARER through real clients and real processes:
//! - Kafka's default (unsecured) validator: librdkafka's built-in unsecured
//!   JWT (kcat with `sasl.oauthbearer.config=principal=...`) and the Java
//!   client's `OAuthBearerLoginModule` with `unsecuredLoginStringClaim_sub`
//!   log in and produce/consume.
//! - Kafka's `OAuthBearerValidatorCallbackHandler`: a broker given a JWKS
//!   file accepts confluent-kafka with a token this test signs (ES256) and
//!   refuses an expired token, a token signed by another key and an
//!   unsigned one, while it keeps serving.
//! - KIP-368: a token's `exp` bounds its session (`session_lifetime_ms`);
//!   once it passed, the connection is closed at its next request.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::sasl::{metadata_ok, python_client, venv_python, Conn};
use common::{create_topic, kafka_tool_output, kafka_tools_ready, RawClient};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sluice_testkit::SluiceProcess;

const OAUTH_JAAS: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;";
const VALIDATOR: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";

fn start_oauth(extra: &[(&str, &str)]) -> (SluiceProcess, String) {
    let mut overrides = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "OAUTHBEARER"),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            OAUTH_JAAS,
        ),
    ];
    overrides.extend_from_slice(extra);
    let broker = SluiceProcess::start_default(&overrides).expect("start sluice with OAUTHBEARER");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = broker.output();
        if let Some(addr) = out
            .lines()
            .find_map(|l| l.strip_prefix("listening on SASL_PLAINTEXT://"))
        {
            return (broker, addr.trim().to_string());
        }
        assert!(Instant::now() < deadline, "no SASL listener:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kcat with librdkafka's unsecured JWT for `principal`.
fn kcat_unsecured(addr: &str, principal: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .env_remove("LD_LIBRARY_PATH")
        .args(["-b", addr, "-X", "security.protocol=SASL_PLAINTEXT"])
        .args(["-X", "sasl.mechanisms=OAUTHBEARER"])
        .args([
            "-X",
            &format!("sasl.oauthbearer.config=principal={principal}"),
        ])
        // librdkafka's built-in unsecured token is opt-in.
        .args(["-X", "enable.sasl.oauthbearer.unsecure.jwt=true"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat runs (scripts/setup installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn unsecured_tokens_with_kcat_and_the_java_client() {
    let (sluice, addr) = start_oauth(&[]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "tokens", &[]);
    let records: String = (0..10).map(|i| format!("oauth-{i}\n")).collect();
    let (ok, out) = kcat_unsecured(&addr, "alice", &["-P", "-t", "tokens"], &records);
    assert!(ok, "{out}");
    let (ok, out) = kcat_unsecured(
        &addr,
        "alice",
        &["-C", "-t", "tokens", "-o", "beginning", "-e", "-q"],
        "",
    );
    assert!(ok, "{out}");
    for i in 0..10 {
        assert!(out.contains(&format!("oauth-{i}\n")), "{out}");
    }
    // Another principal's token works too; a kcat without one does not.
    let (ok, out) = kcat_unsecured(&addr, "carol", &["-L", "-t", "tokens"], "");
    assert!(ok && out.contains("tokens"), "{out}");
    if !kafka_tools_ready("sasl_oauth java unsecured login") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oauth.properties");
    std::fs::write(
        &config,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n\
         sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"bob\";\n",
    )
    .unwrap();
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            config.to_str().unwrap(),
            "--describe",
            "--topic",
            "tokens",
        ],
    );
    assert!(ok && out.contains("Topic: tokens"), "{out}\n{err}");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 signing key and its JWK.
fn es256_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn jwk(key: &EcdsaKeyPair, kid: &str) -> serde_json::Value {
    let point = key.public_key().as_ref();
    serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])})
}

fn sign(key: &EcdsaKeyPair, kid: &str, claims: serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

/// confluent-kafka (`common/sasl.rs`'s client) with `token` as its bearer.
fn python_oauth(python: &std::path::Path, mode: &str, addr: &str, token: &str) -> String {
    python_client(python, &[mode, addr, "OAUTHBEARER", "-", token, "signed"])
}

#[test]
fn signed_tokens_verified_against_a_jwks_file() {
    let Some(python) = venv_python("sasl_oauth signed tokens") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = es256_key();
    let stranger = es256_key();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({ "keys": [jwk(&key, "k1")] }).to_string(),
    )
    .unwrap();
    let url = format!("file://{}", jwks.display());
    let (sluice, addr) = start_oauth(&[
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
            VALIDATOR,
        ),
        ("sasl.oauthbearer.jwks.endpoint.url", &url),
        ("sasl.oauthbearer.expected.audience", "sluice"),
    ]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "signed", &[]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |exp: i64, aud: &str| serde_json::json!({"sub": "alice", "aud": aud, "iat": now - 5, "exp": exp});
    let good = sign(&key, "k1", claims(now + 600, "sluice"));
    let out = python_oauth(&python, "round-trip", &addr, &good);
    assert!(out.contains("ok"), "{out}");
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims(now + 600, "sluice").to_string().as_bytes())
    );
    for (what, token) in [
        ("expired", sign(&key, "k1", claims(now - 120, "sluice"))),
        (
            "another key",
            sign(&stranger, "k1", claims(now + 600, "sluice")),
        ),
        (
            "another audience",
            sign(&key, "k1", claims(now + 600, "other")),
        ),
        ("unsigned", unsigned),
    ] {
        let out = python_oauth(&python, "refused", &addr, &token);
        assert!(!out.contains("listed"), "{what}: {out}");
        assert!(out.contains("invalid_token"), "{what}: {out}");
    }
    // The refusals are logged with their reasons.
    let log = sluice.output();
    assert!(log.contains("signature does not verify"), "{log}");
    assert!(log.contains("expired"), "{log}");
    // And the broker still serves good tokens.
    let out = python_oauth(&python, "refused", &addr, &good);
    assert!(out.contains("listed"), "{out}");
}

#[test]
fn a_broken_jwks_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
    let url = format!("file://{}", jwks.display());
    for url in [url.as_str(), "file:///nonexistent/jwks.json"] {
        let err = match SluiceProcess::start_default(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            ),
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            (
                "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
                OAUTH_JAAS,
            ),
            (
                "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
                VALIDATOR,
            ),
            ("sasl.oauthbearer.jwks.endpoint.url", url),
        ]) {
            Ok(_) => panic!("a broken JWKS ({url}) must refuse the start"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("sasl.oauthbearer.jwks.endpoint.url") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn a_tokens_expiry_ends_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let key = es256_key();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({ "keys": [jwk(&key, "k1")] }).to_string(),
    )
    .unwrap();
    let url = format!("file://{}", jwks.display());
    let (_sluice, addr) = start_oauth(&[
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
            VALIDATOR,
        ),
        ("sasl.oauthbearer.jwks.endpoint.url", &url),
    ]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = sign(
        &key,
        "k1",
        serde_json::json!({"sub": "alice", "iat": now - 5, "exp": now + 4}),
    );
    let mut c = Conn::connect(&addr);
    let hs = c
        .send(
            1,
            &kafka_protocol::messages::SaslHandshakeRequest::default()
                .with_mechanism(common::sb("OAUTHBEARER")),
        )
        .unwrap();
    assert_eq!(hs.error_code, 0);
    let auth = c
        .send(
            2,
            &kafka_protocol::messages::SaslAuthenticateRequest::default().with_auth_bytes(
                bytes::Bytes::from(format!("n,,\x01auth=Bearer {token}\x01\x01")),
            ),
        )
        .unwrap();
    assert_eq!(auth.error_code, 0, "{auth:?}");
    // No connections.max.reauth.ms: the token's exp alone sets the end.
    assert!(
        (1..=4000).contains(&auth.session_lifetime_ms),
        "{}",
        auth.session_lifetime_ms
    );
    assert!(metadata_ok(&mut c));
    std::thread::sleep(Duration::from_millis(
        auth.session_lifetime_ms as u64 + 1000,
    ));
    assert!(
        !metadata_ok(&mut c),
        "a session past its token's exp was answered"
    );
}
