//! The next-generation consumer group protocol (KIP-848,
//! `group.protocol=consumer`) through real clients: librdkafka 2.12 (the
//! `rdkafka` crate) and the Java client 4.1.2. The broker computes the
//! assignment; the clients only heartbeat (ConsumerGroupHeartbeat) and
//! reconcile incrementally. Scenarios, each on Sluice and (with
//! `SLUICE_TEST_REFERENCE_KAFKA=1`) on the pinned Apache Kafka 4.1.2 with the
//! same assertions on the final assignment shape:
//!
//! - `cover`: 3 members over a 6-partition topic get a disjoint cover, 2 each.
//! - `join`: a 4th member joins while records keep arriving; only the
//!   partitions it takes move (each original member ends with a subset of what
//!   it had), no original member's assignment is ever empty, no partition an
//!   original member keeps is ever revoked, and it keeps consuming those
//!   partitions without re-reading (offsets stay consecutive); shape 2,2,1,1.
//! - `crash`: a member is killed with SIGKILL (no leave); the broker's session
//!   timeout (`group.consumer.session.timeout.ms`, lowered to 8 s on both
//!   brokers) fences it and its partitions move to the survivors (3,3), who
//!   resume at its committed offsets.
//! - `restart`: offsets committed by the group survive a clean broker restart;
//!   a new member resumes right after them.
//! - `regex`: members subscribed to a broker-side regex pick up a newly created
//!   matching topic without stopping (no revocation of what they had), and
//!   never a non-matching one; shape 3,3 over two 3-partition topics.
//! - `static`: a member with a `group.instance.id` closes and comes back as a
//!   new process: it gets its partitions back and resumes at its commits; the
//!   others' assignments never change.
//! - `live restart`: the broker restarts under 3 live members; the group state
//!   is reloaded and they carry on with the same partitions, no revocation,
//!   no re-reading.
//! - `range`: `group.remote.assignor=range` co-partitions two topics (4,4,4)
//!   and the group shows the range assignor.
//! - `new partitions`: partitions added to the topic go to the live members
//!   (2,2 -> 3,3) without revocation or pause.
//! - `mixed`: the `join` scenario with Java and librdkafka members in one group.
//! - `leave`, `kill -9 restart`, `deleted topic`, `max size`
//!   (GROUP_MAX_SIZE_REACHED), `duplicate instance id`
//!   (UNRELEASED_INSTANCE_ID): see each scenario function.
//!
//! Each member is a process (so a crash is a real SIGKILL): the Java driver's
//! `consumer-group` phase, or this test binary re-run as the ignored
//! [`member_process`] entry point. Both print `ADDED`/`REVOKED`/`LOST t:p..`
//! from their rebalance callbacks, `ASSIGNED t:p..` (the whole assignment) when
//! it changes, `RECORD t p offset` and `COMMITTED t p next`, and leave the
//! group when their stdin closes.
//!
//! `kafka-consumer-groups --list --type` / `--describe --state` / `--describe
//! --members` / `--describe` show a group of such members as a
//! consumer-protocol group (type Consumer, assignor uniform); after they left,
//! it is Empty, `--reset-offsets` and `--delete` work. With the reference
//! Kafka enabled, Sluice's output must equal Kafka's (random ids masked).
//!
//! Waits are for conditions, with deadlines of minutes; nothing asserts on time.
//! The Java variants skip loudly without java and the jars unless
//! `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{env_on, root};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, TopicPartitionList};
use sluice_testkit::SluiceProcess;

const PARTITIONS: i32 = 6;
const PER_PARTITION: i64 = 10;
/// Guard against hangs only; when all is well the waits end far sooner.
const WAIT: Duration = Duration::from_secs(300);

/// Consumer-group settings given to both brokers: a short session timeout so
/// that a crashed member is fenced quickly (the minimum must allow it), a
/// short heartbeat interval, and a short regex refresh interval.
const GROUP_SETTINGS: &[(&str, &str)] = &[
    ("group.consumer.session.timeout.ms", "8000"),
    ("group.consumer.min.session.timeout.ms", "6000"),
    ("group.consumer.heartbeat.interval.ms", "1000"),
    ("group.consumer.min.heartbeat.interval.ms", "1000"),
];

/// For static membership and a broker restart under live members: a 2-minute
/// session timeout, so that a restarted static member or broker (a JVM start
/// on a slow, busy machine included; a librdkafka member was seen to need
/// more than Kafka's default 45 s to reach a restarted Kafka under load) is
/// back well before sessions end and partitions would be reassigned.
const LONG_SESSION_SETTINGS: &[(&str, &str)] = &[
    ("group.consumer.session.timeout.ms", "120000"),
    ("group.consumer.max.session.timeout.ms", "120000"),
    ("group.consumer.heartbeat.interval.ms", "1000"),
    ("group.consumer.min.heartbeat.interval.ms", "1000"),
];

/// [`GROUP_SETTINGS`] with room for 2 members per consumer group.
const MAX_SIZE_SETTINGS: &[(&str, &str)] = &[
    ("group.consumer.session.timeout.ms", "8000"),
    ("group.consumer.min.session.timeout.ms", "6000"),
    ("group.consumer.heartbeat.interval.ms", "1000"),
    ("group.consumer.min.heartbeat.interval.ms", "1000"),
    ("group.consumer.max.size", "2"),
];

type Tp = (String, i32);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Rdkafka,
    Java,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Rdkafka => "rdkafka",
            Client::Java => "java",
        }
    }

    fn ready(self) -> bool {
        if self == Client::Rdkafka {
            return true;
        }
        let jars = root().join(".cache/kafka/lib/.complete");
        let java = Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if jars.exists() && java {
            return true;
        }
        let missing = format!("java on PATH and {}", jars.display());
        if env_on("SLUICE_REQUIRE_CLIENTS") {
            panic!("java client: {missing} required (SLUICE_REQUIRE_CLIENTS is set)");
        }
        eprintln!("\n\n!!! SKIPPED java client: needs {missing}; run scripts/setup !!!\n");
        false
    }
}

/// What a member subscribes to.
#[derive(Clone)]
enum Subscription {
    Topic(String),
    /// Every topic whose name starts with this prefix (a broker-side regex).
    Prefix(String),
}

#[derive(Clone)]
struct MemberSpec {
    client: Client,
    bootstrap: String,
    group: String,
    subscription: Subscription,
    /// `group.instance.id` (static membership).
    instance: Option<String>,
    /// `group.remote.assignor`.
    assignor: Option<&'static str>,
    /// `group.protocol=classic` instead of `consumer` (librdkafka only).
    classic: bool,
}

impl MemberSpec {
    fn command(&self) -> Command {
        match self.client {
            Client::Rdkafka => {
                let mut c = Command::new(std::env::current_exe().expect("test binary path"));
                c.args([
                    "member_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("KIP848_BOOTSTRAP", &self.bootstrap)
                .env("KIP848_GROUP", &self.group);
                match &self.subscription {
                    Subscription::Topic(t) => c.env("KIP848_TOPIC", t),
                    Subscription::Prefix(p) => c.env("KIP848_TOPIC", format!("^{p}.*")),
                };
                if let Some(i) = &self.instance {
                    c.env("KIP848_INSTANCE", i);
                }
                if let Some(a) = self.assignor {
                    c.env("KIP848_ASSIGNOR", a);
                }
                if self.classic {
                    c.env("KIP848_PROTOCOL", "classic");
                }
                c
            }
            Client::Java => {
                let mut c = Command::new(root().join("clients/java/driver.sh"));
                c.args(["--phase", "consumer-group", "--bootstrap", &self.bootstrap])
                    .args(["--group", &self.group]);
                match &self.subscription {
                    Subscription::Topic(t) => c.args(["--topic", t]),
                    Subscription::Prefix(p) => c
                        .args(["--topic", p])
                        .args(["--pattern", &format!("{p}.*")]),
                };
                if let Some(i) = &self.instance {
                    c.args(["--instance", i]);
                }
                if let Some(a) = self.assignor {
                    c.args(["--assignor", a]);
                }
                c
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Event {
    /// The whole assignment, as the member reported it.
    Assigned(BTreeSet<Tp>),
    Added(Vec<Tp>),
    Revoked(Vec<Tp>),
    Lost(Vec<Tp>),
}

#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    /// (topic-partition, offset) of every record, in order.
    records: Vec<(Tp, i64)>,
    committed: BTreeMap<Tp, i64>,
    output: String,
}

impl Seen {
    fn current(&self) -> BTreeSet<Tp> {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Assigned(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Every assignment the member had from event `from` on: the whole
    /// assignments it reported, and the states its incremental callbacks
    /// imply (starting from the whole assignment it had at `from`).
    fn states_since(&self, from: usize) -> Vec<BTreeSet<Tp>> {
        let mut owned = Seen {
            events: self.events[..from].to_vec(),
            ..Seen::default()
        }
        .current();
        let mut states = vec![owned.clone()];
        for e in &self.events[from..] {
            match e {
                Event::Assigned(s) => {
                    owned = s.clone();
                }
                Event::Added(ps) => owned.extend(ps.iter().cloned()),
                Event::Revoked(ps) | Event::Lost(ps) => {
                    for p in ps {
                        owned.remove(p);
                    }
                }
            }
            states.push(owned.clone());
        }
        states
    }

    /// Asserts that from event `from` on (a group change: `change`) the
    /// member never had an empty assignment, had nothing revoked or lost,
    /// and still owns everything in `before`.
    fn assert_kept_through(
        &self,
        name: &str,
        from: usize,
        before: &BTreeSet<Tp>,
        change: &str,
        out: &str,
    ) {
        for state in self.states_since(from) {
            assert!(!state.is_empty(), "{name}: assignment became empty\n{out}");
        }
        assert!(
            self.taken_since(from).is_empty(),
            "{name}: partitions were revoked when {change}\n{out}"
        );
        assert!(
            self.current().is_superset(before),
            "{name}: lost partitions it had when {change}\n{out}"
        );
    }

    /// Partitions revoked or lost from event `from` on.
    fn taken_since(&self, from: usize) -> BTreeSet<Tp> {
        self.events[from..]
            .iter()
            .flat_map(|e| match e {
                Event::Revoked(ps) | Event::Lost(ps) => ps.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
}

fn parse_tps(words: &str) -> Vec<Tp> {
    words
        .split_whitespace()
        .filter_map(|w| {
            let (t, p) = w.rsplit_once(':')?;
            Some((t.to_string(), p.parse().ok()?))
        })
        .collect()
}

fn parse_line(s: &mut Seen, line: &str) {
    // The librdkafka member runs under libtest, which prints this before
    // the member's first line.
    let line = line
        .strip_prefix("test member_process ... ")
        .unwrap_or(line);
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "ASSIGNED" => s
            .events
            .push(Event::Assigned(parse_tps(rest).into_iter().collect())),
        "ADDED" => s.events.push(Event::Added(parse_tps(rest))),
        "REVOKED" => s.events.push(Event::Revoked(parse_tps(rest))),
        "LOST" => s.events.push(Event::Lost(parse_tps(rest))),
        "RECORD" | "COMMITTED" => {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let (Some(t), Some(p), Some(o)) = (
                w.first(),
                w.get(1).and_then(|x| x.parse::<i32>().ok()),
                w.get(2).and_then(|x| x.parse::<i64>().ok()),
            ) else {
                return;
            };
            let tp = (t.to_string(), p);
            if kind == "RECORD" {
                s.records.push((tp, o));
            } else {
                let e = s.committed.entry(tp).or_insert(o);
                *e = (*e).max(o);
            }
        }
        _ => {}
    }
}

/// One running group member process.
struct Member {
    name: String,
    child: Child,
    seen: Arc<Mutex<Seen>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Member {
    fn start(spec: &MemberSpec, name: &str) -> Member {
        let mut child = spec
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} member: {e}", spec.client.name()));
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
                parse_line(&mut s, line.trim());
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
            name: format!("{name} ({})", spec.client.name()),
            child,
            seen,
            readers: vec![out, err],
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    fn current(&self) -> BTreeSet<Tp> {
        self.with(Seen::current)
    }

    fn output(&self) -> String {
        self.with(|s| s.output.clone())
    }

    /// `(events, records)` seen so far: a point to look back from.
    fn mark(&self) -> (usize, usize) {
        self.with(|s| (s.events.len(), s.records.len()))
    }

    /// SIGKILL: the member disappears without leaving the group.
    fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin (the member leaves the group) and waits for it to exit 0.
    fn finish(mut self) {
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
        assert!(
            status.is_some_and(|s| s.success()),
            "member {} did not exit cleanly after stdin closed:\n{}",
            self.name,
            self.output()
        );
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

/// A broker the members can be pointed at and restarted cleanly on its data.
trait Broker {
    fn bootstrap(&self) -> String;
    fn restart(&mut self);
    /// SIGKILL and start again on the same data (and port).
    fn crash_restart(&mut self);
    /// The end of the broker's log, for failure messages.
    fn log_tail(&self) -> String;
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct Sluice(SluiceProcess);

impl Sluice {
    /// On a fixed free port (not port 0), so that members reconnect to the
    /// same address after a restart, as they do with the reference Kafka.
    fn start(settings: &[(&str, &str)]) -> Sluice {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listeners = format!("PLAINTEXT://127.0.0.1:{port}");
        let mut overrides = vec![
            ("offsets.topic.num.partitions", "5"),
            ("listeners", listeners.as_str()),
        ];
        overrides.extend_from_slice(settings);
        Sluice(
            SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &overrides).expect("sluice starts"),
        )
    }
}

impl Broker for Sluice {
    fn bootstrap(&self) -> String {
        self.0.bootstrap().to_string()
    }
    fn restart(&mut self) {
        let status = self.0.terminate().expect("SIGTERM");
        assert!(status.success(), "sluice exited with {status} on SIGTERM");
        self.0.restart().expect("sluice restarts");
    }
    fn crash_restart(&mut self) {
        // Kills the running process first.
        self.0.restart().expect("sluice restarts after kill -9");
    }
    fn log_tail(&self) -> String {
        tail(&self.0.output(), 80)
    }
}

/// The pinned Apache Kafka, via `clients/reference-kafka` in a temp dir with
/// the scenario's group settings in its `extra.properties`.
struct Reference {
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl Reference {
    fn script() -> PathBuf {
        root().join("clients/reference-kafka")
    }
    fn launch(dir: &std::path::Path) -> String {
        let out = Command::new(Self::script())
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
    /// `None` (skipped, said so) unless `SLUICE_TEST_REFERENCE_KAFKA` is set.
    fn start(settings: &[(&str, &str)]) -> Option<Reference> {
        if !env_on("SLUICE_TEST_REFERENCE_KAFKA") {
            eprintln!("skipped: set SLUICE_TEST_REFERENCE_KAFKA=1 to run against Apache Kafka");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let extra: String = settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(dir.path().join("extra.properties"), extra).unwrap();
        let bootstrap = Self::launch(dir.path());
        Some(Reference { dir, bootstrap })
    }
    fn stop(&self, how: &str) {
        let _ = Command::new(Self::script())
            .arg(how)
            .arg(self.dir.path())
            .status();
    }
}

impl Broker for Reference {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }
    fn restart(&mut self) {
        self.stop("stop");
        self.bootstrap = Self::launch(self.dir.path());
    }
    fn crash_restart(&mut self) {
        self.stop("kill");
        self.bootstrap = Self::launch(self.dir.path());
    }
    fn log_tail(&self) -> String {
        tail(
            &std::fs::read_to_string(self.dir.path().join("kafka.log")).unwrap_or_default(),
            80,
        )
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.stop("kill");
    }
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
        ))
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// `count` records into each of `partitions` partitions.
fn produce(bootstrap: &str, topic: &str, partitions: i32, count: i64) {
    let producer = producer(bootstrap);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for p in 0..partitions {
            for i in 0..count {
                let payload = format!("p{p}-{i}");
                producer
                    .send(
                        FutureRecord::<(), _>::to(topic)
                            .partition(p)
                            .payload(&payload),
                        Duration::from_secs(60),
                    )
                    .await
                    .expect("delivered");
            }
        }
    });
}

/// Keeps producing one record into every partition of `topic` per round
/// until dropped, so that members always have something to consume.
struct BackgroundProducer {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl BackgroundProducer {
    fn start(bootstrap: &str, topic: &str, partitions: i32) -> BackgroundProducer {
        let stop = Arc::new(AtomicBool::new(false));
        let (b, t, s) = (bootstrap.to_string(), topic.to_string(), stop.clone());
        let handle = thread::spawn(move || {
            let producer = producer(&b);
            let rt = tokio::runtime::Runtime::new().unwrap();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                rt.block_on(async {
                    for p in 0..partitions {
                        let payload = format!("bg-{i}");
                        producer
                            .send(
                                FutureRecord::<(), _>::to(&t).partition(p).payload(&payload),
                                Duration::from_secs(60),
                            )
                            .await
                            .expect("background record delivered");
                    }
                });
                i += 1;
                thread::sleep(Duration::from_millis(200));
            }
        });
        BackgroundProducer {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for BackgroundProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let r = h.join();
            if r.is_err() && !thread::panicking() {
                panic!("the background producer failed");
            }
        }
    }
}

fn wait_until(
    what: &str,
    members: &[&Member],
    broker: &dyn Broker,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            let outs: Vec<String> = members
                .iter()
                .map(|m| {
                    format!(
                        "--- member {} (now {:?}) ---\n{}",
                        m.name,
                        m.current(),
                        tail(&m.output(), 60)
                    )
                })
                .collect();
            panic!(
                "timed out waiting for {what}\n{}\n--- broker log (tail) ---\n{}",
                outs.join("\n"),
                broker.log_tail()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the members' assignments are a disjoint cover of `want` with
/// these share sizes and every record of `want` is committed.
fn wait_for_cover_and_commits(
    what: &str,
    refs: &[&Member],
    broker: &dyn Broker,
    want: &BTreeSet<Tp>,
    sizes: &[usize],
) {
    wait_until(what, refs, broker, || {
        is_cover(refs, want, sizes)
            && want
                .iter()
                .all(|tp| committed(refs).get(tp) == Some(&PER_PARTITION))
    });
}

fn all_partitions(topic: &str, partitions: i32) -> BTreeSet<Tp> {
    (0..partitions).map(|p| (topic.to_string(), p)).collect()
}

/// True when the members' current assignments are non-empty, pairwise
/// disjoint and together exactly `want`, with these sizes (sorted).
fn is_cover(members: &[&Member], want: &BTreeSet<Tp>, sizes: &[usize]) -> bool {
    let shares: Vec<BTreeSet<Tp>> = members.iter().map(|m| m.current()).collect();
    let total: usize = shares.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<Tp> = shares.iter().flatten().cloned().collect();
    let mut got: Vec<usize> = shares.iter().map(BTreeSet::len).collect();
    got.sort_unstable();
    shares.iter().all(|s| !s.is_empty()) && total == want.len() && &union == want && got == sizes
}

/// The group's committed offset of every partition (the highest any member
/// reported committing).
fn committed(members: &[&Member]) -> BTreeMap<Tp, i64> {
    let mut out = BTreeMap::new();
    for m in members {
        m.with(|s| {
            for (tp, o) in &s.committed {
                let e = out.entry(tp.clone()).or_insert(*o);
                *e = (*e).max(*o);
            }
        });
    }
    out
}

fn shares(members: &[&Member]) -> Vec<BTreeSet<Tp>> {
    members.iter().map(|m| m.current()).collect()
}

/// Starts `n` members of `spec`'s group and waits until they split the
/// topic 2/2/2 (or `sizes`) and have consumed and committed the first
/// `PER_PARTITION` records of every partition.
fn stable_group(
    spec: &MemberSpec,
    topic: &str,
    sizes: &[usize],
    broker: &dyn Broker,
) -> Vec<Member> {
    let specs = vec![spec.clone(); sizes.len()];
    stable_group_of(&specs, topic, sizes, broker)
}

/// [`stable_group`] with one member per spec (mixed clients, instance ids).
fn stable_group_of(
    specs: &[MemberSpec],
    topic: &str,
    sizes: &[usize],
    broker: &dyn Broker,
) -> Vec<Member> {
    let members: Vec<Member> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| Member::start(spec, &format!("m{i}")))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    let all = all_partitions(topic, PARTITIONS);
    wait_for_cover_and_commits(
        &format!("a disjoint cover of {topic} with shares {sizes:?}, every record committed"),
        &refs,
        broker,
        &all,
        sizes,
    );
    members
}

fn setup_topic(broker: &dyn Broker, topic: &str) {
    let b = broker.bootstrap();
    create_topic(&b, topic, PARTITIONS);
    produce(&b, topic, PARTITIONS, PER_PARTITION);
}

fn spec(client: Client, broker: &dyn Broker, group: &str, topic: &str) -> MemberSpec {
    MemberSpec {
        client,
        bootstrap: broker.bootstrap(),
        group: group.to_string(),
        subscription: Subscription::Topic(topic.to_string()),
        instance: None,
        assignor: None,
        classic: false,
    }
}

// ---------------------------------------------------------------- scenarios

/// (a) 3 members over 6 partitions: a disjoint cover, 2 each.
fn cover(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-cover-{}", client.name());
    setup_topic(broker, &topic);
    let spec = spec(client, broker, &format!("{topic}-g"), &topic);
    let members = stable_group(&spec, &topic, &[2, 2, 2], broker);
    let refs: Vec<&Member> = members.iter().collect();
    let final_shares = shares(&refs);
    eprintln!("{}: shares {final_shares:?}", client.name());
    // Every record of every partition was consumed by some member.
    let consumed: BTreeSet<(Tp, i64)> = members
        .iter()
        .flat_map(|m| m.with(|s| s.records.clone()))
        .collect();
    for tp in all_partitions(&topic, PARTITIONS) {
        for o in 0..PER_PARTITION {
            assert!(
                consumed.contains(&(tp.clone(), o)),
                "{tp:?} offset {o} was never consumed"
            );
        }
    }
    for m in members {
        m.finish();
    }
}

/// (b) a 4th member joins: only the partitions it takes move, nobody else
/// pauses.
fn join(client: Client, broker: &mut dyn Broker) {
    join_of([client; 4], broker);
}

/// [`join`] with members of both clients: Java, librdkafka, Java, then a
/// librdkafka member joins.
fn join_mixed(_: Client, broker: &mut dyn Broker) {
    join_of(
        [Client::Java, Client::Rdkafka, Client::Java, Client::Rdkafka],
        broker,
    );
}

fn join_of(clients: [Client; 4], broker: &mut dyn Broker) {
    let name = if clients.iter().all(|c| *c == clients[0]) {
        clients[0].name()
    } else {
        "mixed"
    };
    let client = name;
    let topic = format!("kip848-join-{name}");
    setup_topic(broker, &topic);
    let specs: Vec<MemberSpec> = clients
        .iter()
        .map(|c| spec(*c, broker, &format!("{topic}-g"), &topic))
        .collect();
    let mut members = stable_group_of(&specs[..3], &topic, &[2, 2, 2], broker);
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    let background = BackgroundProducer::start(&broker.bootstrap(), &topic, PARTITIONS);
    members.push(Member::start(&specs[3], "m3"));
    let refs: Vec<&Member> = members.iter().collect();
    let all = all_partitions(&topic, PARTITIONS);
    wait_until(
        "4 members with shares 2,2,1,1 covering the topic",
        &refs,
        broker,
        || is_cover(&refs, &all, &[1, 1, 2, 2]),
    );
    // Everyone keeps consuming every partition it owns.
    let now: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    wait_until(
        "every member to consume new records of every partition it owns",
        &refs,
        broker,
        || {
            members.iter().zip(&now).all(|(m, (_, r))| {
                m.with(|s| {
                    let fresh: BTreeSet<&Tp> = s.records[*r..].iter().map(|x| &x.0).collect();
                    s.current().iter().all(|tp| fresh.contains(tp))
                })
            })
        },
    );
    drop(background);

    let after: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    eprintln!("{client}: before {before:?} after {after:?}");
    let mut moved = BTreeSet::new();
    for (i, m) in members[..3].iter().enumerate() {
        let (events_mark, records_mark) = marks[i];
        let out = m.output();
        assert!(
            after[i].is_subset(&before[i]),
            "{}: an original member gained partitions ({:?} -> {:?}); only the new member's should move\n{out}",
            m.name,
            before[i],
            after[i]
        );
        moved.extend(before[i].difference(&after[i]).cloned());
        m.with(|s| {
            for state in s.states_since(events_mark) {
                assert!(
                    !state.is_empty(),
                    "{}: its assignment became empty while the 4th member joined\n{out}",
                    m.name
                );
            }
            let taken = s.taken_since(events_mark);
            let given: BTreeSet<Tp> = before[i].difference(&after[i]).cloned().collect();
            assert!(
                given.is_subset(&taken),
                "{}: gave up {given:?} without a revocation callback\n{out}",
                m.name
            );
            let kept: BTreeSet<&Tp> = after[i].iter().collect();
            assert!(
                taken.iter().all(|tp| !kept.contains(tp)),
                "{}: partitions it kept were revoked ({taken:?}, kept {kept:?})\n{out}",
                m.name
            );
            // Kept partitions: consumption continued right after where it
            // was, without re-reading anything (no revoke + re-fetch).
            for tp in &after[i] {
                let offsets: Vec<i64> = s.records[records_mark..]
                    .iter()
                    .filter(|r| &r.0 == tp)
                    .map(|r| r.1)
                    .collect();
                // Everything before PER_PARTITION was consumed and committed
                // before the mark; the background records follow.
                let start = PER_PARTITION;
                let expected: Vec<i64> = (start..start + offsets.len() as i64).collect();
                assert_eq!(
                    offsets, expected,
                    "{}: {tp:?} was not consumed continuously while the 4th member joined\n{out}",
                    m.name
                );
            }
        });
    }
    assert_eq!(
        after[3], moved,
        "the new member owns exactly the partitions the others gave up"
    );
    for m in members {
        m.finish();
    }
}

/// (c) a crashed member is fenced by the session timeout; its partitions
/// move to the survivors, who resume at its committed offsets.
fn crash(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-crash-{}", client.name());
    setup_topic(broker, &topic);
    let spec = spec(client, broker, &format!("{topic}-g"), &topic);
    let mut members = stable_group(&spec, &topic, &[2, 2, 2], broker);
    let dead = members.remove(0);
    let orphaned = dead.current();
    let survivors_before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    let mut dead = dead;
    dead.crash();
    produce(&broker.bootstrap(), &topic, PARTITIONS, 5);

    let refs: Vec<&Member> = members.iter().collect();
    let all = all_partitions(&topic, PARTITIONS);
    wait_until(
        "the survivors to take over the crashed member's partitions (3,3) and consume them",
        &refs,
        broker,
        || {
            is_cover(&refs, &all, &[3, 3])
                && all.iter().all(|tp| {
                    members.iter().zip(&marks).any(|(m, (_, r))| {
                        m.with(|s| {
                            s.records[*r..]
                                .iter()
                                .any(|x| &x.0 == tp && x.1 == PER_PARTITION + 4)
                        })
                    })
                })
        },
    );
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            for state in s.states_since(marks[i].0) {
                assert!(!state.is_empty(), "{}: assignment became empty\n{out}", m.name);
            }
            let taken = s.taken_since(marks[i].0);
            assert!(
                taken.is_disjoint(&survivors_before[i]),
                "{}: lost partitions it had ({taken:?}) when another member crashed\n{out}",
                m.name
            );
            // The crashed member's partitions resume at its committed offsets.
            for tp in orphaned.iter().filter(|tp| s.current().contains(*tp)) {
                let first = s.records[marks[i].1..]
                    .iter()
                    .find(|r| &r.0 == tp)
                    .map(|r| r.1);
                assert_eq!(
                    first,
                    Some(PER_PARTITION),
                    "{}: {tp:?} of the crashed member did not resume at its committed offset\n{out}",
                    m.name
                );
            }
        });
    }
    eprintln!(
        "{}: crashed member had {orphaned:?}; survivors now {:?}",
        client.name(),
        shares(&refs)
    );
    for m in members {
        m.finish();
    }
}

/// (d) offsets committed by the group survive a broker restart.
fn restart(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-restart-{}", client.name());
    setup_topic(broker, &topic);
    let group = format!("{topic}-g");
    let members = stable_group(
        &spec(client, broker, &group, &topic),
        &topic,
        &[3, 3],
        broker,
    );
    for m in members {
        m.finish();
    }
    broker.restart();
    produce(&broker.bootstrap(), &topic, PARTITIONS, 1);
    let m = Member::start(&spec(client, broker, &group, &topic), "after-restart");
    let all = all_partitions(&topic, PARTITIONS);
    wait_until(
        "the new member to consume the new record of every partition",
        &[&m],
        broker,
        || {
            m.with(|s| {
                let consumed: BTreeSet<&Tp> = s.records.iter().map(|r| &r.0).collect();
                all.iter().all(|tp| consumed.contains(tp))
            })
        },
    );
    assert_eq!(m.current(), all, "a lone member owns every partition");
    let out = m.output();
    m.with(|s| {
        for tp in &all {
            let offsets: Vec<i64> = s
                .records
                .iter()
                .filter(|r| &r.0 == tp)
                .map(|r| r.1)
                .collect();
            assert_eq!(
                offsets,
                vec![PER_PARTITION],
                "{tp:?}: the member did not resume right after the committed offset\n{out}"
            );
        }
    });
    m.finish();
}

/// (e) a regex subscription picks up a new matching topic without the
/// members stopping.
fn regex(client: Client, broker: &mut dyn Broker) {
    let prefix = format!("kip848-re-{}-", client.name());
    let (a, b_topic) = (format!("{prefix}a"), format!("{prefix}b"));
    let other = format!("kip848-other-{}", client.name());
    let bootstrap = broker.bootstrap();
    for t in [&a, &other] {
        create_topic(&bootstrap, t, 3);
        produce(&bootstrap, t, 3, PER_PARTITION);
    }
    let spec = MemberSpec {
        client,
        bootstrap: bootstrap.clone(),
        group: format!("{prefix}g"),
        subscription: Subscription::Prefix(prefix.clone()),
        instance: None,
        assignor: None,
        classic: false,
    };
    let members: Vec<Member> = (0..2)
        .map(|i| Member::start(&spec, &format!("m{i}")))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    let topic_a = all_partitions(&a, 3);
    wait_for_cover_and_commits(
        "2 members to split the matching topic (1,2) and commit its records",
        &refs,
        broker,
        &topic_a,
        &[1, 2],
    );
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();

    let background = BackgroundProducer::start(&bootstrap, &a, 3);
    create_topic(&bootstrap, &b_topic, 3);
    produce(&bootstrap, &b_topic, 3, 5);
    let both: BTreeSet<Tp> = topic_a
        .union(&all_partitions(&b_topic, 3))
        .cloned()
        .collect();
    wait_until(
        "the members to add the new matching topic (3,3) and consume it",
        &refs,
        broker,
        || {
            is_cover(&refs, &both, &[3, 3])
                && all_partitions(&b_topic, 3).iter().all(|tp| {
                    members
                        .iter()
                        .any(|m| m.with(|s| s.records.iter().any(|r| &r.0 == tp && r.1 == 4)))
                })
        },
    );
    drop(background);
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            s.assert_kept_through(
                &m.name,
                marks[i].0,
                &before[i],
                "a matching topic appeared",
                &out,
            );
            for state in s.states_since(0) {
                assert!(
                    state.iter().all(|tp| tp.0 != other),
                    "{}: got the non-matching topic {other}\n{out}",
                    m.name
                );
            }
        });
    }
    eprintln!("{}: shares {:?}", client.name(), shares(&refs));
    for m in members {
        m.finish();
    }
}

/// (f) static membership: a member with a `group.instance.id` that closes
/// and comes back (a new process with the same instance id) gets the same
/// partitions back and resumes at its commits; the other members' assignments
/// never change.
fn static_rejoin(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-static-{}", client.name());
    setup_topic(broker, &topic);
    let specs: Vec<MemberSpec> = (0..3)
        .map(|i| MemberSpec {
            instance: Some(format!("{topic}-i{i}")),
            ..spec(client, broker, &format!("{topic}-g"), &topic)
        })
        .collect();
    let mut members = stable_group_of(&specs, &topic, &[2, 2, 2], broker);
    let leaving = members.remove(1);
    let had = leaving.current();
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    leaving.finish();
    produce(&broker.bootstrap(), &topic, PARTITIONS, 5);
    let back = Member::start(&specs[1], "m1-again");
    let mut all_refs: Vec<&Member> = members.iter().collect();
    all_refs.push(&back);
    let all = all_partitions(&topic, PARTITIONS);
    wait_until(
        "the static member to come back to its partitions and everyone to consume the new records",
        &all_refs,
        broker,
        || {
            is_cover(&all_refs, &all, &[2, 2, 2])
                && all.iter().all(|tp| {
                    all_refs.iter().any(|m| {
                        m.with(|s| {
                            s.records
                                .iter()
                                .any(|r| &r.0 == tp && r.1 == PER_PARTITION + 4)
                        })
                    })
                })
        },
    );
    let out = back.output();
    assert_eq!(
        back.current(),
        had,
        "the static member did not get its partitions back\n{out}"
    );
    back.with(|s| {
        for tp in &had {
            let first = s.records.iter().find(|r| &r.0 == tp).map(|r| r.1);
            assert_eq!(
                first,
                Some(PER_PARTITION),
                "{tp:?}: the static member did not resume at its committed offset\n{out}"
            );
        }
    });
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            for state in s.states_since(marks[i].0) {
                assert_eq!(
                    state, before[i],
                    "{}: its assignment changed while a static member restarted\n{out}",
                    m.name
                );
            }
            assert!(
                s.taken_since(marks[i].0).is_empty(),
                "{}: revocation\n{out}",
                m.name
            );
        });
    }
    eprintln!("{}: static member had and got back {had:?}", client.name());
    back.finish();
    for m in members {
        m.finish();
    }
}

/// (g) the group survives a broker restart under live members: its state
/// (members, epochs, assignments) is reloaded from `__consumer_offsets`, the
/// members carry on with the same partitions (no revocation, nothing lost)
/// and consume what arrives after the restart without re-reading.
fn live_restart(client: Client, broker: &mut dyn Broker) {
    live_restart_inner(client, broker, false);
}

/// [`live_restart`] with a kill -9 of the broker: what was written to
/// `__consumer_offsets` before the crash is all there is.
fn live_crash_restart(client: Client, broker: &mut dyn Broker) {
    live_restart_inner(client, broker, true);
}

fn live_restart_inner(client: Client, broker: &mut dyn Broker, crash: bool) {
    let topic = format!(
        "kip848-live{}-{}",
        if crash { "-crash" } else { "" },
        client.name()
    );
    setup_topic(broker, &topic);
    let spec = spec(client, broker, &format!("{topic}-g"), &topic);
    let members = stable_group(&spec, &topic, &[2, 2, 2], broker);
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    if crash {
        broker.crash_restart();
    } else {
        broker.restart();
    }
    produce(&broker.bootstrap(), &topic, PARTITIONS, 5);
    let refs: Vec<&Member> = members.iter().collect();
    let all = all_partitions(&topic, PARTITIONS);
    wait_until(
        "the members to consume what arrived after the broker restart",
        &refs,
        broker,
        || {
            is_cover(&refs, &all, &[2, 2, 2])
                && all.iter().all(|tp| {
                    refs.iter().any(|m| {
                        m.with(|s| {
                            s.records
                                .iter()
                                .any(|r| &r.0 == tp && r.1 == PER_PARTITION + 4)
                        })
                    })
                })
        },
    );
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            for state in s.states_since(marks[i].0) {
                assert_eq!(
                    state, before[i],
                    "{}: its assignment changed across the broker restart\n{out}",
                    m.name
                );
            }
            assert!(
                s.taken_since(marks[i].0).is_empty(),
                "{}: partitions revoked or lost across the broker restart\n{out}",
                m.name
            );
            for tp in &before[i] {
                let offsets: Vec<i64> = s.records[marks[i].1..]
                    .iter()
                    .filter(|r| &r.0 == tp)
                    .map(|r| r.1)
                    .collect();
                assert_eq!(
                    offsets,
                    (PER_PARTITION..PER_PARTITION + 5).collect::<Vec<_>>(),
                    "{}: {tp:?} after the broker restart\n{out}",
                    m.name
                );
            }
        });
    }
    eprintln!("{}: kept {before:?} across the restart", client.name());
    for m in members {
        m.finish();
    }
}

/// (j) a member leaves (closes): its partitions go to the others, who
/// resume at its commits; the others keep what they had.
fn leave(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-leave-{}", client.name());
    setup_topic(broker, &topic);
    let spec = spec(client, broker, &format!("{topic}-g"), &topic);
    let mut members = stable_group(&spec, &topic, &[2, 2, 2], broker);
    let leaving = members.remove(2);
    let freed = leaving.current();
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    leaving.finish();
    produce(&broker.bootstrap(), &topic, PARTITIONS, 5);
    let refs: Vec<&Member> = members.iter().collect();
    let all = all_partitions(&topic, PARTITIONS);
    wait_until(
        "the remaining members to take over the partitions of the one that left (3,3)",
        &refs,
        broker,
        || {
            is_cover(&refs, &all, &[3, 3])
                && all.iter().all(|tp| {
                    refs.iter().any(|m| {
                        m.with(|s| {
                            s.records
                                .iter()
                                .any(|r| &r.0 == tp && r.1 == PER_PARTITION + 4)
                        })
                    })
                })
        },
    );
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            s.assert_kept_through(&m.name, marks[i].0, &before[i], "another member left", &out);
            for tp in s.current().intersection(&freed) {
                let first = s.records[marks[i].1..]
                    .iter()
                    .find(|r| &r.0 == tp)
                    .map(|r| r.1);
                assert_eq!(
                    first,
                    Some(PER_PARTITION),
                    "{}: {tp:?} did not resume at the committed offset\n{out}",
                    m.name
                );
            }
        });
    }
    for m in members {
        m.finish();
    }
}

/// (k) a topic matching the members' regex is deleted: its partitions leave
/// their assignments, the remaining topic is split 1,2 and consumed, and a
/// partition a member keeps is never revoked. librdkafka only: the Java
/// client 4.1.2 on Apache Kafka left a member with an empty assignment for
/// minutes after the deletion (fetch errors for the deleted partitions), so
/// there is no reference behaviour to hold Sluice to.
fn topic_deleted(client: Client, broker: &mut dyn Broker) {
    let prefix = format!("kip848-del-{}-", client.name());
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let bootstrap = broker.bootstrap();
    let mut both = BTreeSet::new();
    for t in [&a, &b] {
        create_topic(&bootstrap, t, 3);
        produce(&bootstrap, t, 3, PER_PARTITION);
        both.extend(all_partitions(t, 3));
    }
    let spec = MemberSpec {
        client,
        bootstrap: bootstrap.clone(),
        group: format!("{prefix}g"),
        subscription: Subscription::Prefix(prefix.clone()),
        instance: None,
        assignor: None,
        classic: false,
    };
    let members: Vec<Member> = (0..2)
        .map(|i| Member::start(&spec, &format!("m{i}")))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for_cover_and_commits(
        "2 members to split both matching topics (3,3) and commit every record",
        &refs,
        broker,
        &both,
        &[3, 3],
    );
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    let background = BackgroundProducer::start(&bootstrap, &a, 3);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in rt
        .block_on(admin.delete_topics(
            &[b.as_str()],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
        ))
        .expect("delete_topics")
    {
        r.expect("topic deleted");
    }
    let topic_a = all_partitions(&a, 3);
    // Where each member was once the deleted topic had left the assignments.
    let mut since: Option<Vec<usize>> = None;
    wait_until(
        "the deleted topic's partitions to leave the assignments and the rest to be consumed",
        &refs,
        broker,
        || {
            if !(is_cover(&refs, &topic_a, &[1, 2]) || is_cover(&refs, &topic_a, &[3])) {
                return false;
            }
            let marks_now = since
                .get_or_insert_with(|| members.iter().map(|m| m.mark().1).collect())
                .clone();
            members.iter().zip(&marks_now).all(|(m, r)| {
                m.with(|s| {
                    s.current()
                        .iter()
                        .all(|tp| s.records[*r..].iter().any(|x| &x.0 == tp))
                })
            })
        },
    );
    drop(background);
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            // What it had of the remaining topic and still has was never revoked
            // (a member that had only the deleted topic may be given some).
            let kept: BTreeSet<Tp> = before[i].intersection(&s.current()).cloned().collect();
            assert!(
                s.taken_since(marks[i].0).is_disjoint(&kept),
                "{}: partitions of {a} were revoked when {b} was deleted\n{out}",
                m.name
            );
        });
    }
    eprintln!("{}: {before:?} -> {:?}", client.name(), shares(&refs));
    for m in members {
        m.finish();
    }
}

/// (l) `group.consumer.max.size=2`: a third member is refused with
/// GROUP_MAX_SIZE_REACHED (the client reports it) and gets nothing; the two
/// members keep their partitions.
fn max_size(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-max-{}", client.name());
    setup_topic(broker, &topic);
    let spec = spec(client, broker, &format!("{topic}-g"), &topic);
    let members = stable_group(&spec, &topic, &[3, 3], broker);
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();
    let third = Member::start(&spec, "m2");
    let mut refs: Vec<&Member> = members.iter().collect();
    refs.push(&third);
    wait_until(
        "the third member to report GROUP_MAX_SIZE_REACHED",
        &refs,
        broker,
        || third.output().contains("GroupMaxSizeReached"),
    );
    assert!(
        third.with(|s| s.states_since(0).iter().all(BTreeSet::is_empty)),
        "the refused member got partitions:\n{}",
        third.output()
    );
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            for state in s.states_since(marks[i].0) {
                assert_eq!(state, before[i], "{}: assignment changed\n{out}", m.name);
            }
        });
    }
    drop(third);
    for m in members {
        m.finish();
    }
}

/// (m) a second live member with an instance id already in use is refused
/// with UNRELEASED_INSTANCE_ID; the first keeps its partitions.
fn unreleased_instance(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-dup-{}", client.name());
    setup_topic(broker, &topic);
    let spec = MemberSpec {
        instance: Some(format!("{topic}-i0")),
        ..spec(client, broker, &format!("{topic}-g"), &topic)
    };
    let members = stable_group(&spec, &topic, &[6], broker);
    let before = members[0].current();
    let mark = members[0].mark();
    let twin = Member::start(&spec, "twin");
    let refs = [&members[0], &twin];
    wait_until(
        "the second member with the same instance id to report UNRELEASED_INSTANCE_ID",
        &refs,
        broker,
        || twin.output().contains("UnreleasedInstanceId"),
    );
    assert!(
        twin.with(|s| s.states_since(0).iter().all(BTreeSet::is_empty)),
        "the refused member got partitions:\n{}",
        twin.output()
    );
    let out = members[0].output();
    members[0].with(|s| {
        for state in s.states_since(mark.0) {
            assert_eq!(
                state, before,
                "the first member's assignment changed\n{out}"
            );
        }
    });
    drop(twin);
    for m in members {
        m.finish();
    }
}

/// (h) `group.remote.assignor=range` over two 6-partition topics: 3
/// members get 4 partitions each, co-partitioned (the same partition numbers
/// of both topics; which numbers depends on the join order, as range is
/// sticky), and the group's assignor is shown as `range`.
fn range_assignor(client: Client, broker: &mut dyn Broker) {
    let prefix = format!("kip848-range-{}-", client.name());
    let bootstrap = broker.bootstrap();
    let mut all = BTreeSet::new();
    for t in ["a", "b"] {
        let topic = format!("{prefix}{t}");
        create_topic(&bootstrap, &topic, PARTITIONS);
        produce(&bootstrap, &topic, PARTITIONS, PER_PARTITION);
        all.extend(all_partitions(&topic, PARTITIONS));
    }
    let group = format!("{prefix}g");
    let spec = MemberSpec {
        client,
        bootstrap: bootstrap.clone(),
        group: group.clone(),
        subscription: Subscription::Prefix(prefix.clone()),
        instance: None,
        assignor: Some("range"),
        classic: false,
    };
    let members: Vec<Member> = (0..3)
        .map(|i| Member::start(&spec, &format!("m{i}")))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for_cover_and_commits(
        "3 members with 4 partitions each of the two topics, every record committed",
        &refs,
        broker,
        &all,
        &[4, 4, 4],
    );
    for share in shares(&refs) {
        let numbers = |t: &str| -> BTreeSet<i32> {
            share
                .iter()
                .filter(|tp| tp.0 == format!("{prefix}{t}"))
                .map(|tp| tp.1)
                .collect()
        };
        assert_eq!(
            numbers("a"),
            numbers("b"),
            "range co-partitions topics with the same partition count: {share:?}"
        );
    }
    if Client::Java.ready() {
        let state = cgc(&bootstrap, &["--describe", "--group", &group, "--state"]);
        let header = &state[0];
        let row = state
            .iter()
            .find(|l| l.first() == Some(&group))
            .unwrap_or_else(|| panic!("--describe --state: {state:?}"));
        let i = header
            .iter()
            .position(|h| h == "ASSIGNMENT-STRATEGY")
            .expect("ASSIGNMENT-STRATEGY column");
        assert_eq!(row.get(i).map(String::as_str), Some("range"), "{state:?}");
    }
    eprintln!("{}: range shares {:?}", client.name(), shares(&refs));
    for m in members {
        m.finish();
    }
}

/// (i) partitions added to the subscribed topic: the new ones are assigned
/// without any member stopping (no revocation, no empty assignment, kept
/// partitions consumed continuously); 2 members go from 2,2 to 3,3.
fn new_partitions(client: Client, broker: &mut dyn Broker) {
    let topic = format!("kip848-grow-{}", client.name());
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &topic, 4);
    produce(&bootstrap, &topic, 4, PER_PARTITION);
    let spec = spec(client, broker, &format!("{topic}-g"), &topic);
    let members: Vec<Member> = (0..2)
        .map(|i| Member::start(&spec, &format!("m{i}")))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    let first = all_partitions(&topic, 4);
    wait_for_cover_and_commits(
        "2 members to split 4 partitions (2,2) and commit every record",
        &refs,
        broker,
        &first,
        &[2, 2],
    );
    let before: Vec<BTreeSet<Tp>> = members.iter().map(Member::current).collect();
    let marks: Vec<(usize, usize)> = members.iter().map(Member::mark).collect();

    let background = BackgroundProducer::start(&bootstrap, &topic, 4);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in rt
        .block_on(admin.create_partitions(
            &[NewPartitions::new(&topic, 6)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
        ))
        .expect("create_partitions")
    {
        r.expect("partitions created");
    }
    {
        let producer = producer(&bootstrap);
        rt.block_on(async {
            for p in 4..6 {
                for i in 0..5 {
                    producer
                        .send(
                            FutureRecord::<(), _>::to(&topic)
                                .partition(p)
                                .payload(&format!("new-{i}")),
                            Duration::from_secs(60),
                        )
                        .await
                        .expect("delivered to a new partition");
                }
            }
        });
    }
    let all = all_partitions(&topic, 6);
    wait_until(
        "the new partitions to be assigned (3,3) and consumed",
        &refs,
        broker,
        || {
            is_cover(&refs, &all, &[3, 3])
                && (4..6).all(|p| {
                    refs.iter()
                        .any(|m| m.with(|s| s.records.iter().any(|r| r.0 .1 == p && r.1 == 4)))
                })
        },
    );
    drop(background);
    for (i, m) in members.iter().enumerate() {
        let out = m.output();
        m.with(|s| {
            s.assert_kept_through(
                &m.name,
                marks[i].0,
                &before[i],
                "partitions were added",
                &out,
            );
            for tp in &before[i] {
                let offsets: Vec<i64> = s.records[marks[i].1..]
                    .iter()
                    .filter(|r| &r.0 == tp)
                    .map(|r| r.1)
                    .collect();
                let expected: Vec<i64> =
                    (PER_PARTITION..PER_PARTITION + offsets.len() as i64).collect();
                assert_eq!(
                    offsets, expected,
                    "{}: {tp:?} was not consumed continuously while partitions were added\n{out}",
                    m.name
                );
            }
        });
    }
    eprintln!("{}: {before:?} -> {:?}", client.name(), shares(&refs));
    for m in members {
        m.finish();
    }
}

// ------------------------------------------------- kafka-consumer-groups

/// Runs ConsumerGroupCommand; returns its stdout as lines of columns.
fn cgc(bootstrap: &str, args: &[&str]) -> Vec<Vec<String>> {
    let out = Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            root().join("clients/java/log4j.properties").display()
        ))
        .arg("-cp")
        .arg(root().join(".cache/kafka/lib/*"))
        .arg("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-consumer-groups {args:?} failed against {bootstrap}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|cols| !cols.is_empty())
        .collect()
}

/// Two librdkafka members of a consumer-protocol group on a 6-partition
/// topic; returns `--list --type`, `--describe --state` and `--describe
/// --members` with the broker-specific columns (coordinator address, member
/// ids) masked and rows sorted.
fn describe_consumer_group(broker: &dyn Broker) -> Vec<(String, Vec<Vec<String>>)> {
    let topic = "kip848-cli";
    let group = "kip848-cli-g";
    setup_topic(broker, topic);
    let spec = spec(Client::Rdkafka, broker, group, topic);
    let members = stable_group(&spec, topic, &[3, 3], broker);
    // A classic group on the same topic at the same time.
    let classic = Member::start(
        &MemberSpec {
            group: format!("{group}-classic"),
            classic: true,
            ..spec.clone()
        },
        "classic",
    );
    let all = all_partitions(topic, PARTITIONS);
    wait_until(
        "the classic group's member to own and consume every partition",
        &[&classic],
        broker,
        || {
            classic.current() == all
                && classic.with(|s| {
                    all.iter()
                        .all(|tp| s.committed.get(tp) == Some(&PER_PARTITION))
                })
        },
    );
    let b = broker.bootstrap();
    let run = |name: &str, args: &[&str]| {
        let mut lines = cgc(&b, args);
        for l in &mut lines {
            for c in l.iter_mut() {
                // COORDINATOR (ID) is host:port (id); member ids are random.
                if c.starts_with("127.0.0.1:") {
                    *c = "<host:port>".into();
                }
            }
            if l.first().is_some_and(|c| c == group) {
                // CONSUMER-ID
                match name {
                    "describe --members" | "describe --members --verbose" if l.len() > 1 => {
                        l[1] = "<member-id>".into()
                    }
                    "describe" if l.len() > 6 => l[6] = "<member-id>".into(),
                    _ => {}
                }
            }
        }
        if lines.len() > 1 {
            lines[1..].sort();
        }
        (name.to_string(), lines)
    };
    let mut out = vec![
        run("list --type", &["--list", "--type"]),
        run(
            "describe --state",
            &["--describe", "--group", group, "--state"],
        ),
        run(
            "describe --members",
            &["--describe", "--group", group, "--members"],
        ),
        run("describe", &["--describe", "--group", group]),
        run(
            "describe --members --verbose",
            &["--describe", "--group", group, "--members", "--verbose"],
        ),
        run(
            "describe --state (classic)",
            &[
                "--describe",
                "--group",
                &format!("{group}-classic"),
                "--state",
            ],
        ),
    ];
    for m in members {
        m.finish();
    }
    classic.finish();
    // Once every member left: an empty consumer group whose offsets can be
    // reset and which can be deleted.
    out.extend([
        run(
            "describe --state (empty)",
            &["--describe", "--group", group, "--state"],
        ),
        run(
            "reset",
            &[
                "--reset-offsets",
                "--to-earliest",
                "--execute",
                "--group",
                group,
                "--topic",
                topic,
            ],
        ),
        run("delete", &["--delete", "--group", group]),
        run("list after delete", &["--list"]),
    ]);
    out
}

/// What must hold on either broker: the group is listed with type Consumer,
/// described Stable with the uniform assignor and 2 members of 3 partitions,
/// one row per partition with lag 0; after the members left it is Empty, its
/// offsets reset to 0 and it is deleted.
fn check_describe(out: &[(String, Vec<Vec<String>>)]) {
    let show = |lines: &Vec<Vec<String>>| {
        lines
            .iter()
            .map(|l| l.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let find = |name: &str| &out.iter().find(|(n, _)| n == name).unwrap().1;
    let list = find("list --type");
    assert!(
        list.iter().any(|l| l == &["kip848-cli-g", "Consumer"])
            && list
                .iter()
                .any(|l| l == &["kip848-cli-g-classic", "Classic"]),
        "--list --type:\n{}",
        show(list)
    );
    let state = find("describe --state");
    let header = &state[0];
    let row = state
        .iter()
        .find(|l| l.first().is_some_and(|c| c == "kip848-cli-g"))
        .unwrap_or_else(|| panic!("--describe --state:\n{}", show(state)));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .and_then(|i| row.get(i))
            .cloned()
    };
    assert_eq!(
        col("ASSIGNMENT-STRATEGY").as_deref(),
        Some("uniform"),
        "{}",
        show(state)
    );
    assert_eq!(col("STATE").as_deref(), Some("Stable"), "{}", show(state));
    assert_eq!(col("#MEMBERS").as_deref(), Some("2"), "{}", show(state));
    let members = find("describe --members");
    let rows: Vec<_> = members
        .iter()
        .filter(|l| l.first().is_some_and(|c| c == "kip848-cli-g"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", show(members));
    assert!(
        rows.iter().all(|r| r.contains(&"3".to_string())),
        "{}",
        show(members)
    );
    // One row per partition, everything committed (lag 0), each owned by a member.
    let offsets = find("describe");
    let rows: Vec<_> = offsets
        .iter()
        .filter(|l| l.first().is_some_and(|c| c == "kip848-cli-g"))
        .collect();
    assert_eq!(rows.len(), PARTITIONS as usize, "{}", show(offsets));
    for (p, r) in rows.iter().enumerate() {
        let p = p.to_string();
        let want = [
            "kip848-cli-g",
            "kip848-cli",
            &p,
            "10",
            "10",
            "0",
            "<member-id>",
            "/127.0.0.1",
            "rdkafka",
        ];
        assert_eq!(r.as_slice(), want.as_slice(), "{}", show(offsets));
    }
    let empty = find("describe --state (empty)");
    assert!(
        empty
            .iter()
            .any(|l| l.first().is_some_and(|c| c == "kip848-cli-g")
                && l.ends_with(&["Empty".to_string(), "0".to_string()])),
        "after every member left:\n{}",
        show(empty)
    );
    let reset = find("reset");
    let rows: Vec<_> = reset
        .iter()
        .filter(|l| l.first().is_some_and(|c| c == "kip848-cli-g"))
        .collect();
    assert_eq!(rows.len(), PARTITIONS as usize, "{}", show(reset));
    assert!(
        rows.iter().all(|r| r.last().is_some_and(|o| o == "0")),
        "{}",
        show(reset)
    );
    let deleted = find("delete");
    assert!(
        deleted
            .iter()
            .any(|l| l.join(" ").contains("was successful")),
        "{}",
        show(deleted)
    );
    let list = find("list after delete");
    assert!(
        !list.iter().any(|l| l == &["kip848-cli-g"]),
        "{}",
        show(list)
    );
}

// ------------------------------------------------- the rdkafka member

struct MemberContext;

impl ClientContext for MemberContext {}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.trim_end());
    let _ = out.flush();
}

fn words(tpl: &TopicPartitionList) -> String {
    let mut w: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}:{}", e.topic(), e.partition()))
        .collect();
    w.sort();
    w.join(" ")
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        match r {
            Rebalance::Assign(tpl) if tpl.count() > 0 => say(format!("ADDED {}", words(tpl))),
            Rebalance::Revoke(tpl) if tpl.count() > 0 => {
                let kind = if c.assignment_lost() {
                    "LOST"
                } else {
                    "REVOKED"
                };
                say(format!("{kind} {}", words(tpl)));
            }
            Rebalance::Error(e) => say(format!("REBALANCE_ERROR {e}")),
            _ => {}
        }
    }
    fn post_rebalance(&self, c: &BaseConsumer<Self>, _r: &Rebalance<'_>) {
        if let Ok(a) = c.assignment() {
            say(format!("ASSIGNED {}", words(&a)));
        }
    }
}

/// Not a test: the librdkafka group member process the scenarios start
/// (this test binary re-run with `--ignored --exact member_process`),
/// configured by `KIP848_BOOTSTRAP`, `KIP848_GROUP`, `KIP848_TOPIC` (a
/// topic, or a regex starting with `^`) and optionally `KIP848_INSTANCE`
/// (`group.instance.id`), `KIP848_ASSIGNOR` (`group.remote.assignor`) and
/// `KIP848_PROTOCOL` (`classic` for a classic-group member). Leaves the group when stdin closes.
#[test]
#[ignore = "entry point of the librdkafka member processes the other tests start"]
fn member_process() {
    let Ok(bootstrap) = std::env::var("KIP848_BOOTSTRAP") else {
        return;
    };
    let group = std::env::var("KIP848_GROUP").expect("KIP848_GROUP");
    let topic = std::env::var("KIP848_TOPIC").expect("KIP848_TOPIC");
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set(
            "group.protocol",
            std::env::var("KIP848_PROTOCOL").unwrap_or_else(|_| "consumer".into()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    if let Ok(instance) = std::env::var("KIP848_INSTANCE") {
        config.set("group.instance.id", instance);
    }
    if let Ok(assignor) = std::env::var("KIP848_ASSIGNOR") {
        config.set("group.remote.assignor", assignor);
    }
    let consumer: BaseConsumer<MemberContext> =
        config.create_with_context(MemberContext).expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut last = String::new();
    while !stop.load(Ordering::Relaxed) {
        let mut done: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut wait = Duration::from_millis(200);
        while done.len() < 500 {
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    say(format!(
                        "RECORD {} {} {}",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    ));
                    done.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                }
                Some(Err(e)) => say(format!("ERROR {e}")),
                None => break,
            }
            wait = Duration::ZERO;
        }
        if let Ok(a) = consumer.assignment() {
            let now = words(&a);
            if now != last {
                say(format!("ASSIGNED {now}"));
                last = now;
            }
        }
        if !done.is_empty() {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {
                    for ((t, p), next) in &done {
                        say(format!("COMMITTED {t} {p} {next}"));
                    }
                }
                Err(e) => say(format!("COMMIT_FAILED {e}")),
            }
        }
    }
    drop(consumer);
    say("LEFT".to_string());
}

// ------------------------------------------------------------------ tests

fn on_sluice(client: Client, scenario: fn(Client, &mut dyn Broker)) {
    on_sluice_with(client, scenario, GROUP_SETTINGS);
}

fn on_reference(client: Client, scenario: fn(Client, &mut dyn Broker)) {
    on_reference_with(client, scenario, GROUP_SETTINGS);
}

fn on_sluice_with(
    client: Client,
    scenario: fn(Client, &mut dyn Broker),
    settings: &[(&str, &str)],
) {
    if !client.ready() {
        return;
    }
    let mut broker = Sluice::start(settings);
    scenario(client, &mut broker);
}

fn on_reference_with(
    client: Client,
    scenario: fn(Client, &mut dyn Broker),
    settings: &[(&str, &str)],
) {
    if !client.ready() {
        return;
    }
    let Some(mut broker) = Reference::start(settings) else {
        return;
    };
    scenario(client, &mut broker);
}

#[test]
fn rdkafka_three_members_cover_six_partitions() {
    on_sluice(Client::Rdkafka, cover);
}

#[test]
fn rdkafka_three_members_cover_six_partitions_reference_kafka() {
    on_reference(Client::Rdkafka, cover);
}

#[test]
fn java_three_members_cover_six_partitions() {
    on_sluice(Client::Java, cover);
}

#[test]
fn java_three_members_cover_six_partitions_reference_kafka() {
    on_reference(Client::Java, cover);
}

#[test]
fn rdkafka_fourth_member_takes_only_its_share() {
    on_sluice(Client::Rdkafka, join);
}

#[test]
fn rdkafka_fourth_member_takes_only_its_share_reference_kafka() {
    on_reference(Client::Rdkafka, join);
}

#[test]
fn java_fourth_member_takes_only_its_share() {
    on_sluice(Client::Java, join);
}

#[test]
fn java_fourth_member_takes_only_its_share_reference_kafka() {
    on_reference(Client::Java, join);
}

#[test]
fn rdkafka_crashed_member_partitions_move_after_session_timeout() {
    on_sluice(Client::Rdkafka, crash);
}

#[test]
fn rdkafka_crashed_member_partitions_move_after_session_timeout_reference_kafka() {
    on_reference(Client::Rdkafka, crash);
}

#[test]
fn java_crashed_member_partitions_move_after_session_timeout() {
    on_sluice(Client::Java, crash);
}

#[test]
fn java_crashed_member_partitions_move_after_session_timeout_reference_kafka() {
    on_reference(Client::Java, crash);
}

#[test]
fn rdkafka_committed_offsets_survive_broker_restart() {
    on_sluice(Client::Rdkafka, restart);
}

#[test]
fn rdkafka_committed_offsets_survive_broker_restart_reference_kafka() {
    on_reference(Client::Rdkafka, restart);
}

#[test]
fn java_committed_offsets_survive_broker_restart() {
    on_sluice(Client::Java, restart);
}

#[test]
fn java_committed_offsets_survive_broker_restart_reference_kafka() {
    on_reference(Client::Java, restart);
}

#[test]
fn rdkafka_regex_subscription_picks_up_new_topic() {
    on_sluice(Client::Rdkafka, regex);
}

#[test]
fn rdkafka_regex_subscription_picks_up_new_topic_reference_kafka() {
    on_reference(Client::Rdkafka, regex);
}

#[test]
fn java_regex_subscription_picks_up_new_topic() {
    on_sluice(Client::Java, regex);
}

#[test]
fn java_regex_subscription_picks_up_new_topic_reference_kafka() {
    on_reference(Client::Java, regex);
}

#[test]
fn mixed_clients_fourth_member_takes_only_its_share() {
    on_sluice(Client::Java, join_mixed);
}

#[test]
fn mixed_clients_fourth_member_takes_only_its_share_reference_kafka() {
    on_reference(Client::Java, join_mixed);
}

#[test]
fn rdkafka_static_member_gets_its_partitions_back() {
    on_sluice_with(Client::Rdkafka, static_rejoin, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_static_member_gets_its_partitions_back_reference_kafka() {
    on_reference_with(Client::Rdkafka, static_rejoin, LONG_SESSION_SETTINGS);
}

#[test]
fn java_static_member_gets_its_partitions_back() {
    on_sluice_with(Client::Java, static_rejoin, LONG_SESSION_SETTINGS);
}

#[test]
fn java_static_member_gets_its_partitions_back_reference_kafka() {
    on_reference_with(Client::Java, static_rejoin, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_group_survives_broker_restart_under_live_members() {
    on_sluice_with(Client::Rdkafka, live_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_group_survives_broker_restart_under_live_members_reference_kafka() {
    on_reference_with(Client::Rdkafka, live_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn java_group_survives_broker_restart_under_live_members() {
    on_sluice_with(Client::Java, live_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn java_group_survives_broker_restart_under_live_members_reference_kafka() {
    on_reference_with(Client::Java, live_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_range_assignor_co_partitions_topics() {
    on_sluice(Client::Rdkafka, range_assignor);
}

#[test]
fn rdkafka_range_assignor_co_partitions_topics_reference_kafka() {
    on_reference(Client::Rdkafka, range_assignor);
}

#[test]
fn java_range_assignor_co_partitions_topics() {
    on_sluice(Client::Java, range_assignor);
}

#[test]
fn java_range_assignor_co_partitions_topics_reference_kafka() {
    on_reference(Client::Java, range_assignor);
}

#[test]
fn rdkafka_new_partitions_are_assigned_without_stopping() {
    on_sluice(Client::Rdkafka, new_partitions);
}

#[test]
fn rdkafka_new_partitions_are_assigned_without_stopping_reference_kafka() {
    on_reference(Client::Rdkafka, new_partitions);
}

#[test]
fn java_new_partitions_are_assigned_without_stopping() {
    on_sluice(Client::Java, new_partitions);
}

#[test]
fn java_new_partitions_are_assigned_without_stopping_reference_kafka() {
    on_reference(Client::Java, new_partitions);
}

#[test]
fn rdkafka_group_survives_broker_kill_9_under_live_members() {
    on_sluice_with(Client::Rdkafka, live_crash_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_group_survives_broker_kill_9_under_live_members_reference_kafka() {
    on_reference_with(Client::Rdkafka, live_crash_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn java_group_survives_broker_kill_9_under_live_members() {
    on_sluice_with(Client::Java, live_crash_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn java_group_survives_broker_kill_9_under_live_members_reference_kafka() {
    on_reference_with(Client::Java, live_crash_restart, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_leaving_member_partitions_move() {
    on_sluice(Client::Rdkafka, leave);
}

#[test]
fn rdkafka_leaving_member_partitions_move_reference_kafka() {
    on_reference(Client::Rdkafka, leave);
}

#[test]
fn java_leaving_member_partitions_move() {
    on_sluice(Client::Java, leave);
}

#[test]
fn java_leaving_member_partitions_move_reference_kafka() {
    on_reference(Client::Java, leave);
}

#[test]
fn rdkafka_deleted_topic_leaves_the_assignment() {
    on_sluice(Client::Rdkafka, topic_deleted);
}

#[test]
fn rdkafka_deleted_topic_leaves_the_assignment_reference_kafka() {
    on_reference(Client::Rdkafka, topic_deleted);
}

#[test]
fn rdkafka_member_beyond_max_size_is_refused() {
    on_sluice_with(Client::Rdkafka, max_size, MAX_SIZE_SETTINGS);
}

#[test]
fn rdkafka_member_beyond_max_size_is_refused_reference_kafka() {
    on_reference_with(Client::Rdkafka, max_size, MAX_SIZE_SETTINGS);
}

#[test]
fn java_member_beyond_max_size_is_refused() {
    on_sluice_with(Client::Java, max_size, MAX_SIZE_SETTINGS);
}

#[test]
fn java_member_beyond_max_size_is_refused_reference_kafka() {
    on_reference_with(Client::Java, max_size, MAX_SIZE_SETTINGS);
}

#[test]
fn rdkafka_duplicate_instance_id_is_refused() {
    on_sluice_with(Client::Rdkafka, unreleased_instance, LONG_SESSION_SETTINGS);
}

#[test]
fn rdkafka_duplicate_instance_id_is_refused_reference_kafka() {
    on_reference_with(Client::Rdkafka, unreleased_instance, LONG_SESSION_SETTINGS);
}

#[test]
fn java_duplicate_instance_id_is_refused() {
    on_sluice_with(Client::Java, unreleased_instance, LONG_SESSION_SETTINGS);
}

#[test]
fn java_duplicate_instance_id_is_refused_reference_kafka() {
    on_reference_with(Client::Java, unreleased_instance, LONG_SESSION_SETTINGS);
}

#[test]
fn kafka_consumer_groups_shows_consumer_protocol_group() {
    if !Client::Java.ready() {
        return;
    }
    let broker = Sluice::start(GROUP_SETTINGS);
    let ours = describe_consumer_group(&broker);
    for (name, lines) in &ours {
        eprintln!("--- {name} (sluice) ---");
        for l in lines {
            eprintln!("{}", l.join(" "));
        }
    }
    check_describe(&ours);
    // With the reference Kafka at hand, the output must be the same.
    if let Some(reference) = Reference::start(GROUP_SETTINGS) {
        let theirs = describe_consumer_group(&reference);
        for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
            assert_eq!(
                a, b,
                "kafka-consumer-groups {name}: Sluice's output differs from Apache Kafka's"
            );
        }
    }
}

#[test]
fn kafka_consumer_groups_shows_consumer_protocol_group_reference_kafka() {
    if !Client::Java.ready() {
        return;
    }
    let Some(broker) = Reference::start(GROUP_SETTINGS) else {
        return;
    };
    let theirs = describe_consumer_group(&broker);
    for (name, lines) in &theirs {
        eprintln!("--- {name} (kafka) ---");
        for l in lines {
            eprintln!("{}", l.join(" "));
        }
    }
    check_describe(&theirs);
}
