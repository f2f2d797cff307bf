//! Criterion bench of the follower append (`Log::append_as_follower`): a
//! fetch response's worth of the leader's batches written as they are
//! (framing and CRC checked, producer state and epoch cache kept, one
//! write), next to the leader's shared append of the same bytes
//! (`Log::append_as_leader_shared`, which also walks every record). Each
//! iteration's batches get base offsets following the log end before the
//! timed call (the untimed patch touches 8 bytes per batch). On `RealFs` in
//! a temporary directory under `target/` (`BENCH_DIR` to change it); the
//! log is deleted and recreated every 64 MiB (not timed), so the page cache
//! pages of the deleted files are reused and little reaches the disk.
//!
//! `cargo bench -p sluice-storage --bench append_follower`

#[path = "../src/testutil.rs"]
mod testutil;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_record::batch::set_base_offset;
use sluice_record::{BatchHeader, Batches, LeaderEpoch, Offset};
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, RealFs, SystemClock, TopicPartition,
};

const RECREATE_BYTES: u64 = 64 << 20;

/// About `fetch_bytes` of batches of about `batch_bytes`, of records of
/// `record_size` bytes (no producer id), partition leader epoch 3.
fn fetch_response(record_size: usize, batch_bytes: usize, fetch_bytes: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let per_batch = (batch_bytes / (record_size + 10)).max(1);
    let mut out = Vec::new();
    let mut seed = 0u8;
    while out.len() + batch_bytes <= fetch_bytes.max(batch_bytes) {
        let mut b = testutil::batch_of(per_batch, record_size, now, seed);
        sluice_record::batch::set_partition_leader_epoch(&mut b, LeaderEpoch(3));
        out.extend(b);
        seed = seed.wrapping_add(1);
    }
    out
}

/// Gives the batches of `bytes` consecutive offsets from `start`.
fn rebase(bytes: &mut [u8], start: Offset) -> Offset {
    let headers: Vec<(usize, BatchHeader)> = Batches::new(bytes).map(|r| r.unwrap()).collect();
    let mut next = start;
    for (pos, h) in headers {
        set_base_offset(&mut bytes[pos..pos + h.size()], next);
        next = next.plus(i64::from(h.last_offset_delta) + 1);
    }
    next
}

fn run(iters: u64, template: &[u8], follower: bool) -> Duration {
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/storage-bench").into()
        });
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let manager = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap();
    let tp = TopicPartition::new("bench", 0);
    let mut log = manager
        .get_or_create_log(&tp, LogConfig::default())
        .unwrap();
    let mut records = template.to_vec();
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        if log.size_in_bytes() >= RECREATE_BYTES {
            manager.delete_log(&tp).unwrap();
            log = manager
                .get_or_create_log(&tp, LogConfig::default())
                .unwrap();
        }
        rebase(&mut records, log.log_end_offset());
        let t = Instant::now();
        if follower {
            log.append_as_follower(&records).unwrap();
        } else {
            log.append_as_leader_shared(&records, LeaderEpoch(3))
                .unwrap();
        }
        timed += t.elapsed();
    }
    manager.delete_log(&tp).unwrap();
    timed
}

fn append(c: &mut Criterion) {
    for (name, record_size, batch_bytes, fetch_bytes) in [
        (
            "1KiB_records_16KiB_batches_1MB_fetch",
            1024,
            16 << 10,
            1_000_000,
        ),
        (
            "100B_records_16KiB_batches_64KiB_fetch",
            100,
            16 << 10,
            64 << 10,
        ),
    ] {
        let records = fetch_response(record_size, batch_bytes, fetch_bytes);
        let mut g = c.benchmark_group(format!("replicate_{name}"));
        g.throughput(Throughput::Bytes(records.len() as u64));
        g.bench_function("append_as_follower", |b| {
            b.iter_custom(|iters| run(iters, &records, true))
        });
        g.bench_function("append_as_leader_shared", |b| {
            b.iter_custom(|iters| run(iters, &records, false))
        });
        g.finish();
    }
}

criterion_group!(benches, append);
criterion_main!(benches);
