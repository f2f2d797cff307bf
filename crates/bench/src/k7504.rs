//! The KAFKA-7504 scenario: producer latency at a fixed rate alone, then while a
//! second consumer reads a topic of old data — once with that data resident in the
//! page cache (the "hot reader", a control) and once after evicting it (the "cold
//! reader", the scenario itself).
//!
//! The control separates two causes of a producer p99 that rises with a reader: if
//! hot ≈ cold, it is the reader's load on the machine's cores (client + broker
//! copying the same bytes), which any broker pays; if cold ≫ hot, it is the
//! broker's cold-read path (disk waits or page-cache insertion on a thread the
//! producer needs).
//!
//! Used by `sluice-bench run` (scenario 5) and on its own by
//! `sluice-bench kafka7504 --bootstrap HOST:PORT --data-dir DIR [--pid PID]`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;

use crate::evict;
use crate::load::{self, ClientSettings, Latency};
use crate::procstat::{CpuUse, CpuWindow};
use crate::schedstat;

/// The three phases of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The producer alone.
    None,
    /// A reader of the old topic, every page of it resident before the reader starts.
    Hot,
    /// A reader of the old topic, every page of it evicted before the reader starts.
    Cold,
}

impl Reader {
    pub fn name(self) -> &'static str {
        match self {
            Reader::None => "alone",
            Reader::Hot => "hot reader",
            Reader::Cold => "cold reader",
        }
    }

    pub fn parse(s: &str) -> Option<Reader> {
        match s {
            "alone" => Some(Reader::None),
            "hot" => Some(Reader::Hot),
            "cold" => Some(Reader::Cold),
            _ => None,
        }
    }
}

/// One phase's measurements.
#[derive(Debug, Clone)]
pub struct Phase {
    pub reader: Reader,
    pub latency: Latency,
    pub cpu: CpuUse,
    /// Share of the old topic's segment bytes resident when the reader started (%).
    pub resident_pct: f64,
    /// Payload bytes the reader received during the phase.
    pub reader_bytes: u64,
    /// From the reader's first to its last record (s); 0 without a reader.
    pub reader_secs: f64,
    /// Broker threads during the phase: (tid, name, ms on CPU, ms runnable but waiting).
    pub broker_threads: Vec<(u32, String, f64, f64)>,
    /// The load generator's threads (producer and reader clients), the same way.
    pub client_threads: Vec<(u32, String, f64, f64)>,
}

impl Phase {
    pub fn reader_mb_per_s(&self) -> f64 {
        if self.reader_secs > 0.0 {
            self.reader_bytes as f64 / 1e6 / self.reader_secs
        } else {
            0.0
        }
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        let l = &self.latency;
        let mut s = format!(
            "{:<12} p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples at {:.1} MB/s)  broker {:.2} CPU-s, client {:.2} CPU-s, other processes {:.2} cores",
            self.reader.name(),
            l.p50_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            l.count,
            l.offered_mb_per_s,
            self.cpu.broker_cpu_s,
            self.cpu.client_cpu_s,
            self.cpu.other_cores,
        );
        if self.reader != Reader::None {
            s.push_str(&format!(
                "; old data {:.0}% resident, reader {:.1} MB in {:.2} s ({:.0} MB/s)",
                self.resident_pct,
                self.reader_bytes as f64 / 1e6,
                self.reader_secs,
                self.reader_mb_per_s()
            ));
        }
        if !self.broker_threads.is_empty() {
            s.push_str(&format!(
                "\n             broker threads (ms on CPU/ms waiting): {}",
                schedstat::describe(&self.broker_threads, 6)
            ));
        }
        s.push_str(&format!(
            "\n             client threads (ms on CPU/ms waiting): {}",
            schedstat::describe(&self.client_threads, 6)
        ));
        s
    }
}

/// Runs one phase: brings the old topic's `files` into the wanted page-cache state,
/// starts the reader (unless `Reader::None`), and measures producer latency on
/// `producer_topic` at `rate_bps` for `duration`.
#[allow(clippy::too_many_arguments)]
pub fn run_phase(
    bootstrap: &str,
    settings: &ClientSettings,
    broker_pid: Option<u32>,
    old_topic: &str,
    files: &[PathBuf],
    producer_topic: &str,
    rate_bps: f64,
    duration: Duration,
    reader: Reader,
) -> Result<Phase> {
    match reader {
        Reader::None => {}
        Reader::Hot => evict::make_resident(files)?,
        Reader::Cold => evict::evict(files)?,
    }
    let (res, total) = evict::residency(files)?;
    let resident_pct = 100.0 * res as f64 / total.max(1) as f64;
    let me = std::process::id();
    let (b0, c0) = (
        broker_pid
            .map(schedstat::Snapshot::take)
            .unwrap_or_default(),
        schedstat::Snapshot::take(me),
    );
    let w = CpuWindow::start(broker_pid);
    let bg = match reader {
        Reader::None => None,
        Reader::Hot | Reader::Cold => Some(TimedReader::start(bootstrap, settings, old_topic)?),
    };
    let latency = load::produce_latency(
        bootstrap,
        settings,
        producer_topic,
        rate_bps,
        1024,
        duration,
    );
    let (reader_bytes, reader_secs) = match bg {
        Some(r) => r.stop()?,
        None => (0, 0.0),
    };
    let cpu = w.stop();
    let broker_threads = broker_pid
        .map(|p| schedstat::Snapshot::take(p).since(&b0))
        .unwrap_or_default();
    let client_threads = schedstat::Snapshot::take(me).since(&c0);
    Ok(Phase {
        reader,
        latency: latency?,
        cpu,
        resident_pct,
        reader_bytes,
        reader_secs,
        broker_threads,
        client_threads,
    })
}

/// A consumer of one partition from the beginning that notes when its first and
/// last records arrived (a cold reader can finish the topic well inside the phase).
struct TimedReader {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<(u64, f64)>>>,
}

impl TimedReader {
    fn start(bootstrap: &str, settings: &ClientSettings, topic: &str) -> Result<TimedReader> {
        let c: BaseConsumer = load::consumer(bootstrap, settings, topic, 1)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || -> Result<(u64, f64)> {
            let bytes = AtomicU64::new(0);
            let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
            while !s.load(Ordering::Relaxed) {
                match c.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        bytes.fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => return Err(anyhow!("reader: {e}")),
                }
            }
            let secs = match (first, last) {
                (Some(a), Some(b)) => (b - a).as_secs_f64(),
                _ => 0.0,
            };
            Ok((bytes.load(Ordering::Relaxed), secs))
        });
        Ok(TimedReader {
            stop,
            handle: Some(handle),
        })
    }

    fn stop(mut self) -> Result<(u64, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow!("reader panicked"))?,
            None => Ok((0, 0.0)),
        }
    }
}

impl Drop for TimedReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Options of the `kafka7504` subcommand.
pub struct Standalone {
    pub bootstrap: String,
    pub data_dir: PathBuf,
    pub pid: Option<u32>,
    pub old_topic: String,
    pub old_mib: u64,
    pub rate_mb_s: f64,
    pub secs: f64,
    pub phases: Vec<Reader>,
    pub reps: usize,
}

/// `sluice-bench kafka7504`: writes the old topic if it has no data yet, then runs the
/// phases `reps` times, printing each phase and the p99 ratios of every repetition.
pub fn standalone(o: &Standalone) -> Result<()> {
    let settings = ClientSettings::standard();
    let mut files = evict::segment_files(&o.data_dir, &o.old_topic).unwrap_or_default();
    let have: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    if have < (o.old_mib << 20) / 2 {
        load::create_topic(&o.bootstrap, &o.old_topic, 1, &[])?;
        let t = load::produce_throughput(
            &o.bootstrap,
            &settings,
            &o.old_topic,
            1,
            1024,
            o.old_mib << 20,
        )?;
        println!(
            "wrote the old topic {}: {:.1} MB at {:.0} MB/s",
            o.old_topic,
            t.bytes as f64 / 1e6,
            t.mb_per_s()
        );
        files = evict::segment_files(&o.data_dir, &o.old_topic)?;
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no segment files of {} under {:?}",
        o.old_topic,
        o.data_dir
    );
    let topic = "k7504-producer";
    load::create_topic(&o.bootstrap, topic, 1, &[])?;
    let dur = Duration::from_secs_f64(o.secs);
    let mut alone_p99 = Vec::new();
    let mut ratios: Vec<(Reader, f64)> = Vec::new();
    for rep in 0..o.reps {
        let mut alone = None;
        for &r in &o.phases {
            let p = run_phase(
                &o.bootstrap,
                &settings,
                o.pid,
                &o.old_topic,
                &files,
                topic,
                o.rate_mb_s * 1e6,
                dur,
                r,
            )
            .with_context(|| format!("rep {} {}", rep + 1, r.name()))?;
            println!("rep {} {}", rep + 1, p.line());
            if r == Reader::None {
                alone = Some(p.latency.p99_ms);
                alone_p99.push(p.latency.p99_ms);
            } else if let Some(a) = alone.filter(|a| *a > 0.0) {
                let x = p.latency.p99_ms / a;
                println!("rep {} p99 {} / alone: {:.2}x", rep + 1, r.name(), x);
                ratios.push((r, x));
            }
        }
    }
    for r in [Reader::Hot, Reader::Cold] {
        let mut xs: Vec<f64> = ratios
            .iter()
            .filter(|(k, _)| *k == r)
            .map(|(_, x)| *x)
            .collect();
        if xs.is_empty() {
            continue;
        }
        xs.sort_by(f64::total_cmp);
        println!(
            "p99 {} / alone: median {:.2}x [{:.2}–{:.2}] over {} rep(s)",
            r.name(),
            xs[xs.len() / 2],
            xs[0],
            xs[xs.len() - 1],
            xs.len()
        );
    }
    Ok(())
}
