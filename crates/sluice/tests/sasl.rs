//! SASL_PLAINTEXT listeners (issue 20) through real clients and the real
//! binary: PLAIN users from the listener's JAAS entry, SCRAM-SHA-256/512
//! credentials from the cluster metadata; kcat (librdkafka), Kafka's Java
//! tools with `--command-config`, confluent-kafka (Python); and the gate's
//! refusals on the raw protocol: requests before authentication, huge
//! claimed sizes, floods of wrong passwords.
//!
//! Each broker has a PLAINTEXT listener (the testkit's) and a
//! SASL_PLAINTEXT one; clients bootstrapped on the SASL listener are given
//! that listener's endpoints.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_testkit::SluiceProcess;

use common::{create_topic, kafka_tool_output, kafka_tools_ready, root, start, RawClient};

const JAAS_PLAIN: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;
const JAAS_SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required;";

/// The broker keys of a SASL_PLAINTEXT listener beside the PLAINTEXT one.
fn sasl_overrides() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        (
            "sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        ),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            JAAS_PLAIN,
        ),
        (
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config",
            JAAS_SCRAM,
        ),
        (
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config",
            JAAS_SCRAM,
        ),
    ]
}

fn start_sasl(extra: &[(&'static str, &'static str)]) -> (SluiceProcess, String) {
    let mut overrides = sasl_overrides();
    overrides.extend_from_slice(extra);
    let sluice = start(&overrides);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = sluice.output();
        if let Some(addr) = out
            .lines()
            .find_map(|l| l.strip_prefix("listening on SASL_PLAINTEXT://"))
        {
            return (sluice, addr.trim().to_string());
        }
        assert!(Instant::now() < deadline, "no SASL listener:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw protocol connection that may also send and read bare frames.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    fn write_request<R: Request>(&mut self, version: i16, req: &R) {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sasl-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        self.send_frame(&body);
    }

    fn send_frame(&mut self, body: &[u8]) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next frame, or `None` when the broker closed the connection.
    fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
        let size = i32::from_be_bytes(size);
        assert!((0..64 << 20).contains(&size), "response size {size}");
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).unwrap();
        Some(Bytes::from(buf))
    }

    fn send<R: Request>(&mut self, version: i16, req: &R) -> Option<R::Response> {
        self.write_request(version, req);
        let mut bytes = self.read_frame()?;
        let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation);
        let resp = R::Response::decode(&mut bytes, version).unwrap();
        assert_eq!(bytes.remaining(), 0, "trailing bytes in response");
        Some(resp)
    }

    /// Whether the broker closed the connection (read gives end of stream).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    /// SaslHandshake v1 and SaslAuthenticate v2 with a PLAIN token; the
    /// SaslAuthenticate answer's error code and message.
    fn plain_login(&mut self, user: &str, password: &str) -> (i16, Option<String>) {
        let hs = self
            .send(
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .expect("handshake answered");
        assert_eq!(hs.error_code, 0);
        let token = format!("\0{user}\0{password}");
        let auth = self
            .send(
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
            )
            .expect("authenticate answered");
        (auth.error_code, auth.error_message.map(|m| m.to_string()))
    }
}

fn metadata_ok(conn: &mut Conn) -> bool {
    conn.send(12, &MetadataRequest::default().with_topics(None))
        .is_some_and(|m| !m.brokers.is_empty())
}

/// kcat with SASL options; whether it exited 0, stdout, stderr.
fn kcat(
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let mut child = Command::new("kcat")
        .args(["-b", addr, "-X", "security.protocol=SASL_PLAINTEXT"])
        .args(["-X", &format!("sasl.mechanisms={mechanism}")])
        .args(["-X", &format!("sasl.username={user}")])
        .args(["-X", &format!("sasl.password={password}")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kcat_round_trip(addr: &str, mechanism: &str, user: &str, password: &str, topic: &str) {
    let records: String = (0..20).map(|i| format!("{mechanism}-{i}\n")).collect();
    let (ok, out, err) = kcat(
        addr,
        mechanism,
        user,
        password,
        &["-P", "-t", topic],
        &records,
    );
    assert!(ok, "kcat produce with {mechanism} as {user}: {out}\n{err}");
    let (ok, out, err) = kcat(
        addr,
        mechanism,
        user,
        password,
        &["-C", "-t", topic, "-o", "beginning", "-e", "-q"],
        "",
    );
    assert!(ok, "kcat consume with {mechanism} as {user}: {out}\n{err}");
    for i in 0..20 {
        assert!(out.contains(&format!("{mechanism}-{i}\n")), "{out}");
    }
}

fn kcat_refused(addr: &str, mechanism: &str, user: &str, password: &str) -> String {
    let (ok, out, err) = kcat(addr, mechanism, user, password, &["-L", "-m", "10"], "");
    assert!(!ok, "kcat -L with a wrong password succeeded: {out}");
    err
}

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

fn command_config(dir: &std::path::Path, mechanism: &str, user: &str, password: &str) -> String {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    let path = dir.join(format!("{mechanism}-{user}.properties"));
    std::fs::write(
        &path,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n\
             sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";\n"
        ),
    )
    .unwrap();
    path.display().to_string()
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

/// confluent-kafka (librdkafka 2.16, which has SCRAM; Debian's kcat
/// build has PLAIN only) in the venv `scripts/setup` makes, or `None`
/// after a loud skip notice (a panic with `SLUICE_REQUIRE_CLIENTS`).
fn venv_python(what: &str) -> Option<std::path::PathBuf> {
    let python = root().join(".cache/venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if common::env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!("{what}: confluent-kafka in .cache/venv required (scripts/setup)");
    }
    eprintln!("\n!!! SKIPPED {what}: no confluent-kafka in .cache/venv; run scripts/setup !!!\n");
    None
}

const PYTHON_CLIENT: &str = r#"
import sys, time
from confluent_kafka import Producer, Consumer
mode, addr, mech, user, pw, topic = sys.argv[1:7]
errors = []
conf = {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mech, "sasl.username": user, "sasl.password": pw,
        "error_cb": lambda e: errors.append(str(e))}
if mode == "refused":
    p = Producer(conf)
    try:
        p.list_topics(timeout=10)
        print("listed")
    except Exception as e:
        print("failed", e)
    for _ in range(5):
        p.poll(0.5)
    print("\n".join(errors))
    sys.exit(0)
p = Producer(conf)
for i in range(10):
    p.produce(topic, value=f"{mech}-{i}".encode())
assert p.flush(60) == 0, errors
c = Consumer(dict(conf, **{"group.id": "py-" + mech, "auto.offset.reset": "earliest"}))
c.subscribe([topic])
got = []
deadline = time.time() + 60
while len(got) < 10 and time.time() < deadline:
    m = c.poll(1.0)
    if m is not None and m.error() is None and m.value().decode().startswith(mech + "-"):
        got.append(m.value().decode())
c.close()
assert sorted(got) == sorted(f"{mech}-{i}" for i in range(10)), (got, errors)
print("ok")
"#;

fn python_client(python: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python client {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Produces ten records as `user` with `mechanism` and reads them back.
fn python_round_trip(
    python: &std::path::Path,
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    topic: &str,
) {
    let out = python_client(
        python,
        &["round-trip", addr, mechanism, user, password, topic],
    );
    assert!(out.contains("ok"), "{out}");
}

/// The errors a client refused with `mechanism` reports.
fn python_refused(
    python: &std::path::Path,
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> String {
    let out = python_client(python, &["refused", addr, mechanism, user, password, "-"]);
    assert!(!out.contains("listed"), "{out}");
    out
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

/// Kafka's `kafka-configs` (ConfigCommand) with `args`; exit status and
/// both outputs. No log4j config: its defaults log nothing to stdout.
fn kafka_configs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg("kafka.admin.ConfigCommand")
        .args(args)
        .output()
        .expect("run java");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn configs_ok(args: &[&str]) -> String {
    let (ok, out, err) = kafka_configs(args);
    assert!(ok, "kafka-configs {args:?}:\n{out}\n{err}");
    out
}

#[test]
fn scram_users_from_kafka_configs_log_in_without_restart() {
    if !kafka_tools_ready("sasl scram_users_from_kafka_configs_log_in_without_restart") {
        return;
    }
    let Some(python) = venv_python("sasl scram_users_from_kafka_configs_log_in_without_restart")
    else {
        return;
    };
    let (sluice, addr) = start_sasl(&[]);
    let plain = sluice.bootstrap().to_string();
    let mut admin = RawClient::connect(&plain);
    create_topic(&mut admin, "scram-topic", &[]);
    // Nobody yet: refused with Kafka's generic message.
    let err = python_refused(&python, &addr, "SCRAM-SHA-256", "carol", "carol-secret");
    assert!(
        err.contains("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"),
        "{err}"
    );
    // Two mechanisms of one user in one request: DUPLICATE_RESOURCE, as
    // Kafka's controller answers (kafka_configs_describe_matches_reference_kafka).
    let (ok, out, err) = kafka_configs(&[
        "--bootstrap-server", &plain, "--alter", "--add-config",
        "SCRAM-SHA-256=[password=carol-secret],SCRAM-SHA-512=[iterations=8192,password=carol-secret]",
        "--entity-type", "users", "--entity-name", "carol",
    ]);
    assert!(!ok && (out + &err).contains("cannot be altered twice"));
    configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[password=carol-secret]",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-512=[iterations=8192,password=carol-secret]",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    let described = configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--describe",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    assert_eq!(
        described.trim(),
        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-256=iterations=4096, SCRAM-SHA-512=iterations=8192",
    );
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-256",
        "carol",
        "carol-secret",
        "scram-topic",
    );
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-512",
        "carol",
        "carol-secret",
        "scram-topic",
    );
    let err = python_refused(&python, &addr, "SCRAM-SHA-512", "carol", "wrong");
    assert!(
        err.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "{err}"
    );
    // The Java client over SASL, through its own --command-config.
    let dir = tempfile::tempdir().unwrap();
    let cc = command_config(dir.path(), "SCRAM-SHA-512", "carol", "carol-secret");
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            &cc,
            "--list",
        ],
    );
    assert!(ok && out.contains("scram-topic"), "{out}\n{err}");
    // Iterations out of Kafka's bounds are refused.
    let (ok, out, err) = kafka_configs(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[iterations=100,password=x]",
        "--entity-type",
        "users",
        "--entity-name",
        "dave",
    ]);
    // (The admin client refuses it itself; the reference comparison below
    // checks that Kafka's answer is the same.)
    assert!(!ok, "{out}\n{err}");
    // Deleting one mechanism's credential: that login stops working at
    // once, the other goes on.
    configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--delete-config",
        "SCRAM-SHA-256",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    python_refused(&python, &addr, "SCRAM-SHA-256", "carol", "carol-secret");
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-512",
        "carol",
        "carol-secret",
        "scram-topic",
    );
    let described = configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--describe",
        "--entity-type",
        "users",
    ]);
    assert_eq!(
        described.trim(),
        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-512=iterations=8192",
    );
}

/// The same kafka-configs calls against the pinned Kafka 4.1.2, with the
/// same output (its tools talk to the broker's PLAINTEXT listener).
#[test]
fn kafka_configs_describe_matches_reference_kafka() {
    if !kafka_tools_ready("sasl kafka_configs_describe_matches_reference_kafka") {
        return;
    }
    let Some(kafka) = sluice_testkit::ReferenceKafka::start().expect("reference Kafka starts")
    else {
        return;
    };
    let (sluice, _) = start_sasl(&[]);
    let run_all = |bootstrap: &str| -> Vec<String> {
        let (both_ok, out, err) = kafka_configs(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=5000,password=p],SCRAM-SHA-512=[password=p]",
            "--entity-type",
            "users",
            "--entity-name",
            "erin",
        ]);
        let both = format!(
            "{both_ok} {}",
            (out + &err).contains("cannot be altered twice")
        );
        configs_ok(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=5000,password=p]",
            "--entity-type",
            "users",
            "--entity-name",
            "erin",
        ]);
        configs_ok(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=p]",
            "--entity-type",
            "users",
            "--entity-name",
            "erin",
        ]);
        configs_ok(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=q]",
            "--entity-type",
            "users",
            "--entity-name",
            "frank",
        ]);
        // Users and each user's mechanisms come in the broker's order
        // (hash maps' in Kafka, keyed by user and by an enum whose hash
        // changes from run to run): sort both.
        let sorted = |text: String| {
            let mut lines: Vec<String> = text
                .lines()
                .map(|l| match l.split_once(" are ") {
                    Some((head, list)) => {
                        let mut items: Vec<&str> = list.split(", ").collect();
                        items.sort();
                        format!("{head} are {}", items.join(", "))
                    }
                    None => l.to_string(),
                })
                .collect();
            lines.sort();
            lines.join("\n")
        };
        let mut outputs = vec![
            sorted(configs_ok(&[
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--entity-type",
                "users",
            ])),
            sorted(configs_ok(&[
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--entity-type",
                "users",
                "--entity-name",
                "erin",
            ])),
        ];
        let (ok, out, err) = kafka_configs(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--delete-config",
            "SCRAM-SHA-256",
            "--entity-type",
            "users",
            "--entity-name",
            "nobody",
        ]);
        outputs.push(format!("{ok} {}", (out + &err).contains("does not exist")));
        let (ok, out, err) = kafka_configs(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=100,password=x]",
            "--entity-type",
            "users",
            "--entity-name",
            "dave",
        ]);
        outputs.push(format!(
            "{ok} {}",
            (out + &err).contains("Too few iterations")
        ));
        outputs.push(both);
        outputs
    };
    let theirs = run_all(&kafka.bootstrap());
    let ours = run_all(sluice.bootstrap());
    assert_eq!(ours, theirs);
}
