//! Hand-made histories: each anomaly must be flagged by its exact name, and
//! the clean look-alikes (indeterminate sends, gaps no record is known at,
//! re-reads after a reassignment) must pass.

use std::collections::BTreeSet;

use sluice_checker::{
    check, Anomaly, AnomalyKind, Call, CheckerError, Offset, Op, OpType, Report, TopicPartition,
    Value,
};

const P: u64 = 1; // producer
const C: u64 = 10; // consumer
const D: u64 = 11; // second consumer

fn tp0() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn ok(value: u64, offset: i64) -> Op {
    Op::send(P, OpType::Ok, &tp0(), value, Some(offset))
}

fn send(kind: OpType, value: u64) -> Op {
    Op::send(P, kind, &tp0(), value, None)
}

fn poll(process: u64, records: &[(i64, u64)]) -> Op {
    let tp = tp0();
    let recs: Vec<_> = records.iter().map(|&(o, v)| (&tp, o, v)).collect();
    Op::poll_ok(process, &recs)
}

fn assign(process: u64) -> Op {
    Op::new(
        process,
        OpType::Ok,
        Call::Assign {
            partitions: vec![tp0()],
        },
    )
}

fn run(ops: &[Op]) -> Report {
    check(ops).expect("a well-formed history")
}

fn kinds(report: &Report) -> BTreeSet<AnomalyKind> {
    report.kinds()
}

fn only(report: Report, kind: AnomalyKind) -> Anomaly {
    assert_eq!(kinds(&report), BTreeSet::from([kind]), "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    report.anomalies.into_iter().next().unwrap()
}

/// Three acknowledged writes read in order by one consumer.
fn clean() -> Vec<Op> {
    vec![
        send(OpType::Invoke, 1),
        send(OpType::Invoke, 2),
        ok(1, 0),
        ok(2, 1),
        send(OpType::Invoke, 3),
        ok(3, 2),
        assign(C),
        poll(C, &[(0, 1), (1, 2)]),
        poll(C, &[(2, 3)]),
    ]
}

#[test]
fn a_clean_history_passes() {
    let report = run(&clean());
    assert!(report.is_valid(), "{report}");
    assert_eq!(report.stats.sends_ok, 3);
    assert_eq!(report.stats.records_polled, 3);
    assert_eq!(report.stats.ops, 9);
}

#[test]
fn an_empty_history_passes() {
    assert!(run(&[]).is_valid());
}

#[test]
fn lost_write_is_an_acknowledged_value_below_a_polled_offset_never_read() {
    let mut h = clean();
    h[7] = poll(C, &[(0, 1)]); // offset 1 (value 2) is never read; 2 is
    let report = run(&h);
    // Consumer C also jumped over offset 1, which the ack makes known.
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::LostWrite, AnomalyKind::InternalSkip])
    );
    let lost: Vec<_> = report.of(AnomalyKind::LostWrite).collect();
    assert_eq!(
        lost,
        [&Anomaly::LostWrite {
            value: Value(2),
            tp: tp0(),
            offset: Offset(1),
            send_op: 3,
            max_polled: Offset(2),
        }]
    );
}

#[test]
fn lost_write_seen_by_another_consumer_only_is_a_lost_write_not_a_skip() {
    // C reads 0 and then is reassigned; D reads only offset 2.
    let h = vec![
        ok(1, 0),
        ok(2, 1),
        ok(3, 2),
        assign(C),
        poll(C, &[(0, 1)]),
        assign(D),
        poll(D, &[(2, 3)]),
    ];
    let a = only(run(&h), AnomalyKind::LostWrite);
    assert!(
        matches!(
            a,
            Anomaly::LostWrite {
                value: Value(2),
                ..
            }
        ),
        "{a}"
    );
}

#[test]
fn lost_write_includes_the_highest_polled_offset_itself() {
    // Offset 1 was polled, but with another value: the acknowledged one is lost there.
    let h = vec![
        ok(1, 0),
        ok(2, 1),
        send(OpType::Info, 3),
        assign(C),
        poll(C, &[(0, 1), (1, 3)]),
    ];
    let report = run(&h);
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::LostWrite, AnomalyKind::InconsistentOffset]),
        "{report}"
    );
}

#[test]
fn unseen_is_an_acknowledged_value_above_every_polled_offset() {
    let mut h = clean();
    h.pop(); // nobody ever polls offset 2
    let a = only(run(&h), AnomalyKind::Unseen);
    assert_eq!(
        a,
        Anomaly::Unseen {
            value: Value(3),
            tp: tp0(),
            offset: Some(Offset(2)),
            send_op: 5,
        }
    );
}

/// librdkafka reports a retried idempotent batch that the broker already
/// had (DUPLICATE_SEQUENCE_NUMBER) as delivered at offset -1001: written,
/// offset unknown. Such a value must still be read, else it is unseen.
#[test]
fn an_acknowledgement_without_an_offset_must_still_be_read() {
    let mut h = clean();
    h.push(send(OpType::Invoke, 9));
    h.push(send(OpType::Ok, 9));
    let a = only(run(&h), AnomalyKind::Unseen);
    assert_eq!(
        a,
        Anomaly::Unseen {
            value: Value(9),
            tp: tp0(),
            offset: None,
            send_op: h.len() - 1,
        }
    );
    let read = poll(C, &[(3, 9)]);
    h.push(read);
    assert!(run(&h).is_valid(), "{}", run(&h));
}

#[test]
fn indeterminate_sends_may_be_read_or_not() {
    let h = vec![
        send(OpType::Invoke, 1),
        send(OpType::Info, 1), // written, as it turns out
        send(OpType::Invoke, 2),
        send(OpType::Info, 2),   // not written
        send(OpType::Invoke, 3), // never completes (the producer crashed)
        Op::new(P, OpType::Info, Call::Crash),
        ok(4, 2),
        assign(C),
        poll(C, &[(0, 1), (2, 4)]),
    ];
    let report = run(&h);
    assert!(report.is_valid(), "{report}");
    assert_eq!(report.stats.sends_indeterminate, 3);
}

#[test]
fn duplicate_is_one_value_at_two_offsets() {
    let mut h = clean();
    h.push(poll(C, &[(3, 2)])); // value 2 again, at offset 3
    let a = only(run(&h), AnomalyKind::Duplicate);
    let Anomaly::Duplicate { value, positions } = &a else {
        unreachable!()
    };
    assert_eq!(*value, Value(2));
    let offsets: Vec<i64> = positions.iter().map(|p| p.offset.0).collect();
    assert_eq!(offsets, [1, 3]);
    assert_eq!(positions[0].op, 3, "the acknowledgement shows it first");
    assert_eq!(positions[1].op, 9);
}

#[test]
fn a_value_read_at_another_offset_than_acknowledged_is_a_duplicate() {
    let h = vec![ok(1, 0), ok(2, 5), assign(C), poll(C, &[(0, 1), (1, 2)])];
    // Offset 5 is known (acknowledged) but above what C polled: no skip.
    let a = only(run(&h), AnomalyKind::Duplicate);
    assert!(
        matches!(
            a,
            Anomaly::Duplicate {
                value: Value(2),
                ..
            }
        ),
        "{a}"
    );
}

#[test]
fn inconsistent_offset_is_two_values_at_one_offset() {
    let mut h = clean();
    // D sees value 3 where the producer was told value 2 went; value 2 and
    // value 3 are both still read at their own offsets by C.
    h.push(assign(D));
    h.push(poll(D, &[(0, 1), (1, 3)]));
    let report = run(&h);
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::InconsistentOffset, AnomalyKind::Duplicate]),
        "{report}"
    );
    let a = report.of(AnomalyKind::InconsistentOffset).next().unwrap();
    assert_eq!(
        a,
        &Anomaly::InconsistentOffset {
            tp: tp0(),
            offset: Offset(1),
            values: vec![(Value(2), 3), (Value(3), 10)],
        }
    );
}

#[test]
fn two_consumers_disagreeing_on_unacknowledged_values_is_inconsistent_only() {
    let h = vec![
        send(OpType::Info, 1),
        send(OpType::Info, 2),
        assign(C),
        poll(C, &[(0, 1)]),
        assign(D),
        poll(D, &[(0, 2)]),
    ];
    let a = only(run(&h), AnomalyKind::InconsistentOffset);
    assert!(matches!(
        a,
        Anomaly::InconsistentOffset {
            offset: Offset(0),
            ..
        }
    ));
}

#[test]
fn aborted_read_is_a_failed_send_that_is_read() {
    let h = vec![
        send(OpType::Invoke, 1),
        send(OpType::Fail, 1),
        ok(2, 1),
        assign(C),
        poll(C, &[(0, 1), (1, 2)]),
    ];
    let a = only(run(&h), AnomalyKind::AbortedRead);
    let Anomaly::AbortedRead {
        value,
        send_op,
        read,
        process,
    } = &a
    else {
        unreachable!()
    };
    assert_eq!((*value, *send_op, process.0), (Value(1), 1, C));
    assert_eq!((read.offset, read.op), (Offset(0), 4));
}

#[test]
fn a_failed_send_nobody_reads_is_fine() {
    let h = vec![
        send(OpType::Fail, 1),
        ok(2, 0),
        assign(C),
        poll(C, &[(0, 2)]),
    ];
    assert!(run(&h).is_valid());
}

#[test]
fn non_monotonic_poll_is_an_offset_going_back_within_an_epoch() {
    let mut h = clean();
    h.push(poll(C, &[(1, 2)])); // back to offset 1, no reassignment
    let a = only(run(&h), AnomalyKind::NonMonotonicPoll);
    assert_eq!(
        a,
        Anomaly::NonMonotonicPoll {
            process: sluice_checker::ProcessId(C),
            tp: tp0(),
            previous: Offset(2),
            offset: Offset(1),
            op: 9,
        }
    );
}

#[test]
fn the_same_offset_twice_in_one_poll_is_non_monotonic() {
    let h = vec![ok(1, 0), assign(C), poll(C, &[(0, 1), (0, 1)])];
    only(run(&h), AnomalyKind::NonMonotonicPoll);
}

#[test]
fn rereading_after_reassign_rebalance_crash_or_an_indeterminate_poll_is_fine() {
    let markers = [
        assign(C),
        Op::new(
            C,
            OpType::Ok,
            Call::Subscribe {
                topics: vec!["t".into()],
            },
        ),
        Op::new(
            C,
            OpType::Info,
            Call::Rebalance {
                assigned: vec![tp0()],
                revoked: vec![tp0()],
            },
        ),
        Op::new(C, OpType::Info, Call::Crash),
        Op::new(
            C,
            OpType::Info,
            Call::Poll {
                records: Default::default(),
            },
        ),
    ];
    for marker in markers {
        let mut h = clean();
        h.push(marker.clone());
        h.push(poll(C, &[(0, 1), (1, 2)]));
        let report = run(&h);
        assert!(report.is_valid(), "after {marker:?}: {report}");
    }
}

#[test]
fn epochs_are_per_process() {
    let mut h = clean();
    h.push(assign(D)); // D's reassignment does not excuse C
    h.push(poll(C, &[(0, 1)]));
    only(run(&h), AnomalyKind::NonMonotonicPoll);
}

#[test]
fn internal_skip_jumps_over_a_record_others_read() {
    let mut h = clean();
    h.push(assign(D));
    h.push(poll(D, &[(0, 1)]));
    h.push(poll(D, &[(2, 3)])); // skips offset 1, which C read
    let a = only(run(&h), AnomalyKind::InternalSkip);
    assert_eq!(
        a,
        Anomaly::InternalSkip {
            process: sluice_checker::ProcessId(D),
            tp: tp0(),
            from: Offset(0),
            to: Offset(2),
            skipped: Offset(1),
            op: 11,
        }
    );
}

#[test]
fn gaps_where_no_record_is_known_are_not_skips() {
    // Offsets 1 and 3 are transaction markers: nothing is known there.
    let h = vec![
        ok(1, 0),
        ok(2, 2),
        ok(3, 4),
        assign(C),
        poll(C, &[(0, 1), (2, 2)]),
        poll(C, &[(4, 3)]),
    ];
    assert!(run(&h).is_valid());
}

#[test]
fn a_skip_over_an_indeterminate_write_another_consumer_read_is_flagged() {
    let h = vec![
        ok(1, 0),
        send(OpType::Info, 2),
        ok(3, 2),
        assign(D),
        poll(D, &[(0, 1), (1, 2), (2, 3)]),
        assign(C),
        poll(C, &[(0, 1), (2, 3)]),
    ];
    only(run(&h), AnomalyKind::InternalSkip);
}

#[test]
fn phantom_is_a_value_nobody_sent() {
    let mut h = clean();
    h.push(poll(C, &[(3, 99)]));
    let a = only(run(&h), AnomalyKind::Phantom);
    assert!(
        matches!(
            a,
            Anomaly::Phantom {
                value: Value(99),
                ..
            }
        ),
        "{a}"
    );
}

#[test]
fn partitions_are_judged_separately() {
    let t1 = TopicPartition::new("t", 1);
    let h = vec![
        ok(1, 0),
        Op::send(P, OpType::Ok, &t1, 2, Some(0)),
        assign(C),
        Op::poll_ok(C, &[(&tp0(), 0, 1), (&t1, 0, 2)]),
    ];
    assert!(run(&h).is_valid());
}

#[test]
fn every_kind_has_a_distinct_name() {
    let names: BTreeSet<&str> = AnomalyKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), AnomalyKind::ALL.len());
}

#[test]
fn malformed_histories_are_errors_not_verdicts() {
    let twice = vec![send(OpType::Invoke, 1), send(OpType::Invoke, 1)];
    assert!(matches!(
        check(&twice),
        Err(CheckerError::DuplicateSend {
            first_op: 0,
            op: 1,
            ..
        })
    ));
    let completed_twice = vec![ok(1, 0), ok(1, 0)];
    assert!(matches!(
        check(&completed_twice),
        Err(CheckerError::DuplicateCompletion { op: 1, .. })
    ));
    assert!(matches!(
        check(&[ok(1, -1)]),
        Err(CheckerError::NegativeOffset {
            offset: -1,
            op: 0,
            ..
        })
    ));
    assert!(matches!(
        check(&[ok(1, 0), poll(C, &[(0, 1), (-1, 1)])]),
        Err(CheckerError::NegativeOffset {
            offset: -1,
            op: 1,
            ..
        })
    ));
    let moved = vec![
        send(OpType::Invoke, 1),
        Op::send(P, OpType::Ok, &TopicPartition::new("t", 1), 1, Some(0)),
    ];
    assert!(matches!(
        check(&moved),
        Err(CheckerError::SendPartitionMismatch { op: 1, .. })
    ));
}

fn commit(process: u64, kind: OpType, offset: i64) -> Op {
    Op::new(
        process,
        kind,
        Call::Commit {
            group: "g".into(),
            offsets: [(tp0(), Offset(offset))].into_iter().collect(),
        },
    )
}

fn committed(process: u64, kind: OpType, offset: Option<i64>) -> Op {
    Op::new(
        process,
        kind,
        Call::Committed {
            group: "g".into(),
            partitions: vec![tp0()],
            offsets: offset.map(|o| (tp0(), Offset(o))).into_iter().collect(),
        },
    )
}

fn subscribe(process: u64) -> Op {
    Op::new(
        process,
        OpType::Ok,
        Call::Subscribe {
            topics: vec!["t".into()],
        },
    )
}

#[test]
fn a_group_consumer_resuming_from_its_commit_passes() {
    let mut h = clean();
    h.extend([
        commit(C, OpType::Invoke, 2),
        commit(C, OpType::Ok, 2),
        Op::new(C, OpType::Info, Call::Crash),
        subscribe(D),
        committed(D, OpType::Invoke, None),
        committed(D, OpType::Ok, Some(2)),
        poll(D, &[(2, 3)]),
    ]);
    assert!(run(&h).is_valid(), "{}", run(&h));
}

#[test]
fn lost_commit_is_a_read_of_group_offsets_below_an_acknowledged_commit() {
    let mut h = clean();
    h.extend([
        commit(C, OpType::Invoke, 3),
        commit(C, OpType::Ok, 3),
        subscribe(D),
        committed(D, OpType::Invoke, None),
        committed(D, OpType::Ok, Some(1)),
        poll(D, &[(1, 2), (2, 3)]),
    ]);
    match only(run(&h), AnomalyKind::LostCommit) {
        Anomaly::LostCommit {
            committed, read, ..
        } => {
            assert_eq!(committed, Offset(3));
            assert_eq!(read, Some(Offset(1)));
        }
        other => panic!("{other:?}"),
    }
    // No offset at all is lost too; a commit still in flight when the read
    // began, or one not acknowledged, is not.
    let mut none = clean();
    none.extend([
        commit(C, OpType::Ok, 3),
        committed(D, OpType::Invoke, None),
        committed(D, OpType::Ok, None),
    ]);
    assert_eq!(
        kinds(&run(&none)),
        BTreeSet::from([AnomalyKind::LostCommit])
    );
    let mut concurrent = clean();
    concurrent.extend([
        commit(C, OpType::Invoke, 3),
        committed(D, OpType::Invoke, None),
        commit(C, OpType::Ok, 3),
        commit(D, OpType::Info, 4),
        committed(D, OpType::Ok, Some(1)),
    ]);
    assert!(run(&concurrent).is_valid(), "{}", run(&concurrent));
    // An indeterminate commit may land after an acknowledged one.
    let mut late = clean();
    late.extend([
        commit(C, OpType::Invoke, 1),
        commit(C, OpType::Info, 1),
        commit(C, OpType::Invoke, 3),
        commit(C, OpType::Ok, 3),
        committed(D, OpType::Invoke, None),
        committed(D, OpType::Ok, Some(1)),
    ]);
    assert!(run(&late).is_valid(), "{}", run(&late));
}

#[test]
fn a_consumer_that_resumes_past_its_committed_offset_skips() {
    let mut h = clean();
    h.extend([
        commit(C, OpType::Ok, 1),
        subscribe(D),
        committed(D, OpType::Invoke, None),
        committed(D, OpType::Ok, Some(1)),
        poll(D, &[(2, 3)]),
    ]);
    match only(run(&h), AnomalyKind::InternalSkip) {
        Anomaly::InternalSkip { skipped, .. } => assert_eq!(skipped, Offset(1)),
        other => panic!("{other:?}"),
    }
}
