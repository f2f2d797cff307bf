//! Load generation with librdkafka (the `rdkafka` crate). Every broker — Sluice,
//! Kafka and the sink — is driven by these functions with the same client settings
//! ([`ClientSettings`]), which the report prints.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// The client settings, identical for every target. Printed in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientSettings {
    pub throughput_producer: BTreeMap<String, String>,
    pub latency_producer: BTreeMap<String, String>,
    pub consumer: BTreeMap<String, String>,
}

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl ClientSettings {
    pub fn standard() -> ClientSettings {
        let common = [
            ("acks", "1"),
            ("compression.type", "none"),
            ("enable.idempotence", "false"),
            ("batch.size", "1000000"),
            ("batch.num.messages", "10000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("queue.buffering.max.messages", "1000000"),
            ("max.in.flight.requests.per.connection", "5"),
            ("message.timeout.ms", "120000"),
        ];
        let mut tp = map(&common);
        tp.insert("linger.ms".into(), "5".into());
        let mut lp = map(&common);
        lp.insert("linger.ms".into(), "0".into());
        ClientSettings {
            throughput_producer: tp,
            latency_producer: lp,
            consumer: map(&[
                ("group.id", "sluice-bench"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("fetch.wait.max.ms", "100"),
                ("fetch.min.bytes", "1"),
                ("max.partition.fetch.bytes", "1048576"),
                ("fetch.max.bytes", "52428800"),
                ("queued.max.messages.kbytes", "65536"),
            ]),
        }
    }
}

fn config(bootstrap: &str, kv: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("client.id", "sluice-bench");
    c.set("log_level", "3");
    for (k, v) in kv {
        c.set(k, v);
    }
    c
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since a process-wide epoch: written into payloads, compared on receipt.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A payload starts with the send time ([`now_ns`], 8 bytes) and the run id
/// (8 bytes), both little-endian.
const STAMP_LEN: usize = 16;

/// A random id for one latency run, carried in each of its records so a
/// consumer can tell them from earlier runs' records in the same topic.
fn new_run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ns());
    h.write_u32(std::process::id());
    h.finish()
}

fn payload(size: usize) -> Vec<u8> {
    (0..size.max(STAMP_LEN))
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect()
}

/// Create `name` with `partitions` partitions and topic `configs`; waits until
/// metadata shows a leader for every partition.
pub fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    create_replicated_topic(bootstrap, name, partitions, 1, configs)
}

/// [`create_topic`] with `replication_factor` replicas per partition.
pub fn create_replicated_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap, &BTreeMap::new())
        .create()
        .context("admin client")?;
    let mut t = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    let res = rt
        .block_on(admin.create_topics([&t], &opts))
        .with_context(|| format!("CreateTopics {name}"))?;
    for r in res {
        if let Err((topic, code)) = r {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                bail!("CreateTopics {topic}: {code}");
            }
        }
    }
    // Wait for every partition to have a leader.
    let probe: BaseConsumer = config(bootstrap, &BTreeMap::new()).create()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(md) = probe.fetch_metadata(Some(name), Duration::from_secs(10)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == name) {
                if t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
                {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("topic {name} not ready after 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[derive(Default)]
struct CountingContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Delivery latency (send → delivery report), from the timestamp in the payload.
    latency: Option<Mutex<Histogram<u64>>>,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let (Some(h), Some(p)) = (&self.latency, m.payload()) {
                    if let Some(sent) = p.get(..8).and_then(|b| b.try_into().ok()) {
                        let d = now_ns().saturating_sub(u64::from_le_bytes(sent));
                        let _ = h.lock().expect("histogram").record(d.max(1));
                    }
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut fe = self.first_error.lock().expect("first error");
                if fe.is_none() {
                    *fe = Some(e.to_string());
                }
            }
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Throughput {
    pub secs: f64,
    pub records: u64,
    pub bytes: u64,
    /// Consume only: from assign to the first record (connections, offsets, first
    /// fetch); not part of `secs`.
    pub startup_secs: f64,
}

impl Throughput {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.secs
    }
}

/// Produce `total_bytes` of `record_size`-byte records round-robin over `partitions`
/// partitions as fast as the client goes; time from first send to last acknowledgement.
pub fn produce_throughput(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    record_size: usize,
    total_bytes: u64,
) -> Result<Throughput> {
    let ctx = CountingContext::default();
    let producer: BaseProducer<CountingContext> = config(bootstrap, &settings.throughput_producer)
        .create_with_context(ctx)
        .context("producer")?;
    // Connect, learn the topic's leaders and open every partition before the clock
    // starts: one acknowledged warm-up record per partition (not counted).
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let buf = payload(record_size);
    for part in 0..partitions {
        send_blocking(&producer, topic, part, &buf)?;
    }
    drain(&producer, Duration::from_secs(60))
        .with_context(|| format!("warm-up flush for {topic}"))?;
    let warm = producer.context().delivered.load(Ordering::Relaxed);
    let first_error = |p: &BaseProducer<CountingContext>| {
        p.context()
            .first_error
            .lock()
            .expect("first error")
            .clone()
            .unwrap_or_default()
    };
    if warm < partitions as u64 {
        bail!(
            "warm-up records to {topic} failed: {}",
            first_error(&producer)
        );
    }
    let n = (total_bytes / record_size as u64).max(1);
    let t = Instant::now();
    for i in 0..n {
        let part = (i % partitions as u64) as i32;
        send_blocking(&producer, topic, part, &buf)?;
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    drain(&producer, Duration::from_secs(300))
        .with_context(|| format!("flush producer for {topic}"))?;
    let secs = t.elapsed().as_secs_f64();
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!(
            "{failed} of {n} records to {topic} failed: {}",
            first_error(&producer)
        );
    }
    let delivered = producer.context().delivered.load(Ordering::Relaxed) - warm;
    if delivered != n {
        bail!("only {delivered} of {n} records to {topic} acknowledged after flush");
    }
    Ok(Throughput {
        secs,
        records: n,
        bytes: n * record_size as u64,
        startup_secs: 0.0,
    })
}

/// Wait until every queued record is acknowledged, polling delivery reports every
/// millisecond. (rdkafka's `flush` sleeps in 100 ms polls, which would add up to
/// 100 ms to every timed run.)
fn drain(producer: &BaseProducer<CountingContext>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            bail!(
                "{} records still unacknowledged after {timeout:?}",
                producer.in_flight_count()
            );
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// Enqueue one record, polling while librdkafka's queue is full.
fn send_blocking(
    producer: &BaseProducer<CountingContext>,
    topic: &str,
    part: i32,
    buf: &[u8],
) -> Result<()> {
    loop {
        match producer.send(
            BaseRecord::<(), [u8]>::to(topic)
                .partition(part)
                .payload(buf),
        ) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1))
            }
            Err((e, _)) => bail!("produce to {topic}: {e}"),
        }
    }
}

pub(crate) fn consumer(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
) -> Result<BaseConsumer> {
    consumer_at(bootstrap, settings, topic, partitions, |_| {
        Ok(Offset::Beginning)
    })
}

/// A consumer of `topic`'s partitions, each assigned at `start(partition)`.
fn consumer_at(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    start: impl Fn(i32) -> Result<Offset>,
) -> Result<BaseConsumer> {
    let c: BaseConsumer = config(bootstrap, &settings.consumer)
        .create()
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, start(p)?)?;
    }
    c.assign(&tpl)?;
    Ok(c)
}

/// Read `topic` from the beginning until `expected_bytes` of payload arrived. Timed
/// from the first record received, so consumer start-up (connections, offset lookup,
/// the first fetch round trip) is reported apart (`startup_secs`); the first fetch's
/// bytes count, which flatters short runs by at most one fetch (≤ 1 MiB per partition).
pub fn consume_throughput(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    expected_bytes: u64,
) -> Result<Throughput> {
    let c = consumer(bootstrap, settings, topic, partitions)?;
    let (mut bytes, mut records) = (0u64, 0u64);
    let t0 = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last_progress = Instant::now();
    while bytes < expected_bytes {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                bytes += m.payload_len() as u64;
                records += 1;
                last_progress = Instant::now();
            }
            Some(Err(e)) => bail!("consume {topic}: {e}"),
            None => {
                if last_progress.elapsed() > Duration::from_secs(30) {
                    bail!("consume {topic}: no progress for 30 s at {bytes} of {expected_bytes} bytes");
                }
            }
        }
    }
    let first = first.unwrap_or(t0);
    Ok(Throughput {
        secs: first.elapsed().as_secs_f64().max(1e-6),
        records,
        bytes,
        startup_secs: (first - t0).as_secs_f64(),
    })
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    /// Records measured (this run's, after the warm-up).
    pub count: u64,
    /// Records this run sent and had acknowledged.
    pub sent: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Rate actually offered (MB/s): below the target when the client could not keep up.
    pub offered_mb_per_s: f64,
}

fn latency_of(h: &Histogram<u64>, offered: f64, sent: u64) -> Latency {
    let ms = |v: u64| v as f64 / 1e6;
    Latency {
        count: h.len(),
        sent,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        offered_mb_per_s: offered,
    }
}

/// Send `record_size`-byte records to partition 0 of `topic` at `rate_bps` for
/// `duration`, each stamped with [`now_ns`] and `run_id`. Returns the offered rate.
fn paced_send(
    producer: &ThreadedProducer<CountingContext>,
    topic: &str,
    rate_bps: f64,
    record_size: usize,
    duration: Duration,
    run_id: u64,
) -> Result<f64> {
    let mut buf = payload(record_size);
    buf[8..STAMP_LEN].copy_from_slice(&run_id.to_le_bytes());
    let per_s = rate_bps / record_size as f64;
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < duration {
        let due = (t.elapsed().as_secs_f64() * per_s) as u64;
        while sent < due {
            buf[..8].copy_from_slice(&now_ns().to_le_bytes());
            match producer.send(BaseRecord::<(), [u8]>::to(topic).partition(0).payload(&buf)) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => bail!("produce to {topic}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(sent as f64 * record_size as f64 / secs / 1e6)
}

/// Producer latency (send → acknowledgement) at a fixed rate, linger.ms=0.
pub fn produce_latency(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    rate_bps: f64,
    record_size: usize,
    duration: Duration,
) -> Result<Latency> {
    let ctx = CountingContext {
        latency: Some(Mutex::new(new_histogram())),
        ..Default::default()
    };
    let producer: ThreadedProducer<CountingContext> =
        config(bootstrap, &settings.latency_producer).create_with_context(ctx)?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let offered = paced_send(
        &producer,
        topic,
        rate_bps,
        record_size,
        duration,
        new_run_id(),
    )?;
    producer.flush(Duration::from_secs(60))?;
    let ctx = producer.context();
    if ctx.failed.load(Ordering::Relaxed) > 0 {
        bail!(
            "records to {topic} failed: {}",
            ctx.first_error
                .lock()
                .expect("e")
                .clone()
                .unwrap_or_default()
        );
    }
    let h = ctx.latency.as_ref().expect("latency").lock().expect("h");
    Ok(latency_of(
        &h,
        offered,
        ctx.delivered.load(Ordering::Relaxed),
    ))
}

/// End-to-end latency at a fixed rate: from the produce call to the consumer's receipt,
/// linger.ms=0, one partition. The first 10% of the run is warm-up and not recorded.
/// Only this run's records count: the consumer starts at the partition's end
/// offset before the run, and skips any record without this run's id (the
/// topic may hold earlier runs' records, or another run's that write it now).
pub fn end_to_end_latency(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    rate_bps: f64,
    record_size: usize,
    duration: Duration,
) -> Result<Latency> {
    let run_id = new_run_id();
    let c = consumer_at(bootstrap, settings, topic, 1, |p| {
        let probe: BaseConsumer = config(bootstrap, &settings.consumer).create()?;
        let (_, end) = probe
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .with_context(|| format!("end offset of {topic}/{p}"))?;
        Ok(Offset::Offset(end))
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    // Records the producer had acknowledged when it finished: the reader drains to it.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let warm_until = now_ns() + (duration.as_nanos() as u64) / 10;
    let reader = {
        let (stop, target) = (stop.clone(), target.clone());
        std::thread::spawn(move || -> Result<(Histogram<u64>, u64)> {
            let mut h = new_histogram();
            let mut n = 0u64;
            let mut drain_deadline: Option<Instant> = None;
            loop {
                if stop.load(Ordering::Relaxed) {
                    let d = *drain_deadline
                        .get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                    if n >= target.load(Ordering::Relaxed) || Instant::now() > d {
                        break;
                    }
                }
                match c.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let now = now_ns();
                        let stamp = |r: std::ops::Range<usize>| {
                            m.payload()
                                .and_then(|p| p.get(r))
                                .and_then(|b| b.try_into().ok())
                                .map(u64::from_le_bytes)
                        };
                        if stamp(8..STAMP_LEN) != Some(run_id) {
                            continue;
                        }
                        n += 1;
                        if let Some(sent) = stamp(0..8) {
                            if sent >= warm_until {
                                let _ = h.record(now.saturating_sub(sent).max(1));
                            }
                        }
                    }
                    Some(Err(e)) => return Err(anyhow!("consume: {e}")),
                    None => {}
                }
            }
            Ok((h, n))
        })
    };
    // Let the consumer connect and position itself before load starts.
    std::thread::sleep(Duration::from_millis(1000));
    let ctx = CountingContext::default();
    let producer: ThreadedProducer<CountingContext> =
        config(bootstrap, &settings.latency_producer).create_with_context(ctx)?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let offered = paced_send(&producer, topic, rate_bps, record_size, duration, run_id)?;
    producer.flush(Duration::from_secs(60))?;
    let delivered = producer.context().delivered.load(Ordering::Relaxed);
    target.store(delivered, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let (h, received) = reader
        .join()
        .map_err(|_| anyhow!("consumer thread panicked"))??;
    if received < delivered {
        bail!("end-to-end: consumer received {received} of {delivered} records");
    }
    Ok(latency_of(&h, offered, delivered))
}
