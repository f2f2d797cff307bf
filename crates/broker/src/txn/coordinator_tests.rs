//! The coordinator's request rules, on `TransactionMetadata` directly.

use super::*;
use crate::txn::metadata::TxnPartitions;

fn fresh() -> TransactionMetadata {
    TransactionMetadata::new("t", ProducerId(7), 60_000, 0)
}

fn run(m: &mut TransactionMetadata, t: Result<Transition, Refusal>) {
    let t = t.expect("prepared");
    m.complete(&t).expect("completed");
}

fn init(m: &mut TransactionMetadata, expected: Option<(ProducerId, ProducerEpoch)>) -> InitStep {
    init_step(m, 60_000, expected, 1).unwrap_or_else(|r| panic!("refused: {r:?}"))
}

fn ongoing() -> TransactionMetadata {
    let mut m = fresh();
    let InitStep::Write(t) = init(&mut m, None) else {
        panic!("a first init writes")
    };
    m.complete(&t).unwrap();
    let added = TxnPartitions::from([("a".to_string(), [0].into())]);
    let t = m.prepare_add_partitions(&added, 2, CLIENT_VERSION);
    run(&mut m, t);
    m
}

#[test]
fn init_bumps_the_epoch_and_fences_an_ongoing_transaction_first() {
    let mut m = fresh();
    assert!(
        matches!(init(&mut m, None), InitStep::Write(t) if t.value.producer_epoch == ProducerEpoch(0))
    );
    let mut m = ongoing();
    assert_eq!(m.producer_epoch, ProducerEpoch(0));
    let InitStep::Fence(fence) = init(&mut m, None) else {
        panic!("an ongoing transaction is fenced")
    };
    assert_eq!(fence.value.producer_epoch, ProducerEpoch(1));
    let abort = m.prepare_fenced_abort(&fence, 3).expect("the abort");
    assert_eq!(abort.value.state, TransactionState::PrepareAbort);
    assert_eq!(abort.value.producer_epoch, ProducerEpoch(1));
    m.complete(&abort).unwrap();
    // While its markers are written the id refuses a new producer.
    assert!(matches!(
        init_step(&mut m, 60_000, None, 4),
        Err(Refusal::Pending(TransactionState::PrepareAbort))
    ));
}

#[test]
fn a_zombie_with_another_producer_id_is_fenced() {
    let mut m = ongoing();
    assert_eq!(
        init_step(&mut m, 60_000, Some((ProducerId(99), ProducerEpoch(0))), 1).err(),
        Some(Refusal::ProducerFenced)
    );
}

#[test]
fn end_txn_checks_the_producer_and_answers_a_retry() {
    let mut m = ongoing();
    assert_eq!(
        end_step(&mut m, ProducerId(8), ProducerEpoch(0), true, 5).err(),
        Some(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        end_step(&mut m, ProducerId(7), ProducerEpoch(1), true, 5).err(),
        Some(TxnError::ProducerFenced)
    );
    let t = end_step(&mut m, ProducerId(7), ProducerEpoch(0), true, 5)
        .unwrap()
        .expect("a write");
    assert_eq!(t.value.state, TransactionState::PrepareCommit);
    m.complete(&t).unwrap();
    assert_eq!(
        end_step(&mut m, ProducerId(7), ProducerEpoch(0), true, 6).err(),
        Some(TxnError::ConcurrentTransactions),
        "markers still being written"
    );
    assert_eq!(
        end_step(&mut m, ProducerId(7), ProducerEpoch(0), false, 6).err(),
        Some(TxnError::InvalidTxnState),
        "an abort of a committing transaction"
    );
    let t = m.prepare_complete(7).unwrap();
    m.complete(&t).unwrap();
    assert_eq!(
        end_step(&mut m, ProducerId(7), ProducerEpoch(0), true, 8),
        Ok(None),
        "a retried commit"
    );
    assert_eq!(
        end_step(&mut m, ProducerId(7), ProducerEpoch(0), false, 8).err(),
        Some(TxnError::InvalidTxnState)
    );
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut m = fresh();
    m.producer_epoch = ProducerEpoch(i16::MAX - 1);
    assert!(matches!(init(&mut m, None), InitStep::Rotate));
}
