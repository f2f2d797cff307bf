//! The client-quota figures of issue 21, one Sluice on loopback,
//! librdkafka as the client:
//!
//! - produce: two producers at once for `secs` (30 s), one whose client id
//!   has `producer_byte_rate` = `quota_mb` (10 MB/s), one without a quota;
//!   each one's acknowledged MB/s, and the limited one's rate as a share of
//!   its quota (the goal is within 10%);
//! - fetch: two consumers at once for `secs`, reading the unlimited
//!   producer's topic from the start, one with `consumer_byte_rate` =
//!   `quota_mb`; each one's MB/s.
//!
//! Prints figures only; nothing is asserted. On a shared, busy machine the
//! unlimited figures are noisy and the limited ones may fall short of the
//! quota when the machine cannot keep up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message};

use crate::brokers::RunningBroker;

/// What to run.
pub struct QuotaOptions {
    pub work_dir: PathBuf,
    pub secs: f64,
    pub quota_mb: f64,
    pub record_size: usize,
}

const LIMITED: &str = "quota-bench-limited";
const FREE: &str = "quota-bench-free";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// AlterClientQuotas for one client id, over a raw connection.
pub(crate) fn set_quota(bootstrap: &str, client_id: &str, key: &str, value: f64) -> Result<()> {
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("client-id"))
            .with_entity_name(Some(s(client_id)))])
        .with_ops(vec![OpData::default().with_key(s(key)).with_value(value)])]);
    let version = 1;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(AlterClientQuotasRequest::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(s("sluice-bench")))
        .encode(&mut body, AlterClientQuotasRequest::header_version(version))?;
    req.encode(&mut body, version)?;
    let mut stream = TcpStream::connect(bootstrap)?;
    stream.write_all(&(body.len() as i32).to_be_bytes())?;
    stream.write_all(&body)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut buf = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
    stream.read_exact(&mut buf)?;
    let mut bytes = bytes::Bytes::from(buf);
    ResponseHeader::decode(&mut bytes, 1)?;
    let resp = kafka_protocol::messages::AlterClientQuotasResponse::decode(&mut bytes, version)?;
    let code = resp.entries.first().map_or(-1, |e| e.error_code);
    if code != 0 || bytes.has_remaining() {
        bail!("AlterClientQuotas answered {resp:?}");
    }
    Ok(())
}

/// Counts acknowledged bytes.
struct Acked(Arc<AtomicU64>);

impl ClientContext for Acked {}

impl ProducerContext for Acked {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Ok(m) = result {
            let n = m.payload().map_or(0, |p| p.len() as u64);
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Produces to `topic` as `client_id` for `secs`; acknowledged bytes.
fn produce(bootstrap: &str, client_id: &str, topic: &str, secs: f64, size: usize) -> Result<u64> {
    let acked = Arc::new(AtomicU64::new(0));
    let p: BaseProducer<Acked> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "65536")
        .set("compression.type", "none")
        .set("log_level", "3")
        .create_with_context(Acked(acked.clone()))
        .context("producer")?;
    let value = vec![b'q'; size];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start_bytes = acked.load(Ordering::Relaxed);
    while Instant::now() < end {
        match p.send(BaseRecord::<(), [u8]>::to(topic).payload(&value)) {
            Ok(()) => {}
            Err((_, _)) => {
                p.poll(Duration::from_millis(5));
            }
        }
        p.poll(Duration::ZERO);
    }
    let counted = acked.load(Ordering::Relaxed) - start_bytes;
    // What is still queued after the window does not count.
    p.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    p.poll(Duration::from_millis(100));
    Ok(counted)
}

/// Consumes `topic` from the start as `client_id` for `secs`; bytes read.
fn consume(bootstrap: &str, client_id: &str, topic: &str, secs: f64) -> Result<u64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("group.id", format!("quota-bench-{client_id}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("log_level", "3")
        .create()
        .context("consumer")?;
    c.subscribe(&[topic])?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut bytes = 0u64;
    while Instant::now() < end {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            bytes += m.payload().map_or(0, |p| p.len() as u64);
        }
    }
    Ok(bytes)
}

fn mb(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

pub fn run(opts: QuotaOptions) -> Result<()> {
    // The unlimited producer writes some 400 MB/s: a minute of it filled
    // this machine's disk once. Retention keeps the log to a few GB (the
    // consumers read whatever is left from its start).
    let bounded_log = [
        ("log.retention.bytes".to_string(), (1u64 << 30).to_string()),
        ("log.segment.bytes".to_string(), (128u64 << 20).to_string()),
        (
            "log.retention.check.interval.ms".to_string(),
            "1000".to_string(),
        ),
    ];
    let broker = RunningBroker::start_sluice(
        &sluice_testkit::locate_sluice_binary()?,
        &opts.work_dir,
        &bounded_log,
    )?;
    let b = broker.bootstrap.clone();
    let quota = opts.quota_mb * 1e6;
    set_quota(&b, "limited", "producer_byte_rate", quota)?;
    set_quota(&b, "limited", "consumer_byte_rate", quota)?;
    println!(
        "client quotas: {} MB/s for client id 'limited'; {} s runs, {} B records",
        opts.quota_mb, opts.secs, opts.record_size
    );

    let (secs, size) = (opts.secs, opts.record_size);
    let (b1, b2) = (b.clone(), b.clone());
    let limited = std::thread::spawn(move || produce(&b1, "limited", LIMITED, secs, size));
    let free = std::thread::spawn(move || produce(&b2, "free", FREE, secs, size));
    let limited = limited.join().expect("producer thread")?;
    let free = free.join().expect("producer thread")?;
    let l = mb(limited, secs);
    println!(
        "produce  limited: {l:8.2} MB/s = {:5.1}% of its quota   unlimited: {:8.2} MB/s",
        l / opts.quota_mb * 100.0,
        mb(free, secs)
    );

    let (b1, b2) = (b.clone(), b.clone());
    let limited = std::thread::spawn(move || consume(&b1, "limited", FREE, secs));
    let free = std::thread::spawn(move || consume(&b2, "free", FREE, secs));
    let limited = limited.join().expect("consumer thread")?;
    let free = free.join().expect("consumer thread")?;
    let l = mb(limited, secs);
    println!(
        "fetch    limited: {l:8.2} MB/s = {:5.1}% of its quota   unlimited: {:8.2} MB/s",
        l / opts.quota_mb * 100.0,
        mb(free, secs)
    );
    broker.stop()?;
    let _ = std::fs::remove_dir_all(&opts.work_dir);
    Ok(())
}
