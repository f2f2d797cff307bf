//! EndTxn's rules on `TransactionMetadata` directly, in both transaction
//! versions: version 1 keeps the epoch and answers a retry of a completed
//! end; version 2 bumps it at every end, tells retries by the epoch before
//! the bump, and aborts a transaction that never started.

use sluice_record::{ProducerEpoch, ProducerId};

use super::{end_step, EndStep};
use crate::txn::metadata::{
    TransactionMetadata, TransactionVersion, Transition, TxnPartitions, NO_PRODUCER_ID,
};
use crate::txn::{TransactionState, TxnError};

const P: ProducerId = ProducerId(7);
const V1: TransactionVersion = TransactionVersion(0);
const V2: TransactionVersion = TransactionVersion(2);

fn complete(m: &mut TransactionMetadata, t: Transition) {
    m.complete(&t).expect("completed");
}

/// A producer at epoch 0 with partition a-0 in an Ongoing transaction of
/// `version`.
fn ongoing(version: TransactionVersion) -> TransactionMetadata {
    let mut m = TransactionMetadata::new("t", P, 60_000, 0);
    let t = m.prepare_increment_producer_epoch(60_000, None, 1).unwrap();
    complete(&mut m, t);
    add(&mut m, version);
    m
}

fn add(m: &mut TransactionMetadata, version: TransactionVersion) {
    let added = TxnPartitions::from([("a".to_string(), [0].into())]);
    let t = m.prepare_add_partitions(&added, 2, version).unwrap();
    complete(m, t);
}

fn end(
    m: &mut TransactionMetadata,
    epoch: i16,
    commit: bool,
    version: TransactionVersion,
) -> Result<EndStep, TxnError> {
    end_step(
        m,
        (P, ProducerEpoch(epoch)),
        commit,
        version,
        NO_PRODUCER_ID,
        5,
    )
}

/// Writes the prepare, then the completion (the markers are written).
fn finish(m: &mut TransactionMetadata, step: Result<EndStep, TxnError>) {
    let Ok(EndStep::Write(t)) = step else {
        panic!("a write: {step:?}")
    };
    complete(m, t);
    let t = m.prepare_complete(6).unwrap();
    complete(m, t);
}

#[test]
fn version_1_checks_the_producer_and_answers_a_retry() {
    let mut m = ongoing(V1);
    assert_eq!(
        end_step(
            &mut m,
            (ProducerId(8), ProducerEpoch(0)),
            true,
            V1,
            NO_PRODUCER_ID,
            5
        )
        .err(),
        Some(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        end(&mut m, 1, true, V1).err(),
        Some(TxnError::ProducerFenced)
    );
    let Ok(EndStep::Write(t)) = end(&mut m, 0, true, V1) else {
        panic!("a write")
    };
    assert_eq!(t.value.state, TransactionState::PrepareCommit);
    assert_eq!(t.value.producer_epoch, ProducerEpoch(0), "no bump");
    complete(&mut m, t);
    assert_eq!(
        end(&mut m, 0, true, V1).err(),
        Some(TxnError::ConcurrentTransactions),
        "markers still being written"
    );
    assert_eq!(
        end(&mut m, 0, false, V1).err(),
        Some(TxnError::InvalidTxnState)
    );
    let t = m.prepare_complete(7).unwrap();
    complete(&mut m, t);
    assert_eq!(
        end(&mut m, 0, true, V1),
        Ok(EndStep::Done),
        "a retried commit"
    );
    assert_eq!(
        end(&mut m, 0, false, V1).err(),
        Some(TxnError::InvalidTxnState)
    );
}

#[test]
fn version_2_bumps_the_epoch_at_every_end_and_knows_its_retries() {
    let mut m = ongoing(V2);
    let Ok(EndStep::Write(t)) = end(&mut m, 0, true, V2) else {
        panic!("a write")
    };
    assert_eq!(t.value.producer_epoch, ProducerEpoch(1), "bumped");
    complete(&mut m, t);
    // While the markers are written: a retry (the old epoch) waits.
    assert_eq!(
        end(&mut m, 0, true, V2).err(),
        Some(TxnError::ConcurrentTransactions)
    );
    let t = m.prepare_complete(6).unwrap();
    complete(&mut m, t);
    assert_eq!(m.state, TransactionState::CompleteCommit);
    // The retry of the commit: done. An abort with the old epoch: no.
    assert_eq!(end(&mut m, 0, true, V2), Ok(EndStep::Done));
    assert_eq!(
        end(&mut m, 0, false, V2).err(),
        Some(TxnError::InvalidTxnState)
    );
    // Older than the retry's epoch: a zombie.
    add(&mut m, V2);
    assert_eq!(m.producer_epoch, ProducerEpoch(1));
    let step = end(&mut m, 1, false, V2);
    finish(&mut m, step);
    assert_eq!(m.producer_epoch, ProducerEpoch(2));
    assert_eq!(
        end(&mut m, 0, false, V2).err(),
        Some(TxnError::ProducerFenced)
    );
}

#[test]
fn version_2_aborts_a_transaction_that_never_started() {
    let mut m = ongoing(V2);
    let step = end(&mut m, 0, true, V2);
    finish(&mut m, step);
    // Epoch 1 now, nothing added: the client aborts anyway.
    let Ok(EndStep::Write(t)) = end(&mut m, 1, false, V2) else {
        panic!("an empty abort writes")
    };
    assert_eq!(
        (t.value.state, t.value.producer_epoch),
        (TransactionState::PrepareAbort, ProducerEpoch(2))
    );
    assert!(t.value.partitions.is_empty(), "nothing to mark");
    complete(&mut m, t);
    // A commit of a transaction that never started is not a thing.
    let t = m.prepare_complete(7).unwrap();
    complete(&mut m, t);
    assert_eq!(
        end(&mut m, 2, true, V2).err(),
        Some(TxnError::InvalidTxnState)
    );
}

#[test]
fn a_fenced_version_2_transaction_is_aborted_in_the_fenced_epoch_without_a_second_bump() {
    let mut m = ongoing(V2);
    let fence = m.prepare_fence_producer_epoch().unwrap();
    assert_eq!(fence.value.producer_epoch, ProducerEpoch(1));
    let abort = m.prepare_fenced_abort(&fence, 3, V2).unwrap();
    assert_eq!(
        (abort.value.state, abort.value.producer_epoch),
        (TransactionState::PrepareAbort, ProducerEpoch(1)),
        "KAFKA-19367: one bump"
    );
    assert_eq!(abort.value.client_transaction_version, V2.0);
    // The abort completes (it used to be refused here, after its write,
    // which left the id pending for good), and records the fenced epoch
    // as the last one, as a client's own abort would.
    complete(&mut m, abort);
    assert_eq!(
        (m.state, m.producer_epoch, m.last_producer_epoch),
        (
            TransactionState::PrepareAbort,
            ProducerEpoch(1),
            ProducerEpoch(0)
        )
    );
    let t = m.prepare_complete(4).unwrap();
    complete(&mut m, t);
    assert_eq!(
        (m.state, m.producer_epoch, m.pending()),
        (TransactionState::CompleteAbort, ProducerEpoch(1), None)
    );
    // The fenced producer's own abort is a retry of the one that happened;
    // its commit is not.
    assert_eq!(end(&mut m, 0, false, V2), Ok(EndStep::Done));
    assert_eq!(
        end(&mut m, 0, true, V2).err(),
        Some(TxnError::InvalidTxnState)
    );
    // A new instance gets the epoch after the fenced one.
    let t = m.prepare_increment_producer_epoch(60_000, None, 7).unwrap();
    assert_eq!(t.value.producer_epoch, ProducerEpoch(2));
}

#[test]
fn a_fenced_version_1_transaction_is_aborted_in_the_fenced_epoch() {
    let mut m = ongoing(V1);
    let fence = m.prepare_fence_producer_epoch().unwrap();
    let abort = m.prepare_fenced_abort(&fence, 3, V1).unwrap();
    complete(&mut m, abort);
    assert_eq!(
        (m.state, m.producer_epoch, m.last_producer_epoch),
        (
            TransactionState::PrepareAbort,
            ProducerEpoch(1),
            ProducerEpoch(-1)
        )
    );
}

/// The fenced abort's style is the cluster's transaction version, as
/// Kafka's coordinator picks it (`transactionVersionLevel()`), not the
/// id's: a version 1 client's transaction on a version 2 cluster is
/// aborted as version 2 aborts (the fenced epoch recorded as the last
/// one), and a version 2 client's on a cluster back at version 0 as
/// version 1 aborts.
#[test]
fn a_fenced_abort_follows_the_clusters_transaction_version() {
    let mut m = ongoing(V1);
    let fence = m.prepare_fence_producer_epoch().unwrap();
    let abort = m.prepare_fenced_abort(&fence, 3, V2).unwrap();
    assert_eq!(abort.value.client_transaction_version, V2.0);
    complete(&mut m, abort);
    assert_eq!(
        (m.producer_epoch, m.last_producer_epoch, m.client_version),
        (ProducerEpoch(1), ProducerEpoch(0), V2)
    );

    let mut m = ongoing(V2);
    let fence = m.prepare_fence_producer_epoch().unwrap();
    let abort = m.prepare_fenced_abort(&fence, 3, V1).unwrap();
    assert_eq!(abort.value.client_transaction_version, V1.0);
    complete(&mut m, abort);
    assert_eq!(
        (m.producer_epoch, m.last_producer_epoch, m.client_version),
        (ProducerEpoch(1), ProducerEpoch(-1), V1)
    );
}
