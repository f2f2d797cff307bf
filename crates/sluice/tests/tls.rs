//! SSL listeners through real clients and real processes: `sluice tls
//! init` makes the certificates; kcat, confluent-kafka (librdkafka) and
//! the Java client (Kafka's tools with their client config files) produce
//! and consume over SSL and mutual TLS; Metadata advertises the listener
//! the client came in on; each kind of bad input (garbage before or
//! inside the handshake, a plaintext client on the TLS port, a stalled
//! handshake, a wrong-CA or expired client certificate) fails cleanly
//! while the broker keeps serving everyone else; the reference Kafka,
//! configured with the same keys, accepts the same client settings.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tls::{p, tls_init};
use common::{kafka_tool_output, kafka_tools_ready, root};
use sluice_testkit::{ReferenceKafka, SluiceProcess};

/// A Sluice with a PLAINTEXT and an SSL listener; the SSL address.
fn start_ssl(dir: &Path, client_auth: &str, truststore: &str) -> (SluiceProcess, String) {
    start_ssl_with(dir, client_auth, truststore, &[])
}

fn start_ssl_with(
    dir: &Path,
    client_auth: &str,
    truststore: &str,
    extra: &[(&str, &str)],
) -> (SluiceProcess, String) {
    let keystore = p(dir, "broker.pem");
    let mut overrides = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", truststore),
        ("ssl.client.auth", client_auth),
    ];
    overrides.extend_from_slice(extra);
    let broker =
        SluiceProcess::start_default(&overrides).expect("start sluice with an SSL listener");
    // The SSL line follows the PLAINTEXT one the start waited for.
    for _ in 0..600 {
        if let Some(ssl) = ssl_address(&broker.output()) {
            return (broker, ssl);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no SSL listener line:\n{}", broker.output());
}

fn ssl_address(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("listening on SSL://"))
        .map(|a| a.trim().to_string())
}

/// librdkafka's settings for `dir`'s certificates (`with_cert`: mTLS).
fn rdkafka_ssl(dir: &Path, with_cert: bool) -> Vec<String> {
    let mut s = vec![
        "security.protocol=ssl".to_string(),
        format!("ssl.ca.location={}", p(dir, "ca.pem")),
    ];
    if with_cert {
        s.push(format!(
            "ssl.certificate.location={}",
            p(dir, "client-cert.pem")
        ));
        s.push(format!("ssl.key.location={}", p(dir, "client-key.pem")));
    }
    s
}

/// Runs kcat with `-X` settings; its stdout, panicking on failure.
fn kcat(bootstrap: &str, settings: &[String], args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new("timeout");
    // Cargo's LD_LIBRARY_PATH holds rdkafka-sys's own librdkafka.so, built
    // without OpenSSL; kcat must load Debian's.
    cmd.env_remove("LD_LIBRARY_PATH")
        .args(["120", "kcat", "-b", bootstrap]);
    for s in settings {
        cmd.arg("-X").arg(s);
    }
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kcat runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Produces `n` records to `topic` with kcat and reads them back.
fn kcat_round_trip(bootstrap: &str, settings: &[String], topic: &str, n: usize) {
    let lines: Vec<String> = (0..n).map(|i| format!("{topic}-{i}")).collect();
    let input = lines.join("\n") + "\n";
    kcat(
        bootstrap,
        settings,
        &["-P", "-t", topic, "-p", "0"],
        Some(&input),
    );
    let read = kcat(
        bootstrap,
        settings,
        &[
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-c",
            &n.to_string(),
            "-f",
            "%s\n",
        ],
        None,
    );
    assert_eq!(
        read.lines().collect::<Vec<_>>(),
        lines,
        "records read back over TLS"
    );
}

/// The `-L` listing names the SSL endpoint as the broker's address.
fn assert_advertises(bootstrap: &str, settings: &[String]) {
    let listing = kcat(bootstrap, settings, &["-L"], None);
    assert!(
        listing.contains(&format!("at {bootstrap}")),
        "Metadata over SSL must advertise the SSL listener {bootstrap}:\n{listing}"
    );
}

#[test]
fn kcat_over_ssl_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    tls_init(dir.path());
    let ca = p(dir.path(), "ca.pem");

    // Server-authenticated TLS: no client certificate.
    let (broker, ssl) = start_ssl(dir.path(), "none", &ca);
    let settings = rdkafka_ssl(dir.path(), false);
    assert_advertises(&ssl, &settings);
    kcat_round_trip(&ssl, &settings, "tls-kcat", 200);
    // The PLAINTEXT listener still answers with its own endpoint.
    let plain = kcat(broker.bootstrap(), &[], &["-L"], None);
    assert!(
        plain.contains(&format!("at {}", broker.bootstrap())),
        "{plain}"
    );
    drop(broker);

    // Mutual TLS.
    let (broker, ssl) = start_ssl(dir.path(), "required", &ca);
    let settings = rdkafka_ssl(dir.path(), true);
    assert_advertises(&ssl, &settings);
    kcat_round_trip(&ssl, &settings, "mtls-kcat", 200);
    // Larger than one TLS record and than one copy buffer: a fetch of
    // several hundred KiB goes through whole.
    let big: Vec<String> = (0..40)
        .map(|i| format!("{i:04}{}", "x".repeat(20_000)))
        .collect();
    kcat(
        &ssl,
        &settings,
        &["-P", "-t", "mtls-big", "-p", "0"],
        Some(&(big.join("\n") + "\n")),
    );
    let read = kcat(
        &ssl,
        &settings,
        &[
            "-C",
            "-t",
            "mtls-big",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-c",
            "40",
            "-f",
            "%s\n",
        ],
        None,
    );
    assert_eq!(read.lines().collect::<Vec<_>>(), big);
    drop(broker);
}

const CONFLUENT_SCRIPT: &str = r#"
import sys
from confluent_kafka import Producer, Consumer
bootstrap, topic, ca, cert, key = sys.argv[1:6]
conf = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca,
        "ssl.certificate.location": cert, "ssl.key.location": key}
p = Producer(dict(conf, **{"enable.idempotence": True}))
for i in range(100):
    p.produce(topic, value=("py-%d" % i).encode(), partition=0)
assert p.flush(60) == 0, "unflushed records"
c = Consumer(dict(conf, **{"group.id": "tls-py", "auto.offset.reset": "earliest"}))
c.subscribe([topic])
seen = []
import time
deadline = time.time() + 90
while len(seen) < 100 and time.time() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        print("error", m.error(), file=sys.stderr)
        continue
    seen.append(m.value().decode())
c.close()
assert seen == ["py-%d" % i for i in range(100)], seen[:5]
print("OK", len(seen))
"#;

#[test]
fn confluent_kafka_python_over_mutual_tls() {
    let python = root().join(".cache/venv/bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import confluent_kafka"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            !common::env_on("SLUICE_REQUIRE_CLIENTS"),
            "confluent-kafka required (SLUICE_REQUIRE_CLIENTS is set)"
        );
        eprintln!("\n\n!!! SKIPPED confluent-kafka TLS test: run scripts/setup !!!\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    tls_init(dir.path());
    let (_broker, ssl) = start_ssl(dir.path(), "required", &p(dir.path(), "ca.pem"));
    let out = Command::new(&python)
        .env_remove("LD_LIBRARY_PATH")
        .arg("-c")
        .arg(CONFLUENT_SCRIPT)
        .args([
            ssl.as_str(),
            "tls-python",
            &p(dir.path(), "ca.pem"),
            &p(dir.path(), "client-cert.pem"),
            &p(dir.path(), "client-key.pem"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK 100"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Java's client config for `dir` (PEM keystore and truststore).
fn java_client_config(dir: &Path) -> PathBuf {
    let path = dir.join("client-ssl.properties");
    assert!(path.exists(), "tls init writes {}", path.display());
    path
}

/// Creates a topic, produces 500 records and consumes them with Kafka's
/// own tools over `bootstrap` with `config`.
fn java_tools_round_trip(bootstrap: &str, config: &Path, topic: &str) {
    let config = config.display().to_string();
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            &config,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--replication-factor",
            "1",
        ],
    );
    assert!(ok, "kafka-topics over TLS:\n{out}\n{err}");
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            topic,
            "--num-records",
            "500",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer.config",
            &config,
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
            "acks=all",
        ],
    );
    assert!(
        ok && out.contains("500 records sent"),
        "producer over TLS:\n{out}\n{err}"
    );
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            bootstrap,
            "--consumer.config",
            &config,
            "--topic",
            topic,
            "--partition",
            "0",
            "--offset",
            "earliest",
            "--max-messages",
            "500",
            "--timeout-ms",
            "120000",
        ],
    );
    assert!(
        ok && err.contains("Processed a total of 500 messages"),
        "consumer over TLS at {bootstrap}:\n{out}\n{err}"
    );
    assert_eq!(out.lines().count(), 500, "{err}");
}

#[test]
fn java_tools_over_mutual_tls_on_sluice_and_on_kafka() {
    if !kafka_tools_ready("TLS Java tools") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    tls_init(dir.path());
    let config = java_client_config(dir.path());
    let ca = p(dir.path(), "ca.pem");
    let (broker, ssl) = start_ssl(dir.path(), "required", &ca);
    java_tools_round_trip(&ssl, &config, "tls-java");
    drop(broker);

    // The same client config against Kafka 4.1 configured with the same keys.
    let keystore = p(dir.path(), "broker.pem");
    let Some(kafka) = ReferenceKafka::start_with_listener(
        "SSL",
        &[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &keystore),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", &ca),
            ("ssl.client.auth", "required"),
        ],
    )
    .expect("reference Kafka starts with an SSL listener") else {
        return;
    };
    let kafka_ssl = format!("127.0.0.1:{}", kafka.listener_port().unwrap());
    java_tools_round_trip(&kafka_ssl, &config, "tls-java");
    // And kcat's settings too.
    kcat_round_trip(
        &kafka_ssl,
        &rdkafka_ssl(dir.path(), true),
        "tls-kcat-kafka",
        20,
    );
}

/// A probe of the TLS port with Python's `ssl` module: `mode` is
/// `garbage-before`, `garbage-inside`, `plaintext` (a Kafka ApiVersions
/// request in the clear) or `cert` (a handshake with `cert`/`key`, then
/// an ApiVersions request). Prints OK when an answer came, else CLOSED or
/// REFUSED with the reason.
const PROBE: &str = r#"
import socket, ssl, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
mode = sys.argv[2]
api_versions = struct.pack(">hhih", 18, 0, 7, 5) + b"probe"
frame = struct.pack(">i", len(api_versions)) + api_versions
s = socket.create_connection((host, int(port)), timeout=60)
def drain(sock):
    try:
        while sock.recv(4096):
            pass
        return "CLOSED"
    except TimeoutError:
        return "STILL OPEN"
    except (ConnectionResetError, ssl.SSLError, OSError) as e:
        return "CLOSED " + type(e).__name__
if mode == "garbage-before":
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
    print(drain(s))
elif mode == "garbage-inside":
    # A handshake record whose ClientHello is noise.
    body = bytes([1, 0, 0, 200]) + bytes((i * 37) % 251 for i in range(200))
    s.sendall(bytes([22, 3, 1]) + struct.pack(">H", len(body)) + body)
    print(drain(s))
elif mode == "plaintext":
    s.sendall(frame)
    print(drain(s))
else:
    ca, cert, key = sys.argv[3:6]
    ctx = ssl.create_default_context(cafile=ca)
    if cert != "-":
        ctx.load_cert_chain(cert, key)
    try:
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(frame)
        size = t.recv(4)
        if len(size) == 4:
            print("OK")
        else:
            print("REFUSED eof")
    except (ssl.SSLError, ConnectionResetError, OSError) as e:
        print("REFUSED", e)
"#;

fn probe(ssl: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PROBE)
        .arg(ssl)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A second CA (trusted by the broker too) that issued an expired client
/// certificate and a valid one: (CA PEM, expired cert, expired key, valid
/// cert, valid key) written into `dir`.
fn second_ca(dir: &Path) -> (String, [String; 4]) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "second test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issue = |name: &str, expired: bool| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let cert_path = dir.join(format!("{name}-cert.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (
            cert_path.display().to_string(),
            key_path.display().to_string(),
        )
    };
    let (expired_cert, expired_key) = issue("expired", true);
    let (valid_cert, valid_key) = issue("valid", false);
    (
        ca_cert.pem(),
        [expired_cert, expired_key, valid_cert, valid_key],
    )
}

#[test]
fn bad_clients_fail_cleanly_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    tls_init(dir.path());
    let other = tempfile::tempdir().unwrap();
    tls_init(other.path());
    let (second_ca_pem, [expired_cert, expired_key, valid_cert, valid_key]) = second_ca(dir.path());
    let trust = dir.path().join("trust.pem");
    std::fs::write(
        &trust,
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap() + &second_ca_pem,
    )
    .unwrap();
    // Handshakes (and requests) that stall are dropped after 5 s.
    let (mut broker, ssl) = start_ssl_with(
        dir.path(),
        "required",
        &trust.display().to_string(),
        &[("sluice.request.stall.timeout.ms", "5000")],
    );
    let ca = p(dir.path(), "ca.pem");
    let good = rdkafka_ssl(dir.path(), true);

    // Stalled handshakes hold nothing but their own connections.
    let mut stalled: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(&ssl).unwrap()).collect();
    // Half a ClientHello on one of them.
    stalled[0].write_all(&[22, 3, 1, 0x40, 0]).unwrap();
    kcat_round_trip(&ssl, &good, "tls-while-stalled", 10);

    assert!(probe(&ssl, &["garbage-before"]).starts_with("CLOSED"));
    assert!(probe(&ssl, &["garbage-inside"]).starts_with("CLOSED"));
    assert!(probe(&ssl, &["plaintext"]).starts_with("CLOSED"));
    // The broker's own client certificate is issued by the trusted CA.
    let client = (
        p(dir.path(), "client-cert.pem"),
        p(dir.path(), "client-key.pem"),
    );
    assert_eq!(probe(&ssl, &["cert", &ca, &client.0, &client.1]), "OK");
    let refused = |args: &[&str]| {
        let r = probe(&ssl, args);
        assert!(
            r.starts_with("REFUSED"),
            "{args:?} must be refused, got {r}"
        );
    };
    refused(&["cert", &ca, "-", "-"]);
    refused(&[
        "cert",
        &ca,
        &p(other.path(), "client-cert.pem"),
        &p(other.path(), "client-key.pem"),
    ]);
    refused(&["cert", &ca, &expired_cert, &expired_key]);
    // The second CA is trusted: only expiry refused the certificate above.
    assert_eq!(probe(&ssl, &["cert", &ca, &valid_cert, &valid_key]), "OK");

    // A stalled handshake is closed at the handshake timeout (the test
    // broker's sluice.request.stall.timeout.ms); it was never served.
    let mut buf = [0u8; 16];
    stalled[1]
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    match stalled[1].read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a stalled handshake must be closed by the broker, got {other:?}"),
    }
    drop(stalled);

    kcat_round_trip(&ssl, &good, "tls-after-bad-input", 10);
    assert!(broker.is_running(), "{}", broker.output());
    let log = broker.output();
    assert!(
        log.contains("TLS handshake"),
        "failed handshakes are logged:\n{log}"
    );
}

#[test]
fn bad_tls_configs_refuse_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    tls_init(dir.path());
    let start = |pairs: &[(&str, &str)]| {
        let mut all = vec![("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0")];
        all.extend_from_slice(pairs);
        match SluiceProcess::start_default(&all) {
            Ok(_) => panic!("{pairs:?} must refuse to start"),
            Err(e) => e.to_string(),
        }
    };
    let jks = start(&[("ssl.keystore.location", "/tmp/broker.jks")]);
    assert!(
        jks.contains("type JKS is not supported") && jks.contains("PEM"),
        "{jks}"
    );
    let encrypted = dir.path().join("encrypted.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let enc = start(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &encrypted.display().to_string()),
        ("ssl.key.password", "secret"),
    ]);
    assert!(
        enc.contains("encrypted") && enc.contains("ssl.key.password"),
        "{enc}"
    );
    assert!(!enc.contains("secret"), "{enc}");
    let missing = start(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/nonexistent.pem"),
    ]);
    assert!(
        missing.contains("/nonexistent.pem") && missing.contains("ssl.keystore.location"),
        "{missing}"
    );
    // A SASL_SSL listener needs a keystore like an SSL one.
    let sasl = match SluiceProcess::start_default(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "PLAIN"),
        (
            "listener.name.sasl_ssl.plain.sasl.jaas.config",
            common::sasl::JAAS_PLAIN,
        ),
    ]) {
        Ok(_) => panic!("SASL_SSL without a keystore must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        sasl.contains("SASL_SSL") && sasl.contains("keystore"),
        "{sasl}"
    );
    assert!(!jks.contains("panicked") && !enc.contains("panicked"));
}
