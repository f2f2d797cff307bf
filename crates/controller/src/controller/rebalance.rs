//! Automatic preferred leader rebalance, as Kafka's KRaft controller does
//! it (`maybeBalancePartitionLeaders` with `auto.leader.rebalance.enable`
//! and `leader.imbalance.check.interval.seconds`).
//!
//! A partition is *imbalanced* when its leader is not its preferred
//! replica (the first of its replicas): after a broker died or shut down
//! its partitions moved to other replicas, and nothing moves them back when
//! it returns. When the active controller sees an imbalanced partition and
//! no balance is scheduled, it schedules one `leader.imbalance.check.interval.seconds`
//! later; the balance elects the preferred replica of every imbalanced
//! partition where it is a valid leader (in the ISR and usable: registered,
//! unfenced, not shutting down), at most [`MAX_ELECTIONS_PER_BALANCE`] per
//! run, and runs again at once (10 ms) when it hit that bound. A partition
//! whose preferred replica cannot lead yet (still catching up, so outside
//! the ISR) stays imbalanced and is tried again an interval later.
//!
//! Kafka 4.x has no `leader.imbalance.per.broker.percentage` threshold any
//! more (it belonged to the ZooKeeper controller): every imbalanced
//! partition counts, and so it is here.
//!
//! Invariants:
//! - A balance only ever moves leadership to the preferred replica, and
//!   only when that replica is in the ISR and usable (the same rule as a
//!   preferred ElectLeaders: [`preferred_change`]).
//! - Only the active controller schedules balances; nothing is scheduled
//!   while `auto.leader.rebalance.enable` is false.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_metadata::record::PartitionChangeRecord;
use sluice_metadata::{BrokerId, MetadataImage, MetadataRecord, PartitionRegistration};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Applied, Op, OpContext, Planned, Shared};
use crate::error::ControllerError;

/// Most preferred elections one balance commits (Kafka's
/// `MAX_ELECTIONS_PER_IMBALANCE`); the next run, 10 ms later, takes the rest.
pub const MAX_ELECTIONS_PER_BALANCE: usize = 1000;

/// Kafka's message of PREFERRED_LEADER_NOT_AVAILABLE.
const PREFERRED_NOT_AVAILABLE: &str = "The preferred leader was not available.";

/// The delay of the next run when a run hit [`MAX_ELECTIONS_PER_BALANCE`].
const AGAIN_DELAY: Duration = Duration::from_millis(10);

/// The change that moves leadership of `reg` to its preferred replica:
/// `ElectionNotNeeded` when it leads already, `PreferredLeaderNotAvailable`
/// when it is outside the ISR or not usable.
pub(crate) fn preferred_change(
    image: &MetadataImage,
    reg: &PartitionRegistration,
    (topic, id, partition): (&str, Uuid, i32),
) -> Result<PartitionChangeRecord, ControllerError> {
    // Kafka answers with the error's own message.
    let unavailable =
        || ControllerError::PreferredLeaderNotAvailable(PREFERRED_NOT_AVAILABLE.to_owned());
    let Some(&preferred) = reg.replicas.first() else {
        return Err(unavailable());
    };
    if reg.leader == preferred {
        return Err(ControllerError::ElectionNotNeeded);
    }
    let usable = image.broker(preferred).is_some_and(|r| r.is_usable());
    if reg.isr.contains(&preferred) && usable {
        let mut change = PartitionChangeRecord::new(id, partition);
        change.leader = preferred;
        return Ok(change);
    }
    tracing::debug!(%topic, partition, "preferred replica not in the ISR or not usable");
    Err(unavailable())
}

/// Whether any partition's leader is not its preferred replica (Kafka's
/// `arePartitionLeadersImbalanced`).
pub(crate) fn is_imbalanced(image: &MetadataImage) -> bool {
    image.topics().any(|t| {
        t.partitions()
            .values()
            .any(|reg| reg.replicas.first().is_some_and(|&p| p != reg.leader))
    })
}

/// The preferred elections of one balance, at most `max`. The second value
/// says whether it stopped at `max` (more may be possible).
pub(crate) fn plan_balance(image: &MetadataImage, max: usize) -> (Vec<MetadataRecord>, bool) {
    let mut records = Vec::new();
    for t in image.topics() {
        for (&p, reg) in t.partitions() {
            if records.len() >= max {
                return (records, true);
            }
            if let Ok(change) = preferred_change(image, reg, (t.name(), t.id(), p)) {
                records.push(MetadataRecord::PartitionChange(change));
            }
        }
    }
    (records, false)
}

/// When the next balance runs. Kept by the operation task; [`Self::due`]
/// is cancel-safe (all its state lives here, not in the future).
pub(super) struct BalanceSchedule {
    /// `None`: `auto.leader.rebalance.enable=false`.
    interval: Option<Duration>,
    node: BrokerId,
    applied: watch::Receiver<Applied>,
    deadline: Option<Instant>,
    /// Set while planning a run that hit the bound: run again soon.
    again: Arc<AtomicBool>,
}

impl BalanceSchedule {
    pub(super) fn new(shared: &Shared) -> Self {
        let c = &shared.config;
        BalanceSchedule {
            interval: c
                .auto_leader_rebalance_enable
                .then(|| Duration::from_millis(c.leader_imbalance_check_interval_ms.max(1) as u64)),
            node: shared.log.node_id(),
            applied: shared.applied.clone(),
            deadline: None,
            again: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Resolves with the balance operation once one is due; pending
    /// forever when automatic rebalance is off.
    pub(super) async fn due(&mut self) -> Op {
        let Some(interval) = self.interval else {
            return std::future::pending().await;
        };
        loop {
            if let Some(deadline) = self.deadline {
                tokio::time::sleep_until(deadline).await;
                self.deadline = None;
                return balance_op(self.again.clone());
            }
            let schedule = {
                let a = self.applied.borrow_and_update();
                let active = a.leader.is_some_and(|l| l.leader == Some(self.node));
                active && a.failed.is_none() && is_imbalanced(&a.image)
            };
            if schedule {
                let delay = if self.again.swap(false, Ordering::AcqRel) {
                    AGAIN_DELAY
                } else {
                    interval
                };
                self.deadline = Some(Instant::now() + delay);
                tracing::debug!(?delay, "preferred leader balance scheduled");
                continue;
            }
            if self.applied.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// The balance operation. Nobody awaits its answer.
fn balance_op(again: Arc<AtomicBool>) -> Op {
    Box::new(move |ctx: Result<&mut OpContext<'_>, ControllerError>| {
        let records = match ctx {
            Ok(ctx) => {
                let (records, more) = plan_balance(ctx.image, MAX_ELECTIONS_PER_BALANCE);
                // Set before the commit changes the image the schedule
                // watches, so it sees it when it looks again.
                again.store(more, Ordering::Release);
                records
            }
            Err(_) => Vec::new(),
        };
        let n = records.len();
        Planned {
            records,
            finish: Box::new(move |res| match res {
                Ok(()) if n > 0 => {
                    tracing::info!(partitions = n, "preferred leader balance: leaders moved")
                }
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "preferred leader balance failed"),
            }),
            // Independent partition changes: more than a batch commit in several.
            atomic: false,
        }
    })
}
