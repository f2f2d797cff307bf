//! Benchmark figures of the Raft metadata quorum on loopback (3 voters in
//! one process, real files with fsync):
//! - time to a new leader after the leader is killed, over N trials
//!   (`RAFT_FAILOVER_TRIALS`, default 20): median, p99, max;
//! - append throughput through the leader, one appender and 16 concurrent
//!   appenders (1-record batches, each resolved on commit).
//!
//! `cargo run -p sluice-controller --example raft_failover [--release]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::raft::local::LocalCluster;
use sluice_controller::MetadataLog;
use sluice_metadata::record::FeatureLevelRecord;
use sluice_metadata::MetadataRecord;

fn record(i: u64) -> Vec<MetadataRecord> {
    vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: format!("f{}", i % 1000),
        feature_level: 1 + (i % 100) as i16,
    })]
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let trials: usize = std::env::var("RAFT_FAILOVER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(3, dir.path().to_path_buf(), |_| {})
        .await
        .unwrap();
    let patience = Duration::from_secs(30);
    let mut times = Vec::new();
    for t in 0..trials {
        let (leader, _) = c.wait_leader(None, patience).await.expect("leader");
        let last = c.append(record(t as u64), patience).await.unwrap();
        assert!(c.wait_seen(last.0, patience).await);
        let start = Instant::now();
        c.kill(leader).await;
        let killed = start.elapsed().as_secs_f64() * 1000.0;
        let (new, _) = c
            .wait_leader(Some(leader), patience)
            .await
            .expect("new leader");
        let took = start.elapsed();
        times.push(took.as_secs_f64() * 1000.0);
        println!(
            "trial {t}: leader {} killed (in {killed:.0} ms), node {} leads after {:.0} ms",
            leader.0, new.0, times[t]
        );
        c.restart(leader).await.unwrap();
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "new leader after leader kill, {trials} trials: median {:.0} ms, p99 {:.0} ms, max {:.0} ms, min {:.0} ms",
        pct(&times, 0.5),
        pct(&times, 0.99),
        times[times.len() - 1],
        times[0]
    );

    let (leader, _) = c.wait_leader(None, patience).await.unwrap();
    let log = c.nodes[&leader].log.clone();
    for appenders in [1u64, 16] {
        let done = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for a in 0..appenders {
            let (log, done) = (log.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = a * 1_000_000;
                while Instant::now() < until {
                    let epoch = log.leader_and_epoch().epoch;
                    log.append(epoch, record(i))
                        .await
                        .expect("append on a stable leader");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = done.load(Ordering::Relaxed);
        println!(
            "appends committed with {appenders} appender(s): {n} in 3 s = {:.0}/s",
            n as f64 / 3.0
        );
    }
    c.shutdown().await;
}
