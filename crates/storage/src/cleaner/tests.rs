//! Cleaner behaviour over the simulated file system: what a consumer reading
//! from the start sees after compaction, crash safety of the swap, and a
//! property test against a model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use sluice_record::{
    BatchBuilder, BatchHeader, BatchReader, Batches, CompressionType, LeaderEpoch, Offset,
    ProducerEpoch, ProducerId, Timestamp,
};

use super::*;
use crate::config::{CleanupPolicy, CompactionConfig, LogConfig, LogManagerConfig};
use crate::fs::{Clock, ManualClock};
use crate::sim::SimFs;

const NOW: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

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

fn tp() -> TopicPartition {
    TopicPartition::new("changelog", 0)
}

fn compacted(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_index_bytes: 4096,
        index_interval_bytes: 128,
        file_delete_delay_ms: 0,
        compaction: CompactionConfig {
            cleanup_policy: CleanupPolicy::Compact,
            min_cleanable_dirty_ratio: 0.0,
            delete_retention_ms: DAY,
            ..Default::default()
        },
        ..LogConfig::default()
    }
}

/// One batch of (key, value) records.
fn batch(codec: CompressionType, recs: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    for (k, v) in recs {
        b.append(Timestamp(ts), Some(k.as_bytes()), v.map(str::as_bytes), &[])
            .unwrap();
    }
    b.build().unwrap()
}

type Rec = (Offset, Vec<u8>, Option<Vec<u8>>);

/// Every record from the log start to the end, as a consumer sees them.
fn read_all(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        if bytes.is_empty() {
            // Nothing at `at` in this segment: move to the next one.
            let next = log
                .segment_base_offsets()
                .into_iter()
                .find(|b| *b > at)
                .unwrap_or(log.log_end_offset());
            at = next;
            continue;
        }
        for b in Batches::stored(&bytes) {
            let (_, h) = b.unwrap();
            at = h.next_offset();
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::validate_stored(&bytes[pos..]).unwrap();
            let r = BatchReader::new(&bytes[pos..pos + h.size()], 1 << 24).unwrap();
            for rec in r.records() {
                let rec = rec.unwrap();
                if rec.offset >= log.log_start_offset() {
                    out.push((
                        rec.offset,
                        rec.key.unwrap().to_vec(),
                        rec.value.map(<[u8]>::to_vec),
                    ));
                }
            }
            pos += h.size();
        }
    }
    out
}

fn latest(recs: &[Rec]) -> BTreeMap<Vec<u8>, (Offset, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for (o, k, v) in recs {
        m.insert(k.clone(), (*o, v.clone()));
    }
    m
}

fn append(log: &Log, mut b: Vec<u8>) {
    log.append_as_leader(&mut b, LeaderEpoch(3)).unwrap();
}

#[test]
fn keyless_records_are_rejected_on_compacted_topics() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(1 << 20)).unwrap();
    let mut b = crate::testutil::build_batch(&[b"v"], NOW);
    let err = log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap_err();
    match &err {
        StorageError::RejectedRecords(r) => assert_eq!(
            r,
            &[crate::RejectedRecord {
                batch_index: 0,
                reason: crate::RecordRejection::MissingKey
            }]
        ),
        other => panic!("expected RejectedRecords, got {other}"),
    }
    assert_eq!(log.log_end_offset(), Offset(0));
    // Keyless records are fine under cleanup.policy=delete.
    let mut cfg = compacted(1 << 20);
    cfg.compaction.cleanup_policy = CleanupPolicy::Delete;
    log.update_config(cfg);
    log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
}

#[test]
fn compaction_keeps_latest_per_key_with_offsets_codecs_and_producer_fields() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(400)).unwrap();
    let codecs = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];
    for round in 0..6 {
        for (i, c) in codecs.iter().enumerate() {
            let v0 = format!("{round}-{i}-a");
            let v1 = format!("{round}-{i}-b");
            let u = format!("u{i}");
            let recs = [
                ("k1", Some(v0.as_str())),
                ("k2", Some(v1.as_str())),
                (u.as_str(), Some("same")),
            ];
            let mut b = BatchBuilder::new(*c).producer(
                ProducerId(7),
                ProducerEpoch(2),
                (round * 5 + i as i32) * 3,
            );
            for (k, v) in recs {
                b.append(
                    Timestamp(NOW),
                    Some(k.as_bytes()),
                    v.map(str::as_bytes),
                    &[],
                )
                .unwrap();
            }
            append(&log, b.build().unwrap());
        }
    }
    // A control batch (transaction marker) in the middle.
    let mut ctl = BatchBuilder::new(CompressionType::None).control(true);
    ctl.append(
        Timestamp(NOW),
        Some(&[0, 0, 0, 1]),
        Some(&[0, 0, 0, 0, 0, 0]),
        &[],
    )
    .unwrap();
    // Only a coordinator writes control batches (a client may not).
    log.append_as_leader_from(
        &mut ctl.build().unwrap(),
        LeaderEpoch(3),
        crate::log::AppendOrigin::Coordinator,
        crate::producer_state::Verification::NotRequired,
    )
    .unwrap();
    append(
        &log,
        batch(CompressionType::Zstd, &[("k4", Some("last"))], NOW),
    );
    log.roll().unwrap();
    let before = read_all(&log);
    let leo = log.log_end_offset();
    let segs_before = log.num_segments();
    assert!(segs_before > 3);

    // Segments rolled small (by time, say) are merged up to segment.bytes.
    log.update_config(compacted(4000));
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let stats = cleaner
        .clean_now(&log)
        .unwrap()
        .expect("something to clean");
    assert_eq!(stats.dirty_end, leo);
    assert!(
        log.num_segments() < segs_before,
        "small cleaned segments are grouped"
    );
    assert_eq!(log.log_end_offset(), leo);

    let after = read_all(&log);
    let want = latest(
        &before
            .iter()
            .filter(|r| r.1 != [0, 0, 0, 1])
            .cloned()
            .collect::<Vec<_>>(),
    );
    let got: Vec<Rec> = after
        .iter()
        .filter(|r| r.1 != [0, 0, 0, 1])
        .cloned()
        .collect();
    // Exactly one record per key: the latest, at its original offset.
    assert_eq!(got.len(), want.len());
    for (o, k, v) in &got {
        assert_eq!(want[k], (*o, v.clone()));
    }
    // Offsets increase.
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    // The control record survived.
    assert!(after.iter().any(|r| r.1 == [0, 0, 0, 1]));

    // Batch metadata: codec, producer fields, leader epoch survive rewriting.
    let mut seen_codecs = std::collections::HashSet::new();
    for seg in log.segments() {
        swap::for_each_batch(&*log.fs(), &seg.log_path(), |_, b| {
            let h = BatchHeader::validate_stored(b).unwrap();
            if !h.is_control() && h.base_offset < Offset(90) {
                assert_eq!(h.producer_id, ProducerId(7));
                assert_eq!(h.producer_epoch, ProducerEpoch(2));
                // Base sequence of a batch starting at offset o is 3 * (o/3).
                assert_eq!(i64::from(h.base_sequence), h.base_offset.0);
                seen_codecs.insert(h.compression());
            }
            assert_eq!(h.partition_leader_epoch, LeaderEpoch(3));
            Ok(true)
        })
        .unwrap();
    }
    assert!(seen_codecs.len() >= 4, "{seen_codecs:?}");

    // A restart (clean) and an unclean reload both see the compacted log.
    drop(log);
    m.shutdown().unwrap();
    drop(m);
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(4000)).unwrap();
    assert_eq!(read_all(&log), after);
    assert_eq!(log.log_end_offset(), leo);
}

#[test]
fn the_last_batch_of_each_producer_survives_empty() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(1 << 20)).unwrap();
    for seq in 0..3 {
        let mut b = BatchBuilder::new(CompressionType::Gzip).producer(
            ProducerId(9),
            ProducerEpoch(1),
            seq * 2,
        );
        b.append(Timestamp(NOW), Some(b"a"), Some(b"x"), &[])
            .unwrap();
        b.append(Timestamp(NOW), Some(b"b"), Some(b"x"), &[])
            .unwrap();
        append(&log, b.build().unwrap());
    }
    // A plain producer overwrites both keys.
    append(
        &log,
        batch(
            CompressionType::None,
            &[("a", Some("y")), ("b", Some("y"))],
            NOW,
        ),
    );
    append(&log, batch(CompressionType::None, &[("c", Some("z"))], NOW));
    log.roll().unwrap();
    LogCleaner::new(CleanerConfig::default())
        .clean_now(&log)
        .unwrap()
        .unwrap();
    let mut headers = Vec::new();
    for seg in log.segments() {
        swap::for_each_batch(&*log.fs(), &seg.log_path(), |_, b| {
            headers.push(BatchHeader::validate_stored(b).unwrap());
            Ok(true)
        })
        .unwrap();
    }
    let producer: Vec<_> = headers
        .iter()
        .filter(|h| h.producer_id == ProducerId(9))
        .collect();
    assert_eq!(producer.len(), 1, "{headers:?}");
    let h = producer[0];
    assert_eq!(
        (
            h.base_offset,
            h.last_offset(),
            h.base_sequence,
            h.record_count
        ),
        (Offset(4), Offset(5), 4, 0)
    );
    assert_eq!(h.producer_epoch, ProducerEpoch(1));
    let keys: Vec<_> = read_all(&log).into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        keys,
        vec![
            (Offset(6), b"a".to_vec()),
            (Offset(7), b"b".to_vec()),
            (Offset(8), b"c".to_vec())
        ]
    );
}

#[test]
fn a_full_offset_map_cleans_up_to_what_it_covers() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(300)).unwrap();
    for i in 0..40 {
        let k = format!("key-{}", i % 20);
        let v = format!("v{i}");
        append(&log, batch(CompressionType::None, &[(&k, Some(&v))], NOW));
    }
    log.roll().unwrap();
    let before = read_all(&log);
    // Room for about 5 keys.
    let cleaner = LogCleaner::new(CleanerConfig {
        dedupe_buffer_size: 5 * (6 + core::ENTRY_OVERHEAD),
        ..Default::default()
    });
    let s1 = cleaner.clean_now(&log).unwrap().unwrap();
    assert!(
        s1.dirty_end > Offset(0) && s1.dirty_end < Offset(40),
        "{s1:?}"
    );
    assert!(s1.map_keys <= 5);
    // Nothing beyond the covered offset was touched.
    let mid = read_all(&log);
    let tail_before: Vec<_> = before.iter().filter(|r| r.0 >= s1.dirty_end).collect();
    let tail_after: Vec<_> = mid.iter().filter(|r| r.0 >= s1.dirty_end).collect();
    assert_eq!(tail_before, tail_after);
    // Further passes finish the job.
    let mut passes = 1;
    while cleaner.clean_now(&log).unwrap().is_some() {
        passes += 1;
        assert!(passes < 50);
    }
    let after = read_all(&log);
    let want = latest(&before);
    assert_eq!(after.len(), 20);
    for (o, k, v) in &after {
        assert_eq!(want[k], (*o, v.clone()));
    }
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let env = Env::new();
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(200)).unwrap();
    append(
        &log,
        batch(
            CompressionType::Lz4,
            &[("a", Some("1")), ("b", Some("1"))],
            NOW,
        ),
    );
    append(&log, batch(CompressionType::Lz4, &[("a", None)], NOW));
    append(&log, batch(CompressionType::None, &[("c", Some("1"))], NOW));
    log.roll().unwrap();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    cleaner.clean_now(&log).unwrap();
    let keys: Vec<_> = read_all(&log).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        keys,
        vec![
            (b"b".to_vec(), Some(b"1".to_vec())),
            (b"a".to_vec(), None),
            (b"c".to_vec(), Some(b"1".to_vec()))
        ]
    );
    // After delete.retention.ms the tombstone goes on the next pass.
    env.clock.advance(DAY + 1);
    append(
        &log,
        batch(CompressionType::None, &[("c", Some("2"))], NOW + DAY + 1),
    );
    log.roll().unwrap();
    cleaner.clean_now(&log).unwrap().unwrap();
    let keys: Vec<_> = read_all(&log).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        keys,
        vec![
            (b"b".to_vec(), Some(b"1".to_vec())),
            (b"c".to_vec(), Some(b"2".to_vec()))
        ]
    );
}

#[test]
fn min_compaction_lag_and_dirty_ratio_choose_what_is_cleaned() {
    let env = Env::new();
    let m = env.manager();
    let mut cfg = compacted(200);
    cfg.compaction.min_compaction_lag_ms = 60_000;
    cfg.compaction.min_cleanable_dirty_ratio = 0.5;
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    let other = m
        .get_or_create_log(&TopicPartition::new("plain", 0), LogConfig::default())
        .unwrap();
    for i in 0..10 {
        append(
            &log,
            batch(CompressionType::None, &[("k", Some(&format!("{i}")))], NOW),
        );
    }
    log.roll().unwrap();
    let mut b = crate::testutil::build_batch(&[b"x"], NOW);
    other.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    // Too recent for min.compaction.lag.ms.
    assert!(m.run_cleaner_once(&cleaner).unwrap().is_none());
    env.clock.advance(60_001);
    let (which, stats) = m.run_cleaner_once(&cleaner).unwrap().unwrap();
    assert_eq!(which, tp());
    assert_eq!(stats.filter.records_kept, 1);
    // Clean now: the dirty ratio is 0 until new data arrives.
    assert!(m.run_cleaner_once(&cleaner).unwrap().is_none());
    // The checkpoint survives a restart.
    drop((log, other));
    m.shutdown().unwrap();
    drop(m);
    let m = env.manager();
    let log = m.get_or_create_log(&tp(), compacted(200)).unwrap();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    assert_eq!(cleaner.first_dirty_offset(&log).unwrap(), Offset(10));
}

#[test]
fn readers_during_cleaning_see_valid_records_and_no_errors() {
    let env = Env::new();
    let m = env.manager();
    // Old segments' files stay for file.delete.delay.ms, and (as on POSIX)
    // a fetch that already holds a slice of a replaced segment can finish.
    let mut cfg = compacted(300);
    cfg.file_delete_delay_ms = 60_000;
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    let written = parking_lot::Mutex::new(std::collections::HashSet::new());
    let put = |i: usize| {
        let k = format!("k{}", i % 7);
        let v = format!("v{i}");
        let off = log.log_end_offset();
        let b = batch(CompressionType::Snappy, &[(&k, Some(&v))], NOW);
        // Recorded before the append so a reader never sees it unrecorded.
        written
            .lock()
            .insert((off, k.into_bytes(), Some(v.into_bytes())));
        append(&log, b);
    };
    for i in 0..60 {
        put(i);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let got = read_all(&log);
                    let w = written.lock();
                    for r in &got {
                        assert!(w.contains(r), "{r:?} was never written");
                    }
                    reads += 1;
                }
            });
        }
        let cleaner = LogCleaner::new(CleanerConfig::default());
        for round in 0..30 {
            for i in 0..5 {
                put(60 + round * 5 + i);
            }
            log.roll().unwrap();
            cleaner.clean_now(&log).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let got = latest(&read_all(&log));
    assert_eq!(got.len(), 7);
}

#[test]
fn max_compaction_lag_forces_cleaning_below_the_dirty_ratio() {
    let env = Env::new();
    let m = env.manager();
    let mut cfg = compacted(200);
    cfg.compaction.min_cleanable_dirty_ratio = 0.99;
    cfg.compaction.max_compaction_lag_ms = 10_000;
    let log = m.get_or_create_log(&tp(), cfg).unwrap();
    for i in 0..20 {
        append(
            &log,
            batch(
                CompressionType::None,
                &[(&format!("k{}", i % 10), Some("v"))],
                NOW,
            ),
        );
    }
    log.roll().unwrap();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    cleaner.clean_now(&log).unwrap().unwrap();
    // A little new dirt: far below the ratio.
    append(
        &log,
        batch(CompressionType::None, &[("k1", Some("new"))], NOW),
    );
    log.roll().unwrap();
    assert!(m.run_cleaner_once(&cleaner).unwrap().is_none());
    env.clock.advance(10_001);
    let (_, stats) = m
        .run_cleaner_once(&cleaner)
        .unwrap()
        .expect("overdue log cleaned");
    assert_eq!(stats.dirty_end, log.log_end_offset());
    let k1: Vec<_> = read_all(&log)
        .into_iter()
        .filter(|r| r.1 == b"k1")
        .collect();
    assert_eq!(
        k1,
        vec![(Offset(20), b"k1".to_vec(), Some(b"new".to_vec()))]
    );
}

#[test]
fn retention_applies_only_when_the_policy_includes_delete() {
    for (policy, deleted) in [
        (CleanupPolicy::Compact, false),
        (CleanupPolicy::CompactDelete, true),
    ] {
        let env = Env::new();
        let m = env.manager();
        let mut cfg = compacted(200);
        cfg.retention_ms = 1000;
        cfg.compaction.cleanup_policy = policy;
        let log = m.get_or_create_log(&tp(), cfg).unwrap();
        for i in 0..10 {
            append(
                &log,
                batch(CompressionType::None, &[(&format!("k{i}"), Some("v"))], NOW),
            );
        }
        log.roll().unwrap();
        env.clock.advance(5000);
        let n = m.enforce_retention().unwrap();
        assert_eq!(n > 0, deleted, "{policy}");
        assert_eq!(log.log_start_offset() > Offset(0), deleted, "{policy}");
    }
}

/// Crash after every step of the swap: recovery yields the old or the new
/// state, never a mix, never a loss.
#[test]
fn crash_at_every_swap_step_recovers_old_or_new_state() {
    let steps = [
        SwapStep::CleanedWritten,
        SwapStep::SwapRenamed,
        SwapStep::OldRenamed(0),
        SwapStep::OldRenamed(1),
        SwapStep::OldRenamed(2),
        SwapStep::Installed,
    ];
    for (n, step) in steps.iter().enumerate() {
        for seed in 0..4u64 {
            let env = Env::new();
            let m = env.manager();
            let log = m.get_or_create_log(&tp(), compacted(250)).unwrap();
            for i in 0..24 {
                let k = format!("k{}", i % 4);
                let v = format!("value-{i}");
                append(&log, batch(CompressionType::Snappy, &[(&k, Some(&v))], NOW));
            }
            log.roll().unwrap();
            log.flush().unwrap();
            m.write_checkpoints().unwrap();
            log.update_config(compacted(4000));
            let old = read_all(&log);
            let leo = log.log_end_offset();
            let want_new = latest(&old);
            assert!(log.num_segments() >= 4, "need a group of 3+ segments");
            let mut hit = false;
            let r = clean_log_with(
                &log,
                Offset::ZERO,
                &CleanerConfig::default(),
                &mut Throttle::new(f64::MAX),
                &mut |s| {
                    if s == *step {
                        hit = true;
                    }
                    s == *step
                },
            )
            .unwrap();
            assert!(r.is_none() && hit, "step {step:?} not reached");
            drop(log);
            drop(m);
            env.fs.crash(seed * 31 + n as u64);
            let m = env.manager();
            let log = m.get_or_create_log(&tp(), compacted(4000)).unwrap();
            let got = read_all(&log);
            assert_eq!(log.log_end_offset(), leo, "step {step:?}");
            // Each group swap is atomic; the pass may have swapped some
            // groups and not others. What a reader sees is always a valid
            // compaction of the old log: records at their original offsets
            // with their original values, and every key's latest value.
            for r in &got {
                assert!(
                    old.contains(r),
                    "step {step:?} seed {seed}: {r:?} never written"
                );
            }
            for (k, (o, v)) in &want_new {
                assert!(
                    got.contains(&(*o, k.clone(), v.clone())),
                    "step {step:?} seed {seed}: latest of {k:?} lost"
                );
            }
            if n == 0 {
                // Crash before the .swap rename: the old state.
                assert_eq!(got, old, "step {step:?}");
            } else {
                // From the .swap rename on, the first group is replaced.
                assert!(got.len() < old.len(), "step {step:?}: swap not completed");
            }
            let names: Vec<String> = env
                .fs
                .list_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            assert!(
                !names
                    .iter()
                    .any(|n| n.ends_with(".swap") || n.ends_with(".cleaned")),
                "{names:?}"
            );
            // The log still works and can be cleaned again.
            append(
                &log,
                batch(CompressionType::None, &[("k0", Some("again"))], NOW),
            );
            log.roll().unwrap();
            LogCleaner::new(CleanerConfig::default())
                .clean_now(&log)
                .unwrap();
            let fin = latest(&read_all(&log));
            assert_eq!(fin[&b"k0".to_vec()].1, Some(b"again".to_vec()));
            assert_eq!(fin.len(), 4);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Advance(i64),
    Roll,
    Clean,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..12).prop_map(Op::Delete),
        1 => (0i64..DAY).prop_map(Op::Advance),
        1 => Just(Op::Roll),
        2 => Just(Op::Clean),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random keyed writes and tombstones, compaction at random points: a
    /// reader from the start sees exactly the model's latest value per key
    /// (tombstones within delete.retention.ms included), in offset order,
    /// at their original offsets.
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..120), budget_keys in 2usize..20, codec in 0i16..5) {
        let codec = CompressionType::from_id(codec).unwrap();
        let env = Env::new();
        let m = env.manager();
        let log = m.get_or_create_log(&tp(), compacted(300)).unwrap();
        let cleaner = LogCleaner::new(CleanerConfig {
            dedupe_buffer_size: budget_keys * (3 + core::ENTRY_OVERHEAD),
            ..Default::default()
        });
        // Model: every write (offset, key, value, time); the log may drop a
        // superseded record, and a tombstone older than the retention.
        type Write = (Offset, Vec<u8>, Option<Vec<u8>>, i64);
        let mut writes: Vec<Write> = Vec::new();
        for op in ops {
            let now = env.clock.now_ms();
            match op {
                Op::Put(k, v) => {
                    let key = format!("k{k}");
                    let val = format!("v{v}");
                    let off = log.log_end_offset();
                    append(&log, batch(codec, &[(&key, Some(&val))], now));
                    writes.push((off, key.into_bytes(), Some(val.into_bytes()), now));
                }
                Op::Delete(k) => {
                    let key = format!("k{k}");
                    let off = log.log_end_offset();
                    append(&log, batch(codec, &[(&key, None)], now));
                    writes.push((off, key.into_bytes(), None, now));
                }
                Op::Advance(ms) => env.clock.advance(ms),
                Op::Roll => log.roll().unwrap(),
                Op::Clean => { cleaner.clean_now(&log).unwrap(); }
            }
        }
        while cleaner.clean_now(&log).unwrap().is_some() {}
        let got = read_all(&log);
        let now = env.clock.now_ms();
        let last = latest(&writes.iter().map(|w| (w.0, w.1.clone(), w.2.clone())).collect::<Vec<_>>());
        // Offsets strictly increase and are the ones written.
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        let active_base = *log.segment_base_offsets().last().unwrap();
        let last_below = latest(&writes.iter().filter(|w| w.0 < active_base).map(|w| (w.0, w.1.clone(), w.2.clone())).collect::<Vec<_>>());
        for (o, k, v) in &got {
            let w = &writes[o.0 as usize];
            prop_assert_eq!((&w.1, &w.2), (k, v));
            if *o < active_base {
                // Cleaned part: only the latest record of a key remains.
                prop_assert_eq!(last_below[k].0, *o);
            }
        }
        // Every key's latest value is there, unless it is a tombstone past
        // its retention.
        for (k, (o, v)) in &last {
            let t = writes[o.0 as usize].3;
            let present = got.iter().any(|r| r.0 == *o);
            if v.is_some() || now.saturating_sub(t) <= DAY {
                prop_assert!(present, "key {:?} latest at {:?} missing", k, o);
            }
        }
        prop_assert_eq!(log.log_end_offset(), Offset(writes.len() as i64));
    }
}

/// A swap interrupted at every step, by a power cut: the log comes back
/// with the old segments or the cleaned one, each with the transaction
/// index that belongs to it (entries for every ABORT marker, once).
#[test]
fn an_interrupted_swap_keeps_the_transaction_index() {
    use crate::log::AppendOrigin;
    use sluice_record::{build_end_txn_marker_batch, ControlRecordType, EndTransactionMarker};
    let steps = [
        SwapStep::CleanedWritten,
        SwapStep::SwapRenamed,
        SwapStep::OldRenamed(0),
        SwapStep::OldRenamed(1),
        SwapStep::Installed,
    ];
    let pid = ProducerId(3);
    for (n, step) in steps.iter().enumerate() {
        let env = Env::new();
        let m = env.manager();
        let log = m.get_or_create_log(&tp(), compacted(250)).unwrap();
        for r in 0..8i32 {
            let mut b = BatchBuilder::new(CompressionType::None)
                .producer(pid, ProducerEpoch(0), r)
                .transactional(true);
            b.append(
                Timestamp(NOW),
                Some(b"k"),
                Some(format!("v{r}").as_bytes()),
                &[],
            )
            .unwrap();
            append(&log, b.build().unwrap());
            let marker =
                EndTransactionMarker::new(ControlRecordType::from_commit(r % 2 == 0), 0).unwrap();
            let mut c =
                build_end_txn_marker_batch(pid, ProducerEpoch(0), marker, Timestamp(NOW)).unwrap();
            log.append_as_leader_from(
                &mut c,
                LeaderEpoch(3),
                AppendOrigin::Coordinator,
                crate::producer_state::Verification::NotRequired,
            )
            .unwrap();
            append(&log, batch(CompressionType::None, &[("f", Some("x"))], NOW));
        }
        log.roll().unwrap();
        log.on_high_watermark_updated(log.log_end_offset());
        log.flush().unwrap();
        m.write_checkpoints().unwrap();
        log.update_config(compacted(4000));
        let index = |log: &Log| -> Vec<crate::txn_index::AbortedTxn> {
            log.segments()
                .iter()
                .flat_map(|s| s.txn_index().entries().unwrap())
                .collect()
        };
        let expected = index(&log);
        assert_eq!(expected.len(), 4);
        assert!(log.num_segments() >= 4, "need a group of 3+ segments");
        let mut hit = false;
        clean_log_with(
            &log,
            Offset::ZERO,
            &CleanerConfig::default(),
            &mut Throttle::new(f64::MAX),
            &mut |s| {
                hit |= s == *step;
                s == *step
            },
        )
        .unwrap();
        assert!(hit, "step {step:?} not reached");
        drop(log);
        drop(m);
        env.fs.crash(n as u64);
        let m = env.manager();
        let log = m.get_or_create_log(&tp(), compacted(4000)).unwrap();
        assert_eq!(index(&log), expected, "step {step:?}");
        assert!(
            env.fs
                .list_files()
                .iter()
                .all(|p| !p.to_string_lossy().ends_with(".swap")),
            "step {step:?}"
        );
    }
}
