//! Consumer groups through real clients other than librdkafka-in-Rust
//! (confluent-kafka, kafka-python, the Java client, franz-go, KafkaJS) against the real `sluice` binary:
//! three members of one group over a 6-partition topic end up with disjoint
//! shares covering every partition, consume and commit everything; after a
//! clean broker restart a new member of the group resumes exactly after the
//! last commit on every partition (a clean SIGTERM restart for the Python
//! clients, kill -9 for the others).
//!
//! Each member is a small program (`clients/python/group_member.py`, the
//! `group` phase of the Java, franz-go and KafkaJS drivers) that prints `ASSIGNED [..]`, `RECORD p offset` and `COMMITTED p next` lines and
//! leaves the group when its stdin is closed.
//!
//! Skips loudly when a client toolchain is missing unless
//! `SLUICE_REQUIRE_CLIENTS=1`. `SLUICE_TEST_REFERENCE_KAFKA=1` also runs the
//! `*_reference_kafka` variants against the pinned Apache Kafka 4.1.2.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{env_on, root};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sluice_testkit::SluiceProcess;

const PARTITIONS: i32 = 6;
const PER_PARTITION: i64 = 10;
/// Guard against hangs only (client waits are far shorter when all is well).
const WAIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy)]
enum Client {
    ConfluentKafka,
    KafkaPython,
    Java,
    FranzGo,
    KafkaJs,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::ConfluentKafka => "confluent-kafka",
            Client::KafkaPython => "kafka-python",
            Client::Java => "java-client",
            Client::FranzGo => "franz-go",
            Client::KafkaJs => "kafkajs",
        }
    }

    fn command(self, bootstrap: &str, topic: &str) -> Command {
        let r = root();
        let mut cmd = match self {
            Client::ConfluentKafka | Client::KafkaPython => {
                let mut c = Command::new(r.join(".cache/venv/bin/python"));
                c.arg(r.join("clients/python/group_member.py"))
                    .args(["--client", self.name()]);
                c
            }
            Client::Java => {
                let mut c = Command::new(r.join("clients/java/driver.sh"));
                c.args(["--phase", "group"]);
                c
            }
            Client::FranzGo => {
                let mut c = Command::new(r.join(".cache/bin/franz-go-driver"));
                c.args(["--phase", "group"]);
                c
            }
            Client::KafkaJs => {
                let mut c = Command::new("node");
                c.arg(r.join("clients/node/driver.js"))
                    .args(["--phase", "group"]);
                c
            }
        };
        cmd.args(["--bootstrap", bootstrap, "--topic", topic]);
        cmd
    }

    /// The Python clients see a clean restart, the others a kill -9.
    fn crash_restart(self) -> bool {
        !matches!(self, Client::ConfluentKafka | Client::KafkaPython)
    }

    fn available(self) -> Result<(), String> {
        let r = root();
        let file = |p: PathBuf| {
            if p.exists() {
                Ok(())
            } else {
                Err(p.display().to_string())
            }
        };
        let module = match self {
            Client::ConfluentKafka => "confluent_kafka",
            Client::KafkaPython => "kafka",
            Client::Java => return file(r.join(".cache/kafka/lib/.complete")),
            Client::FranzGo => return file(r.join(".cache/bin/franz-go-driver")),
            Client::KafkaJs => return file(r.join("clients/node/node_modules/kafkajs")),
        };
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
    }

    fn ready(self) -> bool {
        match self.available() {
            Ok(()) => true,
            Err(missing) if env_on("SLUICE_REQUIRE_CLIENTS") => panic!(
                "{}: client toolchain missing ({missing}) and SLUICE_REQUIRE_CLIENTS is set",
                self.name()
            ),
            Err(missing) => {
                eprintln!(
                    "\n\n!!! SKIPPED {}: client toolchain missing ({missing}); run scripts/setup !!!\n",
                    self.name()
                );
                false
            }
        }
    }
}

#[derive(Default)]
struct Seen {
    assigned: Option<BTreeSet<i32>>,
    /// (partition, offset) of every record, in order.
    records: Vec<(i32, i64)>,
    committed: BTreeMap<i32, i64>,
    output: String,
}

/// One running group member process.
struct Member {
    child: Child,
    seen: Arc<Mutex<Seen>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Member {
    fn start(client: Client, bootstrap: &str, topic: &str) -> Member {
        let mut child = client
            .command(bootstrap, topic)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} member: {e}", client.name()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let s = seen.clone();
        let out = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut s = s.lock().unwrap();
                s.output.push_str(&line);
                s.output.push('\n');
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("ASSIGNED") => {
                        let rest = line["ASSIGNED".len()..].trim();
                        let list: Vec<i32> = rest
                            .trim_matches(|c| c == '[' || c == ']')
                            .split(',')
                            .filter_map(|x| x.trim().parse().ok())
                            .collect();
                        s.assigned = Some(list.into_iter().collect());
                    }
                    Some(kind @ ("RECORD" | "COMMITTED")) => {
                        let p = words.next().and_then(|x| x.parse::<i32>().ok());
                        let o = words.next().and_then(|x| x.parse::<i64>().ok());
                        if let (Some(p), Some(o)) = (p, o) {
                            if kind == "RECORD" {
                                s.records.push((p, o));
                            } else {
                                let e = s.committed.entry(p).or_insert(o);
                                *e = (*e).max(o);
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        let s = seen.clone();
        let err = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = s.lock().unwrap();
                s.output.push_str("stderr: ");
                s.output.push_str(&line);
                s.output.push('\n');
            }
        });
        Member {
            child,
            seen,
            readers: vec![out, err],
        }
    }

    fn output(&self) -> String {
        self.seen.lock().unwrap().output.clone()
    }

    /// Closes stdin (the member leaves the group) and waits for it to exit 0.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let out = self.output();
        assert!(
            status.is_some_and(|s| s.success()),
            "member did not exit cleanly after stdin closed:\n{out}"
        );
        out
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn create_topic(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

/// `count` records into every partition.
fn produce(bootstrap: &str, topic: &str, count: i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for p in 0..PARTITIONS {
            for i in 0..count {
                let payload = format!("p{p}-{i}");
                producer
                    .send(
                        FutureRecord::<(), _>::to(topic)
                            .partition(p)
                            .payload(&payload),
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("delivered");
            }
        }
    });
}

fn wait_until(what: &str, members: &[&Member], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            let outs: Vec<String> = members
                .iter()
                .enumerate()
                .map(|(i, m)| format!("--- member {i} ---\n{}", m.output()))
                .collect();
            panic!("timed out waiting for {what}\n{}", outs.join("\n"));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A broker the members can be pointed at and restarted cleanly on its data.
trait BrokerUnderTest {
    fn bootstrap(&self) -> String;
    /// `crash`: SIGKILL (kill -9) instead of a clean shutdown.
    fn restart(&mut self, crash: bool);
}

impl BrokerUnderTest for SluiceProcess {
    fn bootstrap(&self) -> String {
        SluiceProcess::bootstrap(self).to_string()
    }
    fn restart(&mut self, crash: bool) {
        if !crash {
            let status = self.terminate().expect("SIGTERM");
            assert!(status.success(), "sluice exited with {status} on SIGTERM");
        }
        // Kills the process first when it still runs.
        SluiceProcess::restart(self).expect("sluice restarts");
    }
}

/// The pinned Apache Kafka, via `clients/reference-kafka` in a temp dir.
struct ReferenceKafka {
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl ReferenceKafka {
    fn launch(dir: &Path) -> String {
        let out = Command::new(root().join("clients/reference-kafka"))
            .arg("start")
            .arg(dir)
            .output()
            .expect("run clients/reference-kafka");
        assert!(
            out.status.success(),
            "reference Kafka did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
    fn start() -> Option<ReferenceKafka> {
        if !env_on("SLUICE_TEST_REFERENCE_KAFKA") {
            eprintln!("skipped: set SLUICE_TEST_REFERENCE_KAFKA=1 to run against Apache Kafka");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = Self::launch(dir.path());
        Some(ReferenceKafka { dir, bootstrap })
    }
    fn stop(&self, how: &str) {
        let _ = Command::new(root().join("clients/reference-kafka"))
            .arg(how)
            .arg(self.dir.path())
            .status();
    }
}

impl BrokerUnderTest for ReferenceKafka {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }
    fn restart(&mut self, crash: bool) {
        self.stop(if crash { "kill" } else { "stop" });
        self.bootstrap = Self::launch(self.dir.path());
    }
}

impl Drop for ReferenceKafka {
    fn drop(&mut self) {
        self.stop("kill");
    }
}

fn three_members_then_resume(client: Client, broker: &mut dyn BrokerUnderTest) {
    let topic = format!("group-{}", client.name());
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &topic);
    produce(&bootstrap, &topic, PER_PARTITION);

    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(client, &bootstrap, &topic))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    wait_until(
        "3 disjoint non-empty shares covering all partitions, everything committed",
        &refs,
        || {
            let seen: Vec<_> = members.iter().map(|m| m.seen.lock().unwrap()).collect();
            let shares: Vec<BTreeSet<i32>> = seen
                .iter()
                .map(|s| s.assigned.clone().unwrap_or_default())
                .collect();
            let total: usize = shares.iter().map(|s| s.len()).sum();
            let union: BTreeSet<i32> = shares.iter().flatten().copied().collect();
            let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
            for s in &seen {
                for (p, o) in &s.committed {
                    let e = committed.entry(*p).or_insert(*o);
                    *e = (*e).max(*o);
                }
            }
            shares.iter().all(|s| !s.is_empty())
                && total == PARTITIONS as usize
                && union == all
                && all.iter().all(|p| committed.get(p) == Some(&PER_PARTITION))
        },
    );
    let shares: Vec<BTreeSet<i32>> = members
        .iter()
        .map(|m| m.seen.lock().unwrap().assigned.clone().unwrap())
        .collect();
    eprintln!("{}: shares {shares:?}", client.name());
    for m in members {
        m.finish();
    }

    broker.restart(client.crash_restart());
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, &topic, 1);
    let m = Member::start(client, &bootstrap, &topic);
    wait_until(
        "the restarted group to consume the new record of every partition",
        &[&m],
        || {
            let s = m.seen.lock().unwrap();
            let ps: BTreeSet<i32> = s.records.iter().map(|r| r.0).collect();
            ps == all
                && all
                    .iter()
                    .all(|p| s.committed.get(p) == Some(&(PER_PARTITION + 1)))
        },
    );
    let records = m.seen.lock().unwrap().records.clone();
    for p in 0..PARTITIONS {
        let first = records.iter().find(|r| r.0 == p).map(|r| r.1);
        assert_eq!(
            first,
            Some(PER_PARTITION),
            "{}: partition {p} did not resume right after its committed offset; records {records:?}\n{}",
            client.name(),
            m.output()
        );
    }
    m.finish();
}

fn against_sluice(client: Client) {
    if !client.ready() {
        return;
    }
    let mut broker = SluiceProcess::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            ("group.initial.rebalance.delay.ms", "200"),
            ("offsets.topic.num.partitions", "5"),
        ],
    )
    .expect("sluice starts");
    three_members_then_resume(client, &mut broker);
}

fn against_reference(client: Client) {
    if !client.ready() {
        return;
    }
    let Some(mut broker) = ReferenceKafka::start() else {
        return;
    };
    three_members_then_resume(client, &mut broker);
}

#[test]
fn confluent_kafka_group() {
    against_sluice(Client::ConfluentKafka);
}

#[test]
fn kafka_python_group() {
    against_sluice(Client::KafkaPython);
}

#[test]
fn java_client_group() {
    against_sluice(Client::Java);
}

#[test]
fn franz_go_group() {
    against_sluice(Client::FranzGo);
}

#[test]
fn kafkajs_group() {
    against_sluice(Client::KafkaJs);
}

#[test]
fn java_client_group_reference_kafka() {
    against_reference(Client::Java);
}

#[test]
fn franz_go_group_reference_kafka() {
    against_reference(Client::FranzGo);
}

#[test]
fn kafkajs_group_reference_kafka() {
    against_reference(Client::KafkaJs);
}

#[test]
fn confluent_kafka_group_reference_kafka() {
    against_reference(Client::ConfluentKafka);
}

#[test]
fn kafka_python_group_reference_kafka() {
    against_reference(Client::KafkaPython);
}
