//! The quorum controller (Kafka's `QuorumController`): turns requests into
//! metadata records, appends them to the [`MetadataLog`] at its epoch, and
//! answers only once they are committed and applied to its image.
//!
//! How it runs: two tasks per controller.
//! - The *follower* task pulls the log through its own [`LogListener`]
//!   and applies every committed batch (or snapshot) to the committed
//!   [`MetadataImage`], published through a `watch` channel. A batch that
//!   does not replay makes the controller fail (every later operation
//!   answers [`LogError::Fatal`]).
//! - The *operation* task (`run.rs`) takes operations from a bounded queue
//!   and commits them in groups: it checks that this node leads the log
//!   and that the follower has applied this node's own leader change (so
//!   the entries of earlier epochs that commit with a new leader's first
//!   entry are in the image; Kafka's controller claims leadership from
//!   `handleLeaderChange` likewise),
//!   waits until the image holds everything committed so far (the high
//!   watermark), then plans each queued operation in turn against a
//!   speculative image (the committed one plus the records of the
//!   operations planned before it in the group, applied with
//!   [`MetadataDelta`] after checking that they replay), appends the
//!   group's records as one batch at the epoch it saw, waits until the
//!   committed image includes them, and only then answers all of them.
//!
//! Why group commit rather than one operation per commit or a pipeline:
//! one commit (an fsync on a single voter, a round to a majority on a
//! quorum) is the cost of a write, so concurrent requests (heartbeats of
//! many brokers, a client creating topics in parallel) share it; but only
//! one batch is ever in flight, so a failed or uncertain append fails
//! exactly the operations of that group and leaves no speculative state
//! behind: the next group starts again from the committed image. Every
//! answer planned against a speculative image, errors included (a topic
//! that already exists because an earlier operation of the group creates
//! it), waits for the group's commit and becomes that commit's error if it
//! fails. Operations planned before the group wrote anything answer at
//! once. A group holds at most `max_records_per_batch` records; an
//! operation that would overflow it commits what is there first. An
//! operation larger than a batch is refused by the log, unless it is not
//! atomic (a broker's registration, fencing or controlled shutdown, the
//! periodic elections): its records then commit a batch at a time, as
//! Kafka splits its non-atomic results. Dropping
//! a caller's future does not cancel its operation: it runs in the
//! operation task, so the committed state and the image stay in step.
//!
//! Invariants:
//! - Nothing is answered before everything it was planned against is
//!   committed and applied to the image the next group starts from.
//! - Every appended batch replays on the image it was generated from (no
//!   record that would fail replay on every node reaches the log).
//! - Time comes only from the [`Clock`] given at start.

mod acls;
mod brokers;
mod change;
mod configs;
mod features;
mod isr;
mod misc;
mod quotas;
mod reassign;
mod rebalance;
mod run;
mod scram;
mod topics;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use parking_lot::Mutex;
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataDelta, MetadataImage, MetadataRecord};
use sluice_record::Offset;
use sluice_storage::Clock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::ControllerError;
use crate::log::{LeaderAndEpoch, LogError, LogEvent, LogListener, MetadataLog};
use crate::quota::mutation::ControllerMutationQuotas;
use crate::quota::QuotaWindows;

pub use acls::{AclCreateResults, AclDeleteResults, MAX_ACL_RECORDS_PER_REQUEST};
pub use brokers::{
    BrokerHeartbeat, BrokerRegistrationRequest, HeartbeatReply, RegisteredBroker, SessionExpiry,
    RECENT_EXPIRIES,
};
use brokers::{SessionExpiries, Sessions};
pub use features::{FeatureUpdate, UpgradeType};
pub use isr::{
    AlterPartitionItem, AlterPartitionReply, AlterPartitionRequest, AlterPartitionResult,
    PartitionState,
};
pub use quotas::{QuotaAlteration, QuotaEntityPairs, QuotaResults};
pub use reassign::{OngoingReassignment, ReassignPartition, ReassignmentResult};
pub use rebalance::MAX_ELECTIONS_PER_BALANCE;
pub use scram::{ScramDeletion, ScramResults, ScramUpsertion, MAX_SCRAM_ITERATIONS};
pub use types::*;

/// Settings of the quorum controller (Kafka's keys).
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// `num.partitions`: partitions of a topic created with -1.
    pub default_num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this
    /// long is fenced.
    pub broker_session_timeout_ms: i64,
    /// Operations waiting for the controller; callers wait when it is full.
    pub max_queued_operations: usize,
    /// Most records one group commit appends (keep it at or below the
    /// log's per-append limit; an operation larger than this goes alone).
    pub max_records_per_batch: usize,
    /// What the first active controller of an empty log commits before
    /// anything else (Kafka's `bootstrap.checkpoint`: `metadata.version`).
    /// Empty: nothing (a log someone else bootstraps, as the single-node
    /// broker does before it starts its controller).
    pub bootstrap: Vec<MetadataRecord>,
    /// `min.insync.replicas` of topics without an override (the cluster
    /// default in the image comes first).
    pub default_min_insync_replicas: i32,
    /// `unclean.leader.election.enable` of topics without an override.
    pub unclean_leader_election_enable: bool,
    /// `unclean.leader.election.interval.ms`: how often offline partitions
    /// of topics that allow it get an unclean election.
    pub unclean_leader_election_interval_ms: i64,
    /// KIP-966 eligible leader replicas (Kafka's
    /// `eligible.leader.replicas.version` feature; Kafka 4.1 turns it on
    /// for new clusters).
    pub eligible_leader_replicas_enabled: bool,
    /// New partitions start with every usable replica in their ISR, as
    /// Kafka's. Off: the leader alone, for nodes whose followers do not
    /// replicate (a follower without the data must not be electable).
    pub new_partitions_isr_all_usable: bool,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred
    /// replicas (`rebalance.rs`).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms: how long after an
    /// imbalance is seen the balance runs.
    pub leader_imbalance_check_interval_ms: i64,
    /// The `controller_mutation_rate` token buckets (KIP-599), one per
    /// quota group, made with `controller.quota.window.*`. A broker on the
    /// same node passes its own to render them with its metrics.
    pub mutation_quotas: Arc<ControllerMutationQuotas>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            default_num_partitions: 1,
            default_replication_factor: 1,
            broker_session_timeout_ms: 1200,
            max_queued_operations: 1024,
            max_records_per_batch: 10_000,
            bootstrap: Vec::new(),
            default_min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            unclean_leader_election_interval_ms: 300_000,
            eligible_leader_replicas_enabled: false,
            new_partitions_isr_all_usable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            mutation_quotas: Arc::new(ControllerMutationQuotas::new(QuotaWindows::default())),
        }
    }
}

/// What an operation's generator sees.
pub(crate) struct OpContext<'a> {
    pub image: &'a MetadataImage,
    pub config: &'a ControllerConfig,
    pub validator: &'a dyn ConfigValidator,
    /// This node (the active controller).
    pub node_id: BrokerId,
    pub now_ms: i64,
    pub sessions: &'a mut Sessions,
}

/// Records to append and what to answer once they commit (or fail).
struct Planned {
    records: Vec<MetadataRecord>,
    finish: Box<dyn FnOnce(Result<(), ControllerError>) + Send>,
    /// All its records commit in one batch, or it is refused when they do
    /// not fit one. False for a broker's lifecycle (fencing, controlled
    /// shutdown, registration), whose leadership moves may outgrow a batch
    /// and are then committed in several (Kafka's non-atomic results).
    atomic: bool,
}

/// An operation: called with the context to plan it, or with the error
/// that stops it before planning (not the controller, log failed).
type Op = Box<dyn for<'a> FnOnce(Result<&mut OpContext<'a>, ControllerError>) -> Planned + Send>;

/// The committed state as the follower task last applied it.
#[derive(Clone, Debug)]
struct Applied {
    image: MetadataImage,
    leader: Option<LeaderAndEpoch>,
    /// Why the follower stopped.
    failed: Option<Stopped>,
}

#[derive(Clone, Debug)]
enum Stopped {
    /// The log shut down.
    Shutdown,
    /// A committed record that does not replay, or a fatal log error.
    Fatal(String),
}

struct Shared {
    log: Arc<dyn MetadataLog>,
    config: ControllerConfig,
    validator: Arc<dyn ConfigValidator>,
    clock: Arc<dyn Clock>,
    applied: watch::Receiver<Applied>,
    /// Brokers fenced for an expired session.
    expiries: Arc<Mutex<SessionExpiries>>,
}

/// The quorum controller of one node. Cheap to share behind an `Arc`.
pub struct QuorumController {
    shared: Arc<Shared>,
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl QuorumController {
    /// Starts the controller's tasks on the current tokio runtime. It
    /// serves operations whenever this node leads `log`.
    pub fn start(
        log: Arc<dyn MetadataLog>,
        config: ControllerConfig,
        validator: Arc<dyn ConfigValidator>,
        clock: Arc<dyn Clock>,
    ) -> QuorumController {
        let (applied_tx, applied_rx) = watch::channel(Applied {
            image: MetadataImage::empty(),
            leader: None,
            failed: None,
        });
        let (ops_tx, ops_rx) = mpsc::channel(config.max_queued_operations.max(1));
        let shared = Arc::new(Shared {
            log: log.clone(),
            config,
            validator,
            clock,
            applied: applied_rx,
            expiries: Arc::default(),
        });
        let follower = tokio::spawn(follow(log.listen(), applied_tx));
        let operations = tokio::spawn(run::run_operations(shared.clone(), ops_rx));
        QuorumController {
            shared,
            ops: Mutex::new(Some(ops_tx)),
            tasks: Mutex::new(vec![follower, operations]),
        }
    }

    /// The committed image as applied so far.
    pub fn image(&self) -> MetadataImage {
        self.shared.applied.borrow().image.clone()
    }

    /// Waits until the committed image includes `offset` (or the
    /// controller failed), and returns it.
    pub async fn image_at(&self, offset: Offset) -> Result<MetadataImage, ControllerError> {
        wait_applied(&self.shared.applied, offset).await
    }

    /// Resolves with the reason once this controller stopped following
    /// its log (a record that does not replay, a failed log); never after
    /// a clean shutdown.
    pub async fn failure(&self) -> String {
        // The image never reaches this offset: the wait ends only when the
        // controller's follower stops.
        match self.image_at(Offset(i64::MAX)).await {
            Err(ControllerError::Log(LogError::Shutdown)) | Ok(_) => {
                std::future::pending::<String>().await
            }
            Err(e) => format!("quorum controller: {e}"),
        }
    }

    /// The leader and epoch of the metadata log as this node knows them.
    pub fn leader_and_epoch(&self) -> LeaderAndEpoch {
        self.shared.log.leader_and_epoch()
    }

    /// This node's id (`node.id`).
    pub fn node_id(&self) -> BrokerId {
        self.shared.log.node_id()
    }

    /// The metadata quorum as this node's log sees it (DescribeQuorum).
    pub fn quorum_info(&self) -> crate::log::QuorumInfo {
        self.shared.log.quorum_info()
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.shared.log.leader_and_epoch().leader == Some(self.shared.log.node_id())
    }

    /// Stops taking operations, lets the group in flight finish, and stops
    /// the tasks. Queued operations answer [`LogError::Shutdown`]. An
    /// append the log can never commit (a quorum without a majority) holds
    /// this up until the log resolves it: shut the log down first, or
    /// concurrently, when the quorum may be gone.
    pub async fn shutdown(&self) {
        drop(self.ops.lock().take());
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        let mut tasks = tasks.into_iter();
        let follower = tasks.next();
        for t in tasks {
            let _ = t.await;
        }
        if let Some(f) = follower {
            f.abort();
            let _ = f.await;
        }
    }

    /// Queues an operation and waits for its answer. `plan` runs in the
    /// operation task against the committed image; its records are
    /// appended and `R` is answered once they commit.
    async fn submit<R, F>(&self, plan: F) -> Result<R, ControllerError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&mut OpContext<'a>) -> Result<(Vec<MetadataRecord>, R), ControllerError>
            + Send
            + 'static,
    {
        self.submit_as(true, plan).await
    }

    /// [`QuorumController::submit`] of an operation whose records may be
    /// committed in several batches when they outgrow one
    /// ([`Planned::atomic`] false).
    async fn submit_non_atomic<R, F>(&self, plan: F) -> Result<R, ControllerError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&mut OpContext<'a>) -> Result<(Vec<MetadataRecord>, R), ControllerError>
            + Send
            + 'static,
    {
        self.submit_as(false, plan).await
    }

    async fn submit_as<R, F>(&self, atomic: bool, plan: F) -> Result<R, ControllerError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&mut OpContext<'a>) -> Result<(Vec<MetadataRecord>, R), ControllerError>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, ControllerError>>();
        let op: Op = Box::new(move |ctx| {
            let planned = ctx.and_then(plan);
            match planned {
                Ok((records, answer)) => Planned {
                    records,
                    finish: Box::new(move |res| {
                        let _ = tx.send(res.map(|()| answer));
                    }),
                    atomic,
                },
                // Delivered when the operation task says so: an error found
                // against a speculative image is only true once what it
                // saw commits.
                Err(e) => Planned {
                    records: Vec::new(),
                    finish: Box::new(move |res| {
                        let _ = tx.send(Err(res.err().unwrap_or(e)));
                    }),
                    atomic,
                },
            }
        });
        let sender = self.ops.lock().clone();
        let Some(sender) = sender else {
            return Err(ControllerError::Log(LogError::Shutdown));
        };
        if sender.send(op).await.is_err() {
            return Err(ControllerError::Log(LogError::Shutdown));
        }
        rx.await
            .unwrap_or(Err(ControllerError::Log(LogError::Shutdown)))
    }
}

/// The follower task: applies the committed log to the image.
async fn follow(mut listener: Box<dyn LogListener>, tx: watch::Sender<Applied>) {
    loop {
        let event = listener.next().await;
        let failed = match event {
            Ok(LogEvent::Snapshot(image)) => {
                tx.send_modify(|a| a.image = image);
                continue;
            }
            Ok(LogEvent::LeaderChange(l)) => {
                tx.send_modify(|a| a.leader = Some(l));
                continue;
            }
            Ok(LogEvent::Batch(batch)) => {
                let mut delta = MetadataDelta::new(tx.borrow().image.clone());
                let mut err = None;
                for (i, r) in batch.records.iter().enumerate() {
                    let offset = Offset(batch.base_offset.0 + i as i64);
                    if let Err(e) = delta.replay(offset, batch.epoch, r) {
                        err = Some(format!(
                            "committed record at offset {} does not replay: {e}",
                            offset.0
                        ));
                        break;
                    }
                }
                match err {
                    None => {
                        let (image, _) = delta.apply();
                        tx.send_modify(|a| a.image = image);
                        continue;
                    }
                    Some(e) => Stopped::Fatal(e),
                }
            }
            Err(LogError::Shutdown) => Stopped::Shutdown,
            Err(e) => Stopped::Fatal(e.to_string()),
        };
        if let Stopped::Fatal(reason) = &failed {
            tracing::error!(%reason, "quorum controller stops following the metadata log");
        }
        tx.send_modify(|a| a.failed = Some(failed));
        return;
    }
}

async fn wait_applied(
    applied: &watch::Receiver<Applied>,
    offset: Offset,
) -> Result<MetadataImage, ControllerError> {
    let mut rx = applied.clone();
    let a = rx
        .wait_for(|a| a.failed.is_some() || a.image.provenance().last_offset >= offset)
        .await
        .map_err(|_| ControllerError::Log(LogError::Shutdown))?;
    if a.image.provenance().last_offset >= offset {
        return Ok(a.image.clone());
    }
    Err(ControllerError::Log(match &a.failed {
        Some(Stopped::Fatal(reason)) => LogError::Fatal(reason.clone()),
        _ => LogError::Shutdown,
    }))
}

/// Kafka's broker-epoch check: `broker` is registered with `epoch`.
pub(crate) fn check_broker_epoch(
    image: &MetadataImage,
    broker: BrokerId,
    epoch: BrokerEpoch,
) -> Result<(), ControllerError> {
    match image.broker(broker) {
        None => Err(ControllerError::BrokerIdNotRegistered(broker)),
        Some(b) if b.epoch != epoch => Err(ControllerError::StaleBrokerEpoch {
            broker,
            given: epoch.0,
            current: b.epoch.0,
        }),
        Some(_) => Ok(()),
    }
}
