//! Append + commit throughput of the single-voter metadata log on the real
//! file system (each append is written and fdatasynced before it
//! resolves), next to the physical floor measured in the same run (a
//! 4 KiB pwrite + fdatasync), and the quorum controller's CreateTopics
//! rate on top of it (1,000 topics of 3 partitions on a fresh log, in
//! requests of 1, 10 or 100 topics: one commit per request; and as 1,000
//! concurrent one-topic requests, which the controller commits in groups).
//!
//! `cargo bench -p sluice-controller --bench single_voter_append`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_controller::testing::conformance::config_record;
use sluice_controller::*;
use sluice_metadata::BrokerId;
use sluice_storage::{Fs, ManualClock, OpenOptions, RealFs, SystemClock};

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

/// A fresh log and controller with one registered, unfenced broker.
async fn controller(dir: &std::path::Path) -> (Arc<SingleVoterLog>, QuorumController) {
    let log = open(dir);
    let ctl = QuorumController::start(
        log.clone(),
        ControllerConfig::default(),
        Arc::new(PermissiveValidator),
        // A clock that stands still: the broker, which sends no
        // heartbeats here, is never fenced.
        Arc::new(ManualClock::new(0)),
    );
    let reg = ctl
        .register_broker(BrokerRegistrationRequest {
            broker_id: BrokerId(1),
            incarnation_id: uuid::Uuid::new_v4(),
            listeners: Vec::new(),
            features: Vec::new(),
            rack: None,
            log_dirs: Vec::new(),
            previous_broker_epoch: None,
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
}

/// The figure: 1,000 topics of 3 partitions, created through the
/// controller on a fresh single-voter log, `per_request` topics per
/// CreateTopics (each request is one commit).
fn controller_create_topics(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("controller/create_1000_topics_x3");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    for per_request in [1usize, 10, 100] {
        g.bench_with_input(
            BenchmarkId::new("topics_per_request", per_request),
            &per_request,
            |b, &per| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().unwrap();
                        let (log, ctl) = rt.block_on(controller(dir.path()));
                        let started = Instant::now();
                        rt.block_on(async {
                            for k in 0..1000 / per {
                                let topics = (0..per)
                                    .map(|i| CreateTopic {
                                        num_partitions: 3,
                                        ..CreateTopic::named(format!("t{k}-{i}"))
                                    })
                                    .collect();
                                let r = ctl.create_topics(topics, false).await.unwrap();
                                assert!(r.iter().all(Result::is_ok), "{:?}", r.first());
                            }
                        });
                        total += started.elapsed();
                        rt.block_on(async {
                            ctl.shutdown().await;
                            log.shutdown().await;
                        });
                    }
                    total
                })
            },
        );
    }
    // The same 1,000 one-topic requests, all in flight at once (as from
    // many clients): the controller commits them in groups.
    g.bench_function("concurrent_requests_of_1", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let (log, ctl) = rt.block_on(controller(dir.path()));
                let ctl = Arc::new(ctl);
                let started = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..1000)
                        .map(|k| {
                            let ctl = ctl.clone();
                            tokio::spawn(async move {
                                let t = CreateTopic {
                                    num_partitions: 3,
                                    ..CreateTopic::named(format!("t{k}"))
                                };
                                ctl.create_topics(vec![t], false).await
                            })
                        })
                        .collect();
                    for t in tasks {
                        assert!(t.await.unwrap().unwrap()[0].is_ok());
                    }
                });
                total += started.elapsed();
                rt.block_on(async {
                    ctl.shutdown().await;
                    log.shutdown().await;
                });
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = fsync_floor, append_commit, controller_create_topics
}
criterion_main!(benches);
