//! Criterion bench of the read hot path: sparse offset index binary search,
//! and a whole `Log::read` (index lookup + short forward scan of batch
//! headers) on a real file.
//!
//! `cargo bench -p sluice-storage --bench index_lookup`

#[path = "../src/testutil.rs"]
mod testutil;

use std::path::Path;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::index::OffsetIndex;
use sluice_storage::{
    Fs, LogConfig, LogManager, LogManagerConfig, RealFs, SimFs, SystemClock, TopicPartition,
};

fn index_lookup(c: &mut Criterion) {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new());
    fs.create_dir_all(Path::new("/b")).unwrap();
    // A full 10 MiB index: 1,310,720 entries (a 1 GiB segment holds ~262k).
    let mut idx = OffsetIndex::open(
        &fs,
        Path::new("/b/0.index"),
        Offset(0),
        Some(10 << 20),
        u64::MAX,
    )
    .unwrap();
    let mut n = 0i64;
    while idx.append(Offset(n * 16 + 15), (n as u32 + 1) * 700) {
        n += 1;
    }
    let mut x = 12345u64;
    c.bench_function("offset_index_lookup_1.3M_entries", |b| {
        b.iter(|| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            black_box(idx.lookup(Offset((x >> 20) as i64 % (n * 16))))
        })
    });
    c.bench_function("offset_index_lookup_tail_warm_section", |b| {
        b.iter(|| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            black_box(idx.lookup(Offset(n * 16 - 1 - (x >> 40) as i64 % 8000)))
        })
    });
}

fn log_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap();
    let log = m
        .get_or_create_log(&TopicPartition::new("r", 0), LogConfig::default())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut batch = testutil::batch_of(10, 100, now, 1); // ~1.2 KiB batches, 10 offsets each
    for _ in 0..50_000 {
        log.append_as_leader(&mut batch, LeaderEpoch(0)).unwrap();
    }
    let leo = log.log_end_offset().0;
    let mut x = 999u64;
    c.bench_function("log_read_1MiB_slice_random_offset_60MB_segment", |b| {
        b.iter(|| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = Offset((x >> 20) as i64 % leo);
            black_box(log.read(at, 1 << 20, None, true).unwrap())
        })
    });
}

criterion_group!(benches, index_lookup, log_read);
criterion_main!(benches);
