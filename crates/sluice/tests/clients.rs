//! Real Kafka clients against the real `sluice` binary.
//!
//! One test per client in `clients/` (confluent-kafka, kafka-python, KafkaJS,
//! the Java client, franz-go, kcat, Kafka's CLI tools). Each starts Sluice on
//! port 0 through the testkit, runs the client's driver phase
//! `produce-consume` (create a 3-partition topic, produce keyed records with
//! headers under every codec, consume them back exactly and in order, list
//! offsets), restarts the broker cleanly (SIGTERM) on the same data, runs
//! `verify-only` (the same records again, then delete the topic) and checks
//! that the topic id the client saw did not change across the restart. See
//! clients/README.md. `cross_client_*` has each client's records read back by
//! a different client after a SIGKILL restart.
//!
//! A test whose client toolchain is missing skips with a loud message, unless
//! `SLUICE_REQUIRE_CLIENTS` is set (scripts/test sets it), when it fails.
//! `scripts/setup` installs every toolchain.
//!
//! `*_auto_create_*` run each driver's `auto-create` phase: produce to a topic
//! nobody created, with the client's auto-creation on; no error may reach the
//! application, and the topic must then hold every record it delivered.
//!
//! With `SLUICE_TEST_REFERENCE_KAFKA=1` the `*_reference_kafka` tests run the
//! same drivers against the pinned Apache Kafka 4.1.2 (clients/reference-kafka),
//! so the comparison is one command:
//! `SLUICE_TEST_REFERENCE_KAFKA=1 cargo test -p sluice --test clients`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{env_on, root, sb, RawClient};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataRequest, TopicName};
use sluice_testkit::SluiceProcess;

/// Longest a single driver phase may run before it is killed (a hang guard,
/// not a speed check: the drivers' own waits are 60 s each).
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// A client driver from `clients/`.
#[derive(Clone, Copy)]
enum Client {
    ConfluentKafka,
    KafkaPython,
    KafkaJs,
    Java,
    FranzGo,
    Kcat,
    KafkaCli,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::ConfluentKafka => "confluent-kafka",
            Client::KafkaPython => "kafka-python",
            Client::KafkaJs => "kafkajs",
            Client::Java => "java-client",
            Client::FranzGo => "franz-go",
            Client::Kcat => "kcat",
            Client::KafkaCli => "kafka-cli",
        }
    }

    /// The driver's command line, without the common arguments.
    fn command(self) -> Command {
        let r = root();
        let venv_python = r.join(".cache/venv/bin/python");
        let (program, args): (PathBuf, Vec<PathBuf>) = match self {
            Client::ConfluentKafka => (
                venv_python,
                vec![r.join("clients/python/confluent_driver.py")],
            ),
            Client::KafkaPython => (
                venv_python,
                vec![r.join("clients/python/kafka_python_driver.py")],
            ),
            Client::KafkaJs => ("node".into(), vec![r.join("clients/node/driver.js")]),
            Client::Java => (r.join("clients/java/driver.sh"), vec![]),
            Client::FranzGo => (r.join(".cache/bin/franz-go-driver"), vec![]),
            Client::Kcat => (r.join("clients/kcat/driver.sh"), vec![]),
            Client::KafkaCli => (r.join("clients/kafka-cli/driver.sh"), vec![]),
        };
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    }

    /// `Err(what is missing)` when this client's toolchain is not installed.
    fn available(self) -> Result<(), String> {
        let r = root();
        let python_module = |module: &str| -> Result<(), String> {
            let python = r.join(".cache/venv/bin/python");
            let ok = Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                Ok(())
            } else {
                Err(format!("python module {module} in {}", python.display()))
            }
        };
        let on_path = |program: &str| -> Result<(), String> {
            let ok = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                Ok(())
            } else {
                Err(format!("`{program}` on PATH"))
            }
        };
        let file = |path: PathBuf| -> Result<(), String> {
            if path.exists() {
                Ok(())
            } else {
                Err(path.display().to_string())
            }
        };
        let java = || -> Result<(), String> {
            on_path("java")?;
            on_path("javac")?;
            file(r.join(".cache/kafka/lib/.complete"))
        };
        match self {
            Client::ConfluentKafka => python_module("confluent_kafka"),
            Client::KafkaPython => python_module("kafka"),
            Client::KafkaJs => {
                on_path("node")?;
                file(r.join("clients/node/node_modules/kafkajs"))
            }
            Client::Java => java(),
            Client::FranzGo => file(r.join(".cache/bin/franz-go-driver")),
            Client::Kcat => {
                on_path("kcat")?;
                java()
            }
            Client::KafkaCli => {
                on_path("python3")?;
                java()
            }
        }
    }

    /// True when the test should go on; false after printing why it skips.
    /// Panics when the toolchain is missing and SLUICE_REQUIRE_CLIENTS is set.
    fn ready(self) -> bool {
        match self.available() {
            Ok(()) => true,
            Err(missing) if env_on("SLUICE_REQUIRE_CLIENTS") => panic!(
                "{}: client toolchain missing ({missing}) and SLUICE_REQUIRE_CLIENTS is set; run scripts/setup",
                self.name()
            ),
            Err(missing) => {
                eprintln!(
                    "\n\n!!! SKIPPED {}: client toolchain missing ({missing}); run scripts/setup \
                     (set SLUICE_REQUIRE_CLIENTS=1 to make this a failure) !!!\n",
                    self.name()
                );
                false
            }
        }
    }

    /// Runs one driver phase; `Err(output)` unless it exited 0.
    fn run(self, bootstrap: &str, topic: &str, phase: &str) -> Result<String, String> {
        let mut cmd = self.command();
        cmd.args(["--bootstrap", bootstrap, "--topic", topic, "--phase", phase])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {} driver: {e}", self.name()))?;
        let (ok, output) = wait_with_output(child, PHASE_LIMIT);
        if ok {
            Ok(output)
        } else {
            Err(output)
        }
    }
}

/// Waits for the child, killing it after `limit`; returns (success, stdout + stderr).
fn wait_with_output(mut child: Child, limit: Duration) -> (bool, String) {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let mut note = String::new();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                note = format!("\n(killed: still running after {} s)", limit.as_secs());
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                note = format!("\n(wait failed: {e})");
                break None;
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let text = format!(
        "{}{}{}{note}",
        String::from_utf8_lossy(&out),
        if err.is_empty() {
            ""
        } else {
            "--- stderr ---\n"
        },
        String::from_utf8_lossy(&err)
    );
    (status.is_some_and(|s| s.success()), text)
}

/// The `TOPIC_ID=` lines a driver printed (empty for clients without topic ids).
fn topic_ids(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("TOPIC_ID="))
        .collect()
}

/// How a broker is restarted between the phases.
#[derive(Clone, Copy, Debug)]
enum Restart {
    /// SIGTERM, wait for the clean shutdown, start on the same data.
    Clean,
    /// SIGKILL (a process crash: acknowledged records must survive it), start
    /// on the same data.
    Crash,
}

/// A broker the drivers can be pointed at and restarted on the same data.
trait BrokerUnderTest {
    fn bootstrap(&self) -> String;
    fn restart(&mut self, how: Restart) -> Result<(), String>;
    /// What the broker logged, for failure messages.
    fn log_tail(&self) -> String;
}

impl BrokerUnderTest for SluiceProcess {
    fn bootstrap(&self) -> String {
        SluiceProcess::bootstrap(self).to_string()
    }
    fn restart(&mut self, how: Restart) -> Result<(), String> {
        if let Restart::Clean = how {
            let status = self.terminate().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("sluice exited with {status} on SIGTERM"));
            }
        }
        // Kills the process first when it still runs (Restart::Crash).
        SluiceProcess::restart(self).map_err(|e| e.to_string())
    }
    fn log_tail(&self) -> String {
        tail(&SluiceProcess::output(self), 60)
    }
}

/// The pinned Apache Kafka, started by `clients/reference-kafka` in a temp dir.
struct ScriptedReferenceKafka {
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl ScriptedReferenceKafka {
    fn script() -> PathBuf {
        root().join("clients/reference-kafka")
    }

    fn start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-reference-kafka")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let bootstrap = Self::launch(dir.path())?;
        Ok(ScriptedReferenceKafka { dir, bootstrap })
    }

    fn launch(dir: &Path) -> Result<String, String> {
        let out = Command::new(Self::script())
            .arg("start")
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run clients/reference-kafka: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "reference Kafka did not start:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn stop(&self, how: &str) {
        let _ = Command::new(Self::script())
            .arg(how)
            .arg(self.dir.path())
            .status();
    }
}

impl BrokerUnderTest for ScriptedReferenceKafka {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }
    fn restart(&mut self, how: Restart) -> Result<(), String> {
        self.stop(match how {
            Restart::Clean => "stop",
            Restart::Crash => "kill",
        });
        self.bootstrap = Self::launch(self.dir.path())?;
        Ok(())
    }
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("kafka.log")).unwrap_or_default();
        tail(&log, 60)
    }
}

impl Drop for ScriptedReferenceKafka {
    fn drop(&mut self) {
        self.stop("kill");
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// produce-consume, restart, verify-only; panics with the driver's and the
/// broker's output on any failure.
fn produce_restart_verify(client: Client, broker: &mut dyn BrokerUnderTest, what: &str) {
    let topic = format!("clients-{}", client.name());
    let name = client.name();
    let first = client
        .run(&broker.bootstrap(), &topic, "produce-consume")
        .unwrap_or_else(|out| {
            panic!(
                "{name} against {what}: phase produce-consume failed\n--- driver ---\n{out}\n--- broker log (tail) ---\n{}",
                broker.log_tail()
            )
        });
    if let Err(e) = broker.restart(Restart::Clean) {
        panic!(
            "{name} against {what}: broker restart failed: {e}\n--- broker log (tail) ---\n{}",
            broker.log_tail()
        );
    }
    let second = client
        .run(&broker.bootstrap(), &topic, "verify-only")
        .unwrap_or_else(|out| {
            panic!(
                "{name} against {what}: phase verify-only (after restart) failed\n--- driver ---\n{out}\n--- broker log (tail) ---\n{}",
                broker.log_tail()
            )
        });
    let (before, after) = (topic_ids(&first), topic_ids(&second));
    assert_eq!(
        before, after,
        "{name} against {what}: the topic id changed across the restart"
    );
    eprintln!("{name} against {what}: OK (topic ids {before:?})");
}

fn against_sluice(client: Client) {
    if !client.ready() {
        return;
    }
    let mut broker = SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[])
        .unwrap_or_else(|e| panic!("sluice did not start: {e}"));
    produce_restart_verify(client, &mut broker, "sluice");
}

fn against_reference_kafka(client: Client) {
    if !env_on("SLUICE_TEST_REFERENCE_KAFKA") {
        eprintln!(
            "{}: reference Kafka comparison not requested (set SLUICE_TEST_REFERENCE_KAFKA=1)",
            client.name()
        );
        return;
    }
    if !client.ready() {
        return;
    }
    let mut broker = ScriptedReferenceKafka::start().unwrap_or_else(|e| panic!("{e}"));
    produce_restart_verify(client, &mut broker, "reference Kafka 4.1.2");
}

macro_rules! client_tests {
    ($($(#[$attr:meta])* $client:ident: $sluice:ident, $reference:ident;)*) => {$(
        #[test]
        $(#[$attr])*
        fn $sluice() {
            against_sluice(Client::$client);
        }

        #[test]
        fn $reference() {
            against_reference_kafka(Client::$client);
        }
    )*};
}

client_tests! {
    ConfluentKafka: confluent_kafka_against_sluice, confluent_kafka_against_reference_kafka;
    KafkaPython: kafka_python_against_sluice, kafka_python_against_reference_kafka;
    KafkaJs: kafkajs_against_sluice, kafkajs_against_reference_kafka;
    Java: java_client_against_sluice, java_client_against_reference_kafka;
    FranzGo: franz_go_against_sluice, franz_go_against_reference_kafka;
    Kcat: kcat_against_sluice, kcat_against_reference_kafka;
    KafkaCli: kafka_cli_against_sluice, kafka_cli_against_reference_kafka;
}

/// The number of records in every partition of `topic` (latest offsets),
/// asked without auto-creation.
fn records_in(bootstrap: &str, topic: &str) -> Result<i64, String> {
    let mut c = RawClient::connect(bootstrap);
    let m = c.send(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic))))
            ]))
            .with_allow_auto_topic_creation(false),
    );
    let t = &m.topics[0];
    if t.error_code != 0 {
        return Err(format!("metadata for {topic}: error {}", t.error_code));
    }
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            ListOffsetsPartition::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
        })
        .collect();
    let l = c.send(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(partitions)]),
    );
    l.topics[0].partitions.iter().try_fold(0, |sum, p| {
        if p.error_code == 0 {
            Ok(sum + p.offset)
        } else {
            Err(format!(
                "list offsets {topic}/{}: error {}",
                p.partition_index, p.error_code
            ))
        }
    })
}

/// The client's `auto-create` phase against `broker`: it must succeed (no
/// error reached the application), say how many records were delivered, and
/// the auto-created topic must hold exactly those.
fn auto_create(client: Client, broker: &dyn BrokerUnderTest, what: &str) {
    let name = client.name();
    let topic = format!("auto-{name}");
    let out = client
        .run(&broker.bootstrap(), &topic, "auto-create")
        .unwrap_or_else(|out| {
            panic!(
                "{name} producing to a new topic against {what} failed\n--- driver ---\n{out}\n--- broker log (tail) ---\n{}",
                broker.log_tail()
            )
        });
    let delivered: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("DELIVERED="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name}: no DELIVERED= line\n{out}"));
    assert_eq!(delivered, 30, "{name} against {what}\n{out}");
    assert_eq!(
        records_in(&broker.bootstrap(), &topic),
        Ok(delivered),
        "{name} against {what}: records in the auto-created topic"
    );
    eprintln!("{name} auto-create against {what}: OK");
}

macro_rules! auto_create_tests {
    ($($client:ident: $sluice:ident, $reference:ident;)*) => {$(
        #[test]
        fn $sluice() {
            if !Client::$client.ready() {
                return;
            }
            let broker = SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[])
                .unwrap_or_else(|e| panic!("sluice did not start: {e}"));
            auto_create(Client::$client, &broker, "sluice");
        }

        #[test]
        fn $reference() {
            if !env_on("SLUICE_TEST_REFERENCE_KAFKA") || !Client::$client.ready() {
                eprintln!("reference Kafka comparison not requested (set SLUICE_TEST_REFERENCE_KAFKA=1)");
                return;
            }
            let broker = ScriptedReferenceKafka::start().unwrap_or_else(|e| panic!("{e}"));
            auto_create(Client::$client, &broker, "reference Kafka 4.1.2");
        }
    )*};
}

auto_create_tests! {
    ConfluentKafka: confluent_kafka_auto_create_against_sluice, confluent_kafka_auto_create_against_reference_kafka;
    KafkaPython: kafka_python_auto_create_against_sluice, kafka_python_auto_create_against_reference_kafka;
    KafkaJs: kafkajs_auto_create_against_sluice, kafkajs_auto_create_against_reference_kafka;
    Java: java_client_auto_create_against_sluice, java_client_auto_create_against_reference_kafka;
    FranzGo: franz_go_auto_create_against_sluice, franz_go_auto_create_against_reference_kafka;
}

/// Pairs (producer, consumer) for the cross-client test: every driver's
/// records are read back by a different client (all but the CLI driver lay
/// records out identically, see clients/README.md). KafkaJS only produces
/// here (phase `produce`), so the test needs no consumer groups.
const CROSS_PAIRS: [(Client, Client); 6] = [
    (Client::Java, Client::ConfluentKafka),
    (Client::ConfluentKafka, Client::KafkaPython),
    (Client::KafkaPython, Client::FranzGo),
    (Client::FranzGo, Client::Kcat),
    (Client::Kcat, Client::Java),
    (Client::KafkaJs, Client::FranzGo),
];

/// Each pair's producer runs `produce` on its own topic; the broker is
/// killed with SIGKILL and started again; then each pair's consumer runs
/// verify-only (which also deletes): acknowledged records survive a crash.
fn cross_clients(broker: &mut dyn BrokerUnderTest, what: &str) {
    let pairs: Vec<(Client, Client)> = CROSS_PAIRS
        .into_iter()
        .filter(|(p, c)| p.ready() && c.ready())
        .collect();
    let topic = |p: Client, c: Client| format!("cross-{}-to-{}", p.name(), c.name());
    for &(p, c) in &pairs {
        if let Err(out) = p.run(&broker.bootstrap(), &topic(p, c), "produce") {
            panic!(
                "{} producing for {} against {what} failed\n--- driver ---\n{out}\n--- broker log (tail) ---\n{}",
                p.name(),
                c.name(),
                broker.log_tail()
            );
        }
    }
    if let Err(e) = broker.restart(Restart::Crash) {
        panic!(
            "broker crash-restart (SIGKILL) failed: {e}\n--- broker log (tail) ---\n{}",
            broker.log_tail()
        );
    }
    for &(p, c) in &pairs {
        if let Err(out) = c.run(&broker.bootstrap(), &topic(p, c), "verify-only") {
            panic!(
                "{} reading what {} produced against {what} (after a SIGKILL restart) failed\n--- driver ---\n{out}\n--- broker log (tail) ---\n{}",
                c.name(),
                p.name(),
                broker.log_tail()
            );
        }
        eprintln!("{} -> {} against {what}: OK", p.name(), c.name());
    }
}

#[test]
fn cross_client_against_sluice() {
    let mut broker = SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[])
        .unwrap_or_else(|e| panic!("sluice did not start: {e}"));
    cross_clients(&mut broker, "sluice");
}

#[test]
fn cross_client_against_reference_kafka() {
    if !env_on("SLUICE_TEST_REFERENCE_KAFKA") {
        eprintln!("cross-client: reference Kafka comparison not requested (set SLUICE_TEST_REFERENCE_KAFKA=1)");
        return;
    }
    let mut broker = ScriptedReferenceKafka::start().unwrap_or_else(|e| panic!("{e}"));
    cross_clients(&mut broker, "reference Kafka 4.1.2");
}
