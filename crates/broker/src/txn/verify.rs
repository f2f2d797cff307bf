//! The coordinator's side of a partition leader's question before the
//! first transactional batch of a transaction is appended there (KIP-890):
//!
//! - **Verify** (part 1, a version 1 producer, Produce up to v11): is the
//!   partition in the producer's ongoing transaction? Nothing is written.
//! - **Add** (part 2, a version 2 producer, Produce v12+): the producer no
//!   longer sends AddPartitionsToTxn; the leader adds the partition for it
//!   (starting the transaction if none is open), written like any add.
//!
//! The leader asks this broker's coordinator directly, another broker's
//! with AddPartitionsToTxn (v4 `verify_only`, v5 to add). Per partition
//! the answer is `Ok(())` or the error the produce turns into its own
//! code (`handlers/produce/verify.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId as WireProducerId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::BrokerId;
use sluice_record::{ProducerEpoch, ProducerId};

use super::coordinator::{check_producer, TransactionCoordinator};
use super::metadata::{TransactionVersion, TxnPartitions};
use super::{TransactionState, TxnError, TRANSACTION_STATE_TOPIC};

/// What a partition leader asks the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderAsk {
    /// Whether the partitions are in the ongoing transaction.
    Verify,
    /// Add them to the transaction (transaction version 2).
    Add,
}

/// How many partitions this broker's leaders and group coordinator put to
/// a transaction coordinator (KIP-890), and how many they did not need
/// to because the producer's transaction was open in the partition's log
/// already. Metrics only.
#[derive(Debug, Default)]
pub struct VerificationCounts {
    asked: AtomicU64,
    skipped: AtomicU64,
}

impl TransactionCoordinator {
    /// A partition's question was skipped: the transaction is open there.
    pub fn note_verification_skipped(&self) {
        self.verifications.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// (asked, skipped) partition questions so far.
    pub fn verification_counts(&self) -> (u64, u64) {
        (
            self.verifications.asked.load(Ordering::Relaxed),
            self.verifications.skipped.load(Ordering::Relaxed),
        )
    }

    /// Verify: whether each of `partitions` is in the ongoing transaction
    /// of `id` (producer `pid` in `epoch`). Nothing is written.
    pub fn verify(
        &self,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, TxnError> {
        let (_, txn) = self.existing(id)?;
        let m = txn.lock();
        check_producer(&m, pid, epoch)?;
        if m.pending().is_some()
            || matches!(
                m.state,
                TransactionState::PrepareCommit | TransactionState::PrepareAbort
            )
        {
            return Err(TxnError::ConcurrentTransactions);
        }
        let ongoing = m.state == TransactionState::Ongoing;
        Ok(partitions
            .iter()
            .map(|(t, p)| ongoing && m.partitions.get(t).is_some_and(|ps| ps.contains(p)))
            .collect())
    }

    /// A partition leader's question about `partitions` for producer `pid`
    /// in `epoch` of `id`, to whichever broker coordinates `id`.
    pub async fn ask_for_produce(
        &self,
        ask: LeaderAsk,
        id: &str,
        (pid, epoch): (ProducerId, ProducerEpoch),
        partitions: &[(String, i32)],
    ) -> Vec<Result<(), TxnError>> {
        self.verifications
            .asked
            .fetch_add(partitions.len() as u64, Ordering::Relaxed);
        let image = self.peers.image().image();
        let coordinator = self.state.partition_for(id).and_then(|p| {
            image
                .topic(TRANSACTION_STATE_TOPIC)
                .and_then(|t| t.partition(p))
                .filter(|r| r.has_leader())
                .map(|r| r.leader)
        });
        drop(image);
        let all = |r: Result<(), TxnError>| vec![r; partitions.len()];
        match coordinator {
            None => all(Err(TxnError::CoordinatorNotAvailable)),
            Some(c) if c == self.peers.node() => match ask {
                LeaderAsk::Verify => match self.verify(id, pid, epoch, partitions) {
                    Ok(v) => v
                        .into_iter()
                        .map(|ok| ok.then_some(()).ok_or(TxnError::InvalidTxnState))
                        .collect(),
                    Err(e) => all(Err(e)),
                },
                LeaderAsk::Add => {
                    let mut added = TxnPartitions::new();
                    for (t, p) in partitions {
                        added.entry(t.clone()).or_default().insert(*p);
                    }
                    let v2 = TransactionVersion(2);
                    all(self.add_partitions(id, pid, epoch, &added, v2).await)
                }
            },
            Some(c) => self.ask_remote(c, ask, id, (pid, epoch), partitions).await,
        }
    }

    /// The question as AddPartitionsToTxn to coordinator `coordinator`.
    async fn ask_remote(
        &self,
        coordinator: BrokerId,
        ask: LeaderAsk,
        id: &str,
        (pid, epoch): (ProducerId, ProducerEpoch),
        partitions: &[(String, i32)],
    ) -> Vec<Result<(), TxnError>> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in partitions {
            match topics.iter_mut().find(|x| x.name.as_str() == t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(StrBytes::from_string(t.clone()).into())
                        .with_partitions(vec![*p]),
                ),
            }
        }
        let (version, verify_only) = match ask {
            LeaderAsk::Verify => (4, true),
            LeaderAsk::Add => (5, false),
        };
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(StrBytes::from_string(id.to_string()).into())
                .with_producer_id(WireProducerId(pid.0))
                .with_producer_epoch(epoch.0)
                .with_verify_only(verify_only)
                .with_topics(topics),
        ]);
        let answer: Result<AddPartitionsToTxnResponse, _> = self
            .peers
            .call(coordinator, ApiKey::AddPartitionsToTxn, version, &req)
            .await;
        let answer = match answer {
            Ok(a) if a.error_code == 0 => a,
            Ok(a) => {
                tracing::debug!(code = a.error_code, "verification refused");
                return vec![Err(TxnError::CoordinatorNotAvailable); partitions.len()];
            }
            Err(e) => {
                tracing::debug!(error = %e, "verification not answered");
                return vec![Err(TxnError::CoordinatorNotAvailable); partitions.len()];
            }
        };
        let mut codes = HashMap::new();
        for r in answer.results_by_transaction {
            for t in r.topic_results {
                for p in t.results_by_partition {
                    codes.insert(
                        (t.name.to_string(), p.partition_index),
                        p.partition_error_code,
                    );
                }
            }
        }
        partitions
            .iter()
            .map(|tp| remote_verdict(codes.get(tp).copied()))
            .collect()
    }
}

/// A remote coordinator's code for one partition, as this broker's own
/// coordinator would have said it.
fn remote_verdict(code: Option<i16>) -> Result<(), TxnError> {
    match code {
        Some(0) => Ok(()),
        Some(c) if c == TxnError::InvalidTxnState.code() => Err(TxnError::InvalidTxnState),
        // INVALID_PRODUCER_EPOCH from a coordinator that answers with it
        // for an old epoch: the produce says the same.
        Some(c) if c == TxnError::ProducerFenced.code() || c == 47 => Err(TxnError::ProducerFenced),
        Some(c) if c == TxnError::InvalidProducerIdMapping.code() => {
            Err(TxnError::InvalidProducerIdMapping)
        }
        Some(c) if c == TxnError::ConcurrentTransactions.code() => {
            Err(TxnError::ConcurrentTransactions)
        }
        _ => Err(TxnError::CoordinatorNotAvailable),
    }
}
