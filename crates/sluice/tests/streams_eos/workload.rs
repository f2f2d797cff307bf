//! What the Streams test writes: the words, their slices, the kill points,
//! the producer that writes one slice paced, and the offsets the test
//! watches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use super::common::{sb, RawClient};
use super::{INPUT, PARTITIONS, STEP};

pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        _ => default,
    }
}

/// A small deterministic generator for the kill points (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env() -> Rng {
        let seed = match std::env::var("SLUICE_STREAMS_SEED") {
            Ok(s) if !s.is_empty() => s.parse().expect("SLUICE_STREAMS_SEED is a number"),
            _ => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        println!("kill points from SLUICE_STREAMS_SEED={seed}");
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// What the test writes: `keys` words, `per_key` records each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Workload {
    pub(crate) keys: usize,
    pub(crate) per_key: usize,
    pub(crate) kills: usize,
}

impl Workload {
    pub(crate) fn from_env() -> Workload {
        let w = Workload {
            keys: env_usize("SLUICE_STREAMS_KEYS", 20),
            per_key: env_usize("SLUICE_STREAMS_RECORDS_PER_KEY", 500),
            kills: env_usize("SLUICE_STREAMS_KILLS", 3),
        };
        assert!(w.keys > 0 && w.per_key > 0, "{w:?}");
        w
    }

    pub(crate) fn total(&self) -> usize {
        self.keys * self.per_key
    }

    pub(crate) fn word(&self, i: usize) -> String {
        format!("word-{:02}", i % self.keys)
    }

    /// Input records `[start, end)` of application run `run` (one slice per
    /// run: the killed runs and the last one).
    pub(crate) fn slice(&self, run: usize) -> (usize, usize) {
        let runs = self.kills + 1;
        (self.total() * run / runs, self.total() * (run + 1) / runs)
    }

    pub(crate) fn expected(&self) -> BTreeMap<String, u64> {
        (0..self.keys)
            .map(|k| (self.word(k), self.per_key as u64))
            .collect()
    }
}

/// Creates `topics` (name, partitions) with `replication` through `addr`
/// (CreateTopics v7; any broker forwards it to the controller).
pub(crate) fn create_topics(addr: &str, topics: &[(&str, i32)], replication: i16) {
    let mut raw = RawClient::connect(addr);
    let req = CreateTopicsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    CreatableTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_num_partitions(*partitions)
                        .with_replication_factor(replication)
                })
                .collect(),
        )
        .with_timeout_ms(60_000);
    let resp = raw.send(7, &req);
    for t in &resp.topics {
        assert_eq!(t.error_code, 0, "create {:?}: {resp:?}", t.name);
    }
}

/// Writes input records `[start, end)` with an idempotent `acks=all`
/// producer, paced to about `rate` records a second so the application
/// is processing them while it may be killed; panics unless every record
/// was acknowledged.
pub(crate) fn produce_slice(
    bootstrap: String,
    w: Workload,
    (start, end): (usize, usize),
    rate: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("input producer");
        rt.block_on(async {
            let t0 = Instant::now();
            let chunk = 50;
            let mut pending = Vec::new();
            for i in start..end {
                let key = w.word(i);
                let value = format!("{i}");
                let record = FutureRecord::to(INPUT).key(&key).payload(&value);
                let f = producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queue an input record");
                pending.push((i, f));
                if (i - start + 1) % chunk == 0 {
                    let due = t0 + Duration::from_secs_f64((i - start + 1) as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            for (i, f) in pending {
                match f.await {
                    Ok(Ok(_)) => {}
                    other => panic!("input record {i} not acknowledged: {other:?}"),
                }
            }
        });
    })
}

/// Sum of `topic`'s high watermarks (read_uncommitted: records of open
/// transactions and transaction markers count too).
pub(crate) fn high_watermarks(consumer: &BaseConsumer, topic: &str) -> i64 {
    (0..PARTITIONS)
        .map(|p| {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((_, high)) => high,
                // Counted as 0 (the caller waits for growth), but said: a
                // run that waits in vain shows why in its output.
                Err(e) => {
                    println!("watermarks of {topic}-{p}: {e}");
                    0
                }
            }
        })
        .sum()
}

pub(crate) fn watermark_client(bootstrap: &str) -> BaseConsumer {
    // librdkafka's isolation.level defaults to read_committed, which would
    // make these the last stable offsets.
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", "read_uncommitted")
        .set("group.id", "streams-eos-watermarks")
        .create()
        .expect("watermark client")
}

/// Reads last stable offsets: librdkafka's ListOffsets in read_committed.
pub(crate) fn stable_offsets_client(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "streams-eos-watermarks")
        .set("isolation.level", "read_committed")
        .create()
        .expect("last stable offset client")
}

/// The partitions of `topic` whose last stable offset is below the high
/// watermark: an open transaction holds records there.
pub(crate) fn open_partitions(
    marks: &BaseConsumer,
    stable: &BaseConsumer,
    topic: &str,
) -> Vec<i32> {
    // Retried: in a cluster a leadership may be moving.
    let end = |c: &BaseConsumer, p: i32| {
        let t0 = Instant::now();
        loop {
            match c.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((_, end)) => return end,
                Err(e) if t0.elapsed() > STEP => panic!("ListOffsets {topic}-{p}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    (0..PARTITIONS)
        .filter(|&p| end(stable, p) < end(marks, p))
        .collect()
}
