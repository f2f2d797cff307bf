//! Behaviour of `Log` / `LogManager` over the simulated file system.

#[path = "../src/testutil.rs"]
mod testutil;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_record::{
    BatchBuilder, BatchHeader, Batches, CompressionType, LeaderEpoch, Offset, Timestamp,
};
use sluice_storage::{
    Fault, FaultKind, Fs, LogConfig, LogManager, LogManagerConfig, ManualClock, RecordRejection,
    SimFs, StorageError, TimestampType, TopicPartition, CLEAN_SHUTDOWN_FILE,
};
use testutil::batch_of;

const NOW: i64 = 1_700_000_000_000;

struct Env {
    fs: SimFs,
    clock: Arc<ManualClock>,
    dirs: Vec<PathBuf>,
    max_open: usize,
}

impl Env {
    fn new() -> Self {
        Env {
            fs: SimFs::new(),
            clock: Arc::new(ManualClock::new(NOW)),
            dirs: vec![PathBuf::from("/data/a")],
            max_open: 64,
        }
    }
    fn manager(&self) -> LogManager {
        LogManager::open(
            LogManagerConfig {
                log_dirs: self.dirs.clone(),
                max_open_segment_files: self.max_open,
                recovery_progress_every: 1,
                ..Default::default()
            },
            Arc::new(self.fs.clone()),
            self.clock.clone(),
        )
        .unwrap()
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

fn offsets_in(bytes: &[u8]) -> Vec<(Offset, Offset)> {
    Batches::new(bytes)
        .map(|r| {
            let (_, h) = r.expect("valid batch");
            (h.base_offset, h.last_offset())
        })
        .collect()
}

/// Every batch from `from` to the log end, one read per call (a read never
/// crosses a segment boundary).
fn read_all(log: &sluice_storage::Log, from: Offset) -> Vec<(Offset, Offset)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let got = offsets_in(&log.read_to_vec(next, 1 << 20).unwrap());
        assert!(!got.is_empty(), "no progress at {next}");
        next = got.last().unwrap().1.plus(1);
        out.extend(got);
    }
    out
}

#[test]
fn append_assigns_offsets_and_reads_back_exact_bytes() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    let mut two = batch_of(3, 10, NOW, 1);
    two.extend(batch_of(2, 10, NOW, 2));
    let info = log.append_as_leader(&mut two, LeaderEpoch(7)).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.record_count),
        (Offset(0), Offset(4), 5)
    );
    assert_eq!(info.bytes, two.len());
    assert!(!info.needs_flush);
    let mut b = batch_of(1, 10, NOW, 3);
    let info = log.append_as_leader(&mut b, LeaderEpoch(7)).unwrap();
    assert_eq!(info.first_offset, Offset(5));
    assert_eq!(log.log_end_offset(), Offset(6));

    let all = log.read_to_vec(Offset(0), 1 << 20).unwrap();
    let mut expect = two.clone();
    expect.extend(&b);
    assert_eq!(
        all, expect,
        "stored bytes are the caller's, offsets rewritten in place"
    );
    assert_eq!(
        offsets_in(&all),
        vec![
            (Offset(0), Offset(2)),
            (Offset(3), Offset(4)),
            (Offset(5), Offset(5))
        ]
    );
    let h = BatchHeader::validate(&all).unwrap();
    assert_eq!(h.partition_leader_epoch, LeaderEpoch(7));
    // Fetching from the middle of a batch returns that batch whole.
    assert_eq!(
        offsets_in(&log.read_to_vec(Offset(4), 1 << 20).unwrap())[0],
        (Offset(3), Offset(4))
    );
    // At the log end: nothing; beyond it: out of range.
    assert!(log.read(Offset(6), 1000, None, true).unwrap().is_none());
    assert!(matches!(
        log.read(Offset(7), 1000, None, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // One write syscall for the two-batch call.
    let before = env.fs.stats().writes;
    let mut c = batch_of(1, 10, NOW, 1);
    c.extend(batch_of(1, 10, NOW, 2));
    c.extend(batch_of(1, 10, NOW, 3));
    log.append_as_leader(&mut c, LeaderEpoch(7)).unwrap();
    assert_eq!(env.fs.stats().writes - before, 1);
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_written() {
    let env = Env::new();
    let m = env.manager();
    let cfg = LogConfig {
        max_message_bytes: 500,
        ..LogConfig::default()
    };
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    let good = batch_of(1, 10, NOW, 1);

    let mut bad_crc = good.clone();
    bad_crc.extend(batch_of(1, 10, NOW, 2));
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert!(matches!(
        log.append_as_leader(&mut bad_crc, LeaderEpoch(0)),
        Err(StorageError::CorruptRecord(_))
    ));

    let mut truncated = good.clone();
    truncated.extend(&good[..good.len() - 3]);
    assert!(matches!(
        log.append_as_leader(&mut truncated, LeaderEpoch(0)),
        Err(StorageError::CorruptRecord(_))
    ));

    let mut big = good.clone();
    big.extend(batch_of(1, 600, NOW, 1));
    assert!(matches!(
        log.append_as_leader(&mut big, LeaderEpoch(0)),
        Err(StorageError::RecordTooLarge { max: 500, .. })
    ));

    // A timestamp out of range names the record (index 0 of its batch).
    let mut future = batch_of(1, 10, NOW + 3_600_001, 1);
    assert!(matches!(
        log.append_as_leader(&mut future, LeaderEpoch(0)),
        Err(StorageError::RejectedRecords(r)) if r.len() == 1 && r[0].batch_index == 0
            && matches!(r[0].reason, RecordRejection::TimestampOutOfRange { .. })
    ));

    let mut magic1 = good.clone();
    magic1[16] = 1;
    assert!(matches!(
        log.append_as_leader(&mut magic1, LeaderEpoch(0)),
        Err(StorageError::CorruptRecord(_))
    ));
    assert!(matches!(
        log.append_as_leader(&mut [], LeaderEpoch(0)),
        Err(StorageError::InvalidRecord(_))
    ));

    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.size_in_bytes(), 0);
    assert_eq!(
        env.fs.stats().writes,
        0,
        "no byte of a rejected call reached a file"
    );

    // Old timestamps are fine by default, rejected with before.max.ms.
    let mut old = batch_of(1, 10, NOW - 10 * 86_400_000, 1);
    log.append_as_leader(&mut old, LeaderEpoch(0)).unwrap();
    let mut cfg = log.config();
    cfg.message_timestamp_before_max_ms = 1000;
    log.update_config(cfg);
    let mut old = batch_of(1, 10, NOW - 2000, 1);
    assert!(matches!(
        log.append_as_leader(&mut old, LeaderEpoch(0)),
        Err(StorageError::RejectedRecords(r))
            if matches!(r[0].reason, RecordRejection::TimestampOutOfRange { .. })
    ));
}

#[test]
fn log_append_time_is_stamped_with_a_valid_crc() {
    let env = Env::new();
    let m = env.manager();
    let cfg = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    let mut b = batch_of(2, 10, 5, 1); // a client timestamp far in the past is fine
    let info = log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    assert_eq!(info.log_append_time, Timestamp(NOW));
    let stored = log.read_to_vec(Offset(0), 1 << 20).unwrap();
    let h = BatchHeader::validate(&stored).unwrap();
    assert_eq!(h.max_timestamp, Timestamp(NOW));
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
}

#[test]
fn rolls_by_size_and_time_and_reads_across_segments_with_kip74() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    let mut sizes = Vec::new();
    for i in 0..60 {
        let mut b = batch_of(2, 100, NOW, i as u8);
        sizes.push(b.len());
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    assert!(log.num_segments() > 3, "4 KiB segments must roll");
    for s in log.segments() {
        assert!(s.size() <= 4096);
    }
    let files = env.fs.list_files();
    assert!(files
        .iter()
        .any(|p| p.ends_with("orders-0/00000000000000000000.log")));
    assert!(files
        .iter()
        .any(|p| p.ends_with("orders-0/00000000000000000000.index")));
    assert!(files
        .iter()
        .any(|p| p.ends_with("orders-0/00000000000000000000.timeindex")));
    // A rolled segment's indexes were trimmed to their entries.
    let idx = env
        .fs
        .contents(Path::new("/data/a/orders-0/00000000000000000000.index"))
        .unwrap();
    assert!(!idx.is_empty() && idx.len() % 8 == 0 && idx.len() < 1024);

    // Reading everything batch by batch with a small budget ends on batch
    // boundaries and sees every offset exactly once.
    let mut next = Offset(0);
    let mut seen = 0;
    while next < log.log_end_offset() {
        let got = log.read_to_vec(next, 700).unwrap();
        assert!(got.len() <= 700 || offsets_in(&got).len() == 1);
        for (b, l) in offsets_in(&got) {
            assert_eq!(b, next);
            next = l.plus(1);
            seen += 1;
        }
    }
    assert_eq!(seen, 60);
    // KIP-74: a budget smaller than one batch still returns it when asked.
    let one = log.read(Offset(10), 10, None, true).unwrap().unwrap();
    assert_eq!(one.len as usize, sizes[5]);
    assert!(log.read(Offset(10), 10, None, false).unwrap().is_none());
    // The high watermark bounds reads.
    assert_eq!(read_all(&log, Offset(0)).len(), 60);
    let hw = log
        .read(Offset(0), 1 << 20, Some(Offset(7)), true)
        .unwrap()
        .unwrap()
        .read_to_vec()
        .unwrap();
    assert_eq!(offsets_in(&hw).last().unwrap().1, Offset(5));

    // segment.ms: a new segment after the time passes.
    let n = log.num_segments();
    env.clock.advance(log.config().segment_ms + 10);
    let mut b = batch_of(1, 10, NOW + log.config().segment_ms + 1, 0);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    assert_eq!(log.num_segments(), n + 1);
}

#[test]
fn read_slices_report_the_offset_after_their_last_batch() {
    // Metrics count records served from this without reading the bytes:
    // it must match the batches actually in the slice, whichever way the
    // read found its end (index jump, header walk, budget, high watermark).
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    for i in 0..60 {
        let mut b = batch_of(1 + i % 4, 50 + 7 * i, NOW, i as u8);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    let leo = log.log_end_offset();
    for budget in [10, 300, 700, 1500, 4096, 1 << 20] {
        for hw in [None, Some(Offset(leo.0 - 3)), Some(Offset(37))] {
            let mut next = Offset(0);
            while next < hw.unwrap_or(leo) {
                let Some(slice) = log.read(next, budget, hw, true).unwrap() else {
                    // The next segment starts beyond the high watermark.
                    break;
                };
                let got = offsets_in(&slice.read_to_vec().unwrap());
                let last = got.last().unwrap().1;
                assert_eq!(
                    slice.next_offset,
                    last.plus(1),
                    "budget {budget} hw {hw:?} from {next}"
                );
                next = slice.next_offset;
            }
        }
    }
}

#[test]
fn full_index_rolls() {
    let env = Env::new();
    let m = env.manager();
    let cfg = LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 64, // 8 offset entries, 5 time entries
        ..LogConfig::default()
    };
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    for i in 0..30 {
        let mut b = batch_of(1, 10, NOW + i, 0);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    assert!(log.num_segments() >= 5, "got {}", log.num_segments());
    assert_eq!(read_all(&log, Offset(0)).len(), 30);
}

#[test]
fn group_commit_covers_concurrent_appenders_with_few_fsyncs() {
    let env = Env::new();
    let m = env.manager();
    let cfg = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    // The leader's epoch entry (its own file write) comes first, as on election.
    log.assign_epoch_start_offset(LeaderEpoch(0), Offset(0))
        .unwrap();
    let syncs_before = env.fs.stats().syncs;
    let threads = 8;
    let per = 50;
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..per {
                    let mut b = batch_of(1, 50, NOW, (t * per + i) as u8);
                    let info = log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
                    // Either this append must still be flushed, or another
                    // appender's fsync has already covered it.
                    assert!(
                        info.needs_flush || log.recovery_point() > info.last_offset,
                        "append at {} neither needs a flush nor is durable",
                        info.last_offset
                    );
                    log.flush_until(info.last_offset).unwrap();
                    assert!(log.recovery_point() > info.last_offset);
                }
            });
        }
    });
    let syncs = env.fs.stats().syncs - syncs_before;
    assert!(syncs <= (threads * per) as u64, "{syncs} fsyncs");
    assert_eq!(log.recovery_point(), Offset((threads * per) as i64));
    // Everything acknowledged survives a power cut.
    drop(log);
    drop(m);
    env.fs.crash(11);
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), Offset((threads * per) as i64));
}

#[test]
fn failed_write_truncates_back_and_log_keeps_working() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    let mut a = batch_of(2, 100, NOW, 1);
    log.append_as_leader(&mut a, LeaderEpoch(0)).unwrap();
    let size = log.size_in_bytes();

    env.fs
        .inject(Fault::once(".log", FaultKind::ShortWrite(30)));
    env.fs
        .inject(Fault::once(".log", FaultKind::WriteError(libc::ENOSPC)));
    let mut b = batch_of(2, 100, NOW, 2);
    let err = log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(
        msg.contains("00000000000000000000.log") && msg.contains("write"),
        "{msg}"
    );
    assert_eq!(log.size_in_bytes(), size);
    assert_eq!(
        env.fs
            .contents(Path::new("/data/a/orders-0/00000000000000000000.log"))
            .unwrap()
            .len() as u64,
        size,
        "torn bytes were cut off"
    );
    assert_eq!(log.log_end_offset(), Offset(2));
    let mut c = batch_of(1, 100, NOW, 3);
    assert_eq!(
        log.append_as_leader(&mut c, LeaderEpoch(0))
            .unwrap()
            .first_offset,
        Offset(2)
    );
    assert_eq!(
        offsets_in(&log.read_to_vec(Offset(0), 1 << 20).unwrap()).len(),
        2
    );
}

#[test]
fn failed_fsync_takes_the_dir_offline_but_not_other_dirs() {
    let mut env = Env::new();
    env.dirs = vec![PathBuf::from("/data/a"), PathBuf::from("/data/b")];
    let m = env.manager();
    let t0 = TopicPartition::new("t", 0);
    let t1 = TopicPartition::new("t", 1);
    let l0 = m.get_or_create_log(&t0, LogConfig::default()).unwrap();
    let l1 = m.get_or_create_log(&t1, LogConfig::default()).unwrap();
    assert_ne!(
        l0.dir().parent(),
        l1.dir().parent(),
        "spread over both dirs"
    );
    let mut a = batch_of(1, 10, NOW, 0);
    l0.append_as_leader(&mut a, LeaderEpoch(0)).unwrap();
    env.fs
        .inject(Fault::once("t-0", FaultKind::SyncError(libc::EIO)));
    let err = l0.flush().unwrap_err();
    assert!(err.to_string().contains("fsync"), "{err}");
    assert_eq!(
        l0.recovery_point(),
        Offset(0),
        "a failed fsync does not count"
    );
    // Never retried as if it had succeeded: everything on that dir fails now.
    assert!(matches!(
        l0.flush(),
        Err(StorageError::LogDirOffline { .. })
    ));
    let mut b = batch_of(1, 10, NOW, 0);
    let e = l0.append_as_leader(&mut b, LeaderEpoch(0)).unwrap_err();
    match e {
        StorageError::LogDirOffline { dir, reason } => {
            assert_eq!(dir, l0.dir().parent().unwrap());
            assert!(reason.contains("fsync"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        l0.read(Offset(0), 100, None, true),
        Err(StorageError::LogDirOffline { .. })
    ));
    // The other directory works.
    let mut c = batch_of(1, 10, NOW, 0);
    l1.append_as_leader(&mut c, LeaderEpoch(0)).unwrap();
    l1.flush().unwrap();
    assert_eq!(l1.recovery_point(), Offset(1));
    assert!(
        m.offline_reason(Path::new("/data/a")).is_some()
            || m.offline_reason(Path::new("/data/b")).is_some()
    );
}

#[test]
fn retention_by_time_bytes_and_delete_records() {
    let env = Env::new();
    let m = env.manager();
    let cfg = LogConfig {
        file_delete_delay_ms: 1000,
        ..small_config()
    };
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    for i in 0..60i64 {
        let mut b = batch_of(2, 100, NOW - 100_000 + i * 1000, 0);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    let n0 = log.num_segments();
    assert!(n0 >= 4);
    assert_eq!(
        m.enforce_retention().unwrap(),
        0,
        "default retention keeps a week"
    );

    // delete_records_before moves the log start and drops covered segments.
    let bases = log.segment_base_offsets();
    let target = bases[1].plus(1);
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.num_segments(), n0 - 1);
    assert!(matches!(
        log.read(Offset(0), 100, None, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.delete_records_before(Offset(1000)),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Deleted files are renamed and removed after file.delete.delay.ms.
    assert!(env
        .fs
        .list_files()
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".log.deleted")));
    env.clock.advance(1001);
    m.flush_dirty_logs().unwrap();
    assert!(!env
        .fs
        .list_files()
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".deleted")));

    // retention.bytes keeps the newest segments within the limit.
    let mut c = log.config();
    c.retention_bytes = 5000;
    log.update_config(c);
    let deleted = m.enforce_retention().unwrap();
    assert!(deleted > 0);
    assert!(log.size_in_bytes() <= 5000 + 4096);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);

    // retention.ms by the segments' largest timestamps: all of it, active
    // segment included (after rolling an empty one), as Kafka does.
    let mut c = log.config();
    c.retention_bytes = -1;
    c.retention_ms = 10_000;
    log.update_config(c);
    let leo = log.log_end_offset();
    assert!(m.enforce_retention().unwrap() > 0);
    assert_eq!(log.num_segments(), 1);
    assert_eq!(log.log_start_offset(), leo);
    assert_eq!(log.log_end_offset(), leo);
    let mut d = batch_of(1, 10, NOW, 0);
    assert_eq!(
        log.append_as_leader(&mut d, LeaderEpoch(0))
            .unwrap()
            .first_offset,
        leo
    );
}

#[test]
fn truncate_to_removes_the_tail_and_appends_continue() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    for i in 0..40 {
        let mut b = batch_of(2, 100, NOW + i, 0);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    let n = log.num_segments();
    log.truncate_to(Offset(30)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(30));
    assert!(log.num_segments() < n);
    assert_eq!(read_all(&log, Offset(0)).last().unwrap().1, Offset(29));
    // Mid-batch truncation drops that batch whole.
    log.truncate_to(Offset(25)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(24));
    let mut b = batch_of(3, 100, NOW, 0);
    assert_eq!(
        log.append_as_leader(&mut b, LeaderEpoch(0))
            .unwrap()
            .first_offset,
        Offset(24)
    );
    assert_eq!(
        read_all(&log, Offset(20)),
        vec![
            (Offset(20), Offset(21)),
            (Offset(22), Offset(23)),
            (Offset(24), Offset(26))
        ]
    );
    // Truncating below the first segment restarts the log there.
    log.truncate_to(Offset(0)).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.num_segments()
        ),
        (Offset(0), Offset(0), 1)
    );
}

#[test]
fn clean_shutdown_writes_marker_and_checkpoints_and_reloads_without_recovery() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    for i in 0..20 {
        let mut b = batch_of(2, 100, NOW + i, 0);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    log.delete_records_before(Offset(3)).unwrap();
    let (leo, segs) = (log.log_end_offset(), log.num_segments());
    drop(log);
    m.shutdown().unwrap();
    let marker = Path::new("/data/a").join(CLEAN_SHUTDOWN_FILE);
    assert!(env.fs.exists(&marker));
    let rp = String::from_utf8(
        env.fs
            .contents(Path::new("/data/a/recovery-point-offset-checkpoint"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rp, format!("0\n1\norders 0 {}\n", leo.0));
    let ls = String::from_utf8(
        env.fs
            .contents(Path::new("/data/a/log-start-offset-checkpoint"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ls, "0\n1\norders 0 3\n");
    // Active index trimmed on close.
    let active_idx = env
        .fs
        .list_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".index"))
        .max()
        .unwrap();
    assert_eq!(env.fs.contents(&active_idx).unwrap().len() % 8, 0);
    assert!(env.fs.contents(&active_idx).unwrap().len() < 1024);
    env.fs.crash(1); // everything was synced: nothing may change
    let m = env.manager();
    assert!(m.had_clean_shutdown(Path::new("/data/a")));
    assert!(!env.fs.exists(&marker), "marker removed once in use");
    assert_eq!(m.on_disk_partitions(), vec![tp()]);
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    assert_eq!(
        (
            log.log_end_offset(),
            log.num_segments(),
            log.log_start_offset()
        ),
        (leo, segs, Offset(3))
    );
    let mut b = batch_of(1, 10, NOW, 0);
    assert_eq!(
        log.append_as_leader(&mut b, LeaderEpoch(0))
            .unwrap()
            .first_offset,
        leo
    );
}

#[test]
fn open_segment_files_stay_bounded() {
    let mut env = Env::new();
    env.max_open = 4;
    let m = env.manager();
    let mut logs = Vec::new();
    for p in 0..10 {
        let log = m
            .get_or_create_log(&TopicPartition::new("many", p), small_config())
            .unwrap();
        for i in 0..30 {
            let mut b = batch_of(2, 100, NOW + i, 0);
            log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
        }
        logs.push(log);
    }
    // 10 active segments + at most 4 inactive segments open, one handle
    // each (the .log: index maps outlive their descriptors).
    let stats = env.fs.stats();
    assert!(stats.open_handles <= 10 + 4, "{stats:?}");
    assert!(m.handle_cache().open_count() <= 4);
    // Reads reopen closed segments lazily and still return the right bytes.
    for log in &logs {
        let got = log.read_to_vec(Offset(0), 1 << 20).unwrap();
        assert_eq!(offsets_in(&got)[0].0, Offset(0));
        let mut n = 0;
        let mut next = Offset(0);
        while next < log.log_end_offset() {
            let got = log.read_to_vec(next, 1 << 20).unwrap();
            for (_, l) in offsets_in(&got) {
                next = l.plus(1);
                n += 1;
            }
        }
        assert_eq!(n, 30);
    }
    assert!(env.fs.stats().open_handles <= 10 + 4);
    assert!(env.fs.stats().live_maps <= (10 + 4) * 2);
}

#[test]
fn offsets_by_timestamp() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    for i in 0..40i64 {
        let mut b = batch_of(2, 100, NOW + i * 10, 0); // max ts = NOW + i*10 + 1
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    // Record i of batch b (offset 2b + i) has timestamp NOW + 10b + i.
    let at = |ts: i64| log.offset_for_timestamp(Timestamp(ts)).unwrap();
    assert_eq!(at(0), Some((Offset(0), Timestamp(NOW))));
    assert_eq!(at(NOW + 1), Some((Offset(1), Timestamp(NOW + 1))));
    assert_eq!(at(NOW + 255), Some((Offset(52), Timestamp(NOW + 260))));
    assert_eq!(at(NOW + 390), Some((Offset(78), Timestamp(NOW + 390))));
    assert_eq!(at(NOW + 391), Some((Offset(79), Timestamp(NOW + 391))));
    assert_eq!(
        log.offset_for_timestamp(Timestamp(NOW + 392)).unwrap(),
        None
    );
    assert_eq!(
        log.max_timestamp_and_offset(),
        Some((Timestamp(NOW + 391), Offset(79)))
    );
    // Below the log start the answer moves to the first record still there.
    log.delete_records_before(Offset(3)).unwrap();
    assert_eq!(
        log.offset_for_timestamp(Timestamp(0)).unwrap(),
        Some((Offset(3), Timestamp(NOW + 11)))
    );
}

#[test]
fn max_timestamp_names_the_record_inside_its_batch() {
    // librdkafka 0081 ListOffsets: one batch with timestamps +100, +400, +250;
    // Kafka (3.8+) answers MAX_TIMESTAMP with the +400 record's own offset.
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    let mut first = batch_of(2, 10, NOW, 0);
    log.append_as_leader(&mut first, LeaderEpoch(0)).unwrap();
    for (round, codec) in [CompressionType::None, CompressionType::Lz4]
        .into_iter()
        .enumerate()
    {
        let t0 = NOW + 1000 * (round as i64 + 1);
        let base = log.log_end_offset();
        let mut b = BatchBuilder::new(codec);
        for (i, dt) in [100i64, 400, 250].into_iter().enumerate() {
            let v = format!("v{i}");
            b.append(Timestamp(t0 + dt), None, Some(v.as_bytes()), &[])
                .unwrap();
        }
        let mut b = b.build().unwrap();
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
        assert_eq!(
            log.max_timestamp_and_offset(),
            Some((Timestamp(t0 + 400), base.plus(1))),
            "{codec:?}"
        );
        // A later batch with a smaller max timestamp changes nothing.
        let mut late = batch_of(3, 10, NOW + 500, 1);
        log.append_as_leader(&mut late, LeaderEpoch(0)).unwrap();
        assert_eq!(
            log.max_timestamp_and_offset(),
            Some((Timestamp(t0 + 400), base.plus(1))),
            "{codec:?}"
        );
    }
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    for i in 0..40 {
        let mut b = batch_of(2, 100, NOW + i, 0);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    }
    let seg0 = log.segments()[0].clone();
    let (idx, tidx) = seg0.index_entries().unwrap();
    assert!(!idx.is_empty() && !tidx.is_empty());
    drop(seg0);
    drop(log);
    m.shutdown().unwrap();
    let dir = Path::new("/data/a/orders-0");
    env.fs
        .remove_file(&dir.join("00000000000000000000.index"))
        .unwrap();
    let mut t = env
        .fs
        .contents(&dir.join("00000000000000000000.timeindex"))
        .unwrap();
    t[0] = 0xff; // negative timestamp in entry 0: corrupt
    env.fs
        .set_contents(&dir.join("00000000000000000000.timeindex"), &t);
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), small_config()).unwrap();
    let (idx2, tidx2) = log.segments()[0].index_entries().unwrap();
    assert_eq!((idx2, tidx2), (idx, tidx));
    assert_eq!(read_all(&log, Offset(0)).len(), 40);
}

#[test]
fn unusable_log_dir_goes_offline_with_a_clear_error_and_others_work() {
    let mut env = Env::new();
    // "/data/file" is a regular file, so "/data/file/logs" cannot be created.
    env.fs.create_dir_all(Path::new("/data")).unwrap();
    env.fs.set_contents(Path::new("/data/file"), b"x");
    env.dirs = vec![PathBuf::from("/data/file/logs"), PathBuf::from("/data/ok")];
    let m = env.manager();
    let reason = m
        .offline_reason(Path::new("/data/file/logs"))
        .expect("offline");
    assert!(
        reason.contains("create log directory") && reason.contains("/data/file/logs"),
        "{reason}"
    );
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    assert!(log.dir().starts_with("/data/ok"));
    let mut b = batch_of(1, 10, NOW, 0);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    // With no usable directory at all, opening fails and names the path.
    env.dirs = vec![PathBuf::from("/data/file/logs")];
    let err = LogManager::open(
        LogManagerConfig {
            log_dirs: env.dirs.clone(),
            ..Default::default()
        },
        Arc::new(env.fs.clone()),
        env.clock.clone(),
    )
    .err()
    .expect("no usable dir");
    assert!(err.to_string().contains("/data/file/logs"), "{err}");
}

#[test]
fn the_metadata_log_is_no_data_partition() {
    let env = Env::new();
    let m = env.manager();
    m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    // `__cluster_metadata-0` lives in the log dir when metadata.log.dir is
    // one of log.dirs; it is the metadata log's, never a data partition
    // (a stray-partition sweep must not see, let alone delete, it).
    use sluice_storage::Fs as _;
    env.fs
        .create_dir_all(Path::new("/data/a/__cluster_metadata-0"))
        .unwrap();
    assert_eq!(m.on_disk_partitions(), vec![tp()]);
}

#[test]
fn deleted_log_is_gone_from_disk_and_refuses_work() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    let mut b = batch_of(1, 10, NOW, 0);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    m.delete_log(&tp()).unwrap();
    assert!(m.get_log(&tp()).is_none());
    assert!(env
        .fs
        .list_files()
        .iter()
        .all(|p| !p.starts_with("/data/a/orders-0")));
    assert!(m.on_disk_partitions().is_empty());
    let mut b = batch_of(1, 10, NOW, 0);
    assert!(matches!(
        log.append_as_leader(&mut b, LeaderEpoch(0)),
        Err(StorageError::LogDeleted(_))
    ));
    // A new log of the same name starts empty.
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn compressed_batches_are_stored_as_produced() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), LogConfig::default()).unwrap();
    let vals: Vec<Vec<u8>> = (0..50).map(|i| vec![b'a' + (i % 3) as u8; 200]).collect();
    let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    let mut z = testutil::build_batch_with(sluice_record::CompressionType::Lz4, &refs, NOW);
    let mut first = batch_of(2, 10, NOW, 0);
    log.append_as_leader(&mut first, LeaderEpoch(0)).unwrap();
    let info = log.append_as_leader(&mut z, LeaderEpoch(0)).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset),
        (Offset(2), Offset(51))
    );
    assert!(z.len() < 50 * 200, "still compressed");
    // Stored byte for byte (offset rewritten in place), not re-encoded.
    assert_eq!(log.read_to_vec(Offset(10), 1 << 20).unwrap(), z);
    // ListOffsets finds the exact record inside the compressed batch.
    assert_eq!(
        log.offset_for_timestamp(Timestamp(NOW + 20)).unwrap(),
        Some((Offset(22), Timestamp(NOW + 20)))
    );
}

/// `compression.type` naming a codec: batches in another codec are stored
/// re-encoded in it, with the same offsets, records and producer fields;
/// batches already in it, and every batch under `producer`, are stored
/// byte for byte as received (apart from the base offset / leader epoch).
#[test]
fn topic_codec_recompresses_batches_in_another_codec() {
    use sluice_record::{records, BatchBuilder, CompressionType, ProducerEpoch, ProducerId};
    let env = Env::new();
    let m = env.manager();
    let config = LogConfig {
        compression: Some(CompressionType::Lz4),
        ..small_config()
    };
    let log = m.get_or_create_log(&tp(), config).unwrap();
    let build = |codec: CompressionType, seq: i32| {
        let mut b = BatchBuilder::new(codec).producer(ProducerId(7), ProducerEpoch(0), seq);
        for i in 0..5 {
            let v = format!("value-{seq}-{i}");
            b.append(Timestamp(NOW + i), Some(b"k"), Some(v.as_bytes()), &[])
                .unwrap();
        }
        b.build().unwrap()
    };
    let decoded = |bytes: &[u8]| -> Vec<(CompressionType, Vec<sluice_record::OwnedRecord>)> {
        Batches::new(bytes)
            .map(|r| {
                let (pos, h) = r.unwrap();
                let batch = &bytes[pos..pos + h.size()];
                let recs = records(batch, 1 << 20)
                    .unwrap()
                    .records()
                    .map(|r| r.unwrap().into_owned())
                    .collect();
                (h.compression(), recs)
            })
            .collect()
    };
    let plain = build(CompressionType::None, 0);
    let lz4 = build(CompressionType::Lz4, 5);
    log.append_as_leader(&mut plain.clone(), LeaderEpoch(0))
        .unwrap();
    log.append_as_leader(&mut lz4.clone(), LeaderEpoch(0))
        .unwrap();
    let stored = log.read_to_vec(Offset(0), 1 << 20).unwrap();
    let got = decoded(&stored);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|(c, _)| *c == CompressionType::Lz4),
        "{got:?}"
    );
    // Same records (offsets shifted by the log's assignment: 0.. and 5..).
    let expected = decoded(&plain);
    assert_eq!(got[0].1, expected[0].1);
    // The lz4 batch was stored as received (only the base offset differs).
    let second = &stored[stored.len() - lz4.len()..];
    assert_eq!(&second[16..], &lz4[16..]);
    assert_eq!(BatchHeader::parse(second).unwrap().base_offset, Offset(5));
    // Producer state follows the re-encoded batch: the next sequence is 10.
    let state = log.producer_state(ProducerId(7)).unwrap();
    assert_eq!(state.last_seq(), 9);

    // `producer` (None): stored exactly as received.
    log.update_config(small_config());
    let gzip = build(CompressionType::Gzip, 10);
    log.append_as_leader(&mut gzip.clone(), LeaderEpoch(0))
        .unwrap();
    let stored = log.read_to_vec(Offset(10), 1 << 20).unwrap();
    assert_eq!(&stored[16..], &gzip[16..]);
}

/// KIP-966: the clean-shutdown marker names the broker epoch it was
/// written at, in Kafka's form; the next start reads it back (the
/// registration's PreviousBrokerEpoch), and a start after a crash (no
/// marker: it is removed as the manager opens) has none.
#[test]
fn the_clean_shutdown_marker_carries_the_broker_epoch() {
    let env = Env::new();
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), None, "a fresh directory");
    m.shutdown_at_epoch(Some(42)).unwrap();
    let marker = Path::new("/data/a").join(CLEAN_SHUTDOWN_FILE);
    assert_eq!(
        env.fs.contents(&marker).unwrap(),
        br#"{"version":0,"brokerEpoch":42}"#
    );
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), Some(42));
    // Crash: nothing writes a marker, and the one read at open is gone.
    drop(m);
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), None);
    // A clean shutdown without a known epoch still marks the logs clean.
    m.shutdown().unwrap();
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), None);
    assert!(m.had_clean_shutdown(Path::new("/data/a")));
}

/// A crash of the process alone (`kill -9`) loses none of its writes, so
/// the next start still names the epoch of its running marker; a power
/// cut (a new boot of the machine) does not, however the marker fared.
#[test]
fn a_running_marker_outlives_a_kill_but_not_a_power_cut() {
    let env = Env::new();
    let m = env.manager();
    m.record_running_epoch(7).unwrap();
    drop(m);
    env.fs.kill();
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), Some(7), "kill -9: same boot");
    assert!(
        !m.had_clean_shutdown(Path::new("/data/a")),
        "the logs are still recovered"
    );
    // Registered again at 8; a clean shutdown at 8 takes precedence.
    m.record_running_epoch(8).unwrap();
    m.shutdown_at_epoch(Some(8)).unwrap();
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), Some(8));
    // At 9, synced (the next marker write is not): a power cut.
    m.record_running_epoch(9).unwrap();
    m.shutdown_at_epoch(Some(9)).unwrap();
    let m = env.manager();
    m.record_running_epoch(10).unwrap();
    let running = Path::new("/data/a").join(".broker_running");
    env.fs
        .set_contents(&running, &env.fs.contents(&running).unwrap());
    drop(m);
    env.fs.crash(1);
    let m = env.manager();
    assert_eq!(m.previous_broker_epoch(), None, "a power cut: a new boot");
}

/// A log the manager cannot open for an I/O error (here an fsync failing
/// while it recovers after a crash) takes its directory offline, as
/// Kafka's LogManager does, instead of leaving the broker running without
/// that replica for good (the cluster simulation's seed 81).
#[test]
fn a_log_that_fails_to_open_takes_its_dir_offline() {
    let env = Env::new();
    let tp = TopicPartition::new("t", 0);
    {
        let m = env.manager();
        let log = m.get_or_create_log(&tp, LogConfig::default()).unwrap();
        let mut b = batch_of(1, 10, NOW, 0);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
        log.flush().unwrap();
        // Dropped without a clean shutdown: the next open recovers.
    }
    let m = env.manager();
    env.fs
        .inject(Fault::once(".log", FaultKind::SyncError(libc::EIO)));
    let dir = Path::new("/data/a");
    match m.get_or_create_log(&tp, LogConfig::default()) {
        Err(StorageError::Io { .. }) => {
            let why = m.offline_reason(dir).expect("the directory went offline");
            assert!(why.contains("fsync"), "{why}");
        }
        // The recovery did not fsync: nothing was injected into, so the
        // test proves nothing; fail loudly rather than pass.
        other => panic!("expected the open to fail with an I/O error: {other:?}"),
    }
}
