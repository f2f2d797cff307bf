//! `sluice produce TOPIC`: one record per input line (stdin or `--file`).

use std::io::{BufRead, BufReader, IsTerminal as _, Read, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{human_bytes, parse_kv, ConnectArgs};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to produce to.
    topic: String,
    /// Read records from this file instead of stdin (one per line).
    #[arg(long, short = 'f', value_name = "PATH")]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (a line without SEP has no key).
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// Header added to every record (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_kv)]
    headers: Vec<(String, String)>,
    /// Compression codec of the batches.
    #[arg(long, short = 'z', value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Acknowledgements to wait for: 0, 1, all (-1).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: String,
    /// Produce every record to this partition (default: by key hash, or spread when keyless).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// How long the producer waits to fill a batch, in ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

fn parse_acks(s: &str) -> Result<String, String> {
    match s {
        "0" | "1" => Ok(s.to_string()),
        "all" | "-1" => Ok("all".into()),
        _ => Err(format!("acks must be 0, 1, all or -1, not {s:?}")),
    }
}

#[derive(Default)]
struct Delivery {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Shows `N records, X/s` on stderr, only when it is a terminal and the
/// input is large (a file over 1 MiB, or more than 10,000 lines so far).
struct Progress {
    enabled: bool,
    total_bytes: Option<u64>,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn tick(&mut self, records: u64, bytes: u64, started: Instant) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        let large = self.total_bytes.map_or(records > 10_000, |t| t > 1 << 20);
        if !large {
            return;
        }
        self.last = Instant::now();
        let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let line = match self.total_bytes {
            Some(t) if t > 0 => {
                let frac = (bytes as f64 / t as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                format!(
                    "[{}{}] {:>3.0}% {records} records, {rate:.0} records/s",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    frac * 100.0
                )
            }
            _ => format!("{records} records, {rate:.0} records/s"),
        };
        eprint!("\r{line}\x1b[K");
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let connect = &args.connect;
    let producer: BaseProducer<Delivery> = connect
        .client_config()
        .set("acks", &args.acks)
        .set(
            "compression.codec",
            format!("{:?}", args.compression).to_lowercase(),
        )
        .set("linger.ms", args.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            (connect.timeout().as_millis() * 3).to_string(),
        )
        .set("enable.idempotence", "false")
        .create_with_context(Delivery::default())
        .context("cannot create the producer")?;
    // Fail early (exit 3) when the cluster is unreachable, and with a clear
    // message when the topic cannot be used.
    let md = producer
        .client()
        .fetch_metadata(Some(&args.topic), connect.timeout())
        .map_err(|e| connect.map_err("fetching metadata", e))?;
    if let Some(t) = md.topics().iter().find(|t| t.name() == args.topic) {
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            bail!("cannot produce to topic {:?}: {code}", args.topic);
        }
        if let Some(p) = args.partition {
            if p < 0 || p as usize >= t.partitions().len() {
                bail!(
                    "topic {:?} has no partition {p} (it has {})",
                    args.topic,
                    t.partitions().len()
                );
            }
        }
    }

    let (input, total_bytes): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut progress = Progress {
        enabled: !args.no_progress && std::io::stderr().is_terminal(),
        total_bytes,
        last: Instant::now(),
        shown: false,
    };
    let headers = if args.headers.is_empty() {
        None
    } else {
        let mut h = OwnedHeaders::new_with_capacity(args.headers.len());
        for (k, v) in &args.headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        Some(h)
    };
    let sep = args
        .key_separator
        .as_deref()
        .map(str::as_bytes)
        .filter(|s| !s.is_empty());

    let started = Instant::now();
    let mut line = Vec::new();
    let mut records = 0u64;
    let mut bytes_read = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("reading input")?;
        if n == 0 {
            break;
        }
        bytes_read += n as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value) = match sep.and_then(|s| find(&line, s).map(|i| (i, s.len()))) {
            Some((i, l)) => (Some(&line[..i]), &line[i + l..]),
            None => (None, &line[..]),
        };
        let mut rec: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(&args.topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = args.partition {
            rec = rec.partition(p);
        }
        if let Some(h) = &headers {
            rec = rec.headers(h.clone());
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    progress.clear();
                    bail!("cannot produce record {records}: {e}");
                }
            }
        }
        records += 1;
        if records % 1024 == 0 {
            producer.poll(Duration::ZERO);
            progress.tick(records, bytes_read, started);
            if producer.context().failed.load(Ordering::Relaxed) > 0 {
                break;
            }
        }
    }
    let flushed = producer.flush(connect.timeout() * 3);
    progress.clear();
    let elapsed = started.elapsed();
    let ctx = producer.context();
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-6);
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "produced {delivered} records ({}) to {} in {:.2} s: {rate:.0} records/s",
        human_bytes(bytes_read),
        args.topic,
        elapsed.as_secs_f64()
    )?;
    if failed > 0 || delivered < records {
        let first = ctx
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| flushed.err().map(|e| e.to_string()))
            .unwrap_or_else(|| "not acknowledged in time".into());
        bail!(
            "{} of {records} records were not acknowledged: {first}",
            records - delivered
        );
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
