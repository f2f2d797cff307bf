//! Real clients under a produce quota (issue 21): librdkafka (through
//! confluent-kafka, its `throttle_cb`) and franz-go (its `OnBrokerThrottle`
//! hook; `clients/go/throttle.go`) see the throttle times the broker answers,
//! deliver every record without an error while their connection is muted,
//! and their rate stays within a generous bound of the quota; the same
//! clients without a quota are never throttled.
//!
//! Each client skips loudly when it is not installed (`scripts/setup`),
//! unless `SLUICE_REQUIRE_CLIENTS=1`. `SLUICE_FRANZ_GO_DRIVER` points at
//! another franz-go driver binary. No timing assertion beyond the upper
//! bound on the rate, which slowness cannot break.

mod common;

use common::quotas::set_client_quota;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::RawClient;

const TOPIC: &str = "quota-clients";
/// 512 KiB/s over 3 windows of 1 s.
const QUOTA: f64 = 512.0 * 1024.0;

/// The `KEY=value` fields of a driver's summary line.
fn summary(out: &str) -> HashMap<String, f64> {
    let line = out
        .lines()
        .find(|l| l.starts_with("SENT="))
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// The bound of `client_quotas.rs`: 1.5 × the quota over the time taken
/// plus the 2-window burst, plus one 1 MiB batch recorded before it is
/// throttled.
fn check(client: &str, s: &HashMap<String, f64>, limited: bool) {
    eprintln!("{client}: {s:?}");
    assert_eq!(s["ERRORS"], 0.0, "{client}: delivery errors");
    if limited {
        assert!(s["THROTTLES"] > 0.0, "{client} never saw a throttle");
        let bound = 1.5 * QUOTA * (s["SECS"] + 2.0) + (1 << 20) as f64;
        assert!(
            s["SENT"] <= bound,
            "{client} sent {} B in {} s, quota {QUOTA} B/s",
            s["SENT"],
            s["SECS"]
        );
    } else {
        assert_eq!(
            s["THROTTLES"], 0.0,
            "{client} without a quota was throttled"
        );
    }
}

const PYTHON_PRODUCER: &str = r#"
import os, sys, time
from confluent_kafka import Producer
addr, topic, client_id, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
throttles, errors = [], []
def on_throttle(ev):
    if ev.throttle_time > 0:
        throttles.append(ev.throttle_time)
def on_delivery(err, msg):
    if err:
        errors.append(str(err))
p = Producer({'bootstrap.servers': addr, 'client.id': client_id, 'throttle_cb': on_throttle,
              'acks': 1, 'enable.idempotence': False, 'linger.ms': 5})
# Random values: the quota counts the bytes on the wire.
values = [os.urandom(1000) for _ in range(64)]
start = time.time()
for i in range(n):
    while True:
        try:
            p.produce(topic, values[i % 64], on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.1)
    p.poll(0)
left = p.flush(120)
secs = time.time() - start
print(f"SENT={n * 1000} SECS={secs:.3f} THROTTLES={len(throttles)} "
      f"MAX_THROTTLE_MS={max(throttles, default=0) * 1000:.0f} ERRORS={len(errors) + left}")
"#;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run client");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn franz_go_driver() -> Option<PathBuf> {
    let path = std::env::var_os("SLUICE_FRANZ_GO_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join(".cache/bin/franz-go-driver"));
    // An older driver has no throttle phase (usage error, exit 2).
    let has_phase = Command::new(&path)
        .arg("-help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("throttle"));
    if has_phase {
        return Some(path);
    }
    if common::env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!(
            "{} with a throttle phase required (scripts/setup)",
            path.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPED franz-go throttle test: {} missing or without a throttle phase; run scripts/setup !!!\n",
        path.display()
    );
    None
}

#[test]
fn librdkafka_and_franz_go_honour_the_produce_throttle() {
    let broker = common::start(&[
        ("quota.window.num", "3"),
        ("quota.window.size.seconds", "1"),
    ]);
    let addr = broker.bootstrap().to_string();
    common::create_topic(&mut RawClient::connect(&addr), TOPIC, &[]);
    for client in ["rdk-limited", "franz-limited"] {
        set_client_quota(&addr, client, "producer_byte_rate", QUOTA);
    }
    // 3000 × 1000 B: about 6 s at the quota after the burst.
    if let Some(python) = common::sasl::venv_python("confluent-kafka throttle test") {
        for (client, limited) in [("rdk-limited", true), ("rdk-free", false)] {
            let out = run(Command::new(&python).args([
                "-c",
                PYTHON_PRODUCER,
                &addr,
                TOPIC,
                client,
                "3000",
            ]));
            check(client, &summary(&out), limited);
        }
    }
    if let Some(driver) = franz_go_driver() {
        for (client, limited) in [("franz-limited", true), ("franz-free", false)] {
            let out = run(Command::new(&driver).args([
                "-bootstrap",
                &addr,
                "-topic",
                TOPIC,
                "-phase",
                "throttle",
                "-client-id",
                client,
                "-records",
                "3000",
                "-timeout",
                "120",
            ]));
            check(client, &summary(&out), limited);
        }
    }
}
