//! ISR changes to the controller: Kafka's `AlterPartitionManager` and the
//! periodic ISR shrink check (`isr-expiration`, every half
//! `replica.lag.time.max.ms`).
//!
//! Partitions with a proposal queue themselves in the [`IsrQueue`] (once:
//! a flag on the partition, so the queue is bounded by the number of
//! partitions). One task, [`run_isr_manager`], sends every queued
//! partition's proposal in one AlterPartition request through the
//! [`AlterPartitionSender`] seam, applies the answers
//! (`Partition::apply_isr_answer`) and re-queues those that ask for a
//! retry after a backoff. Since the task awaits each request before the
//! next, and a partition proposes nothing while its change is pending,
//! at most one AlterPartition per partition is ever in flight. Every
//! committed change counts in `sluice_isr_{shrinks,expands}_total`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::isr::{AlterAnswer, AnswerEffect, IsrProposal};
use crate::partition::{Partition, ReplicaManager};

/// Wait before re-sending a proposal whose answer asked for a retry
/// (Kafka's AlterPartition retry backoff is 50 ms growing to 1 s).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// One partition's ISR change, as AlterPartition carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterItem {
    pub topic_id: Uuid,
    pub partition: i32,
    pub proposal: IsrProposal,
}

/// Where ISR changes go: the controller (`ControllerClient::alter_partition`
/// behind it), a fake in tests. Answers one [`AlterAnswer`] per item, in
/// order.
pub trait AlterPartitionSender: Send + Sync + 'static {
    fn alter_partition(
        &self,
        items: Vec<AlterItem>,
    ) -> Pin<Box<dyn Future<Output = Vec<AlterAnswer>> + Send + '_>>;
}

/// Partitions with an ISR change to send.
#[derive(Default)]
pub struct IsrQueue {
    queue: Mutex<VecDeque<Weak<Partition>>>,
    notify: Notify,
}

impl IsrQueue {
    pub(crate) fn push(&self, p: &Arc<Partition>) {
        self.queue.lock().push_back(Arc::downgrade(p));
        self.notify.notify_one();
    }

    fn drain(&self) -> Vec<Arc<Partition>> {
        let drained: Vec<_> = self.queue.lock().drain(..).collect();
        drained
            .into_iter()
            .filter_map(|w| w.upgrade())
            .inspect(|p| p.isr_queued.store(false, Ordering::Release))
            .collect()
    }
}

/// Runs until `shutdown` turns true: every `lag_ms / 2` proposes ISR
/// shrinks of lagging followers, and sends queued proposals as they come.
pub async fn run_isr_manager(
    replicas: Arc<ReplicaManager>,
    sender: Arc<dyn AlterPartitionSender>,
    lag_ms: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = Duration::from_millis((lag_ms / 2).max(1) as u64);
    let mut next_check = tokio::time::Instant::now() + every;
    let queue = replicas.isr_queue().clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = queue.notify.notified() => {}
            _ = tokio::time::sleep_until(next_check) => {
                next_check = tokio::time::Instant::now() + every;
                for p in replicas.partitions() {
                    p.maybe_shrink_isr();
                }
            }
            _ = shutdown.changed() => return,
        }
        let retry = send_queued(&queue, sender.as_ref()).await;
        if !retry.is_empty() {
            let queue = queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY_BACKOFF).await;
                for p in retry {
                    if !p.isr_queued.swap(true, Ordering::AcqRel) {
                        queue.push(&p);
                    }
                }
            });
        }
    }
}

/// Sends every queued proposal in one request and applies the answers;
/// returns the partitions to retry.
pub async fn send_queued(
    queue: &IsrQueue,
    sender: &dyn AlterPartitionSender,
) -> Vec<Arc<Partition>> {
    let mut sent = Vec::new();
    let mut items = Vec::new();
    for p in queue.drain() {
        if let Some((topic_id, proposal)) = p.pending_isr_change() {
            items.push(AlterItem {
                topic_id,
                partition: p.topic_partition().partition,
                proposal: proposal.clone(),
            });
            // The committed ISR the proposal changes (for the metrics).
            let before = p.isr().unwrap_or_default();
            sent.push((p, proposal, before));
        }
    }
    if items.is_empty() {
        return Vec::new();
    }
    let answers = sender.alter_partition(items).await;
    let mut retry = Vec::new();
    let mut answers = answers.into_iter();
    for (p, proposal, before) in sent {
        // A missing answer is a failed request: try again.
        let answer = answers.next().unwrap_or(AlterAnswer::Retry);
        if let AlterAnswer::Committed { isr, .. } = &answer {
            // Committed by the controller, whether the image or this
            // answer brings it to the partition first.
            crate::metrics::isr_updated(&before, isr.iter().copied());
        }
        match p.apply_isr_answer(&proposal, answer) {
            AnswerEffect::Resend => retry.push(p),
            AnswerEffect::Cleared => {
                // Another proposal may be due now (a follower that fetched
                // meanwhile); the next fetch or check makes it.
            }
            AnswerEffect::Applied | AnswerEffect::Dropped | AnswerEffect::Waiting => {}
        }
    }
    retry
}
