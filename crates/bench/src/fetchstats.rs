//! What the consumer sees per fetch: a consume run with librdkafka statistics
//! (`statistics.interval.ms`), summarised as fetch requests, bytes per fetch and
//! round-trip time per fetch while data was flowing. A diagnostic for comparing the
//! brokers' fetch answers (`sluice-bench consume --stats`); the timed harness runs keep
//! statistics off so the client settings stay as printed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::load::ClientSettings;

/// One statistics snapshot: when it arrived and the broker totals it carried.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    at: Option<Instant>,
    fetches: i64,
    rx_bytes: i64,
    /// Round-trip time over the snapshot's window (µs): mean and p99, weighted later.
    rtt_avg_us: f64,
    rtt_p99_us: f64,
    rtt_cnt: i64,
}

#[derive(Default)]
struct StatsContext {
    snapshots: Mutex<Vec<Snapshot>>,
}

impl ClientContext for StatsContext {
    fn stats_raw(&self, raw: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            return;
        };
        let mut s = Snapshot {
            at: Some(Instant::now()),
            ..Default::default()
        };
        let (mut rtt_sum, mut p99_max) = (0.0, 0.0f64);
        if let Some(brokers) = v.get("brokers").and_then(|b| b.as_object()) {
            for b in brokers.values() {
                if b.get("nodeid").and_then(|n| n.as_i64()).unwrap_or(-1) < 0 {
                    continue;
                }
                s.fetches += b
                    .pointer("/req/Fetch")
                    .and_then(|n| n.as_i64())
                    .unwrap_or(0);
                s.rx_bytes += b.get("rxbytes").and_then(|n| n.as_i64()).unwrap_or(0);
                let cnt = b.pointer("/rtt/cnt").and_then(|n| n.as_i64()).unwrap_or(0);
                let avg = b
                    .pointer("/rtt/avg")
                    .and_then(|n| n.as_f64())
                    .unwrap_or(0.0);
                rtt_sum += avg * cnt as f64;
                s.rtt_cnt += cnt;
                p99_max = p99_max.max(
                    b.pointer("/rtt/p99")
                        .and_then(|n| n.as_f64())
                        .unwrap_or(0.0),
                );
            }
        }
        if s.rtt_cnt > 0 {
            s.rtt_avg_us = rtt_sum / s.rtt_cnt as f64;
        }
        s.rtt_p99_us = p99_max;
        self.snapshots.lock().expect("stats").push(s);
    }
}

impl ConsumerContext for StatsContext {}

/// Per-fetch figures of one consume run.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FetchStats {
    pub mb_per_s: f64,
    /// Fetch requests answered while data flowed (between the first and last record).
    pub fetches: i64,
    pub fetches_per_s: f64,
    /// Bytes received per fetch (responses include framing), same interval.
    pub kib_per_fetch: f64,
    /// Mean of librdkafka's per-window mean round-trip time (request sent → response
    /// fully read), ms, weighted by requests, and the largest window p99.
    pub rtt_avg_ms: f64,
    pub rtt_p99_ms: f64,
}

/// Consume `expected_bytes` of `topic` from the beginning with the standard consumer
/// settings plus `statistics.interval.ms=interval_ms`, and summarise the fetches.
pub fn consume_with_stats(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    expected_bytes: u64,
    interval_ms: u64,
) -> Result<FetchStats> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    cfg.set("client.id", "sluice-bench");
    cfg.set("log_level", "3");
    for (k, v) in &settings.consumer {
        cfg.set(k, v);
    }
    cfg.set("statistics.interval.ms", interval_ms.to_string());
    let c: BaseConsumer<StatsContext> = cfg
        .create_with_context(StatsContext::default())
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last_progress = Instant::now();
    while bytes < expected_bytes {
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                bytes += m.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(e)) => bail!("consume {topic}: {e}"),
            None if last_progress.elapsed() > Duration::from_secs(30) => {
                bail!("consume {topic}: no progress for 30 s at {bytes} of {expected_bytes} bytes")
            }
            None => {}
        }
    }
    let end = Instant::now();
    let start = first.unwrap_or(end);
    // One more snapshot after the end, so the last window is covered.
    let wait_until = end + Duration::from_millis(interval_ms + interval_ms / 2);
    while Instant::now() < wait_until {
        let _ = c.poll(Duration::from_millis(20));
    }
    let snaps = c.context().snapshots.lock().expect("stats").clone();
    Ok(summarise(&snaps, start, end, bytes))
}

/// Figures over the windows that overlap [start, end]: counters are differenced from
/// the last snapshot before `start` to the first one at or after `end`.
fn summarise(snaps: &[Snapshot], start: Instant, end: Instant, bytes: u64) -> FetchStats {
    let secs = (end - start).as_secs_f64().max(1e-6);
    let before = snaps
        .iter()
        .rev()
        .find(|s| s.at.is_some_and(|t| t <= start))
        .copied()
        .unwrap_or_default();
    let after_idx = snaps
        .iter()
        .position(|s| s.at.is_some_and(|t| t >= end))
        .unwrap_or(snaps.len().saturating_sub(1));
    let Some(after) = snaps.get(after_idx).copied() else {
        return FetchStats {
            mb_per_s: bytes as f64 / secs / 1e6,
            ..Default::default()
        };
    };
    let window: Vec<&Snapshot> = snaps
        .iter()
        .take(after_idx + 1)
        .filter(|s| s.at.is_some_and(|t| t > start))
        .collect();
    let fetches = after.fetches - before.fetches;
    let rx = after.rx_bytes - before.rx_bytes;
    let cnt: i64 = window.iter().map(|s| s.rtt_cnt).sum();
    let rtt_avg = if cnt > 0 {
        window
            .iter()
            .map(|s| s.rtt_avg_us * s.rtt_cnt as f64)
            .sum::<f64>()
            / cnt as f64
    } else {
        0.0
    };
    let span = match (before.at, after.at) {
        (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-6),
        (None, Some(b)) => (b - start).as_secs_f64().max(1e-6),
        _ => secs,
    };
    FetchStats {
        mb_per_s: bytes as f64 / secs / 1e6,
        fetches,
        fetches_per_s: fetches as f64 / span,
        kib_per_fetch: if fetches > 0 {
            rx as f64 / fetches as f64 / 1024.0
        } else {
            0.0
        },
        rtt_avg_ms: rtt_avg / 1e3,
        rtt_p99_ms: window.iter().map(|s| s.rtt_p99_us).fold(0.0, f64::max) / 1e3,
    }
}

/// The figures as `key value` pairs for printing.
pub fn describe(s: &FetchStats) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("MB/s", format!("{:.1}", s.mb_per_s)),
        ("fetches", s.fetches.to_string()),
        ("fetches/s", format!("{:.1}", s.fetches_per_s)),
        ("KiB/fetch", format!("{:.0}", s.kib_per_fetch)),
        ("rtt avg ms", format!("{:.2}", s.rtt_avg_ms)),
        ("rtt p99 ms", format!("{:.2}", s.rtt_p99_ms)),
    ])
}

/// Ask `bootstrap` for partition 0's earliest and latest offsets of `topic`
/// (ListOffsets). Before a timed read from the sink this makes it build the topic's
/// log, so that work is not counted in the read's CPU or time.
pub fn prepare(bootstrap: &str, topic: &str) -> Result<(i64, i64)> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    cfg.set("client.id", "sluice-bench");
    cfg.set("log_level", "3");
    let c: BaseConsumer = cfg.create().context("consumer")?;
    Ok(c.fetch_watermarks(topic, 0, Duration::from_secs(60))?)
}
