//! Ending a transaction after its PrepareCommit/PrepareAbort is written
//! (Kafka's `TransactionMarkerChannelManager`): a commit or abort marker
//! goes to every partition of the transaction, through its current
//! leader, and once each has taken it the coordinator writes
//! CompleteCommit/CompleteAbort.
//!
//! Invariants:
//! - A transaction is completed only after every partition that still
//!   exists has its marker at its high watermark; a partition whose topic
//!   was deleted is skipped, as Kafka does.
//! - Markers carry the coordinator epoch (the leader epoch of the
//!   `__transaction_state` partition): a leader that has seen a newer one
//!   refuses them, and this coordinator then stops — the new one resumes
//!   from the log (`state_manager::load` lists the ids it must finish).
//! - Retries are paced by `marker_retry_backoff_ms` and end when this
//!   broker stops leading the state partition; each job holds only its
//!   transaction's partitions, and there is at most one per transactional
//!   id (the transaction stays in PrepareCommit/PrepareAbort, which refuses
//!   any other change, until its job completes it).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sluice_metadata::BrokerId;
use sluice_record::{ProducerEpoch, ProducerId};
use sluice_storage::TopicPartition;

use super::metadata::TxnPartitions;
use super::state_manager::{StatePartition, TransactionStateManager, TxnRef};
use super::{TransactionState, TxnError};
use crate::metadata::ImageCache;

/// The marker one transaction needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub transaction_version: i16,
}

/// How one partition's marker write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// At the partition's high watermark.
    Written,
    /// Not now (no leader, a moved leader, not enough replicas, a timeout,
    /// a broken connection): try again.
    Retry,
    /// The leader refused this coordinator's epoch or the producer epoch:
    /// a newer coordinator owns the transaction.
    Fenced,
}

/// Boxed future of a marker write.
pub type MarkerFuture<'a> =
    Pin<Box<dyn Future<Output = Vec<(TopicPartition, MarkerOutcome)>> + Send + 'a>>;

/// Where markers are written: the partitions `leader` leads (this broker
/// or another).
pub trait MarkerWriter: Send + Sync + 'static {
    fn write<'a>(
        &'a self,
        leader: BrokerId,
        marker: &'a TxnMarker,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'a>;
}

/// One transaction to end.
pub struct MarkerJob {
    pub partition: Arc<StatePartition>,
    pub txn: TxnRef,
    pub transactional_id: String,
    pub marker: TxnMarker,
    pub partitions: TxnPartitions,
}

/// Sends markers and completes transactions.
pub struct MarkerChannel {
    writer: Arc<dyn MarkerWriter>,
    image: Arc<ImageCache>,
    state: Arc<TransactionStateManager>,
    backoff: Duration,
}

impl MarkerChannel {
    pub fn new(
        writer: Arc<dyn MarkerWriter>,
        image: Arc<ImageCache>,
        state: Arc<TransactionStateManager>,
    ) -> Self {
        let backoff = Duration::from_millis(state.config().marker_retry_backoff_ms.max(1));
        MarkerChannel {
            writer,
            image,
            state,
            backoff,
        }
    }

    /// Ends `job`'s transaction in the background; the receiver hears
    /// once it is completed (or left to another coordinator).
    pub fn send(self: &Arc<Self>, job: MarkerJob) -> tokio::sync::oneshot::Receiver<()> {
        let me = self.clone();
        let (done, rx) = tokio::sync::oneshot::channel();
        let sent = std::time::Instant::now();
        tokio::spawn(async move {
            me.run(job, sent).await;
            let _ = done.send(());
        });
        rx
    }

    async fn run(&self, job: MarkerJob, sent: std::time::Instant) {
        let queued = sent.elapsed();
        let mut rounds = 0u32;
        let mut remaining: Vec<TopicPartition> = job
            .partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |&p| TopicPartition::new(t.clone(), p)))
            .collect();
        loop {
            if !job.partition.is_current() {
                tracing::info!(transactional_id = %job.transactional_id, "no longer the coordinator; markers left to the new one");
                return;
            }
            let mut by_leader: BTreeMap<BrokerId, Vec<TopicPartition>> = BTreeMap::new();
            let image = self.image.image();
            let mut retry = Vec::new();
            for tp in remaining.drain(..) {
                match image.topic(&tp.topic).map(|t| t.partition(tp.partition)) {
                    None | Some(None) => {
                        tracing::info!(partition = %tp, "marker skipped: the partition was deleted");
                    }
                    Some(Some(reg)) if reg.has_leader() => {
                        by_leader.entry(reg.leader).or_default().push(tp)
                    }
                    Some(Some(_)) => retry.push(tp),
                }
            }
            drop(image);
            rounds += 1;
            for (leader, tps) in by_leader {
                for (tp, outcome) in self.writer.write(leader, &job.marker, tps).await {
                    match outcome {
                        MarkerOutcome::Written => {}
                        MarkerOutcome::Retry => retry.push(tp),
                        MarkerOutcome::Fenced => {
                            tracing::warn!(transactional_id = %job.transactional_id, partition = %tp, "marker fenced: a newer coordinator owns the transaction");
                            return;
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            remaining = retry;
            tokio::time::sleep(self.backoff).await;
        }
        let written = sent.elapsed();
        self.complete(&job).await;
        tracing::debug!(
            target: super::STAGES,
            transactional_id = %job.transactional_id,
            commit = job.marker.commit,
            rounds,
            queued_us = queued.as_micros() as u64,
            markers_us = written.as_micros() as u64,
            completed_us = sent.elapsed().as_micros() as u64,
            "transaction markers written and completion written"
        );
    }

    /// Writes CompleteCommit/CompleteAbort once every marker is in
    /// (retried while the state partition is led here and the write only
    /// lacked replicas).
    async fn complete(&self, job: &MarkerJob) {
        loop {
            let prepared = {
                let mut m = job.txn.lock();
                let expected = if job.marker.commit {
                    TransactionState::PrepareCommit
                } else {
                    TransactionState::PrepareAbort
                };
                if m.state != expected
                    || m.producer_id != job.marker.producer_id
                    || m.producer_epoch != job.marker.producer_epoch
                {
                    tracing::warn!(transactional_id = %job.transactional_id, state = ?m.state, "transaction changed while its markers were written");
                    return;
                }
                m.prepare_complete(self.state.now())
            };
            let t = match prepared {
                Ok(t) => t,
                Err(super::Refusal::Pending(_)) => {
                    tokio::time::sleep(self.backoff).await;
                    continue;
                }
                Err(r) => {
                    tracing::error!(transactional_id = %job.transactional_id, refusal = ?r, "cannot complete the transaction");
                    return;
                }
            };
            match self
                .state
                .write(&job.partition, &job.transactional_id, Some(&t))
                .await
            {
                Ok(()) => {
                    if let Err(r) = job.txn.lock().complete(&t) {
                        tracing::error!(transactional_id = %job.transactional_id, refusal = ?r, "cannot complete the transaction");
                    }
                    return;
                }
                Err(TxnError::CoordinatorNotAvailable) => {
                    job.txn.lock().abandon();
                    tokio::time::sleep(self.backoff).await;
                }
                Err(e) => {
                    job.txn.lock().abandon();
                    tracing::info!(transactional_id = %job.transactional_id, error = %e, "completion not written; the next coordinator finishes it");
                    return;
                }
            }
        }
    }
}
