//! Replication throttles of a reassignment (`kafka-reassign-partitions
//! --execute --throttle`), on real processes:
//!
//! - **The move is bounded by the throttle**: a partition holding
//!   [`DATA_MIB`] MiB moves to a new broker with a 1 MiB/s throttle
//!   (`replication.quota.window.num=2`, so the quiet start allows about one
//!   window's burst); it cannot complete in less than half of data / rate
//!   (a lower bound only: a busy machine is slower, never faster). While it
//!   runs the brokers and the topic carry the throttle keys; `--verify`
//!   removes them once the move is complete.
//! - **As on Kafka**: the tool's throttle lines, what `kafka-configs
//!   --describe` prints of the throttle keys of every broker and of the
//!   topic, and what `--verify` says when it clears them, on a 3-node
//!   Sluice and a 3-node Kafka 4.1.2 (Kafka's lines recorded in
//!   `tests/fixtures/reassignment.throttle.txt`; Kafka runs again in the
//!   full suite).

use super::*;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// What the throttled move copies.
const DATA_MIB: u64 = 6;
/// The throttle, in bytes per second.
const RATE: u64 = 1 << 20;

/// Runs Kafka's `kafka-configs` (ConfigCommand) and returns its stdout. No
/// log4j config: ConfigCommand refuses the log4j 1 file clients/java uses.
fn kafka_configs(bootstrap: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(root().join(".cache/kafka/lib/*"))
        .arg("kafka.admin.ConfigCommand")
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-configs {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The throttle lines `kafka-configs --describe` prints for brokers 1..=3
/// and for `topic`, each list sorted (Kafka prints in hash order).
fn throttle_lines(bootstrap: &str, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    let entities: Vec<(&str, String)> = (1..=3)
        .map(|b| ("brokers", b.to_string()))
        .chain([("topics", topic.to_string())])
        .collect();
    for (kind, name) in entities {
        let text = kafka_configs(
            bootstrap,
            &["--entity-type", kind, "--entity-name", &name, "--describe"],
        );
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("replication.throttled"))
            .map(|l| format!("{kind} {name}: {}", l.trim()))
            .collect();
        lines.sort();
        out.extend(lines);
    }
    out
}

/// Lines of the tool's output that speak of throttles.
fn throttle_mentions(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.to_lowercase().contains("throttl"))
        .map(str::to_string)
        .collect()
}

/// Polls `--verify` until `topic`-0 is completed; its last output.
fn verify_until_complete(bootstrap: &str, plan: &PathBuf, topic: &str) -> String {
    let bound = Instant::now() + LONG;
    loop {
        let out = tool(bootstrap, "--verify", Some(plan));
        if out.contains(&format!(
            "Reassignment of partition {topic}-0 is completed."
        )) {
            return out;
        }
        assert!(Instant::now() < bound, "never completed:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `topic` in sync on [1, 2] as broker `addr` reports it.
fn wait_in_sync(addr: &str, topic: &str) {
    let bound = Instant::now() + LONG;
    loop {
        let m = fetch_metadata(addr.parse().unwrap(), None).ok();
        let ready = m.as_ref().is_some_and(|m| {
            placement(m, topic)
                .get(&0)
                .is_some_and(|(r, isr, l)| r == &[1, 2] && isr.len() == 2 && *l >= 0)
        });
        if ready {
            return;
        }
        assert!(Instant::now() < bound, "{topic} never in sync: {m:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `topic`-0 on [3, 2], both in sync, as broker `addr` reports it.
fn wait_moved(addr: &str, topic: &str) {
    let bound = Instant::now() + LONG;
    loop {
        let m = fetch_metadata(addr.parse().unwrap(), None).ok();
        let moved = m.as_ref().is_some_and(|m| {
            placement(m, topic)
                .get(&0)
                .is_some_and(|(r, isr, _)| r == &[3, 2] && *isr == BTreeSet::from([2, 3]))
        });
        if moved {
            return;
        }
        assert!(Instant::now() < bound, "{topic} never moved: {m:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `mib` MiB of 10 KiB values to `topic`-0 with `acks=all`.
fn fill(bootstrap: &str, topic: &str, mib: u64) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let value = vec![b'x'; 10 << 10];
    for _ in 0..(mib << 10) / 10 {
        loop {
            match p.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(0)
                    .payload(&value[..]),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        e.to_string().contains("Queue full"),
                        "produce to {topic}: {e}"
                    );
                    p.poll(Duration::from_millis(50));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(LONG).expect("every record acknowledged");
}

/// One move of `topic`-0 from [1, 2] to [3, 2] throttled at [`RATE`]: the
/// tool's throttle lines at `--execute`, the describe lines while it runs,
/// then (after a `-- verify --` line) `--verify`'s throttle lines when
/// complete, then (after `-- after --`) the describe lines after; and the
/// time from the tool's return to the new replicas all in sync.
fn throttled_move(bootstrap: &str, topic: &str) -> (Vec<String>, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let targets = BTreeMap::from([(0, vec![3, 2])]);
    let file = plan(tmp.path(), "throttled.json", topic, &targets);
    let rate = RATE.to_string();
    let executed = tool_with(bootstrap, &["--execute", "--throttle", &rate], Some(&file));
    // Timed from the tool's return (the move began earlier): an
    // underestimate of the move's duration, so the bound is conservative.
    let started = Instant::now();
    assert!(
        executed.contains(&format!(
            "Successfully started partition reassignment for {topic}-0"
        )),
        "{executed}"
    );
    wait_moved(bootstrap.split(',').next().unwrap(), topic);
    let took = started.elapsed();
    // The throttles stay until --verify clears them.
    let during = throttle_lines(bootstrap, topic);
    let mut seen = throttle_mentions(&executed);
    let verified = verify_until_complete(bootstrap, &file, topic);
    seen.extend(during);
    seen.push("-- verify --".into());
    seen.extend(throttle_mentions(&verified));
    seen.push("-- after --".into());
    seen.extend(throttle_lines(bootstrap, topic));
    (seen, took)
}

/// 3 combined nodes whose throttles measure over two 1 s windows.
fn start_throttled() -> SluiceCluster {
    SluiceCluster::start(
        BIN,
        ClusterLayout::Combined(3),
        &[
            ("broker.session.timeout.ms", "6000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "6000"),
            ("replication.quota.window.num", "2"),
        ],
    )
    .expect("the cluster starts")
}

/// The throttled move on Sluice, then its lines against Kafka's
/// (recorded; a 3-node Kafka 4.1.2 moves an empty partition the same way in
/// the full suite).
#[test]
fn a_throttled_move_is_bounded_by_the_rate_and_verify_clears_the_throttle() {
    if !kafka_tools_ready() {
        return;
    }
    const TOPIC: &str = "throttled";
    let lines = {
        let _one = one_at_a_time();
        let mut c = start_throttled();
        create_topic(&c, TOPIC, &[&[1, 2]]);
        wait_in_sync(c.broker_addr(1), TOPIC);
        let bootstrap = c.bootstrap();
        fill(&bootstrap, TOPIC, DATA_MIB);
        let (lines, took) = throttled_move(&bootstrap, TOPIC);
        check_throttled_move(&c, TOPIC, &lines, took);
        lines
    };
    let kafka = || {
        let _one = one_at_a_time();
        let k = ReferenceKafkaCluster::start()
            .expect("start the Kafka cluster")
            .expect("Kafka's jars (tools/kafka/fetch) for the full suite");
        let addr = k.addr(1).to_string();
        create_topic_at(&addr, TOPIC, &[&[1, 2]]);
        wait_in_sync(&addr, TOPIC);
        let (lines, _) = throttled_move(&k.bootstrap(), TOPIC);
        k.stop();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("leader.replication.throttled.rate")),
            "Kafka described no throttle: {lines:#?}"
        );
        transcript::lines(&lines)
    };
    transcript::same_as_kafka("reassignment.throttle", &transcript::lines(&lines), kafka);
}

/// The move of [`DATA_MIB`] MiB took at least half of data / rate, the
/// throttle keys were described on every broker and the topic while it
/// ran, `--verify` cleared them, and the new replicas are identical.
fn check_throttled_move(c: &SluiceCluster, topic: &str, lines: &[String], took: Duration) {
    // Broker 2 keeps its replica (1 deleted its copy).
    let data = partition_dir(c, 2, topic, 0);
    let bytes: u64 = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let floor = Duration::from_secs_f64(0.5 * bytes as f64 / RATE as f64);
    println!(
        "moved {bytes} bytes at a {RATE} B/s throttle in {:.2} s ({:.0} B/s; floor {:.2} s)\n{}",
        took.as_secs_f64(),
        bytes as f64 / took.as_secs_f64(),
        floor.as_secs_f64(),
        lines.join("\n")
    );
    assert!(bytes >= DATA_MIB << 20, "only {bytes} bytes in {data:?}");
    assert!(
        took >= floor,
        "{bytes} bytes moved in {took:?} under a {RATE} B/s throttle"
    );
    let (during, after) = lines.split_at(lines.iter().position(|l| l == "-- verify --").unwrap());
    for b in 1..=3 {
        for side in ["leader", "follower"] {
            let want = format!(
                "brokers {b}: {side}.replication.throttled.rate={RATE} sensitive=false \
                 synonyms={{DYNAMIC_BROKER_CONFIG:{side}.replication.throttled.rate={RATE}}}"
            );
            assert!(during.contains(&want), "{want} missing: {during:#?}");
        }
    }
    for (side, value) in [("leader", "0:1,0:2"), ("follower", "0:3")] {
        let want = format!(
            "topics {topic}: {side}.replication.throttled.replicas={value} sensitive=false \
             synonyms={{DYNAMIC_TOPIC_CONFIG:{side}.replication.throttled.replicas={value}}}"
        );
        assert!(during.contains(&want), "{want} missing: {during:#?}");
    }
    let cleared = after.split(|l| l == "-- after --").nth(1).unwrap();
    assert!(
        cleared.is_empty(),
        "throttles left after --verify: {cleared:#?}"
    );
    wait_identical(c, &BTreeSet::from([2, 3]), topic, 0);
}
