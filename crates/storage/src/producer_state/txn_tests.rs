//! The transaction rules of the producer state: which origin is checked
//! how, markers and their epochs (TV0/1 and TV2), completed transactions,
//! the first unstable offset with unreplicated completions, bounds, and
//! the snapshot's version 2.

use super::snapshot::encode_snapshot_v1;
use super::txn::Prepared;
use super::*;
use proptest::prelude::*;
use sluice_record::{
    BatchHeader, ControlBatch, ControlRecordType, EndTransactionMarker, LeaderEpoch,
};

const P1: ProducerId = ProducerId(1);
const P2: ProducerId = ProducerId(2);

fn header(
    pid: ProducerId,
    epoch: i16,
    seq: i32,
    base: i64,
    n: i32,
    attributes: i16,
) -> BatchHeader {
    BatchHeader {
        base_offset: Offset(base),
        batch_length: 100,
        partition_leader_epoch: LeaderEpoch(0),
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: n - 1,
        base_timestamp: Timestamp(1_000),
        max_timestamp: Timestamp(1_000 + base),
        producer_id: pid,
        producer_epoch: ProducerEpoch(epoch),
        base_sequence: seq,
        record_count: n,
    }
}

/// A data batch of `n` records at `base`.
fn data(pid: ProducerId, epoch: i16, seq: i32, base: i64, n: i32, txn: bool) -> ProducerBatch {
    ProducerBatch {
        header: header(pid, epoch, seq, base, n, if txn { 0x10 } else { 0 }),
        control: None,
    }
}

fn marker(
    pid: ProducerId,
    epoch: i16,
    at: i64,
    commit: bool,
    coordinator_epoch: i32,
) -> ProducerBatch {
    let m = EndTransactionMarker::new(ControlRecordType::from_commit(commit), coordinator_epoch)
        .unwrap();
    ProducerBatch {
        header: header(pid, epoch, -1, at, 1, 0x30),
        control: Some(ControlBatch::EndTxn(m)),
    }
}

/// Prepares and applies; returns the completed transactions with their
/// last stable offsets.
fn append(
    m: &mut ProducerStateManager,
    batches: &[ProducerBatch],
    origin: AppendOrigin,
    tv: Option<i16>,
) -> Result<Vec<(CompletedTxn, Offset)>, SequenceError> {
    match m.prepare_append(batches, origin, tv)? {
        Prepared::Duplicate(b) => panic!("unexpected duplicate {b:?}"),
        Prepared::Append(p) => {
            let completed = p.completed().to_vec();
            m.apply(p);
            Ok(completed)
        }
    }
}

fn coordinator_marker(
    m: &mut ProducerStateManager,
    b: ProducerBatch,
    tv: i16,
) -> Result<Vec<(CompletedTxn, Offset)>, SequenceError> {
    append(m, &[b], AppendOrigin::Coordinator, Some(tv))
}

#[test]
fn a_transactional_batch_opens_a_transaction_and_a_plain_one_inside_it_is_refused() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 0, 3, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    assert_eq!(
        m.last_entry(P1).unwrap().current_txn_first_offset,
        Some(Offset(0))
    );
    assert_eq!(m.first_unstable_offset(), Some(Offset(0)));
    // A second transactional batch continues the same transaction.
    append(
        &mut m,
        &[data(P1, 0, 3, 3, 2, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    assert_eq!(m.ongoing_txns().collect::<Vec<_>>(), vec![(Offset(0), P1)]);
    let plain = data(P1, 0, 5, 5, 1, false);
    for origin in [AppendOrigin::Client, AppendOrigin::Coordinator] {
        assert_eq!(
            m.prepare_append(&[plain], origin, None).unwrap_err(),
            SequenceError::InvalidTxnState {
                producer_id: P1,
                offset: Offset(5),
                txn_first_offset: Offset(0)
            }
        );
    }
    // Replication refuses nothing, and the transaction stays open.
    append(&mut m, &[plain], AppendOrigin::Replication, None).unwrap();
    assert_eq!(m.first_unstable_offset(), Some(Offset(0)));
}

#[test]
fn a_coordinators_batches_are_checked_for_their_epoch_only() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 2, 0, 0, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    // TxnOffsetCommit batches carry base sequence -1: fine from a coordinator.
    append(
        &mut m,
        &[data(P1, 2, -1, 1, 1, true)],
        AppendOrigin::Coordinator,
        None,
    )
    .unwrap();
    append(
        &mut m,
        &[data(P1, 2, -1, 2, 1, true)],
        AppendOrigin::Coordinator,
        None,
    )
    .unwrap();
    assert!(matches!(
        m.prepare_append(
            &[data(P1, 1, -1, 3, 1, true)],
            AppendOrigin::Coordinator,
            None
        ),
        Err(SequenceError::InvalidProducerEpoch {
            epoch: 1,
            current: 2,
            ..
        })
    ));
    // The same batch from a client breaks the sequence rules.
    assert!(matches!(
        m.prepare_append(&[data(P1, 2, 7, 3, 1, true)], AppendOrigin::Client, None),
        Err(SequenceError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn a_clients_retry_of_a_transactional_batch_is_a_duplicate() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 10, 2, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    match m.prepare_append(&[data(P1, 0, 0, 50, 2, true)], AppendOrigin::Client, None) {
        Ok(Prepared::Duplicate(b)) => assert_eq!(b.first_offset, Offset(10)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn markers_end_transactions_and_say_whether_they_aborted() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 0, 2, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    let done = coordinator_marker(&mut m, marker(P1, 0, 2, false, 5), 1).unwrap();
    assert_eq!(
        done,
        vec![(
            CompletedTxn {
                producer_id: P1,
                first_offset: Offset(0),
                last_offset: Offset(2),
                is_aborted: true
            },
            Offset(3)
        )]
    );
    let e = m.last_entry(P1).unwrap();
    assert_eq!((e.current_txn_first_offset, e.coordinator_epoch), (None, 5));
    // A marker with no transaction open ends nothing.
    assert!(coordinator_marker(&mut m, marker(P1, 0, 3, true, 5), 1)
        .unwrap()
        .is_empty());
    // Nor does one of a producer never seen.
    assert!(coordinator_marker(&mut m, marker(P2, 0, 4, true, 5), 1)
        .unwrap()
        .is_empty());
    assert_eq!(m.last_entry(P2).unwrap().coordinator_epoch, 5);
}

#[test]
fn marker_epochs_follow_the_transaction_version() {
    let open = |epoch: i16| {
        let mut m = ProducerStateManager::new(Offset::ZERO);
        append(
            &mut m,
            &[data(P1, epoch, 0, 0, 1, true)],
            AppendOrigin::Client,
            None,
        )
        .unwrap();
        m
    };
    // TV0/1: epoch >= current.
    for tv in [0, 1] {
        assert!(coordinator_marker(&mut open(3), marker(P1, 3, 1, true, 0), tv).is_ok());
        assert!(coordinator_marker(&mut open(3), marker(P1, 4, 1, true, 0), tv).is_ok());
        assert!(matches!(
            coordinator_marker(&mut open(3), marker(P1, 2, 1, true, 0), tv),
            Err(SequenceError::InvalidProducerEpoch {
                epoch: 2,
                current: 3,
                ..
            })
        ));
    }
    // TV2: strictly newer (the coordinator bumps before the marker) ...
    assert!(coordinator_marker(&mut open(3), marker(P1, 4, 1, true, 0), 2).is_ok());
    assert!(matches!(
        coordinator_marker(&mut open(3), marker(P1, 3, 1, true, 0), 2),
        Err(SequenceError::InvalidProducerEpoch {
            epoch: 3,
            current: 3,
            ..
        })
    ));
    // ... except the retry of a marker already written (KAFKA-19999):
    // same epoch, no transaction open. It is written and ends nothing.
    let mut m = open(3);
    assert_eq!(
        coordinator_marker(&mut m, marker(P1, 4, 1, false, 0), 2)
            .unwrap()
            .len(),
        1
    );
    assert!(coordinator_marker(&mut m, marker(P1, 4, 2, false, 0), 2)
        .unwrap()
        .is_empty());
    assert!(coordinator_marker(&mut m, marker(P1, 3, 3, false, 0), 2).is_err());
    // A replicated marker is never refused.
    let mut m = open(3);
    assert_eq!(
        append(
            &mut m,
            &[marker(P1, 1, 1, true, 0)],
            AppendOrigin::Replication,
            None
        )
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn a_marker_from_an_older_coordinator_is_fenced() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 0, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    coordinator_marker(&mut m, marker(P1, 0, 1, true, 7), 1).unwrap();
    append(
        &mut m,
        &[data(P1, 0, 1, 2, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    assert_eq!(
        coordinator_marker(&mut m, marker(P1, 0, 3, true, 6), 1).unwrap_err(),
        SequenceError::TransactionCoordinatorFenced {
            producer_id: P1,
            coordinator_epoch: 6,
            current: 7
        }
    );
    // The same or a newer coordinator epoch is fine; replication takes any.
    let mut r = m.clone();
    append(
        &mut r,
        &[marker(P1, 0, 3, true, 6)],
        AppendOrigin::Replication,
        None,
    )
    .unwrap();
    coordinator_marker(&mut m, marker(P1, 0, 3, true, 7), 1).unwrap();
}

#[test]
fn a_completed_transaction_stays_unstable_until_the_high_watermark_passes_its_marker() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 10, 5, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    append(
        &mut m,
        &[data(P2, 0, 0, 15, 5, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    assert_eq!(m.first_unstable_offset(), Some(Offset(10)));
    // P1 commits at 20: its transaction is complete but not replicated.
    let done = coordinator_marker(&mut m, marker(P1, 0, 20, true, 0), 1).unwrap();
    // The last stable offset at P1's marker is P2's open transaction.
    assert_eq!(done[0].1, Offset(15));
    assert_eq!(m.first_undecided_offset(), Some(Offset(15)));
    assert_eq!(m.first_unstable_offset(), Some(Offset(10)));
    assert_eq!(m.min_unreplicated_marker(), Some(Offset(20)));
    assert!(
        !m.on_high_watermark_updated(Offset(20)),
        "the marker itself is not below 20"
    );
    assert_eq!(m.first_unstable_offset(), Some(Offset(10)));
    assert!(m.on_high_watermark_updated(Offset(21)));
    assert_eq!(m.first_unstable_offset(), Some(Offset(15)));
    coordinator_marker(&mut m, marker(P2, 0, 21, false, 0), 1).unwrap();
    m.on_high_watermark_updated(Offset(22));
    assert_eq!(m.first_unstable_offset(), None);
}

#[test]
fn the_last_stable_offset_at_a_marker_ignores_transactions_started_after_it() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 0, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    // One follower append: P1's abort at 1, then (after a compaction gap)
    // P2 opens at 5.
    let done = append(
        &mut m,
        &[marker(P1, 0, 1, false, 0), data(P2, 0, 0, 5, 1, true)],
        AppendOrigin::Replication,
        None,
    )
    .unwrap();
    assert_eq!(done[0].1, Offset(2), "marker + 1, not P2's later start");
    // And one whose other transaction started before it, in the same append.
    let done = append(
        &mut m,
        &[data(P1, 0, 1, 6, 1, true), marker(P1, 0, 7, false, 0)],
        AppendOrigin::Replication,
        None,
    )
    .unwrap();
    assert_eq!(done[0].1, Offset(5));
    // Both open; one append ends P2's, then P1's: at P1's marker nothing
    // else is open.
    append(
        &mut m,
        &[data(P1, 0, 2, 8, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    let done = append(
        &mut m,
        &[marker(P2, 0, 9, true, 0), marker(P1, 0, 10, false, 0)],
        AppendOrigin::Replication,
        None,
    )
    .unwrap();
    assert_eq!((done[0].1, done[1].1), (Offset(8), Offset(11)));
}

#[test]
fn unreplicated_completions_are_bounded_and_merge_conservatively() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    let n = MAX_UNREPLICATED_TXNS as i64 + 10;
    for i in 0..n {
        let pid = ProducerId(100 + i);
        append(
            &mut m,
            &[data(pid, 0, 0, 2 * i, 1, true)],
            AppendOrigin::Client,
            None,
        )
        .unwrap();
        coordinator_marker(&mut m, marker(pid, 0, 2 * i + 1, true, 0), 1).unwrap();
    }
    assert_eq!(m.unreplicated_txns().count(), MAX_UNREPLICATED_TXNS);
    // Every high watermark: the first unstable offset is never above the
    // true one (the first transaction whose marker is at or above it).
    for hw in (0..2 * n + 2).step_by(7) {
        let mut at = m.clone();
        at.on_high_watermark_updated(Offset(hw));
        let truth = (0..n).find(|i| 2 * i + 1 >= hw).map(|i| Offset(2 * i));
        match (at.first_unstable_offset(), truth) {
            (Some(got), Some(t)) => assert!(got <= t, "hw {hw}: {got:?} > {t:?}"),
            (None, None) | (Some(_), None) => {}
            (None, Some(t)) => panic!("hw {hw}: {t:?} unstable but nothing reported"),
        }
    }
    m.on_high_watermark_updated(Offset(2 * n));
    assert_eq!(m.first_unstable_offset(), None);
}

#[test]
fn producers_with_an_open_transaction_do_not_expire_and_leave_with_their_data() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 0, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    append(
        &mut m,
        &[data(P2, 0, 0, 1, 1, false)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    assert_eq!(m.remove_expired(1_000_000, 10), 1);
    assert!(m.last_entry(P1).is_some());
    // Retention took P1's data: its state and open transaction go.
    m.truncate_head(Offset(5));
    assert!(m.is_empty());
    assert_eq!(m.first_unstable_offset(), None);
}

#[test]
fn snapshot_version_2_keeps_transactions_and_version_1_still_reads() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 0, 2, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    coordinator_marker(&mut m, marker(P1, 0, 2, false, 9), 1).unwrap();
    append(
        &mut m,
        &[data(P1, 0, 2, 3, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    append(
        &mut m,
        &[data(P2, 4, 0, 4, 1, false)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    m.set_map_end_offset(Offset(5));
    let bytes = encode_snapshot(&m);
    assert_eq!(&bytes[4..6], &[0, 2]);
    let back = decode_snapshot(&bytes).unwrap();
    let e = back.last_entry(P1).unwrap();
    assert_eq!(
        (e.current_txn_first_offset, e.coordinator_epoch),
        (Some(Offset(3)), 9)
    );
    assert_eq!(
        back.ongoing_txns().collect::<Vec<_>>(),
        vec![(Offset(3), P1)]
    );
    // Like Kafka's, the snapshot holds no unreplicated completions.
    let mut expected = m.clone();
    expected.on_high_watermark_updated(Offset(i64::MAX));
    assert_eq!(back, expected);

    let v1 = encode_snapshot_v1(&m);
    assert_eq!(&v1[4..6], &[0, 1]);
    let old = decode_snapshot(&v1).unwrap();
    let e = old.last_entry(P1).unwrap();
    assert_eq!(
        (e.current_txn_first_offset, e.coordinator_epoch),
        (None, -1)
    );
    assert_eq!(e.batches, m.last_entry(P1).unwrap().batches);
    assert_eq!(old.first_unstable_offset(), None);
}

#[test]
fn a_snapshot_with_an_impossible_transaction_is_refused() {
    let mut m = ProducerStateManager::new(Offset::ZERO);
    append(
        &mut m,
        &[data(P1, 0, 0, 7, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    append(
        &mut m,
        &[data(P2, 0, 0, 8, 1, true)],
        AppendOrigin::Client,
        None,
    )
    .unwrap();
    // The transaction starts at or past the snapshot's offset.
    m.set_map_end_offset(Offset(7));
    assert!(decode_snapshot(&encode_snapshot(&m)).is_err());
    // Two producers claiming one first offset.
    m.producers.get_mut(&P2).unwrap().current_txn_first_offset = Some(Offset(7));
    m.set_map_end_offset(Offset(9));
    assert!(decode_snapshot(&encode_snapshot(&m)).is_err());
}

#[derive(Clone, Debug)]
enum Op {
    Data { pid: i64, txn: bool },
    Marker { pid: i64, commit: bool },
    HighWatermark { back: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..4, any::<bool>()).prop_map(|(pid, txn)| Op::Data { pid, txn }),
        2 => (0i64..4, any::<bool>()).prop_map(|(pid, commit)| Op::Marker { pid, commit }),
        1 => (0i64..6).prop_map(|back| Op::HighWatermark { back }),
    ]
}

proptest! {
    /// Against a model of open and completed transactions, through every
    /// origin: the first unstable offset is the earliest open transaction
    /// or completed one whose marker is at or above the high watermark;
    /// open transactions are exactly the entries'; a snapshot keeps the
    /// open ones.
    #[test]
    fn first_unstable_offset_matches_the_model(ops in prop::collection::vec(op(), 1..80), origin in prop_oneof![Just(AppendOrigin::Coordinator), Just(AppendOrigin::Replication)]) {
        let mut m = ProducerStateManager::new(Offset::ZERO);
        let mut open: std::collections::HashMap<i64, i64> = Default::default();
        let mut completed: Vec<(i64, i64)> = Vec::new();
        let mut next = 0i64;
        let mut hw = 0i64;
        for op in ops {
            match op {
                Op::Data { pid, txn } => {
                    let b = data(ProducerId(pid), 0, -1, next, 1, txn);
                    let r = append(&mut m, &[b], origin, None);
                    if !txn && open.contains_key(&pid) && origin != AppendOrigin::Replication {
                        let refused = matches!(r, Err(SequenceError::InvalidTxnState { .. }));
                        prop_assert!(refused);
                        continue;
                    }
                    r.unwrap();
                    if txn {
                        open.entry(pid).or_insert(next);
                    }
                }
                Op::Marker { pid, commit } => {
                    let done = append(&mut m, &[marker(ProducerId(pid), 0, next, commit, 0)], origin, Some(1)).unwrap();
                    match open.remove(&pid) {
                        Some(first) => {
                            prop_assert_eq!(done.len(), 1);
                            prop_assert_eq!(done[0].0.first_offset, Offset(first));
                            prop_assert_eq!(done[0].0.is_aborted, !commit);
                            completed.push((first, next));
                        }
                        None => prop_assert!(done.is_empty()),
                    }
                }
                Op::HighWatermark { back } => {
                    hw = hw.max(next - back);
                    m.on_high_watermark_updated(Offset(hw));
                }
            }
            next += 1;
            let expected = open.values().copied()
                .chain(completed.iter().filter(|(_, l)| *l >= hw).map(|(f, _)| *f))
                .min()
                .map(Offset);
            prop_assert_eq!(m.first_unstable_offset(), expected);
            let mut ongoing: Vec<(Offset, ProducerId)> = open.iter().map(|(p, f)| (Offset(*f), ProducerId(*p))).collect();
            ongoing.sort();
            prop_assert_eq!(m.ongoing_txns().collect::<Vec<_>>(), ongoing.clone());
        }
        m.set_map_end_offset(Offset(next));
        let back = decode_snapshot(&encode_snapshot(&m)).unwrap();
        prop_assert_eq!(back.ongoing_txns().collect::<Vec<_>>(), m.ongoing_txns().collect::<Vec<_>>());
    }
}
