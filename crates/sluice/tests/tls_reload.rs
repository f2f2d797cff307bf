//! KIP-226 keystore reload through real processes: Kafka's `kafka-configs`
//! tool (ConfigCommand of the pinned Kafka jars) alters
//! `listener.name.ssl.ssl.keystore.location` of a running sluice; a new
//! TLS connection (python's ssl) then sees the new certificate, a
//! connection opened before keeps working, and kcat produces and
//! consumes over SSL. Naming the same path again after the file was
//! rewritten reloads it; a broken file is refused with Kafka's message
//! and the certificate in use stays; a restart keeps the stored one.
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::tls::{issue_broker_pem, issue_broker_pem_for, p, tls_init};
use common::{kafka_tools_ready, root};
use sluice_testkit::SluiceProcess;

/// Runs `kafka-configs --bootstrap-server <bootstrap> --entity-type brokers
/// --entity-name 1 --alter --add-config <config>`.
fn alter(bootstrap: &str, config: &str) -> Output {
    Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg("kafka.admin.ConfigCommand")
        .args(["--bootstrap-server", bootstrap, "--entity-type", "brokers"])
        .args(["--entity-name", "1", "--alter", "--add-config", config])
        .output()
        .expect("run java")
}

fn alter_ok(bootstrap: &str, config: &str) {
    let out = alter(bootstrap, config);
    assert!(
        out.status.success(),
        "kafka-configs --add-config {config} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens a TLS connection to `addr` trusting `ca`, asks ApiVersions and
/// prints the SHA-256 of the certificate the broker showed; then, for each
/// line on stdin, asks again on the same connection and prints OK.
const CLIENT: &str = r#"
import hashlib, socket, ssl, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context(cafile=sys.argv[2])
t = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=60),
                    server_hostname="localhost")
def ask(n):
    body = struct.pack(">hhih", 18, 0, n, 5) + b"probe"
    t.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", t.recv(4))[0]
    got = b""
    while len(got) < size:
        got += t.recv(size - len(got))
    assert struct.unpack(">i", got[:4])[0] == n, "wrong correlation id"
ask(1)
print(hashlib.sha256(t.getpeercert(True)).hexdigest(), flush=True)
for i, _ in enumerate(sys.stdin):
    ask(i + 2)
    print("OK", flush=True)
"#;

/// The SHA-256 of the first certificate in the PEM file `pem`.
const FINGERPRINT: &str = r#"
import hashlib, ssl, sys
text = open(sys.argv[1]).read()
start = text.index("-----BEGIN CERTIFICATE-----")
end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[start:end])).hexdigest())
"#;

fn fingerprint(pem: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", FINGERPRINT, pem])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A client connected to `ssl`: the child and the fingerprint it saw.
fn connect(ssl: &str, ca: &str) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new("python3")
        .args(["-c", CLIENT, ssl, ca])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim().len(), 64, "no fingerprint: {line:?}");
    (child, out, line.trim().to_string())
}

/// The fingerprint a new connection to `ssl` sees.
fn served(ssl: &str, ca: &str) -> String {
    let (mut child, _, seen) = connect(ssl, ca);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    seen
}

/// kcat over SSL: produces `n` records to `topic` and reads them back.
fn kcat_round_trip(ssl: &str, ca: &str, topic: &str, n: usize) {
    let run = |args: &[&str], input: Option<String>| {
        let mut cmd = Command::new("timeout");
        // Debian's kcat needs Debian's librdkafka (with OpenSSL), not the
        // one on cargo's LD_LIBRARY_PATH.
        cmd.env_remove("LD_LIBRARY_PATH")
            .args(["120", "kcat", "-b", ssl, "-X", "security.protocol=ssl"])
            .arg("-X")
            .arg(format!("ssl.ca.location={ca}"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kcat runs");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kcat {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let lines: Vec<String> = (0..n).map(|i| format!("{topic}-{i}")).collect();
    run(
        &["-P", "-t", topic, "-p", "0"],
        Some(lines.join("\n") + "\n"),
    );
    let count = n.to_string();
    let read = run(
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
            &count,
        ],
        None,
    );
    assert_eq!(read.lines().collect::<Vec<_>>(), lines);
}

fn ssl_address(broker: &SluiceProcess) -> String {
    for _ in 0..600 {
        if let Some(a) = broker
            .output()
            .lines()
            .find_map(|l| l.strip_prefix("listening on SSL://"))
        {
            return a.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no SSL listener line:\n{}", broker.output());
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[test]
fn kafka_configs_reloads_the_keystore_without_a_restart() {
    if !kafka_tools_ready("keystore reload") {
        return;
    }
    // The broker certificate of `sluice tls init` and a renewed one from
    // the same CA for the same subject (Kafka refuses another subject).
    let first = tempfile::tempdir().unwrap();
    tls_init(first.path());
    let old_pem = first.path().join("broker.pem");
    let new_pem = issue_broker_pem(first.path(), "localhost", "renewed.pem");
    let (old_fp, new_fp) = (
        fingerprint(&old_pem.display().to_string()),
        fingerprint(&new_pem.display().to_string()),
    );
    assert_ne!(old_fp, new_fp);
    let ca = p(first.path(), "ca.pem");
    let live = first.path().join("live.pem");
    copy(&old_pem, &live);
    let live_s = live.display().to_string();

    let broker = SluiceProcess::start_default(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &live_s),
    ])
    .expect("start sluice with an SSL listener");
    let ssl = ssl_address(&broker);
    let plain = broker.bootstrap().to_string();
    assert_eq!(served(&ssl, &ca), old_fp);
    kcat_round_trip(&ssl, &ca, "before-reload", 50);
    let (mut held, mut held_out, held_fp) = connect(&ssl, &ca);
    assert_eq!(held_fp, old_fp);

    // A new path: new connections see the new certificate; the one
    // opened before still gets answers.
    let key = "listener.name.ssl.ssl.keystore.location";
    alter_ok(&plain, &format!("{key}={}", new_pem.display()));
    assert_eq!(served(&ssl, &ca), new_fp);
    let mut stdin = held.stdin.take().unwrap();
    let mut ok = String::new();
    writeln!(stdin).unwrap();
    held_out.read_line(&mut ok).unwrap();
    assert_eq!(ok.trim(), "OK");
    kcat_round_trip(&ssl, &ca, "after-reload", 50);

    // A broken file is refused with Kafka's message; the certificate
    // in use stays.
    let bad = first.path().join("bad.pem");
    std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let out = alter(&plain, &format!("{key}={}", bad.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Validation of dynamic config update of SSLFactory failed"),
        "{stderr}"
    );
    assert_eq!(served(&ssl, &ca), new_fp);

    // A certificate for another subject is refused too.
    let other = issue_broker_pem(first.path(), "someone-else", "other.pem");
    let out = alter(&plain, &format!("{key}={}", other.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DistinguishedName does not match"),
        "{stderr}"
    );
    assert_eq!(served(&ssl, &ca), new_fp);

    // So is one that drops a SubjectAltName (here 127.0.0.1).
    let narrower = issue_broker_pem_for(first.path(), "localhost", &["localhost"], "narrow.pem");
    let out = alter(&plain, &format!("{key}={}", narrower.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SubjectAltNames do not match")
            && stderr.contains("existing=[[2, localhost], [7, 127.0.0.1]], new=[[2, localhost]]"),
        "{stderr}"
    );
    assert_eq!(served(&ssl, &ca), new_fp);

    // (and the first naming of `live` switches back to the old one).
    alter_ok(&plain, &format!("{key}={live_s}"));
    assert_eq!(served(&ssl, &ca), old_fp);
    copy(&new_pem, &live);
    alter_ok(&plain, &format!("{key}={live_s}"));
    assert_eq!(served(&ssl, &ca), new_fp);
    // A rewritten file that is broken is refused the same way.
    copy(&bad, &live);
    let out = alter(&plain, &format!("{key}={live_s}"));
    assert!(!out.status.success());
    assert_eq!(served(&ssl, &ca), new_fp);

    writeln!(stdin).unwrap();
    ok.clear();
    held_out.read_line(&mut ok).unwrap();
    assert_eq!(ok.trim(), "OK", "the connection opened first still works");
    drop(stdin);
    assert!(held.wait().unwrap().success());
    kcat_round_trip(&ssl, &ca, "end", 20);

    // The stored dynamic keystore wins over the static one after a
    // restart (here the static file holds the old certificate again).
    alter_ok(&plain, &format!("{key}={}", new_pem.display()));
    copy(&old_pem, &live);
    assert_eq!(served(&ssl, &ca), new_fp);
    let mut broker = broker;
    broker.restart().expect("restart");
    let (ssl, plain) = (ssl_address(&broker), broker.bootstrap().to_string());
    assert_eq!(served(&ssl, &ca), new_fp);

    // ssl.allow.san.changes: adding a name is taken as in Kafka, dropping
    // one only when the listener allows it.
    let wider = issue_broker_pem_for(
        first.path(),
        "localhost",
        &["localhost", "127.0.0.1", "broker-1.example"],
        "wide.pem",
    );
    let wider_fp = fingerprint(&wider.display().to_string());
    alter_ok(&plain, &format!("{key}={}", wider.display()));
    assert_eq!(served(&ssl, &ca), wider_fp);
    let out = alter(&plain, &format!("{key}={}", new_pem.display()));
    assert!(!out.status.success(), "broker-1.example was dropped");
    broker
        .restart_with(&[("listener.name.ssl.ssl.allow.san.changes", "true")])
        .expect("restart allowing SAN changes");
    let (ssl, plain) = (ssl_address(&broker), broker.bootstrap().to_string());
    assert_eq!(served(&ssl, &ca), wider_fp);
    alter_ok(&plain, &format!("{key}={}", narrower.display()));
    assert_eq!(
        served(&ssl, &ca),
        fingerprint(&narrower.display().to_string())
    );
}
