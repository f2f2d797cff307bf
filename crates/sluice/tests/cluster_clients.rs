//! Real Kafka clients and Kafka's own tools against a 3-node Sluice
//! cluster (3 combined nodes of the real binary on loopback, issue 16).
//!
//! **Clients** (librdkafka through the `rdkafka` crate in this process;
//! kafka-python, franz-go and the Java client through their drivers'
//! `cluster` scenario, see clients/README.md): bootstrapped from node 1
//! only, each produces with acks=all and idempotence on to a 6-partition
//! topic of replication factor 3 with `min.insync.replicas=2`, whose
//! leaders are spread over the three brokers; reads everything back by
//! assignment and in a consumer group (FindCoordinator, JoinGroup,
//! OffsetCommit reach whichever node leads the group's `__consumer_offsets`
//! partition; the committed offsets must be the end offsets); then keeps
//! producing while the test kills the node coordinating that group with
//! SIGKILL (it also leads some of the topic's partitions; issue 17's "real
//! clients keep producing and consuming through a leader kill").
//!
//! While that node is down, every partition must keep taking writes: each
//! partition's log end offset is read right after the kill (ListOffsets
//! asked of its leader per Metadata from a survivor; for the killed node's
//! partitions, as soon as the controller has fenced it and elected another
//! in-sync replica), and every partition's end offset (the high watermark)
//! must grow past it, as the survivors report; the client must also report
//! more acknowledged records (`ACKED` lines) before the node is started
//! again. The node then restarts on the same data and port and must rejoin
//! every partition's ISR (leadership does not move back by itself), after
//! which more records must be acknowledged. The scenario fails when any of
//! that does not happen within its bound, when one more record per
//! partition is not acknowledged at the end, when any acknowledged record
//! is not read back at its offset (with acks=all and RF=3 none may be lost
//! to the SIGKILL), when an offset was acknowledged for two records, when a
//! partition has no more than the first batch's 20 acknowledged records, or
//! when a new member of the group does not start exactly at the offsets
//! committed before the kill. librdkafka also runs the scenario on 3
//! controller-only + 3 broker-only nodes (the killed broker is an observer
//! of the metadata log).
//!
//! **Tools** (Apache Kafka 4.1.2's classes from .cache/kafka/lib):
//! `kafka-topics --describe` of a replication-factor-3 topic shows 3
//! replicas, a leader among them and all three in the ISR;
//! `kafka-metadata-quorum describe --status/--replication` through a
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

use common::cluster::full_isr;
use common::{env_on, root, sb, RawClient};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FindCoordinatorRequest, ListOffsetsRequest, TopicName,
};
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

/// Creates `topic` (replication factor 3, `min.insync.replicas=2`)
/// through the first broker and returns its leaders once every broker
/// shows them, spread over all, with all three replicas of every
/// partition in sync.
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
                .with_replication_factor(3)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(sb("min.insync.replicas"))
                    .with_value(Some(sb("2")))])])
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
        wait_metadata(c, id, "the same leaders, every replica in sync", |m| {
            leaders(m, topic) == placed && full_isr(m, topic, PARTITIONS as usize, &all)
        });
    }
    placed
}

/// ListOffsets (latest) of `topic`/`partition` asked of broker `leader`:
/// `None` when it does not answer with an offset (not the leader (any
/// more), or the connection failed). As a client (`as_replica` false) the
/// leader answers its high watermark, the end offset consumers see; asked
/// with a replica id (true) it answers its log end offset, including
/// records appended but not yet committed (as Kafka's ListOffsets does for
/// a replica).
fn end_offset(
    c: &SluiceCluster,
    leader: i32,
    topic: &str,
    partition: i32,
    as_replica: bool,
) -> Option<i64> {
    let addr = c.broker_addr(leader).to_string();
    let topic = topic.to_string();
    // RawClient panics on I/O errors; a node that goes away is a `None`.
    std::panic::catch_unwind(move || {
        let mut raw = RawClient::connect(&addr);
        raw.set_read_timeout(Duration::from_secs(10));
        let resp = raw.send(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(if as_replica { leader } else { -1 }))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(sb(&topic)))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1)])]),
        );
        let p = resp.topics.first()?.partitions.first()?;
        (p.error_code == 0 && p.offset >= 0).then_some(p.offset)
    })
    .ok()
    .flatten()
}

/// Every partition's leader per Metadata from broker `via`, when each has
/// one other than `down`.
fn live_leaders(c: &SluiceCluster, via: i32, down: i32, topic: &str) -> Option<BTreeMap<i32, i32>> {
    let m = fetch_metadata(addr(c.broker_addr(via)), None).ok()?;
    let l = leaders(&m, topic);
    (l.len() == PARTITIONS as usize && l.values().all(|&b| b > 0 && b != down)).then_some(l)
}

/// Right after node `down` was killed: each partition's log end offset,
/// asked of its leader per Metadata from the survivor `via`, as soon as a
/// live node leads it (at once for the partitions the survivors led; for
/// the killed node's, once the controller fenced it and elected another
/// in-sync replica). Returns the offsets and when the last was read.
fn end_offsets_after_kill(
    c: &SluiceCluster,
    via: i32,
    down: i32,
    topic: &str,
) -> (BTreeMap<i32, i64>, Instant) {
    let bound = Instant::now() + LONG;
    let mut marks = BTreeMap::new();
    loop {
        if let Ok(m) = fetch_metadata(addr(c.broker_addr(via)), None) {
            for (p, leader) in leaders(&m, topic) {
                if leader > 0 && leader != down && !marks.contains_key(&p) {
                    if let Some(leo) = end_offset(c, leader, topic, p, true) {
                        marks.insert(p, leo);
                    }
                }
            }
        }
        if marks.len() == PARTITIONS as usize {
            return (marks, Instant::now());
        }
        assert!(
            Instant::now() < bound,
            "node {down} killed: not every partition of {topic} has a live leader answering ListOffsets (per node {via}); end offsets so far {marks:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every partition's end offset (the high watermark, asked of
/// its current leader per Metadata from the survivor `via`) is past its
/// mark: a record appended after the mark was committed by the surviving
/// in-sync replicas. Returns the end offsets then.
fn wait_end_offsets_past(
    c: &SluiceCluster,
    via: i32,
    down: i32,
    topic: &str,
    marks: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    let bound = Instant::now() + LONG;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    loop {
        if let Some(l) = live_leaders(c, via, down, topic) {
            for (p, leader) in l {
                if let Some(end) = end_offset(c, leader, topic, p, false) {
                    ends.insert(p, end);
                }
            }
        }
        if marks
            .iter()
            .all(|(p, mark)| ends.get(p).is_some_and(|e| e > mark))
        {
            return ends;
        }
        assert!(
            Instant::now() < bound,
            "node {down} killed: not every partition of {topic} took writes while it was down: \
             end offsets {ends:?} (per the survivors) not all past the log end offsets {marks:?} \
             read right after the kill"
        );
        thread::sleep(Duration::from_millis(200));
    }
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

/// A client scenario in progress: its output lines as they come (with
/// when each was received), and everything it printed so far.
struct Running {
    lines: Receiver<(Instant, String)>,
    /// When the last line [`Running::wait_line`] returned was received.
    last_at: Option<Instant>,
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
                Ok((at, l)) if l.starts_with(prefix) => {
                    self.last_at = Some(at);
                    return l;
                }
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

    /// Drops the lines received so far (what follows was printed after
    /// this call); the count of the last `ACKED` line among them.
    fn drain(&mut self) -> Option<u64> {
        let mut last = None;
        while let Ok((_, l)) = self.lines.try_recv() {
            last = acked_count(&l).or(last);
        }
        last
    }

    /// Waits for an `ACKED n FAILED m` line with `n` above `above`; returns
    /// `n`.
    fn wait_acked_above(&mut self, above: u64, what: &str, logs: &dyn Fn() -> String) -> u64 {
        let bound = Instant::now() + LONG;
        loop {
            let l = self.wait_line("ACKED", what, logs);
            match acked_count(&l) {
                Some(n) if n > above => return n,
                _ => {}
            }
            assert!(
                Instant::now() < bound,
                "{what}: acknowledged count never above {above}\n--- client ---\n{}\n{}",
                self.output(),
                logs()
            );
        }
    }
}

/// `n` of an `ACKED n FAILED m` line.
fn acked_count(line: &str) -> Option<u64> {
    line.strip_prefix("ACKED ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Forwards `reader`'s lines to the channel and the shared output.
fn pump(
    reader: impl std::io::Read + Send + 'static,
    tx: Sender<(Instant, String)>,
    out: Arc<Mutex<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            out.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send((Instant::now(), line));
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
        last_at: None,
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

/// Runs one client's scenario against a fresh 3-node cluster, killing
/// (SIGKILL) and later restarting the node that coordinates the client's
/// group (it also leads some of the topic's partitions) while the client
/// keeps producing.
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
        // The loop's records are being acknowledged (the first ACKED line
        // may count only the first batch).
        let logs = || cluster_logs(&c);
        run.wait_line("LOOP_STARTED", name, &logs);
        let first = run.wait_acked_above(0, name, &logs);
        run.wait_acked_above(first, name, &logs);
    }
    // The group's offsets are committed: kill their coordinator, so the
    // group must be found and loaded again on another node.
    let victim = coordinator_of(&c, &format!("{topic}-group"));
    assert!(placed.values().any(|&l| l == victim), "{placed:?}");
    let all: BTreeSet<i32> = c.broker_ids().into_iter().collect();
    let survivor = *all.iter().find(|&&b| b != victim).unwrap();
    wait_metadata(&c, survivor, "every replica in sync before the kill", |m| {
        full_isr(m, &topic, PARTITIONS as usize, &all)
    });

    // SIGKILL: no controlled shutdown, leadership moves only once the
    // controller has fenced the node (broker.session.timeout.ms).
    run.drain();
    c.node_mut(victim).process.kill().unwrap();
    let killed = Instant::now();
    let (marks, marked) = end_offsets_after_kill(&c, survivor, victim, &topic);
    let ends = wait_end_offsets_past(&c, survivor, victim, &topic, &marks);
    let grown = killed.elapsed();
    // The client sees its sends acknowledged while the node is down: the
    // first ACKED line after the kill, then one with a larger count.
    let (acked_at_kill, acked_down, acks_resumed) = {
        let logs = || cluster_logs(&c);
        let what = format!("{name} while node {victim} is down");
        let at_kill = run.wait_acked_above(0, &what, &logs);
        let later = run.wait_acked_above(at_kill, &what, &logs);
        let resumed = run
            .last_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(killed));
        (at_kill, run.drain().unwrap_or(later).max(later), resumed)
    };
    let down = killed.elapsed();

    // Back on the same data: it catches up from the new leaders and
    // rejoins every ISR (it does not lead again by itself).
    c.node_mut(victim).process.restart().unwrap();
    let restarted = Instant::now();
    wait_metadata(
        &c,
        survivor,
        "the restarted node back in every partition's ISR",
        |m| full_isr(m, &topic, PARTITIONS as usize, &all),
    );
    let rejoined = restarted.elapsed();
    let (acked_back, acked_after) = {
        let logs = || cluster_logs(&c);
        let what = format!("{name} after node {victim} is back");
        run.drain();
        let back = run.wait_acked_above(0, &what, &logs);
        (back, run.wait_acked_above(back, &what, &logs))
    };
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
        "{name} against 3 nodes: {verdict}; node {victim} (group coordinator, led partitions {:?}) \
         SIGKILLed and down {:.1} s: every partition led by a live node {:.1} s after the kill, \
         every end offset past its mark {:.1} s after it (marks {marks:?}, then {ends:?}), \
         the client's ACKED count above {acked_at_kill} {:.1} s after it, {acked_down} before \
         the restart; back in every ISR {:.1} s after the restart, ACKED {acked_back} -> \
         {acked_after}; whole scenario {:.1} s",
        placed
            .iter()
            .filter(|(_, &l)| l == victim)
            .map(|(p, _)| *p)
            .collect::<Vec<_>>(),
        down.as_secs_f64(),
        (marked - killed).as_secs_f64(),
        grown.as_secs_f64(),
        acks_resumed.as_secs_f64(),
        rejoined.as_secs_f64(),
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
