//! Append + commit throughput of the single-voter metadata log on the real
//! file system (each append is written and fdatasynced before it
//! resolves), next to the physical floor measured in the same run (a
//! 4 KiB pwrite + fdatasync), and the quorum controller's CreateTopics
//! rate on top of it (one topic of one partition per request: one commit
//! per request).
//!
//! `cargo bench -p sluice-controller --bench single_voter_append`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_controller::testing::conformance::config_record;
use sluice_controller::*;
use sluice_metadata::BrokerId;
use sluice_storage::{Fs, OpenOptions, RealFs, SystemClock};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn open(dir: &std::path::Path) -> Arc<SingleVoterLog> {
    let config = SingleVoterConfig::new(BrokerId(1), dir);
    Arc::new(SingleVoterLog::open(config, Arc::new(RealFs), Arc::new(SystemClock)).unwrap())
}

fn fsync_floor(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let f = RealFs
        .open(&dir.path().join("floor"), &OpenOptions::create_truncate())
        .unwrap();
    let buf = vec![7u8; 4096];
    let mut pos = 0u64;
    c.bench_function("floor/pwrite_4KiB_fdatasync", |b| {
        b.iter(|| {
            f.write_at(&buf, pos).unwrap();
            f.sync_data().unwrap();
            pos += 4096;
        })
    });
}

fn append_commit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = rt.block_on(async { open(dir.path()) });
    let epoch = log.leader_and_epoch().epoch;
    let mut g = c.benchmark_group("single_voter/append_commit");
    for n in [1usize, 10, 100, 1000] {
        let records: Vec<_> = (0..n).map(config_record).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("records_per_append", n),
            &records,
            |b, r| b.iter(|| rt.block_on(log.append(epoch, r.clone())).unwrap()),
        );
    }
    g.finish();
    rt.block_on(log.shutdown());
}

fn controller_create_topics(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (log, ctl) = rt.block_on(async {
        let log = open(dir.path());
        let ctl = QuorumController::start(
            log.clone(),
            ControllerConfig::default(),
            Arc::new(PermissiveValidator),
            Arc::new(SystemClock),
        );
        let reg = ctl
            .register_broker(BrokerRegistrationRequest {
                broker_id: BrokerId(1),
                incarnation_id: uuid::Uuid::new_v4(),
                listeners: Vec::new(),
                features: Vec::new(),
                rack: None,
                log_dirs: Vec::new(),
            })
            .await
            .unwrap();
        ctl.heartbeat(BrokerHeartbeat {
            broker_id: BrokerId(1),
            broker_epoch: reg.broker_epoch,
            current_metadata_offset: sluice_record::Offset(i64::MAX),
            want_fence: false,
            want_shutdown: false,
        })
        .await
        .unwrap();
        (log, ctl)
    });
    let next = AtomicU64::new(0);
    c.bench_function("controller/create_topics_one_per_request", |b| {
        b.iter(|| {
            let name = format!("t{}", next.fetch_add(1, Ordering::Relaxed));
            let r = rt
                .block_on(ctl.create_topics(vec![CreateTopic::named(name)], false))
                .unwrap();
            assert!(r[0].is_ok());
        })
    });
    let batch = AtomicU64::new(0);
    let mut g = c.benchmark_group("controller/create_topics_100_per_request");
    g.throughput(Throughput::Elements(100));
    g.bench_function("topics", |b| {
        b.iter(|| {
            let k = batch.fetch_add(1, Ordering::Relaxed);
            let topics = (0..100)
                .map(|i| CreateTopic::named(format!("b{k}-{i}")))
                .collect();
            let r = rt.block_on(ctl.create_topics(topics, false)).unwrap();
            assert!(r.iter().all(Result::is_ok));
        })
    });
    g.finish();
    rt.block_on(async {
        ctl.shutdown().await;
        log.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = fsync_floor, append_commit, controller_create_topics
}
criterion_main!(benches);
