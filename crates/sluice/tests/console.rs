//! The web console (`sluice console`, issue 22) against a real Sluice,
//! driven over HTTP: the overview, topics, a topic, the message browser
//! (a JSON message produced by kcat, its `<script>` key shown escaped), a
//! group whose lag must equal what `kafka-consumer-groups --describe`
//! prints, the read-only guard, the unreachable-cluster page, and with
//! `--allow-writes` creating a topic (seen by librdkafka), producing (read
//! back by kcat) and an offset reset (dry run first, then what the CLI
//! shows), a KIP-848 group's live member and assignment (librdkafka with
//! group.protocol=consumer), and the broker's own console
//! (`sluice.console.listener`). The same read pages against the reference
//! Apache Kafka when its jars are here. The real-browser checks are in
//! scripts/console-browser.

#[path = "console_checks/mod.rs"]
mod checks;
mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use checks::{
    check_acl_writes_with_kafka_acls, check_filter_and_download, check_filter_bound,
    check_group_deletes, check_quota_alter, check_throughput_and_security,
    check_topic_edit_and_delete, offsets_of,
};
use common::console::{rows, ConsoleProcess};
use common::{kafka_tool, kafka_tools_ready};
use sluice_testkit::{ReferenceKafka, SluiceProcess};

const SCRIPT_KEY: &str = "<script>alert(1)</script>";

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the `sluice` CLI; its stdout (asserting success).
fn sluice(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "sluice {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs kcat with `stdin`; its stdout (asserting success).
fn kcat(args: &[&str], stdin: &str) -> String {
    // Cargo's LD_LIBRARY_PATH holds rdkafka-sys's librdkafka; kcat loads Debian's.
    let mut child = Command::new("kcat")
        .env_remove("LD_LIBRARY_PATH")
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
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kcat {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Topic `orders` (3 partitions): a JSON record with a `<script>` key and a
/// header in partition 1 (kcat), ten plain ones in partition 0; group
/// `billing` consumed four records and committed.
fn populate(bootstrap: &str) {
    sluice(&[
        "topic", "create", "-b", bootstrap, "orders", "-p", "3", "-r", "1",
    ]);
    kcat(
        &[
            "-b",
            bootstrap,
            "-P",
            "-t",
            "orders",
            "-p",
            "1",
            "-K",
            "|",
            "-H",
            "trace=abc-123",
        ],
        &format!("{SCRIPT_KEY}|{{\"id\":7,\"name\":\"widget\"}}\n"),
    );
    let lines: String = (0..10).map(|i| format!("plain-{i}\n")).collect();
    kcat(&["-b", bootstrap, "-P", "-t", "orders", "-p", "0"], &lines);
    sluice(&[
        "consume", "-b", bootstrap, "orders", "--group", "billing", "-n", "4",
    ]);
}

/// The read-only pages every cluster must render the same way.
fn check_read_pages(c: &ConsoleProcess, bootstrap: &str, bytes_source: &str, authorizer: bool) {
    let overview = c.page("/");
    assert!(overview.contains("Cluster overview"), "{overview}");
    assert!(overview.contains("id=\"brokers-table\""), "{overview}");
    assert!(overview.contains("id=\"offline\">0<"), "{overview}");
    // A broker: its load and its configs, asked of the broker itself.
    let id = overview
        .split("href=\"/brokers/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("brokers are linked");
    let broker = c.page(&format!("/brokers/{id}"));
    assert!(broker.contains("id=\"configs-table\""), "{broker}");
    assert!(broker.contains("num.partitions"), "{broker}");
    assert_eq!(c.get("/brokers/987654").0, 404);

    let topics = c.page("/topics");
    assert!(topics.contains("href=\"/topics/orders\""), "{topics}");
    let orders = rows(&topics, "topics-table")
        .into_iter()
        .find(|r| r.get("name").map(String::as_str) == Some("orders"))
        .expect("orders listed");
    assert_eq!(orders["name"], "orders");
    assert!(
        topics.contains("<td class=\"num\">11</td>"),
        "11 messages:\n{topics}"
    );
    let searched = c.page("/topics?q=nomatch");
    assert!(!searched.contains("href=\"/topics/orders\""), "{searched}");

    let topic = c.page("/topics/orders");
    assert_eq!(rows(&topic, "partitions-table").len(), 3, "{topic}");
    assert!(topic.contains("retention.ms"), "configs shown:\n{topic}");
    assert!(topic.contains("DEFAULT_CONFIG") || topic.contains("STATIC_BROKER_CONFIG"));
    assert!(
        topic.contains(" on disk"),
        "sizes from DescribeLogDirs:\n{topic}"
    );

    // The message browser: the key is shown escaped, never as markup.
    let msgs = c.page("/topics/orders/messages?partition=1");
    assert!(
        msgs.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped key shown:\n{msgs}"
    );
    assert!(
        !msgs.contains(SCRIPT_KEY),
        "raw key leaked into the page:\n{msgs}"
    );
    assert!(
        msgs.contains("&quot;name&quot;: &quot;widget&quot;"),
        "pretty JSON:\n{msgs}"
    );
    assert!(
        msgs.contains("trace") && msgs.contains("abc-123"),
        "header shown"
    );
    let hex = c.page("/topics/orders/messages?partition=1&view=hex");
    assert!(hex.contains("7b 22 69 64"), "hex view of {{\"id:\n{hex}");
    // Newest first, bounded page, link to older ones.
    let p0 = c.page("/topics/orders/messages?partition=0&limit=3");
    let offsets: Vec<&str> = p0
        .split("data-offset=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(offsets, vec!["9", "8", "7"], "{p0}");
    assert!(
        p0.contains("offset=7&amp;order=newest"),
        "older link:\n{p0}"
    );
    let from = c.page("/topics/orders/messages?partition=0&order=oldest&offset=2&limit=2");
    assert!(from.contains("data-offset=\"2\"") && from.contains("data-offset=\"3\""));
    assert!(!from.contains("data-offset=\"4\""), "{from}");
    // By time: the first record at or after it, oldest first.
    let since = c.page("/topics/orders/messages?partition=0&time=1970-01-01T00:00&limit=2");
    assert_eq!(offsets_of(&since), vec!["0", "1"], "{since}");
    let future = c.page("/topics/orders/messages?partition=0&time=2100-01-01T00:00:00");
    assert!(offsets_of(&future).is_empty(), "{future}");

    check_filter_and_download(c);
    check_filter_bound(c, bootstrap);

    check_throughput_and_security(c, bootstrap, bytes_source, authorizer);

    let groups = c.page("/groups");
    assert!(groups.contains("href=\"/groups/billing\""), "{groups}");
    let (status, _) = c.get("/topics/no-such-topic");
    assert_eq!(status, 404);
}

/// The console's lag per (topic, partition) of `group`, and its total.
fn console_lag(c: &ConsoleProcess, group: &str) -> (BTreeMap<(String, String), String>, String) {
    let page = c.page(&format!("/groups/{group}"));
    let lag = rows(&page, "lag-table")
        .into_iter()
        .map(|r| {
            (
                (r["topic"].clone(), r["partition"].clone()),
                r["lag"].clone(),
            )
        })
        .collect();
    let total = page
        .split("id=\"total-lag\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .replace(',', "");
    (lag, total)
}

/// `kafka-consumer-groups --describe`'s lag per (topic, partition).
fn tool_lag(bootstrap: &str, group: &str) -> BTreeMap<(String, String), String> {
    let out = kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
    );
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 6 && c[0] == group)
        .map(|c| ((c[1].to_string(), c[2].to_string()), c[5].to_string()))
        .collect()
}

fn check_lag_matches_the_tool(c: &ConsoleProcess, bootstrap: &str) {
    let (lag, total) = console_lag(c, "billing");
    assert!(!lag.is_empty(), "the group has committed offsets");
    let sum: i64 = lag.values().map(|l| l.parse::<i64>().unwrap()).sum();
    assert_eq!(total, sum.to_string());
    // 4 + 3 (the throughput check's) of 11 consumed: 4 left, or 3 when
    // none came from partition 1 (then it has no committed offset and no row).
    assert!(sum == 4 || sum == 3, "{lag:?}");
    if kafka_tools_ready("console group lag vs kafka-consumer-groups") {
        assert_eq!(lag, tool_lag(bootstrap, "billing"));
    }
}

#[test]
fn console_shows_the_cluster_read_only() {
    // A metrics port the console can learn from sluice.metrics.listener.
    let metrics = format!("127.0.0.1:{}", free_port());
    let broker = SluiceProcess::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[("sluice.metrics.listener", &metrics)],
    )
    .expect("sluice starts");
    let bootstrap = broker.bootstrap().to_string();
    populate(&bootstrap);
    let c = ConsoleProcess::start(&bootstrap, &["--timeout", "10"]);
    check_read_pages(&c, &bootstrap, "broker-metrics", false);
    check_lag_matches_the_tool(&c, &bootstrap);

    // Read-only: no write forms, and writes are refused.
    assert!(!c.page("/topics").contains("/topics/new"));
    let (status, body) = c.post("/topics/new", &[("name", "nope")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let (status, _) = c.post(
        "/groups/billing/reset",
        &[
            ("step", "execute"),
            ("topic", "orders"),
            ("target", "earliest"),
        ],
    );
    assert_eq!(status, 403);
    assert!(!sluice(&["topic", "list", "-b", &bootstrap]).contains("nope"));
    // No edit or delete controls, and every destructive route refused.
    assert!(!c.page("/topics/orders").contains("/topics/orders/delete"));
    for (path, form) in [
        ("/topics/orders/delete", vec![("confirm", "orders")]),
        (
            "/topics/orders/edit",
            vec![("step", "execute"), ("partitions", "5")],
        ),
        ("/groups/billing/delete", vec![]),
        ("/groups/billing/offsets/delete", vec![("topic", "orders")]),
    ] {
        assert_eq!(c.post(path, &form).0, 403, "{path}");
        assert_eq!(c.get(path).0, 403, "{path}");
    }
    assert!(sluice(&["topic", "list", "-b", &bootstrap]).contains("orders"));
    let acl = [
        ("step", "execute"),
        ("resource_type", "topic"),
        ("resource_name", "orders"),
        ("pattern_type", "literal"),
        ("principal", "User:x"),
        ("operation", "read"),
        ("permission", "allow"),
    ];
    assert_eq!(c.post("/acls/create", &acl).0, 403);
    assert_eq!(c.post("/acls/delete", &acl).0, 403);
    assert_eq!(
        c.post(
            "/quotas/alter",
            &[
                ("step", "execute"),
                ("entity_type", "user"),
                ("key", "producer_byte_rate"),
                ("value", "1")
            ]
        )
        .0,
        403
    );
}

#[test]
fn console_against_the_reference_kafka() {
    // With the StandardAuthorizer (ANONYMOUS, every PLAINTEXT client, a
    // super user), so the console's ACL writes can be checked on Kafka.
    let Some(kafka) = ReferenceKafka::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:ANONYMOUS"),
    ])
    .expect("reference Kafka starts") else {
        eprintln!("\n\n!!! SKIPPED console against the reference Kafka: no java or jars (scripts/setup) !!!\n");
        return;
    };
    let bootstrap = kafka.bootstrap();
    populate(&bootstrap);
    let c = ConsoleProcess::start(&bootstrap, &["--timeout", "10"]);
    check_read_pages(&c, &bootstrap, "log-size", true);
    check_lag_matches_the_tool(&c, &bootstrap);
    // Writes: a quota, a SCRAM credential, an ACL (seen by kafka-acls).
    let w = ConsoleProcess::start(&bootstrap, &["--timeout", "10", "--allow-writes"]);
    check_quota_alter(&w, &bootstrap);
    if kafka_tools_ready("console ACL writes vs kafka-acls") {
        check_acl_writes_with_kafka_acls(&w, &bootstrap);
    }
    let (status, location) = w.post(
        "/users/alter",
        &[
            ("user", "dave"),
            ("mechanism", "SCRAM-SHA-256"),
            ("iterations", "8192"),
            ("password", "dave-secret"),
        ],
    );
    assert_eq!((status, location.as_str()), (303, "/users"));
    let users = w.page("/users");
    assert!(
        users.contains("<code>dave</code></td><td>SCRAM-SHA-256 (8192)"),
        "{users}"
    );
}

#[test]
fn the_broker_serves_its_own_console_when_asked() {
    let broker = SluiceProcess::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[("sluice.console.listener", "127.0.0.1:0")],
    )
    .expect("sluice starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let addr = loop {
        let out = broker.output();
        if let Some(rest) = out.split("console on http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no console line in:\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (status, body) = common::console::get(&addr, "/");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Cluster overview") && body.contains("read-only"),
        "{body}"
    );
    let (status, _) = common::console::request(
        &addr,
        "POST",
        "/topics/new",
        Some("name=x"),
        &[("Origin", &format!("http://{addr}"))],
    );
    assert_eq!(
        status, 403,
        "read-only unless sluice.console.allow.writes=true"
    );
}

#[test]
fn console_says_when_the_cluster_is_unreachable() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let c = ConsoleProcess::start(&addr, &["--timeout", "2"]);
    for path in ["/", "/topics", "/groups", "/acls"] {
        let (status, body) = c.get(path);
        assert_eq!(status, 502, "{path}: {body}");
        assert!(body.contains("Cluster unreachable"), "{body}");
        assert!(body.contains(&addr), "{body}");
    }
    let (status, body) = c.get("/throughput.json");
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("\"error\":\"cannot reach the cluster"),
        "{body}"
    );
    // Static pages still load.
    assert_eq!(c.get("/assets/console.css").0, 200);
    assert_eq!(c.get("/health").0, 200);
}

#[test]
fn console_writes_create_produce_and_reset_offsets() {
    let broker = SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[]).expect("sluice starts");
    let bootstrap = broker.bootstrap().to_string();
    let c = ConsoleProcess::start(&bootstrap, &["--allow-writes", "--timeout", "10"]);
    assert!(c.page("/topics").contains("/topics/new"));

    // Create a topic; librdkafka sees it with its partitions and config.
    let (status, location) = c.post(
        "/topics/new",
        &[
            ("name", "made-here"),
            ("partitions", "2"),
            ("replication_factor", "1"),
            ("configs", "retention.ms=3600000"),
        ],
    );
    assert_eq!((status, location.as_str()), (303, "/topics/made-here"));
    let described = sluice(&["topic", "describe", "-b", &bootstrap, "made-here"]);
    assert!(described.contains("PARTITIONS  2"), "{described}");
    assert!(described.contains("retention.ms=3600000"), "{described}");

    // A post from another origin is refused.
    let (status, _) = c.post_from("/topics/new", &[("name", "csrf")], "http://evil.example");
    assert_eq!(status, 403);

    // A page of another site rebinding its name to 127.0.0.1 is refused,
    // reads included.
    let (status, body) = common::console::request(
        &c.addr,
        "GET",
        "/topics",
        None,
        &[("Host", "evil.example:80")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("made-here"), "{body}");

    // Produce; kcat reads it back.
    let (status, location) = c.post(
        "/topics/made-here/produce",
        &[
            ("partition", "1"),
            ("key", "k1"),
            ("headers", "source=console"),
            ("value", "{\"a\":1}"),
        ],
    );
    assert_eq!(status, 303, "{location}");
    assert!(location.ends_with("partition=1&produced=0"), "{location}");
    let read = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "made-here",
            "-p",
            "1",
            "-o",
            "0",
            "-e",
            "-f",
            "%k %s %h\n",
        ],
        "",
    );
    assert_eq!(read.trim(), "k1 {\"a\":1} source=console");
    assert!(c.page(&location).contains("id=\"produced\""));

    // Offset reset: group g1 consumed everything of partition 0.
    let lines: String = (0..5).map(|i| format!("r{i}\n")).collect();
    kcat(
        &["-b", &bootstrap, "-P", "-t", "made-here", "-p", "0"],
        &lines,
    );
    sluice(&[
        "consume",
        "-b",
        &bootstrap,
        "made-here",
        "--group",
        "g1",
        "-n",
        "6",
    ]);
    let current = |cli: &str| -> Vec<String> {
        cli.lines()
            .filter(|l| l.starts_with("made-here"))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
            .collect()
    };
    let before = sluice(&["group", "describe", "-b", &bootstrap, "g1"]);
    assert_eq!(current(&before), vec!["5", "1"], "{before}");
    let form = [
        ("topic", "made-here"),
        ("partition", "0"),
        ("target", "offset"),
        ("offset", "2"),
    ];
    let mut preview: Vec<(&str, &str)> = vec![("step", "preview")];
    preview.extend(form);
    let (status, plan) = c.post("/groups/g1/reset", &preview);
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan.contains("id=\"dry-run\"") && plan.contains("id=\"confirm\""),
        "{plan}"
    );
    let planned = rows(&plan, "reset-table");
    assert_eq!(planned.len(), 1);
    assert_eq!(
        (planned[0]["partition"].as_str(), planned[0]["new"].as_str()),
        ("0", "2")
    );
    // The dry run changed nothing.
    assert_eq!(
        current(&sluice(&["group", "describe", "-b", &bootstrap, "g1"])),
        vec!["5", "1"]
    );
    let mut execute: Vec<(&str, &str)> = vec![("step", "execute")];
    execute.extend(form);
    let (status, done) = c.post("/groups/g1/reset", &execute);
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("id=\"reset-done\""), "{done}");
    let after = sluice(&["group", "describe", "-b", &bootstrap, "g1"]);
    assert_eq!(current(&after), vec!["2", "1"], "{after}");
    let (lag, total) = console_lag(&c, "g1");
    assert_eq!(lag[&("made-here".to_string(), "0".to_string())], "3");
    assert_eq!(total, "3");

    check_topic_edit_and_delete(&c, &bootstrap);
    check_group_deletes(&c, &bootstrap);
    check_quota_alter(&c, &bootstrap);
}

#[test]
fn console_describes_a_kip848_consumer_group() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::ClientConfig;

    let broker = SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[]).expect("sluice starts");
    let bootstrap = broker.bootstrap().to_string();
    sluice(&[
        "topic", "create", "-b", &bootstrap, "events", "-p", "2", "-r", "1",
    ]);
    let lines: String = (0..5).map(|i| format!("e{i}\n")).collect();
    for p in ["0", "1"] {
        kcat(&["-b", &bootstrap, "-P", "-t", "events", "-p", p], &lines);
    }
    // A live member of a KIP-848 group (librdkafka 2.12, group.protocol=consumer).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "modern")
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["events"]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut read = 0;
    while read < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no records for the group"
        );
        if let Some(Ok(_)) = consumer.poll(std::time::Duration::from_millis(200)) {
            read += 1;
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    let c = ConsoleProcess::start(&bootstrap, &["--timeout", "10"]);
    let page = c.page("/groups/modern");
    assert!(page.contains("id=\"group-state\">Stable<"), "{page}");
    assert!(
        page.contains("· consumer</small>"),
        "KIP-848 kind shown:\n{page}"
    );
    assert!(page.contains("id=\"members-table\""), "{page}");
    assert!(
        page.contains("events: 0, 1"),
        "the member's assignment:\n{page}"
    );
    let (lag, total) = console_lag(&c, "modern");
    let committed_lag: i64 = lag.values().filter_map(|l| l.parse::<i64>().ok()).sum();
    assert_eq!(total, committed_lag.to_string());
    assert!(committed_lag <= 10 - read, "{lag:?} after reading {read}");
    drop(consumer);
}
