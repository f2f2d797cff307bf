//! The KRaft config rules side by side with Kafka 4.1.2: each config is
//! given to Kafka's `kafka-storage format` (which validates it with
//! `KafkaConfig`) and to `sluice storage format`, and both must accept or
//! both refuse it, except for the deliberate differences listed in
//! `crates/broker/src/config/roles.rs`, where Kafka accepts and Sluice
//! refuses. The messages themselves are compared in that module's tests.
//!
//! Starts one JVM per case (~3 s each), so it runs only with
//! `SLUICE_TEST_FULL=1`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const CLUSTER: &str = "VXIvN_VIRm-xZfpThfl7mA";

const COMBINED: &str = "process.roles=broker,controller\nnode.id=1\n\
controller.quorum.voters=1@127.0.0.1:29193\n\
listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29193\n\
controller.listener.names=CONTROLLER\n";

/// What each side does with a config.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    BothAccept,
    BothRefuse,
    /// Kafka accepts, Sluice refuses on purpose.
    SluiceStricter,
}

/// `COMBINED` with lines replaced (by key) or added; `key=` removes a key.
fn config(changes: &str) -> String {
    let mut lines: Vec<String> = COMBINED.lines().map(str::to_string).collect();
    for change in changes.lines().filter(|l| !l.is_empty()) {
        let key = change.split('=').next().unwrap();
        lines.retain(|l| l.split('=').next() != Some(key));
        if !change.ends_with('=') {
            lines.push(change.to_string());
        }
    }
    lines.join("\n") + "\n"
}

/// SASL_SSL (PLAIN) between brokers and an SSL controller listener, plus
/// `changes` (same syntax as [`config`]'s).
fn secured(changes: &str) -> String {
    let base = "listeners=SASL_SSL://127.0.0.1:29092,CONTROLLER://127.0.0.1:29193\n\
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL\n\
inter.broker.listener.name=SASL_SSL\n\
sasl.enabled.mechanisms=PLAIN\n\
sasl.mechanism.inter.broker.protocol=PLAIN\n\
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"s\" user_broker=\"s\";\n\
ssl.keystore.type=PEM\n\
ssl.keystore.location=/nonexistent/broker.pem\n\
ssl.truststore.type=PEM\n\
ssl.truststore.location=/nonexistent/ca.pem\n";
    format!("{base}{changes}")
}

fn cases() -> Vec<(&'static str, String, Expect)> {
    use Expect::*;
    vec![
        ("combined", config(""), BothAccept),
        ("controller-only", config("process.roles=controller\nlisteners=CONTROLLER://127.0.0.1:29193"), BothAccept),
        ("broker-only", config("process.roles=broker\nnode.id=2\nlisteners=PLAINTEXT://127.0.0.1:29092"), BothAccept),
        ("advertised controller listener, combined", config("advertised.listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29193"), BothAccept),
        ("controller listener missing from the default map", config("listeners=PLAINTEXT://127.0.0.1:29092,CTRL://127.0.0.1:29193\ncontroller.listener.names=CTRL"), BothAccept),
        ("voters and bootstrap servers", config("controller.quorum.bootstrap.servers=127.0.0.1:29193"), BothAccept),
        ("unknown role", config("process.roles=broker,foo"), BothRefuse),
        ("duplicate role", config("process.roles=broker,broker"), BothRefuse),
        ("no node.id", config("node.id="), BothRefuse),
        ("no voters", config("controller.quorum.voters="), BothRefuse),
        ("bootstrap servers alone", config("controller.quorum.voters=\ncontroller.quorum.bootstrap.servers=127.0.0.1:29193"), BothRefuse),
        ("bad bootstrap server", config("controller.quorum.bootstrap.servers=127.0.0.1"), BothRefuse),
        ("voter without port", config("controller.quorum.voters=1@127.0.0.1"), BothRefuse),
        ("voter id not a number", config("controller.quorum.voters=x@127.0.0.1:29193"), BothRefuse),
        ("voter without @", config("controller.quorum.voters=1:127.0.0.1:29193"), BothRefuse),
        ("voter port not a number", config("controller.quorum.voters=1@127.0.0.1:abc"), BothRefuse),
        ("negative voter id", config("controller.quorum.voters=-1@127.0.0.1:29193"), BothRefuse),
        ("controller not a voter", config("node.id=4"), BothRefuse),
        ("broker-only node a voter", config("process.roles=broker\nlisteners=PLAINTEXT://127.0.0.1:29092"), BothRefuse),
        ("no controller.listener.names", config("controller.listener.names="), BothRefuse),
        ("broker-only without controller.listener.names", config("process.roles=broker\nnode.id=2\nlisteners=PLAINTEXT://127.0.0.1:29092\ncontroller.listener.names="), BothRefuse),
        ("controller listener not in listeners", config("listeners=PLAINTEXT://127.0.0.1:29092"), BothRefuse),
        ("broker-only node binding the controller listener", config("process.roles=broker\nnode.id=2"), BothRefuse),
        ("controller-only node with a broker listener", config("process.roles=controller"), BothRefuse),
        ("broker without a broker listener", config("listeners=CONTROLLER://127.0.0.1:29193"), BothRefuse),
        ("explicit map without the controller listener", config("listeners=PLAINTEXT://127.0.0.1:29092,CTRL://127.0.0.1:29193\ncontroller.listener.names=CTRL\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT"), BothRefuse),
        ("inter.broker.listener.name a controller listener", config("inter.broker.listener.name=CONTROLLER"), BothRefuse),
        // Security between nodes (issue 20).
        ("SASL_SSL between brokers, SSL controller listener", config(&secured("")), BothAccept),
        ("security.inter.broker.protocol names the listener", config(&secured("inter.broker.listener.name=\nsecurity.inter.broker.protocol=SASL_SSL")), BothAccept),
        ("both inter-broker keys", config(&secured("security.inter.broker.protocol=SASL_SSL")), BothRefuse),
        ("inter-broker mechanism not enabled", config(&secured("sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\nlistener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"s\";")), BothRefuse),
        ("inter-broker mechanism left at GSSAPI", config(&secured("sasl.mechanism.inter.broker.protocol=")), BothRefuse),
        // Kafka reads the JAAS login only when the broker starts.
        ("inter-broker JAAS entry without a password", config(&secured("listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" user_broker=\"s\";")), SluiceStricter),
        ("inter.broker.listener.name unknown", config("inter.broker.listener.name=INTERNAL"), BothRefuse),
        ("advertised listener not in listeners", config("listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT\nadvertised.listeners=PLAINTEXT://127.0.0.1:29092,OTHER://127.0.0.1:29194"), BothRefuse),
        ("offsets.topic.replication.factor 0", config("offsets.topic.replication.factor=0"), BothRefuse),
        ("min.insync.replicas 0", config("min.insync.replicas=0"), BothRefuse),
        ("negative fetch timeout", config("controller.quorum.fetch.timeout.ms=-1"), BothRefuse),
        ("duplicate voter id", config("controller.quorum.voters=1@127.0.0.1:29193,1@127.0.0.1:29194"), SluiceStricter),
        ("heartbeat above session timeout", config("broker.heartbeat.interval.ms=10000"), SluiceStricter),
        ("broker-only node advertising a controller listener", config("process.roles=broker\nnode.id=2\nlisteners=PLAINTEXT://127.0.0.1:29092\nadvertised.listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29193"), SluiceStricter),
    ]
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let d = dir.join(safe);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("server.properties");
    std::fs::write(
        &path,
        format!("{text}log.dirs={}\n", d.join("logs").display()),
    )
    .unwrap();
    path.display().to_string()
}

fn kafka_format(lib: &Path, config: &str) -> Output {
    Command::new("java")
        .args(["-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(lib.join("*"))
        .args([
            "kafka.tools.StorageTool",
            "format",
            "-t",
            CLUSTER,
            "-c",
            config,
        ])
        .output()
        .expect("run java")
}

#[test]
fn sluice_accepts_and_refuses_what_kafka_does() {
    if !common::env_on("SLUICE_TEST_FULL") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to compare the config rules with Kafka (one JVM per case)");
        return;
    }
    let lib = common::root().join(".cache/kafka/lib");
    assert!(
        lib.join(".complete").exists(),
        "needs the Kafka jars in {}",
        lib.display()
    );
    let kafka_dir = tempfile::tempdir().unwrap();
    let sluice_dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for (name, text, expect) in cases() {
        let kafka = kafka_format(&lib, &write(kafka_dir.path(), name, &text));
        let sluice = Command::new(BIN)
            .args([
                "storage",
                "format",
                "-t",
                CLUSTER,
                "-c",
                &write(sluice_dir.path(), name, &text),
            ])
            .output()
            .unwrap();
        let got = match (kafka.status.success(), sluice.status.success()) {
            (true, true) => Expect::BothAccept,
            (false, false) => Expect::BothRefuse,
            (true, false) => Expect::SluiceStricter,
            (false, true) => {
                wrong.push(format!(
                    "{name}: Kafka refuses, Sluice accepts\nKafka: {}",
                    String::from_utf8_lossy(&kafka.stderr)
                ));
                continue;
            }
        };
        if got != expect {
            wrong.push(format!(
                "{name}: expected {expect:?}, got {got:?}\nKafka: {}{}\nSluice: {}",
                String::from_utf8_lossy(&kafka.stdout),
                String::from_utf8_lossy(&kafka.stderr),
                String::from_utf8_lossy(&sluice.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
