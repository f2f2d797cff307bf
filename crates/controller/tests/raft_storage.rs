//! The Raft metadata log's storage: openraft's own conformance suite, and
//! durability under simulated crashes (SimFs keeps only fsynced bytes plus
//! a random prefix of the rest).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder, Vote};
use sluice_controller::raft::log_store::LogStore;
use sluice_controller::raft::state_machine::StateMachine;
use sluice_controller::raft::{
    ApplyResult, Entry, FatalLatch, LogId, MetadataEntry, RaftTypes, StorageError,
};
use sluice_controller::LogError;
use sluice_metadata::record::FeatureLevelRecord;
use sluice_metadata::MetadataRecord;
use sluice_storage::{Fs, RealFs, SimFs};

struct SimBuilder;

impl StoreBuilder<RaftTypes, LogStore, StateMachine, ()> for SimBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError> {
        let fs: Arc<dyn Fs> = Arc::new(SimFs::new());
        let (log, sm) = open(&fs, Path::new("/meta")).expect("open");
        Ok(((), log, sm))
    }
}

struct RealBuilder;

impl StoreBuilder<RaftTypes, LogStore, StateMachine, tempfile::TempDir> for RealBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let (log, sm) = open(&fs, dir.path()).expect("open");
        Ok((dir, log, sm))
    }
}

fn open(fs: &Arc<dyn Fs>, dir: &Path) -> Result<(LogStore, StateMachine), LogError> {
    let fatal = Arc::new(FatalLatch::default());
    Ok((
        LogStore::open(fs.clone(), dir, fatal.clone())?,
        StateMachine::open(fs.clone(), dir, fatal)?,
    ))
}

#[test]
fn openraft_storage_suite_on_simulated_fs() {
    Suite::test_all(SimBuilder).unwrap();
}

#[test]
fn openraft_storage_suite_on_real_fs() {
    Suite::test_all(RealBuilder).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn feature(i: usize) -> MetadataRecord {
    MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: format!("feature.{i}"),
        feature_level: 1,
    })
}

fn batch(term: u64, index: u64, n: usize) -> Entry {
    let records = (0..n)
        .map(|i| {
            let mut b = Vec::new();
            feature(index as usize * 100 + i).encode(&mut b).unwrap();
            b
        })
        .collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataEntry {
            epoch: term as i32,
            leader: 1,
            append_time_ms: 0,
            records,
        }),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn indices(log: &mut LogStore) -> Vec<u64> {
    log.try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

#[test]
fn appended_entries_and_the_vote_survive_a_crash_once_acknowledged() {
    rt().block_on(async {
        for seed in 0..50 {
            let sim = Arc::new(SimFs::new());
            let fs: Arc<dyn Fs> = sim.clone();
            let dir = PathBuf::from("/meta");
            let (mut log, _) = open(&fs, &dir).unwrap();
            log.save_vote(&Vote::new(3, 2)).await.unwrap();
            log.blocking_append((0..5).map(|i| batch(1, i, 3)))
                .await
                .unwrap();
            log.blocking_append([batch(2, 5, 1)]).await.unwrap();
            sim.crash(seed);
            let (mut log, _) = open(&fs, &dir).unwrap();
            assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
            assert_eq!(
                indices(&mut log).await,
                vec![0, 1, 2, 3, 4, 5],
                "seed {seed}"
            );
        }
    });
}

#[test]
fn truncate_and_purge_are_durable() {
    rt().block_on(async {
        for seed in 0..30 {
            let sim = Arc::new(SimFs::new());
            let fs: Arc<dyn Fs> = sim.clone();
            let dir = PathBuf::from("/meta");
            let (mut log, _) = open(&fs, &dir).unwrap();
            log.blocking_append((0..10).map(|i| batch(1, i, 1)))
                .await
                .unwrap();
            log.truncate(log_id(1, 7)).await.unwrap();
            log.purge(log_id(1, 2)).await.unwrap();
            log.blocking_append([batch(2, 7, 1)]).await.unwrap();
            sim.crash(seed);
            let (mut log, _) = open(&fs, &dir).unwrap();
            assert_eq!(indices(&mut log).await, vec![3, 4, 5, 6, 7], "seed {seed}");
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
            assert_eq!(state.last_log_id, Some(log_id(2, 7)));
        }
    });
}

/// Bytes appended but never fsynced (an append the crash interrupted):
/// recovery drops them, whatever prefix of them survived.
#[test]
fn a_torn_tail_is_dropped() {
    rt().block_on(async {
        let sim = Arc::new(SimFs::new());
        let fs: Arc<dyn Fs> = sim.clone();
        let dir = PathBuf::from("/meta");
        let (mut log, _) = open(&fs, &dir).unwrap();
        log.blocking_append((0..4).map(|i| batch(1, i, 2)))
            .await
            .unwrap();
        drop(log);
        let path = dir.join("raft-log");
        let good = sim.contents(&path).unwrap();
        // The same file with a fifth entry appended, cut at every length.
        let (mut log, _) = open(&fs, &dir).unwrap();
        log.blocking_append([batch(1, 4, 2)]).await.unwrap();
        drop(log);
        let full = sim.contents(&path).unwrap();
        for cut in good.len()..full.len() {
            for zero_fill in [false, true] {
                let mut bytes = full[..cut].to_vec();
                if zero_fill {
                    bytes.resize(full.len(), 0);
                }
                sim.set_contents(&path, &bytes);
                let (mut log, _) = open(&fs, &dir).unwrap();
                // (Zeros may restore the entry's own trailing zero bytes.)
                let want: Vec<u64> = if bytes == full {
                    vec![0, 1, 2, 3, 4]
                } else {
                    vec![0, 1, 2, 3]
                };
                assert_eq!(indices(&mut log).await, want, "cut at {cut}");
                if bytes == full {
                    continue;
                }
                // ...and the log appends after the cut.
                log.blocking_append([batch(1, 4, 1)]).await.unwrap();
                drop(log);
                let (mut log, _) = open(&fs, &dir).unwrap();
                assert_eq!(indices(&mut log).await, vec![0, 1, 2, 3, 4]);
            }
        }
    });
}

/// A flipped bit in a durable entry that intact entries follow is not a
/// torn write: the log refuses to open rather than lose a committed entry.
#[test]
fn a_corrupt_committed_entry_halts_loudly() {
    rt().block_on(async {
        let sim = Arc::new(SimFs::new());
        let fs: Arc<dyn Fs> = sim.clone();
        let dir = PathBuf::from("/meta");
        let (mut log, _) = open(&fs, &dir).unwrap();
        log.blocking_append((0..4).map(|i| batch(1, i, 2)))
            .await
            .unwrap();
        drop(log);
        let path = dir.join("raft-log");
        let good = sim.contents(&path).unwrap();
        for at in [0, 3, 5, 9, 12, 20, good.len() / 2] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            sim.set_contents(&path, &bad);
            match open(&fs, &dir) {
                Err(LogError::Fatal(msg)) => assert!(msg.contains("raft-log"), "{msg}"),
                Ok(_) => panic!("corruption at byte {at} was not detected"),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    });
}

/// Offsets are a running count of records; a batch appended in a term other
/// than the epoch its appender named is ignored; snapshots carry the image
/// and the next offset across a restart.
#[test]
fn apply_numbers_records_and_snapshots_survive_restart() {
    rt().block_on(async {
        let sim = Arc::new(SimFs::new());
        let fs: Arc<dyn Fs> = sim.clone();
        let dir = PathBuf::from("/meta");
        let (_, mut sm) = open(&fs, &dir).unwrap();
        let mut stale = batch(3, 2, 4);
        if let EntryPayload::Normal(b) = &mut stale.payload {
            b.epoch = 2;
        }
        let out = sm
            .apply([batch(1, 0, 3), batch(1, 1, 2), stale, batch(3, 3, 1)])
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![
                ApplyResult::Committed {
                    base_offset: 0,
                    last_offset: 2
                },
                ApplyResult::Committed {
                    base_offset: 3,
                    last_offset: 4
                },
                ApplyResult::EpochMismatch,
                ApplyResult::Committed {
                    base_offset: 5,
                    last_offset: 5
                },
            ]
        );
        let image = sm.shared().state.lock().image.canonical_bytes().unwrap();
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(3, 3)));
        sim.crash(7);
        let (_, mut sm) = open(&fs, &dir).unwrap();
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(3, 3)));
        assert_eq!(
            sm.shared().state.lock().image.canonical_bytes().unwrap(),
            image
        );
        let out = sm.apply([batch(3, 4, 2)]).await.unwrap();
        assert_eq!(
            out,
            vec![ApplyResult::Committed {
                base_offset: 6,
                last_offset: 7
            }]
        );
    });
}
