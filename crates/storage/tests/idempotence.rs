//! Idempotent producer state in `Log`: duplicates are not written, sequence
//! errors reject the whole call, and the state survives clean restarts,
//! power cuts (SimFs crash), truncation and retention.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_record::{
    BatchBuilder, Batches, CompressionType, LeaderEpoch, Offset, ProducerEpoch, ProducerId,
    Timestamp,
};
use sluice_storage::producer_state::ProducerStateConfig;
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs, StorageError, TopicPartition,
};

const NOW: i64 = 1_700_000_000_000;
const PID: ProducerId = ProducerId(1000);

fn tp() -> TopicPartition {
    TopicPartition::new("idem", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        flush_messages: 1,
        ..LogConfig::default()
    }
}

struct Env {
    fs: SimFs,
    clock: Arc<ManualClock>,
    producer_state: ProducerStateConfig,
}

impl Env {
    fn new() -> Self {
        Env {
            fs: SimFs::new(),
            clock: Arc::new(ManualClock::new(NOW)),
            producer_state: ProducerStateConfig::default(),
        }
    }
    fn manager(&self) -> LogManager {
        LogManager::open(
            LogManagerConfig {
                log_dirs: vec![PathBuf::from("/data")],
                producer_state: self.producer_state,
                ..Default::default()
            },
            Arc::new(self.fs.clone()),
            self.clock.clone(),
        )
        .unwrap()
    }
}

/// A batch of `n` records from `pid`/`epoch` starting at sequence `seq`.
fn batch(pid: ProducerId, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None).producer(pid, ProducerEpoch(epoch), seq);
    for i in 0..n {
        let v = format!("p{}-e{epoch}-s{}", pid.0, seq as usize + i);
        b.append(Timestamp(NOW + i as i64), None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

fn append(
    log: &sluice_storage::Log,
    mut bytes: Vec<u8>,
) -> Result<sluice_storage::AppendInfo, StorageError> {
    log.append_as_leader(&mut bytes, LeaderEpoch(0))
}

/// (producer id, base sequence, base offset) of every batch in the log.
fn batches_in_log(log: &sluice_storage::Log) -> Vec<(i64, i32, i64)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        for r in Batches::new(&bytes) {
            let (_, h) = r.unwrap();
            out.push((h.producer_id.0, h.base_sequence, h.base_offset.0));
            at = h.next_offset();
        }
    }
    out
}

#[test]
fn retry_is_answered_with_the_original_offsets_and_not_written() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    let a = append(&log, batch(PID, 0, 0, 3)).unwrap();
    let b = append(&log, batch(PID, 0, 3, 2)).unwrap();
    assert!(!a.duplicate && !b.duplicate);
    assert_eq!((b.first_offset, b.last_offset), (Offset(3), Offset(4)));
    let size = log.size_in_bytes();

    let again = append(&log, batch(PID, 0, 0, 3)).unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.first_offset, again.last_offset),
        (Offset(0), Offset(2))
    );
    let again = append(&log, batch(PID, 0, 3, 2)).unwrap();
    assert_eq!(again.first_offset, Offset(3));
    assert_eq!(log.size_in_bytes(), size, "a duplicate writes nothing");
    assert_eq!(log.log_end_offset(), Offset(5));
}

#[test]
fn gaps_stale_epochs_and_bad_bumps_are_rejected_whole() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    append(&log, batch(PID, 2, 0, 2)).unwrap();
    assert!(matches!(
        append(&log, batch(PID, 2, 5, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 2, .. })
    ));
    assert!(matches!(
        append(&log, batch(PID, 1, 2, 1)),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        append(&log, batch(PID, 3, 2, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 0, .. })
    ));
    // Two batches in one call: the second is out of order, so neither is written.
    let mut two = batch(PID, 2, 2, 1);
    two.extend(batch(PID, 2, 9, 1));
    assert!(append(&log, two).is_err());
    assert_eq!(log.log_end_offset(), Offset(2));
    // In one call, the second batch follows the first.
    let mut two = batch(PID, 2, 2, 1);
    two.extend(batch(PID, 2, 3, 1));
    let info = append(&log, two).unwrap();
    assert_eq!(info.last_offset, Offset(3));
    // Epoch bump from 0.
    append(&log, batch(PID, 3, 0, 1)).unwrap();
    assert_eq!(
        log.producer_state(PID).unwrap().producer_epoch,
        ProducerEpoch(3)
    );
}

#[test]
fn state_survives_clean_restart_with_rolled_segments() {
    let env = Env::new();
    {
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), config()).unwrap();
        for i in 0..80 {
            append(&log, batch(PID, 0, i * 2, 2)).unwrap();
        }
        assert!(log.num_segments() > 2, "the test needs rolled segments");
        mgr.shutdown().unwrap();
    }
    let snapshots: Vec<_> = env
        .fs
        .list_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".snapshot"))
        .collect();
    assert!(!snapshots.is_empty(), "snapshots written: {snapshots:?}");
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    let dup = append(&log, batch(PID, 0, 158, 2)).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.first_offset, Offset(158));
    assert!(matches!(
        append(&log, batch(PID, 0, 161, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 160, .. })
    ));
    assert!(!append(&log, batch(PID, 0, 160, 1)).unwrap().duplicate);
}

#[test]
fn state_is_rebuilt_after_a_power_cut_for_every_acknowledged_batch() {
    for seed in 0..20u64 {
        let env = Env::new();
        let mut acked = Vec::new();
        {
            let mgr = env.manager();
            let log = mgr.get_or_create_log(&tp(), config()).unwrap();
            for i in 0..(10 + seed as i32 * 3) {
                let info = append(&log, batch(PID, 0, i * 3, 3)).unwrap();
                if info.needs_flush {
                    log.flush_until(info.last_offset).unwrap();
                }
                acked.push((i * 3, info.first_offset));
            }
            env.fs.crash(seed);
        }
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), config()).unwrap();
        // Every acknowledged batch survived; retrying any of the last five
        // finds it.
        for &(seq, offset) in acked.iter().rev().take(5) {
            let r = append(&log, batch(PID, 0, seq, 3)).unwrap();
            assert!(r.duplicate, "seed {seed} seq {seq}");
            assert_eq!(r.first_offset, offset);
        }
        let next = acked.last().unwrap().0 + 3;
        assert!(!append(&log, batch(PID, 0, next, 3)).unwrap().duplicate);
        let in_log = batches_in_log(&log);
        let seqs: Vec<i32> = in_log.iter().map(|b| b.1).collect();
        let expected: Vec<i32> = (0..=next / 3).map(|i| i * 3).collect();
        assert_eq!(seqs, expected, "seed {seed}: each batch exactly once");
    }
}

#[test]
fn truncation_rolls_producer_state_back() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    for i in 0..30 {
        append(&log, batch(PID, 0, i * 2, 2)).unwrap();
    }
    log.truncate_to(Offset(20)).unwrap();
    assert_eq!(log.producer_state(PID).unwrap().last_seq(), 19);
    // The batch at sequence 20 is gone, so it is new again.
    let r = append(&log, batch(PID, 0, 20, 2)).unwrap();
    assert!(!r.duplicate);
    assert_eq!(r.first_offset, Offset(20));
    // The state survives a restart after truncation (no stale snapshot wins).
    mgr.shutdown().unwrap();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.producer_state(PID).unwrap().last_seq(), 21);
}

#[test]
fn retention_and_delete_records_drop_producers_whose_data_is_gone() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    append(&log, batch(ProducerId(1), 0, 0, 2)).unwrap();
    for i in 0..30 {
        append(&log, batch(ProducerId(2), 0, i * 2, 2)).unwrap();
    }
    assert_eq!(log.num_producers(), 2);
    log.delete_records_before(Offset(10)).unwrap();
    assert_eq!(log.num_producers(), 1);
    assert!(log.producer_state(ProducerId(1)).is_none());
    assert!(log.producer_state(ProducerId(2)).is_some());
    // Still gone after a restart (snapshots are not resurrected).
    mgr.shutdown().unwrap();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(log.num_producers(), 1);
}

#[test]
fn idle_producers_expire_and_the_number_tracked_is_bounded() {
    let mut env = Env::new();
    env.producer_state = ProducerStateConfig {
        producer_id_expiration_ms: 60_000,
        max_producers: 3,
    };
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    for pid in 0..3 {
        append(&log, batch(ProducerId(pid), 0, 0, 1)).unwrap();
    }
    assert!(log.producer_state_memory_bytes() > 0);
    assert!(matches!(
        append(&log, batch(ProducerId(9), 0, 0, 1)),
        Err(StorageError::TooManyProducers { max: 3, .. })
    ));
    assert_eq!(log.log_end_offset(), Offset(3));
    // Once the others have been idle past producer.id.expiration.ms, the
    // new producer is admitted.
    env.clock.advance(120_000);
    append(&log, batch(ProducerId(9), 0, 0, 1)).unwrap();
    assert_eq!(log.num_producers(), 1);
}

#[test]
fn a_changed_producer_id_expiration_applies_to_loaded_logs() {
    let mut env = Env::new();
    env.producer_state = ProducerStateConfig {
        producer_id_expiration_ms: 3_600_000,
        max_producers: 2,
    };
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    for pid in 0..2 {
        append(&log, batch(ProducerId(pid), 0, 0, 1)).unwrap();
    }
    env.clock.advance(120_000);
    // Idle for 2 minutes of an hour: still tracked, the third is refused.
    assert!(matches!(
        append(&log, batch(ProducerId(9), 0, 0, 1)),
        Err(StorageError::TooManyProducers { max: 2, .. })
    ));
    // A dynamic producer.id.expiration.ms of one minute expires them.
    mgr.set_producer_id_expiration_ms(60_000);
    append(&log, batch(ProducerId(9), 0, 0, 1)).unwrap();
    assert_eq!(log.num_producers(), 1);
}

/// Without fsync per append a power cut loses the log's unsynced tail,
/// while snapshots (fsynced at every roll) may describe offsets that are
/// gone. The recovered state must match the recovered log exactly: the
/// last batch in the log is a duplicate, the next sequence is accepted.
#[test]
fn snapshots_beyond_a_lost_tail_are_ignored_after_a_power_cut() {
    let snapshot_offsets = |fs: &SimFs| -> Vec<i64> {
        fs.list_files()
            .iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?;
                sluice_storage::producer_state::parse_snapshot_file_name(name)
            })
            .map(|o| o.0)
            .collect()
    };
    let mut exercised = 0;
    for seed in 0..30u64 {
        let env = Env::new();
        let unsynced = LogConfig {
            flush_messages: i64::MAX,
            ..config()
        };
        {
            let mgr = env.manager();
            let log = mgr.get_or_create_log(&tp(), unsynced.clone()).unwrap();
            for i in 0..(40 + seed as i32) {
                append(&log, batch(PID, 0, i * 2, 2)).unwrap();
            }
            env.fs.crash(seed);
        }
        let before = snapshot_offsets(&env.fs);
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), unsynced).unwrap();
        if before.iter().any(|&o| o > log.log_end_offset().0) {
            exercised += 1;
        }
        let in_log = batches_in_log(&log);
        let after = snapshot_offsets(&env.fs);
        assert!(
            after.iter().all(|&o| o <= log.log_end_offset().0),
            "seed {seed}: snapshot above the log end survived: {after:?}"
        );
        match in_log.last() {
            None => assert!(log.producer_state(PID).is_none(), "seed {seed}"),
            Some(&(_, last_seq, last_offset)) => {
                let r = append(&log, batch(PID, 0, last_seq, 2)).unwrap();
                assert!(
                    r.duplicate,
                    "seed {seed}: last batch in the log is a duplicate"
                );
                assert_eq!(r.first_offset, Offset(last_offset));
                assert!(matches!(
                    append(&log, batch(PID, 0, last_seq + 4, 2)),
                    Err(StorageError::OutOfOrderSequence { .. })
                ));
                let next = append(&log, batch(PID, 0, last_seq + 2, 2)).unwrap();
                assert!(!next.duplicate, "seed {seed}");
                assert_eq!(next.first_offset, Offset(last_offset + 2));
            }
        }
    }
    assert!(exercised > 0, "no seed lost a tail below a snapshot");
}
