//! The client login against the controller listener's gate over in-memory
//! streams: PLAIN and SCRAM succeed and name the principal; a wrong
//! password, an unknown mechanism, a request before authentication and a
//! frame of huge claimed size are refused without a principal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_auth::sasl::{Credentials, SaslMechanism, ScramCredential, ScramMechanism};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::error::TransportError;

struct Users;

impl Credentials for Users {
    fn plain_password(&self, user: &str) -> Option<String> {
        (user == "node").then(|| "node-secret".to_string())
    }

    fn scram_credential(&self, mechanism: ScramMechanism, user: &str) -> Option<ScramCredential> {
        (user == "node")
            .then(|| ScramCredential::from_password(mechanism, b"node-secret", b"salt", 4096))
    }
}

fn gate() -> ServerSecurity {
    ServerSecurity {
        listener: "CONTROLLER".into(),
        tls: None,
        sasl: Some(SaslAccept {
            mechanisms: vec![
                SaslMechanism::Plain,
                SaslMechanism::Scram(ScramMechanism::Sha512),
            ],
            credentials: Arc::new(Users),
        }),
        handshake_timeout: Duration::from_secs(10),
        apis: crate::CONTROLLER_APIS.to_vec(),
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

fn client(login: SaslLogin) -> ClientSecurity {
    ClientSecurity {
        tls: None,
        sasl: Some(login),
        handshake_timeout: Duration::from_secs(10),
    }
}

/// Runs the client's login against the gate: (client result, gate result).
async fn exchange(login: SaslLogin) -> (std::io::Result<()>, Result<String, TransportError>) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let gate = gate();
    let server = tokio::spawn(async move {
        gate.admit(b, peer())
            .await
            .map(|(_, principal)| principal.to_string())
    });
    let c = client(login).secure(a, "127.0.0.1:9093").await.map(|_| ());
    (c, server.await.unwrap())
}

#[tokio::test]
async fn plain_and_scram_logins_name_the_principal() {
    let plain = SaslLogin::Plain {
        user: "node".into(),
        password: "node-secret".into(),
    };
    let (c, s) = exchange(plain).await;
    c.unwrap();
    assert_eq!(s.unwrap(), "User:node");
    let scram = SaslLogin::Scram {
        mechanism: ScramMechanism::Sha512,
        user: "node".into(),
        password: "node-secret".into(),
    };
    let (c, s) = exchange(scram).await;
    c.unwrap();
    assert_eq!(s.unwrap(), "User:node");
}

#[tokio::test]
async fn a_wrong_password_or_mechanism_is_refused_on_both_sides() {
    for login in [
        SaslLogin::Plain {
            user: "node".into(),
            password: "wrong".into(),
        },
        SaslLogin::Scram {
            mechanism: ScramMechanism::Sha512,
            user: "node".into(),
            password: "wrong".into(),
        },
        SaslLogin::Scram {
            mechanism: ScramMechanism::Sha256,
            user: "node".into(),
            password: "node-secret".into(),
        },
    ] {
        let what = format!("{login:?}");
        let (c, s) = exchange(login).await;
        let e = c.expect_err(&what);
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied,
            "{what}: {e}"
        );
        assert!(e.to_string().contains(&what), "{e}");
        assert!(!e.to_string().contains("node-secret"), "{e}");
        assert!(
            matches!(s, Err(TransportError::Authentication { .. })),
            "{what}: {s:?}"
        );
    }
}

/// A raw request frame: size, then `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[tokio::test]
async fn requests_before_authentication_and_huge_frames_are_refused() {
    // Metadata v0 (key 3), correlation 1, no client id: not allowed before SASL.
    let metadata = frame(&[0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0]);
    let huge = (i32::MAX).to_be_bytes().to_vec();
    for bytes in [metadata, huge, b"garbage!".to_vec()] {
        let (mut a, b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { gate().admit(b, peer()).await.map(|_| ()) });
        a.write_all(&bytes).await.unwrap();
        let r = server.await.unwrap();
        assert!(r.is_err(), "{bytes:?} got past the gate");
        let mut rest = Vec::new();
        let _ = a.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "answered {rest:?}");
    }
}

#[tokio::test]
async fn a_plaintext_gate_admits_as_anonymous() {
    let (_a, b) = tokio::io::duplex(64);
    let open = ServerSecurity {
        sasl: None,
        ..gate()
    };
    let (_, principal) = open.admit(b, peer()).await.unwrap();
    assert_eq!(principal.to_string(), "User:ANONYMOUS");
}
