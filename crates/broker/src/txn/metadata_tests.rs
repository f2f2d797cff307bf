use super::*;
use proptest::prelude::*;
use TransactionState::*;

const V1: TransactionVersion = TransactionVersion(1);
const V2: TransactionVersion = TransactionVersion(2);

fn parts(list: &[(&str, i32)]) -> TxnPartitions {
    let mut p = TxnPartitions::new();
    for (t, i) in list {
        p.entry(t.to_string()).or_default().insert(*i);
    }
    p
}

/// Prepares with `f`, then completes what was prepared (the write
/// committed).
fn apply(
    m: &mut TransactionMetadata,
    f: impl FnOnce(&mut TransactionMetadata) -> Result<Transition, Refusal>,
) -> Transition {
    let t = f(m).expect("prepared");
    m.complete(&t).expect("completed");
    t
}

fn initialized() -> TransactionMetadata {
    let mut m = TransactionMetadata::new("tx", ProducerId(7), 60_000, 0);
    apply(&mut m, |m| {
        m.prepare_increment_producer_epoch(60_000, None, 1)
    });
    assert_eq!((m.state, m.producer_epoch), (Empty, ProducerEpoch(0)));
    m
}

#[test]
fn a_version_2_transaction_bumps_the_epoch_at_its_end() {
    let mut m = initialized();
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 0)]), 10, V2)
    });
    assert_eq!((m.state, m.start_ms), (Ongoing, 10));
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 1)]), 11, V2)
    });
    assert_eq!(m.partitions, parts(&[("t", 0), ("t", 1)]));
    assert_eq!(m.start_ms, 10, "the start stays");
    apply(&mut m, |m| {
        m.prepare_abort_or_commit(PrepareCommit, V2, NO_PRODUCER_ID, 12, false)
    });
    assert_eq!(
        (m.state, m.producer_epoch, m.last_producer_epoch),
        (PrepareCommit, ProducerEpoch(1), ProducerEpoch(0))
    );
    apply(&mut m, |m| m.prepare_complete(13));
    assert_eq!(
        (m.state, m.producer_epoch),
        (CompleteCommit, ProducerEpoch(1))
    );
    assert!(m.partitions.is_empty());
    // The next transaction starts anew.
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("u", 3)]), 20, V2)
    });
    assert_eq!((m.state, m.start_ms), (Ongoing, 20));
}

#[test]
fn a_version_1_transaction_keeps_its_epoch() {
    let mut m = initialized();
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 0)]), 10, V1)
    });
    apply(&mut m, |m| {
        m.prepare_abort_or_commit(PrepareAbort, V1, NO_PRODUCER_ID, 12, false)
    });
    apply(&mut m, |m| m.prepare_complete(13));
    assert_eq!(
        (m.state, m.producer_epoch),
        (CompleteAbort, ProducerEpoch(0))
    );
}

#[test]
fn init_fences_older_epochs_and_a_retry_keeps_the_epoch() {
    let mut m = initialized(); // epoch 0
    apply(&mut m, |m| {
        m.prepare_increment_producer_epoch(60_000, Some(ProducerEpoch(0)), 2)
    });
    assert_eq!(
        (m.producer_epoch, m.last_producer_epoch),
        (ProducerEpoch(1), ProducerEpoch(0))
    );
    // A retry of that call (the producer still names epoch 0): no bump.
    apply(&mut m, |m| {
        m.prepare_increment_producer_epoch(60_000, Some(ProducerEpoch(0)), 3)
    });
    assert_eq!(m.producer_epoch, ProducerEpoch(1));
    // A new producer (no expected epoch) bumps and forgets the last one.
    apply(&mut m, |m| {
        m.prepare_increment_producer_epoch(60_000, None, 4)
    });
    assert_eq!(
        (m.producer_epoch, m.last_producer_epoch),
        (ProducerEpoch(2), NO_PRODUCER_EPOCH)
    );
    // The zombie of epoch 1 is fenced.
    assert_eq!(
        m.prepare_increment_producer_epoch(60_000, Some(ProducerEpoch(1)), 5),
        Err(Refusal::ProducerFenced)
    );
    assert_eq!(m.pending(), None, "a refusal leaves nothing pending");
}

#[test]
fn one_change_at_a_time_and_an_abandoned_write_never_happened() {
    let mut m = initialized();
    let before = m.clone();
    let t = m
        .prepare_add_partitions(&parts(&[("t", 0)]), 10, V2)
        .unwrap();
    assert_eq!(
        m.prepare_abort_or_commit(PrepareAbort, V2, NO_PRODUCER_ID, 11, false),
        Err(Refusal::Pending(Ongoing))
    );
    m.abandon();
    assert_eq!(m, before);
    assert!(
        matches!(m.complete(&t), Err(Refusal::Unexpected(_))),
        "not pending any more"
    );
}

#[test]
fn a_failed_fence_does_not_bump_twice() {
    let mut m = initialized();
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 0)]), 10, V2)
    });
    let t = m.prepare_fence_producer_epoch().unwrap();
    assert_eq!(t.value.producer_epoch, ProducerEpoch(1));
    m.abandon();
    let t = m.prepare_fence_producer_epoch().unwrap();
    assert_eq!(
        t.value.producer_epoch,
        ProducerEpoch(0),
        "epoch 1 was never handed out"
    );
}

#[test]
fn an_exhausted_epoch_moves_to_the_next_producer_id_on_a_version_2_end() {
    let mut m = initialized();
    m.producer_epoch = ProducerEpoch(i16::MAX - 1);
    assert!(m.is_producer_epoch_exhausted());
    assert_eq!(
        m.prepare_increment_producer_epoch(60_000, None, 2),
        Err(Refusal::EpochExhausted)
    );
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 0)]), 10, V2)
    });
    apply(&mut m, |m| {
        m.prepare_abort_or_commit(PrepareCommit, V2, ProducerId(8), 11, false)
    });
    assert_eq!(m.producer_epoch, ProducerEpoch(i16::MAX));
    apply(&mut m, |m| m.prepare_complete(12));
    assert_eq!(
        (m.producer_id, m.producer_epoch),
        (ProducerId(8), ProducerEpoch(0))
    );
    assert_eq!(m.previous_producer_id, ProducerId(7));
    assert_eq!(
        m.last_producer_epoch,
        ProducerEpoch(i16::MAX - 1),
        "the last epoch the client saw"
    );
}

#[test]
fn version_2_may_abort_an_empty_transaction() {
    let mut m = initialized();
    apply(&mut m, |m| {
        m.prepare_abort_or_commit(PrepareAbort, V2, NO_PRODUCER_ID, 5, true)
    });
    apply(&mut m, |m| m.prepare_complete(6));
    assert_eq!(m.state, CompleteAbort);
    assert_eq!(
        m.prepare_abort_or_commit(PrepareCommit, V2, NO_PRODUCER_ID, 7, true),
        Err(Refusal::InvalidTransition {
            from: CompleteAbort,
            to: PrepareCommit
        })
    );
}

#[test]
fn a_forged_change_is_refused_by_complete() {
    let mut m = initialized();
    let mut t = m
        .prepare_add_partitions(&parts(&[("t", 0)]), 10, V2)
        .unwrap();
    t.value.producer_epoch = ProducerEpoch(5);
    assert!(matches!(m.complete(&t), Err(Refusal::Unexpected(_))));
    let mut m = initialized();
    apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 0), ("t", 1)]), 10, V2)
    });
    let mut t = m
        .prepare_add_partitions(&parts(&[("t", 2)]), 11, V2)
        .unwrap();
    t.value.partitions = parts(&[("t", 2)]);
    assert!(
        matches!(m.complete(&t), Err(Refusal::Unexpected(_))),
        "partitions dropped"
    );
}

#[test]
fn the_log_value_reloads_the_same_state() {
    let mut m = initialized();
    let t = apply(&mut m, |m| {
        m.prepare_add_partitions(&parts(&[("t", 0)]), 10, V2)
    });
    let loaded = TransactionMetadata::from_log("tx", &t.value);
    assert_eq!(
        (
            loaded.state,
            loaded.producer_id,
            loaded.producer_epoch,
            &loaded.partitions,
            loaded.start_ms
        ),
        (
            m.state,
            m.producer_id,
            m.producer_epoch,
            &m.partitions,
            m.start_ms
        )
    );
}

#[derive(Clone, Debug)]
enum Op {
    Init(Option<i16>),
    Add(i32),
    End(bool, bool),
    Complete,
    Fence,
    Abandon,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::option::of(-1i16..4).prop_map(Op::Init),
        (0i32..3).prop_map(Op::Add),
        (any::<bool>(), any::<bool>()).prop_map(|(c, v2)| Op::End(c, v2)),
        Just(Op::Complete),
        Just(Op::Fence),
        Just(Op::Abandon),
    ]
}

proptest! {
    /// Whatever the coordinator is asked, in any order: nothing panics,
    /// every completed change follows Kafka's table, epochs never go
    /// backwards for one producer id, and every prepared change either
    /// completes or is refused as a whole.
    #[test]
    fn any_sequence_keeps_the_rules(ops in proptest::collection::vec(op(), 1..40)) {
        let mut m = TransactionMetadata::new("tx", ProducerId(1), 1000, 0);
        let mut now = 0;
        for op in ops {
            now += 1;
            let before = m.clone();
            let prepared = match op {
                Op::Init(e) => m.prepare_increment_producer_epoch(1000, e.map(ProducerEpoch), now),
                Op::Add(p) => m.prepare_add_partitions(&parts(&[("t", p)]), now, V2),
                Op::End(commit, v2) => m.prepare_abort_or_commit(
                    if commit { PrepareCommit } else { PrepareAbort },
                    if v2 { V2 } else { V1 },
                    NO_PRODUCER_ID,
                    now,
                    m.partitions.is_empty(),
                ),
                Op::Complete => m.prepare_complete(now),
                Op::Fence => m.prepare_fence_producer_epoch(),
                Op::Abandon => {
                    m.abandon();
                    continue;
                }
            };
            let Ok(t) = prepared else {
                prop_assert_eq!(m.pending(), before.pending(), "a refusal changes nothing");
                continue;
            };
            if t.value.state == PrepareEpochFence {
                // Goes on to an abort in the coordinator; here: dropped.
                m.abandon();
                continue;
            }
            if m.complete(&t).is_ok() {
                prop_assert!(m.state.may_follow(before.state));
                if m.producer_id == before.producer_id && before.producer_epoch.0 >= 0 {
                    prop_assert!(m.producer_epoch >= before.producer_epoch);
                }
            } else {
                m.abandon();
            }
        }
    }
}
