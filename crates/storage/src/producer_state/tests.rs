//! The sequence rules and the snapshot format (the transaction rules are
//! in `txn_tests.rs`).

use super::*;
use proptest::prelude::*;

const PID: ProducerId = ProducerId(7);

fn meta(first_seq: i32, n: i32, first_offset: i64) -> BatchMetadata {
    BatchMetadata {
        first_seq,
        last_seq: increment_sequence(first_seq, n - 1),
        first_offset: Offset(first_offset),
        last_offset: Offset(first_offset + n as i64 - 1),
        timestamp: Timestamp(1000),
    }
}

fn entry_with(epoch: i16, batches: &[BatchMetadata]) -> ProducerStateEntry {
    let mut e = ProducerStateEntry::new(PID, ProducerEpoch(epoch));
    for b in batches {
        e.add_batch(ProducerEpoch(epoch), *b);
    }
    e
}

#[test]
fn in_sequence_append_and_gap() {
    let e = entry_with(0, &[meta(0, 3, 0)]);
    assert_eq!(
        check_batch(Some(&e), PID, ProducerEpoch(0), 3, 4),
        Ok(SequenceCheck::Append)
    );
    assert_eq!(
        check_batch(Some(&e), PID, ProducerEpoch(0), 5, 6),
        Err(SequenceError::OutOfOrderSequence {
            producer_id: PID,
            epoch: 0,
            first_seq: 5,
            expected: 3
        })
    );
}

#[test]
fn retry_of_each_of_the_last_five_is_a_duplicate_and_older_is_not() {
    let batches: Vec<_> = (0..6).map(|i| meta(i * 2, 2, 100 + i as i64 * 2)).collect();
    let e = entry_with(3, &batches);
    assert_eq!(e.batches.len(), NUM_BATCHES_TO_RETAIN);
    for b in &batches[1..] {
        assert_eq!(
            check_batch(Some(&e), PID, ProducerEpoch(3), b.first_seq, b.last_seq),
            Ok(SequenceCheck::Duplicate(*b))
        );
    }
    // The sixth-newest is forgotten: out of order.
    assert!(matches!(
        check_batch(Some(&e), PID, ProducerEpoch(3), 0, 1),
        Err(SequenceError::OutOfOrderSequence { .. })
    ));
    // Same first sequence, different length: not a duplicate.
    assert!(matches!(
        check_batch(Some(&e), PID, ProducerEpoch(3), 2, 4),
        Err(SequenceError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn epochs() {
    let e = entry_with(3, &[meta(0, 1, 0)]);
    assert_eq!(
        check_batch(Some(&e), PID, ProducerEpoch(2), 1, 1),
        Err(SequenceError::InvalidProducerEpoch {
            producer_id: PID,
            epoch: 2,
            current: 3
        })
    );
    // Even an exact retry under an old epoch is refused.
    assert!(matches!(
        check_batch(Some(&e), PID, ProducerEpoch(2), 0, 0),
        Err(SequenceError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(
        check_batch(Some(&e), PID, ProducerEpoch(4), 0, 9),
        Ok(SequenceCheck::Append)
    );
    assert!(matches!(
        check_batch(Some(&e), PID, ProducerEpoch(4), 1, 9),
        Err(SequenceError::OutOfOrderSequence { expected: 0, .. })
    ));
    // A bump forgets the old epoch's batches.
    let mut e2 = e.clone();
    e2.add_batch(ProducerEpoch(4), meta(0, 1, 10));
    assert_eq!(e2.batches.len(), 1);
    assert_eq!(e2.producer_epoch, ProducerEpoch(4));
}

#[test]
fn unknown_producer_accepts_any_sequence() {
    assert_eq!(
        check_batch(None, PID, ProducerEpoch(0), 42, 50),
        Ok(SequenceCheck::Append)
    );
}

#[test]
fn sequence_wraps_at_i32_max() {
    let e = entry_with(0, &[meta(i32::MAX - 1, 2, 0)]);
    assert_eq!(e.last_seq(), i32::MAX);
    assert_eq!(
        check_batch(Some(&e), PID, ProducerEpoch(0), 0, 3),
        Ok(SequenceCheck::Append)
    );
    let wrapped = meta(i32::MAX, 3, 5);
    assert_eq!(wrapped.last_seq, 1);
    let e = entry_with(0, &[wrapped]);
    assert_eq!(
        check_batch(Some(&e), PID, ProducerEpoch(0), 2, 2),
        Ok(SequenceCheck::Append)
    );
}

#[test]
fn snapshot_names() {
    assert_eq!(
        snapshot_file_name(Offset(42)),
        "00000000000000000042.snapshot"
    );
    assert_eq!(
        parse_snapshot_file_name("00000000000000000042.snapshot"),
        Some(Offset(42))
    );
    assert_eq!(parse_snapshot_file_name("42.snapshot"), None);
    assert_eq!(parse_snapshot_file_name("00000000000000000042.log"), None);
}

#[test]
fn expiry_and_head_truncation() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    let mut b = meta(0, 1, 0);
    b.timestamp = Timestamp(1_000);
    m.update(ProducerId(1), ProducerEpoch(0), b);
    let mut b = meta(0, 1, 1);
    b.timestamp = Timestamp(5_000);
    m.update(ProducerId(2), ProducerEpoch(0), b);
    assert_eq!(m.map_end_offset(), Offset(2));
    assert!(m.memory_bytes() > 0);
    assert_eq!(m.remove_expired(6_000, 4_500), 1);
    assert!(m.last_entry(ProducerId(1)).is_none());
    m.truncate_head(Offset(2));
    assert!(m.is_empty());
}

type Expect = Result<Option<(i64, i64)>, &'static str>;
type ModelProducer = (i16, Vec<(i32, i32, i64, i64)>, i32);

/// The model: every batch ever appended per producer, with its epoch.
#[derive(Default)]
struct Model {
    /// pid -> (epoch, appended batches of this epoch (all of them), next seq)
    producers: HashMap<i64, ModelProducer>,
    next_offset: i64,
}

#[derive(Clone, Debug)]
enum Op {
    /// Next in-sequence batch of n records.
    Next { pid: i64, n: i32 },
    /// Retry of the k-th most recent batch (0 = newest).
    Retry { pid: i64, k: usize },
    /// A batch starting `skip` past the expected sequence.
    Gap { pid: i64, skip: i32 },
    /// Bump the epoch, starting at `seq`.
    Bump { pid: i64, seq: i32 },
    /// A batch with an older epoch.
    Stale { pid: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 0i64..3;
    prop_oneof![
        4 => (pid.clone(), 1i32..5).prop_map(|(pid, n)| Op::Next { pid, n }),
        3 => (pid.clone(), 0usize..8).prop_map(|(pid, k)| Op::Retry { pid, k }),
        1 => (pid.clone(), 1i32..4).prop_map(|(pid, skip)| Op::Gap { pid, skip }),
        1 => (pid.clone(), 0i32..2).prop_map(|(pid, seq)| Op::Bump { pid, seq }),
        1 => pid.prop_map(|pid| Op::Stale { pid }),
    ]
}

proptest! {
    /// The rules against a model that remembers every batch: retries of
    /// the last five batches of the current epoch are duplicates with
    /// the original offsets; everything else is checked as described
    /// in the module doc.
    #[test]
    fn rules_match_model(ops in prop::collection::vec(op(), 1..120), start_seq in prop_oneof![Just(0i32), Just(i32::MAX - 6)]) {
        let mut model = Model::default();
        let mut state = ProducerStateManager::new(Offset::ZERO);
        for op in ops {
            let pid = match op { Op::Next{pid,..} | Op::Retry{pid,..} | Op::Gap{pid,..} | Op::Bump{pid,..} | Op::Stale{pid} => pid };
            let known = model.producers.get(&pid).cloned();
            let (epoch, first, n, expect): (i16, i32, i32, Expect) = match (&op, &known) {
                (Op::Next { n, .. }, None) => (0, start_seq, *n, Ok(None)),
                (Op::Next { n, .. }, Some((e, _, next))) => (*e, *next, *n, Ok(None)),
                (Op::Retry { .. }, None) => continue,
                (Op::Retry { k, .. }, Some((e, batches, _))) => {
                    let Some(&(f, l, fo, lo)) = batches.iter().rev().nth(*k) else { continue };
                    let n = (i64::from(l) - i64::from(f)).rem_euclid(1i64 << 31) as i32 + 1;
                    if *k < NUM_BATCHES_TO_RETAIN {
                        (*e, f, n, Ok(Some((fo, lo))))
                    } else {
                        (*e, f, n, Err("ooo"))
                    }
                }
                (Op::Gap { .. }, None) => continue,
                (Op::Gap { skip, .. }, Some((e, _, next))) => (*e, increment_sequence(*next, *skip), 1, Err("ooo")),
                (Op::Bump { .. }, None) => continue,
                (Op::Bump { seq, .. }, Some((e, _, _))) => (*e + 1, *seq, 1, if *seq == 0 { Ok(None) } else { Err("ooo") }),
                (Op::Stale { .. }, None) => continue,
                (Op::Stale { .. }, Some((e, _, _))) if *e == 0 => continue,
                (Op::Stale { .. }, Some((e, _, next))) => (*e - 1, *next, 1, Err("epoch")),
            };
            let last = increment_sequence(first, n - 1);
            let got = check_batch(state.last_entry(ProducerId(pid)), ProducerId(pid), ProducerEpoch(epoch), first, last);
            match (expect, got) {
                (Ok(None), Ok(SequenceCheck::Append)) => {
                    let fo = model.next_offset;
                    let lo = fo + i64::from(n) - 1;
                    model.next_offset = lo + 1;
                    let m = model.producers.entry(pid).or_insert((epoch, Vec::new(), 0));
                    if m.0 != epoch { m.0 = epoch; m.1.clear(); }
                    m.1.push((first, last, fo, lo));
                    m.2 = increment_sequence(last, 1);
                    state.update(ProducerId(pid), ProducerEpoch(epoch), BatchMetadata {
                        first_seq: first, last_seq: last, first_offset: Offset(fo), last_offset: Offset(lo), timestamp: Timestamp(0),
                    });
                }
                (Ok(Some((fo, lo))), Ok(SequenceCheck::Duplicate(b))) => {
                    prop_assert_eq!((b.first_offset, b.last_offset), (Offset(fo), Offset(lo)));
                }
                (Err("ooo"), Err(SequenceError::OutOfOrderSequence { .. })) => {}
                (Err("epoch"), Err(SequenceError::InvalidProducerEpoch { .. })) => {}
                (e, g) => prop_assert!(false, "op {:?}: expected {:?}, got {:?}", op, e, g),
            }
        }
        // The snapshot format round-trips whatever state the run built.
        let bytes = encode_snapshot(&state);
        prop_assert_eq!(decode_snapshot(&bytes).unwrap(), state);
    }

    #[test]
    fn decode_snapshot_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        // Whatever decodes re-encodes to a snapshot of the same state (the
        // same bytes for the current version).
        crate::fuzzing::producer_snapshot(&bytes);
    }
}
