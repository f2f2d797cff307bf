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
//! - The *operation* task takes operations from a bounded queue, one at a
//!   time: it checks that this node leads the log, waits until the image
//!   holds everything committed so far (the high watermark), generates the
//!   records against that image, checks that they replay on it, appends
//!   them at the epoch it saw, waits until the image includes them, and
//!   only then answers. An operation that writes nothing (validate-only, a
//!   heartbeat that changes nothing, every item failing) answers at once.
//!
//! Why one in flight and not pipelined against a speculative image:
//! generation sees exactly the committed state, so a failed or uncertain
//! append never leaves a speculative image to unwind, and the answer to a
//! request is always that of a committed state. The cost is one commit
//! (one fsync on a single voter, one round to a majority on a quorum) per
//! operation; operations are requests carrying many items (CreateTopics
//! with many topics is one batch), so that is the rate of requests, not of
//! topics. Dropping a caller's future does not cancel its operation: it
//! runs in the operation task, so the committed state and the image stay
//! in step.
//!
//! Invariants:
//! - Nothing is answered `Ok` before its records are committed and applied
//!   to the image the next operation generates against.
//! - Every appended batch replays on the image it was generated from (no
//!   record that would fail replay on every node reaches the log).
//! - Time comes only from the [`Clock`] given at start.

mod brokers;
mod configs;
mod misc;
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

use brokers::Sessions;
pub use brokers::{BrokerHeartbeat, BrokerRegistrationRequest, HeartbeatReply, RegisteredBroker};
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
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            default_num_partitions: 1,
            default_replication_factor: 1,
            broker_session_timeout_ms: 9000,
            max_queued_operations: 1024,
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
        });
        let follower = tokio::spawn(follow(log.listen(), applied_tx));
        let operations = tokio::spawn(run_operations(shared.clone(), ops_rx));
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

    /// The leader and epoch of the metadata log as this node knows them.
    pub fn leader_and_epoch(&self) -> LeaderAndEpoch {
        self.shared.log.leader_and_epoch()
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.shared.log.leader_and_epoch().leader == Some(self.shared.log.node_id())
    }

    /// Stops taking operations, lets the one in flight finish, and stops
    /// the tasks. Queued operations answer [`LogError::Shutdown`].
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
        let (tx, rx) = oneshot::channel::<Result<R, ControllerError>>();
        let op: Op = Box::new(move |ctx| {
            let planned = ctx.and_then(plan);
            match planned {
                Ok((records, answer)) => Planned {
                    records,
                    finish: Box::new(move |res| {
                        let _ = tx.send(res.map(|()| answer));
                    }),
                },
                Err(e) => {
                    let _ = tx.send(Err(e));
                    Planned {
                        records: Vec::new(),
                        finish: Box::new(|_| {}),
                    }
                }
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

/// The operation task: one operation at a time, in queue order.
/// Every `broker.session.timeout.ms / 4` it also fences expired brokers
/// (the timer only wakes it; expiry is judged by the controller's clock).
async fn run_operations(shared: Arc<Shared>, mut ops: mpsc::Receiver<Op>) {
    let mut sessions = Sessions::default();
    let period = (shared.config.broker_session_timeout_ms / 4).max(10) as u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(period));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let op = tokio::select! {
            op = ops.recv() => match op {
                Some(op) => op,
                None => return,
            },
            _ = tick.tick() => brokers::fence_expired_op(),
        };
        run_one(&shared, &mut sessions, op).await;
    }
}

async fn run_one(shared: &Shared, sessions: &mut Sessions, op: Op) {
    let log = &shared.log;
    let node = log.node_id();
    let le = log.leader_and_epoch();
    if le.leader != Some(node) {
        (op)(Err(ControllerError::NotController(le)));
        return;
    }
    // Everything committed before this operation must be in the image it
    // is generated against.
    let committed = Offset(log.quorum_info().high_watermark.0 - 1);
    let image = match wait_applied(&shared.applied, committed).await {
        Ok(image) => image,
        Err(e) => {
            (op)(Err(e));
            return;
        }
    };
    let mut ctx = OpContext {
        image: &image,
        config: &shared.config,
        validator: &*shared.validator,
        node_id: node,
        now_ms: shared.clock.now_ms(),
        sessions,
    };
    let Planned { records, finish } = (op)(Ok(&mut ctx));
    if records.is_empty() {
        finish(Ok(()));
        return;
    }
    if let Err(e) = check_replay(&image, le, &records) {
        finish(Err(e));
        return;
    }
    let result = match log.append(le.epoch, records).await {
        Ok(last) => wait_applied(&shared.applied, last).await.map(|_| ()),
        Err(LogError::NotLeader(l)) => Err(ControllerError::NotController(l)),
        Err(e) => Err(ControllerError::Log(e)),
    };
    finish(result);
}

/// Replays `records` on a delta of `image` as if they were the next
/// batch: a record that does not fit is a controller bug, refused before
/// it reaches the log.
fn check_replay(
    image: &MetadataImage,
    le: LeaderAndEpoch,
    records: &[MetadataRecord],
) -> Result<(), ControllerError> {
    let mut delta = MetadataDelta::new(image.clone());
    let next = image.provenance().last_offset.0 + 1;
    let epoch = le.epoch.max(image.provenance().last_epoch);
    for (i, r) in records.iter().enumerate() {
        delta
            .replay(Offset(next + i as i64), epoch, r)
            .map_err(|e| {
                ControllerError::Internal(format!("generated record {r:?} does not replay: {e}"))
            })?;
    }
    Ok(())
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
