//! The `sluice` client subcommands end to end, as a script would use them:
//! against a running Sluice and against the reference Apache Kafka (the
//! tool must not depend on which broker it talks to). Also checks that
//! docs/configuration.md is the one generated from the config table.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use common::{http_get, metrics_addr, sample};
use sluice_testkit::{ReferenceKafka, SluiceProcess};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Runs `sluice ARGS` with `stdin`, returning its output.
fn sluice(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait for sluice")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and requires exit 0; returns stdout.
fn ok(args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = sluice(args, stdin);
    assert!(
        out.status.success(),
        "sluice {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

const RECORDS: usize = 10_000;

fn input() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..RECORDS {
        s.push_str(&format!("user-{}:value {i}\n", i % 97));
    }
    s.into_bytes()
}

/// The high watermark column of `topic describe`, per partition.
fn high_watermarks(describe: &str) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in describe.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"PARTITION") {
            in_table = true;
            continue;
        }
        if in_table {
            if cols.len() < 6 {
                break;
            }
            out.insert(cols[0].parse().unwrap(), cols[5].parse().unwrap());
        }
    }
    out
}

/// The scripted session shared by the Sluice and the reference Kafka runs.
/// `topic describe` until it shows every one of `want` (at most 30 s).
/// Kafka answers DescribeConfigs from a broker's metadata image, which
/// trails the controller's commit; Sluice answers an alter only once the
/// change is published, so with `read_your_writes` the first describe must
/// already show it.
fn describe_showing(b: &str, topic: &str, want: &[&str], read_your_writes: bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let describe = ok(&["topic", "describe", "-b", b, topic], None);
        if read_your_writes
            || want.iter().all(|w| describe.contains(w))
            || std::time::Instant::now() > deadline
        {
            return describe;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A scripted CLI session; `read_your_writes` when the broker is Sluice.
fn session(b: &str, topic: &str, read_your_writes: bool) {
    // create, with a topic config
    let created = ok(
        &[
            "topic",
            "create",
            "-b",
            b,
            topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    assert_eq!(created.trim(), format!("created topic {topic}"));
    let list = ok(&["topic", "list", "-b", b], None);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [topic, "3", "1"]),
        "topic list:\n{list}"
    );

    // produce 10,000 keyed records with headers
    let out = sluice(
        &[
            "produce",
            "-b",
            b,
            topic,
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--header",
            "run=1",
            "--compression",
            "lz4",
        ],
        Some(&input()),
    );
    assert!(
        out.status.success(),
        "produce failed: {}",
        text(&out.stderr)
    );
    let summary = text(&out.stderr);
    assert!(
        summary.contains(&format!("produced {RECORDS} records")),
        "summary: {summary}"
    );
    assert!(summary.contains("records/s"), "summary: {summary}");

    // consume them back with a format string
    let printed = ok(
        &[
            "consume",
            "-b",
            b,
            topic,
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "%t|%p|%o|%k|%v|%h\\n",
        ],
        None,
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), RECORDS, "consumed lines");
    let mut values = BTreeSet::new();
    let mut partition_of_key: BTreeMap<String, i32> = BTreeMap::new();
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 6, "line {line:?}");
        assert_eq!(f[0], topic);
        let p: i32 = f[1].parse().unwrap();
        let o: i64 = f[2].parse().unwrap();
        let i: usize = f[4].strip_prefix("value ").expect("value").parse().unwrap();
        assert_eq!(f[3], format!("user-{}", i % 97), "key of {line:?}");
        assert_eq!(f[5], "source=cli,run=1", "headers of {line:?}");
        assert!(values.insert(i), "duplicate {line:?}");
        // the same key always lands in the same partition
        assert_eq!(
            *partition_of_key.entry(f[3].to_string()).or_insert(p),
            p,
            "{line:?}"
        );
        offsets.entry(p).or_default().push(o);
    }
    assert_eq!(values.len(), RECORDS);
    for (p, offs) in &offsets {
        let want: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(offs, &want, "partition {p} offsets are 0..n in order");
    }

    // --count and --offset on one partition
    let (&p0, offs) = offsets.iter().next().unwrap();
    let tail = ok(
        &[
            "consume",
            "-b",
            b,
            topic,
            "-p",
            &p0.to_string(),
            "--offset",
            "2",
            "--count",
            "3",
            "--format",
            "%o\\n",
        ],
        None,
    );
    assert_eq!(tail, "2\n3\n4\n", "offsets {offs:?}");

    // describe shows partitions and high watermarks adding up
    let describe = ok(&["topic", "describe", "-b", b, topic], None);
    let hw = high_watermarks(&describe);
    assert_eq!(hw.len(), 3, "{describe}");
    for (p, offs) in &offsets {
        assert_eq!(hw[p], offs.len() as i64, "{describe}");
    }
    assert!(
        describe.contains(&format!("RECORDS     {RECORDS}")),
        "{describe}"
    );
    // sizes come from DescribeLogDirs: every partition that holds records has bytes on disk
    let sizes: Vec<(i32, u64)> = describe
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION "))
        .skip(1)
        .take_while(|l| l.split_whitespace().count() >= 7)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].parse().unwrap(),
                c[6].parse().unwrap_or_else(|_| panic!("size of {l:?}")),
            )
        })
        .collect();
    assert_eq!(sizes.len(), 3, "{describe}");
    for (p, size) in sizes {
        assert_eq!(
            size > 0,
            offsets.contains_key(&p),
            "partition {p}: {describe}"
        );
    }
    assert!(describe.contains("retention.ms=3600000"), "{describe}");

    // alter-config keeps the other override
    ok(
        &[
            "topic",
            "alter-config",
            "-b",
            b,
            topic,
            "--config",
            "retention.bytes=1073741824",
        ],
        None,
    );
    let describe = describe_showing(
        b,
        topic,
        &["retention.ms=3600000", "retention.bytes=1073741824"],
        read_your_writes,
    );
    assert!(describe.contains("retention.ms=3600000"), "{describe}");
    assert!(
        describe.contains("retention.bytes=1073741824"),
        "{describe}"
    );

    // an invalid topic name is refused with a clear message and exit 1
    let bad = sluice(&["topic", "create", "-b", b, "no spaces allowed!"], None);
    assert_eq!(bad.status.code(), Some(1), "stderr: {}", text(&bad.stderr));
    let err = text(&bad.stderr);
    assert!(
        err.contains("cannot create topic \"no spaces allowed!\""),
        "{err}"
    );
    assert!(
        err.contains("Invalid topic") && err.contains("[a-zA-Z0-9._-]"),
        "{err}"
    );

    // a second create of the same topic fails
    let again = sluice(&["topic", "create", "-b", b, topic], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    // delete
    let deleted = ok(&["topic", "delete", "-b", b, topic], None);
    assert_eq!(deleted.trim(), format!("deleted topic {topic}"));
    let gone = sluice(&["topic", "describe", "-b", b, topic], None);
    assert_eq!(
        gone.status.code(),
        Some(1),
        "describe after delete: {}",
        text(&gone.stdout)
    );
    let list = ok(&["topic", "list", "-b", b], None);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(topic)),
        "{list}"
    );
}

/// Consumer group commands: consume part of a topic in a group, describe the
/// lag, reset offsets, delete the group.
fn group_session(b: &str, topic: &str, group: &str) {
    ok(
        &["topic", "create", "-b", b, topic, "--partitions", "2"],
        None,
    );
    let lines: String = (0..1000).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(
        &["produce", "-b", b, topic, "--key-separator", ":"],
        Some(lines.as_bytes()),
    );

    // read 600 in the group; the offsets of what was printed are committed
    let got = ok(
        &[
            "consume", "-b", b, topic, "--group", group, "--count", "600", "--format", "%v\\n",
        ],
        None,
    );
    assert_eq!(got.lines().count(), 600);
    let describe = ok(&["group", "describe", "-b", b, group], None);
    assert!(describe.contains("TOTAL-LAG 400"), "{describe}");
    assert!(describe.lines().any(|l| l.starts_with(topic)), "{describe}");

    // continue in the group: exactly the 400 not yet printed
    let rest = ok(
        &[
            "consume",
            "-b",
            b,
            topic,
            "--group",
            group,
            "--exit-at-end",
            "--format",
            "%v\\n",
        ],
        None,
    );
    let mut all: BTreeSet<&str> = got.lines().collect();
    for v in rest.lines() {
        assert!(all.insert(v), "record {v} delivered twice to the group");
    }
    assert_eq!(all.len(), 1000);
    let describe = ok(&["group", "describe", "-b", b, group], None);
    assert!(describe.contains("TOTAL-LAG 0"), "{describe}");

    let list = ok(&["group", "list", "-b", b], None);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(group)),
        "{list}"
    );

    // reset to the beginning: the whole topic is lag again
    let reset = ok(
        &[
            "group",
            "reset-offsets",
            "-b",
            b,
            group,
            "--topic",
            topic,
            "--to-earliest",
        ],
        None,
    );
    assert!(reset.contains("NEW-OFFSET"), "{reset}");
    let describe = ok(&["group", "describe", "-b", b, group], None);
    assert!(describe.contains("TOTAL-LAG 1000"), "{describe}");

    // follow mode in the group, stopped by Ctrl-C (SIGINT) once everything
    // was printed: exits 0 and commits what it printed
    let mut child = Command::new(BIN)
        .args([
            "consume", "-b", b, topic, "--group", group, "--format", "%v\\n",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consume");
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = 0;
    let mut line = String::new();
    while seen < 1000 {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "consume ended early after {seen} records");
        seen += 1;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C should stop cleanly, got {status}");
    let describe = ok(&["group", "describe", "-b", b, group], None);
    assert!(
        describe.contains("TOTAL-LAG 0"),
        "offsets committed at Ctrl-C:\n{describe}"
    );

    let deleted = ok(&["group", "delete", "-b", b, group], None);
    assert_eq!(deleted.trim(), format!("deleted group {group}"));
    let gone = sluice(&["group", "describe", "-b", b, group], None);
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone.stdout));
    ok(&["topic", "delete", "-b", b, topic], None);
}

fn supports_groups(b: &str) -> bool {
    let info = ok(&["cluster", "info", "-b", b, "--versions"], None);
    info.contains("JoinGroup") && info.contains("OffsetCommit")
}

#[test]
fn scripted_session_against_sluice() {
    let broker = SluiceProcess::start(BIN, &[]).expect("start sluice");
    let b = broker.bootstrap().to_string();
    session(&b, "cli-orders", true);

    let info = ok(&["cluster", "info", "-b", &b], None);
    assert!(info.contains("CONTROLLER  1"), "{info}");
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["1", "127.0.0.1", b.rsplit(':').next().unwrap()]),
        "{info}"
    );

    if supports_groups(&b) {
        group_session(&b, "cli-grouped", "cli-group");
    } else {
        eprintln!(
            "group commands skipped against Sluice: the broker does not offer the group APIs yet"
        );
    }
}

#[test]
fn unreachable_cluster_exits_3() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = sluice(&["topic", "list", "-b", &addr, "--timeout", "2"], None);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("cannot reach the cluster at {addr}")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2_and_help_works() {
    let out = sluice(&["consume"], None);
    assert_eq!(out.status.code(), Some(2));
    for sub in [
        &["topic", "create"][..],
        &["produce"],
        &["consume"],
        &["group", "describe"],
        &["elect-leaders"],
        &["reassign", "generate"],
        &["reassign", "execute"],
        &["reassign", "verify"],
        &["reassign", "cancel"],
        &["reassign", "list"],
        &["cluster", "info"],
        &["features", "describe"],
        &["features", "upgrade"],
        &["features", "downgrade"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let help = ok(&args, None);
        assert!(help.contains("--brokers"), "{args:?}: {help}");
    }
    let bad_format = sluice(
        &["consume", "-b", "127.0.0.1:1", "t", "--format", "%q"],
        None,
    );
    assert_eq!(bad_format.status.code(), Some(1));
    assert!(text(&bad_format.stderr).contains("unknown format token %q"));
}

#[test]
fn configuration_docs_are_current() {
    let generated = ok(&["config", "docs"], None);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/configuration.md is stale; regenerate it: cargo run -p sluice -- config docs > docs/configuration.md"
    );
    // every key of the table is documented
    for key in [
        "log.retention.hours",
        "retention.ms",
        "sluice.max.open.segment.files",
    ] {
        assert!(generated.contains(&format!("| `{key}` |")), "{key} missing");
    }
}

#[test]
fn json_logs() {
    let broker =
        SluiceProcess::start_with_args(BIN, &["--log-format", "json", "--log-level", "info"], &[])
            .expect("start sluice with JSON logs");
    // The logs (stderr) are read apart from the `listening on` line (stdout)
    // that start-up waits for: wait until the log's own line has arrived too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut out = broker.output();
    while !out
        .lines()
        .any(|l| l.starts_with('{') && l.contains("listening"))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
        out = broker.output();
    }
    let json_lines: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!json_lines.is_empty(), "no JSON log line in:\n{out}");
    for l in &json_lines {
        assert!(l.ends_with('}') && l.contains("\"level\":\"INFO\""), "{l}");
    }
    assert!(json_lines.iter().any(|l| l.contains("listening")), "{out}");
}

/// The same session against Apache Kafka: the tool speaks only the Kafka
/// protocol, so it must behave the same.
#[test]
fn scripted_session_against_reference_kafka() {
    let kafka = match ReferenceKafka::start() {
        Ok(Some(k)) => k,
        Ok(None) if std::env::var_os("SLUICE_REQUIRE_CLIENTS").is_none() => {
            eprintln!("skipped: reference Kafka not available (jars or java missing)");
            return;
        }
        Ok(None) => panic!("SLUICE_REQUIRE_CLIENTS=1 but the reference Kafka is not available"),
        Err(e) => panic!("reference Kafka failed to start: {e}"),
    };
    let b = kafka.bootstrap();
    let info = ok(&["cluster", "info", "-b", &b, "--versions"], None);
    assert!(
        info.contains("CLUSTER-ID") && info.contains("JoinGroup"),
        "{info}"
    );
    let host = b.split(':').next().unwrap();
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(host)),
        "{info}"
    );
    session(&b, "cli-orders", false);
    group_session(&b, "cli-grouped", "cli-group");
    kafka.stop();
}

#[test]
fn metrics_match_known_traffic() {
    let broker = SluiceProcess::start(BIN, &[]).expect("start sluice");
    let b = broker.bootstrap().to_string();
    let out = broker.output();
    let addr = out
        .lines()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address printed:\n{out}"))
        .to_string();
    let (status, body) = http_get(&addr, "/health");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ready\n")
    );

    ok(
        &[
            "topic",
            "create",
            "-b",
            &b,
            "metered",
            "--partitions",
            "3",
            "--config",
            "flush.messages=1",
        ],
        None,
    );
    let lines: String = (0..1000)
        .map(|i| format!("k{i}:{}\n", "x".repeat(i % 50)))
        .collect();
    ok(
        &["produce", "-b", &b, "metered", "--key-separator", ":"],
        Some(lines.as_bytes()),
    );
    let consumed = ok(
        &[
            "consume",
            "-b",
            &b,
            "metered",
            "--from-beginning",
            "-e",
            "--format",
            "%o\\n",
        ],
        None,
    );
    assert_eq!(consumed.lines().count(), 1000);
    // Records out are counted from the offsets each fetch's slices cover
    // (no record bytes read): one full pass from the beginning = 1000.
    let (_, m) = http_get(&addr, "/metrics");
    assert_eq!(
        sample(&m, "sluice_topic_records_out_total", &["topic=\"metered\""]),
        Some(1000.0),
        "{m}"
    );
    let in_group = ok(
        &[
            "consume",
            "-b",
            &b,
            "metered",
            "--group",
            "metered-g",
            "--count",
            "400",
        ],
        None,
    );
    assert_eq!(in_group.lines().count(), 400);
    let bad = sluice(&["topic", "create", "-b", &b, "bad/name"], None);
    assert_eq!(bad.status.code(), Some(1));

    let (status, m) = http_get(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let t = "topic=\"metered\"";
    assert_eq!(
        sample(&m, "sluice_topic_records_in_total", &[t]),
        Some(1000.0),
        "{m}"
    );
    let bytes_in = sample(&m, "sluice_topic_bytes_in_total", &[t]).expect("bytes in");
    // batches are stored as received: the logs hold exactly the bytes produced
    assert_eq!(
        sample(&m, "sluice_log_size_bytes", &[t]),
        Some(bytes_in),
        "{m}"
    );
    assert_eq!(sample(&m, "sluice_log_end_offset", &[t]), Some(1000.0));
    assert_eq!(sample(&m, "sluice_log_segments", &[t]), Some(3.0));
    // The group consumer may prefetch beyond the 400 records it printed.
    let records_out = sample(&m, "sluice_topic_records_out_total", &[t]).expect("records out");
    assert!(records_out >= 1400.0, "{m}");
    // Every produce went to a flush.messages=1 topic: each was answered
    // only after the fsync that made it durable, and each is observed once.
    assert_eq!(
        sample(&m, "sluice_produce_durable_seconds_count", &[]),
        sample(&m, "sluice_requests_total", &["api=\"Produce\""]),
        "{m}"
    );
    let bytes_out = sample(&m, "sluice_topic_bytes_out_total", &[t]).expect("bytes out");
    assert!(
        bytes_out >= bytes_in,
        "consumed everything once: out {bytes_out} < in {bytes_in}"
    );
    assert_eq!(
        sample(
            &m,
            "sluice_errors_total",
            &["api=\"CreateTopics\"", "code=\"17\""]
        ),
        Some(1.0),
        "{m}"
    );
    let produces =
        sample(&m, "sluice_requests_total", &["api=\"Produce\""]).expect("produce requests");
    assert!(produces >= 1.0);
    assert_eq!(
        sample(
            &m,
            "sluice_request_duration_seconds_count",
            &["api=\"Produce\""]
        ),
        Some(produces)
    );
    assert_eq!(
        sample(
            &m,
            "sluice_request_duration_seconds_bucket",
            &["api=\"Produce\"", "le=\"+Inf\""]
        ),
        Some(produces)
    );
    assert!(sample(&m, "sluice_active_connections", &[]).is_some());

    // fsyncs are timed (the topic metadata file and its directory at create,
    // each flush.messages=1 produce)
    let file_syncs = sample(
        &m,
        "sluice_fsync_duration_seconds_count",
        &["kind=\"file\""],
    );
    assert!(file_syncs.unwrap_or(0.0) >= 1.0, "{m}");
    assert!(
        sample(&m, "sluice_fsync_duration_seconds_count", &["kind=\"dir\""]).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    let g = "group=\"metered-g\"";
    // lag is reported for the partitions the group committed: their end
    // offsets minus the 400 records the group consumed from them
    let mut ends = 0.0;
    let mut lag = 0.0;
    for p in 0..3 {
        let pl = format!("partition=\"{p}\"");
        if let Some(l) = sample(&m, "sluice_group_lag", &[g, t, &pl]) {
            lag += l;
            ends += sample(&m, "sluice_log_end_offset", &[t, &pl]).unwrap();
        }
    }
    assert!(ends >= 400.0, "{m}");
    assert_eq!(lag, ends - 400.0, "{m}");
    assert_eq!(sample(&m, "sluice_group_members", &[g]), Some(0.0), "{m}");
    assert!(
        sample(&m, "sluice_groups", &["state=\"Empty\""]).unwrap_or(0.0) >= 1.0,
        "{m}"
    );

    let (status, _) = http_get(&addr, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn produce_durable_latency_and_producer_state_metrics() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};

    let broker = SluiceProcess::start(BIN, &[]).expect("start sluice");
    let b = broker.bootstrap().to_string();
    let addr = metrics_addr(&broker);
    ok(
        &[
            "topic",
            "create",
            "-b",
            &b,
            "durable",
            "--config",
            "flush.messages=1",
        ],
        None,
    );
    ok(&["topic", "create", "-b", &b, "lazy"], None);
    const N: usize = 5;
    for i in 0..N {
        let line = format!("record {i}\n");
        ok(&["produce", "-b", &b, "durable"], Some(line.as_bytes()));
    }
    let (_, m) = http_get(&addr, "/metrics");
    let durable = |m: &str| sample(m, "sluice_produce_durable_seconds_count", &[]);
    assert_eq!(durable(&m), Some(N as f64), "{m}");
    assert_eq!(
        sample(
            &m,
            "sluice_produce_durable_seconds_bucket",
            &["le=\"+Inf\""]
        ),
        Some(N as f64)
    );
    assert_eq!(sample(&m, "sluice_producers", &[]), Some(0.0), "{m}");

    // A topic flushed only by the background flush (flush.messages and
    // flush.ms at Kafka's defaults): its produce is answered before it is
    // durable and is not observed.
    ok(&["produce", "-b", &b, "lazy"], Some(b"not yet on disk\n"));
    let (_, m) = http_get(&addr, "/metrics");
    assert_eq!(durable(&m), Some(N as f64), "{m}");
    assert_eq!(
        sample(&m, "sluice_requests_total", &["api=\"Produce\""]),
        Some(N as f64 + 1.0)
    );

    // An idempotent producer is tracked (per partition it wrote to).
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in 0..10 {
        let payload = format!("idempotent {i}");
        producer
            .send(BaseRecord::to("durable").key("k").payload(&payload))
            .expect("queue record");
    }
    producer
        .flush(std::time::Duration::from_secs(60))
        .expect("flush");
    let (_, m) = http_get(&addr, "/metrics");
    assert_eq!(sample(&m, "sluice_producers", &[]), Some(1.0), "{m}");
    assert!(
        sample(&m, "sluice_producer_state_bytes", &[]).unwrap_or(0.0) > 0.0,
        "{m}"
    );
}

/// The broker's output once its startup summary is logged: the listener is
/// up (and `restart` returns) just before that line is written.
fn output_once_started(broker: &SluiceProcess) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let out = broker.output();
        if out.contains("sluice started: ") || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn recovery_after_kill_is_logged_and_health_turns_ready() {
    let mut broker = SluiceProcess::start(BIN, &[]).expect("start sluice");
    let b = broker.bootstrap().to_string();
    // More partitions than the loader's progress step (100), so a progress
    // line is due however fast the machine is.
    ok(
        &[
            "topic",
            "create",
            "-b",
            &b,
            "recovering",
            "--partitions",
            "120",
        ],
        None,
    );
    let lines: String = (0..600).map(|i| format!("k{i}:value {i}\n")).collect();
    ok(
        &["produce", "-b", &b, "recovering", "--key-separator", ":"],
        Some(lines.as_bytes()),
    );
    // SIGKILL: no clean-shutdown marker, nothing flushed by the broker.
    broker.kill().expect("kill -9");
    broker.restart().expect("restart on the same data dir");
    let out = output_once_started(&broker);
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{out}"))
    };
    let recovering = at("recovering log after unclean shutdown");
    let progress = at("loading partition logs: 100/120 partitions");
    let summary = at("sluice started: 120 partition(s) of 1 topic(s) loaded, ");
    assert!(recovering < summary && progress < summary, "{out}");
    let recovered: usize = out[summary..]
        .split(" loaded, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recovered count in the summary:\n{out}"));

    // Ready after recovery, and the recovered count is the partitions that
    // hold data.
    let addr = metrics_addr(&broker);
    let (status, body) = http_get(&addr, "/health");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ready\n")
    );
    let (_, m) = http_get(&addr, "/metrics");
    let with_data = m
        .lines()
        .filter(|l| l.starts_with("sluice_log_size_bytes{topic=\"recovering\""))
        .filter(|l| l.rsplit(' ').next() != Some("0"))
        .count();
    assert!(with_data > 1, "{m}");
    assert_eq!(recovered, with_data, "{out}");
    assert_eq!(
        sample(&m, "sluice_log_end_offset", &["topic=\"recovering\""]),
        Some(600.0),
        "{m}"
    );

    // A clean restart recovers nothing.
    broker.terminate().expect("SIGTERM");
    broker.restart().expect("restart after a clean shutdown");
    let out = output_once_started(&broker);
    assert!(
        out.contains("loaded, 0 recovered after an unclean shutdown"),
        "{out}"
    );
    // The metadata log (__cluster_metadata-0) is validated on every start
    // by design; no data partition is.
    assert!(
        !out.lines()
            .any(|l| l.contains("recovering log after unclean shutdown")
                && !l.contains("log=__cluster_metadata-0")),
        "{out}"
    );
}

/// `consume` rides out librdkafka's moments without a connection (it
/// reconnects by itself), but a cluster that stays silent for the whole
/// `--timeout` is unreachable: exit 3, not a hang. (A consume once failed
/// in CI on a transient AllBrokersDown right after it connected.)
#[test]
fn consume_exits_3_when_the_cluster_goes_away_for_the_timeout() {
    let mut broker = SluiceProcess::start(BIN, &[]).expect("start sluice");
    let b = broker.bootstrap().to_string();
    ok(
        &["topic", "create", "-b", &b, "gone", "--partitions", "1"],
        None,
    );
    ok(&["produce", "-b", &b, "gone"], Some(b"one\n"));
    let child = Command::new(BIN)
        .args([
            "consume",
            "-b",
            &b,
            "gone",
            "--from-beginning",
            "--timeout",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consume");
    std::thread::sleep(std::time::Duration::from_secs(2));
    broker.kill().expect("kill sluice");
    let killed = std::time::Instant::now();
    let out = child.wait_with_output().expect("consume ends");
    let took = killed.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("one"), "{}", text(&out.stdout));
    assert!(
        took < std::time::Duration::from_secs(60),
        "took {took:?} to give up"
    );
}
