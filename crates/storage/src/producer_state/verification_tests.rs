//! KIP-890 part 1 in the producer state: a client's transactional batch
//! starts a transaction only with the guard of a verification still in
//! progress; markers void guards (the ABA case); the lowest sequence seen
//! while verifying blocks higher ones; the number of verifications is
//! bounded.

use super::txn::Prepared;
use super::*;
use sluice_record::{
    BatchHeader, ControlBatch, ControlRecordType, EndTransactionMarker, LeaderEpoch,
};

const P1: ProducerId = ProducerId(1);
const P2: ProducerId = ProducerId(2);
const E: ProducerEpoch = ProducerEpoch(0);
/// (max entries, expiration ms) for `maybe_start_verification`.
const LIMITS: (usize, i64) = (100, 60_000);

fn batch(pid: ProducerId, seq: i32, base: i64, attributes: i16) -> BatchHeader {
    BatchHeader {
        base_offset: Offset(base),
        batch_length: 100,
        partition_leader_epoch: LeaderEpoch(0),
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: 0,
        base_timestamp: Timestamp(1_000),
        max_timestamp: Timestamp(1_000),
        producer_id: pid,
        producer_epoch: E,
        base_sequence: seq,
        record_count: 1,
    }
}

fn txn_data(pid: ProducerId, seq: i32, base: i64) -> ProducerBatch {
    ProducerBatch {
        header: batch(pid, seq, base, 0x10),
        control: None,
    }
}

fn abort_marker(pid: ProducerId, at: i64) -> ProducerBatch {
    let m = EndTransactionMarker::new(ControlRecordType::Abort, 0).unwrap();
    ProducerBatch {
        header: batch(pid, -1, at, 0x30),
        control: Some(ControlBatch::EndTxn(m)),
    }
}

fn append(
    m: &mut ProducerStateManager,
    b: ProducerBatch,
    origin: AppendOrigin,
    v: Verification,
) -> Result<(), SequenceError> {
    match m.prepare_append_verified(&[b], origin, None, v)? {
        Prepared::Duplicate(d) => panic!("unexpected duplicate {d:?}"),
        Prepared::Append(p) => {
            m.apply(p);
            Ok(())
        }
    }
}

fn start(m: &mut ProducerStateManager, pid: ProducerId, seq: i32) -> Option<VerificationGuard> {
    m.maybe_start_verification(pid, seq, E, 0, LIMITS).unwrap()
}

#[test]
fn a_transaction_starts_only_with_the_guard_of_its_verification() {
    let mut m = ProducerStateManager::new(Offset(0));
    let unverified = append(
        &mut m,
        txn_data(P1, 0, 0),
        AppendOrigin::Client,
        Verification::Required(None),
    );
    assert!(
        matches!(
            unverified,
            Err(SequenceError::TransactionNotVerified { .. })
        ),
        "{unverified:?}"
    );
    let guard = start(&mut m, P1, 0).expect("no transaction open: a guard");
    // Another producer's guard does not do.
    let other = start(&mut m, P2, 0);
    assert_ne!(other, Some(guard));
    assert!(append(
        &mut m,
        txn_data(P1, 0, 0),
        AppendOrigin::Client,
        Verification::Required(other)
    )
    .is_err());
    append(
        &mut m,
        txn_data(P1, 0, 0),
        AppendOrigin::Client,
        Verification::Required(Some(guard)),
    )
    .unwrap();
    assert!(m.has_ongoing_transaction(P1));
    assert!(m.verification(P1).is_none(), "the first append ends it");
    // Inside the open transaction nothing is asked, and no guard is needed.
    assert_eq!(start(&mut m, P1, 1), None);
    append(
        &mut m,
        txn_data(P1, 1, 1),
        AppendOrigin::Client,
        Verification::Required(None),
    )
    .unwrap();
}

#[test]
fn a_marker_written_while_verifying_voids_the_guard() {
    // The ABA case: the question is out, the coordinator aborts (marker),
    // the late "yes" arrives; the append it carries must not open a new,
    // hanging transaction.
    let mut m = ProducerStateManager::new(Offset(0));
    let guard = start(&mut m, P1, 0);
    append(
        &mut m,
        abort_marker(P1, 0),
        AppendOrigin::Coordinator,
        Verification::NotRequired,
    )
    .unwrap();
    assert!(m.verification(P1).is_none());
    let late = append(
        &mut m,
        txn_data(P1, 0, 1),
        AppendOrigin::Client,
        Verification::Required(guard),
    );
    assert!(
        matches!(late, Err(SequenceError::TransactionNotVerified { .. })),
        "{late:?}"
    );
    assert!(!m.has_ongoing_transaction(P1));
}

#[test]
fn replicated_transactional_batches_end_a_verification_too() {
    let mut m = ProducerStateManager::new(Offset(0));
    start(&mut m, P1, 0);
    m.replay(&txn_data(P1, 0, 0));
    assert!(m.verification(P1).is_none());
}

#[test]
fn a_sequence_above_the_lowest_one_seen_while_verifying_is_out_of_order() {
    let mut m = ProducerStateManager::new(Offset(0));
    start(&mut m, P1, 5);
    // A lower sequence arrives and becomes the lowest.
    let guard = start(&mut m, P1, 3);
    assert_eq!(m.verification(P1).unwrap().lowest_sequence, 3);
    let higher = append(
        &mut m,
        txn_data(P1, 5, 0),
        AppendOrigin::Client,
        Verification::Required(guard),
    );
    assert!(
        matches!(
            higher,
            Err(SequenceError::OutOfOrderSequence { expected: 3, .. })
        ),
        "{higher:?}"
    );
    append(
        &mut m,
        txn_data(P1, 3, 0),
        AppendOrigin::Client,
        Verification::Required(guard),
    )
    .unwrap();
}

#[test]
fn with_verification_off_nothing_is_asked() {
    let mut m = ProducerStateManager::new(Offset(0));
    append(
        &mut m,
        txn_data(P1, 0, 0),
        AppendOrigin::Client,
        Verification::NotRequired,
    )
    .unwrap();
    assert!(m.has_ongoing_transaction(P1));
}

#[test]
fn verifications_are_bounded_and_expire() {
    let mut m = ProducerStateManager::new(Offset(0));
    let limits = (2, 1_000);
    m.maybe_start_verification(P1, 0, E, 0, limits).unwrap();
    m.maybe_start_verification(P2, 0, E, 500, limits).unwrap();
    // The same producer again is no new entry.
    m.maybe_start_verification(P1, 0, E, 600, limits).unwrap();
    let third = m.maybe_start_verification(ProducerId(3), 0, E, 700, limits);
    assert!(
        matches!(third, Err(SequenceError::TooManyVerifications { .. })),
        "{third:?}"
    );
    // P1's entry (created at 0) has expired by 1 000.
    m.maybe_start_verification(ProducerId(3), 0, E, 1_000, limits)
        .unwrap()
        .unwrap();
    assert!(m.verification(P1).is_none());
    assert!(m.verification(P2).is_some());
    m.remove_expired(1_500, 1_000);
    assert!(m.verification(P2).is_none());
}
