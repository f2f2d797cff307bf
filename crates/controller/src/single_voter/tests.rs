//! The single-voter log: the seam's conformance suite (on the simulated
//! and the real file system), crashes with the simulator's power-cut
//! semantics (unsynced bytes lost), torn tails, fatal storage errors,
//! bootstrap, and the on-disk layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_metadata::{BrokerId, MetadataRecord};
use sluice_record::Offset;
use sluice_storage::{Fault, FaultKind, Fs, ManualClock, RealFs, SimFs};

use super::*;
use crate::testing::conformance::{collect_until, config_record};
use crate::testing::{run_conformance, LogFactory};

const EIO: i32 = 5;

fn config(dir: &Path) -> SingleVoterConfig {
    SingleVoterConfig {
        max_records_per_append: 100,
        snapshot_every_records: 300,
        segment_bytes: 4096,
        ..SingleVoterConfig::new(BrokerId(1), dir)
    }
}

struct Factory {
    fs: Arc<dyn Fs>,
    config: SingleVoterConfig,
    current: Option<Arc<SingleVoterLog>>,
}

impl LogFactory for Factory {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn MetadataLog>> {
        Box::pin(async move {
            if let Some(old) = self.current.take() {
                old.shutdown().await;
            }
            let clock = Arc::new(ManualClock::new(1_000));
            let log = SingleVoterLog::open(self.config.clone(), self.fs.clone(), clock).unwrap();
            let log = Arc::new(log);
            self.current = Some(log.clone());
            log as Arc<dyn MetadataLog>
        })
    }
    fn settle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(l) = &self.current {
                l.quiesce().await;
            }
        })
    }
    fn max_records_per_append(&self) -> usize {
        self.config.max_records_per_append
    }
    fn compacts_after(&self) -> Option<usize> {
        Some(self.config.snapshot_every_records as usize)
    }
    fn restartable(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn conformance_on_the_simulated_fs() {
    let mut f = Factory {
        fs: Arc::new(SimFs::new()),
        config: config(Path::new("/meta")),
        current: None,
    };
    run_conformance(&mut f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_the_real_fs() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Factory {
        fs: Arc::new(RealFs),
        config: config(dir.path()),
        current: None,
    };
    run_conformance(&mut f).await;
}

#[tokio::test]
async fn the_memory_log_passes_the_suite_too() {
    struct Mem;
    impl LogFactory for Mem {
        fn open(&mut self) -> BoxFuture<'_, Arc<dyn MetadataLog>> {
            Box::pin(async { crate::testing::MemoryLog::new(BrokerId(1)) as Arc<dyn MetadataLog> })
        }
        fn settle(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
        fn max_records_per_append(&self) -> usize {
            10_000
        }
        fn compacts_after(&self) -> Option<usize> {
            None
        }
        fn restartable(&self) -> bool {
            false
        }
    }
    run_conformance(&mut Mem).await;
}

fn open(fs: &SimFs, dir: &Path) -> SingleVoterLog {
    let clock = Arc::new(ManualClock::new(1_000));
    SingleVoterLog::open(config(dir), Arc::new(fs.clone()), clock).unwrap()
}

fn recs(from: usize, n: usize) -> Vec<MetadataRecord> {
    (from..from + n).map(config_record).collect()
}

/// Every batch a fresh listener delivers, from the start.
async fn history(log: &SingleVoterLog) -> Vec<CommittedBatch> {
    let hw = log.quorum_info().high_watermark;
    if hw == Offset::ZERO {
        return Vec::new();
    }
    let mut l = log.listen();
    collect_until(&mut *l, Offset(hw.0 - 1)).await.batches
}

#[tokio::test]
async fn files_are_where_and_what_kafka_has() {
    let fs = SimFs::new();
    let log = open(&fs, Path::new("/meta"));
    let e = log.leader_and_epoch().epoch;
    log.append(e, recs(0, 3)).await.unwrap();
    let dir = PathBuf::from("/meta/__cluster_metadata-0");
    assert_eq!(log.dir(), dir);
    let seg = fs.contents(&dir.join("00000000000000000000.log")).unwrap();
    let header = sluice_record::BatchHeader::validate_stored(&seg).unwrap();
    assert_eq!(header.partition_leader_epoch, e);
    let reader = sluice_record::records(&seg, 0).unwrap();
    for (i, r) in reader.records().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.key, None);
        assert_eq!(
            MetadataRecord::decode(r.value.unwrap()).unwrap(),
            config_record(i)
        );
    }
    let qs = String::from_utf8(fs.contents(&dir.join("quorum-state")).unwrap()).unwrap();
    assert!(qs.contains(&format!("\"leaderEpoch\":{}", e.0)), "{qs}");
    assert!(qs.contains("\"leaderId\":1"), "{qs}");
}

#[tokio::test]
async fn acknowledged_appends_survive_a_crash_and_an_unacknowledged_one_is_whole_or_gone() {
    for seed in 0..24u64 {
        let fs = SimFs::new();
        let dir = Path::new("/meta");
        let log = open(&fs, dir);
        let e = log.leader_and_epoch().epoch;
        let n = 1 + (seed as usize * 7) % 13;
        let mut acked = Vec::new();
        for i in 0..n {
            let size = 1 + (i * 5 + seed as usize) % 40;
            log.append(e, recs(i * 100, size)).await.unwrap();
            acked.push(recs(i * 100, size));
        }
        // On odd seeds the next append is written but its fsync fails: not
        // acknowledged, and the log refuses everything after it. On even
        // seeds the power goes right after the acknowledgements.
        if seed % 2 == 1 {
            fs.inject(Fault::once(".log", FaultKind::SyncError(EIO)));
            let r = log.append(e, recs(9_000, 30)).await;
            assert!(matches!(r, Err(LogError::Fatal(_))), "{r:?}");
            assert!(matches!(
                log.append(e, recs(0, 1)).await,
                Err(LogError::Fatal(_))
            ));
            let mut l = log.listen();
            assert!(matches!(l.next().await, Err(LogError::Fatal(_))));
        }
        drop(log);
        fs.crash(seed);

        let log = open(&fs, dir);
        assert!(log.leader_and_epoch().epoch > e, "seed {seed}");
        let batches = history(&log).await;
        let got: Vec<_> = batches.iter().map(|b| b.records.clone()).collect();
        assert!(
            got.len() == n || got.len() == n + 1,
            "seed {seed}: {} batches",
            got.len()
        );
        assert_eq!(got[..n], acked[..], "seed {seed}: acknowledged data lost");
        if got.len() == n + 1 {
            assert_eq!(
                got[n],
                recs(9_000, 30),
                "seed {seed}: partial batch survived"
            );
        }
        // The log goes on at the right offset.
        let next = log.quorum_info().high_watermark;
        let last = log
            .append(log.leader_and_epoch().epoch, recs(0, 2))
            .await
            .unwrap();
        assert_eq!(last, Offset(next.0 + 1));
    }
}

#[tokio::test]
async fn a_torn_tail_is_dropped_on_open() {
    let fs = SimFs::new();
    let dir = Path::new("/meta");
    let log = open(&fs, dir);
    let e = log.leader_and_epoch().epoch;
    log.append(e, recs(0, 5)).await.unwrap();
    let last = log.append(e, recs(5, 5)).await.unwrap();
    log.shutdown().await;
    drop(log);
    // Half of a third batch made it to disk.
    let seg = Path::new("/meta/__cluster_metadata-0/00000000000000000000.log");
    let mut bytes = fs.contents(seg).unwrap();
    let third = codec::build_batch(
        &codec::encode_values(&recs(10, 5)).unwrap().0,
        Offset(10),
        e,
        0,
    )
    .unwrap();
    bytes.extend_from_slice(&third[..third.len() / 2]);
    fs.set_contents(seg, &bytes);

    let log = open(&fs, dir);
    assert_eq!(log.quorum_info().high_watermark, Offset(last.0 + 1));
    let batches = history(&log).await;
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].records, recs(5, 5));
    let e2 = log.leader_and_epoch().epoch;
    assert_eq!(log.append(e2, recs(0, 1)).await.unwrap(), Offset(10));
}

#[tokio::test]
async fn snapshots_compact_the_log_and_survive_restarts() {
    let fs = SimFs::new();
    let dir = Path::new("/meta");
    let log = open(&fs, dir);
    let e = log.leader_and_epoch().epoch;
    let mut last = Offset(-1);
    for i in 0..10 {
        last = log.append(e, recs(i * 100, 100)).await.unwrap();
    }
    log.quiesce().await;
    let snap = log
        .latest_snapshot()
        .expect("a snapshot after 1000 records");
    assert!(snap.end_offset.0 >= 300);
    assert!(
        log.log_start_offset() > Offset::ZERO,
        "segments below the snapshot deleted"
    );
    let name = format!("/meta/__cluster_metadata-0/{}", snap.file_name());
    assert!(fs.contents(Path::new(&name)).is_some());
    let mut l = log.listen();
    let before = collect_until(&mut *l, last).await.image();
    log.shutdown().await;
    drop(log);
    fs.crash(3);
    let log = open(&fs, dir);
    let mut l = log.listen();
    let seen = collect_until(&mut *l, last).await;
    assert!(
        seen.snapshot.is_some(),
        "a restarted listener starts from the snapshot"
    );
    assert_eq!(
        seen.image().canonical_bytes().unwrap(),
        before.canonical_bytes().unwrap()
    );
}

#[tokio::test]
async fn bootstrap_writes_only_into_an_empty_log() {
    let fs = SimFs::new();
    let dir = Path::new("/meta");
    let log = open(&fs, dir);
    // More records than one append may hold: bootstrap is not limited.
    assert!(log.bootstrap(recs(0, 250)).await.unwrap());
    assert!(!log.bootstrap(recs(0, 1)).await.unwrap());
    let batches = history(&log).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].records.len(), 250);
    log.shutdown().await;
    drop(log);
    let log = open(&fs, dir);
    assert!(
        !log.bootstrap(recs(0, 1)).await.unwrap(),
        "not empty after a restart"
    );
}

#[tokio::test]
async fn epochs_go_up_on_every_start_even_without_appends() {
    let fs = SimFs::new();
    let dir = Path::new("/meta");
    let mut last = LeaderEpoch(0);
    for seed in 0..5 {
        let log = open(&fs, dir);
        let e = log.leader_and_epoch().epoch;
        assert!(e > last);
        last = e;
        drop(log);
        fs.crash(seed);
    }
}

#[tokio::test]
async fn a_full_disk_uses_the_metadata_headroom_and_the_node_still_starts() {
    let fs = SimFs::new();
    let dir = Path::new("/meta");
    let log = open(&fs, dir);
    let e = log.leader_and_epoch().epoch;
    log.append(e, recs(0, 5)).await.unwrap();
    sluice_storage::headroom::refill(&fs, dir).unwrap();
    fs.set_capacity(Some(fs.used_bytes()));
    // The disk is full: the append gets through on the headroom.
    let last = log.append(e, recs(5, 5)).await.unwrap();
    log.shutdown().await;
    drop(log);
    sluice_storage::headroom::refill(&fs, dir).unwrap();
    fs.set_capacity(Some(fs.used_bytes()));
    // Still full at the next start: quorum-state is written on the headroom.
    let log = open(&fs, dir);
    assert!(log.leader_and_epoch().epoch > e);
    assert_eq!(log.quorum_info().high_watermark, Offset(last.0 + 1));
}
