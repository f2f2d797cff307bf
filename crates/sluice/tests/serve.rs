//! The `sluice` binary's command line and lifecycle: config file plus
//! overrides, serving without a subcommand, clean shutdown on SIGTERM and
//! SIGINT (flush + clean-shutdown marker), refusal of bad configs.

mod common;

use std::process::Command;

use common::{sb, start, RawClient};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use sluice_testkit::SluiceProcess;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn broker_config(bootstrap: &str, key: &str) -> (Option<String>, i8) {
    let mut c = RawClient::connect(bootstrap);
    let resp = c.send(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(sb("1"))
            .with_configuration_keys(Some(vec![sb(key)]))]),
    );
    let e = &resp.results[0].configs[0];
    (e.value.as_ref().map(|v| v.to_string()), e.config_source)
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    let mut s = start(&[]);
    let status = s.terminate().unwrap();
    assert!(status.success(), "{status}\n{}", s.output());
    assert!(
        s.data_dir().join(".kafka_cleanshutdown").exists(),
        "clean-shutdown marker written"
    );
    assert!(s.output().contains("SIGTERM"), "{}", s.output());

    s.restart().unwrap();
    let status = s.interrupt().unwrap();
    assert!(status.success(), "{status}\n{}", s.output());
    assert!(s.output().contains("SIGINT"), "{}", s.output());
    assert!(s.data_dir().join(".kafka_cleanshutdown").exists());

    // kill -9 leaves no marker; the next start recovers and serves
    s.restart().unwrap();
    s.kill().unwrap();
    assert!(!s.data_dir().join(".kafka_cleanshutdown").exists());
    s.restart().unwrap();
    assert_eq!(
        broker_config(s.bootstrap(), "node.id").0.as_deref(),
        Some("1")
    );
}

#[test]
fn config_file_with_overrides_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.properties");
    std::fs::write(
        &file,
        "# a Kafka-style file\n\
         num.io.threads=8\n\
         controller.listener.names=CONTROLLER\n\
         listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
         num.partitions=3\n\
         log.retention.hours=5\n",
    )
    .unwrap();
    let s = SluiceProcess::start_with_args(
        BIN,
        &["--config", file.to_str().unwrap()],
        &[("log.retention.hours", "6")],
    )
    .unwrap();
    // the file's value, the override over the file, and the port-0 listener over the file
    assert_eq!(
        broker_config(s.bootstrap(), "num.partitions"),
        (Some("3".into()), 4)
    );
    assert_eq!(
        broker_config(s.bootstrap(), "log.retention.hours"),
        (Some("6".into()), 4)
    );
    assert!(!s.bootstrap().ends_with(":19092"));
    let warned: Vec<String> = s
        .output()
        .lines()
        .filter(|l| l.contains("does not implement"))
        .map(str::to_string)
        .collect();
    assert_eq!(warned.len(), 1, "{}", s.output());
    assert!(warned[0].contains("num.io.threads"));
}

#[test]
fn serves_without_the_serve_subcommand_and_refuses_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    // `sluice --override ...` (no subcommand) is `sluice serve --override ...`:
    // an invalid value makes it refuse before binding anything.
    let out = Command::new(BIN)
        .args(["--override", "num.partitions=0"])
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("num.partitions"), "{err}");
    assert!(
        !dir.path().join("meta.properties").exists(),
        "nothing written"
    );

    let out = Command::new(BIN)
        .args(["serve", "--override", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));

    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/server.properties"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/server.properties"));
}

/// `sluice.metrics.listener=0` (as README says) binds an ephemeral port on
/// 127.0.0.1 and prints it; a bare port is that port on 127.0.0.1. Anything
/// else that is not host:port is still refused before the broker starts.
#[test]
fn metrics_listener_takes_a_bare_port() {
    use std::io::{Read as _, Write as _};
    let s = start(&[("sluice.metrics.listener", "0")]);
    let out = s.output();
    let addr = out
        .lines()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address printed:\n{out}"))
        .to_string();
    let bound: std::net::SocketAddr = addr.parse().unwrap();
    assert_eq!(bound.ip().to_string(), "127.0.0.1", "{addr}");
    assert_ne!(bound.port(), 0, "{addr}");
    let mut c = std::net::TcpStream::connect(bound).expect("metrics endpoint answers");
    write!(
        c,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    for bad in ["nonsense", "70000", "-1", "127.0.0.1"] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--override", "listeners=PLAINTEXT://127.0.0.1:0"])
            .arg("--override")
            .arg(format!("log.dirs={}", dir.path().display()))
            .arg("--override")
            .arg(format!("sluice.metrics.listener={bad}"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sluice.metrics.listener"), "{bad}: {err}");
    }
}
