//! Shared helpers for the binary-level tests: start the real binary, and a
//! tiny raw Kafka protocol client (kafka-protocol encoders) for the admin
//! APIs the client libraries do not expose (topic ids, DescribeLogDirs, ...).

#![allow(dead_code)]

pub mod acls;
pub mod cluster;
pub mod console;
pub mod nodes;
pub mod quotas;
pub mod sasl;
pub mod tls;
pub mod transcript;
pub mod txn;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_testkit::SluiceProcess;

/// The repository root (where `clients/`, `compat/` and `.cache/` live).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// True when the environment variable is set to something other than "" or "0".
pub fn env_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Runs a class of the pinned Kafka 4.1.2 tools (`.cache/kafka/lib`) with
/// `args`; returns its stdout, panicking with both outputs on failure.
pub fn kafka_tool(class: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kafka_tool_output(class, args);
    assert!(ok, "{class} {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Runs a Kafka tool class; whether it exited 0, its stdout and stderr.
pub fn kafka_tool_output(class: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            root().join("clients/java/log4j.properties").display()
        ))
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg(class)
        .args(args)
        .output()
        .expect("run java");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Whether `java` and the pinned Kafka jars are here for [`kafka_tool`];
/// `false` after a loud skip notice for the test of `what`, unless
/// `SLUICE_REQUIRE_CLIENTS` is set (then a panic).
pub fn kafka_tools_ready(what: &str) -> bool {
    let jars = root().join(".cache/kafka/lib/.complete");
    let java = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if jars.exists() && java {
        return true;
    }
    let missing = format!("java on PATH and {}", jars.display());
    if env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!("{what}: {missing} required (SLUICE_REQUIRE_CLIENTS is set)");
    }
    eprintln!("\n\n!!! SKIPPED {what} test: needs {missing}; run scripts/setup !!!\n");
    false
}

pub fn start(overrides: &[(&str, &str)]) -> SluiceProcess {
    SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), overrides).expect("sluice starts")
}

pub struct RawClient {
    stream: TcpStream,
    correlation: i32,
    client_id: String,
}

impl RawClient {
    pub fn connect(bootstrap: &str) -> RawClient {
        RawClient::connect_as(bootstrap, "sluice-tests")
    }

    /// A connection whose requests carry `client_id`.
    pub fn connect_as(bootstrap: &str, client_id: &str) -> RawClient {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        RawClient {
            stream,
            correlation: 0,
            client_id: client_id.to_string(),
        }
    }

    /// Waits up to `timeout` for each response (60 s by default).
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Sends `req` in `version` and decodes the matching response.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();

        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let size = i32::from_be_bytes(size);
        assert!((0..64 << 20).contains(&size), "response size {size}");
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut bytes = bytes::Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation);
        let resp = R::Response::decode(&mut bytes, version).unwrap();
        assert_eq!(bytes.remaining(), 0, "trailing bytes in response");
        resp
    }
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Creates a one-partition topic with `configs` through CreateTopics v7 and
/// asserts it was created.
pub fn create_topic(c: &mut RawClient, name: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(30_000);
    let resp = c.send(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

/// GET `path` from an HTTP server at `addr`: (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Sum of the samples of `metric` whose labels contain every `labels` entry.
pub fn sample(body: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap();
        if name == metric && labels.iter().all(|l| name_labels.contains(l)) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

/// The metrics address (`host:port`) a started broker printed.
pub fn metrics_addr(broker: &SluiceProcess) -> String {
    let out = broker.output();
    out.lines()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address printed:\n{out}"))
        .to_string()
}
