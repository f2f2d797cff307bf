//! The benchmark run: ceilings, then per repetition the sink (client ceiling) and
//! Sluice and Kafka alternating A/B, each started on an emptied data directory; then
//! the summary (medians, spreads, ratios, fractions of ceilings, targets).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::brokers::{RunningBroker, Target, KAFKA_JVM_OPTS};
use crate::ceilings;
use crate::evict;
use crate::load::{self, ClientSettings};
use crate::procstat::{self, CpuWindow, RssSampler};
use crate::report::{self, Goal, Results, Row, NOISY_OTHER_CORES};
use crate::sink::TopicShapes;

const MB: f64 = 1e6;

/// Sizes of one run. Runs are sized in bytes, latency runs in seconds at a fixed rate.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mode: &'static str,
    pub reps: usize,
    pub produce_1k_bytes: u64,
    pub produce_100b_bytes: u64,
    pub flush_bytes: u64,
    pub latency_rate_mb_s: f64,
    pub latency_secs: f64,
    pub k7504_rate_mb_s: f64,
    pub k7504_secs: f64,
    pub many_partitions: i32,
    pub many_bytes: u64,
    pub disk_ceiling_bytes: u64,
    pub loopback_ceiling_bytes: u64,
    pub idle_secs: f64,
}

impl Plan {
    pub fn quick() -> Plan {
        Plan {
            mode: "quick",
            reps: 1,
            produce_1k_bytes: 16 << 20,
            produce_100b_bytes: 4 << 20,
            flush_bytes: 2 << 20,
            latency_rate_mb_s: 50.0,
            latency_secs: 2.0,
            k7504_rate_mb_s: 20.0,
            k7504_secs: 1.5,
            many_partitions: 100,
            many_bytes: 8 << 20,
            disk_ceiling_bytes: 128 << 20,
            loopback_ceiling_bytes: 512 << 20,
            idle_secs: 1.0,
        }
    }

    pub fn full() -> Plan {
        Plan {
            mode: "full",
            reps: 3,
            produce_1k_bytes: 512 << 20,
            produce_100b_bytes: 128 << 20,
            flush_bytes: 64 << 20,
            latency_rate_mb_s: 50.0,
            latency_secs: 8.0,
            k7504_rate_mb_s: 20.0,
            k7504_secs: 6.0,
            many_partitions: 1000,
            many_bytes: 128 << 20,
            disk_ceiling_bytes: 1 << 30,
            loopback_ceiling_bytes: 4 << 30,
            idle_secs: 3.0,
        }
    }
}

pub struct RunOptions {
    pub plan: Plan,
    pub sluice_bin: Option<PathBuf>,
    pub kafka_script: Option<PathBuf>,
    /// Raw run directories (broker data and logs), emptied per broker start.
    pub work_dir: PathBuf,
    /// Where results JSON/Markdown go.
    pub out_dir: PathBuf,
    pub targets: Vec<Target>,
    pub command: String,
}

/// (record size, partitions) of the produce scenarios.
const PRODUCE: [(usize, i32); 4] = [(1024, 1), (1024, 8), (100, 1), (100, 8)];

fn produce_scenario(size: usize, parts: i32) -> String {
    let s = if size == 1024 {
        "1 KiB".to_string()
    } else {
        format!("{size} B")
    };
    format!("produce acks=1 {s} × {parts}p")
}
const FLUSH: &str = "produce flush.messages=1 1 KiB × 1p";
const CONSUME: &str = "consume from page cache 1 KiB × 8p";
const E2E: &str = "end-to-end latency 1 KiB × 1p";
const K7504_ALONE: &str = "KAFKA-7504 producer alone";
const K7504_READER: &str = "KAFKA-7504 producer + cold reader";
const K7504_HOT: &str = "KAFKA-7504 producer + hot reader (control)";
const RESOURCES: &str = "resources";
const CEILING: &str = "ceiling";
fn many_produce(p: i32) -> String {
    format!("{p} partitions produce 1 KiB")
}
fn many_consume(p: i32) -> String {
    format!("{p} partitions consume 1 KiB")
}

struct Progress {
    t0: Instant,
}

impl Progress {
    fn say(&self, msg: &str) {
        eprintln!("[{:>6.1}s] {msg}", self.t0.elapsed().as_secs_f64());
    }
}

fn noise_note(cpu: &procstat::CpuUse) -> String {
    if cpu.other_cores > NOISY_OTHER_CORES {
        format!("  NOISY: other processes used {:.2} cores", cpu.other_cores)
    } else {
        format!("  (other processes {:.2} cores)", cpu.other_cores)
    }
}

struct Session<'a> {
    broker: &'a RunningBroker,
    settings: &'a ClientSettings,
    plan: &'a Plan,
    rep: usize,
    res: &'a mut Results,
    progress: &'a Progress,
}

impl Session<'_> {
    fn target(&self) -> Target {
        self.broker.target
    }

    /// Run one scenario; on failure record it and go on.
    fn attempt(&mut self, scenario: &str, f: impl FnOnce(&mut Self) -> Result<()>) {
        if let Err(e) = f(self) {
            let msg = format!("{e:#}");
            self.progress.say(&format!(
                "  {} {scenario}: FAILED: {msg}",
                self.target().name()
            ));
            self.res.failures.push(report::Failure {
                target: self.target(),
                rep: self.rep,
                scenario: scenario.to_string(),
                error: msg,
            });
        }
    }

    fn produce(
        &mut self,
        scenario: &str,
        topic: &str,
        parts: i32,
        size: usize,
        bytes: u64,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let bs = self.broker.bootstrap.clone();
        load::create_topic(&bs, topic, parts, configs)?;
        let w = CpuWindow::start(Some(self.broker.pid));
        let t = load::produce_throughput(&bs, self.settings, topic, parts, size, bytes)?;
        let cpu = w.stop();
        let (tg, rep) = (self.target(), self.rep);
        self.res.push(
            tg,
            rep,
            scenario,
            "throughput",
            "MB/s",
            t.mb_per_s(),
            Some(cpu),
        );
        self.res.push(
            tg,
            rep,
            scenario,
            "records",
            "records/s",
            t.records_per_s(),
            Some(cpu),
        );
        if tg != Target::Sink {
            self.res.push(
                tg,
                rep,
                scenario,
                "broker CPU per GB",
                "CPU-s/GB",
                cpu.broker_cpu_s / (t.bytes as f64 / 1e9),
                Some(cpu),
            );
        }
        self.progress.say(&format!(
            "  {} {scenario}: {:.1} MB/s, {:.0} records/s, broker {:.2} CPU-s{}",
            tg.name(),
            t.mb_per_s(),
            t.records_per_s(),
            cpu.broker_cpu_s,
            noise_note(&cpu)
        ));
        Ok(())
    }

    fn consume(&mut self, scenario: &str, topic: &str, parts: i32, bytes: u64) -> Result<()> {
        let bs = self.broker.bootstrap.clone();
        let w = CpuWindow::start(Some(self.broker.pid));
        let t = load::consume_throughput(&bs, self.settings, topic, parts, bytes)?;
        let cpu = w.stop();
        let (tg, rep) = (self.target(), self.rep);
        self.res.push(
            tg,
            rep,
            scenario,
            "throughput",
            "MB/s",
            t.mb_per_s(),
            Some(cpu),
        );
        self.res.push(
            tg,
            rep,
            scenario,
            "broker CPU per GB served",
            "CPU-s/GB",
            cpu.broker_cpu_s / (t.bytes as f64 / 1e9),
            Some(cpu),
        );
        self.res.push(
            tg,
            rep,
            scenario,
            "time to first record",
            "ms",
            t.startup_secs * 1e3,
            Some(cpu),
        );
        self.progress.say(&format!(
            "  {} {scenario}: {:.1} MB/s after {:.0} ms to the first record, broker {:.3} CPU-s/GB{}",
            tg.name(),
            t.mb_per_s(),
            t.startup_secs * 1e3,
            cpu.broker_cpu_s / (t.bytes as f64 / 1e9),
            noise_note(&cpu)
        ));
        Ok(())
    }

    fn latency(&mut self, scenario: &str, l: &load::Latency, cpu: procstat::CpuUse) {
        let (tg, rep) = (self.target(), self.rep);
        self.res
            .push(tg, rep, scenario, "p50", "ms", l.p50_ms, Some(cpu));
        self.res
            .push(tg, rep, scenario, "p99", "ms", l.p99_ms, Some(cpu));
        self.res
            .push(tg, rep, scenario, "p99.9", "ms", l.p999_ms, Some(cpu));
        self.res.push(
            tg,
            rep,
            scenario,
            "offered rate",
            "MB/s",
            l.offered_mb_per_s,
            Some(cpu),
        );
        self.progress.say(&format!(
            "  {} {scenario}: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms at {:.1} MB/s ({} samples){}",
            tg.name(),
            l.p50_ms,
            l.p99_ms,
            l.p999_ms,
            l.offered_mb_per_s,
            l.count,
            noise_note(&cpu)
        ));
    }
}

/// KAFKA-7504 (see `k7504`): alone, hot reader (control), cold reader.
fn k7504_scenario(s: &mut Session, pid: u32) -> Result<()> {
    use crate::k7504::{run_phase, Reader};
    let (tg, rep, plan) = (s.target(), s.rep, s.plan);
    let bs = s.broker.bootstrap.clone();
    let data = s.broker.data_dir.clone().context("no data dir")?;
    let old = "p1024-1";
    let files = evict::segment_files(&data, old)?;
    anyhow::ensure!(
        !files.is_empty(),
        "no segment files of {old} under {data:?}"
    );
    let dur = Duration::from_secs_f64(plan.k7504_secs);
    let rate = plan.k7504_rate_mb_s * MB;
    let mut alone_p99 = 0.0;
    for (reader, topic, scenario) in [
        (Reader::None, "hot-alone", K7504_ALONE),
        (Reader::Hot, "hot-control", K7504_HOT),
        (Reader::Cold, "hot-reader", K7504_READER),
    ] {
        load::create_topic(&bs, topic, 1, &[])?;
        let p = run_phase(
            &bs,
            s.settings,
            Some(pid),
            old,
            &files,
            topic,
            rate,
            dur,
            reader,
        )?;
        s.latency(scenario, &p.latency, p.cpu);
        s.progress
            .say(&format!("  {} KAFKA-7504 {}", tg.name(), p.line()));
        match reader {
            Reader::None => alone_p99 = p.latency.p99_ms,
            Reader::Hot | Reader::Cold => {
                if reader == Reader::Cold {
                    s.res.push(
                        tg,
                        rep,
                        scenario,
                        "old data resident before reader",
                        "%",
                        p.resident_pct,
                        None,
                    );
                    s.res.push(
                        tg,
                        rep,
                        scenario,
                        "cold bytes read during run",
                        "MB",
                        p.reader_bytes as f64 / MB,
                        None,
                    );
                }
                if alone_p99 > 0.0 {
                    s.res.push(
                        tg,
                        rep,
                        scenario,
                        "p99 with reader / alone",
                        "×",
                        p.latency.p99_ms / alone_p99,
                        None,
                    );
                }
            }
        }
    }
    Ok(())
}

/// All scenarios against Sluice or Kafka (a fresh broker on an empty data dir).
fn broker_session(s: &mut Session) {
    let plan = s.plan.clone();
    let tg = s.target();
    let pid = s.broker.pid;
    std::thread::sleep(Duration::from_secs_f64(plan.idle_secs));
    if let Some(rss) = procstat::rss_bytes(pid) {
        let rep = s.rep;
        s.res
            .push(tg, rep, RESOURCES, "RSS idle", "MB", rss as f64 / MB, None);
    }
    let sampler = RssSampler::start(pid);

    // (1) produce throughput.
    for (size, parts) in PRODUCE {
        let bytes = if size == 1024 {
            plan.produce_1k_bytes
        } else {
            plan.produce_100b_bytes
        };
        let sc = produce_scenario(size, parts);
        s.attempt(&sc, |s| {
            s.produce(&sc, &format!("p{size}-{parts}"), parts, size, bytes, &[])
        });
    }
    // (2) durability: flush.messages=1 on the topic (both brokers fsync before acking).
    s.attempt(FLUSH, |s| {
        s.produce(
            FLUSH,
            "flush1k",
            1,
            1024,
            plan.flush_bytes,
            &[("flush.messages", "1")],
        )
    });
    // (3) consume the 1 KiB × 8p topic just written (page cache).
    s.attempt(CONSUME, |s| {
        s.consume(CONSUME, "p1024-8", 8, plan.produce_1k_bytes)
    });
    // (4) end-to-end latency at a fixed rate.
    s.attempt(E2E, |s| {
        let bs = s.broker.bootstrap.clone();
        load::create_topic(&bs, "e2e", 1, &[])?;
        let w = CpuWindow::start(Some(pid));
        let l = load::end_to_end_latency(
            &bs,
            s.settings,
            "e2e",
            plan.latency_rate_mb_s * MB,
            1024,
            Duration::from_secs_f64(plan.latency_secs),
        )?;
        let cpu = w.stop();
        s.latency(E2E, &l, cpu);
        Ok(())
    });
    // (5) KAFKA-7504: producer latency alone, then with a reader of the same old data
    // while it is resident (the control), then after evicting it (the scenario).
    s.attempt(K7504_READER, |s| k7504_scenario(s, pid));
    // (6) many partitions.
    let (mp, mc) = (
        many_produce(plan.many_partitions),
        many_consume(plan.many_partitions),
    );
    let mut many_ok = false;
    s.attempt(&mp, |s| {
        s.produce(
            &mp,
            "many",
            plan.many_partitions,
            1024,
            plan.many_bytes,
            &[],
        )?;
        many_ok = true;
        Ok(())
    });
    if many_ok {
        s.attempt(&mc, |s| {
            s.consume(&mc, "many", plan.many_partitions, plan.many_bytes)
        });
    }
    // (7) resources.
    let rep = s.rep;
    s.res.push(
        tg,
        rep,
        RESOURCES,
        "RSS peak under load",
        "MB",
        sampler.peak() as f64 / MB,
        None,
    );
    drop(sampler);
    let cpu_prod = s
        .res
        .samples
        .iter()
        .rev()
        .find(|x| {
            x.target == tg
                && x.rep == rep
                && x.scenario == produce_scenario(1024, 8)
                && x.metric == "broker CPU per GB"
        })
        .map(|x| x.value);
    if let Some(v) = cpu_prod {
        s.res.push(
            tg,
            rep,
            RESOURCES,
            "broker CPU per GB produced (1 KiB × 8p)",
            "CPU-s/GB",
            v,
            None,
        );
    }
    let cpu_cons = s
        .res
        .samples
        .iter()
        .rev()
        .find(|x| {
            x.target == tg
                && x.rep == rep
                && x.scenario == CONSUME
                && x.metric == "broker CPU per GB served"
        })
        .map(|x| x.value);
    if let Some(v) = cpu_cons {
        s.res.push(
            tg,
            rep,
            RESOURCES,
            "broker CPU per GB consumed (1 KiB × 8p)",
            "CPU-s/GB",
            v,
            None,
        );
    }
}

/// The client's ceiling: the produce scenarios against the sink.
fn sink_session(s: &mut Session) {
    let plan = s.plan.clone();
    for (size, parts) in PRODUCE {
        let bytes = if size == 1024 {
            plan.produce_1k_bytes
        } else {
            plan.produce_100b_bytes
        };
        let sc = produce_scenario(size, parts);
        s.attempt(&sc, |s| {
            s.produce(&sc, &format!("p{size}-{parts}"), parts, size, bytes, &[])
        });
    }
    let mp = many_produce(plan.many_partitions);
    s.attempt(&mp, |s| {
        s.produce(
            &mp,
            "many",
            plan.many_partitions,
            1024,
            plan.many_bytes,
            &[],
        )
    });
}

/// The batch layouts of the consumed topics in a broker's data directory (those that
/// exist), for the sink to serve the same batches.
fn read_shapes(data: &Path, plan: &Plan) -> Vec<TopicShapes> {
    [("p1024-8", 8), ("many", plan.many_partitions)]
        .into_iter()
        .filter_map(|(t, n)| TopicShapes::from_log_dir(data, t, n).ok())
        .collect()
}

/// The client's consume ceiling at the end of a repetition: a sink serving, from
/// memory, the batch layout of the broker's consumed topics (Sluice's when it ran).
fn consume_ceiling_session(
    opts: &RunOptions,
    settings: &ClientSettings,
    rep: usize,
    shapes: &[TopicShapes],
    res: &mut Results,
    progress: &Progress,
) -> Result<()> {
    let dir = opts.work_dir.join("sink");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("shapes-rep{}.json", rep + 1));
    std::fs::write(&file, serde_json::to_vec(shapes)?)?;
    progress.say("  sink (client consume ceiling): starting");
    let b = RunningBroker::start_sink_serving(&dir, &file)?;
    let mut s = Session {
        broker: &b,
        settings,
        plan: &opts.plan,
        rep,
        res,
        progress,
    };
    ceiling_consume(&mut s);
    b.stop()
}

/// The client's consume ceiling: the same consumer reads, from a sink serving a
/// broker's batch layout from memory, the same topics as the consume scenarios.
fn ceiling_consume(s: &mut Session) {
    let plan = s.plan.clone();
    // The sink builds a topic's log at its first ListOffsets: do that before the
    // timed read, so the read measures serving only.
    s.attempt(CONSUME, |s| {
        crate::fetchstats::prepare(&s.broker.bootstrap, "p1024-8")?;
        s.consume(CONSUME, "p1024-8", 8, plan.produce_1k_bytes)
    });
    let mc = many_consume(plan.many_partitions);
    s.attempt(&mc, |s| {
        crate::fetchstats::prepare(&s.broker.bootstrap, "many")?;
        s.consume(&mc, "many", plan.many_partitions, plan.many_bytes)
    });
}

/// Metric of the page-cache write floor's own rate (JSON only).
const FLOOR_RATE: &str = "page-cache write floor throughput";

/// The page-cache write floor: the produce scenarios against the sink in write mode
/// (one writev per request into a file per topic); records its process CPU per GB
/// as the sink's "broker CPU per GB".
fn floor_session(s: &mut Session) {
    let plan = s.plan.clone();
    for (size, parts) in PRODUCE {
        let bytes = if size == 1024 {
            plan.produce_1k_bytes
        } else {
            plan.produce_100b_bytes
        };
        let sc = produce_scenario(size, parts);
        s.attempt(&format!("{sc} (write floor)"), |s| {
            let bs = s.broker.bootstrap.clone();
            let topic = format!("p{size}-{parts}");
            load::create_topic(&bs, &topic, parts, &[])?;
            let w = CpuWindow::start(Some(s.broker.pid));
            let t = load::produce_throughput(&bs, s.settings, &topic, parts, size, bytes)?;
            let cpu = w.stop();
            let per_gb = cpu.broker_cpu_s / (t.bytes as f64 / 1e9);
            let (tg, rep) = (s.target(), s.rep);
            s.res.push(
                tg,
                rep,
                &sc,
                "broker CPU per GB",
                "CPU-s/GB",
                per_gb,
                Some(cpu),
            );
            s.res
                .push(tg, rep, &sc, FLOOR_RATE, "MB/s", t.mb_per_s(), Some(cpu));
            if (size, parts) == (1024, 8) {
                s.res.push(
                    tg,
                    rep,
                    RESOURCES,
                    "broker CPU per GB produced (1 KiB × 8p)",
                    "CPU-s/GB",
                    per_gb,
                    Some(cpu),
                );
            }
            s.progress.say(&format!(
                "  write floor {sc}: {:.3} CPU-s/GB at {:.1} MB/s{}",
                per_gb,
                t.mb_per_s(),
                noise_note(&cpu)
            ));
            Ok(())
        });
    }
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub mem_total_gib: f64,
    pub kernel: String,
    pub data_filesystem: String,
    pub git_commit: String,
    pub date_utc: String,
}

fn machine(work: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    // The mount whose mount point is the longest prefix of the work dir.
    let work = std::fs::canonicalize(work).unwrap_or_else(|_| work.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let data_filesystem = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && work.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} ({}) on {}", f[1], f[2], f[0])))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, s)| s)
        .unwrap_or_default();
    let cmd = |c: &str, args: &[&str]| {
        std::process::Command::new(c)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    Machine {
        cpu_model,
        cpus: procstat::num_cpus(),
        mem_total_gib: mem_kb / 1024.0 / 1024.0,
        kernel,
        data_filesystem,
        git_commit: cmd("git", &["rev-parse", "--short", "HEAD"]),
        date_utc: cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

#[derive(Serialize)]
pub struct Report {
    pub command: String,
    pub plan: Plan,
    pub machine: Machine,
    pub kafka_jvm_options: &'static str,
    pub client_settings: ClientSettings,
    pub noisy_threshold_other_cores: f64,
    pub summary: Vec<Row>,
    pub stats: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, std::collections::BTreeMap<&'static str, report::Stat>>,
    >,
    pub samples: Vec<report::Sample>,
    pub failures: Vec<report::Failure>,
    pub noisy_samples: usize,
    pub total_secs: f64,
}

pub fn run(opts: &RunOptions) -> Result<Report> {
    let progress = Progress { t0: Instant::now() };
    let plan = &opts.plan;
    let settings = ClientSettings::standard();
    std::fs::create_dir_all(&opts.work_dir)?;
    // Remove the previous run's broker directories (only those this harness creates).
    for e in std::fs::read_dir(&opts.work_dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if (name == "sink" || name.starts_with("sluice-rep") || name.starts_with("kafka-rep"))
            && e.file_type()?.is_dir()
        {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    std::fs::create_dir_all(&opts.out_dir)?;
    progress.say(&format!(
        "sluice-bench {} mode: {} repetition(s), targets {:?}",
        plan.mode, plan.reps, opts.targets
    ));
    progress.say(&format!(
        "client settings (identical for every target): {}",
        serde_json::to_string(&settings)?
    ));
    progress.say(&format!("Kafka JVM: {KAFKA_JVM_OPTS}"));
    let mut res = Results::default();
    for rep in 0..plan.reps {
        progress.say(&format!("== repetition {}/{}", rep + 1, plan.reps));
        // Ceilings of this repetition.
        let cw = CpuWindow::start(None);
        let lo = ceilings::loopback_mbps(plan.loopback_ceiling_bytes)?;
        res.push(
            Target::Sink,
            rep,
            CEILING,
            "loopback TCP",
            "MB/s",
            lo,
            Some(cw.stop()),
        );
        let cw = CpuWindow::start(None);
        let db = ceilings::disk_write_buffered_mbps(&opts.work_dir, plan.disk_ceiling_bytes)?;
        res.push(
            Target::Sink,
            rep,
            CEILING,
            "disk write buffered+fdatasync",
            "MB/s",
            db,
            Some(cw.stop()),
        );
        let cw = CpuWindow::start(None);
        let dd = ceilings::disk_write_direct_mbps(&opts.work_dir, plan.disk_ceiling_bytes)?;
        if let Some(dd) = dd {
            res.push(
                Target::Sink,
                rep,
                CEILING,
                "disk write O_DIRECT 1 MiB",
                "MB/s",
                dd,
                Some(cw.stop()),
            );
        }
        progress.say(&format!(
            "  ceilings: loopback {lo:.0} MB/s, disk buffered+fdatasync {db:.0} MB/s, disk O_DIRECT {}",
            dd.map(|d| format!("{d:.0} MB/s")).unwrap_or_else(|| "n/a".into())
        ));
        // A/B: the order alternates between repetitions (the sink, which measures the
        // client's own ceiling, takes part so it sees the same kind of noise).
        let mut order: Vec<Target> = [Target::Sink, Target::Sluice, Target::Kafka]
            .into_iter()
            .filter(|t| opts.targets.contains(t))
            .collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        // Batch layouts of the consumed topics, read from a broker's data (Sluice's
        // if it ran) for the consume ceiling at the end of the repetition.
        let mut shapes: Option<(Target, Vec<TopicShapes>)> = None;
        for tg in order {
            if tg == Target::Sink {
                progress.say("  sink (client ceiling): starting");
                match RunningBroker::start_sink(&opts.work_dir.join("sink")) {
                    Ok(b) => {
                        let mut s = Session {
                            broker: &b,
                            settings: &settings,
                            plan,
                            rep,
                            res: &mut res,
                            progress: &progress,
                        };
                        sink_session(&mut s);
                        b.stop()?;
                    }
                    Err(e) => progress.say(&format!("  sink failed to start: {e:#}")),
                }
                let floor_dir = opts
                    .work_dir
                    .join("sink")
                    .join(format!("floor-rep{}", rep + 1));
                progress.say("  sink (page-cache write floor): starting");
                match RunningBroker::start_sink_writing(&floor_dir, &floor_dir.join("data")) {
                    Ok(b) => {
                        let mut s = Session {
                            broker: &b,
                            settings: &settings,
                            plan,
                            rep,
                            res: &mut res,
                            progress: &progress,
                        };
                        floor_session(&mut s);
                        b.stop()?;
                    }
                    Err(e) => progress.say(&format!("  floor sink failed to start: {e:#}")),
                }
                let _ = std::fs::remove_dir_all(floor_dir.join("data"));
                continue;
            }
            let dir = opts.work_dir.join(format!("{}-rep{}", tg.name(), rep + 1));
            progress.say(&format!(
                "  {}: starting on an empty data dir {}",
                tg.name(),
                dir.display()
            ));
            let started = match tg {
                Target::Sluice => RunningBroker::start_sluice(
                    opts.sluice_bin.as_deref().context("--sluice-bin")?,
                    &dir,
                    &[],
                ),
                Target::Kafka => RunningBroker::start_kafka(
                    opts.kafka_script.as_deref().context("--kafka-script")?,
                    &dir,
                ),
                Target::Sink => unreachable!("the sink is started above"),
            };
            let b = match started {
                Ok(b) => b,
                Err(e) => {
                    progress.say(&format!("  {} failed to start: {e:#}", tg.name()));
                    res.failures.push(report::Failure {
                        target: tg,
                        rep,
                        scenario: "start".into(),
                        error: format!("{e:#}"),
                    });
                    continue;
                }
            };
            progress.say(&format!(
                "  {}: listening on {} (pid {})",
                tg.name(),
                b.bootstrap,
                b.pid
            ));
            {
                let mut s = Session {
                    broker: &b,
                    settings: &settings,
                    plan,
                    rep,
                    res: &mut res,
                    progress: &progress,
                };
                broker_session(&mut s);
            }
            progress.say(&format!("  {}: stopping", tg.name()));
            let t_stop = Instant::now();
            if let Err(e) = b.stop() {
                progress.say(&format!("  {} stop: {e:#}", tg.name()));
                res.failures.push(report::Failure {
                    target: tg,
                    rep,
                    scenario: "stop".into(),
                    error: format!("{e:#}"),
                });
            }
            progress.say(&format!(
                "  {}: stopped in {:.1} s",
                tg.name(),
                t_stop.elapsed().as_secs_f64()
            ));
            // Free the disk; keep the broker's log for inspection.
            let data = dir.join("data");
            if tg == Target::Sluice || shapes.is_none() {
                let v = read_shapes(&data, plan);
                if !v.is_empty() {
                    shapes = Some((tg, v));
                }
            }
            if data.exists() {
                std::fs::remove_dir_all(&data)?;
            }
        }
        if let Some((from, v)) = shapes.filter(|_| opts.targets.contains(&Target::Sink)) {
            progress.say(&format!(
                "  consume ceiling serves {}'s batch layout",
                from.name()
            ));
            if let Err(e) = consume_ceiling_session(opts, &settings, rep, &v, &mut res, &progress) {
                progress.say(&format!("  consume ceiling failed: {e:#}"));
            }
        }
    }
    let summary = summarize(&res, plan);
    let noisy_samples = res.samples.iter().filter(|s| s.noisy).count();
    Ok(Report {
        command: opts.command.clone(),
        plan: plan.clone(),
        machine: machine(&opts.work_dir),
        kafka_jvm_options: KAFKA_JVM_OPTS,
        client_settings: settings,
        noisy_threshold_other_cores: NOISY_OTHER_CORES,
        summary,
        stats: report::stats_tree(&res),
        samples: res.samples,
        failures: res.failures,
        noisy_samples,
        total_secs: progress.t0.elapsed().as_secs_f64(),
    })
}

/// The bounding ceiling of a throughput figure (MB/s): the smallest of the candidates.
fn bound(res: &Results, candidates: &[(&str, Option<f64>)]) -> Option<(String, f64)> {
    let _ = res;
    candidates
        .iter()
        .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

fn summarize(res: &Results, plan: &Plan) -> Vec<Row> {
    let ceil = |m: &str| res.median(Target::Sink, CEILING, m);
    let loopback = ceil("loopback TCP");
    let disk_buf = ceil("disk write buffered+fdatasync");
    let disk_direct = ceil("disk write O_DIRECT 1 MiB");
    let disk = match (disk_buf, disk_direct) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    // CPU per GB of the page-cache write floor (the sink in write mode) for a row.
    let write_floor = |scenario: &str, metric: &str| {
        res.median(Target::Sink, scenario, metric)
            .map(|v| ("write floor".to_string(), v))
    };
    let mut rows = Vec::new();
    let mut row = |scenario: &str,
                   metric: &str,
                   unit: &str,
                   ceiling: Option<(String, f64)>,
                   goal: Option<Goal>| {
        let sluice = res.stat(Target::Sluice, scenario, metric);
        let kafka = res.stat(Target::Kafka, scenario, metric);
        let sink = res.stat(Target::Sink, scenario, metric);
        if sluice.is_none() && kafka.is_none() && sink.is_none() {
            return;
        }
        let ratio = match (sluice, kafka) {
            (Some(s), Some(k)) if k.median != 0.0 => Some(s.median / k.median),
            _ => None,
        };
        let fraction = match (sluice, &ceiling) {
            (Some(s), Some((_, c))) if *c > 0.0 => Some(s.median / c),
            _ => None,
        };
        let (goal_text, goal_met) = judge(
            goal,
            sluice.map(|s| s.median),
            kafka.map(|k| k.median),
            ceiling.as_ref().map(|c| c.1),
        );
        rows.push(Row {
            scenario: scenario.to_string(),
            metric: metric.to_string(),
            unit: unit.to_string(),
            sluice,
            kafka,
            sink,
            ratio,
            ceiling_name: ceiling.as_ref().map(|c| c.0.clone()),
            ceiling: ceiling.map(|c| c.1),
            fraction_of_ceiling: fraction,
            goal,
            goal_text,
            goal_met,
        });
    };
    let produce_bound = |scenario: &str| {
        bound(
            res,
            &[
                ("sink", res.median(Target::Sink, scenario, "throughput")),
                ("loopback", loopback),
                ("disk", disk),
            ],
        )
    };
    for (size, parts) in PRODUCE {
        let sc = produce_scenario(size, parts);
        let b = produce_bound(&sc);
        row(
            &sc,
            "throughput",
            "MB/s",
            b.clone(),
            Some(Goal::RatioAtLeast(2.0)),
        );
        let b_rec = b.map(|(n, v)| (n, v * MB / size as f64));
        row(
            &sc,
            "records",
            "records/s",
            b_rec,
            Some(Goal::RatioAtLeast(2.0)),
        );
        row(
            &sc,
            "broker CPU per GB",
            "CPU-s/GB",
            write_floor(&sc, "broker CPU per GB"),
            None,
        );
    }
    let fb = bound(
        res,
        &[
            (
                "sink",
                res.median(Target::Sink, &produce_scenario(1024, 1), "throughput"),
            ),
            ("disk", disk),
        ],
    );
    row(FLUSH, "throughput", "MB/s", fb, None);
    row(FLUSH, "records", "records/s", None, None);
    let consume_bound = |scenario: &str| {
        bound(
            res,
            &[
                ("sink", res.median(Target::Sink, scenario, "throughput")),
                ("loopback", loopback),
            ],
        )
    };
    row(
        CONSUME,
        "throughput",
        "MB/s",
        consume_bound(CONSUME),
        Some(Goal::RatioAtLeast(1.0)),
    );
    row(
        CONSUME,
        "broker CPU per GB served",
        "CPU-s/GB",
        None,
        Some(Goal::RatioAtMost(0.5)),
    );
    row(CONSUME, "time to first record", "ms", None, None);
    for m in ["p50", "p99", "p99.9"] {
        let goal = (m == "p99").then_some(Goal::AtMostAndRatioAtMost(1.0, 0.2));
        row(E2E, m, "ms", None, goal);
    }
    row(E2E, "offered rate", "MB/s", None, None);
    for m in ["p50", "p99"] {
        row(K7504_ALONE, m, "ms", None, None);
        row(K7504_HOT, m, "ms", None, None);
        row(K7504_READER, m, "ms", None, None);
    }
    row(K7504_HOT, "p99 with reader / alone", "×", None, None);
    row(
        K7504_READER,
        "p99 with reader / alone",
        "×",
        None,
        Some(Goal::AtMost(1.2)),
    );
    row(
        K7504_READER,
        "old data resident before reader",
        "%",
        None,
        None,
    );
    row(K7504_READER, "cold bytes read during run", "MB", None, None);
    let mp = many_produce(plan.many_partitions);
    let b = produce_bound(&mp);
    row(&mp, "throughput", "MB/s", b, Some(Goal::RatioAtLeast(2.0)));
    row(
        &many_consume(plan.many_partitions),
        "throughput",
        "MB/s",
        consume_bound(&many_consume(plan.many_partitions)),
        Some(Goal::RatioAtLeast(1.0)),
    );
    row(
        &many_consume(plan.many_partitions),
        "time to first record",
        "ms",
        None,
        None,
    );
    row(RESOURCES, "RSS idle", "MB", None, None);
    row(
        RESOURCES,
        "RSS peak under load",
        "MB",
        None,
        Some(Goal::RatioAtMost(0.1)),
    );
    row(
        RESOURCES,
        "broker CPU per GB produced (1 KiB × 8p)",
        "CPU-s/GB",
        write_floor(RESOURCES, "broker CPU per GB produced (1 KiB × 8p)"),
        Some(Goal::AtMost(0.3)),
    );
    row(
        RESOURCES,
        "broker CPU per GB consumed (1 KiB × 8p)",
        "CPU-s/GB",
        None,
        None,
    );
    for m in [
        "loopback TCP",
        "disk write buffered+fdatasync",
        "disk write O_DIRECT 1 MiB",
    ] {
        row(CEILING, m, "MB/s", None, None);
    }
    rows
}

/// (text, met) for a goal given medians; `met` is None when a needed figure is missing.
fn judge(
    goal: Option<Goal>,
    sluice: Option<f64>,
    kafka: Option<f64>,
    ceiling: Option<f64>,
) -> (Option<String>, Option<bool>) {
    let Some(goal) = goal else {
        return (None, None);
    };
    match goal {
        Goal::RatioAtLeast(x) => {
            let Some(k) = kafka else {
                return (Some(format!("≥ {x}× Kafka")), None);
            };
            let want = x * k;
            match ceiling {
                // A "ceiling" that Kafka itself exceeded did not bound this
                // scenario (the sink was slower at it than a broker), so it
                // cannot stand in for the relative target.
                Some(c) if want > c && k <= c => {
                    let t = 0.9 * c;
                    (
                        Some(format!(
                            "≥ 90% of ceiling = {} (as {x}× Kafka = {} exceeds the ceiling)",
                            report::fmt_num(t),
                            report::fmt_num(want)
                        )),
                        sluice.map(|s| s >= t),
                    )
                }
                _ => (
                    Some(format!("≥ {x}× Kafka = {}", report::fmt_num(want))),
                    sluice.map(|s| s >= want),
                ),
            }
        }
        Goal::RatioAtMost(x) => {
            let Some(k) = kafka else {
                return (Some(format!("≤ {x}× Kafka")), None);
            };
            (
                Some(format!("≤ {x}× Kafka = {}", report::fmt_num(x * k))),
                sluice.map(|s| s <= x * k),
            )
        }
        Goal::AtMost(x) => {
            let (t, text) = report::at_most_goal(x, ceiling);
            (Some(text), sluice.map(|s| s <= t))
        }
        Goal::AtMostAndRatioAtMost(a, r) => match kafka {
            Some(k) => (
                Some(format!(
                    "≤ {a} and ≤ {r}× Kafka = {}",
                    report::fmt_num(r * k)
                )),
                sluice.map(|s| s <= a && s <= r * k),
            ),
            None => (Some(format!("≤ {a} and ≤ {r}× Kafka")), None),
        },
    }
}

/// The Markdown section for BENCHMARKS.md.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    s.push_str(&format!(
        "Latest {} run: {} (commit `{}`), {:.0} s.\n\n",
        r.plan.mode, m.date_utc, m.git_commit, r.total_secs
    ));
    s.push_str(&format!("Command: `{}`\n\n", r.command));
    s.push_str(&format!(
        "Machine: {} × {}, {:.1} GiB RAM, kernel {}, data on {}. Kafka JVM: `{}`.\n\n",
        m.cpus, m.cpu_model, m.mem_total_gib, m.kernel, m.data_filesystem, r.kafka_jvm_options
    ));
    s.push_str(&format!(
        "Medians of {} run(s) per broker, [min–max] spread; Sluice and Kafka alternate A/B, each on an emptied data directory. \
         `!` marks a figure where at least one run was noisy (other processes used more than {} cores on average). \
         {} of {} measurements were noisy. Ratio = Sluice / Kafka. Ceilings are measured in the same run; \
         \"bounding ceiling\" is the smallest of the client's own ceiling (the same load against the bench sink: produce acknowledged and discarded; consume served from memory in the batch layout of Sluice's topic), loopback TCP and disk write bandwidth. \
         For broker CPU per GB produced it is the page-cache write floor: the sink in write mode (one writev of each request's records into a file per topic in the data directory, no validation, no index), its process CPU per GB; \
         where an absolute CPU target lies below that floor the target becomes the floor / 0.9.\n\n",
        r.plan.reps, r.noisy_threshold_other_cores, r.noisy_samples, r.samples.iter().filter(|x| x.cpu.is_some()).count()
    ));
    for l in report::table_lines(&r.summary, true) {
        s.push_str(&l);
        s.push('\n');
    }
    s.push_str("\nClient (librdkafka via the rdkafka crate), identical for every target:\n\n");
    s.push_str(&format!(
        "- throughput producer: `{}`\n",
        kv(&r.client_settings.throughput_producer)
    ));
    s.push_str(&format!(
        "- latency producer: `{}`\n",
        kv(&r.client_settings.latency_producer)
    ));
    s.push_str(&format!(
        "- consumer (assign from the earliest offset; no group membership, no commits): `{}`\n",
        kv(&r.client_settings.consumer)
    ));
    s.push_str(&format!(
        "\nSizes: produce {} MiB (1 KiB records) / {} MiB (100 B), flush.messages=1 {} MiB, end-to-end {:.0} MB/s for {:.0} s, \
         KAFKA-7504 {:.0} MB/s for {:.0} s per phase, {} partitions × {} MiB.\n",
        r.plan.produce_1k_bytes >> 20, r.plan.produce_100b_bytes >> 20, r.plan.flush_bytes >> 20,
        r.plan.latency_rate_mb_s, r.plan.latency_secs, r.plan.k7504_rate_mb_s, r.plan.k7504_secs,
        r.plan.many_partitions, r.plan.many_bytes >> 20
    ));
    if !r.failures.is_empty() {
        s.push_str("\nFailed scenarios:\n\n");
        for f in &r.failures {
            s.push_str(&format!(
                "- {} rep {} {}: {}\n",
                f.target.name(),
                f.rep + 1,
                f.scenario,
                f.error.replace('\n', " ")
            ));
        }
    }
    s.push_str("\n![throughput](bench/throughput.png)\n\n![latency](bench/latency.png)\n");
    s
}

fn kv(m: &std::collections::BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub const SECTION_BEGIN: &str =
    "<!-- sluice-bench:begin (generated by scripts/bench --full; edit crates/bench instead) -->";
pub const SECTION_END: &str = "<!-- sluice-bench:end -->";

/// Replace (or append) the generated section of BENCHMARKS.md, leaving everything else.
pub fn splice_section(doc: &str, body: &str) -> String {
    let section = format!("{SECTION_BEGIN}\n{body}{SECTION_END}\n");
    match (doc.find(SECTION_BEGIN), doc.find(SECTION_END)) {
        (Some(a), Some(b)) if b > a => {
            let end = b + SECTION_END.len();
            let end = if doc[end..].starts_with('\n') {
                end + 1
            } else {
                end
            };
            format!("{}{}{}", &doc[..a], section, &doc[end..])
        }
        _ => {
            let mut d = doc.to_string();
            if !d.is_empty() && !d.ends_with('\n') {
                d.push('\n');
            }
            d.push_str("\n## Sluice vs Apache Kafka (scripts/bench)\n\n");
            d.push_str(&section);
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_keeps_other_sections_and_replaces_its_own() {
        let doc = "# Benchmarks\n\n## Storage engine\n\nnumbers\n";
        let once = splice_section(doc, "first\n");
        assert!(once.starts_with(doc));
        assert!(once.contains("first\n"));
        let twice = splice_section(&once, "second\n");
        assert!(twice.contains("second\n") && !twice.contains("first\n"));
        assert!(twice.contains("## Storage engine\n\nnumbers\n"));
        assert_eq!(twice.matches(SECTION_BEGIN).count(), 1);
    }

    #[test]
    fn goal_is_capped_at_ninety_percent_of_the_ceiling() {
        // 2 × Kafka (800) exceeds the ceiling (600): the target becomes 540.
        let (t, met) = judge(
            Some(Goal::RatioAtLeast(2.0)),
            Some(550.0),
            Some(400.0),
            Some(600.0),
        );
        assert!(t.unwrap().contains("90% of ceiling"));
        assert_eq!(met, Some(true));
        let (_, met) = judge(
            Some(Goal::RatioAtLeast(2.0)),
            Some(700.0),
            Some(400.0),
            Some(10_000.0),
        );
        assert_eq!(met, Some(false));
        // Kafka (350) above the sink's figure (260): that figure is no ceiling,
        // so the plain 1× Kafka target stays.
        let (t, met) = judge(
            Some(Goal::RatioAtLeast(1.0)),
            Some(300.0),
            Some(350.0),
            Some(260.0),
        );
        assert!(!t.unwrap().contains("ceiling"));
        assert_eq!(met, Some(false));
        let (_, met) = judge(
            Some(Goal::AtMostAndRatioAtMost(1.0, 0.2)),
            Some(0.5),
            Some(5.0),
            None,
        );
        assert_eq!(met, Some(true));
        let (_, met) = judge(Some(Goal::RatioAtMost(0.5)), Some(1.0), None, None);
        assert_eq!(met, None);
        // An absolute cost target below the same-run floor (0.54) becomes floor / 0.9.
        let (t, met) = judge(Some(Goal::AtMost(0.3)), Some(0.59), None, Some(0.54));
        assert!(t.unwrap().contains("floor / 0.9 = 0.600"));
        assert_eq!(met, Some(true));
        let (_, met) = judge(Some(Goal::AtMost(0.3)), Some(0.61), None, Some(0.54));
        assert_eq!(met, Some(false));
        // Above the floor it stays absolute.
        let (t, met) = judge(Some(Goal::AtMost(0.3)), Some(0.31), None, Some(0.2));
        assert_eq!((t.as_deref(), met), (Some("≤ 0.3"), Some(false)));
    }
}
