//! The transaction figures of issue 19, one broker (Sluice or the pinned
//! Apache Kafka) on loopback, librdkafka as the client for both:
//!
//! - transactional produce throughput: 1 KiB records, 100 records per
//!   transaction, over 1 and over 8 partitions (MB/s, transactions/s, the
//!   broker's CPU seconds per GB);
//! - commit latency: a transaction of one record, timed from the call to
//!   `commit_transaction` until it returns (the EndTxn round trip) and until
//!   a `read_committed` ListOffsets shows the last stable offset past the
//!   commit marker (the markers written and visible), p50/p99;
//! - `read_committed` consume throughput of the 8-partition topic, with the
//!   broker's CPU seconds per GB, and `read_uncommitted` of the same topic
//!   for reference: [`CONSUME_REPS`] reads each, alternating, medians (one
//!   read of 256 MiB takes well under a second, so a single one mostly
//!   measured the machine's noise).
//!
//! `--target both` runs Kafka, then Sluice, in one run and prints them side
//! by side with the ratios and the machine's load average (`scripts/bench
//! --transactions`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::brokers::{RunningBroker, Target};
use crate::load::{self, ClientSettings};
use crate::procstat::CpuWindow;

/// What to run.
pub struct TxnOptions {
    pub targets: Vec<Target>,
    pub work_dir: PathBuf,
    pub mib: u64,
    pub record_size: usize,
    pub records_per_txn: usize,
    pub commit_samples: usize,
    pub producers: usize,
    pub out: Option<PathBuf>,
}

/// The figures of one target.
#[derive(Debug, Default, serde::Serialize)]
pub struct TxnFigures {
    pub target: String,
    /// (partitions, MB/s, transactions/s, broker CPU s per GB).
    pub produce: Vec<(i32, f64, f64, f64)>,
    /// `commit_transaction` returned (the EndTxn round trip).
    pub end_txn_p50_ms: f64,
    pub end_txn_p99_ms: f64,
    /// The last stable offset passed the commit marker.
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    pub read_committed_mb_per_s: f64,
    pub read_committed_cpu_s_per_gb: f64,
    /// The same topic read in read_uncommitted (medians as above).
    pub read_uncommitted_mb_per_s: f64,
    pub read_uncommitted_cpu_s_per_gb: f64,
    /// Every read: (read_committed, MB/s, CPU s per GB).
    pub consume_runs: Vec<(bool, f64, f64)>,
}

/// Reads of the 8-partition topic in each isolation level.
pub const CONSUME_REPS: usize = 3;

fn client(bootstrap: &str, kv: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("log_level", "3");
    for (k, v) in kv {
        c.set(*k, *v);
    }
    c
}

fn producer(bootstrap: &str, id: &str) -> Result<BaseProducer> {
    let p: BaseProducer = client(
        bootstrap,
        &[
            ("transactional.id", id),
            ("linger.ms", "5"),
            ("batch.size", "1000000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("compression.type", "none"),
            ("transaction.timeout.ms", "60000"),
        ],
    )
    .create()
    .context("transactional producer")?;
    p.init_transactions(Duration::from_secs(60))
        .context("init_transactions")?;
    Ok(p)
}

/// Waits for every delivery report. rust-rdkafka's `flush` (which
/// `commit_transaction` calls first) polls in slices of a whole 100 ms, so a
/// producer that leaves it the delivery reports runs at most ten
/// transactions a second against any broker; polling in 1 ms slices here
/// leaves `commit_transaction` nothing to wait for.
fn drain(p: &BaseProducer) -> Result<()> {
    let t = Instant::now();
    while p.in_flight_count() > 0 {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{} records undelivered after 60 s", p.in_flight_count());
        }
        p.poll(Duration::from_millis(1));
    }
    Ok(())
}

fn send(p: &BaseProducer, topic: &str, partition: i32, value: &[u8]) -> Result<()> {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(value);
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((e, r)) => {
                if !matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ) {
                    bail!("send: {e}");
                }
                record = r;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

/// `total` bytes in transactions of `per_txn` records, round-robin over
/// `partitions`, from `producers` transactional producers at once (each
/// its own transactional id and share); returns (seconds, transactions).
fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    record_size: usize,
    per_txn: usize,
    total: u64,
    producers: usize,
) -> Result<(f64, u64)> {
    let txns = (total / (record_size * per_txn) as u64).max(1);
    let each = txns.div_ceil(producers as u64);
    let ready: Vec<BaseProducer> = (0..producers)
        .map(|i| producer(bootstrap, &format!("bench-{topic}-{i}")))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    let done: Result<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = ready
            .iter()
            .enumerate()
            .map(|(i, p)| {
                s.spawn(move || -> Result<u64> {
                    let value = vec![0x5au8; record_size];
                    let mut next = i as i32 % partitions;
                    for _ in 0..each {
                        p.begin_transaction().context("begin_transaction")?;
                        for _ in 0..per_txn {
                            send(p, topic, next, &value)?;
                            next = (next + 1) % partitions;
                        }
                        drain(p)?;
                        p.commit_transaction(Duration::from_secs(60))
                            .context("commit_transaction")?;
                    }
                    Ok(each)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("producer thread panicked"))?
            })
            .collect()
    });
    Ok((t.elapsed().as_secs_f64(), done?.iter().sum()))
}

/// (EndTxn, commit-to-visible) latencies of `samples` one-record
/// transactions, ms.
fn commit_latency(bootstrap: &str, topic: &str, samples: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let p = producer(bootstrap, &format!("bench-{topic}"))?;
    let c: BaseConsumer = client(
        bootstrap,
        &[
            ("group.id", "bench-lso"),
            ("isolation.level", "read_committed"),
        ],
    )
    .create()
    .context("consumer")?;
    let mut out = Vec::with_capacity(samples);
    let mut end_txn = Vec::with_capacity(samples);
    let mut end = 0i64;
    for _ in 0..samples {
        p.begin_transaction()?;
        send(&p, topic, 0, b"latency")?;
        drain(&p)?;
        // The record, and (after the commit) its marker.
        end += 2;
        let t = Instant::now();
        p.commit_transaction(Duration::from_secs(60))?;
        end_txn.push(t.elapsed().as_secs_f64() * 1e3);
        loop {
            let (_, high) = c.fetch_watermarks(topic, 0, Duration::from_secs(10))?;
            if high >= end - 1 {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("the last stable offset stayed at {high} (want {})", end - 1);
            }
        }
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((end_txn, out))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn start(target: Target, dir: &Path) -> Result<RunningBroker> {
    match target {
        Target::Sluice => {
            RunningBroker::start_sluice(&sluice_testkit::locate_sluice_binary()?, dir, &[])
        }
        Target::Kafka => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            RunningBroker::start_kafka(&root.join("clients/reference-kafka"), dir)
        }
        Target::Sink => bail!("the sink has no transactions"),
    }
}

/// Runs every figure against each target in turn, prints them, and side by
/// side when there are two.
pub fn run(opts: TxnOptions) -> Result<()> {
    let load_before = load_average();
    let figures = opts
        .targets
        .iter()
        .map(|&t| run_one(&opts, t))
        .collect::<Result<Vec<_>>>()?;
    let report = TxnReport {
        load_average_before: load_before,
        load_average_after: load_average(),
        mib: opts.mib,
        producers: opts.producers,
        commit_samples: opts.commit_samples,
        figures,
    };
    if let [kafka, sluice] = &report.figures[..] {
        println!("{}", side_by_side(sluice, kafka, &report));
    }
    if let Some(out) = &opts.out {
        std::fs::write(out, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {out:?}"))?;
    }
    Ok(())
}

/// One run's figures and the conditions they were measured under.
#[derive(Debug, serde::Serialize)]
pub struct TxnReport {
    /// /proc/loadavg (1, 5, 15 minutes) before the first broker started and
    /// after the last stopped: the machine is shared.
    pub load_average_before: String,
    pub load_average_after: String,
    pub mib: u64,
    pub producers: usize,
    pub commit_samples: usize,
    pub figures: Vec<TxnFigures>,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The Markdown table of BENCHMARKS.md: Sluice, Kafka, Sluice / Kafka.
fn side_by_side(s: &TxnFigures, k: &TxnFigures, r: &TxnReport) -> String {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut t =
        String::from("| figure | Sluice | Kafka 4.1.2 | Sluice / Kafka |\n|---|---|---|---|\n");
    for ((parts, smb, stx, scpu), (_, kmb, ktx, kcpu)) in s.produce.iter().zip(&k.produce) {
        t += &format!(
            "| transactional produce, {} partition(s), {} producers | {smb:.1} MB/s, {stx:.0} txn/s | {kmb:.1} MB/s, {ktx:.0} txn/s | {:.2}× |\n",
            parts, r.producers, ratio(*smb, *kmb)
        );
        t += &format!(
            "| broker CPU per GB of it | {scpu:.2} s | {kcpu:.2} s | {:.2}× |\n",
            ratio(*scpu, *kcpu)
        );
    }
    t += &format!(
        "| commit_transaction (EndTxn) p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms | p99 {:.2}× |\n",
        s.end_txn_p50_ms, s.end_txn_p99_ms, k.end_txn_p50_ms, k.end_txn_p99_ms,
        ratio(s.end_txn_p99_ms, k.end_txn_p99_ms)
    );
    t += &format!(
        "| commit to markers visible (LSO past the marker) p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms | p99 {:.2}× |\n",
        s.commit_p50_ms, s.commit_p99_ms, k.commit_p50_ms, k.commit_p99_ms,
        ratio(s.commit_p99_ms, k.commit_p99_ms)
    );
    t += &format!(
        "| read_committed consume, 8 partitions (median of {CONSUME_REPS}) | {:.1} MB/s | {:.1} MB/s | {:.2}× |\n",
        s.read_committed_mb_per_s,
        k.read_committed_mb_per_s,
        ratio(s.read_committed_mb_per_s, k.read_committed_mb_per_s)
    );
    t += &format!(
        "| broker CPU per GB of read_committed consume | {:.2} s | {:.2} s | {:.2}× |\n",
        s.read_committed_cpu_s_per_gb,
        k.read_committed_cpu_s_per_gb,
        ratio(s.read_committed_cpu_s_per_gb, k.read_committed_cpu_s_per_gb)
    );
    t += &format!(
        "| read_uncommitted consume of the same topic (reference) | {:.1} MB/s | {:.1} MB/s | {:.2}× |\n",
        s.read_uncommitted_mb_per_s,
        k.read_uncommitted_mb_per_s,
        ratio(s.read_uncommitted_mb_per_s, k.read_uncommitted_mb_per_s)
    );
    t + &format!(
        "\nload average before / after: {} / {}\n",
        r.load_average_before, r.load_average_after
    )
}

/// Every figure against one target.
fn run_one(opts: &TxnOptions, target: Target) -> Result<TxnFigures> {
    let dir = opts.work_dir.join(format!("txn-{}", target.name()));
    let broker = start(target, &dir)?;
    let bootstrap = broker.bootstrap.clone();
    let total = opts.mib << 20;
    let mut fig = TxnFigures {
        target: target.name().to_string(),
        ..TxnFigures::default()
    };
    for partitions in [1, 8] {
        let topic = format!("txn-produce-{partitions}");
        load::create_topic(&bootstrap, &topic, partitions, &[])?;
        let cpu = CpuWindow::start(Some(broker.pid));
        let (secs, txns) = produce(
            &bootstrap,
            &topic,
            partitions,
            opts.record_size,
            opts.records_per_txn,
            total,
            opts.producers.max(1),
        )?;
        let used = cpu.stop();
        let bytes = txns as f64 * (opts.records_per_txn * opts.record_size) as f64;
        let mb_s = bytes / secs / 1e6;
        let cpu_gb = used.broker_cpu_s / (bytes / 1e9);
        println!(
            "{}: transactional produce, {partitions} partition(s), {} producers: {mb_s:.1} MB/s, {:.0} txn/s, broker {cpu_gb:.2} CPU s/GB",
            fig.target,
            opts.producers,
            txns as f64 / secs
        );
        fig.produce
            .push((partitions, mb_s, txns as f64 / secs, cpu_gb));
    }
    load::create_topic(&bootstrap, "txn-latency", 1, &[])?;
    let (mut end_txn, mut lat) = commit_latency(&bootstrap, "txn-latency", opts.commit_samples)?;
    end_txn.sort_by(f64::total_cmp);
    lat.sort_by(f64::total_cmp);
    fig.end_txn_p50_ms = percentile(&end_txn, 0.5);
    fig.end_txn_p99_ms = percentile(&end_txn, 0.99);
    fig.commit_p50_ms = percentile(&lat, 0.5);
    fig.commit_p99_ms = percentile(&lat, 0.99);
    println!(
        "{}: commit_transaction: p50 {:.2} ms, p99 {:.2} ms; to visible (LSO past the marker): p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        fig.target,
        fig.end_txn_p50_ms,
        fig.end_txn_p99_ms,
        fig.commit_p50_ms,
        fig.commit_p99_ms,
        lat.len()
    );
    let expected = {
        let txns = (total / (opts.record_size * opts.records_per_txn) as u64).max(1);
        let p = opts.producers.max(1) as u64;
        txns.div_ceil(p) * p * (opts.records_per_txn * opts.record_size) as u64
    };
    for _ in 0..CONSUME_REPS {
        for committed in [true, false] {
            let (mb_s, cpu_gb) = consume(&bootstrap, broker.pid, committed, expected)?;
            println!(
                "{}: {} consume: {mb_s:.1} MB/s, broker {cpu_gb:.2} CPU s/GB",
                fig.target,
                isolation(committed)
            );
            fig.consume_runs.push((committed, mb_s, cpu_gb));
        }
    }
    let median = |committed: bool, pick: fn(&(bool, f64, f64)) -> f64| {
        let mut v: Vec<f64> = fig
            .consume_runs
            .iter()
            .filter(|r| r.0 == committed)
            .map(pick)
            .collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    fig.read_committed_mb_per_s = median(true, |r| r.1);
    fig.read_committed_cpu_s_per_gb = median(true, |r| r.2);
    fig.read_uncommitted_mb_per_s = median(false, |r| r.1);
    fig.read_uncommitted_cpu_s_per_gb = median(false, |r| r.2);
    broker.stop()?;
    Ok(fig)
}

fn isolation(committed: bool) -> &'static str {
    if committed {
        "read_committed"
    } else {
        "read_uncommitted"
    }
}

/// One read of the whole 8-partition topic: (MB/s, broker CPU s per GB).
fn consume(bootstrap: &str, pid: u32, committed: bool, expected: u64) -> Result<(f64, f64)> {
    let mut settings = ClientSettings::standard();
    settings
        .consumer
        .insert("isolation.level".into(), isolation(committed).into());
    let cpu = CpuWindow::start(Some(pid));
    let tp = load::consume_throughput(bootstrap, &settings, "txn-produce-8", 8, expected)?;
    let used = cpu.stop();
    Ok((tp.mb_per_s(), used.broker_cpu_s / (tp.bytes as f64 / 1e9)))
}
