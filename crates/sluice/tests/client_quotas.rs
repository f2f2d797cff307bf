//! Client quotas through the real binary (issue 21):
//! - Kafka's `kafka-configs` (ConfigCommand of the pinned 4.1.2 jars) sets,
//!   describes and deletes quotas of `clients` and `users`, unchanged;
//! - a producer over its `producer_byte_rate` gets `throttle_time_ms > 0`
//!   and, since its connection is muted after each throttled answer, its
//!   rate stays within a generous multiple of the quota, while a producer
//!   without a quota on the same broker is never throttled;
//! - the same for fetches under `consumer_byte_rate` (throttled fetches
//!   are answered empty);
//! - a `request_percentage` quota throttles by at most one window;
//! - the per-group metrics show the throttle.
//!
//! No timing assertion is tight: the bounds hold on a slow, busy machine
//! (slowness only lowers a rate). The kafka-configs part skips loudly
//! without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use common::quotas::set_client_quota;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    FetchRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};

use common::{http_get, metrics_addr, sample, sb, RawClient};

/// A raw client with its own client id.
struct Client {
    stream: TcpStream,
    client_id: &'static str,
    correlation: i32,
}

impl Client {
    fn connect(addr: &str, client_id: &'static str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Client {
            stream,
            client_id,
            correlation: 0,
        }
    }

    fn send<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
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
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut bytes = bytes::Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation);
        let resp = R::Response::decode(&mut bytes, version).unwrap();
        assert_eq!(bytes.remaining(), 0);
        resp
    }
}

const TOPIC: &str = "quota-t";
/// 64 KiB of records per request.
const BATCH: usize = 64 * 1024;

fn batch() -> bytes::Bytes {
    let mut b = BatchBuilder::new(CompressionType::None);
    let value = vec![7u8; BATCH / 16 - 40];
    for _ in 0..16 {
        b.append(Timestamp(0), None, Some(value.as_slice()), &[])
            .unwrap();
    }
    bytes::Bytes::from(b.build().unwrap())
}

/// Sends `count` produce requests; returns (bytes sent, seconds taken,
/// the largest throttle_time_ms answered).
fn produce(addr: &str, client_id: &'static str, count: usize) -> (usize, f64, i32) {
    let mut c = Client::connect(addr, client_id);
    let records = batch();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.clone()))])]);
    let start = Instant::now();
    let mut max_throttle = 0;
    for _ in 0..count {
        let resp = c.send(9, &req);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{resp:?}");
        max_throttle = max_throttle.max(resp.throttle_time_ms);
    }
    (
        records.len() * count,
        start.elapsed().as_secs_f64(),
        max_throttle,
    )
}

/// Fetches the partition from offset 0 `count` times; returns (record
/// bytes received, seconds, largest throttle_time_ms, throttled answers
/// that were empty).
fn fetch(addr: &str, client_id: &'static str, count: usize) -> (usize, f64, i32, usize) {
    let mut c = Client::connect(addr, client_id);
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(sb(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(256 * 1024)])]);
    let start = Instant::now();
    let (mut bytes, mut max_throttle, mut empty) = (0, 0, 0);
    for _ in 0..count {
        let resp = c.send(11, &req);
        assert_eq!(resp.error_code, 0, "{resp:?}");
        let got: usize = resp
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        if std::env::var("QUOTA_TEST_TRACE").is_ok() {
            eprintln!(
                "{client_id}: {got} B throttle {} ms at {:?}",
                resp.throttle_time_ms,
                start.elapsed()
            );
        }
        if resp.throttle_time_ms > 0 && got == 0 {
            empty += 1;
        }
        bytes += got;
        max_throttle = max_throttle.max(resp.throttle_time_ms);
    }
    (bytes, start.elapsed().as_secs_f64(), max_throttle, empty)
}

/// 512 KiB/s; 3 windows of 1 s, so a quiet client's burst is 2 windows.
const QUOTA: f64 = 512.0 * 1024.0;

/// Kafka's rate lets a quiet client send (windows - 1) windows' worth at
/// once, then holds it to the quota: `bytes` in `secs` is within a
/// generous 1.5 × the quota over `secs` plus that burst, plus one request
/// (recorded before it is throttled). A slow machine only makes `secs`
/// longer, so the bound is load-independent.
fn within_quota(bytes: usize, secs: f64) -> bool {
    bytes as f64 <= 1.5 * QUOTA * (secs + 2.0) + 2.0 * BATCH as f64
}

#[test]
fn producers_and_consumers_over_their_quota_are_throttled_and_others_are_not() {
    let broker = common::start(&[
        ("quota.window.num", "3"),
        ("quota.window.size.seconds", "1"),
    ]);
    let addr = broker.bootstrap().to_string();
    common::create_topic(&mut RawClient::connect(&addr), TOPIC, &[]);
    set_client_quota(&addr, "slow-producer", "producer_byte_rate", QUOTA);
    set_client_quota(&addr, "slow-consumer", "consumer_byte_rate", QUOTA);

    // 48 × 64 KiB = 3 MiB: 6 s of quota, minus the 2-window burst.
    let (bytes, secs, throttle) = produce(&addr, "slow-producer", 48);
    let rate = bytes as f64 / secs;
    eprintln!(
        "slow producer: {bytes} B in {secs:.2} s = {rate:.0} B/s, max throttle {throttle} ms"
    );
    assert!(
        throttle > 0,
        "no throttle_time_ms for a producer over its quota"
    );
    assert!(
        within_quota(bytes, secs),
        "throttled producer sent {bytes} B in {secs:.2} s, quota {QUOTA} B/s"
    );

    let (bytes, secs, throttle) = produce(&addr, "fast-producer", 48);
    eprintln!(
        "unlimited producer: {bytes} B in {secs:.2} s = {:.0} B/s",
        bytes as f64 / secs
    );
    assert_eq!(throttle, 0, "a producer without a quota was throttled");

    // Each fetch reads one 64 KiB batch: 48 fetches = 3 MiB asked for.
    let (bytes, secs, throttle, empty) = fetch(&addr, "slow-consumer", 48);
    let rate = bytes as f64 / secs;
    eprintln!("slow consumer: {bytes} B in {secs:.2} s = {rate:.0} B/s, max throttle {throttle} ms, {empty} empty throttled answers");
    assert!(
        throttle > 0,
        "no throttle_time_ms for a consumer over its quota"
    );
    assert!(empty > 0, "a throttled fetch carried records");
    assert!(
        within_quota(bytes, secs),
        "throttled consumer got {bytes} B in {secs:.2} s, quota {QUOTA} B/s"
    );
    let (bytes, _, throttle, _) = fetch(&addr, "fast-consumer", 24);
    assert_eq!(throttle, 0, "a consumer without a quota was throttled");
    assert!(
        bytes >= 24 * BATCH * 9 / 10,
        "an unlimited consumer got {bytes} B"
    );

    // A request-time quota far below any request's cost: throttled, and
    // by at most one window (Kafka's bound for request quotas).
    set_client_quota(&addr, "busy", "request_percentage", 0.0001);
    let (_, _, throttle) = produce(&addr, "busy", 3);
    assert!(
        (1..=1000).contains(&throttle),
        "request quota throttle {throttle} ms"
    );

    // The metrics show who was throttled.
    let (_, body) = http_get(&metrics_addr(&broker), "/metrics");
    let throttled = |client: &str, kind: &str| {
        sample(
            &body,
            "sluice_client_quota_throttle_time_ms_total",
            &[
                &format!("client_id=\"{client}\""),
                &format!("quota_type=\"{kind}\""),
            ],
        )
    };
    assert!(
        throttled("slow-producer", "Produce").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert!(
        throttled("slow-consumer", "Fetch").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert_eq!(throttled("fast-producer", "Produce"), None);
    assert!(throttled("busy", "Request").unwrap_or(0.0) > 0.0, "{body}");
}

/// `kafka-configs --bootstrap-server B <args>`: whether it exited 0, and
/// its stdout and stderr.
fn kafka_configs_output(bootstrap: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("java")
        // No log4j config: ConfigCommand's logging controller refuses the
        // log4j 1 file clients/java uses; its defaults log nothing to stdout.
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg("-cp")
        .arg(common::root().join(".cache/kafka/lib/*"))
        .arg("kafka.admin.ConfigCommand")
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("run java");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `kafka-configs --bootstrap-server B <args>`, which must succeed.
fn kafka_configs(bootstrap: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kafka_configs_output(bootstrap, args);
    assert!(ok, "kafka-configs {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn kafka_configs_alters_describes_and_deletes_quotas() {
    if !common::kafka_tools_ready("kafka-configs quotas") {
        return;
    }
    let broker = common::start(&[]);
    let b = broker.bootstrap().to_string();
    let alter = |args: &[&str]| kafka_configs(&b, &[&["--alter"][..], args].concat());
    alter(&[
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--add-config",
        "producer_byte_rate=1048576,consumer_byte_rate=2097152",
    ]);
    alter(&[
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
        "--add-config",
        "request_percentage=50",
    ]);
    alter(&[
        "--entity-type",
        "users",
        "--entity-default",
        "--add-config",
        "producer_byte_rate=4096",
    ]);
    alter(&[
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
        "--entity-type",
        "clients",
        "--entity-default",
        "--add-config",
        "consumer_byte_rate=1000",
    ]);

    let out = kafka_configs(
        &b,
        &[
            "--describe",
            "--entity-type",
            "clients",
            "--entity-name",
            "app",
        ],
    );
    assert!(out.contains("client-id 'app'"), "{out}");
    assert!(out.contains("producer_byte_rate=1048576.0"), "{out}");
    assert!(out.contains("consumer_byte_rate=2097152.0"), "{out}");
    // `sluice quotas describe` prints what kafka-configs prints.
    let (ok, ours) = sluice_quotas(&b, &["describe", "--client-id", "app"]);
    assert!(ok, "{ours}");
    assert_eq!(ours.trim(), out.trim());
    let out = kafka_configs(&b, &["--describe", "--entity-type", "users"]);
    assert!(
        out.contains("user-principal 'alice'") && out.contains("request_percentage=50.0"),
        "{out}"
    );
    assert!(
        out.contains("the default user-principal are producer_byte_rate=4096.0"),
        "{out}"
    );
    let out = kafka_configs(
        &b,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--entity-type",
            "clients",
        ],
    );
    assert!(out.contains("consumer_byte_rate=1000.0"), "{out}");

    // An unknown key is refused with Kafka's message.
    let (ok, stdout, stderr) = kafka_configs_output(
        &b,
        &[
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            "app",
            "--add-config",
            "bogus_rate=1",
        ],
    );
    assert!(!ok, "{stdout}");
    assert!(
        format!("{stdout}{stderr}").contains("bogus_rate"),
        "{stdout}{stderr}"
    );

    // Deleting a key leaves the others; deleting the last removes the entity.
    alter(&[
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--delete-config",
        "producer_byte_rate",
    ]);
    let out = kafka_configs(
        &b,
        &[
            "--describe",
            "--entity-type",
            "clients",
            "--entity-name",
            "app",
        ],
    );
    assert!(
        !out.contains("producer_byte_rate") && out.contains("consumer_byte_rate=2097152.0"),
        "{out}"
    );
    alter(&[
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--delete-config",
        "consumer_byte_rate",
    ]);
    let out = kafka_configs(&b, &["--describe", "--entity-type", "clients"]);
    assert!(!out.contains("'app'"), "{out}");
}

/// Kafka's own Java producer (`kafka-producer-perf-test`) under a quota: it
/// reads the throttle times (its `produce-throttle-time-max` metric) and
/// its rate stays within the same generous bound.
#[test]
fn the_java_producer_honours_the_throttle() {
    if !common::kafka_tools_ready("Java producer under a quota") {
        return;
    }
    let broker = common::start(&[
        ("quota.window.num", "3"),
        ("quota.window.size.seconds", "1"),
    ]);
    let addr = broker.bootstrap().to_string();
    common::create_topic(&mut RawClient::connect(&addr), TOPIC, &[]);
    set_client_quota(&addr, "java-slow", "producer_byte_rate", QUOTA);
    let records = 192; // × 16 KiB = 3 MiB
    let out = common::kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            TOPIC,
            "--num-records",
            &records.to_string(),
            "--record-size",
            "16384",
            "--throughput",
            "-1",
            "--print-metrics",
            "--producer-props",
            &format!("bootstrap.servers={addr}"),
            "client.id=java-slow",
            "acks=1",
            "linger.ms=5",
        ],
    );
    // "192 records sent, 150.2 records/sec (2.35 MB/sec), ..."
    let summary = out
        .lines()
        .find(|l| l.starts_with(&format!("{records} records sent")))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let per_sec: f64 = summary
        .split(", ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = records * 16384;
    let secs = records as f64 / per_sec;
    eprintln!("java producer: {summary}");
    assert!(
        within_quota(bytes, secs),
        "Java producer sent {bytes} B in {secs:.2} s, quota {QUOTA} B/s"
    );
    let throttle_max: f64 = out
        .lines()
        .find(|l| l.contains("produce-throttle-time-max"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no produce-throttle-time-max metric:\n{out}"));
    assert!(throttle_max > 0.0, "the Java producer saw no throttle time");
}

/// `sluice quotas ...` against `broker`: whether it exited 0, and stdout.
fn sluice_quotas(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("quotas")
        .args(&args[..1])
        .args(["--bootstrap-server", bootstrap])
        .args(&args[1..])
        .output()
        .expect("run sluice");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_sluice_cli_alters_and_describes_quotas() {
    let broker = common::start(&[]);
    let b = broker.bootstrap().to_string();
    let (ok, out) = sluice_quotas(
        &b,
        &[
            "alter",
            "--user",
            "alice",
            "--client-id-default",
            "--add",
            "producer_byte_rate=10485760",
            "--add",
            "request_percentage=12.5",
        ],
    );
    assert!(
        ok && out.contains(
            "Completed updating quotas for user-principal 'alice', the default client-id."
        ),
        "{out}"
    );
    let (ok, out) = sluice_quotas(&b, &["describe", "--user", "alice", "--client-id-default"]);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "Quota configs for user-principal 'alice', the default client-id are producer_byte_rate=1.048576E7, request_percentage=12.5"
    );
    // Dry run, refusal, delete.
    let (ok, out) = sluice_quotas(
        &b,
        &[
            "alter",
            "--ip",
            "10.0.0.1",
            "--add",
            "connection_creation_rate=5",
            "--dry-run",
        ],
    );
    assert!(ok && out.contains("can be updated"), "{out}");
    let (ok, out) = sluice_quotas(
        &b,
        &["alter", "--ip", "10.0.0.1", "--add", "producer_byte_rate=5"],
    );
    assert!(
        !ok && out.contains("Invalid configuration key producer_byte_rate"),
        "{out}"
    );
    let (ok, out) = sluice_quotas(
        &b,
        &[
            "alter",
            "--user",
            "alice",
            "--client-id-default",
            "--delete",
            "producer_byte_rate",
            "--delete",
            "request_percentage",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = sluice_quotas(&b, &["describe"]);
    assert!(ok && out.trim().is_empty(), "{out}");
}
