//! Real Kafka clients and Kafka's own tools against a 3-node Sluice
//! cluster (3 combined nodes of the real binary on loopback, issue 16).
//!
//! **Clients** (librdkafka through the `rdkafka` crate in this process;
//! kafka-python, franz-go and the Java client through their drivers'
//! `cluster` scenario, see clients/README.md): bootstrapped from node 1
//! only, each produces with acks=1 to a 6-partition topic whose leaders are
//! spread over the three brokers, reads everything back by assignment and
//! in a consumer group (FindCoordinator, JoinGroup, OffsetCommit reach
//! whichever node leads the group's `__consumer_offsets` partition; the
//! committed offsets must be the end offsets), then keeps producing while
//! the test restarts the node coordinating that group (SIGTERM, start again
//! on the same data and port; it also leads some of the topic's
//! partitions). Until issue 17 replicates data, that node's partitions are
//! offline while it is down: sends to them may fail or wait, which is not a
//! failure. The scenario fails when the client's sends do not succeed once
//! the node leads again (one more record per partition must be
//! acknowledged), when any acknowledged record is not read back at its
//! offset, or when a new member of the group does not start exactly at the
//! offsets committed before the restart. librdkafka also runs the scenario
//! on 3 controller-only + 3 broker-only nodes (the restarted broker is an
//! observer of the metadata log).
//!
//! **Tools** (Apache Kafka 4.1.2's classes from .cache/kafka/lib):
//! `kafka-topics --describe` of a replication-factor-3 topic shows 3
//! replicas, a leader among them and the ISR (the leader alone until issue
//! 17); `kafka-metadata-quorum describe --status/--replication` through a
//! broker shows the three voters and one leader; `kafka-cluster cluster-id`
//! prints the formatted id; `kafka-features describe` (through a broker
//! and through a controller) shows
//! metadata.version finalized at 4.1-IV1 (level 27); and
//! `kafka-broker-api-versions` lists all three brokers.
//!
//! A missing toolchain skips loudly unless `SLUICE_REQUIRE_CLIENTS` is set.
//! The scenarios run one at a time (a 3-node cluster each) to keep a
//! 2-core machine's load predictable.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::{env_on, root, sb, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, FindCoordinatorRequest, TopicName};
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::{ClusterLayout, SluiceCluster};

#[path = "cluster_clients/rdkafka_scenario.rs"]
mod rdkafka_scenario;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const PARTITIONS: i32 = 6;
/// Hang guards only: every wait polls for its condition.
const LONG: Duration = Duration::from_secs(180);
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

/// One 3-node cluster at a time in this binary.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_cluster() -> SluiceCluster {
    start_layout(ClusterLayout::Combined(3))
}

fn start_layout(layout: ClusterLayout) -> SluiceCluster {
    SluiceCluster::start_pinned(
        BIN,
        layout,
        &[
            ("broker.session.timeout.ms", "6000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    )
    .expect("the 3-node cluster starts")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

fn leaders(m: &ClusterMetadata, topic: &str) -> BTreeMap<i32, i32> {
    m.topics
        .iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition, p.leader)))
        .collect()
}

/// Polls broker `via`'s Metadata until `check` holds.
fn wait_metadata(
    c: &SluiceCluster,
    via: i32,
    what: &str,
    check: impl Fn(&ClusterMetadata) -> bool,
) -> ClusterMetadata {
    let bound = Instant::now() + LONG;
    loop {
        let m = fetch_metadata(addr(c.broker_addr(via)), None);
        if let Ok(m) = &m {
            if check(m) {
                return m.clone();
            }
        }
        assert!(
            Instant::now() < bound,
            "{what}: broker {via} never showed it; last: {m:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Creates `topic` (replication factor 1) through the first broker and
/// returns its leaders once every broker shows them, spread over all.
fn create_spread_topic(c: &SluiceCluster, topic: &str) -> BTreeMap<i32, i32> {
    let all: BTreeSet<i32> = c.broker_ids().into_iter().collect();
    let first = c.broker_ids()[0];
    for &id in &all {
        wait_metadata(c, id, "three brokers", |m| {
            m.brokers.iter().map(|b| b.node_id).collect::<BTreeSet<_>>() == all
        });
    }
    let mut raw = RawClient::connect(c.broker_addr(first));
    let resp = raw.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000),
    );
    assert_eq!(resp.topics[0].error_code, 0, "create {topic}: {resp:?}");
    let placed = leaders(
        &wait_metadata(c, first, "the new topic's leaders", |m| {
            let l = leaders(m, topic);
            l.len() == PARTITIONS as usize && l.values().all(|&b| b > 0)
        }),
        topic,
    );
    assert_eq!(
        placed.values().copied().collect::<BTreeSet<_>>(),
        all,
        "leaders spread over the three brokers: {placed:?}"
    );
    for &id in &all {
        wait_metadata(c, id, "the same leaders", |m| leaders(m, topic) == placed);
    }
    placed
}

/// The node coordinating `group` (FindCoordinator asked of the first
/// broker).
fn coordinator_of(c: &SluiceCluster, group: &str) -> i32 {
    let bound = Instant::now() + LONG;
    let brokers = c.broker_ids();
    loop {
        let mut raw = RawClient::connect(c.broker_addr(brokers[0]));
        let resp = raw.send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(group))
                .with_key_type(0),
        );
        if resp.error_code == 0 && brokers.contains(&resp.node_id.0) {
            return resp.node_id.0;
        }
        assert!(
            Instant::now() < bound,
            "no coordinator for {group}: {resp:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A client scenario in progress: its output lines as they come, and
/// everything it printed so far.
struct Running {
    lines: Receiver<String>,
    output: Arc<Mutex<String>>,
    finished: Box<dyn FnMut(Duration) -> Option<bool>>,
}

impl Running {
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for a line starting with `prefix`; panics (with the output)
    /// when the scenario ends or the bound passes first.
    fn wait_line(&mut self, prefix: &str, what: &str, logs: &dyn Fn() -> String) -> String {
        let bound = Instant::now() + LONG;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{what}: the client ended before printing {prefix}\n--- client ---\n{}\n{}",
                    self.output(),
                    logs()
                ),
                Err(RecvTimeoutError::Timeout) => {}
            }
            assert!(
                Instant::now() < bound,
                "{what}: no {prefix} line\n--- client ---\n{}\n{}",
                self.output(),
                logs()
            );
        }
    }
}

/// Forwards `reader`'s lines to the channel and the shared output.
fn pump(reader: impl std::io::Read + Send + 'static, tx: Sender<String>, out: Arc<Mutex<String>>) {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            out.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
}

fn spawn_driver(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the client driver");
    let (tx, rx) = mpsc::channel();
    let output = Arc::new(Mutex::new(String::new()));
    pump(child.stdout.take().unwrap(), tx, output.clone());
    let (etx, _erx) = mpsc::channel();
    pump(child.stderr.take().unwrap(), etx, output.clone());
    let finished = Box::new(move |limit: Duration| {
        let bound = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status.success());
            }
            if Instant::now() >= bound {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    Running {
        lines: rx,
        output,
        finished,
    }
}

/// A client whose scenario runs as a driver process.
#[derive(Clone, Copy)]
enum Driver {
    KafkaPython,
    FranzGo,
    Java,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::KafkaPython => "kafka-python",
            Driver::FranzGo => "franz-go",
            Driver::Java => "java-client",
        }
    }

    /// The driver's command, or why it cannot run here.
    fn command(self) -> Result<Command, String> {
        let r = root();
        match self {
            Driver::KafkaPython => {
                let python = r.join(".cache/venv/bin/python");
                let ok = Command::new(&python)
                    .args(["-c", "import kafka"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(format!("python module kafka in {}", python.display()));
                }
                let mut c = Command::new(python);
                c.arg(r.join("clients/python/cluster_driver.py"));
                Ok(c)
            }
            Driver::FranzGo => {
                let out = build_franz_go()?;
                let mut c = Command::new(out);
                c.args(["--phase", "cluster"]);
                Ok(c)
            }
            Driver::Java => {
                java_ready()?;
                Ok(Command::new(r.join("clients/java/cluster.sh")))
            }
        }
    }
}

/// Builds the franz-go driver (with its `cluster` phase) into this build's
/// temp dir, offline, from the module cache scripts/setup filled.
fn build_franz_go() -> Result<PathBuf, String> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("franz-go-cluster-driver");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(root().join("clients/go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .map_err(|e| format!("`go` on PATH ({e})"))?;
    if status.success() {
        Ok(out)
    } else {
        Err("the franz-go driver to build offline (go build failed; run scripts/setup)".into())
    }
}

fn java_ready() -> Result<(), String> {
    let ok = |p: &str| {
        Command::new(p)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let jars = root().join(".cache/kafka/lib/.complete");
    if ok("java") && ok("javac") && jars.exists() {
        Ok(())
    } else {
        Err(format!("java and javac on PATH and {}", jars.display()))
    }
}

/// True when the test should go on; false after saying loudly why it skips.
fn ready(name: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(missing) if env_on("SLUICE_REQUIRE_CLIENTS") => {
            panic!("{name}: needs {missing} (SLUICE_REQUIRE_CLIENTS is set)")
        }
        Err(missing) => {
            eprintln!("\n\n!!! SKIPPED {name} against a 3-node cluster: needs {missing}; run scripts/setup !!!\n");
            false
        }
    }
}

/// Runs one client's scenario against a fresh 3-node cluster, restarting
/// the node that coordinates the client's group (it also leads some of the
/// topic's partitions) while the client keeps producing.
fn scenario(name: &str, start: impl FnOnce(&str, &str, &Path) -> Running) {
    scenario_on(ClusterLayout::Combined(3), name, start)
}

fn scenario_on(
    layout: ClusterLayout,
    name: &str,
    start: impl FnOnce(&str, &str, &Path) -> Running,
) {
    let _one = one_at_a_time();
    let began = Instant::now();
    let mut c = start_layout(layout);
    let first = c.broker_ids()[0];
    let topic = format!("cluster-{name}");
    let placed = create_spread_topic(&c, &topic);
    let stop_dir = tempfile::tempdir().unwrap();
    let stop_file = stop_dir.path().join("stop");
    let bootstrap = c.broker_addr(first).to_string();
    let mut run = start(&bootstrap, &topic, &stop_file);

    let cluster_logs = |c: &SluiceCluster| {
        c.broker_ids()
            .into_iter()
            .map(|id| {
                let out = c.node(id).process.output();
                let lines: Vec<&str> = out.lines().collect();
                // SLUICE_TEST_FULL_LOGS=1: every line (post-mortems).
                let keep = if common::env_on("SLUICE_TEST_FULL_LOGS") {
                    lines.len()
                } else {
                    60
                };
                format!(
                    "--- node {id} (tail) ---\n{}",
                    lines[lines.len().saturating_sub(keep)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    {
        let logs = || cluster_logs(&c);
        run.wait_line("LOOP_STARTED", name, &logs);
        run.wait_line("ACKED", name, &logs);
    }
    // The group's offsets are committed: restart their coordinator, so the
    // group must be found and loaded again after the restart.
    let victim = coordinator_of(&c, &format!("{topic}-group"));
    assert!(placed.values().any(|&l| l == victim), "{placed:?}");

    // Controlled shutdown of a leader, then back on the same data.
    let status = c.node_mut(victim).process.terminate().unwrap();
    assert!(status.success(), "node {victim} exits cleanly: {status:?}");
    let down = Instant::now();
    {
        let logs = || cluster_logs(&c);
        for _ in 0..2 {
            run.wait_line(
                "ACKED",
                &format!("{name} while node {victim} is down"),
                &logs,
            );
        }
    }
    c.node_mut(victim).process.restart().unwrap();
    wait_metadata(
        &c,
        first,
        "the restarted node leads its partitions again",
        |m| leaders(m, &topic) == placed,
    );
    let back = down.elapsed();
    {
        let logs = || cluster_logs(&c);
        for _ in 0..2 {
            run.wait_line(
                "ACKED",
                &format!("{name} after node {victim} is back"),
                &logs,
            );
        }
    }
    std::fs::write(&stop_file, b"stop").unwrap();
    let ok = (run.finished)(SCENARIO_LIMIT);
    let out = run.output();
    assert_eq!(
        ok,
        Some(true),
        "{name} against 3 nodes failed\n--- client ---\n{out}\n{}",
        cluster_logs(&c)
    );
    assert!(
        out.lines().any(|l| l == "GROUP_RESUMED 20"),
        "{name}: no GROUP_RESUMED line\n{out}"
    );
    let verdict = out
        .lines()
        .find(|l| l.starts_with(&format!("OK {name}")))
        .unwrap_or_else(|| panic!("{name}: no OK line\n{out}"));
    // Every partition got records after the restart (the final round).
    let per_partition: BTreeMap<i32, i64> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("PARTITION ")?;
            let (p, acked) = rest.split_once(" acked=")?;
            let n = acked.split_whitespace().next()?;
            Some((p.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    assert_eq!(
        per_partition.len(),
        PARTITIONS as usize,
        "{name}: per-partition counts\n{out}"
    );
    assert!(
        per_partition.values().all(|&n| n > 20),
        "{name}: every partition has acknowledged records beyond the first batch: {per_partition:?}\n{out}"
    );
    eprintln!(
        "{name} against 3 nodes: {verdict}; node {victim} down and back as leader after {:.1} s; whole scenario {:.1} s",
        back.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}

fn driver_scenario(d: Driver) {
    let cmd = match d.command() {
        Ok(c) => c,
        Err(missing) => {
            ready(d.name(), Err(missing));
            return;
        }
    };
    let mut cmd = Some(cmd);
    scenario(d.name(), |bootstrap, topic, stop| {
        let mut cmd = cmd.take().unwrap();
        cmd.args(["--bootstrap", bootstrap, "--topic", topic])
            .arg("--stop-file")
            .arg(stop);
        spawn_driver(cmd)
    });
}

#[test]
fn librdkafka_against_three_nodes() {
    scenario("librdkafka", |bootstrap, topic, stop| {
        rdkafka_scenario::start(bootstrap, topic, PARTITIONS, stop)
    });
}

/// The same with 3 controller-only and 3 broker-only nodes: the restarted
/// broker follows the metadata log as an observer.
#[test]
fn librdkafka_against_three_controllers_and_three_brokers() {
    let layout = ClusterLayout::Split {
        controllers: 3,
        brokers: 3,
    };
    scenario_on(layout, "librdkafka", |bootstrap, topic, stop| {
        rdkafka_scenario::start(bootstrap, topic, PARTITIONS, stop)
    });
}

#[test]
fn kafka_python_against_three_nodes() {
    driver_scenario(Driver::KafkaPython);
}

#[test]
fn franz_go_against_three_nodes() {
    driver_scenario(Driver::FranzGo);
}

#[test]
fn java_client_against_three_nodes() {
    driver_scenario(Driver::Java);
}

#[path = "cluster_clients/tools.rs"]
mod tools;
