//! The operation task: group commit of queued operations against a
//! speculative image (see the [module docs](super) for why).
//!
//! Invariants:
//! - One append in flight; a group's records are one batch.
//! - An operation planned after the group wrote something is answered
//!   only after that group commits (with the commit's error if it fails).
//! - A timer's operation (the fencing check, unclean elections, a
//!   balance) is planned after every request queued when it fired.
//! - Each group starts from the committed image at the high watermark;
//!   after a commit in the middle of a group the rest is planned against
//!   the image the follower applied, not against the speculation.

use std::sync::Arc;
use std::time::Duration;

use sluice_metadata::{MetadataDelta, MetadataImage, MetadataRecord};
use sluice_record::Offset;
use tokio::sync::mpsc;

use super::brokers::{self, Sessions};
use super::{wait_applied, Op, OpContext, Planned, Shared};
use crate::error::ControllerError;
use crate::log::{LeaderAndEpoch, LogError};

/// Most operations taken from the queue into one group.
const MAX_GROUP_OPERATIONS: usize = 512;

type Finish = Box<dyn FnOnce(Result<(), ControllerError>) + Send>;

/// Runs operations until the queue closes. Every [`fencing_check_period`]
/// it also fences expired brokers (the timer only wakes it; expiry is
/// judged by the controller's clock), and every
/// `unclean.leader.election.interval.ms` it elects leaders for offline
/// partitions of topics that allow unclean elections; preferred leader
/// balances run when `rebalance.rs` schedules them.
pub(super) async fn run_operations(shared: Arc<Shared>, mut ops: mpsc::Receiver<Op>) {
    let mut sessions = Sessions::default();
    let period = fencing_check_period(shared.config.broker_session_timeout_ms);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(period));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let unclean_period = shared.config.unclean_leader_election_interval_ms.max(10) as u64;
    let mut unclean = tokio::time::interval(std::time::Duration::from_millis(unclean_period));
    unclean.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut balance = super::rebalance::BalanceSchedule::new(&shared);
    // The loop's own monotonic time (the timers'), in ms since it started:
    // how late a fencing check comes is judged on it, not on the
    // controller's clock.
    let started = tokio::time::Instant::now();
    let timer_ms = || started.elapsed().as_millis() as i64;
    let mut last_check = None;
    loop {
        // From here the loop waits, idle: a fencing check that comes late
        // past this point came late because the process did not run.
        let ready = timer_ms();
        let (request, timer) = tokio::select! {
            op = ops.recv() => match op {
                Some(op) => (Some(op), None),
                None => return,
            },
            _ = tick.tick() => {
                let at = timer_ms();
                let stalled = brokers::stalled_ms(last_check.replace(at), ready, at, period as i64);
                sessions.credit_stall(shared.clock.now_ms(), stalled);
                (None, Some(brokers::fence_expired_op(shared.expiries.clone())))
            }
            _ = unclean.tick() => (None, Some(super::misc::elect_unclean_op())),
            op = balance.due() => (None, Some(op)),
        };
        let mut group: Vec<Op> = request.into_iter().collect();
        while group.len() < MAX_GROUP_OPERATIONS {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        // A timer's operation comes after the requests already queued: a
        // heartbeat that waited behind a slow commit (a metadata fsync of
        // seconds on a busy disk) counts before the fencing check judges
        // its broker's session, as in Kafka's FIFO event queue.
        group.extend(timer);
        run_group(&shared, &mut sessions, group).await;
        sessions.answered(shared.clock.now_ms());
    }
}

/// How often the fencing check runs: a dead broker is fenced at most this
/// long after its session expired, which is part of every leader failover.
/// Kafka schedules the check at the next expiry; a twentieth of the
/// session (10 ms to 250 ms) keeps that delay within 5% of the session,
/// and a check that fences nobody appends nothing.
fn fencing_check_period(session_timeout_ms: i64) -> u64 {
    (session_timeout_ms / 20).clamp(10, 250) as u64
}

/// Records planned but not yet appended, and who waits for them.
#[derive(Default)]
struct Pending {
    records: Vec<MetadataRecord>,
    waiting: Vec<Finish>,
}

/// Answers `op` with `e` without planning it.
fn refuse(op: Op, e: ControllerError) {
    let Planned { finish, .. } = op(Err(e));
    finish(Ok(()));
}

async fn run_group(shared: &Shared, sessions: &mut Sessions, ops: Vec<Op>) {
    let log = &shared.log;
    let node = log.node_id();
    let le = log.leader_and_epoch();
    if le.leader != Some(node) {
        ops.into_iter()
            .for_each(|op| refuse(op, ControllerError::NotController(le)));
        return;
    }
    // Active only once the follower has applied this node's own leader
    // change (Kafka's controller claims leadership from
    // `handleLeaderChange`, delivered in log order): until then, entries of
    // earlier epochs may still commit ahead of anything appended now (with
    // a Raft leader's first entry) and the image would lack them.
    if let Err(e) = wait_claimed(shared, le).await {
        ops.into_iter().for_each(|op| refuse(op, e.duplicate()));
        return;
    }
    let leaderless = log.since_leader_contact().unwrap_or_default();
    sessions.activate(
        le.epoch,
        shared.clock.now_ms(),
        i64::try_from(leaderless.as_millis()).unwrap_or(i64::MAX),
        shared.config.broker_session_timeout_ms,
    );
    // Everything committed before this group must be in the image it is
    // planned against.
    let committed = Offset(log.quorum_info().high_watermark.0 - 1);
    let mut spec = match wait_applied(&shared.applied, committed).await {
        Ok(image) => image,
        Err(e) => {
            ops.into_iter().for_each(|op| refuse(op, e.duplicate()));
            return;
        }
    };
    let mut pending = Pending::default();
    if spec.is_empty() && !shared.config.bootstrap.is_empty() {
        // A new cluster's log: its bootstrap records go first, in the
        // group's batch, so every operation is planned against them.
        match speculate(&spec, le, &shared.config.bootstrap) {
            Ok(next) => {
                spec = next;
                pending
                    .records
                    .extend(shared.config.bootstrap.iter().cloned());
                tracing::info!(
                    records = shared.config.bootstrap.len(),
                    "bootstrapping the empty metadata log"
                );
            }
            Err(e) => {
                ops.into_iter().for_each(|op| refuse(op, e.duplicate()));
                return;
            }
        }
    }
    let mut failed: Option<ControllerError> = None;
    for op in ops {
        if let Some(e) = &failed {
            refuse(op, e.duplicate());
            continue;
        }
        let mut ctx = OpContext {
            image: &spec,
            config: &shared.config,
            validator: &*shared.validator,
            node_id: node,
            now_ms: shared.clock.now_ms(),
            sessions: &mut *sessions,
        };
        let Planned {
            records,
            finish,
            atomic,
        } = op(Ok(&mut ctx));
        if records.is_empty() {
            if pending.records.is_empty() {
                finish(Ok(()));
            } else {
                pending.waiting.push(finish);
            }
            continue;
        }
        let limit = shared.config.max_records_per_batch;
        if !pending.records.is_empty() && pending.records.len() + records.len() > limit {
            // Commit what is there; this operation was planned against
            // exactly what that commit makes true.
            match commit(shared, le, &spec, &mut pending).await {
                Ok(image) => spec = image,
                Err(e) => {
                    finish(Err(e.duplicate()));
                    failed = Some(e);
                    continue;
                }
            }
        }
        let records = if atomic || records.len() <= limit {
            records
        } else {
            match commit_leading_batches(shared, le, &mut spec, &mut pending, records).await {
                Ok(rest) => rest,
                Err(Split::Invalid(e)) => {
                    finish(Err(e));
                    continue;
                }
                Err(Split::Failed(e)) => {
                    finish(Err(e.duplicate()));
                    failed = Some(e);
                    continue;
                }
            }
        };
        match speculate(&spec, le, &records) {
            Ok(next) => {
                spec = next;
                pending.records.extend(records);
                pending.waiting.push(finish);
            }
            Err(e) => finish(Err(e)),
        }
    }
    if failed.is_none() && !pending.records.is_empty() {
        let _ = commit(shared, le, &spec, &mut pending).await;
    }
}

/// How long a new leader's operations wait for its leader change to be
/// applied before they are refused (NOT_CONTROLLER, retried by brokers).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until the follower applied the leader change that made this node
/// leader at `le`'s epoch.
async fn wait_claimed(shared: &Shared, le: LeaderAndEpoch) -> Result<(), ControllerError> {
    let mut rx = shared.applied.clone();
    let reached =
        |a: &super::Applied| a.failed.is_some() || a.leader.is_some_and(|l| l.epoch >= le.epoch);
    let _ = tokio::time::timeout(CLAIM_TIMEOUT, rx.wait_for(reached)).await;
    let a = shared.applied.borrow().clone();
    if a.leader == Some(le) {
        return Ok(());
    }
    Err(match a.failed {
        Some(super::Stopped::Fatal(reason)) => ControllerError::Log(LogError::Fatal(reason)),
        Some(super::Stopped::Shutdown) => ControllerError::Log(LogError::Shutdown),
        None => ControllerError::NotController(shared.log.leader_and_epoch()),
    })
}

/// Appends the pending records as one batch, waits until the follower
/// applied them, and answers everyone waiting (with the error if any).
async fn commit(
    shared: &Shared,
    le: LeaderAndEpoch,
    planned: &MetadataImage,
    pending: &mut Pending,
) -> Result<MetadataImage, ControllerError> {
    let records = std::mem::take(&mut pending.records);
    let waiting = std::mem::take(&mut pending.waiting);
    let planned_last = planned.provenance().last_offset;
    let result = match shared.log.append(le.epoch, records).await {
        // The group was planned against an image that ended where the
        // batch was to start; anything else means it was planned against a
        // stale image (its broker epochs and checks may be wrong). The
        // records are committed, but nobody is told they did what was
        // planned.
        Ok(last) if last != planned_last => {
            tracing::error!(
                planned = planned_last.0,
                committed = last.0,
                "a batch committed at other offsets than planned"
            );
            wait_applied(&shared.applied, last).await.and_then(|_| {
                Err(ControllerError::Internal(format!(
                    "batch planned to end at offset {} committed ending at {}",
                    planned_last.0, last.0
                )))
            })
        }
        Ok(last) => wait_applied(&shared.applied, last).await,
        Err(LogError::NotLeader(l)) => Err(ControllerError::NotController(l)),
        Err(e) => Err(ControllerError::Log(e)),
    };
    for finish in waiting {
        finish(match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(e.duplicate()),
        });
    }
    result
}

/// Why a non-atomic operation's batches stopped.
enum Split {
    /// A batch did not replay (a controller bug): this operation fails.
    Invalid(ControllerError),
    /// A batch's commit failed: the group fails.
    Failed(ControllerError),
}

/// A non-atomic operation larger than a batch (Kafka's `ControllerResult.of`,
/// which `QuorumController` splits into batches of `maxRecordsPerBatch`):
/// its records are committed `max_records_per_batch` at a time, in order,
/// each batch replaying on its own; the rest (at most one batch) is
/// returned to join the group as usual. Nothing is pending when called.
/// The batches are not atomic together: a broker's fencing or controlled
/// shutdown that moves 10,000 leaderships commits in steps, as in Kafka.
async fn commit_leading_batches(
    shared: &Shared,
    le: LeaderAndEpoch,
    spec: &mut MetadataImage,
    pending: &mut Pending,
    mut records: Vec<MetadataRecord>,
) -> Result<Vec<MetadataRecord>, Split> {
    let limit = shared.config.max_records_per_batch.max(1);
    debug_assert!(pending.records.is_empty());
    while records.len() > limit {
        let rest = records.split_off(limit);
        let batch = std::mem::replace(&mut records, rest);
        *spec = speculate(spec, le, &batch).map_err(Split::Invalid)?;
        pending.records = batch;
        *spec = commit(shared, le, spec, pending)
            .await
            .map_err(Split::Failed)?;
    }
    Ok(records)
}

/// The image after `records` as the next batch, if they replay on it: a
/// record that does not fit is a controller bug, refused before it
/// reaches the log.
fn speculate(
    image: &MetadataImage,
    le: LeaderAndEpoch,
    records: &[MetadataRecord],
) -> Result<MetadataImage, ControllerError> {
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
    Ok(delta.apply().0)
}

#[cfg(test)]
mod tests {
    use super::fencing_check_period;

    #[test]
    fn a_dead_broker_is_fenced_within_a_twentieth_of_its_session() {
        assert_eq!(fencing_check_period(9_000), 250, "Kafka's default session");
        assert_eq!(fencing_check_period(2_000), 100);
        assert_eq!(
            fencing_check_period(60_000),
            250,
            "never slower than 250 ms"
        );
        assert_eq!(fencing_check_period(50), 10, "never a busy loop");
    }
}
