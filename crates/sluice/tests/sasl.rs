//! SASL_PLAINTEXT listeners (issue 20) through real clients and the real
//! binary: PLAIN users from the listener's JAAS entry with kcat
//! (librdkafka), Kafka's Java tools with `--command-config` and
//! confluent-kafka (Python); and the gate's refusals on the raw protocol:
//! requests before authentication, huge claimed sizes, floods of wrong
//! passwords. SCRAM: `tests/sasl_scram.rs`; helpers: `common/sasl.rs`.
//!
//! Each broker has a PLAINTEXT listener (the testkit's) and a
//! SASL_PLAINTEXT one; clients bootstrapped on the SASL listener are given
//! that listener's endpoints.

mod common;

use std::io::Write;

use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use common::sasl::*;
use common::{create_topic, kafka_tool_output, kafka_tools_ready, RawClient};

#[test]
fn plain_with_kcat_right_and_wrong_passwords() {
    let (sluice, addr) = start_sasl(&[]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "plain-kcat", &[]);
    kcat_round_trip(&addr, "PLAIN", "alice", "alice-secret", "plain-kcat");
    let err = kcat_refused(&addr, "PLAIN", "alice", "wrong");
    assert!(
        err.contains("Authentication failed: Invalid username or password"),
        "{err}"
    );
    let err = kcat_refused(&addr, "PLAIN", "mallory", "alice-secret");
    assert!(
        err.contains("Authentication failed: Invalid username or password"),
        "{err}"
    );
    // Each failure was logged.
    assert!(sluice.output().contains("Failed authentication with"));
}

#[test]
fn raw_gate_follows_kafka() {
    let (sluice, addr) = start_sasl(&[]);

    // Metadata before authentication: closed without an answer.
    let mut c = Conn::connect(&addr);
    c.write_request(12, &MetadataRequest::default().with_topics(None));
    assert!(c.closed(), "Metadata before authentication must close");

    // ApiVersions, then Metadata: closed.
    let mut c = Conn::connect(&addr);
    let v = c
        .send(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("sasl-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .unwrap();
    assert!(v
        .api_keys
        .iter()
        .any(|k| k.api_key == 17 && k.max_version == 1));
    assert!(v
        .api_keys
        .iter()
        .any(|k| k.api_key == 36 && k.max_version == 2));
    c.write_request(12, &MetadataRequest::default().with_topics(None));
    assert!(c.closed());

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM and the list, then closed.
    let mut c = Conn::connect(&addr);
    let hs = c
        .send(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
        )
        .unwrap();
    assert_eq!(hs.error_code, 33);
    let names: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(c.closed());

    // Wrong password: SASL_AUTHENTICATION_FAILED with Kafka's message, closed.
    let mut c = Conn::connect(&addr);
    let (code, message) = c.plain_login("alice", "nope");
    assert_eq!(code, 58);
    assert_eq!(
        message.as_deref(),
        Some("Authentication failed: Invalid username or password")
    );
    assert!(c.closed());

    // Right password: the connection serves requests, and SaslHandshake
    // afterwards is ILLEGAL_SASL_STATE, as Kafka's KafkaApis answers.
    let mut c = Conn::connect(&addr);
    assert_eq!(c.plain_login("alice", "alice-secret").0, 0);
    assert!(metadata_ok(&mut c));
    let again = c
        .send(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .unwrap();
    assert_eq!(again.error_code, 34);

    // SaslHandshake v0: the PLAIN token and its (empty) answer are bare
    // frames without Kafka headers.
    let mut c = Conn::connect(&addr);
    let hs = c
        .send(
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .unwrap();
    assert_eq!(hs.error_code, 0);
    c.send_frame(b"\0admin\0admin-secret");
    assert_eq!(c.read_frame().as_deref(), Some(&b""[..]));
    assert!(metadata_ok(&mut c));
    // ... and a wrong v0 token closes without an answer.
    let mut c = Conn::connect(&addr);
    c.send(
        0,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .unwrap();
    c.send_frame(b"\0admin\0nope");
    assert!(c.read_frame().is_none());

    // The PLAINTEXT listener is unaffected.
    let mut plain = Conn::connect(sluice.bootstrap());
    assert!(metadata_ok(&mut plain));
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn huge_claimed_sizes_before_authentication_are_refused_unread() {
    // A stalled frame would otherwise be dropped after this long: the
    // refusals below must come from the size check, not from a timeout.
    let (sluice, addr) = start_sasl(&[("sluice.request.stall.timeout.ms", "600000")]);
    let pid = sluice.pid().unwrap();
    let before = rss_kib(pid);
    // 64 connections each claim 2 GiB (above socket.request.max.bytes too)
    // or 50 MiB (only above sasl.server.max.receive.size) in a
    // SaslAuthenticate frame after a valid handshake, and send 1 KiB of
    // it: each is closed at the size prefix, nothing is buffered.
    for i in 0..64 {
        let mut c = Conn::connect(&addr);
        let hs = c
            .send(
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .unwrap();
        assert_eq!(hs.error_code, 0);
        let claim: i32 = if i % 2 == 0 { 0x7fff_fff0 } else { 50 << 20 };
        let mut frame = claim.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0u8; 1024]);
        let _ = c.stream.write_all(&frame);
        assert!(c.closed(), "claim of {claim} bytes");
    }
    // One byte over the limit before authentication: closed too.
    let mut c = Conn::connect(&addr);
    let mut frame = 524_289_i32.to_be_bytes().to_vec();
    frame.resize(4 + 1024, 0);
    let _ = c.stream.write_all(&frame);
    assert!(c.closed());
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "broker RSS grew from {before} KiB to {after} KiB"
    );
    // The broker still serves authenticated clients.
    let mut c = Conn::connect(&addr);
    assert_eq!(c.plain_login("alice", "alice-secret").0, 0);
    assert!(metadata_ok(&mut c));
}

#[test]
fn wrong_passwords_at_high_rate_do_not_affect_an_authenticated_client() {
    let (sluice, addr) = start_sasl(&[("connection.failed.authentication.delay.ms", "0")]);
    let mut good = Conn::connect(&addr);
    assert_eq!(good.plain_login("alice", "alice-secret").0, 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut refused = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || refused < 50 {
                    let mut c = Conn::connect(&addr);
                    let (code, _) = c.plain_login("alice", "guess");
                    assert_eq!(code, 58);
                    refused += 1;
                }
                refused
            })
        })
        .collect();
    for _ in 0..200 {
        assert!(metadata_ok(&mut good), "the authenticated client failed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused: u32 = attackers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(refused >= 200);
    assert!(metadata_ok(&mut good));
    assert!(sluice.output().contains("Failed authentication with"));
}

#[test]
fn java_tools_with_command_config() {
    if !kafka_tools_ready("sasl java_tools_with_command_config") {
        return;
    }
    let (_sluice, addr) = start_sasl(&[]);
    let dir = tempfile::tempdir().unwrap();
    let good = command_config(dir.path(), "PLAIN", "alice", "alice-secret");
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            &good,
            "--create",
            "--topic",
            "java-plain",
            "--partitions",
            "2",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            &good,
            "--list",
        ],
    );
    assert!(ok && out.contains("java-plain"), "{out}\n{err}");
    let bad = command_config(dir.path(), "PLAIN", "alice", "wrong");
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            &bad,
            "--list",
        ],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("Authentication failed: Invalid username or password"),
        "{out}\n{err}"
    );
}

#[test]
fn confluent_kafka_python_plain() {
    let Some(python) = venv_python("sasl confluent_kafka_python_plain") else {
        return;
    };
    let (sluice, addr) = start_sasl(&[]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "py-sasl", &[]);
    python_round_trip(&python, &addr, "PLAIN", "alice", "alice-secret", "py-sasl");
    let err = python_refused(&python, &addr, "PLAIN", "alice", "nope");
    assert!(err.contains("Invalid username or password"), "{err}");
}
