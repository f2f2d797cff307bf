//! A full disk and the descriptor budget, over the simulated file system:
//! no map write may land in unallocated space (a SIGBUS on a real file
//! system), appends and new segments are refused with ENOSPC instead, a
//! full disk still loads and serves reads, deleting frees room, and a
//! partition holds one descriptor per open segment.

#[path = "../src/testutil.rs"]
mod testutil;

use std::path::PathBuf;
use std::sync::Arc;

use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs, StorageError, TopicPartition,
};
use testutil::batch_of;

const NOW: i64 = 1_700_000_000_000;

fn manager(fs: &SimFs, max_open: usize) -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/data/a")],
            max_open_segment_files: max_open,
            ..Default::default()
        },
        Arc::new(fs.clone()),
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap()
}

/// Segments of 1 MiB and an index entry per batch, so an active
/// segment's offset index grows past its first allocated chunk (2,048
/// entries).
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 0,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn is_enospc(e: &StorageError) -> bool {
    matches!(e, StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
}

fn count_records(log: &sluice_storage::Log) -> u64 {
    let mut next = log.log_start_offset();
    let mut n = 0;
    while next < log.log_end_offset() {
        let bytes = log.read_to_vec(next, 1 << 20).unwrap();
        let batches: Vec<_> = sluice_record::Batches::new(&bytes)
            .map(|r| r.unwrap().1)
            .collect();
        assert!(!batches.is_empty(), "no progress at {next}");
        for h in batches {
            n += h.last_offset().distance_from(h.base_offset) as u64 + 1;
            next = h.last_offset().plus(1);
        }
    }
    n
}

#[test]
fn a_full_disk_refuses_writes_with_enospc_and_never_faults_a_map() {
    let fs = SimFs::new();
    fs.set_capacity(Some(4 << 20));
    let m = manager(&fs, 16);
    let tp = TopicPartition::new("orders", 0);
    let log = m.get_or_create_log(&tp, config()).unwrap();
    // Fill the disk with ~400-byte batches until an append is refused,
    // then with single records.
    let mut appended = 0u64;
    for (records, size) in [(10, 30), (1, 10)] {
        let err = loop {
            let mut b = batch_of(records, size, NOW, appended as u8);
            match log.append_as_leader(&mut b, LeaderEpoch(0)) {
                Ok(_) => appended += records as u64,
                Err(e) => break e,
            }
            assert!(appended < 1_000_000, "a 4 MiB disk never filled");
        };
        assert!(is_enospc(&err), "{err:?}");
    }
    assert!(log.num_segments() >= 2, "rolled on the way");
    // Neither more appends, a roll nor a new partition get in, and none
    // of them leaves a file half made.
    let mut b = batch_of(1, 10, NOW, 1);
    assert!(is_enospc(
        &log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap_err()
    ));
    let segments = log.num_segments();
    let rolled = log.roll();
    assert!(rolled.as_ref().is_err_and(is_enospc), "{rolled:?}");
    assert_eq!(log.num_segments(), segments);
    let other = TopicPartition::new("orders", 1);
    let created = m.get_or_create_log(&other, config());
    assert!(created.as_ref().is_err_and(is_enospc), "{created:?}");
    assert!(
        !fs.list_files()
            .iter()
            .any(|p| p.starts_with("/data/a/orders-1")),
        "{:?}",
        fs.list_files()
    );
    assert_eq!(count_records(&log), appended);
    // Checkpoints still get written (the metadata headroom), and the full
    // disk does not take the directory offline.
    let dir = std::path::Path::new("/data/a");
    m.flush_dirty_logs().unwrap();
    assert_eq!(m.offline_reason(dir), None);
    assert!(fs
        .contents(&dir.join("recovery-point-offset-checkpoint"))
        .is_some());
    // A clean shutdown on the full disk msyncs and trims every index.
    m.shutdown().unwrap();
    assert_eq!(fs.stats().unbacked_map_writes, 0, "a map wrote into a hole");

    // It loads on the full disk and serves every record.
    let m = manager(&fs, 16);
    let log = m.get_or_create_log(&tp, config()).unwrap();
    assert_eq!(count_records(&log), appended);
    let mut b = batch_of(1, 10, NOW, 1);
    assert!(is_enospc(
        &log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap_err()
    ));
    // Deleting frees the room a new partition needs.
    m.delete_log(&tp).unwrap();
    let log = m.get_or_create_log(&other, config()).unwrap();
    let mut b = batch_of(3, 100, NOW, 2);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    assert_eq!(count_records(&log), 3);
    drop(log);
    m.shutdown().unwrap();
    assert_eq!(fs.stats().unbacked_map_writes, 0);
}

#[test]
fn retention_frees_a_full_disk_even_when_every_segment_is_expired() {
    let fs = SimFs::new();
    let m = manager(&fs, 16);
    let tp = TopicPartition::new("orders", 0);
    let config = LogConfig {
        retention_ms: 1000,
        file_delete_delay_ms: 0,
        ..config()
    };
    let log = m.get_or_create_log(&tp, config.clone()).unwrap();
    for i in 0..6000u64 {
        // Timestamps long past retention.
        let mut b = batch_of(1, 200, NOW - 3_600_000, i as u8);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    assert!(log.num_segments() >= 2);
    fs.set_capacity(Some(fs.used_bytes()));
    let used = fs.used_bytes();
    let deleted = m.enforce_retention().unwrap();
    assert!(deleted >= 1, "nothing deleted");
    assert!(fs.used_bytes() < used - (512 << 10), "no space freed");
    // Next time the active segment goes too (a new one fits now).
    m.enforce_retention().unwrap();
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    let mut b = batch_of(1, 10, NOW, 1);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
}

#[test]
fn an_unclean_load_on_a_full_disk_rebuilds_what_fits_and_serves_reads() {
    let fs = SimFs::new();
    let tp = TopicPartition::new("orders", 0);
    let m = manager(&fs, 16);
    let log = m.get_or_create_log(&tp, config()).unwrap();
    for i in 0..3000u64 {
        let mut b = batch_of(1, 30, NOW, i as u8);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    log.flush().unwrap();
    drop(log);
    drop(m); // no clean shutdown: the next load recovers
    fs.set_capacity(Some(fs.used_bytes()));
    let m = manager(&fs, 16);
    let log = m.get_or_create_log(&tp, config()).unwrap();
    assert_eq!(count_records(&log), 3000);
    drop(log);
    drop(m);
    assert_eq!(fs.stats().unbacked_map_writes, 0);
}

#[test]
fn a_partition_holds_one_descriptor_per_open_segment() {
    let fs = SimFs::new();
    let max_open = 4;
    let m = manager(&fs, max_open);
    let before = fs.stats().open_handles;
    let n = 20u64;
    let mut logs = Vec::new();
    for p in 0..n {
        let log = m
            .get_or_create_log(&TopicPartition::new("many", p as i32), config())
            .unwrap();
        let mut b = batch_of(2, 100, NOW, 1);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
        logs.push(log);
    }
    // The active segment's .log; its two indexes are mapped, not open.
    assert_eq!(fs.stats().open_handles - before, n);
    assert_eq!(fs.stats().live_maps, 2 * n);
    // Rolled segments go to the LRU of open inactive segments: one
    // descriptor each, at most `max_open` of them.
    for log in &logs {
        log.roll().unwrap();
        let mut b = batch_of(2, 100, NOW, 2);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
        assert!(!log.read_to_vec(Offset(0), 1 << 20).unwrap().is_empty());
    }
    assert_eq!(
        fs.stats().open_handles - before,
        n + max_open as u64,
        "{:?}",
        fs.stats()
    );
    // Trimming on roll and close reopened the index files by path.
    drop(logs);
    m.shutdown().unwrap();
    let m = manager(&fs, max_open);
    for p in 0..n {
        let log = m
            .get_or_create_log(&TopicPartition::new("many", p as i32), config())
            .unwrap();
        assert_eq!(count_records(&log), 4);
    }
}

/// A truncation that needs space (a new segment at an offset no segment
/// starts at) and finds none fails with ENOSPC and leaves the log as it
/// was, so a follower can try again once space is freed; the others need
/// none and work on a full disk. Found by the cluster simulation: a
/// follower's truncation on a full disk left a log without segments, which
/// the retry then panicked on.
#[test]
fn a_truncation_on_a_full_disk_fails_whole_or_needs_no_space() {
    let fs = SimFs::new();
    let tp = TopicPartition::new("orders", 0);
    let m = manager(&fs, 16);
    let log = m.get_or_create_log(&tp, config()).unwrap();
    for i in 0..6000u64 {
        let mut b = batch_of(1, 200, NOW, i as u8);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    let segments = log.num_segments();
    assert!(segments >= 2);
    let end = log.log_end_offset();
    fs.set_capacity(Some(fs.used_bytes()));

    let e = log.truncate_fully_and_start_at(Offset(10_000)).unwrap_err();
    assert!(is_enospc(&e), "{e}");
    assert_eq!((log.num_segments(), log.log_end_offset()), (segments, end));
    assert_eq!(count_records(&log), 6000, "nothing was lost");

    // Into the active segment, then into the first one, then to its base
    // (the first segment is reused): no space needed.
    log.truncate_to(Offset(end.0 - 5)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(end.0 - 5));
    log.truncate_to(Offset(10)).unwrap();
    assert_eq!((log.num_segments(), log.log_end_offset()), (1, Offset(10)));
    assert_eq!(count_records(&log), 10);
    log.truncate_fully_and_start_at(Offset(0)).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(0), Offset(0))
    );

    // Once space is freed, the log takes appends again, and the
    // truncation that failed works.
    fs.set_capacity(None);
    let mut b = batch_of(1, 10, NOW, 1);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    assert_eq!(count_records(&log), 1);
    log.truncate_fully_and_start_at(Offset(10_000)).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(10_000), Offset(10_000))
    );
    drop(log);
    drop(m);
    assert_eq!(fs.stats().unbacked_map_writes, 0);
}
