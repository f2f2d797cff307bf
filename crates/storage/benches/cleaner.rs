//! Log cleaner throughput (MB/s of dirty log cleaned) and its effect on a
//! concurrent producer's append throughput.
//!
//! ```text
//! cargo bench -p sluice-storage --bench cleaner
//! BENCH_MB=256 BENCH_KEYS=100000 BENCH_DIR=/path cargo bench -p sluice-storage --bench cleaner
//! ```
//!
//! 1. Writes `BENCH_MB` MiB of keyed records (`BENCH_KEYS` distinct keys,
//!    100-byte values, ~16 KiB batches) to a compacted log on RealFs,
//!    uncompressed and LZ4, then times one `LogCleaner::clean_now` pass:
//!    dirty bytes / seconds.
//! 2. Appends the same volume to a second log alone, then again while the
//!    cleaner repeatedly cleans the first log (re-dirtied by a writer), and
//!    prints both append rates.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sluice_record::{BatchBuilder, CompressionType, LeaderEpoch, Timestamp};
use sluice_storage::{
    CleanerConfig, CleanupPolicy, Clock, CompactionConfig, LogCleaner, LogConfig, LogManager,
    LogManagerConfig, RealFs, SystemClock, TopicPartition,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 << 20,
        compaction: CompactionConfig {
            cleanup_policy: CleanupPolicy::Compact,
            min_cleanable_dirty_ratio: 0.0,
            ..Default::default()
        },
        ..LogConfig::default()
    }
}

fn batch(codec: CompressionType, first_key: usize, keys: usize, n: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    for i in 0..n {
        let k = format!("key-{:08}", (first_key + i * 7919) % keys);
        let v = [b'a' + (i % 26) as u8; 100];
        b.append(Timestamp(ts), Some(k.as_bytes()), Some(&v), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Appends `bytes` of keyed batches; returns MB/s.
fn produce(log: &sluice_storage::Log, codec: CompressionType, bytes: usize, keys: usize) -> f64 {
    let start = Instant::now();
    let mut written = 0usize;
    let mut k = 0usize;
    while written < bytes {
        let mut b = batch(codec, k, keys, 140, SystemClock.now_ms());
        k += 140;
        written += b.len();
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    written as f64 / 1e6 / start.elapsed().as_secs_f64()
}

fn main() {
    let mb = env_usize("BENCH_MB", 128);
    let keys = env_usize("BENCH_KEYS", 50_000);
    let dir = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/storage-bench/cleaner"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.clone()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap();
    println!(
        "cleaner bench: {mb} MiB per log, {keys} keys, 100-byte values, dir {}",
        dir.display()
    );
    for (i, codec) in [CompressionType::None, CompressionType::Lz4]
        .into_iter()
        .enumerate()
    {
        let log = m
            .get_or_create_log(&TopicPartition::new("bench-clean", i as i32), config())
            .unwrap();
        produce(&log, codec, mb << 20, keys);
        log.roll().unwrap();
        let before = log.size_in_bytes();
        let cleaner = LogCleaner::new(CleanerConfig::default());
        let t = Instant::now();
        let s = cleaner.clean_now(&log).unwrap().expect("dirty log");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "clean {:>4}: {:.1} MB dirty in {:.2} s = {:.1} MB/s; {} -> {} bytes, kept {} of {} records, {} -> {} segments",
            codec.name(),
            s.dirty_bytes as f64 / 1e6,
            secs,
            s.dirty_bytes as f64 / 1e6 / secs,
            before,
            log.size_in_bytes(),
            s.filter.records_kept,
            s.filter.records_read,
            s.segments_before,
            s.segments_after,
        );
    }

    // Producer alone vs producer with the cleaner busy on another log.
    let victim = m
        .get_or_create_log(&TopicPartition::new("bench-produce", 0), config())
        .unwrap();
    let alone = produce(&victim, CompressionType::None, (mb * 4) << 20, keys);
    let dirty = m
        .get_or_create_log(&TopicPartition::new("bench-clean", 9), config())
        .unwrap();
    produce(&dirty, CompressionType::None, mb << 20, keys);
    dirty.roll().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let cleaner_thread = {
        let stop = stop.clone();
        let dirty = dirty.clone();
        std::thread::spawn(move || {
            let mut passes = 0;
            let mut cleaned = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A fresh cleaner each time re-cleans the whole log.
                let c = LogCleaner::new(CleanerConfig::default());
                if let Some(s) = sluice_storage::cleaner::clean_log(
                    &dirty,
                    sluice_record::Offset::ZERO,
                    &c.config(),
                    &mut sluice_storage::cleaner::Throttle::new(f64::MAX),
                )
                .unwrap()
                {
                    cleaned += s.bytes_read;
                }
                passes += 1;
            }
            (passes, cleaned)
        })
    };
    let with = produce(&victim, CompressionType::None, (mb * 4) << 20, keys);
    stop.store(true, Ordering::Relaxed);
    let (passes, cleaned) = cleaner_thread.join().unwrap();
    println!(
        "producer append: alone {alone:.1} MB/s, with the cleaner running {with:.1} MB/s ({passes} cleaner passes, {:.1} MB read)",
        cleaned as f64 / 1e6
    );
    m.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
