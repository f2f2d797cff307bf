//! Criterion bench of the produce append path: copying each request into a
//! buffer and stamping it in place (`Log::append_as_leader`, what the broker
//! did before) against writing the request bytes as they are with patched
//! batch heads (`Log::append_as_leader_shared`, one `pwritev`). On `RealFs`
//! in a temporary directory under `target/` (`BENCH_DIR` to change it); the
//! log is deleted and recreated every 64 MiB (not timed), so the page cache
//! pages of the deleted files are reused and little reaches the disk.
//!
//! `cargo bench -p sluice-storage --bench append_shared`

#[path = "../src/testutil.rs"]
mod testutil;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_record::LeaderEpoch;
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, RealFs, SystemClock, TopicPartition,
};

const RECREATE_BYTES: u64 = 64 << 20;

fn request(record_size: usize, request_bytes: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let count = (request_bytes / (record_size + 10)).max(1);
    testutil::batch_of(count, record_size, now, 7)
}

fn run(iters: u64, records: &[u8], shared: bool) -> Duration {
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
    let mut scratch: Vec<u8> = Vec::new();
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        if log.size_in_bytes() >= RECREATE_BYTES {
            manager.delete_log(&tp).unwrap();
            log = manager
                .get_or_create_log(&tp, LogConfig::default())
                .unwrap();
        }
        let t = Instant::now();
        if shared {
            log.append_as_leader_shared(records, LeaderEpoch(0))
                .unwrap();
        } else {
            scratch.clear();
            scratch.extend_from_slice(records);
            log.append_as_leader(&mut scratch, LeaderEpoch(0)).unwrap();
        }
        timed += t.elapsed();
    }
    manager.delete_log(&tp).unwrap();
    timed
}

fn append(c: &mut Criterion) {
    for (name, record_size, request_bytes) in [
        ("1KiB_records_1MB_requests", 1024, 1_000_000),
        ("100B_records_64KiB_requests", 100, 64 << 10),
    ] {
        let records = request(record_size, request_bytes);
        let mut g = c.benchmark_group(format!("append_{name}"));
        g.throughput(Throughput::Bytes(records.len() as u64));
        g.bench_function("copy_then_in_place", |b| {
            b.iter_custom(|iters| run(iters, &records, false))
        });
        g.bench_function("shared_vectored", |b| {
            b.iter_custom(|iters| run(iters, &records, true))
        });
        g.finish();
    }
}

criterion_group!(benches, append);
criterion_main!(benches);
