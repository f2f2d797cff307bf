//! `sluice-bench replication`: issue 17's figures for partition data
//! replicated by the ISR protocol, measured the same way on a 3-node Apache
//! Kafka and a 3-node Sluice (each with its own defaults):
//!
//! - **produce**: `acks=all`, idempotent, replication factor 3,
//!   `min.insync.replicas=2`, 1 KiB records as fast as librdkafka goes:
//!   MB/s over three partitions (one led by each node), and on a
//!   one-partition topic the CPU seconds per GB of the leader's process and
//!   of the followers' (the leader's figure is the replication cost issue 17
//!   asks about: serving two followers plus its own appends).
//! - **end to end**: p50/p99 from the produce call to a consumer's receipt
//!   at a fixed rate (50 MB/s by default), `acks=all`, RF=3.
//! - **leader failover**: an `acks=all` producer sends a record every 2 ms;
//!   the leader of its partition is killed with SIGKILL; the time from the
//!   kill to the first acknowledgement of a record sent after it. The
//!   killed node is restarted and back in the ISR before the next trial.
//! - **fencing check**: every node stays registered (in Metadata) while
//!   the produce load runs, so no live broker was fenced by the load.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::Serialize;

use super::{quantile, ClusterTarget, KafkaTarget, SluiceTarget};
use crate::load::{self, ClientSettings};
use crate::procstat;

/// What to run.
pub struct ReplicationOptions {
    pub target: String,
    /// MiB produced in each throughput run.
    pub mib: u64,
    pub record_size: usize,
    pub e2e_rate_mb_per_s: f64,
    pub e2e_secs: u64,
    pub failover_trials: usize,
    /// Only the kill trials.
    pub failover_only: bool,
    /// `key=value` config for every Sluice node.
    pub overrides: Vec<String>,
    pub out: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
pub struct ProduceFigures {
    pub partitions: i32,
    pub mb_per_s: f64,
    pub records_per_s: f64,
    /// CPU seconds per GB produced, of the leader's process (one-partition
    /// run) or of all nodes together (several partitions).
    pub leader_cpu_s_per_gb: f64,
    pub follower_cpu_s_per_gb: Vec<f64>,
}

#[derive(Serialize)]
pub struct ReplicationReport {
    pub target: String,
    /// The load runs (absent with `--failover-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_partition: Option<ProduceFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub three_partitions: Option<ProduceFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e: Option<load::Latency>,
    pub failover_ms: Vec<f64>,
    pub failover_median_ms: f64,
    pub failover_max_ms: f64,
    /// Per trial, from the kill: when a survivor's Metadata (which lists
    /// exactly the unfenced brokers) first left the killed node out
    /// (fenced) and first named another leader.
    pub fenced_ms: Vec<Option<f64>>,
    pub new_leader_ms: Vec<Option<f64>>,
    /// Nodes that left Metadata while the load ran (should be empty).
    pub fenced_under_load: Vec<i32>,
    /// Heartbeats that reached the active controller more than half a
    /// session after the broker's previous one while the load ran (the
    /// controller's "broker heartbeat late" warnings): the gaps in ms, the
    /// closest a live broker came to being fenced. Sluice only.
    pub late_heartbeats_under_load_ms: Vec<i64>,
    /// A follower killed instead: from the kill to the first `acks=all`
    /// acknowledgement of a record sent after it (the records wait until
    /// the dead follower is out of the ISR).
    pub follower_kill_ms: Vec<f64>,
    pub follower_kill_median_ms: f64,
    pub follower_kill_max_ms: f64,
    /// Per trial: the killed follower fenced, and out of the ISR.
    pub follower_fenced_ms: Vec<Option<f64>>,
    pub follower_out_of_isr_ms: Vec<Option<f64>>,
}

/// Which replica a kill trial kills.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Victim {
    Leader,
    Follower,
}

fn settings() -> ClientSettings {
    let mut s = ClientSettings::standard();
    for p in [&mut s.throughput_producer, &mut s.latency_producer] {
        p.insert("acks".into(), "all".into());
        p.insert("enable.idempotence".into(), "true".into());
    }
    s
}

const TOPIC_CONFIGS: &[(&str, &str)] = &[("min.insync.replicas", "2")];

/// Node ids in `target`'s Metadata, asked of every node until one answers.
fn registered(target: &dyn ClusterTarget) -> Option<BTreeSet<i32>> {
    target.node_ids().iter().find_map(|&id| {
        sluice_testkit::metadata::fetch_metadata(target.addr(id), Some(&[]))
            .ok()
            .map(|m| m.brokers.iter().map(|b| b.node_id).collect())
    })
}

/// The leader and ISR of `topic`/`partition`.
fn leader_of(target: &dyn ClusterTarget, topic: &str, partition: i32) -> Option<(i32, Vec<i32>)> {
    target.node_ids().iter().find_map(|&id| {
        let m = sluice_testkit::metadata::fetch_metadata(target.addr(id), Some(&[topic])).ok()?;
        let t = m.topics.iter().find(|t| t.name == topic)?;
        let p = t.partitions.iter().find(|p| p.partition == partition)?;
        (p.leader >= 0).then(|| (p.leader, p.isr.clone()))
    })
}

/// Every node's client listener as it is now, as `bootstrap.servers`.
fn bootstrap_of(target: &dyn ClusterTarget) -> String {
    target
        .node_ids()
        .iter()
        .map(|&id| target.addr(id).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until every partition of `topic` is led with all nodes in sync.
fn wait_full_isr(target: &dyn ClusterTarget, topic: &str, partitions: i32) -> Result<()> {
    let n = target.node_ids().len();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if (0..partitions)
            .all(|p| leader_of(target, topic, p).is_some_and(|(_, isr)| isr.len() == n))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{topic}: ISR not full after 180 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Watches Metadata every 500 ms until stopped; the nodes it ever missed.
struct FenceWatch {
    stop: Arc<AtomicBool>,
    missing: Arc<Mutex<BTreeSet<i32>>>,
    handle: std::thread::JoinHandle<()>,
}

impl FenceWatch {
    fn start(target: &dyn ClusterTarget) -> FenceWatch {
        let all: BTreeSet<i32> = target.node_ids().into_iter().collect();
        let addrs: Vec<_> = target
            .node_ids()
            .iter()
            .map(|&id| target.addr(id))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let missing = Arc::new(Mutex::new(BTreeSet::new()));
        let (s, m) = (stop.clone(), missing.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(seen) = addrs
                    .iter()
                    .find_map(|a| sluice_testkit::metadata::fetch_metadata(*a, Some(&[])).ok())
                {
                    let seen: BTreeSet<i32> = seen.brokers.iter().map(|b| b.node_id).collect();
                    m.lock().unwrap().extend(all.difference(&seen));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        FenceWatch {
            stop,
            missing,
            handle,
        }
    }

    fn stop(self) -> BTreeSet<i32> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        let m = self.missing.lock().unwrap().clone();
        m
    }
}

/// What survivors' Metadata says after a kill: polled every 20 ms until
/// stopped, so a trial's time splits into detection (fenced), the
/// partition's move (a leader's kill: another leader named; a follower's:
/// the ISR without it) and the rest (clients and replication).
struct FailoverWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(Option<Instant>, Option<Instant>)>,
}

impl FailoverWatch {
    fn start(
        target: &dyn ClusterTarget,
        topic: &str,
        killed: i32,
        victim: Victim,
    ) -> FailoverWatch {
        let survivors: Vec<_> = target
            .node_ids()
            .into_iter()
            .filter(|&id| id != killed)
            .map(|id| target.addr(id))
            .collect();
        let topic = topic.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut fenced, mut elected) = (None, None);
            while fenced.is_none() || elected.is_none() {
                // Once stopped, one last look: a follower's kill is often
                // acknowledged within a poll of the change that allowed it,
                // and a change seen then is still worth its (late) time.
                let last = s.load(Ordering::Relaxed);
                for a in &survivors {
                    let Ok(m) = sluice_testkit::metadata::fetch_metadata(*a, Some(&[&topic]))
                    else {
                        continue;
                    };
                    let now = Instant::now();
                    if fenced.is_none() && m.brokers.iter().all(|b| b.node_id != killed) {
                        fenced = Some(now);
                    }
                    let p0 = m
                        .topics
                        .iter()
                        .find(|t| t.name == topic)
                        .and_then(|t| t.partitions.iter().find(|p| p.partition == 0));
                    let moved = p0.is_some_and(|p| match victim {
                        Victim::Leader => p.leader >= 0 && p.leader != killed,
                        Victim::Follower => !p.isr.is_empty() && !p.isr.contains(&killed),
                    });
                    if elected.is_none() && moved {
                        elected = Some(now);
                    }
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (fenced, elected)
        });
        FailoverWatch { stop, handle }
    }

    fn stop(self) -> (Option<Instant>, Option<Instant>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or((None, None))
    }
}

/// A number below `n` that differs between calls (no need for a good
/// generator: it only spreads the kill's phase).
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % n.max(1)
}

/// One failover trial's times from the kill, in ms.
struct Trial {
    ack: f64,
    fenced: Option<f64>,
    elected: Option<f64>,
}

fn produce(
    target: &mut dyn ClusterTarget,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    opts: &ReplicationOptions,
) -> Result<ProduceFigures> {
    load::create_replicated_topic(bootstrap, topic, partitions, 3, TOPIC_CONFIGS)?;
    wait_full_isr(target, topic, partitions)?;
    let leader = leader_of(target, topic, 0).context("a leader")?.0;
    let ids = target.node_ids();
    let cpu0: Vec<(i32, f64)> = ids
        .iter()
        .map(|&id| {
            (
                id,
                target
                    .pid(id)
                    .and_then(procstat::process_cpu_s)
                    .unwrap_or(0.0),
            )
        })
        .collect();
    let t = load::produce_throughput(
        bootstrap,
        &settings(),
        topic,
        partitions,
        opts.record_size,
        opts.mib << 20,
    )?;
    let gb = t.bytes as f64 / 1e9;
    let mut leader_cpu = 0.0;
    let mut followers = Vec::new();
    for (id, c0) in cpu0 {
        let used = target
            .pid(id)
            .and_then(procstat::process_cpu_s)
            .unwrap_or(c0)
            - c0;
        if partitions == 1 && id != leader {
            followers.push(used / gb);
        } else {
            leader_cpu += used / gb;
        }
    }
    Ok(ProduceFigures {
        partitions,
        mb_per_s: t.mb_per_s(),
        records_per_s: t.records_per_s(),
        leader_cpu_s_per_gb: leader_cpu,
        follower_cpu_s_per_gb: followers,
    })
}

/// One kill trial on the one-partition `topic`: the time from the SIGKILL
/// of its leader or of a follower to the first acknowledgement of a record
/// sent after it.
fn failover_trial(target: &mut dyn ClusterTarget, topic: &str, victim: Victim) -> Result<Trial> {
    wait_full_isr(target, topic, 1)?;
    // The nodes' addresses as they are now: a restarted Sluice node
    // listens on a new port, and a producer bootstrapped only from the
    // dead addresses of the first trials would never find the cluster.
    let bootstrap = &bootstrap_of(target);
    let (leader, isr) = leader_of(target, topic, 0).context("a leader")?;
    let killed_node = match victim {
        Victim::Leader => leader,
        Victim::Follower => *isr.iter().find(|&&b| b != leader).context("a follower")?,
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "120000")
        .set("log_level", "3");
    let debug = std::env::var("SLUICE_BENCH_RDKAFKA_DEBUG").ok();
    if let Some(contexts) = &debug {
        config
            .set("debug", contexts)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let producer: FutureProducer<WallClockLog> = config
        .create_with_context(WallClockLog(debug.is_some()))
        .context("producer")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let killed: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let mut watch = None;
    // Clients look for a new leader on timers of their own (librdkafka
    // scans for partitions without a live leader every second from its
    // start), so the kill comes at a random point 1-2 s after the
    // producer's start: a fixed delay would put every trial at the same
    // phase of those timers and round every figure the same way.
    let warm_up = Duration::from_secs(1) + Duration::from_nanos(random_below(1_000_000_000));
    let first_ack = rt.block_on(async {
        let mut pending = tokio::task::JoinSet::new();
        let mut kill_sent = false;
        let started = Instant::now();
        loop {
            if !kill_sent && started.elapsed() > warm_up {
                target.kill(killed_node)?;
                *killed.lock().unwrap() = Some(Instant::now());
                if debug.is_some() {
                    eprintln!("{} [replication] node {killed_node} killed", wall_clock());
                }
                watch = Some(FailoverWatch::start(&*target, topic, killed_node, victim));
                kill_sent = true;
            }
            let sent_after_kill = kill_sent;
            let record = FutureRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(&[7u8; 1024][..]);
            if let Ok(f) = producer.send_result(record) {
                pending.spawn(async move {
                    (
                        sent_after_kill,
                        matches!(f.await, Ok(Ok(_))),
                        Instant::now(),
                    )
                });
            }
            while let Some(done) = pending.try_join_next() {
                let (after, ok, at) = done?;
                if after && ok {
                    return Ok::<Instant, anyhow::Error>(at);
                }
            }
            if started.elapsed() > Duration::from_secs(150) {
                dump_logs(&*target, &format!("stuck-{killed_node}"))?;
                hold_stuck_cluster();
                bail!("no acknowledgement after the {victim:?} kill");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })?;
    let killed_at = killed.lock().unwrap().context("killed")?;
    let since = |t: Instant| t.duration_since(killed_at).as_secs_f64() * 1e3;
    let (fenced, elected) = watch.map(FailoverWatch::stop).unwrap_or((None, None));
    let trial = Trial {
        ack: since(first_ack),
        fenced: fenced.map(since),
        elected: elected.map(since),
    };
    eprintln!(
        "[replication] {victim:?} {killed_node} killed: fenced after {:?} ms, {} after {:?} ms, first acks=all ack after {:.0} ms",
        trial.fenced.map(f64::round),
        if victim == Victim::Leader { "new leader" } else { "out of the ISR" },
        trial.elected.map(f64::round),
        trial.ack
    );
    dump_logs(target, &format!("kill-{killed_node}"))?;
    target.restart(killed_node)?;
    Ok(trial)
}

/// The throughput runs (one and three partitions) and the end-to-end run.
fn load_runs(
    target: &mut dyn ClusterTarget,
    bootstrap: &str,
    tag: u128,
    opts: &ReplicationOptions,
) -> Result<(ProduceFigures, ProduceFigures, load::Latency)> {
    let one = produce(target, bootstrap, &format!("rep1-{tag}"), 1, opts)?;
    eprintln!(
        "[replication] one partition: {}",
        serde_json::to_string(&one)?
    );
    let three = produce(target, bootstrap, &format!("rep3-{tag}"), 3, opts)?;
    eprintln!(
        "[replication] three partitions: {}",
        serde_json::to_string(&three)?
    );
    let e2e_topic = format!("repe2e-{tag}");
    load::create_replicated_topic(bootstrap, &e2e_topic, 1, 3, TOPIC_CONFIGS)?;
    wait_full_isr(target, &e2e_topic, 1)?;
    let e2e = load::end_to_end_latency(
        bootstrap,
        &settings(),
        &e2e_topic,
        opts.e2e_rate_mb_per_s * 1e6,
        opts.record_size,
        Duration::from_secs(opts.e2e_secs),
    )?;
    eprintln!("[replication] end to end: {}", serde_json::to_string(&e2e)?);
    Ok((one, three, e2e))
}

/// The failover producer's librdkafka log, stamped with the wall clock as
/// the nodes' logs are, so a trial's client and server sides line up.
/// With SLUICE_BENCH_RDKAFKA_DEBUG=contexts (librdkafka's `debug`, e.g.
/// `metadata,topic,broker,msg,eos`), it shows where the client spent a
/// failover: which metadata it saw when, and when it sent to whom.
/// Without it, the log is dropped as before.
struct WallClockLog(bool);

impl rdkafka::ClientContext for WallClockLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if self.0 {
            eprintln!("{} rdkafka {level:?} {fac}: {log_message}", wall_clock());
        }
    }
}

/// Now as `seconds.millis` since the epoch (UTC); the nodes' logs stamp
/// the same clock.
fn wall_clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

/// How much each node has logged so far.
fn log_lengths(target: &dyn ClusterTarget) -> Vec<(i32, usize)> {
    target
        .node_ids()
        .into_iter()
        .map(|id| (id, target.output(id).map_or(0, |o| o.len())))
        .collect()
}

/// The gaps (ms) of the controller's "broker heartbeat late" warnings
/// each node logged after `before`.
fn late_heartbeats(target: &dyn ClusterTarget, before: &[(i32, usize)]) -> Vec<i64> {
    let mut gaps = Vec::new();
    for &(id, from) in before {
        let Some(out) = target.output(id) else {
            continue;
        };
        let since = out.get(from..).unwrap_or("");
        gaps.extend(
            since
                .lines()
                .filter(|l| l.contains("broker heartbeat late"))
                .filter_map(|l| {
                    l.split_once("gap_ms=")?
                        .1
                        .split(' ')
                        .next()?
                        .parse::<i64>()
                        .ok()
                }),
        );
    }
    gaps
}

/// With SLUICE_BENCH_FAILOVER_HOLD=seconds: keeps a stuck cluster up that
/// long before stopping it, to look at it from outside (metrics, admin).
fn hold_stuck_cluster() {
    if let Some(secs) = std::env::var("SLUICE_BENCH_FAILOVER_HOLD")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        eprintln!("[replication] stuck: holding the cluster for {secs} s");
        std::thread::sleep(Duration::from_secs(secs));
    }
}

/// With SLUICE_BENCH_FAILOVER_LOGS=dir: each node's log so far, to see
/// where a trial's time went (or where it got stuck).
fn dump_logs(target: &dyn ClusterTarget, tag: &str) -> Result<()> {
    let Ok(dir) = std::env::var("SLUICE_BENCH_FAILOVER_LOGS") else {
        return Ok(());
    };
    for id in target.node_ids() {
        if let Some(out) = target.output(id) {
            let path = std::path::Path::new(&dir).join(format!("node-{id}-{tag}.log"));
            std::fs::write(&path, out).with_context(|| format!("writing {path:?}"))?;
        }
    }
    Ok(())
}

pub fn run(opts: ReplicationOptions) -> Result<()> {
    let overrides = opts
        .overrides
        .iter()
        .map(|kv| kv.split_once('=').context("--override takes key=value"))
        .collect::<Result<Vec<(&str, &str)>>>()?;
    if !overrides.is_empty() && opts.target == "kafka" {
        bail!("--override applies to Sluice targets only");
    }
    let mut target: Box<dyn ClusterTarget> = match opts.target.as_str() {
        "kafka" => Box::new(KafkaTarget::start()?),
        "sluice" => Box::new(SluiceTarget::start_with("sluice", &overrides)?),
        "sluice-kafka-timeouts" => Box::new(SluiceTarget::start_with(
            "sluice (Kafka's broker timeouts)",
            &[super::KAFKA_BROKER_TIMEOUTS, &overrides].concat(),
        )?),
        other => bail!("unknown target {other:?} (known: kafka, sluice, sluice-kafka-timeouts)"),
    };
    let bootstrap = bootstrap_of(target.as_ref());
    let all = registered(target.as_ref()).context("no node answers Metadata")?;
    eprintln!("[replication] {} is up: nodes {all:?}", target.name());
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();

    let watch = FenceWatch::start(target.as_ref());
    let logged_before = log_lengths(target.as_ref());
    let load = if opts.failover_only {
        None
    } else {
        Some(load_runs(target.as_mut(), &bootstrap, tag, &opts)?)
    };
    let fenced_under_load: Vec<i32> = watch.stop().into_iter().collect();
    let late_heartbeats_under_load_ms = late_heartbeats(target.as_ref(), &logged_before);

    let fo_topic = format!("repfo-{tag}");
    load::create_replicated_topic(&bootstrap, &fo_topic, 1, 3, TOPIC_CONFIGS)?;
    let kills = |target: &mut dyn ClusterTarget, victim| {
        (0..opts.failover_trials)
            .map(|_| failover_trial(target, &fo_topic, victim))
            .collect::<Result<Vec<Trial>>>()
    };
    let trials = kills(target.as_mut(), Victim::Leader)?;
    let follower_trials = kills(target.as_mut(), Victim::Follower)?;
    let failover_ms: Vec<f64> = trials.iter().map(|t| t.ack).collect();
    let mut sorted = failover_ms.clone();
    let follower_kill_ms: Vec<f64> = follower_trials.iter().map(|t| t.ack).collect();
    let mut follower_sorted = follower_kill_ms.clone();
    let (one, three, e2e) = match load {
        Some((one, three, e2e)) => (Some(one), Some(three), Some(e2e)),
        None => (None, None, None),
    };
    let report = ReplicationReport {
        target: target.name().to_string(),
        one_partition: one,
        three_partitions: three,
        e2e,
        failover_median_ms: quantile(&mut sorted, 0.5),
        failover_max_ms: quantile(&mut sorted, 1.0),
        failover_ms,
        fenced_ms: trials.iter().map(|t| t.fenced).collect(),
        new_leader_ms: trials.iter().map(|t| t.elected).collect(),
        fenced_under_load,
        late_heartbeats_under_load_ms,
        follower_kill_median_ms: quantile(&mut follower_sorted, 0.5),
        follower_kill_max_ms: quantile(&mut follower_sorted, 1.0),
        follower_kill_ms,
        follower_fenced_ms: follower_trials.iter().map(|t| t.fenced).collect(),
        follower_out_of_isr_ms: follower_trials.iter().map(|t| t.elected).collect(),
    };
    print_report(&report);
    if let Some(out) = &opts.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {out:?}"))?;
    }
    Ok(())
}

fn print_report(r: &ReplicationReport) {
    println!(
        "replication figures: {} (acks=all, RF=3, min.insync.replicas=2)",
        r.target
    );
    for f in [&r.one_partition, &r.three_partitions]
        .into_iter()
        .flatten()
    {
        println!(
            "  produce, {} partition(s): {:.1} MB/s ({:.0} records/s); CPU-s/GB leader{} {:.2}, followers {:?}",
            f.partitions,
            f.mb_per_s,
            f.records_per_s,
            if f.partitions == 1 { "" } else { "s (all nodes)" },
            f.leader_cpu_s_per_gb,
            f.follower_cpu_s_per_gb
                .iter()
                .map(|c| (c * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    if let Some(e) = &r.e2e {
        println!(
            "  end to end at {:.1} MB/s offered: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            e.offered_mb_per_s, e.p50_ms, e.p99_ms, e.p999_ms
        );
    }
    println!(
        "  leader failover (kill -9 -> first acks=all ack), {} trials: median {:.0} ms, max {:.0} ms ({:?})",
        r.failover_ms.len(),
        r.failover_median_ms,
        r.failover_max_ms,
        r.failover_ms.iter().map(|t| t.round()).collect::<Vec<_>>()
    );
    let ms = |v: &[Option<f64>]| {
        v.iter()
            .map(|t| t.map(f64::round))
            .collect::<Vec<Option<f64>>>()
    };
    println!(
        "    of which: killed node fenced after {:?} ms; new leader named after {:?} ms",
        ms(&r.fenced_ms),
        ms(&r.new_leader_ms)
    );
    println!(
        "  follower killed (kill -9 -> first acks=all ack of a record sent after it), {} trials: median {:.0} ms, max {:.0} ms ({:?})",
        r.follower_kill_ms.len(),
        r.follower_kill_median_ms,
        r.follower_kill_max_ms,
        r.follower_kill_ms.iter().map(|t| t.round()).collect::<Vec<_>>()
    );
    println!(
        "    of which: killed follower fenced after {:?} ms; out of the ISR after {:?} ms",
        ms(&r.follower_fenced_ms),
        ms(&r.follower_out_of_isr_ms)
    );
    println!(
        "  nodes fenced while the load ran: {:?}; heartbeats over half a session late: {:?} ms",
        r.fenced_under_load, r.late_heartbeats_under_load_ms
    );
}
