//! Issue 15: decompression memory has one broker-wide bound
//! (`sluice.decompression.memory.bytes`, default 1 GiB). Sixteen
//! concurrent requests of a few KiB, each a zstd batch of one valid record
//! whose value is 200 MiB of zeros, sent to a topic with
//! `compression.type=gzip` (each batch is decoded and re-encoded) and to a
//! compacted topic (each batch is decoded for its keys), took the broker
//! to 7.6 GB and 3.3 GB of RSS before. Now the broker's peak RSS (VmHWM of
//! the real process) stays under the budget plus a generous base, every
//! bomb is either appended or refused with the retriable
//! THROTTLING_QUOTA_EXCEEDED, at least one is appended (the oldest decoder
//! waits for the others to give the budget back), and the broker keeps
//! answering.
//!
//! No timing assertion: the bombs take what they take on a busy machine.

mod common;

use common::{create_topic, sb, start, RawClient};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};

const BOMBS: usize = 16;
const EXPANDS_TO: usize = 200 << 20;
/// The default `sluice.decompression.memory.bytes`.
const BUDGET: u64 = 1 << 30;
/// What the broker holds besides decoding: code, tokio, page tables,
/// buffers of 16 requests, allocator slack. Generous on purpose.
const BASE: u64 = 384 << 20;

fn produce(c: &mut RawClient, topic: &str, records: bytes::Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(60_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r = c.send(9, &req);
    r.responses[0].partition_responses[0].error_code
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One valid zstd batch: a keyed record whose value is `EXPANDS_TO` zeros.
fn bomb() -> bytes::Bytes {
    let mut b = BatchBuilder::new(CompressionType::Zstd);
    b.append(
        Timestamp(now_ms()),
        Some(b"k"),
        Some(&vec![0u8; EXPANDS_TO]),
        &[],
    )
    .unwrap();
    bytes::Bytes::from(b.build().unwrap())
}

fn small() -> bytes::Bytes {
    let mut b = BatchBuilder::new(CompressionType::Zstd);
    b.append(Timestamp(now_ms()), Some(b"k"), Some(b"still here"), &[])
        .unwrap();
    bytes::Bytes::from(b.build().unwrap())
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value");
    kb * 1024
}

fn bombard(topic_configs: &[(&str, &str)], topic: &str) {
    let broker = start(&[]);
    let pid = broker.pid().expect("running");
    let mut admin = RawClient::connect(broker.bootstrap());
    create_topic(&mut admin, topic, topic_configs);
    assert_eq!(produce(&mut admin, topic, small()), 0);
    let before = peak_rss(pid);

    let bomb = bomb();
    assert!(bomb.len() < 64 << 10, "a bomb of {} bytes", bomb.len());
    let codes: Vec<i16> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..BOMBS)
            .map(|_| {
                let bomb = bomb.clone();
                let bootstrap = broker.bootstrap().to_string();
                s.spawn(move || {
                    let mut c = RawClient::connect(&bootstrap);
                    // Re-encoding 200 MiB in a debug build on a busy
                    // machine takes what it takes.
                    c.set_read_timeout(std::time::Duration::from_secs(600));
                    produce(&mut c, topic, bomb)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let peak = peak_rss(pid);
    eprintln!(
        "{topic}: codes {codes:?}; VmHWM {} MiB before the bombs, {} MiB after",
        before >> 20,
        peak >> 20
    );
    // Appended (0) or refused as over the budget (89), nothing else.
    assert!(codes.iter().all(|c| [0, 89].contains(c)), "{codes:?}");
    assert!(codes.contains(&0), "no bomb got through: {codes:?}");
    assert!(
        peak < BUDGET + BASE,
        "peak RSS {} MiB over the budget ({} MiB) plus {} MiB",
        peak >> 20,
        BUDGET >> 20,
        BASE >> 20
    );
    // The broker still answers, on a new connection and the old one.
    assert_eq!(produce(&mut admin, topic, small()), 0);
    let mut c = RawClient::connect(broker.bootstrap());
    assert_eq!(produce(&mut c, topic, small()), 0);
}

#[test]
fn concurrent_bombs_on_a_gzip_topic_stay_within_the_budget() {
    bombard(&[("compression.type", "gzip")], "bombs-gzip");
}

#[test]
fn concurrent_bombs_on_a_compacted_topic_stay_within_the_budget() {
    bombard(&[("cleanup.policy", "compact")], "bombs-compact");
}
