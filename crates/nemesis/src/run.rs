//! One nemesis run: start the cluster, run the workload, alternate seeded
//! faults and healing, heal, read everything, check the history.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sluice_checker::history::write_jsonl;
use sluice_checker::{Call, OpType};

use crate::cluster::{Cluster, Safety, System};
use crate::fault::{self, FaultKind};
use crate::workload::{final_read_with, History, Workload, WorkloadConfig, PARTITIONS, TOPIC};
use crate::{interrupted, netns, replicas, NemesisError};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub system: System,
    pub seed: u64,
    /// Faults go on at least this long...
    pub duration: Duration,
    /// ...and for at least this many cycles (bounded by 1.5 × `duration`).
    pub min_cycles: usize,
    pub faults: Vec<FaultKind>,
    /// Seconds between faults, and how long each lasts (ranges).
    pub quiet: (f64, f64),
    pub fault_time: (f64, f64),
    /// How long to wait after each heal for a healthy cluster before the
    /// next fault (it goes on regardless).
    pub heal_wait: Duration,
    pub producers: usize,
    pub rate: u32,
    /// acks=1, no idempotence and (Kafka) unclean leader election: a run
    /// the checker is expected to flag.
    pub unsafe_mode: bool,
    /// Transactional producers and read_committed consumers
    /// (`crate::transactional`).
    pub transactional: bool,
    pub disk_size: String,
    /// Where to write the history (JSON lines), valid or not (availability
    /// is read from it too; `scripts/fault` deletes the valid ones).
    pub history: Option<PathBuf>,
}

impl RunConfig {
    /// A run with the faults that apply to `system`'s node count.
    pub fn new(system: System, seed: u64, duration: Duration) -> Self {
        let faults = FaultKind::applicable(system.nodes(), netns::nft_available());
        RunConfig {
            system,
            seed,
            duration,
            min_cycles: 0,
            faults,
            quiet: (1.0, 3.0),
            fault_time: (2.0, 6.0),
            heal_wait: Duration::from_secs(30),
            producers: 2,
            rate: 100,
            unsafe_mode: false,
            transactional: false,
            disk_size: "512m".into(),
            history: None,
        }
    }
}

/// What a run did and what the checker found.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub system: String,
    pub seed: u64,
    pub unsafe_mode: bool,
    pub seconds: f64,
    pub cycles: usize,
    pub faults: BTreeMap<String, usize>,
    /// Heals after which the cluster was not healthy within `heal_wait`.
    pub slow_heals: usize,
    /// Node processes that exited without the nemesis killing or stopping
    /// them (a crash, a halt on a storage error), each with the fault in
    /// force and the exit status. A full disk may end a node on purpose
    /// (it halts rather than go on with a metadata log it cannot write);
    /// any other exit is a bug to look at.
    pub node_exits: Vec<String>,
    pub final_read_complete: bool,
    /// After the final read: whether every workload partition's replicas
    /// held the same log bytes ([`crate::replicas`]); `None` on one node.
    pub replicas_identical: Option<bool>,
    /// The partitions whose replicas still differed, with what differs.
    pub replica_differences: Vec<String>,
    pub ops: usize,
    pub sends_ok: usize,
    pub sends_failed: usize,
    pub sends_indeterminate: usize,
    /// Acknowledged sends whose offset the client did not learn
    /// (librdkafka's -1001 for a retried idempotent batch the broker already
    /// had, DUPLICATE_SEQUENCE_NUMBER): the checker counts them as written
    /// at an unknown offset.
    pub sends_ok_without_offset: usize,
    pub records_polled: usize,
    pub producer_fatal_errors: u64,
    /// Consumers whose close did not return within 30 s (left behind).
    pub consumer_closes_stuck: u64,
    pub anomalies: BTreeMap<String, usize>,
    /// Node-to-node connections and bytes through the delay proxy (runs
    /// with delay faults).
    pub proxy_connections: Option<u64>,
    pub proxy_bytes: Option<u64>,
    pub valid: bool,
    /// The checker's summary with examples.
    pub summary: String,
    /// Every fault and heal with its time.
    pub schedule: Vec<String>,
}

struct Log {
    start: Instant,
    lines: Vec<String>,
}

impl Log {
    fn line(&mut self, text: impl AsRef<str>) {
        let line = format!(
            "[{:7.1}s] {}",
            self.start.elapsed().as_secs_f64(),
            text.as_ref()
        );
        eprintln!("nemesis: {line}");
        self.lines.push(line);
    }
}

fn sleep_secs(secs: f64) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < until && !interrupted() {
        thread::sleep(Duration::from_millis(100));
    }
}

fn between(rng: &mut StdRng, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

/// Runs `config` on a thread of its own inside the client namespace. The
/// namespaces, mounts and processes are removed when it ends, panics or is
/// interrupted.
pub fn run(config: RunConfig) -> Result<RunReport, NemesisError> {
    for removed in netns::cleanup_stale() {
        eprintln!("nemesis: removed a stale {removed}");
    }
    let handle = thread::Builder::new()
        .name("nemesis".into())
        .spawn(move || run_inside(config))
        .map_err(|source| NemesisError::Io {
            what: "spawning the run thread".into(),
            source,
        })?;
    match handle.join() {
        Ok(r) => r,
        Err(p) => Err(NemesisError::Panicked(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        )),
    }
}

fn node_outputs(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| {
            format!(
                "--- node {} ({})\n{}\n",
                n.id,
                n.dir.display(),
                n.output_tail(4000)
            )
        })
        .collect()
}

fn run_inside(config: RunConfig) -> Result<RunReport, NemesisError> {
    let mut log = Log {
        start: Instant::now(),
        lines: Vec::new(),
    };
    let safety = Safety {
        unsafe_broker: config.unsafe_mode,
    };
    log.line(format!(
        "{}: seed {}, {:?} of faults from {:?}",
        config.system.name(),
        config.seed,
        config.duration,
        config.faults.iter().map(|f| f.name()).collect::<Vec<_>>()
    ));
    let proxied = config.faults.iter().any(|f| f.needs_proxy());
    let mut cluster =
        Cluster::create_with(config.system.clone(), safety, &config.disk_size, proxied)?;
    cluster.net.enter_client()?;
    let start_timeout = Duration::from_secs(300);
    let (ok, took) = cluster.await_healthy(start_timeout);
    if !ok {
        // Keep the nodes' configuration and output to look at.
        cluster.dir.disable_cleanup(true);
        return Err(NemesisError::NotHealthy(
            start_timeout,
            format!(
                "{} (run dir {} kept)\n{}",
                cluster.last_unhealthy,
                cluster.dir.path().display(),
                node_outputs(&cluster)
            ),
        ));
    }
    log.line(format!(
        "cluster healthy after {:.1}s: {}",
        took.as_secs_f64(),
        cluster.bootstrap()
    ));

    let history = History::new();
    let workload = Workload::start(
        WorkloadConfig {
            bootstrap: cluster.bootstrap(),
            producers: config.producers,
            rate: config.rate,
            unsafe_client: config.unsafe_mode,
            transactional: config.transactional,
            read_committed: config.transactional,
        },
        history.clone(),
    );
    let (cycles, faults, slow_heals) = fault_loop(&config, &mut cluster, &mut log);

    cluster.heal_all();
    note_exits(&mut cluster, &mut log, "the final heal");
    log.line("healed everything");
    let (ok, took) = cluster.await_healthy(Duration::from_secs(300));
    log.line(format!(
        "healthy after the final heal: {ok} ({:.1}s){}",
        took.as_secs_f64(),
        if ok {
            String::new()
        } else {
            format!(": {}", cluster.last_unhealthy)
        }
    ));
    note_exits(&mut cluster, &mut log, "the final heal");
    sleep_secs(3.0);
    let counts = workload.stop();
    log.line("workload stopped; final read");
    let complete = final_read_with(
        &cluster.bootstrap(),
        &history,
        Duration::from_secs(600),
        config.transactional,
    );
    log.line(format!("final read complete: {complete}"));
    let (proxy_connections, proxy_bytes) = match &cluster.proxy {
        Some(p) => {
            let s = p.stats();
            let read =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            log.line(format!(
                "delay proxy: {} connections between nodes ({} failed to connect), {} bytes forwarded",
                read(&s.connections),
                read(&s.failed_connects),
                read(&s.bytes)
            ));
            (Some(read(&s.connections)), Some(read(&s.bytes)))
        }
        None => (None, None),
    };
    let (replicas_identical, replica_differences) =
        compare_replicas(&cluster, config.seed, &mut log);
    let ops = history.take();
    let sends_ok_without_offset = ops
        .iter()
        .filter(|op| op.kind == OpType::Ok && matches!(op.call, Call::Send { offset: None, .. }))
        .count();
    let checked = sluice_checker::check(&ops);
    // Written where asked, valid or not (scripts/fault deletes valid ones).
    if let Some(path) = &config.history {
        let mut file = std::fs::File::create(path).map_err(|source| NemesisError::Io {
            what: format!("creating {}", path.display()),
            source,
        })?;
        write_jsonl(&mut file, &ops).map_err(|source| NemesisError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    }
    let report = checked?;
    log.line(format!(
        "checked {} ops: {}",
        ops.len(),
        if report.is_valid() {
            "valid"
        } else {
            "ANOMALIES"
        }
    ));
    if !report.is_valid() || replicas_identical == Some(false) {
        // The nodes' output (their logs) stays to be read; their disks are
        // gone with their mounts, but differing replicas were copied.
        cluster.dir.disable_cleanup(true);
        log.line(format!(
            "kept the run directory (node configs and logs): {}",
            cluster.dir.path().display()
        ));
    }
    let s = &report.stats;
    Ok(RunReport {
        system: config.system.name(),
        seed: config.seed,
        unsafe_mode: config.unsafe_mode,
        seconds: log.start.elapsed().as_secs_f64(),
        cycles,
        faults,
        slow_heals,
        node_exits: log
            .lines
            .iter()
            .filter(|l| l.contains(EXITED))
            .cloned()
            .collect(),
        final_read_complete: complete,
        replicas_identical,
        replica_differences,
        ops: s.ops,
        sends_ok: s.sends_ok,
        sends_failed: s.sends_failed,
        sends_indeterminate: s.sends_indeterminate,
        sends_ok_without_offset,
        records_polled: s.records_polled,
        producer_fatal_errors: counts
            .producer_fatal
            .load(std::sync::atomic::Ordering::Relaxed),
        consumer_closes_stuck: counts
            .consumer_closes_stuck
            .load(std::sync::atomic::Ordering::Relaxed),
        anomalies: report
            .counts()
            .into_iter()
            .map(|(k, n)| (k.name().to_string(), n))
            .collect(),
        proxy_connections,
        proxy_bytes,
        valid: report.is_valid(),
        summary: report.summary(3),
        schedule: log.lines,
    })
}

/// Compares the workload partitions' replicas on every node once the
/// producers stopped and the cluster healed (followers get two minutes to
/// fetch the last batches).
fn compare_replicas(cluster: &Cluster, seed: u64, log: &mut Log) -> (Option<bool>, Vec<String>) {
    if cluster.len() < 2 {
        return (None, Vec::new());
    }
    let dirs: Vec<(usize, PathBuf)> = cluster.nodes.iter().map(|n| (n.id, n.data_dir())).collect();
    let differing = replicas::await_identical(&dirs, TOPIC, PARTITIONS, Duration::from_secs(120));
    if differing.is_empty() {
        log.line("replicas byte-identical on every node");
        return (Some(true), differing);
    }
    log.line(format!("replicas DIFFER: {}", differing.join(" | ")));
    // The evidence outlives the run's disks.
    let keep = std::env::temp_dir().join(format!("sluice-nemesis-replicas-{seed}"));
    for p in 0..PARTITIONS {
        let found = replicas::find(&dirs, TOPIC, p);
        if replicas::differences(&found).is_some() {
            let to = keep.join(format!("{TOPIC}-{p}"));
            log.line(format!(
                "{TOPIC}-{p} replicas:\n{}",
                replicas::keep_evidence(&found, &to)
            ));
        }
    }
    (Some(false), differing)
}

/// Marks the schedule lines of node exits the nemesis did not cause.
const EXITED: &str = "exited by itself";

/// Logs the node processes that exited by themselves since the last call.
fn note_exits(cluster: &mut Cluster, log: &mut Log, during: &str) {
    for node in &mut cluster.nodes {
        node.is_running();
        for status in node.take_exits() {
            log.line(format!(
                "node {} {EXITED} ({status}) during {during}; last output:\n{}",
                node.id,
                node.output_tail(1500)
            ));
        }
    }
}

/// Alternates faults and healing until the duration and the cycle count are
/// reached (or 1.5 × the duration passed, or an interrupt).
fn fault_loop(
    config: &RunConfig,
    cluster: &mut Cluster,
    log: &mut Log,
) -> (usize, BTreeMap<String, usize>, usize) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let start = Instant::now();
    let mut cycles = 0;
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    let mut slow_heals = 0;
    loop {
        let elapsed = start.elapsed();
        let done = elapsed >= config.duration && cycles >= config.min_cycles;
        if done || elapsed >= config.duration.mul_f64(1.5) || interrupted() {
            break;
        }
        sleep_secs(between(&mut rng, config.quiet));
        let Some(&kind) = config.faults.choose(&mut rng) else {
            sleep_secs(1.0);
            continue;
        };
        let hold = between(&mut rng, config.fault_time);
        let (active, what) = fault::apply(kind, cluster, &mut rng);
        log.line(format!(
            "cycle {}: {kind}: {what} for {hold:.1}s",
            cycles + 1
        ));
        sleep_secs(hold);
        note_exits(cluster, log, kind.name());
        let healed = fault::heal(active, cluster);
        let (ok, took) = cluster.await_healthy(config.heal_wait);
        log.line(format!(
            "heal: {healed}; {} after {:.1}s",
            if ok {
                "healthy".to_string()
            } else {
                format!("NOT healthy (going on): {}", cluster.last_unhealthy)
            },
            took.as_secs_f64()
        ));
        note_exits(cluster, log, &format!("the heal of {kind}"));
        slow_heals += usize::from(!ok);
        cycles += 1;
        *faults.entry(kind.name().to_string()).or_default() += 1;
    }
    (cycles, faults, slow_heals)
}
