//! Measurement, not a check (ignored by default): how long a start after a
//! clean shutdown takes to load `STARTUP_PARTITIONS` logs (1000) whose
//! active segment holds `STARTUP_SEGMENT_MIB` MiB (1), with the segment
//! files in the page cache and evicted from it. Since issue 15 every
//! active segment is validated (CRC, framing, offsets) at start.
//!
//! `cargo test --release -p sluice-storage --test startup_cost -- --ignored --nocapture`

#[path = "../src/testutil.rs"]
mod testutil;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sluice_record::LeaderEpoch;
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, RealFs, SystemClock, TopicPartition,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn manager(dir: &Path) -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.to_path_buf()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap()
}

fn evict(dir: &Path) {
    for e in walk(dir) {
        let f = std::fs::File::open(&e).unwrap();
        // SAFETY: advice on an open fd of ours.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
#[ignore]
fn clean_start_cost() {
    let partitions = env_or("STARTUP_PARTITIONS", 1000);
    let mib = env_or("STARTUP_SEGMENT_MIB", 1);
    let tmp = tempfile::tempdir_in(std::env::var("STARTUP_DIR").unwrap_or("/tmp".into())).unwrap();
    let dir = tmp.path().join("logs");
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new("startup", p as i32))
        .collect();
    let batch = testutil::batch_of(16, 1000, 1_700_000_000_000, 7);
    let per_log = (mib << 20) / batch.len() + 1;
    {
        let m = manager(&dir);
        for tp in &tps {
            let log = m.get_or_create_log(tp, LogConfig::default()).unwrap();
            for _ in 0..per_log {
                let mut b = batch.clone();
                log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
            }
        }
        m.shutdown().unwrap();
    }
    for cold in [false, false, true, true] {
        if cold {
            evict(&dir);
        }
        let t = Instant::now();
        let m = manager(&dir);
        assert!(m.had_clean_shutdown(&dir));
        let mut active = 0;
        for tp in &tps {
            let log = m.get_or_create_log(tp, LogConfig::default()).unwrap();
            active += log.segments().last().unwrap().size();
        }
        let s = t.elapsed().as_secs_f64();
        let bytes = active as f64;
        println!(
            "{partitions} logs x {:.2} MiB active segment, {}: start {:.3} s, {:.0} MB/s of active segment",
            bytes / partitions as f64 / (1 << 20) as f64,
            if cold { "evicted" } else { "cached" },
            s,
            bytes / s / 1e6
        );
        m.shutdown().unwrap();
    }
}
