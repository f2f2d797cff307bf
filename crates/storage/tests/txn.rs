//! Transactions in `Log` (KIP-98) on the simulated disk: markers and their
//! refusals, the aborted-transaction index (written on abort, by leader and
//! follower alike; cut by truncation; deleted with its segment; rebuilt by
//! recovery after a kill, a power cut or a damaged file), the first
//! unstable offset against the high watermark, and the log cleaner.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_record::{
    BatchBuilder, Batches, CompressionType, ControlRecordType, LeaderEpoch, Offset, ProducerEpoch,
    ProducerId, Timestamp,
};
use sluice_storage::log::AppendOrigin;
use sluice_storage::producer_state::Verification;
use sluice_storage::txn_index::AbortedTxn;
use sluice_storage::{
    CleanupPolicy, CompactionConfig, Log, LogCleaner, LogConfig, LogManager, LogManagerConfig,
    ManualClock, SimFs, StorageError, TopicPartition, TxnMarker,
};

const NOW: i64 = 1_700_000_000_000;
const P1: ProducerId = ProducerId(1);
const P2: ProducerId = ProducerId(2);
const E0: ProducerEpoch = ProducerEpoch(0);
const LE: LeaderEpoch = LeaderEpoch(0);

fn tp() -> TopicPartition {
    TopicPartition::new("txn", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

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
    fn manager(&self) -> LogManager {
        LogManager::open(
            LogManagerConfig {
                log_dirs: vec![PathBuf::from("/data")],
                ..Default::default()
            },
            Arc::new(self.fs.clone()),
            self.clock.clone(),
        )
        .unwrap()
    }
}

/// `n` records of `pid` at sequence `seq`, transactional or not.
fn batch(pid: ProducerId, seq: i32, n: usize, txn: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(pid, E0, seq)
        .transactional(txn);
    for i in 0..n {
        let k = format!("k{}", (seq as usize + i) % 3);
        let v = format!("p{}-s{}", pid.0, seq as usize + i);
        b.append(Timestamp(NOW), Some(k.as_bytes()), Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Appends `n` records of `pid` at its next sequence.
fn produce(log: &Log, pid: ProducerId, n: usize, txn: bool) -> Offset {
    let seq = log.producer_state(pid).map_or(0, |e| e.last_seq() + 1);
    log.append_as_leader(&mut batch(pid, seq, n, txn), LE)
        .unwrap()
        .first_offset
}

/// The marker WriteTxnMarkers would ask for.
fn marker(
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    coordinator_epoch: i32,
    control_type: ControlRecordType,
    transaction_version: i16,
) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch,
        coordinator_epoch,
        control_type,
        transaction_version,
    }
}

fn end_txn(log: &Log, pid: ProducerId, commit: bool) -> Offset {
    log.append_txn_marker(
        marker(pid, E0, 0, ControlRecordType::from_commit(commit), 1),
        LE,
    )
    .unwrap()
    .first_offset
}

/// Every aborted-transaction index entry of the log, segment by segment.
fn index_entries(log: &Log) -> Vec<AbortedTxn> {
    log.segments()
        .iter()
        .flat_map(|s| s.txn_index().entries().unwrap())
        .collect()
}

fn txn_index_files(fs: &SimFs) -> Vec<String> {
    let mut v: Vec<String> = fs
        .list_files()
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.contains(".txnindex"))
        .collect();
    v.sort();
    v
}

#[test]
fn an_abort_is_indexed_and_the_lso_waits_for_the_high_watermark() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    produce(&log, ProducerId(9), 2, false); // 0..2, not transactional
    let p1 = produce(&log, P1, 3, true); // 2..5
    let p2 = produce(&log, P2, 2, true); // 5..7
    assert_eq!((p1, p2), (Offset(2), Offset(5)));
    assert_eq!(log.first_unstable_offset(), Some(p1));
    assert_eq!(log.last_stable_offset(Offset(7)), p1);
    assert_eq!(log.last_stable_offset(Offset(1)), Offset(1));

    let abort = end_txn(&log, P1, false);
    assert_eq!(abort, Offset(7));
    let entry = AbortedTxn {
        producer_id: P1,
        first_offset: p1,
        last_offset: abort,
        last_stable_offset: p2,
    };
    assert_eq!(index_entries(&log), vec![entry]);
    // Complete, but unstable until the high watermark passes the marker.
    log.on_high_watermark_updated(abort);
    assert_eq!(log.first_unstable_offset(), Some(p1));
    log.on_high_watermark_updated(abort.plus(1));
    assert_eq!(log.first_unstable_offset(), Some(p2));
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), p2).unwrap(),
        vec![entry]
    );
    assert_eq!(
        log.collect_aborted_transactions(abort.plus(1), Offset(20))
            .unwrap(),
        vec![]
    );

    // A commit writes no entry; then everything is stable.
    let commit = end_txn(&log, P2, true);
    assert_eq!(index_entries(&log).len(), 1);
    log.on_high_watermark_updated(commit.plus(1));
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(commit.plus(1)), commit.plus(1));
    // The marker is a control batch of the producer, transactional.
    let bytes = log.read_to_vec(commit, 1 << 10).unwrap();
    let (_, h) = Batches::new(&bytes).next().unwrap().unwrap();
    assert!(h.is_control() && h.is_transactional());
    assert_eq!((h.producer_id, h.base_sequence), (P2, -1));
}

#[test]
fn refusals_of_the_log() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    produce(&log, P1, 1, true);
    // A plain batch inside the open transaction.
    assert!(matches!(
        log.append_as_leader(&mut batch(P1, 1, 1, false), LE),
        Err(StorageError::InvalidTxnState {
            producer_id: P1,
            ..
        })
    ));
    // A client may not write a control batch, nor an idempotent batch
    // without a sequence.
    let mut control = sluice_record::build_end_txn_marker_batch(
        P1,
        E0,
        sluice_record::EndTransactionMarker::new(ControlRecordType::Commit, 0).unwrap(),
        Timestamp(NOW),
    )
    .unwrap();
    assert!(matches!(
        log.append_as_leader(&mut control.clone(), LE),
        Err(StorageError::InvalidRecord(_))
    ));
    assert!(matches!(
        log.append_as_leader(&mut batch(P2, -1, 1, false), LE),
        Err(StorageError::InvalidRecord(_))
    ));
    // A coordinator may (its TxnOffsetCommit batches carry sequence -1).
    log.append_as_leader_from(
        &mut batch(P1, -1, 1, true),
        LE,
        AppendOrigin::Coordinator,
        Verification::NotRequired,
    )
    .unwrap();
    log.append_as_leader_from(
        &mut control,
        LE,
        AppendOrigin::Coordinator,
        Verification::NotRequired,
    )
    .unwrap();
    let end = log.log_end_offset();
    // Markers: an older producer epoch, an older coordinator.
    produce(&log, P2, 1, true);
    log.append_txn_marker(
        marker(P2, ProducerEpoch(3), 5, ControlRecordType::Abort, 1),
        LE,
    )
    .unwrap();
    produce_at_epoch(&log, P2, 3, 0, true);
    assert!(matches!(
        log.append_txn_marker(
            marker(P2, ProducerEpoch(2), 5, ControlRecordType::Abort, 1),
            LE
        ),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        log.append_txn_marker(
            marker(P2, ProducerEpoch(3), 4, ControlRecordType::Abort, 1),
            LE
        ),
        Err(StorageError::TransactionCoordinatorFenced { current: 5, .. })
    ));
    // TV2: the epoch must be newer, except a retry after the transaction ended.
    assert!(matches!(
        log.append_txn_marker(
            marker(P2, ProducerEpoch(3), 5, ControlRecordType::Abort, 2),
            LE
        ),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    log.append_txn_marker(
        marker(P2, ProducerEpoch(4), 5, ControlRecordType::Abort, 2),
        LE,
    )
    .unwrap();
    log.append_txn_marker(
        marker(P2, ProducerEpoch(4), 5, ControlRecordType::Abort, 2),
        LE,
    )
    .unwrap();
    assert!(log.log_end_offset() > end);
    assert!(matches!(
        log.append_txn_marker(marker(P2, E0, 0, ControlRecordType::Unknown(3), 1), LE),
        Err(StorageError::CorruptRecord(_))
    ));
}

fn produce_at_epoch(log: &Log, pid: ProducerId, epoch: i16, seq: i32, txn: bool) {
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(pid, ProducerEpoch(epoch), seq)
        .transactional(txn);
    b.append(Timestamp(NOW), Some(b"k"), Some(b"v"), &[])
        .unwrap();
    log.append_as_leader(&mut b.build().unwrap(), LE).unwrap();
}

/// Many transactions over several segments, some aborted; returns the
/// aborted ones as (producer, first, marker).
fn many_transactions(log: &Log, rounds: i32) -> Vec<(ProducerId, Offset, Offset)> {
    let mut aborted = Vec::new();
    for r in 0..rounds {
        for (i, pid) in [P1, P2].into_iter().enumerate() {
            let first = produce(log, pid, 2, true);
            produce(log, ProducerId(7), 1, false);
            produce(log, pid, 1, true);
            let commit = (r + i as i32) % 3 == 0;
            let at = end_txn(log, pid, commit);
            if !commit {
                aborted.push((pid, first, at));
            }
        }
    }
    aborted
}

#[test]
fn the_index_spans_segments_and_answers_every_range() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    let aborted = many_transactions(&log, 12);
    assert!(log.num_segments() > 3, "the test needs several segments");
    let leo = log.log_end_offset();
    log.on_high_watermark_updated(leo);
    assert_eq!(log.first_unstable_offset(), None);
    let indexed: Vec<_> = index_entries(&log)
        .iter()
        .map(|t| (t.producer_id, t.first_offset, t.last_offset))
        .collect();
    assert_eq!(indexed, aborted);
    // Each entry sits in the segment holding its marker.
    for s in log.segments() {
        for t in s.txn_index().entries().unwrap() {
            assert!(t.last_offset >= s.base_offset() && t.last_offset < s.next_offset());
        }
    }
    // Every range gets exactly the aborted transactions overlapping it.
    for start in 0..leo.0 {
        for upper in [start + 1, start + 5, leo.0] {
            let got: Vec<_> = log
                .collect_aborted_transactions(Offset(start), Offset(upper))
                .unwrap()
                .iter()
                .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                .collect();
            let want: Vec<_> = aborted
                .iter()
                .copied()
                .filter(|(_, f, l)| l.0 >= start && f.0 < upper)
                .collect();
            assert_eq!(got, want, "[{start}, {upper})");
        }
    }
}

#[test]
fn truncation_cuts_the_index_and_reopens_the_transaction() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    let aborted = many_transactions(&log, 8);
    let (pid, first, marker) = aborted[aborted.len() / 2];
    log.truncate_to(marker).unwrap();
    // Replayed completions wait for the high watermark (the partition
    // sets it after a truncation).
    log.on_high_watermark_updated(log.log_end_offset());
    let left: Vec<_> = index_entries(&log).iter().map(|t| t.last_offset).collect();
    assert!(left.iter().all(|l| *l < marker), "{left:?}");
    assert_eq!(left.len(), aborted.len() / 2);
    // The marker is gone: its transaction is open again.
    assert_eq!(
        log.producer_state(pid).unwrap().current_txn_first_offset,
        Some(first)
    );
    assert_eq!(log.first_unstable_offset(), Some(first));
    // And stays so across a restart.
    mgr.shutdown().unwrap();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    log.on_high_watermark_updated(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), Some(first));
    assert_eq!(index_entries(&log).len(), aborted.len() / 2);
    log.truncate_fully_and_start_at(Offset(500)).unwrap();
    assert!(index_entries(&log).is_empty());
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn retention_deletes_the_index_with_its_segment() {
    let env = Env::new();
    let mgr = env.manager();
    let cfg = LogConfig {
        file_delete_delay_ms: 0,
        ..config()
    };
    let log = mgr.get_or_create_log(&tp(), cfg).unwrap();
    many_transactions(&log, 8);
    log.on_high_watermark_updated(log.log_end_offset());
    let before = txn_index_files(&env.fs);
    assert!(before.len() > 1, "{before:?}");
    let second = log.segment_base_offsets()[2];
    log.delete_records_before(second).unwrap();
    mgr.enforce_retention().unwrap();
    let after = txn_index_files(&env.fs);
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after.iter().all(|p| !p.ends_with(".deleted")));
    for s in log.segments() {
        assert!(s.base_offset() >= second);
    }
    // No entry below the log start is served.
    assert!(log
        .collect_aborted_transactions(second, log.log_end_offset())
        .unwrap()
        .iter()
        .all(|t| t.last_offset >= second));
}

/// The index after a crash: whatever the disk kept, the recovered log's
/// index is exactly what its markers say, and the first unstable offset
/// matches its open transactions.
#[test]
fn recovery_rebuilds_the_index_after_a_kill_or_a_power_cut() {
    for seed in 0..24u64 {
        let env = Env::new();
        let expected_full;
        {
            let mgr = env.manager();
            let log = mgr.get_or_create_log(&tp(), config()).unwrap();
            many_transactions(&log, 6);
            if seed % 3 == 0 {
                log.flush().unwrap();
            }
            // A transaction left open, and one more abort at the end.
            produce(&log, ProducerId(50), 1, true);
            produce(&log, P1, 1, true);
            end_txn(&log, P1, false);
            expected_full = index_entries(&log);
            if seed % 2 == 0 {
                env.fs.kill();
            } else {
                env.fs.crash(seed);
            }
        }
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), config()).unwrap();
        let leo = log.log_end_offset();
        let entries = index_entries(&log);
        // Exactly the entries whose markers survived.
        let kept: Vec<_> = expected_full
            .iter()
            .copied()
            .filter(|t| t.last_offset < leo)
            .collect();
        assert_eq!(entries, kept, "seed {seed}");
        if seed % 2 == 0 {
            assert_eq!(entries, expected_full, "a kill loses nothing");
        }
        // Replayed completions wait for the high watermark; once it is at
        // the end, the open transaction (if its batch survived) is the
        // first unstable offset.
        log.on_high_watermark_updated(leo);
        let open = |pid| {
            log.producer_state(pid)
                .and_then(|e| e.current_txn_first_offset)
        };
        let earliest = [P1, P2, ProducerId(50)].into_iter().filter_map(open).min();
        assert_eq!(log.first_unstable_offset(), earliest, "seed {seed}");
        if seed % 2 == 0 {
            assert!(open(ProducerId(50)).is_some());
            assert_eq!(earliest, open(ProducerId(50)));
        }
    }
}

#[test]
fn a_damaged_index_is_rebuilt_on_load() {
    let env = Env::new();
    let expected;
    {
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), config()).unwrap();
        many_transactions(&log, 8);
        expected = index_entries(&log);
        mgr.shutdown().unwrap();
    }
    let files = txn_index_files(&env.fs);
    assert!(files.len() > 2);
    // Damage one in the middle (a torn entry), drop another.
    let damaged = PathBuf::from(&files[1]);
    let mut bytes = env.fs.contents(&damaged).unwrap();
    bytes.truncate(bytes.len() - 3);
    env.fs.set_contents(&damaged, &bytes);
    let mut wrong_version = env.fs.contents(&PathBuf::from(&files[2])).unwrap();
    wrong_version[1] = 7;
    env.fs
        .set_contents(&PathBuf::from(&files[2]), &wrong_version);
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    assert_eq!(index_entries(&log), expected);
}

#[test]
fn a_follower_indexes_the_leaders_aborts() {
    let env = Env::new();
    let mgr = env.manager();
    let leader = mgr.get_or_create_log(&tp(), config()).unwrap();
    let follower = mgr
        .get_or_create_log(&TopicPartition::new("txn", 1), config())
        .unwrap();
    many_transactions(&leader, 6);
    produce(&leader, ProducerId(50), 1, true);
    let mut at = Offset::ZERO;
    while at < leader.log_end_offset() {
        let bytes = leader.read_to_vec(at, 700).unwrap();
        let info = follower.append_as_follower(&bytes).unwrap();
        at = info.last_offset.plus(1);
    }
    assert_eq!(index_entries(&follower), index_entries(&leader));
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset()
    );
    follower.on_high_watermark_updated(follower.log_end_offset());
    leader.on_high_watermark_updated(leader.log_end_offset());
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset()
    );
    assert_eq!(
        follower.producer_state(P2).unwrap().coordinator_epoch,
        leader.producer_state(P2).unwrap().coordinator_epoch
    );
}

/// What DescribeProducers reports: every producer, ordered by id, with its
/// epoch, last sequence and timestamp, the coordinator epoch of its last
/// marker and its open transaction's first offset; a follower that copied
/// the leader's batches reports the same.
#[test]
fn active_producers_are_one_consistent_copy_on_leader_and_follower() {
    let env = Env::new();
    let mgr = env.manager();
    let leader = mgr.get_or_create_log(&tp(), config()).unwrap();
    produce(&leader, ProducerId(9), 2, false); // 0..2, idempotent only
    produce(&leader, P2, 1, true); // 2, left open
    produce(&leader, P1, 3, true); // 3..6
    env.clock.advance(5);
    leader
        .append_txn_marker(marker(P1, E0, 7, ControlRecordType::Abort, 1), LE)
        .unwrap();
    let view = |log: &Log| -> Vec<(i64, i16, i32, i64, i32, Option<i64>)> {
        log.active_producers()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e.producer_id.0,
                    e.producer_epoch.0,
                    e.last_seq(),
                    e.last_timestamp.0,
                    e.coordinator_epoch,
                    e.current_txn_first_offset.map(|o| o.0),
                )
            })
            .collect()
    };
    let expected = vec![
        (1, 0, 2, NOW + 5, 7, None),
        (2, 0, 0, NOW, -1, Some(2)),
        (9, 0, 1, NOW, -1, None),
    ];
    assert_eq!(view(&leader), expected);

    let follower = mgr
        .get_or_create_log(&TopicPartition::new("txn", 1), config())
        .unwrap();
    let bytes = leader.read_to_vec(Offset::ZERO, 1 << 20).unwrap();
    follower.append_as_follower(&bytes).unwrap();
    assert_eq!(view(&follower), expected);
}

#[test]
fn an_open_transaction_survives_a_clean_restart_through_the_snapshot() {
    let env = Env::new();
    let first;
    {
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), config()).unwrap();
        many_transactions(&log, 4);
        first = produce(&log, ProducerId(50), 1, true);
        many_transactions(&log, 4);
        mgr.shutdown().unwrap();
    }
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    log.on_high_watermark_updated(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), Some(first));
    assert!(matches!(
        log.append_as_leader(&mut batch(ProducerId(50), 1, 1, false), LE),
        Err(StorageError::InvalidTxnState { .. })
    ));
}

fn compacted() -> LogConfig {
    LogConfig {
        compaction: CompactionConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..Default::default()
        },
        ..config()
    }
}

fn keyed(pid: ProducerId, seq: i32, key: &str, value: &str, txn: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(pid, E0, seq)
        .transactional(txn);
    b.append(
        Timestamp(NOW),
        Some(key.as_bytes()),
        Some(value.as_bytes()),
        &[],
    )
    .unwrap();
    b.build().unwrap()
}

/// (offset, key, value) of every record in the log.
fn records(log: &Log) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        for r in Batches::new(&bytes) {
            let (pos, h) = r.unwrap();
            let reader = sluice_record::records(&bytes[pos..], 1 << 20).unwrap();
            if !h.is_control() {
                for rec in reader.records() {
                    let rec = rec.unwrap();
                    out.push((
                        rec.offset.0,
                        String::from_utf8_lossy(rec.key.unwrap()).into_owned(),
                        String::from_utf8_lossy(rec.value.unwrap()).into_owned(),
                    ));
                }
            }
            at = h.next_offset();
        }
    }
    out
}

#[test]
fn the_cleaner_keeps_committed_records_unstable_ones_and_the_index() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), compacted()).unwrap();
    let append = |b: Vec<u8>| log.append_as_leader(&mut b.clone(), LE).unwrap();
    // k1 committed, then overwritten by an aborted transaction.
    append(keyed(ProducerId(9), 0, "k1", "committed", false));
    append(keyed(P1, 0, "k1", "aborted", true));
    end_txn(&log, P1, false);
    // k2: two committed transactional values; the newer one wins.
    append(keyed(P2, 0, "k2", "old", true));
    end_txn(&log, P2, true);
    append(keyed(P2, 1, "k2", "new", true));
    end_txn(&log, P2, true);
    for i in 1..40 {
        append(keyed(
            ProducerId(9),
            i,
            &format!("f{}", i % 4),
            "filler",
            false,
        ));
    }
    // An open transaction writes k3 twice: nothing of it may be cleaned.
    append(keyed(ProducerId(5), 0, "k3", "open-1", true));
    append(keyed(ProducerId(5), 1, "k3", "open-2", true));
    for i in 40..80 {
        append(keyed(
            ProducerId(9),
            i,
            &format!("f{}", i % 4),
            "filler",
            false,
        ));
    }
    log.roll().unwrap();
    log.on_high_watermark_updated(log.log_end_offset());
    let fuo = log.first_unstable_offset().unwrap();
    let index_before = index_entries(&log);
    assert_eq!(index_before.len(), 1);
    let before = records(&log);

    let cleaner = LogCleaner::new(Default::default());
    let stats = cleaner.clean_now(&log).unwrap().expect("something cleaned");
    assert!(stats.dirty_end <= fuo, "{stats:?} past {fuo:?}");
    let after = records(&log);
    assert!(after.len() < before.len());
    let has = |k: &str, v: &str| after.iter().any(|(_, kk, vv)| kk == k && vv == v);
    assert!(
        has("k1", "committed"),
        "an aborted record shadowed a committed one"
    );
    assert!(has("k2", "new") && !has("k2", "old"));
    assert!(has("k3", "open-1") && has("k3", "open-2"));
    // The index survived the swap, and a restart.
    assert_eq!(index_entries(&log), index_before);
    mgr.shutdown().unwrap();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), compacted()).unwrap();
    assert_eq!(index_entries(&log), index_before);
    // Markers and transactional attributes are kept.
    let mut controls = 0;
    let mut at = Offset::ZERO;
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        for r in Batches::new(&bytes) {
            let (_, h) = r.unwrap();
            controls += usize::from(h.is_control() && h.is_transactional());
            if h.producer_id == P2 || h.producer_id == ProducerId(5) {
                assert!(h.is_transactional());
            }
            at = h.next_offset();
        }
    }
    assert_eq!(controls, 3);
}

/// The index and the log move together: a marker whose log write fails
/// leaves no entry, and an entry that cannot be written (a full disk)
/// refuses the marker, with nothing written and the directory online.
#[test]
fn a_failed_write_leaves_index_and_log_in_step() {
    use sluice_storage::{Fault, FaultKind};
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    produce(&log, P1, 1, true);
    let end = log.log_end_offset();
    env.fs
        .inject(Fault::once(".log", FaultKind::WriteError(libc::EIO)));
    assert!(log
        .append_txn_marker(marker(P1, E0, 0, ControlRecordType::Abort, 1), LE)
        .is_err());
    assert_eq!(log.log_end_offset(), end);
    assert!(
        index_entries(&log).is_empty(),
        "no entry without its marker"
    );

    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    produce(&log, P1, 1, true);
    let end = log.log_end_offset();
    env.fs.inject(Fault::once(
        ".txnindex",
        FaultKind::WriteError(libc::ENOSPC),
    ));
    let e = log
        .append_txn_marker(marker(P1, E0, 0, ControlRecordType::Abort, 1), LE)
        .unwrap_err();
    assert!(e.is_no_space(), "{e}");
    assert_eq!(log.log_end_offset(), end, "no marker without its entry");
    assert!(index_entries(&log).is_empty());
    // Still open and still writable once there is room.
    assert_eq!(log.first_unstable_offset(), Some(Offset(0)));
    end_txn(&log, P1, false);
    assert_eq!(index_entries(&log).len(), 1);
}

/// A kill after an ABORT's index entry reached the file but while its
/// marker had not (the tail of the log is cut here by hand): recovery
/// drops the entry, and the transaction is open again.
#[test]
fn recovery_drops_an_entry_whose_marker_was_lost() {
    let env = Env::new();
    let (seg_path, cut, first);
    {
        let mgr = env.manager();
        let log = mgr.get_or_create_log(&tp(), config()).unwrap();
        many_transactions(&log, 2);
        first = produce(&log, P1, 1, true);
        cut = env
            .fs
            .contents(&log.segments().last().unwrap().log_path())
            .unwrap()
            .len();
        end_txn(&log, P1, false);
        seg_path = log.segments().last().unwrap().log_path();
        assert!(index_entries(&log).iter().any(|t| t.first_offset == first));
        env.fs.kill();
    }
    let mut bytes = env.fs.contents(&seg_path).unwrap();
    bytes.truncate(cut);
    env.fs.set_contents(&seg_path, &bytes);
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    assert!(
        index_entries(&log)
            .iter()
            .all(|t| t.last_offset < log.log_end_offset()),
        "{:?}",
        index_entries(&log)
    );
    log.on_high_watermark_updated(log.log_end_offset());
    assert_eq!(
        log.producer_state(P1).unwrap().current_txn_first_offset,
        Some(first)
    );
    assert_eq!(log.first_unstable_offset(), Some(first));
}

/// Markers (control batches) of the log, by producer id.
fn markers(log: &Log) -> Vec<i64> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        for r in Batches::new(&bytes) {
            let (_, h) = r.unwrap();
            if h.is_control() {
                out.push(h.producer_id.0);
            }
            at = h.next_offset();
        }
    }
    out
}

/// As Kafka's cleaner: the records of aborted transactions go at once; a
/// marker goes once its transaction kept no batch and `delete.retention.ms`
/// has passed; a producer's last batch and last marker stay. Afterwards
/// nothing is unstable, also after a restart (no transaction reopens).
#[test]
fn the_cleaner_removes_aborted_records_and_empty_markers_after_delete_retention() {
    let env = Env::new();
    let mgr = env.manager();
    let mut cfg = compacted();
    cfg.compaction.delete_retention_ms = 60_000;
    let log = mgr.get_or_create_log(&tp(), cfg.clone()).unwrap();
    let append = |b: Vec<u8>| log.append_as_leader(&mut b.clone(), LE).unwrap();
    let fillers = |from: i32, to: i32| {
        for i in from..to {
            let k = format!("f{}", i % 4);
            log.append_as_leader(&mut keyed(ProducerId(9), i, &k, "filler", false), LE)
                .unwrap();
        }
    };
    // P1: aborted "a", committed "c" twice (the second supersedes the first).
    append(keyed(P1, 0, "a", "aborted-1", true));
    end_txn(&log, P1, false);
    append(keyed(P1, 1, "c", "committed-1", true));
    end_txn(&log, P1, true);
    // P2: aborted "b", committed "d" (never superseded), then a plain
    // write (its last batch).
    append(keyed(P2, 0, "b", "aborted-2", true));
    end_txn(&log, P2, false);
    append(keyed(P2, 1, "d", "kept", true));
    end_txn(&log, P2, true);
    append(keyed(P2, 2, "p2", "plain", false));
    fillers(0, 30);
    append(keyed(P1, 2, "c", "committed-2", true));
    end_txn(&log, P1, true);
    fillers(30, 60);
    log.roll().unwrap();
    log.on_high_watermark_updated(log.log_end_offset());
    assert_eq!(markers(&log), vec![1, 1, 2, 2, 1]);

    let cleaner = LogCleaner::new(Default::default());
    let stats = cleaner.clean_now(&log).unwrap().expect("cleaned");
    assert_eq!(stats.filter.aborted_dropped, 2, "{stats:?}");
    let after = records(&log);
    assert!(
        !after.iter().any(|(_, _, v)| v.starts_with("aborted")),
        "{after:?}"
    );
    assert_eq!(
        markers(&log),
        vec![1, 1, 2, 2, 1],
        "within delete.retention.ms"
    );

    // Past the horizon, a later pass removes the markers whose
    // transactions kept nothing: P1's abort, P1's superseded commit, P2's
    // abort. P2's commit of "d" (its record stays) and P1's last marker
    // stay.
    env.clock.advance(120_000);
    fillers(60, 90);
    log.roll().unwrap();
    log.on_high_watermark_updated(log.log_end_offset());
    let stats = cleaner.clean_now(&log).unwrap().expect("cleaned again");
    assert_eq!(stats.filter.markers_dropped, 3, "{stats:?}");
    assert_eq!(markers(&log), vec![2, 1]);
    let after = records(&log);
    let has = |k: &str, v: &str| after.iter().any(|(_, kk, vv)| kk == k && vv == v);
    assert!(has("c", "committed-2") && !has("c", "committed-1") && has("p2", "plain"));
    assert!(has("d", "kept"));
    let hw = log.log_end_offset();
    assert_eq!(log.last_stable_offset(hw), hw);
    mgr.shutdown().unwrap();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), cfg).unwrap();
    let hw = log.log_end_offset();
    assert_eq!(log.last_stable_offset(hw), hw, "a transaction reopened");
    assert_eq!(records(&log), after);
}

/// The network thread's marker append: it writes what the blocking one
/// writes, and leaves whatever could block (a roll, a new leader epoch's
/// cache write) to it, writing nothing.
#[test]
fn a_marker_that_would_roll_or_start_an_epoch_is_left_to_the_blocking_append() {
    let env = Env::new();
    let mgr = env.manager();
    let log = mgr.get_or_create_log(&tp(), config()).unwrap();
    let try_end = |log: &Log, pid, commit: bool, epoch| {
        log.try_append_txn_marker(
            marker(pid, E0, 0, ControlRecordType::from_commit(commit), 1),
            epoch,
        )
    };
    let first = produce(&log, P1, 2, true);
    let info = try_end(&log, P1, false, LE)
        .unwrap()
        .expect("appended inline");
    assert_eq!(info.first_offset, Offset(2));
    assert_eq!(
        index_entries(&log),
        vec![AbortedTxn {
            producer_id: P1,
            first_offset: first,
            last_offset: Offset(2),
            last_stable_offset: Offset(3),
        }]
    );
    // A newer leader epoch would write the epoch cache (an fsync).
    produce(&log, P2, 1, true);
    let end = log.log_end_offset();
    assert!(try_end(&log, P2, true, LeaderEpoch(1)).unwrap().is_none());
    assert_eq!(log.log_end_offset(), end, "nothing written");
    // Fill the active segment (1 KiB) until a marker (~80 bytes) would
    // roll it.
    while log.segments().last().unwrap().size() <= 950 {
        produce(&log, ProducerId(9), 1, false);
    }
    let end = log.log_end_offset();
    let segments = log.segments().len();
    assert!(try_end(&log, P2, true, LE).unwrap().is_none());
    assert_eq!(
        (log.log_end_offset(), log.segments().len()),
        (end, segments),
        "nothing written, no roll"
    );
    // The blocking append rolls and writes it; the transaction is over.
    let commit = log
        .append_txn_marker(marker(P2, E0, 0, ControlRecordType::Commit, 1), LE)
        .unwrap();
    assert_eq!(commit.first_offset, end);
    assert_eq!(log.segments().len(), segments + 1);
    log.on_high_watermark_updated(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), None);
}
