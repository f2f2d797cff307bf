//! KIP-890 part 1 on the Produce path, before any append (Kafka's
//! `ReplicaManager.handleProduceAppend` with
//! `transaction.partition.verification.enable`).
//!
//! For each partition whose batches include a transactional one, the log
//! starts a verification for the producer unless it already has a
//! transaction open there (`Log::maybe_start_transaction_verification`);
//! the partitions that need it are put to the producer's transaction
//! coordinator in one question per request (this broker's own, or another
//! one's with AddPartitionsToTxn v4 `verify_only`). A partition the
//! coordinator confirms is appended with the verification's guard; one it
//! does not is answered INVALID_TXN_STATE, and coordinator troubles
//! answer NOT_ENOUGH_REPLICAS, which every client retries without a
//! metadata refresh (Kafka's choice). With verification on, every append
//! of the request carries `Verification::Required`, so a transactional
//! batch that would start a transaction without a guard — in a request
//! without a transactional id, or parsed differently from here — is
//! refused by the log itself.
//!
//! Invariant: the guard is taken before the question is sent. A marker
//! written while the question is out voids it (see
//! `sluice_storage::producer_state::verification`).

use sluice_record::{ProducerEpoch, ProducerId};
use sluice_storage::producer_state::Verification;

use super::{Job, PartitionResult};
use crate::context::BrokerContext;
use crate::error::storage_error_code;
use crate::txn::{LeaderAsk, TxnError};

/// The first Produce version of a transaction version 2 producer.
const V2_PRODUCE: i16 = 12;

/// Kafka's INVALID_PRODUCER_ID_MAPPING: one request's transactional
/// batches name two producers.
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
/// KIP-890's TRANSACTION_ABORTABLE, which Produce v11+ clients know.
const TRANSACTION_ABORTABLE: i16 = 120;
/// The first Produce version whose clients know TRANSACTION_ABORTABLE
/// (Kafka's `genericErrorSupported`).
const ABORTABLE_PRODUCE: i16 = 11;

/// Sets each job's [`Verification`] and answers (in `results`, removing
/// the job) every partition that may not be appended.
pub(super) async fn verify(
    ctx: &BrokerContext,
    version: i16,
    transactional_id: Option<&str>,
    jobs: &mut Vec<Job>,
    results: &mut [Option<PartitionResult>],
) {
    if !ctx.config.transaction_partition_verification() {
        return;
    }
    for job in jobs.iter_mut() {
        job.verification = Verification::Required(None);
    }
    let Some(id) = transactional_id.filter(|id| !id.is_empty()) else {
        return;
    };
    let firsts: Vec<Option<(ProducerId, ProducerEpoch, i32)>> = jobs
        .iter()
        .map(|j| first_transactional(&j.records))
        .collect();
    let mut producers: Vec<(ProducerId, ProducerEpoch)> = Vec::new();
    for &(pid, epoch, _) in firsts.iter().flatten() {
        if !producers.contains(&(pid, epoch)) {
            producers.push((pid, epoch));
        }
    }
    let (pid, epoch) = match producers.as_slice() {
        [] => return,
        [one] => *one,
        _ => {
            fail(
                jobs,
                results,
                |i| firsts[i].is_some(),
                INVALID_PRODUCER_ID_MAPPING,
            );
            return;
        }
    };
    // Step 1: guards, before the question.
    let mut asked: Vec<(usize, sluice_storage::producer_state::VerificationGuard)> = Vec::new();
    let mut refused: Vec<(usize, i16)> = Vec::new();
    for (i, first) in firsts.iter().enumerate() {
        let Some((_, _, sequence)) = *first else {
            continue;
        };
        let log = jobs[i].partition.log();
        match log.maybe_start_transaction_verification(pid, sequence, epoch) {
            Ok(Some(guard)) => asked.push((i, guard)),
            Ok(None) => ctx.txns.note_verification_skipped(),
            Err(e) => refused.push((i, storage_error_code(&e))),
        }
    }
    if !asked.is_empty() {
        let partitions: Vec<(String, i32)> = asked
            .iter()
            .map(|(i, _)| {
                let tp = jobs[*i].partition.topic_partition();
                (tp.topic.to_string(), tp.partition)
            })
            .collect();
        // Produce v12+ comes from a transaction version 2 producer, which
        // leaves the add to the leader (KIP-890 part 2).
        let ask = if version >= V2_PRODUCE {
            LeaderAsk::Add
        } else {
            LeaderAsk::Verify
        };
        let verdicts = ctx
            .txns
            .ask_for_produce(ask, id, (pid, epoch), &partitions)
            .await;
        for ((i, guard), verdict) in asked.into_iter().zip(verdicts) {
            match verdict {
                Ok(()) => jobs[i].verification = Verification::Required(Some(guard)),
                Err(e) => refused.push((i, produce_code(e, ask, version))),
            }
        }
    }
    for &(i, code) in &refused {
        results[jobs[i].slot] = Some(PartitionResult::error(
            code,
            Some(refusal_message(code).to_string()),
        ));
    }
    let refused: Vec<usize> = refused.into_iter().map(|(i, _)| i).collect();
    let mut i = 0;
    jobs.retain(|_| {
        let keep = !refused.contains(&i);
        i += 1;
        keep
    });
}

/// Answers `code` for the jobs `which` selects (by index) and drops them.
fn fail(
    jobs: &mut Vec<Job>,
    results: &mut [Option<PartitionResult>],
    which: impl Fn(usize) -> bool,
    code: i16,
) {
    let mut i = 0;
    jobs.retain(|job| {
        let drop = which(i);
        i += 1;
        if drop {
            results[job.slot] = Some(PartitionResult::error(code, None));
        }
        !drop
    });
}

/// Whether the first batch of any partition's records is transactional
/// (Kafka's `RequestUtils.hasTransactionalRecords`).
pub(super) fn has_transactional_records(req: &kafka_protocol::messages::ProduceRequest) -> bool {
    req.topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_deref())
        .any(|records| {
            sluice_record::Batches::without_crc(records)
                .next()
                .and_then(Result::ok)
                .is_some_and(|(_, h)| h.is_transactional())
        })
}

/// The producer, epoch and base sequence of the first transactional batch
/// of `records` (headers only: framing errors are the append's to find).
fn first_transactional(records: &[u8]) -> Option<(ProducerId, ProducerEpoch, i32)> {
    sluice_record::Batches::without_crc(records)
        .map_while(Result::ok)
        .find(|(_, h)| h.has_producer_id() && h.is_transactional() && !h.is_control())
        .map(|(_, h)| (h.producer_id, h.producer_epoch, h.base_sequence))
}

/// What a Produce answers for a verification the coordinator refused or
/// could not give (Kafka's translation in `handleProduceAppend` and
/// `AddPartitionsToTxnManager`). A transaction version 2 producer (whose
/// partition the leader adds) gets CONCURRENT_TRANSACTIONS as it is, as
/// Kafka 4.1 answers it; older clients may not retry it. A partition not
/// in the transaction is TRANSACTION_ABORTABLE (Kafka's coordinator's word)
/// from Produce v11 on, INVALID_TXN_STATE before, as Kafka's
/// `AddPartitionsToTxnManager` translates it for clients that do not know
/// the code.
fn produce_code(e: TxnError, ask: LeaderAsk, version: i16) -> i16 {
    match e {
        TxnError::InvalidTxnState if ask == LeaderAsk::Verify && version >= ABORTABLE_PRODUCE => {
            TRANSACTION_ABORTABLE
        }
        TxnError::InvalidTxnState => e.code(),
        TxnError::ConcurrentTransactions if ask == LeaderAsk::Add => e.code(),
        TxnError::ConcurrentTransactions
        | TxnError::CoordinatorLoadInProgress
        | TxnError::CoordinatorNotAvailable
        | TxnError::NotCoordinator => NOT_ENOUGH_REPLICAS,
        TxnError::ProducerFenced => INVALID_PRODUCER_EPOCH,
        other => other.code(),
    }
}

fn refusal_message(code: i16) -> &'static str {
    match code {
        INVALID_TXN_STATE | TRANSACTION_ABORTABLE => "Partition was not added to the transaction",
        NOT_ENOUGH_REPLICAS => "Unable to verify the partition has been added to the transaction",
        _ => "Transaction verification failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_troubles_are_retriable_for_every_client() {
        for e in [
            TxnError::ConcurrentTransactions,
            TxnError::CoordinatorLoadInProgress,
            TxnError::CoordinatorNotAvailable,
            TxnError::NotCoordinator,
        ] {
            assert_eq!(
                produce_code(e, LeaderAsk::Verify, 9),
                NOT_ENOUGH_REPLICAS,
                "{e:?}"
            );
        }
        assert_eq!(
            produce_code(TxnError::InvalidTxnState, LeaderAsk::Verify, 10),
            48
        );
        assert_eq!(
            produce_code(TxnError::InvalidTxnState, LeaderAsk::Verify, 11),
            120,
            "v11 clients know TRANSACTION_ABORTABLE"
        );
        assert_eq!(
            produce_code(TxnError::ProducerFenced, LeaderAsk::Verify, 9),
            47
        );
        assert_eq!(
            produce_code(TxnError::InvalidProducerIdMapping, LeaderAsk::Verify, 9),
            49
        );
        // A version 2 producer hears CONCURRENT_TRANSACTIONS itself.
        assert_eq!(
            produce_code(TxnError::ConcurrentTransactions, LeaderAsk::Add, 12),
            51
        );
        assert_eq!(
            produce_code(TxnError::NotCoordinator, LeaderAsk::Add, 12),
            NOT_ENOUGH_REPLICAS
        );
    }
}
