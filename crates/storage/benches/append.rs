//! Append throughput of the storage engine against the physical limit of
//! the same disk, measured in the same run.
//!
//! ```text
//! cargo bench -p sluice-storage --bench append
//! BENCH_MB=256 BENCH_DIR=/path/on/the/disk cargo bench -p sluice-storage --bench append
//! ```
//!
//! A = `Log::append_as_leader` (RealFs, default config: no fsync, 1 GiB
//! segments), one ~16 KiB batch per call, round-robin over 1 or 8
//! partitions. B = plain `write(2)` of the same batch bytes, round-robin into
//! as many files. Runs alternate A B A B ... (3 each after one discarded
//! warm-up pair), every run writes fresh files of equal size that are
//! deleted before the next run, so after the warm-up the page cache pages
//! are recycled (freed by the previous run's deletion), for A and B alike.
//! Medians are reported.
//!
//! Durable mode: A = `flush.messages=1`, 64 threads each appending a batch
//! and waiting in `flush_until` (group commit) on one partition; B = one
//! thread writing the same batches with an `fdatasync` every 1 MiB.

#[path = "../src/testutil.rs"]
mod testutil;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sluice_record::{Batches, LeaderEpoch};
use sluice_storage::{
    Clock, LogConfig, LogManager, LogManagerConfig, RealFs, SystemClock, TopicPartition,
};

const BATCH_TARGET: usize = 16 * 1024;
fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn batch_for(record_size: usize) -> (Vec<u8>, usize) {
    // ~16 KiB: records of `record_size` value bytes plus ~8 bytes of framing.
    let n = (BATCH_TARGET - 61) / (record_size + 8);
    let now = SystemClock.now_ms();
    let b = testutil::batch_of(n, record_size, now, 7);
    assert_eq!(Batches::new(&b).count(), 1);
    (b, n)
}

fn mem_free_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find(|l| l.starts_with("MemFree:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Run {
    secs: f64,
    bytes: u64,
    /// CPU seconds of the writing thread (single-threaded runs only).
    cpu: f64,
}

/// CPU seconds (user + system) used by the calling thread so far.
fn thread_cpu_secs() -> f64 {
    cpu_secs(libc::RUSAGE_THREAD)
}

fn process_cpu_secs() -> f64 {
    cpu_secs(libc::RUSAGE_SELF)
}

fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn run_append(
    dir: &Path,
    batch: &[u8],
    partitions: usize,
    batches: usize,
    config: LogConfig,
) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.to_path_buf()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap();
    let logs: Vec<_> = (0..partitions)
        .map(|p| {
            m.get_or_create_log(&TopicPartition::new("bench", p as i32), config.clone())
                .unwrap()
        })
        .collect();
    let mut buf = batch.to_vec();
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    for i in 0..batches {
        logs[i % partitions]
            .append_as_leader(&mut buf, LeaderEpoch(0))
            .unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_secs() - cpu0;
    drop(logs);
    drop(m);
    std::fs::remove_dir_all(dir).unwrap();
    Run {
        secs,
        bytes: (batch.len() * batches) as u64,
        cpu,
    }
}

fn run_plain_write(dir: &Path, batch: &[u8], files: usize, batches: usize) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut fds: Vec<std::fs::File> = (0..files)
        .map(|i| std::fs::File::create(dir.join(format!("plain-{i}"))).unwrap())
        .collect();
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    for i in 0..batches {
        fds[i % files].write_all(batch).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_secs() - cpu0;
    drop(fds);
    std::fs::remove_dir_all(dir).unwrap();
    Run {
        secs,
        bytes: (batch.len() * batches) as u64,
        cpu,
    }
}

fn run_group_commit(dir: &Path, batch: &[u8], threads: usize, batches: usize) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.to_path_buf()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap();
    let config = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = m
        .get_or_create_log(&TopicPartition::new("durable", 0), config)
        .unwrap();
    let next = AtomicUsize::new(0);
    let cpu0 = process_cpu_secs();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let log = log.clone();
            let next = &next;
            s.spawn(move || {
                let mut buf = batch.to_vec();
                while next.fetch_add(1, Ordering::Relaxed) < batches {
                    let info = log.append_as_leader(&mut buf, LeaderEpoch(0)).unwrap();
                    if info.needs_flush {
                        log.flush_until(info.last_offset).unwrap();
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu0;
    drop(log);
    drop(m);
    std::fs::remove_dir_all(dir).unwrap();
    Run {
        secs,
        bytes: (batch.len() * batches) as u64,
        cpu,
    }
}

fn run_fdatasync_every_mib(dir: &Path, batch: &[u8], batches: usize) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let f = std::fs::File::create(dir.join("plain-sync")).unwrap();
    let mut pos = 0u64;
    let mut since = 0usize;
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    for _ in 0..batches {
        f.write_all_at(batch, pos).unwrap();
        pos += batch.len() as u64;
        since += batch.len();
        if since >= 1 << 20 {
            f.sync_data().unwrap();
            since = 0;
        }
    }
    f.sync_data().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_secs() - cpu0;
    drop(f);
    std::fs::remove_dir_all(dir).unwrap();
    Run {
        secs,
        bytes: (batch.len() * batches) as u64,
        cpu,
    }
}

fn mbps(r: &Run) -> f64 {
    r.bytes as f64 / r.secs / 1e6
}

/// Prints one result line: medians of A and B, median of the per-pair
/// ratios A/B, CPU seconds per GB of A and B, and every run.
fn report(case: &str, a: &[Run], b: &[Run], batch_len: usize, records_per_batch: usize) {
    let mut am: Vec<f64> = a.iter().map(mbps).collect();
    let mut bm: Vec<f64> = b.iter().map(mbps).collect();
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| mbps(x) / mbps(y)).collect();
    let mut acpu: Vec<f64> = a.iter().map(|r| r.cpu / (r.bytes as f64 / 1e9)).collect();
    let mut bcpu: Vec<f64> = b.iter().map(|r| r.cpu / (r.bytes as f64 / 1e9)).collect();
    let runs = format!(
        "{:?} | {:?}",
        am.iter().map(|x| x.round() as i64).collect::<Vec<_>>(),
        bm.iter().map(|x| x.round() as i64).collect::<Vec<_>>()
    );
    let ma = median(&mut am);
    println!(
        "{:<34} {:>7.0} {:>12.0} {:>7.0} {:>6.0}% {:>6.0}% {:>6.2} {:>6.2}  {}",
        case,
        ma,
        ma * 1e6 / batch_len as f64 * records_per_batch as f64,
        median(&mut bm),
        100.0 * ma / median(&mut bm.clone()),
        100.0 * median(&mut ratios),
        median(&mut acpu),
        median(&mut bcpu),
        runs
    );
}

fn header(first: &str, base: &str) {
    let cols = ["MB/s", "records/s", base, "ratio", "pair", "cpuA", "cpuB"];
    println!(
        "{:<34} {:>7} {:>12} {:>7} {:>7} {:>7} {:>6} {:>6}  runs MB/s A | B",
        first, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6]
    );
}

fn main() {
    let root = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/storage-bench"
            ))
        });
    let mib: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let sync_mib: usize = std::env::var("BENCH_SYNC_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    std::fs::create_dir_all(&root).unwrap();
    println!(
        "storage append benchmark: dir {} ({} MiB per buffered run, {} MiB per durable run)",
        root.display(),
        mib,
        sync_mib
    );
    println!("pages: every run writes new files and deletes them afterwards; one discarded warm-up pair first,");
    println!("so measured runs write into RECYCLED page-cache pages (freed by the previous run), A and B alike.");
    println!();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    header("buffered case (A vs plain write)", "write");
    for (record_size, partitions) in [(1024usize, 1usize), (1024, 8), (100, 1), (100, 8)] {
        if only == "durable" {
            break;
        }
        let (batch, records_per_batch) = batch_for(record_size);
        let batches = mib * 1024 * 1024 / batch.len();
        let a_dir = root.join("append");
        let b_dir = root.join("plain");
        // Warm-up pair, discarded.
        run_append(&a_dir, &batch, partitions, batches, LogConfig::default());
        run_plain_write(&b_dir, &batch, partitions, batches);
        let free_before = mem_free_kib();
        let mut a = Vec::new();
        let mut b = Vec::new();
        for _ in 0..rounds() {
            a.push(run_append(
                &a_dir,
                &batch,
                partitions,
                batches,
                LogConfig::default(),
            ));
            b.push(run_plain_write(&b_dir, &batch, partitions, batches));
        }
        let free_after = mem_free_kib();
        report(
            &format!("append {record_size} B records, {partitions} part."),
            &a,
            &b,
            batch.len(),
            records_per_batch,
        );
        if let (Some(x), Some(y)) = (free_before, free_after) {
            println!("{:<34} (MemFree {} -> {} MiB)", "", x / 1024, y / 1024);
        }
    }

    println!();
    header("durable case (A vs fdatasync/MiB)", "base");
    for record_size in [1024usize, 100] {
        if only == "buffered" {
            break;
        }
        let (batch, records_per_batch) = batch_for(record_size);
        let batches = sync_mib * 1024 * 1024 / batch.len();
        let a_dir = root.join("durable");
        let b_dir = root.join("plain-sync");
        run_group_commit(&a_dir, &batch, 64, batches / 4);
        run_fdatasync_every_mib(&b_dir, &batch, batches / 4);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for _ in 0..rounds() {
            a.push(run_group_commit(&a_dir, &batch, 64, batches));
            b.push(run_fdatasync_every_mib(&b_dir, &batch, batches));
        }
        report(
            &format!("flush.messages=1 64 thr, {record_size} B"),
            &a,
            &b,
            batch.len(),
            records_per_batch,
        );
    }
    println!();
    println!("A = Log::append_as_leader (validate CRC, assign offsets, one pwrite, sparse index); B = plain write(2) of the same bytes.");
    println!("durable B = one thread, same 16 KiB batches, fdatasync every 1 MiB.");
    println!("ratio = median A / median B; pair = median of per-pair ratios A_i/B_i; cpuA/cpuB = CPU seconds per GB");
    println!("(writing thread; for the 64-thread case the whole process).");
}
