//! `sluice-bench reassign`: issue 17's figure for moving a replica with a
//! replication throttle, measured the same way on a 3-node Apache Kafka and
//! a 3-node Sluice (each with its own defaults):
//!
//! 1. a one-partition topic on brokers [1, 2] (`min.insync.replicas=2`) is
//!    filled with `--size-mib` of records (`acks=all`);
//! 2. an idempotent `acks=all` producer keeps writing at
//!    `--produce-mb-per-s` for the whole move;
//! 3. Kafka's own `kafka-reassign-partitions --execute --throttle` moves the
//!    replica of broker 1 to broker 3 (target [3, 2]); the move ends when
//!    Metadata shows [3, 2] with both in sync; `--verify` then clears the
//!    throttle.
//!
//! Printed: the move's duration (from the tool's start), the payload it
//! moved (what was written before it plus what the producer wrote during
//! it) and that rate against the throttle; the producer's figures: errors
//! and the longest run of them, the longest time without any
//! acknowledgement, and acknowledgement latency. Issue 17 asks that the move
//! be bounded by the throttle and that no produce error last over 2 s.
//!
//! As in Kafka, the leader counts its in-sync follower's traffic of the
//! partition against the same throttle, and the first
//! `replication.quota.window.num - 1` windows may pass in one burst.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::Serialize;

use super::{ClusterTarget, KafkaTarget, SluiceTarget};
use crate::load::{self, ClientSettings};

/// What to run.
pub struct ReassignOptions {
    pub target: String,
    /// MiB written before the move.
    pub size_mib: u64,
    /// The throttle, MiB/s (`--throttle` in bytes/s to the tool).
    pub throttle_mib_per_s: f64,
    /// The background producer's rate, MB/s.
    pub produce_mb_per_s: f64,
    pub record_size: usize,
    pub out: Option<PathBuf>,
}

/// What the background producer saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProduceStats {
    pub acked: u64,
    pub errors: u64,
    /// The longest run of failed deliveries: from the first failure after a
    /// success to the next success (or the end).
    pub longest_error_streak_ms: f64,
    /// The longest time between two acknowledgements.
    pub longest_ack_gap_ms: f64,
    pub p50_ack_ms: f64,
    pub p99_ack_ms: f64,
    pub max_ack_ms: f64,
}

#[derive(Serialize)]
pub struct ReassignReport {
    pub target: String,
    pub throttle_bytes_per_s: u64,
    /// Payload written before the move.
    pub filled_bytes: u64,
    /// Payload the producer had acknowledged when the move ended.
    pub produced_during_bytes: u64,
    pub duration_s: f64,
    pub moved_bytes_per_s: f64,
    /// `moved_bytes_per_s / throttle_bytes_per_s`.
    pub rate_vs_throttle: f64,
    pub produce: ProduceStats,
}

/// Running tally of the background producer.
struct Tally {
    stats: ProduceStats,
    acked_bytes: u64,
    last_ack: Option<Instant>,
    /// Set while deliveries fail: when the run of failures began.
    failing_since: Option<Instant>,
    latency_us: hdrhistogram::Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            stats: ProduceStats::default(),
            acked_bytes: 0,
            last_ack: None,
            failing_since: None,
            latency_us: hdrhistogram::Histogram::new(3).expect("histogram"),
        }
    }

    fn delivered(&mut self, ok: bool, sent: Instant, at: Instant, bytes: usize) {
        if !ok {
            self.stats.errors += 1;
            self.failing_since.get_or_insert(at);
            return;
        }
        self.stats.acked += 1;
        self.acked_bytes += bytes as u64;
        if let Some(since) = self.failing_since.take() {
            let ms = at.duration_since(since).as_secs_f64() * 1e3;
            self.stats.longest_error_streak_ms = self.stats.longest_error_streak_ms.max(ms);
        }
        if let Some(last) = self.last_ack {
            let ms = at.saturating_duration_since(last).as_secs_f64() * 1e3;
            self.stats.longest_ack_gap_ms = self.stats.longest_ack_gap_ms.max(ms);
        }
        self.last_ack = Some(self.last_ack.map_or(at, |l| l.max(at)));
        let us = at.duration_since(sent).as_micros() as u64;
        let _ = self.latency_us.record(us.max(1));
    }

    fn finish(&mut self, end: Instant) -> ProduceStats {
        if let Some(since) = self.failing_since {
            let ms = end.duration_since(since).as_secs_f64() * 1e3;
            self.stats.longest_error_streak_ms = self.stats.longest_error_streak_ms.max(ms);
        }
        let h = &self.latency_us;
        self.stats.p50_ack_ms = h.value_at_quantile(0.5) as f64 / 1e3;
        self.stats.p99_ack_ms = h.value_at_quantile(0.99) as f64 / 1e3;
        self.stats.max_ack_ms = h.max() as f64 / 1e3;
        self.stats.clone()
    }
}

/// An idempotent `acks=all` producer writing `record_size`-byte records to
/// `topic`-0 at `bytes_per_s` until `stop`.
fn background_producer(
    bootstrap: String,
    topic: String,
    bytes_per_s: f64,
    record_size: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .set("log_level", "3")
            .create()
            .context("background producer")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let payload = vec![b'r'; record_size];
            let started = Instant::now();
            let mut sent_bytes = 0f64;
            let mut pending = tokio::task::JoinSet::new();
            while !stop.load(Ordering::Acquire) {
                // Paced: whatever the rate allows so far, every 10 ms.
                let allowed = started.elapsed().as_secs_f64() * bytes_per_s;
                while sent_bytes + record_size as f64 <= allowed {
                    sent_bytes += record_size as f64;
                    let record = FutureRecord::<(), [u8]>::to(&topic)
                        .partition(0)
                        .payload(&payload[..]);
                    let sent = Instant::now();
                    match producer.send_result(record) {
                        Ok(f) => {
                            let tally = tally.clone();
                            pending.spawn(async move {
                                let ok = matches!(f.await, Ok(Ok(_)));
                                tally.lock().unwrap().delivered(
                                    ok,
                                    sent,
                                    Instant::now(),
                                    record_size,
                                );
                            });
                        }
                        Err(_) => tally
                            .lock()
                            .unwrap()
                            .delivered(false, sent, sent, record_size),
                    }
                }
                while pending.try_join_next().is_some() {}
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            while pending.join_next().await.is_some() {}
        });
        Ok(())
    })
}

/// The one-partition `topic` on brokers [1, 2], `min.insync.replicas=2`.
fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("admin client")?;
    let assignment: &[&[i32]] = &[&[1, 2]];
    let t = NewTopic::new(topic, 1, TopicReplication::Variable(assignment))
        .set("min.insync.replicas", "2");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    for r in rt.block_on(admin.create_topics([&t], &opts))? {
        if let Err((name, code)) = r {
            bail!("CreateTopics {name}: {code}");
        }
    }
    Ok(())
}

/// `topic`-0's replicas and ISR as the first node that answers says.
fn placement(target: &dyn ClusterTarget, topic: &str) -> Option<(Vec<i32>, BTreeSet<i32>)> {
    target.node_ids().iter().find_map(|&id| {
        let m = sluice_testkit::metadata::fetch_metadata(target.addr(id), Some(&[topic])).ok()?;
        let p = m
            .topics
            .iter()
            .find(|t| t.name == topic)?
            .partitions
            .iter()
            .find(|p| p.partition == 0 && p.leader >= 0)?;
        Some((p.replicas.clone(), p.isr.iter().copied().collect()))
    })
}

/// Polls Metadata every 100 ms until `topic`-0 has `replicas`, all in sync.
fn wait_placed(target: &dyn ClusterTarget, topic: &str, replicas: &[i32]) -> Result<()> {
    let want: BTreeSet<i32> = replicas.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if placement(target, topic).is_some_and(|(r, isr)| r == replicas && isr == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{topic}-0 not on {replicas:?} after an hour");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs Kafka's `kafka-reassign-partitions` with `args`; its stdout.
fn reassign_tool(bootstrap: &str, args: &[&str], plan: &Path) -> Result<String> {
    let lib = sluice_testkit::ReferenceKafka::lib_dir()
        .context("Kafka's tools: no jars in .cache/kafka/lib (set SLUICE_KAFKA_LIB)")?;
    let out = std::process::Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(lib.join("*"))
        .arg("org.apache.kafka.tools.reassign.ReassignPartitionsCommand")
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .arg("--reassignment-json-file")
        .arg(plan)
        .output()
        .context("run java")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "kafka-reassign-partitions {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

pub fn run(opts: ReassignOptions) -> Result<()> {
    let target: Box<dyn ClusterTarget> = match opts.target.as_str() {
        "kafka" => Box::new(KafkaTarget::start()?),
        "sluice" => Box::new(SluiceTarget::start()?),
        other => bail!("unknown target {other:?} (known: kafka, sluice)"),
    };
    let bootstrap = target
        .node_ids()
        .iter()
        .map(|&id| target.addr(id).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let topic = format!(
        "reassign-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    create_topic(&bootstrap, &topic)?;
    wait_placed(target.as_ref(), &topic, &[1, 2])?;
    eprintln!(
        "[reassign] {}: filling {topic} with {} MiB",
        target.name(),
        opts.size_mib
    );
    let mut settings = ClientSettings::standard();
    settings
        .throughput_producer
        .insert("acks".into(), "all".into());
    let fill = load::produce_throughput(
        &bootstrap,
        &settings,
        &topic,
        1,
        opts.record_size,
        opts.size_mib << 20,
    )?;
    eprintln!("[reassign] filled at {:.1} MB/s", fill.mb_per_s());

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::new()));
    let producer = background_producer(
        bootstrap.clone(),
        topic.clone(),
        opts.produce_mb_per_s * 1e6,
        opts.record_size,
        stop.clone(),
        tally.clone(),
    );
    // Let the producer settle before the move.
    std::thread::sleep(Duration::from_secs(3));
    let throttle = (opts.throttle_mib_per_s * (1 << 20) as f64) as u64;
    let dir = std::env::temp_dir().join(format!("sluice-bench-{topic}"));
    std::fs::create_dir_all(&dir)?;
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[3,2]}}]}}"#
        ),
    )?;
    eprintln!("[reassign] moving {topic}-0 from [1, 2] to [3, 2] at {throttle} B/s");
    let acked_before = tally.lock().unwrap().acked_bytes;
    let started = Instant::now();
    let throttle_arg = throttle.to_string();
    reassign_tool(
        &bootstrap,
        &["--execute", "--throttle", &throttle_arg],
        &plan,
    )?;
    wait_placed(target.as_ref(), &topic, &[3, 2])?;
    let duration = started.elapsed();
    let produced_during = tally.lock().unwrap().acked_bytes - acked_before;
    let verified = reassign_tool(&bootstrap, &["--verify"], &plan)?;
    if !verified.contains("Clearing broker-level throttles") {
        eprintln!("[reassign] --verify did not clear the throttles:\n{verified}");
    }
    // Keep producing a little after the move (the leader changed).
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Release);
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    let produce = tally.lock().unwrap().finish(Instant::now());
    let _ = std::fs::remove_dir_all(&dir);
    let moved = fill.bytes + produced_during;
    let rate = moved as f64 / duration.as_secs_f64();
    let report = ReassignReport {
        target: target.name().to_string(),
        throttle_bytes_per_s: throttle,
        filled_bytes: fill.bytes,
        produced_during_bytes: produced_during,
        duration_s: duration.as_secs_f64(),
        moved_bytes_per_s: rate,
        rate_vs_throttle: rate / throttle as f64,
        produce,
    };
    print_report(&report, &opts);
    if let Some(out) = &opts.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {out:?}"))?;
    }
    Ok(())
}

fn print_report(r: &ReassignReport, opts: &ReassignOptions) {
    println!(
        "reassignment figures: {} (1 partition [1, 2] -> [3, 2], min.insync.replicas=2, acks=all producer at {:.1} MB/s)",
        r.target, opts.produce_mb_per_s
    );
    println!(
        "  moved {:.1} MiB ({:.1} filled + {:.1} produced meanwhile) in {:.2} s: {:.2} MiB/s, {:.2} x the {:.2} MiB/s throttle",
        (r.filled_bytes + r.produced_during_bytes) as f64 / (1 << 20) as f64,
        r.filled_bytes as f64 / (1 << 20) as f64,
        r.produced_during_bytes as f64 / (1 << 20) as f64,
        r.duration_s,
        r.moved_bytes_per_s / (1 << 20) as f64,
        r.rate_vs_throttle,
        r.throttle_bytes_per_s as f64 / (1 << 20) as f64,
    );
    let p = &r.produce;
    println!(
        "  producer: {} acknowledged, {} errors, longest error streak {:.0} ms, longest time without an ack {:.0} ms; ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p.acked, p.errors, p.longest_error_streak_ms, p.longest_ack_gap_ms, p.p50_ack_ms, p.p99_ack_ms, p.max_ack_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_streaks_and_ack_gaps_are_measured_between_successes() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = Tally::new();
        t.delivered(true, at(0), at(5), 10);
        t.delivered(false, at(10), at(100), 10);
        t.delivered(false, at(20), at(900), 10);
        t.delivered(true, at(30), at(2_600), 10);
        t.delivered(true, at(2_600), at(2_610), 10);
        t.delivered(false, at(2_700), at(3_000), 10);
        let s = t.finish(at(3_400));
        assert_eq!((s.acked, s.errors), (3, 3));
        assert_eq!(s.longest_error_streak_ms.round(), 2_500.0);
        assert_eq!(s.longest_ack_gap_ms.round(), 2_595.0);
        assert!(
            s.max_ack_ms >= 2_569.0 && s.max_ack_ms <= 2_572.0,
            "{}",
            s.max_ack_ms
        );
    }
}
