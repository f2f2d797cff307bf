//! Helpers of the SASL process tests (`tests/sasl.rs`, `tests/sasl_scram.rs`,
//! `tests/sasl_ssl.rs`): a broker with a SASL_PLAINTEXT listener beside the
//! testkit's PLAINTEXT one, a raw protocol connection that also speaks bare
//! SASL frames, and the clients, in plaintext or over TLS ([`Transport`]):
//! kcat (PLAIN only in Debian's build), confluent-kafka (PLAIN and SCRAM),
//! Kafka's Java tools.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    MetadataRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_testkit::SluiceProcess;

use super::{root, start};

pub const JAAS_PLAIN: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;
pub const JAAS_SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required;";

/// The broker keys of a SASL_PLAINTEXT listener beside the PLAINTEXT one.
pub fn sasl_overrides() -> Vec<(&'static str, &'static str)> {
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

pub fn start_sasl(extra: &[(&'static str, &'static str)]) -> (SluiceProcess, String) {
    let mut overrides = sasl_overrides();
    overrides.extend_from_slice(extra);
    sasl_address(start(&overrides))
}

/// [`start_sasl`] on an existing data dir.
pub fn start_sasl_in(data_dir: &std::path::Path) -> (SluiceProcess, String) {
    let sluice = SluiceProcess::start_in(env!("CARGO_BIN_EXE_sluice"), data_dir, &sasl_overrides())
        .expect("sluice starts");
    sasl_address(sluice)
}

fn sasl_address(sluice: SluiceProcess) -> (SluiceProcess, String) {
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
pub struct Conn {
    pub stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    pub fn write_request<R: Request>(&mut self, version: i16, req: &R) {
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

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next frame, or `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
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

    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> Option<R::Response> {
        self.write_request(version, req);
        let mut bytes = self.read_frame()?;
        let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation);
        let resp = R::Response::decode(&mut bytes, version).unwrap();
        assert_eq!(bytes.remaining(), 0, "trailing bytes in response");
        Some(resp)
    }

    /// Whether the broker closed the connection (read gives end of stream).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    /// SaslHandshake v1 and SaslAuthenticate v2 with a PLAIN token; the
    /// SaslAuthenticate answer's error code and message.
    pub fn plain_login(&mut self, user: &str, password: &str) -> (i16, Option<String>) {
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

pub fn metadata_ok(conn: &mut Conn) -> bool {
    conn.send(12, &MetadataRequest::default().with_topics(None))
        .is_some_and(|m| !m.brokers.is_empty())
}

/// How a SASL client reaches the listener: in plaintext, or over TLS
/// trusting a CA's PEM file (a SASL_SSL listener).
#[derive(Clone, Copy)]
pub enum Transport<'a> {
    Plaintext,
    Tls { ca: &'a str },
}

impl Transport<'_> {
    fn protocol(self) -> &'static str {
        match self {
            Transport::Plaintext => "SASL_PLAINTEXT",
            Transport::Tls { .. } => "SASL_SSL",
        }
    }

    /// librdkafka's settings for it.
    fn rdkafka(self) -> Vec<String> {
        let mut s = vec![format!("security.protocol={}", self.protocol())];
        if let Transport::Tls { ca } = self {
            s.push(format!("ssl.ca.location={ca}"));
        }
        s
    }
}

/// kcat with SASL options; whether it exited 0, stdout, stderr.
pub fn kcat(
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    kcat_over(
        Transport::Plaintext,
        addr,
        mechanism,
        user,
        password,
        args,
        stdin,
    )
}

/// [`kcat`] over `transport`.
pub fn kcat_over(
    transport: Transport<'_>,
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let mut cmd = Command::new("kcat");
    // Cargo's LD_LIBRARY_PATH holds rdkafka-sys's own librdkafka.so, built
    // without OpenSSL; kcat must load Debian's.
    cmd.env_remove("LD_LIBRARY_PATH").args(["-b", addr]);
    for s in transport.rdkafka() {
        cmd.arg("-X").arg(s);
    }
    let mut child = cmd
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

pub fn kcat_round_trip(addr: &str, mechanism: &str, user: &str, password: &str, topic: &str) {
    kcat_round_trip_over(Transport::Plaintext, addr, mechanism, user, password, topic)
}

/// [`kcat_round_trip`] over `transport`.
pub fn kcat_round_trip_over(
    transport: Transport<'_>,
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    topic: &str,
) {
    let records: String = (0..20).map(|i| format!("{mechanism}-{i}\n")).collect();
    let (ok, out, err) = kcat_over(
        transport,
        addr,
        mechanism,
        user,
        password,
        &["-P", "-t", topic],
        &records,
    );
    assert!(ok, "kcat produce with {mechanism} as {user}: {out}\n{err}");
    let (ok, out, err) = kcat_over(
        transport,
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

pub fn kcat_refused(addr: &str, mechanism: &str, user: &str, password: &str) -> String {
    kcat_refused_over(Transport::Plaintext, addr, mechanism, user, password)
}

/// [`kcat_refused`] over `transport`.
pub fn kcat_refused_over(
    transport: Transport<'_>,
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> String {
    let (ok, out, err) = kcat_over(
        transport,
        addr,
        mechanism,
        user,
        password,
        &["-L", "-m", "10"],
        "",
    );
    assert!(!ok, "kcat -L with a wrong password succeeded: {out}");
    err
}

pub fn command_config(
    dir: &std::path::Path,
    mechanism: &str,
    user: &str,
    password: &str,
) -> String {
    command_config_over(Transport::Plaintext, dir, mechanism, user, password)
}

/// [`command_config`] over `transport` (a PEM truststore for TLS).
pub fn command_config_over(
    transport: Transport<'_>,
    dir: &std::path::Path,
    mechanism: &str,
    user: &str,
    password: &str,
) -> String {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    let path = dir.join(format!(
        "{mechanism}-{user}-{}.properties",
        transport.protocol()
    ));
    let mut text = format!(
        "security.protocol={}\nsasl.mechanism={mechanism}\n\
         sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";\n",
        transport.protocol()
    );
    if let Transport::Tls { ca } = transport {
        text.push_str(&format!(
            "ssl.truststore.type=PEM\nssl.truststore.location={ca}\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// confluent-kafka (librdkafka 2.16, which has SCRAM; Debian's kcat
/// build has PLAIN only) in the venv `scripts/setup` makes, or `None`
/// after a loud skip notice (a panic with `SLUICE_REQUIRE_CLIENTS`).
pub fn venv_python(what: &str) -> Option<std::path::PathBuf> {
    let python = root().join(".cache/venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if super::env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!("{what}: confluent-kafka in .cache/venv required (scripts/setup)");
    }
    eprintln!("\n!!! SKIPPED {what}: no confluent-kafka in .cache/venv; run scripts/setup !!!\n");
    None
}

pub const PYTHON_CLIENT: &str = r#"
import sys, time
from confluent_kafka import Producer, Consumer
mode, addr, mech, user, pw, topic = sys.argv[1:7]
errors = []
conf = {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mech, "sasl.username": user, "sasl.password": pw,
        "error_cb": lambda e: errors.append(str(e))}
if len(sys.argv) > 7:
    conf.update({"security.protocol": "SASL_SSL", "ssl.ca.location": sys.argv[7]})
if mech == "OAUTHBEARER":
    # The password is the bearer token, handed over as it is.
    del conf["sasl.username"], conf["sasl.password"]
    conf["oauth_cb"] = lambda _config: (pw, time.time() + 300)
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
deadline = time.time() + 120
while len(got) < 10 and time.time() < deadline:
    m = c.poll(1.0)
    if m is not None and m.error() is None and m.value().decode().startswith(mech + "-"):
        got.append(m.value().decode())
c.close()
assert sorted(got) == sorted(f"{mech}-{i}" for i in range(10)), (got, errors)
print("ok")
"#;

pub fn python_client(python: &std::path::Path, args: &[&str]) -> String {
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
pub fn python_round_trip(
    python: &std::path::Path,
    addr: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    topic: &str,
) {
    python_round_trip_over(
        Transport::Plaintext,
        python,
        [addr, mechanism, user, password, topic],
    );
}

/// [`python_round_trip`] over `transport`; `login` is the address,
/// mechanism, user, password and topic.
pub fn python_round_trip_over(
    transport: Transport<'_>,
    python: &std::path::Path,
    login: [&str; 5],
) {
    let mut args = vec!["round-trip"];
    args.extend(login);
    if let Transport::Tls { ca } = transport {
        args.push(ca);
    }
    let out = python_client(python, &args);
    assert!(out.contains("ok"), "{out}");
}

/// The errors a client refused with `mechanism` reports.
pub fn python_refused(
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

/// Kafka's `kafka-configs` (ConfigCommand) with `args`; exit status and
/// both outputs. No log4j config: its defaults log nothing to stdout.
pub fn kafka_configs(args: &[&str]) -> (bool, String, String) {
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

pub fn configs_ok(args: &[&str]) -> String {
    let (ok, out, err) = kafka_configs(args);
    assert!(ok, "kafka-configs {args:?}:\n{out}\n{err}");
    out
}
