//! The transaction coordinator's requests (Kafka's
//! `TransactionCoordinator`): InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn (through its offsets partition),
//! EndTxn, and the abort of transactions that outlive their timeout.
//!
//! Every change follows one shape: under the id's lock, check the request
//! against the state and *prepare* the change (the id is then pending:
//! anything else answers CONCURRENT_TRANSACTIONS); release the lock; write
//! it to `__transaction_state` and wait for the ISR; then *complete* it in
//! memory, or abandon it if the write failed. So an answer never reports a
//! state that a new coordinator would not load.
//!
//! EndTxn answers once the markers are written and the transaction is
//! complete (bounded by [`END_TXN_WAIT`]), where Kafka answers before the
//! markers: see that constant for why.
//!
//! Both transaction versions are spoken, as each request says
//! (`TransactionVersion`): version 1 clients add partitions explicitly and
//! keep their epoch across transactions; with version 2 (KIP-890 part 2)
//! partition leaders add partitions as the first batch arrives, and every
//! end bumps the epoch (`end.rs`). The coordinator's own abort of a fenced
//! or timed-out transaction is not a client's request: it takes the
//! cluster's finalized `transaction.version` from the image, as Kafka's
//! `transactionVersionLevel()`.

use std::sync::Arc;
use std::time::Duration;

use sluice_record::{ProducerEpoch, ProducerId};
use tokio::sync::watch;

use super::markers::{MarkerChannel, MarkerJob, TxnMarker};
use super::metadata::{
    is_epoch_exhausted, TransactionMetadata, TransactionVersion, Transition, TxnPartitions,
    NO_PRODUCER_EPOCH,
};
use super::peer::Peers;
use super::state_manager::{StatePartition, TransactionStateManager, TxnRef};
use super::{Refusal, TransactionState, TxnError, TRANSACTION_STATE_TOPIC};
use crate::metadata::{ControllerChannel, MetadataError};
use sluice_controller::ControllerError;

/// How long EndTxn waits for the markers and the completion before it
/// answers anyway (they go on in the background). Kafka answers right
/// after PrepareCommit/PrepareAbort, so a client's next transaction often
/// meets CONCURRENT_TRANSACTIONS and backs off (librdkafka for
/// `retry.backoff.ms`, 100 ms); answering once the transaction is complete
/// spares it that, and costs only the marker writes, which are local or
/// one round trip away.
pub(super) const END_TXN_WAIT: Duration = Duration::from_secs(5);

/// What InitProducerId decided under the id's lock.
enum InitStep {
    Write(Transition),
    /// The epochs of the id are exhausted: a new producer id first.
    Rotate,
    /// An ongoing transaction is fenced and aborted first; the client
    /// retries.
    Fence(Transition),
}

/// The transaction coordinator of this broker.
pub struct TransactionCoordinator {
    pub(super) state: Arc<TransactionStateManager>,
    markers: Arc<MarkerChannel>,
    controller: Arc<ControllerChannel>,
    /// Other brokers (the coordinators a partition leader asks).
    pub(super) peers: Arc<Peers>,
    /// Serializes the creation of `__transaction_state`.
    creating: tokio::sync::Mutex<()>,
    shutdown: watch::Sender<bool>,
    /// KIP-890 questions of this broker's leaders and group coordinator.
    pub(super) verifications: super::verify::VerificationCounts,
}

pub(super) fn refused(r: Refusal, id: &str) -> TxnError {
    match r {
        Refusal::Pending(_) => TxnError::ConcurrentTransactions,
        Refusal::ProducerFenced | Refusal::EpochExhausted => TxnError::ProducerFenced,
        Refusal::InvalidTransition { .. } => TxnError::InvalidTxnState,
        Refusal::Unexpected(why) => {
            tracing::error!(transactional_id = id, why, "refused transaction change");
            TxnError::UnknownServerError
        }
    }
}

impl TransactionCoordinator {
    pub fn new(
        state: Arc<TransactionStateManager>,
        markers: Arc<MarkerChannel>,
        controller: Arc<ControllerChannel>,
        peers: Arc<Peers>,
    ) -> Self {
        TransactionCoordinator {
            state,
            markers,
            controller,
            peers,
            creating: tokio::sync::Mutex::new(()),
            shutdown: watch::channel(false).0,
            verifications: Default::default(),
        }
    }

    pub fn state(&self) -> &Arc<TransactionStateManager> {
        &self.state
    }

    /// Starts the timer that aborts timed-out transactions, and the task
    /// that resumes the markers of loaded partitions.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    resumes = me.state.take_resumes() => {
                        for (p, txns) in resumes {
                            me.resume(&p, txns);
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        });
        let me = self.clone();
        let mut stop = self.shutdown.subscribe();
        let every =
            Duration::from_millis(self.state.config().abort_timed_out_interval_ms.max(10) as u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                me.abort_timed_out().await;
            }
        });
        let me = self.clone();
        let mut stop = self.shutdown.subscribe();
        let every =
            Duration::from_millis(self.state.config().remove_expired_interval_ms.max(10) as u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                me.expire_ids().await;
            }
        });
    }

    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Creates `__transaction_state` (`transaction.state.log.*`,
    /// compacted) if it does not exist yet; `Ok(true)` when this call
    /// created it (FindCoordinator then answers COORDINATOR_NOT_AVAILABLE
    /// once, as Kafka does). `cluster` is whether this node is part of a
    /// multi-node cluster (a single node has one replica to give).
    pub async fn ensure_state_topic(&self, cluster: bool) -> Result<bool, TxnError> {
        if self.state.partition_for("").is_some() {
            return Ok(false);
        }
        let _guard = self.creating.lock().await;
        if self.state.partition_for("").is_some() {
            return Ok(false);
        }
        let c = self.state.config();
        let rf = if cluster {
            c.state_log_replication_factor
        } else {
            1
        };
        let configs = std::collections::BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("compression.type".to_string(), "uncompressed".to_string()),
            (
                "unclean.leader.election.enable".to_string(),
                "false".to_string(),
            ),
            (
                "segment.bytes".to_string(),
                c.state_log_segment_bytes.to_string(),
            ),
            (
                "min.insync.replicas".to_string(),
                c.state_log_min_isr.min(i32::from(rf)).to_string(),
            ),
        ]);
        let created = self
            .controller
            .create_topic(
                TRANSACTION_STATE_TOPIC,
                c.state_log_num_partitions,
                rf,
                configs,
            )
            .await;
        match created {
            Ok(t) => {
                tracing::info!(
                    partitions = t.partitions,
                    "created {TRANSACTION_STATE_TOPIC}"
                );
                self.state.set_num_partitions(t.partitions);
                Ok(true)
            }
            Err(MetadataError::Controller(ControllerError::TopicAlreadyExists(_))) => Ok(false),
            Err(e) => {
                tracing::error!(error = %e, "cannot create {TRANSACTION_STATE_TOPIC}");
                Err(TxnError::CoordinatorNotAvailable)
            }
        }
    }

    /// Resumes the markers of transactions a load found prepared but not
    /// completed.
    pub fn resume(&self, partition: &Arc<StatePartition>, txns: Vec<TxnRef>) {
        for txn in txns {
            let job = {
                let m = txn.lock();
                self.job(partition, &txn, &m)
            };
            if let Some(job) = job {
                drop(self.markers.send(job));
            }
        }
    }

    fn job(
        &self,
        partition: &Arc<StatePartition>,
        txn: &TxnRef,
        m: &TransactionMetadata,
    ) -> Option<MarkerJob> {
        let commit = match m.state {
            TransactionState::PrepareCommit => true,
            TransactionState::PrepareAbort => false,
            _ => return None,
        };
        Some(MarkerJob {
            partition: partition.clone(),
            txn: txn.clone(),
            transactional_id: m.transactional_id.clone(),
            marker: TxnMarker {
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: partition.coordinator_epoch.0,
                commit,
                transaction_version: m.client_version.0,
            },
            partitions: m.partitions.clone(),
        })
    }

    pub(super) async fn new_producer_id(&self) -> Result<ProducerId, TxnError> {
        self.controller
            .producer_ids()
            .generate()
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot allocate a producer id");
                TxnError::CoordinatorNotAvailable
            })
    }

    /// Writes a prepared change and completes it, or abandons it.
    ///
    /// A completion refused after the write succeeded (a change that no
    /// longer fits the id's state: a bug, as `4384bd4`'s was) releases the
    /// id instead of leaving it pending for good, which would refuse every
    /// later request of the id with CONCURRENT_TRANSACTIONS and never abort
    /// its transaction. The client gets COORDINATOR_NOT_AVAILABLE, which
    /// every client retries; the retry starts from the state in memory.
    pub(super) async fn write(
        &self,
        p: &StatePartition,
        id: &str,
        txn: &TxnRef,
        t: &Transition,
    ) -> Result<(), TxnError> {
        match self.state.write(p, id, Some(t)).await {
            Ok(()) => {
                let mut m = txn.lock();
                m.complete(t).map_err(|r| {
                    tracing::error!(
                        transactional_id = id,
                        refusal = ?r,
                        "a written transaction change was refused; the id is released for the client's retry"
                    );
                    m.abandon();
                    TxnError::CoordinatorNotAvailable
                })
            }
            Err(e) => {
                txn.lock().abandon();
                Err(e)
            }
        }
    }

    /// InitProducerId with a transactional id: the producer's id and its
    /// next epoch (fencing older instances); an ongoing transaction is
    /// aborted first and the client told to retry.
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(ProducerId, ProducerEpoch)>,
    ) -> Result<(ProducerId, ProducerEpoch), TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.state.config().max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let (p, txn) = match self.state.get(id)? {
            (p, Some(txn)) => (p, txn),
            (_, None) => {
                let pid = self.new_producer_id().await?;
                let fresh = TransactionMetadata::new(id, pid, timeout_ms, self.state.now());
                self.state.get_or_insert(id, fresh)?
            }
        };
        let step = {
            let mut m = txn.lock();
            init_step(&mut m, timeout_ms, expected, self.state.now()).map_err(|r| refused(r, id))?
        };
        let t = match step {
            InitStep::Write(t) => t,
            InitStep::Rotate => {
                let pid = self.new_producer_id().await?;
                let mut m = txn.lock();
                if m.pending().is_some() || !m.is_producer_epoch_exhausted() {
                    return Err(TxnError::ConcurrentTransactions);
                }
                m.prepare_producer_id_rotation(
                    pid,
                    timeout_ms,
                    self.state.now(),
                    expected.is_some(),
                )
                .map_err(|r| refused(r, id))?
            }
            InitStep::Fence(fence) => {
                self.fenced_abort(&p, id, &txn, &fence).await?;
                return Err(TxnError::ConcurrentTransactions);
            }
        };
        self.write(&p, id, &txn, &t).await?;
        let m = txn.lock();
        Ok((m.producer_id, m.producer_epoch))
    }

    /// The cluster's finalized `transaction.version` in this broker's
    /// image (0 when not finalized), as UpdateFeatures last set it.
    fn cluster_transaction_version(&self) -> TransactionVersion {
        let image = self.peers.image().image();
        TransactionVersion(
            image
                .feature_level(sluice_metadata::features::TRANSACTION_VERSION)
                .unwrap_or(0),
        )
    }

    /// Aborts an ongoing transaction in the epoch `fence` bumped to, in
    /// the style of the cluster's transaction version.
    async fn fenced_abort(
        &self,
        p: &Arc<StatePartition>,
        id: &str,
        txn: &TxnRef,
        fence: &Transition,
    ) -> Result<(), TxnError> {
        let cluster = self.cluster_transaction_version();
        let t = txn
            .lock()
            .prepare_fenced_abort(fence, self.state.now(), cluster)
            .map_err(|r| refused(r, id))?;
        self.write(p, id, txn, &t).await?;
        // The fenced producer's client retries; it need not wait here.
        drop(self.send_markers(p, txn));
        Ok(())
    }

    pub(super) fn send_markers(
        &self,
        p: &Arc<StatePartition>,
        txn: &TxnRef,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let job = {
            let m = txn.lock();
            self.job(p, txn, &m)
        };
        job.map(|job| self.markers.send(job))
    }

    /// `id`'s state and partition (INVALID_PRODUCER_ID_MAPPING for an id
    /// without state); its producer is checked under its lock
    /// ([`check_producer`]).
    pub(super) fn existing(&self, id: &str) -> Result<(Arc<StatePartition>, TxnRef), TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        match self.state.get(id)? {
            (p, Some(txn)) => Ok((p, txn)),
            (_, None) => Err(TxnError::InvalidProducerIdMapping),
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn's offsets partition): the
    /// partitions join the transaction, which becomes Ongoing. Partitions
    /// already in an ongoing transaction need no write.
    pub async fn add_partitions(
        &self,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        added: &TxnPartitions,
        version: TransactionVersion,
    ) -> Result<(), TxnError> {
        let (p, txn) = self.existing(id)?;
        let t = {
            let mut m = txn.lock();
            check_producer(&m, pid, epoch)?;
            if m.pending().is_some()
                || matches!(
                    m.state,
                    TransactionState::PrepareCommit | TransactionState::PrepareAbort
                )
            {
                return Err(TxnError::ConcurrentTransactions);
            }
            let known = m.state == TransactionState::Ongoing
                && added.iter().all(|(topic, ids)| {
                    m.partitions
                        .get(topic)
                        .is_some_and(|have| have.is_superset(ids))
                });
            if known {
                return Ok(());
            }
            m.prepare_add_partitions(added, self.state.now(), version)
                .map_err(|r| refused(r, id))?
        };
        self.write(&p, id, &txn, &t).await
    }

    /// Aborts every Ongoing transaction older than its timeout (fencing
    /// its producer's epoch, as Kafka does).
    pub async fn abort_timed_out(&self) {
        let now = self.state.now();
        for p in self.state.current() {
            for txn in p.all() {
                let fence = {
                    let mut m = txn.lock();
                    let expired = m.state == TransactionState::Ongoing
                        && m.pending().is_none()
                        && m.start_ms.saturating_add(i64::from(m.timeout_ms)) < now;
                    if !expired {
                        continue;
                    }
                    tracing::info!(transactional_id = %m.transactional_id, producer_id = m.producer_id.0, "aborting a timed-out transaction");
                    match m.prepare_fence_producer_epoch() {
                        Ok(t) => (m.transactional_id.clone(), t),
                        Err(_) => continue,
                    }
                };
                let (id, t) = fence;
                if let Err(e) = self.fenced_abort(&p, &id, &txn, &t).await {
                    tracing::warn!(transactional_id = %id, error = %e, "timed-out transaction not aborted yet");
                }
            }
        }
    }
}

impl TransactionCoordinator {
    /// Removes transactional ids idle for `transactional.id.expiration.ms`
    /// with no transaction in flight: a tombstone in `__transaction_state`
    /// (so a reload forgets them too), then out of memory.
    pub async fn expire_ids(&self) {
        let now = self.state.now();
        let expiration = self.state.config().id_expiration_ms;
        for p in self.state.current() {
            for txn in p.all() {
                let id = {
                    let mut m = txn.lock();
                    let idle = m.state.expiration_allowed()
                        && m.pending().is_none()
                        && m.last_update_ms.saturating_add(expiration) <= now;
                    if !idle || m.prepare_dead().is_err() {
                        continue;
                    }
                    m.transactional_id.clone()
                };
                match self.state.write(&p, &id, None).await {
                    Ok(()) => {
                        tracing::info!(transactional_id = %id, "transactional id expired");
                        self.state.remove(&p, &id, &txn);
                    }
                    Err(e) => {
                        txn.lock().abandon();
                        tracing::warn!(transactional_id = %id, error = %e, "expiry not written");
                    }
                }
            }
        }
    }
}

/// Kafka's `prepareInitProducerIdTransit`.
fn init_step(
    m: &mut TransactionMetadata,
    timeout_ms: i32,
    expected: Option<(ProducerId, ProducerEpoch)>,
    now_ms: i64,
) -> Result<InitStep, Refusal> {
    use TransactionState::*;
    if let Some(p) = m.pending() {
        return Err(Refusal::Pending(p));
    }
    if let Some((pid, epoch)) = expected {
        // A fresh id (no epoch yet), the current producer id, or the
        // previous one at an exhausted epoch (a retry of a rotation whose
        // answer was lost) may re-initialise; anything else is a zombie.
        let valid = m.producer_epoch == NO_PRODUCER_EPOCH
            || pid == m.producer_id
            || (pid == m.previous_producer_id && is_epoch_exhausted(epoch));
        if !valid {
            return Err(Refusal::ProducerFenced);
        }
    }
    match m.state {
        PrepareAbort | PrepareCommit | Dead | PrepareEpochFence => Err(Refusal::Pending(m.state)),
        CompleteAbort | CompleteCommit | Empty => {
            if m.is_producer_epoch_exhausted()
                && expected.is_none_or(|(_, e)| e == m.producer_epoch)
            {
                Ok(InitStep::Rotate)
            } else {
                m.prepare_increment_producer_epoch(timeout_ms, expected.map(|(_, e)| e), now_ms)
                    .map(InitStep::Write)
            }
        }
        Ongoing => m.prepare_fence_producer_epoch().map(InitStep::Fence),
    }
}

/// The request's producer is the id's current one: another producer id is
/// INVALID_PRODUCER_ID_MAPPING, another epoch PRODUCER_FENCED (version 1).
pub(super) fn check_producer(
    m: &TransactionMetadata,
    pid: ProducerId,
    epoch: ProducerEpoch,
) -> Result<(), TxnError> {
    if m.producer_id != pid {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if m.producer_epoch != epoch {
        return Err(TxnError::ProducerFenced);
    }
    Ok(())
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
