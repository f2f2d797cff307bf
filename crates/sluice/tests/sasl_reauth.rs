//! KIP-368 re-authentication (issue 20), through the real binary:
//! `connections.max.reauth.ms` (broker-wide or per listener and
//! mechanism) is told to the client as SaslAuthenticate's
//! `session_lifetime_ms`; a connection whose session ended is closed at its
//! next ordinary request; a re-authentication on the same connection
//! renews the session, and must keep the principal and the mechanism.
//! Kafka's Java producer and consumer re-authenticate by themselves and
//! keep working across several sessions without reconnecting.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;

use common::sasl::{command_config, metadata_ok, start_sasl, Conn};
use common::{create_topic, kafka_tools_ready, metrics_addr, root, sample, RawClient};

/// SaslHandshake v1 for `mechanism`, then one SaslAuthenticate v2 with
/// PLAIN's token for `user` (whose password is `<user>-secret`).
fn plain_exchange(c: &mut Conn, mechanism: &str, user: &str) -> SaslAuthenticateResponse {
    let hs = c
        .send(
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(mechanism.into())),
        )
        .expect("handshake answered");
    assert_eq!(hs.error_code, 0, "{hs:?}");
    c.send(
        2,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from(format!("\0{user}\0{user}-secret"))),
    )
    .expect("authenticate answered")
}

fn metric(sluice: &sluice_testkit::SluiceProcess, name: &str) -> f64 {
    let (_, body) = common::http_get(&metrics_addr(sluice), "/metrics");
    sample(&body, name, &[]).unwrap_or(0.0)
}

#[test]
fn sessions_expire_and_reauthentication_renews_them() {
    // Only PLAIN on this listener gets a lifetime; the broker-wide key
    // stays at its default 0.
    let (sluice, addr) = start_sasl(&[(
        "listener.name.sasl_plaintext.plain.connections.max.reauth.ms",
        "1500",
    )]);
    let mut expiring = Conn::connect(&addr);
    let first = plain_exchange(&mut expiring, "PLAIN", "alice");
    assert_eq!((first.error_code, first.session_lifetime_ms), (0, 1500));
    assert!(metadata_ok(&mut expiring));

    let mut renewed = Conn::connect(&addr);
    assert_eq!(plain_exchange(&mut renewed, "PLAIN", "alice").error_code, 0);
    let mut thief = Conn::connect(&addr);
    assert_eq!(plain_exchange(&mut thief, "PLAIN", "alice").error_code, 0);
    let mut switcher = Conn::connect(&addr);
    assert_eq!(
        plain_exchange(&mut switcher, "PLAIN", "alice").error_code,
        0
    );

    // Past the sessions' end.
    std::thread::sleep(Duration::from_millis(2500));

    // No re-authentication: the next request closes the connection.
    assert!(
        !metadata_ok(&mut expiring),
        "an expired session was answered"
    );

    // Re-authentication after the end renews the session.
    let again = plain_exchange(&mut renewed, "PLAIN", "alice");
    assert_eq!((again.error_code, again.session_lifetime_ms), (0, 1500));
    assert!(metadata_ok(&mut renewed));
    // Another one within a second is not begun: the handshake goes to its
    // handler, which answers ILLEGAL_SASL_STATE, as Kafka's does.
    let too_soon = renewed
        .send(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .unwrap();
    assert_eq!(too_soon.error_code, 34);
    assert!(metadata_ok(&mut renewed));

    // Another principal is refused, and the connection closed.
    let stolen = plain_exchange(&mut thief, "PLAIN", "admin");
    assert_eq!(stolen.error_code, 58, "{stolen:?}");
    let message = stolen
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        message.contains(
            "Cannot change principals during re-authentication from User.alice: User.admin"
        ),
        "{message}"
    );
    assert!(thief.closed());

    // Another mechanism: the handshake is accepted, the token refused.
    let hs = switcher
        .send(
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
        )
        .unwrap();
    assert_eq!(hs.error_code, 0);
    let refused = switcher
        .send(
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=x")),
        )
        .unwrap();
    assert_eq!(refused.error_code, 58, "{refused:?}");
    assert!(switcher.closed());

    assert_eq!(metric(&sluice, "sluice_expired_sessions_killed_total"), 1.0);
    assert_eq!(
        metric(&sluice, "sluice_successful_reauthentications_total"),
        1.0
    );
}

/// A Java tool over SASL_PLAINTEXT PLAIN as alice, with `stdin` piped.
fn java_tool(class: &str, args: &[&str]) -> std::process::Child {
    Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            root().join("clients/java/log4j.properties").display()
        ))
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg(class)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run java")
}

#[test]
fn java_clients_reauthenticate_across_sessions() {
    if !kafka_tools_ready("sasl_reauth java_clients_reauthenticate_across_sessions") {
        return;
    }
    let (sluice, addr) = start_sasl(&[("connections.max.reauth.ms", "6000")]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "reauth", &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = command_config(dir.path(), "PLAIN", "alice", "alice-secret");
    const LINES: usize = 40;
    let max = LINES.to_string();
    let consumer = java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &addr,
            "--consumer.config",
            &config,
            "--topic",
            "reauth",
            "--from-beginning",
            "--max-messages",
            &max,
            "--timeout-ms",
            "120000",
        ],
    );
    let mut producer = java_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &addr,
            "--producer.config",
            &config,
            "--topic",
            "reauth",
            "--producer-property",
            "enable.idempotence=false",
        ],
    );
    // One line every 500 ms: three sessions of 6 s go by. The Java client
    // re-authenticates before a send once 85-95% of a session has passed;
    // a session of 6 s leaves that send 300-900 ms to reach the broker
    // before the session ends (at 2 s a busy machine once missed the
    // 100-300 ms it left, and the broker cut the connection, as Kafka's).
    let mut stdin = producer.stdin.take().unwrap();
    for i in 0..LINES {
        writeln!(stdin, "line-{i}").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(stdin);
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = consumer.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&consumed.stdout);
    let expected: Vec<String> = (0..LINES).map(|i| format!("line-{i}")).collect();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        expected,
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    // The clients renewed their sessions on their connections: none was
    // cut off for an expired session.
    let reauths = metric(&sluice, "sluice_successful_reauthentications_total");
    assert!(reauths >= 4.0, "only {reauths} re-authentications");
    assert_eq!(metric(&sluice, "sluice_expired_sessions_killed_total"), 0.0);
}
