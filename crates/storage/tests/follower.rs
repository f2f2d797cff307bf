//! Follower appends (`Log::append_as_follower`), the leader-epoch cache
//! (`leader-epoch-checkpoint`) through appends, truncation, log-start moves,
//! restarts and crashes, and the high-watermark checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_record::{
    BatchBuilder, Batches, CompressionType, LeaderEpoch, Offset, ProducerEpoch, ProducerId,
    Timestamp,
};
use sluice_storage::epoch_cache::LEADER_EPOCH_CHECKPOINT;
use sluice_storage::fs::{read_exact_at, OpenOptions};
use sluice_storage::{
    Fault, FaultKind, Fs, Log, LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs,
    StorageError, TopicPartition,
};

const NOW: i64 = 1_700_000_000_000;

struct Env {
    fs: SimFs,
    clock: Arc<ManualClock>,
}

impl Env {
    fn new() -> Self {
        Env {
            fs: SimFs::new(),
            clock: Arc::new(ManualClock::new(NOW)),
        }
    }
    fn manager_at(&self, dir: &str) -> LogManager {
        LogManager::open(
            LogManagerConfig {
                log_dirs: vec![PathBuf::from(dir)],
                ..Default::default()
            },
            Arc::new(self.fs.clone()),
            self.clock.clone(),
        )
        .unwrap()
    }
    fn manager(&self) -> LogManager {
        self.manager_at("/data")
    }
    fn file(&self, path: &Path) -> Option<Vec<u8>> {
        if !self.fs.exists(path) {
            return None;
        }
        let f = self.fs.open(path, &OpenOptions::read()).unwrap();
        let mut buf = vec![0u8; f.len().unwrap() as usize];
        read_exact_at(&*f, &mut buf, 0).unwrap();
        Some(buf)
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("rep", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

fn e(epoch: i32, start: i64) -> (LeaderEpoch, Offset) {
    (LeaderEpoch(epoch), Offset(start))
}

/// A batch of `n` records; with `pid`, from that idempotent producer at
/// sequence `seq`.
fn batch(pid: Option<(i64, i32)>, n: usize, seed: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None);
    if let Some((pid, seq)) = pid {
        b = b.producer(ProducerId(pid), ProducerEpoch(0), seq);
    }
    for i in 0..n {
        let v = format!("value-{seed}-{i}-{}", "x".repeat(30 + seed % 50));
        b.append(Timestamp(NOW + i as i64), None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Every stored byte from the log start to the log end, batch by batch.
fn log_bytes(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        assert!(!bytes.is_empty(), "no progress at {at}");
        let last = Batches::new(&bytes).last().unwrap().unwrap().1;
        at = last.next_offset();
        out.extend(bytes);
    }
    out
}

/// A leader log with batches of epochs 0 then 3 (several segments) and
/// producer 7's batches among them; and where epoch 3 starts.
fn leader_with_data(m: &LogManager) -> (Arc<Log>, i64) {
    let leader = m.get_or_create_log(&tp(), config()).unwrap();
    let mut seq = 0;
    let mut epoch3 = None;
    for i in 0..30 {
        let epoch = if i < 12 { 0 } else { 3 };
        if epoch == 3 {
            epoch3.get_or_insert(leader.log_end_offset().0);
        }
        let mut b = if i % 3 == 0 {
            seq += 2;
            batch(Some((7, seq - 2)), 2, i)
        } else {
            batch(None, 1 + i % 4, i)
        };
        leader.append_as_leader(&mut b, LeaderEpoch(epoch)).unwrap();
    }
    assert!(leader.num_segments() > 2, "test needs several segments");
    (leader, epoch3.unwrap())
}

#[test]
fn follower_copies_leader_segments_byte_for_byte() {
    let env = Env::new();
    let (lm, fm) = (env.manager_at("/leader"), env.manager_at("/follower"));
    let (leader, s3) = leader_with_data(&lm);
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    // One fetch per leader segment: the follower rolls where the leader did.
    for seg in leader.segments() {
        let bytes = env.file(&seg.log_path()).unwrap();
        let info = follower.append_as_follower(&bytes).unwrap();
        assert_eq!(info.first_offset, seg.base_offset());
        assert_eq!(info.bytes, bytes.len());
        assert!(!info.duplicate);
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(
        follower.segment_base_offsets(),
        leader.segment_base_offsets()
    );
    for (l, f) in leader.segments().iter().zip(follower.segments()) {
        assert_eq!(env.file(&l.log_path()), env.file(&f.log_path()));
    }
    assert_eq!(log_bytes(&leader), log_bytes(&follower));
    assert_eq!(leader.epoch_entries(), vec![e(0, 0), e(3, s3)]);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        follower.producer_state(ProducerId(7)).map(|p| p.last_seq()),
        leader.producer_state(ProducerId(7)).map(|p| p.last_seq())
    );
}

#[test]
fn trailing_partial_batch_is_ignored() {
    let env = Env::new();
    let (lm, fm) = (env.manager_at("/leader"), env.manager_at("/follower"));
    let (leader, _) = leader_with_data(&lm);
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    let bytes = leader.read_to_vec(Offset(0), 1 << 20).unwrap();
    let first = Batches::new(&bytes).next().unwrap().unwrap().1;
    let cut = first.size() + 20;
    let info = follower.append_as_follower(&bytes[..cut]).unwrap();
    assert_eq!(info.bytes, first.size());
    assert_eq!(
        (info.first_offset, info.last_offset),
        (Offset(0), first.last_offset())
    );
    assert_eq!(follower.log_end_offset(), first.next_offset());
    // Less than a batch: nothing written, nothing counted.
    let info = follower
        .append_as_follower(&bytes[first.size()..first.size() + 5])
        .unwrap();
    assert_eq!((info.record_count, info.bytes), (0, 0));
    assert_eq!(follower.log_end_offset(), first.next_offset());
    // The rest follows on.
    follower.append_as_follower(&bytes[first.size()..]).unwrap();
    assert_eq!(log_bytes(&follower), bytes);
}

#[test]
fn append_at_wrong_offset_or_out_of_order_is_refused_and_writes_nothing() {
    let env = Env::new();
    let (lm, fm) = (env.manager_at("/leader"), env.manager_at("/follower"));
    let (leader, _) = leader_with_data(&lm);
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    let bytes = leader.read_to_vec(Offset(0), 1 << 20).unwrap();
    let batches: Vec<_> = Batches::new(&bytes).map(|r| r.unwrap()).collect();
    let b = |i: usize| {
        let (pos, h) = batches[i];
        bytes[pos..pos + h.size()].to_vec()
    };
    follower.append_as_follower(&b(0)).unwrap();
    let size = follower.size_in_bytes();

    let err = follower.append_as_follower(&b(0)).unwrap_err();
    match err {
        StorageError::UnexpectedAppendOffset {
            first_offset,
            log_end,
            ..
        } => {
            assert_eq!(first_offset, Offset(0));
            assert_eq!(log_end, follower.log_end_offset());
        }
        other => panic!("{other:?}"),
    }
    // Two batches out of order in one call: nothing of it is written.
    let mut swapped = b(2);
    swapped.extend(b(1));
    assert!(matches!(
        follower.append_as_follower(&swapped),
        Err(StorageError::InvalidRecord(_))
    ));
    // A damaged batch (CRC) is refused whole.
    let mut bad = b(1);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        follower.append_as_follower(&bad),
        Err(StorageError::CorruptRecord(_))
    ));
    assert_eq!(follower.size_in_bytes(), size);
    assert_eq!(follower.log_end_offset(), batches[0].1.next_offset());
    // A later base offset leaves a gap (the leader compacted).
    follower.append_as_follower(&b(2)).unwrap();
    assert_eq!(follower.log_end_offset(), batches[2].1.next_offset());
}

#[test]
fn follower_that_becomes_leader_dedups_idempotent_retries() {
    let env = Env::new();
    let (lm, fm) = (env.manager_at("/leader"), env.manager_at("/follower"));
    let leader = lm.get_or_create_log(&tp(), config()).unwrap();
    let first = batch(Some((42, 0)), 3, 1);
    let second = batch(Some((42, 3)), 2, 2);
    leader
        .append_as_leader(&mut first.clone(), LeaderEpoch(1))
        .unwrap();
    leader
        .append_as_leader(&mut second.clone(), LeaderEpoch(1))
        .unwrap();
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    follower
        .append_as_follower(&leader.read_to_vec(Offset(0), 1 << 20).unwrap())
        .unwrap();
    // Leader change: the follower leads epoch 2 and the producer retries.
    follower
        .assign_epoch_start_offset(LeaderEpoch(2), follower.log_end_offset())
        .unwrap();
    let retry = follower
        .append_as_leader(&mut second.clone(), LeaderEpoch(2))
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_offset, retry.last_offset),
        (Offset(3), Offset(4))
    );
    assert_eq!(follower.log_end_offset(), Offset(5));
    // A sequence gap is still refused; the next one is accepted.
    assert!(matches!(
        follower.append_as_leader(&mut batch(Some((42, 9)), 1, 3), LeaderEpoch(2)),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    let next = follower
        .append_as_leader(&mut batch(Some((42, 5)), 1, 3), LeaderEpoch(2))
        .unwrap();
    assert_eq!(next.first_offset, Offset(5));
    assert_eq!(follower.epoch_entries(), vec![e(1, 0), e(2, 5)]);
    // Restarted, the state is rebuilt from the replicated batches too.
    drop(follower);
    fm.shutdown().unwrap();
    let fm = env.manager_at("/follower");
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    let again = follower
        .append_as_leader(&mut second.clone(), LeaderEpoch(2))
        .unwrap();
    assert!(again.duplicate);
}

#[test]
fn end_offset_for_epoch_and_assignment() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(0)), None);
    log.assign_epoch_start_offset(LeaderEpoch(1), Offset(0))
        .unwrap();
    log.append_as_leader(&mut batch(None, 4, 1), LeaderEpoch(1))
        .unwrap();
    log.assign_epoch_start_offset(LeaderEpoch(4), Offset(4))
        .unwrap();
    log.append_as_leader(&mut batch(None, 3, 2), LeaderEpoch(4))
        .unwrap();
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(4)));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(4)), Some(e(4, 7)));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(2)), Some(e(1, 4)));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(0)), Some(e(0, 0)));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(5)), None);
    assert!(log
        .assign_epoch_start_offset(LeaderEpoch(6), Offset(8))
        .is_err());
    assert!(log
        .assign_epoch_start_offset(LeaderEpoch(-1), Offset(7))
        .is_err());
    // The file holds Kafka's text.
    let text = env.file(&log.dir().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), "0\n2\n1 0\n4 4\n");
}

#[test]
fn truncation_drops_epoch_entries_at_and_after_the_offset() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    for (epoch, n) in [(0, 3), (2, 3), (5, 3)] {
        log.append_as_leader(&mut batch(None, n, epoch as usize), LeaderEpoch(epoch))
            .unwrap();
    }
    assert_eq!(log.epoch_entries(), vec![e(0, 0), e(2, 3), e(5, 6)]);
    log.truncate_to(Offset(7)).unwrap(); // inside epoch 5's batch: it goes whole
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(log.epoch_entries(), vec![e(0, 0), e(2, 3)]);
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(2)), Some(e(2, 6)));
    log.truncate_to(Offset(3)).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(0, 0)]);
    // A restart reads what truncation wrote.
    drop(log);
    m.shutdown().unwrap();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(0, 0)]);
    assert_eq!(log.log_end_offset(), Offset(3));
}

#[test]
fn truncation_to_the_log_end_drops_an_epoch_led_without_appends() {
    // Kafka's `UnifiedLog.truncateTo` at or past the end still truncates the
    // epoch cache: a broker that became leader (epoch 4 assigned at its log
    // end) and lost the leadership before appending must not go on telling
    // its next leader that epoch 4 is its latest.
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    log.append_as_leader(&mut batch(None, 3, 2), LeaderEpoch(2))
        .unwrap();
    log.assign_epoch_start_offset(LeaderEpoch(4), Offset(3))
        .unwrap();
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(4)));
    log.truncate_to(Offset(3)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(3));
    assert_eq!(log.epoch_entries(), vec![e(2, 0)]);
    // Past the end too, and the checkpoint says so after a restart.
    log.assign_epoch_start_offset(LeaderEpoch(5), Offset(3))
        .unwrap();
    log.truncate_to(Offset(10)).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(2, 0)]);
    drop(log);
    m.shutdown().unwrap();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(2, 0)]);
}

#[test]
fn truncate_fully_starts_an_empty_log_at_the_offset() {
    let env = Env::new();
    let (lm, fm) = (env.manager_at("/leader"), env.manager_at("/follower"));
    let (leader, _) = leader_with_data(&lm);
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    follower
        .append_as_follower(&batch(Some((7, 0)), 2, 0))
        .unwrap();
    // The leader's log start moved past the follower's end.
    let start = leader.segment_base_offsets()[2];
    leader.delete_records_before(start).unwrap();
    follower.truncate_fully_and_start_at(start).unwrap();
    assert_eq!(follower.log_start_offset(), start);
    assert_eq!(follower.log_end_offset(), start);
    assert_eq!(follower.recovery_point(), start);
    assert_eq!(follower.epoch_entries(), vec![]);
    assert_eq!(follower.num_producers(), 0);
    assert_eq!(follower.segment_base_offsets(), vec![start]);
    follower
        .append_as_follower(&leader.read_to_vec(start, 1 << 20).unwrap())
        .unwrap();
    assert_eq!(
        follower.epoch_entries().first().map(|x| x.1),
        Some(start),
        "the first fetched batch starts the cache"
    );
    drop(follower);
    env.fs.crash(5);
    let fm = env.manager_at("/follower");
    let follower = fm.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(follower.log_start_offset(), start);
    assert!(follower.log_end_offset() >= start);
}

#[test]
fn log_start_moves_carry_the_covering_entry_up() {
    let env = Env::new();
    let m = env.manager();
    let (log, s3) = leader_with_data(&m);
    assert_eq!(log.epoch_entries(), vec![e(0, 0), e(3, s3)]);
    log.delete_records_before(Offset(s3 - 2)).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(0, s3 - 2), e(3, s3)]);
    log.delete_records_before(Offset(s3 + 2)).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(3, s3 + 2)]);
    // Retention deleting all but the last segment moves the start to its base.
    let last = log.segments().last().unwrap().clone();
    log.update_config(LogConfig {
        retention_bytes: last.size() as i64,
        ..config()
    });
    log.delete_old_segments().unwrap();
    let lso = log.log_start_offset();
    assert_eq!(lso, last.base_offset());
    assert!(lso > Offset(s3 + 2));
    assert_eq!(log.epoch_entries(), vec![e(3, lso.0)]);
    drop(log);
    m.shutdown().unwrap();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(3, lso.0)]);
    // With no data left, the entry starts at the log end: like Kafka's
    // load (truncateFromEnd(logEndOffset)), a restart drops it.
    log.update_config(LogConfig {
        retention_bytes: 0,
        ..config()
    });
    log.delete_old_segments().unwrap();
    assert_eq!(log.epoch_entries(), vec![e(3, log.log_end_offset().0)]);
    drop(log);
    m.shutdown().unwrap();
    let log = env.manager().get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.epoch_entries(), vec![]);
}

#[test]
fn missing_or_corrupt_checkpoint_is_rebuilt_from_batch_headers() {
    for damage in ["remove", "garbage", "disordered"] {
        let env = Env::new();
        let m = env.manager();
        let (log, s3) = leader_with_data(&m);
        let path = log.dir().join(LEADER_EPOCH_CHECKPOINT);
        let want = log.epoch_entries();
        drop(log);
        m.shutdown().unwrap();
        match damage {
            "remove" => env.fs.remove_file(&path).unwrap(),
            "garbage" => env.fs.set_contents(&path, b"0\n7\n\xff\xfe"),
            _ => env
                .fs
                .set_contents(&path, format!("0\n2\n3 {s3}\n0 0\n").as_bytes()),
        }
        let m = env.manager();
        let log = m.get_or_create_log(&tp(), config()).unwrap();
        assert_eq!(log.epoch_entries(), want, "after {damage}");
        // And the file was written again.
        let text = String::from_utf8(env.file(&path).unwrap()).unwrap();
        assert_eq!(text, format!("0\n2\n0 0\n3 {s3}\n"), "after {damage}");
    }
}

#[test]
fn entries_past_the_log_end_are_dropped_after_a_crash() {
    let mut lost = 0;
    for seed in 0..12 {
        let env = Env::new();
        let m = env.manager();
        let log = m.get_or_create_log(&tp(), config()).unwrap();
        log.append_as_leader(&mut batch(None, 3, 0), LeaderEpoch(0))
            .unwrap();
        log.flush().unwrap();
        // Epoch 1's entry is durable at once; its data is not flushed.
        log.append_as_leader(&mut batch(None, 3, 1), LeaderEpoch(1))
            .unwrap();
        assert_eq!(log.epoch_entries(), vec![e(0, 0), e(1, 3)]);
        drop(log);
        drop(m);
        env.fs.crash(seed);
        let m = env.manager();
        let log = m.get_or_create_log(&tp(), config()).unwrap();
        if log.log_end_offset() == Offset(3) {
            lost += 1;
            assert_eq!(log.epoch_entries(), vec![e(0, 0)], "seed {seed}");
            assert_eq!(log.end_offset_for_epoch(LeaderEpoch(1)), None);
        } else {
            assert_eq!(log.log_end_offset(), Offset(6), "seed {seed}");
            assert_eq!(log.epoch_entries(), vec![e(0, 0), e(1, 3)], "seed {seed}");
        }
        // What recovery wrote holds after a clean restart.
        let want = log.epoch_entries();
        drop(log);
        m.shutdown().unwrap();
        let log = env.manager().get_or_create_log(&tp(), config()).unwrap();
        assert_eq!(log.epoch_entries(), want);
    }
    assert!(lost > 0, "no seed lost the unflushed batch");
}

#[test]
fn high_watermarks_are_checkpointed_per_log_dir() {
    let env = Env::new();
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/a"), PathBuf::from("/b")],
            ..Default::default()
        },
        Arc::new(env.fs.clone()),
        env.clock.clone(),
    )
    .unwrap();
    let (t0, t1) = (TopicPartition::new("hw", 0), TopicPartition::new("hw", 1));
    let l0 = m.get_or_create_log(&t0, config()).unwrap();
    let l1 = m.get_or_create_log(&t1, config()).unwrap();
    assert_ne!(l0.dir().parent(), l1.dir().parent(), "one log per dir");
    m.write_high_watermarks(&[(t0.clone(), Offset(12)), (t1.clone(), Offset(3))])
        .unwrap();
    let in_dir = |l: &Log| {
        String::from_utf8(
            env.file(
                &l.dir()
                    .parent()
                    .unwrap()
                    .join("replication-offset-checkpoint"),
            )
            .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(in_dir(&l0), "0\n1\nhw 0 12\n");
    assert_eq!(in_dir(&l1), "0\n1\nhw 1 3\n");
    assert_eq!(m.checkpointed_high_watermark(&t0), None, "as opened");
    drop((l0, l1));
    drop(m);
    env.fs.crash(2);
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/a"), PathBuf::from("/b")],
            ..Default::default()
        },
        Arc::new(env.fs.clone()),
        env.clock.clone(),
    )
    .unwrap();
    assert_eq!(m.checkpointed_high_watermark(&t0), Some(Offset(12)));
    assert_eq!(m.checkpointed_high_watermark(&t1), Some(Offset(3)));
    assert_eq!(
        m.checkpointed_high_watermark(&TopicPartition::new("hw", 2)),
        None
    );
}

/// A batch of `n` records stamped with `epoch`, at base offset `base`.
fn batch_at(epoch: i32, base: i64, n: usize) -> Vec<u8> {
    let mut b = batch(None, n, base as usize);
    sluice_record::batch::set_base_offset(&mut b, Offset(base));
    sluice_record::batch::set_partition_leader_epoch(&mut b, LeaderEpoch(epoch));
    b
}

#[test]
fn a_failed_follower_append_leaves_the_epoch_cache_as_it_was() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    let file = log.dir().join(LEADER_EPOCH_CHECKPOINT);
    log.append_as_follower(&batch_at(1, 0, 2)).unwrap();
    assert_eq!(env.file(&file).unwrap(), b"0\n1\n1 0\n");

    // The data write fails on a full disk: the new epoch's entry is undone
    // in memory and on disk, and the dir stays online.
    env.fs
        .inject(Fault::once(".log", FaultKind::WriteError(libc::ENOSPC)));
    let err = log.append_as_follower(&batch_at(2, 2, 2)).unwrap_err();
    assert!(err.is_no_space(), "{err:?}");
    assert_eq!(log.epoch_entries(), vec![e(1, 0)]);
    assert_eq!(env.file(&file).unwrap(), b"0\n1\n1 0\n");
    assert_eq!(log.log_end_offset(), Offset(2));
    log.append_as_follower(&batch_at(2, 2, 2)).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(1, 0), e(2, 2)]);

    // The checkpoint cannot be written (EIO): nothing is appended and the
    // log directory goes offline, as for any failed metadata write.
    env.fs.inject(Fault::once(
        LEADER_EPOCH_CHECKPOINT,
        FaultKind::WriteError(libc::EIO),
    ));
    assert!(log.append_as_follower(&batch_at(3, 4, 1)).is_err());
    assert_eq!(log.log_end_offset(), Offset(4));
    assert_eq!(log.epoch_entries(), vec![e(1, 0), e(2, 2)]);
    assert!(matches!(
        log.append_as_follower(&batch_at(2, 4, 1)),
        Err(StorageError::LogDirOffline { .. })
    ));
}

#[test]
fn a_failed_leader_append_of_a_new_epoch_leaves_the_cache_as_it_was() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    log.append_as_leader(&mut batch(None, 2, 0), LeaderEpoch(0))
        .unwrap();
    env.fs
        .inject(Fault::once(".log", FaultKind::WriteError(libc::ENOSPC)));
    assert!(log
        .append_as_leader_shared(&batch(None, 2, 1), LeaderEpoch(4))
        .is_err());
    assert_eq!(log.epoch_entries(), vec![e(0, 0)]);
    let text = env.file(&log.dir().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
    assert_eq!(text, b"0\n1\n0 0\n");
    log.append_as_leader_shared(&batch(None, 2, 1), LeaderEpoch(4))
        .unwrap();
    assert_eq!(log.epoch_entries(), vec![e(0, 0), e(4, 2)]);
}

#[test]
fn a_crash_before_the_log_start_checkpoint_leaves_no_batch_without_an_epoch() {
    let env = Env::new();
    let m = env.manager();
    let (log, s3) = leader_with_data(&m);
    log.delete_records_before(Offset(s3 + 2)).unwrap();
    assert_eq!(log.epoch_entries(), vec![e(3, s3 + 2)]);
    log.flush().unwrap();
    drop(log);
    drop(m); // no checkpoint of the new log start
    env.fs.crash(1);
    let log = env.manager().get_or_create_log(&tp(), config()).unwrap();
    let start = log.log_start_offset();
    assert!(start < Offset(s3 + 2), "the old start came back: {start}");
    let entries = log.epoch_entries();
    assert_eq!(entries.first().map(|x| x.1), Some(start), "{entries:?}");
    let bytes = log_bytes(&log);
    for r in Batches::new(&bytes) {
        let h = r.unwrap().1;
        let at = h.base_offset.max(start);
        let cached = entries.iter().rev().find(|(_, s)| *s <= at).map(|x| x.0);
        assert_eq!(
            cached,
            Some(h.partition_leader_epoch),
            "batch at {}",
            h.base_offset
        );
    }
}
