//! The broker lifecycle, as KRaft's: BrokerRegistration and
//! BrokerHeartbeat with broker epochs, fencing after
//! `broker.session.timeout.ms` without heartbeats, unfencing once the
//! broker has caught up with the metadata log, and controlled shutdown.
//!
//! - A registration writes a `RegisterBrokerRecord` (fenced). Its broker
//!   epoch is the offset the record gets (the image's next offset: the
//!   operation task is the only writer, so on a single voter it is exactly
//!   the record's offset, and in any case unique and increasing). A
//!   restarted broker keeps its id; another incarnation whose session is
//!   still alive is refused (DUPLICATE_BROKER_REGISTRATION). Registering
//!   over a live registration first moves leaderships off the old one.
//! - Heartbeats refresh the session (kept in memory by the operation task,
//!   measured with the controller's [`Clock`](sluice_storage::Clock)). A
//!   fenced broker whose metadata offset has reached its registration is
//!   unfenced and elected leader of the leaderless partitions whose ISR
//!   holds it. A broker asking for controlled shutdown is fenced with its
//!   leaderships moved off (to another usable ISR member, else -1) before
//!   the answer says it may shut down.
//! - Sessions: a broker that the image names but the session table does
//!   not (after a restart or failover of the controller, and whenever it
//!   leads in a new epoch, see [`Sessions`]) gets a fresh session at the
//!   first fencing check, dated from when the quorum last had a leader
//!   (at most half a session back), but does not count as alive for
//!   the duplicate-registration check (a restarted node's broker
//!   re-registers at once with its restarted controller).
//!
//! Fencing and controlled shutdown take the broker out of every ISR and
//! leadership, electing another usable ISR member; unfencing elects the
//! broker for leaderless partitions it may lead. The rules of each change
//! (an ISR never empties without ELR; ELR; unclean elections) are
//! [`ChangeBuilder`]'s.

use std::collections::{BTreeMap, VecDeque};

use sluice_metadata::record::{
    BrokerEndpoint, BrokerFeature, BrokerRegistrationChangeRecord, RegisterBrokerRecord,
};
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataRecord};
use sluice_record::Offset;
use uuid::Uuid;

use super::change::{rules_for, ChangeBuilder};
use super::{check_broker_epoch, OpContext, QuorumController};
use crate::error::ControllerError;

/// BrokerRegistrationRequest, in domain types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistrationRequest {
    pub broker_id: BrokerId,
    /// A new random id every time the broker process starts.
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The broker's online log directories.
    pub log_dirs: Vec<Uuid>,
    /// The epoch this broker had when it last shut down cleanly (Kafka's
    /// PreviousBrokerEpoch, from its clean-shutdown marker); `None` after a
    /// crash or when unknown.
    pub previous_broker_epoch: Option<BrokerEpoch>,
}

/// The answer to a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisteredBroker {
    pub broker_epoch: BrokerEpoch,
}

/// BrokerHeartbeatRequest, in domain types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerHeartbeat {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    /// The highest metadata offset the broker has applied.
    pub current_metadata_offset: Offset,
    pub want_fence: bool,
    pub want_shutdown: bool,
}

/// BrokerHeartbeatResponse, in domain types (after the heartbeat's
/// records committed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shutdown: bool,
}

/// How long the controller did not run before a periodic fencing check at
/// `now`, due one `period` after the check at `previous`; the operation
/// loop has waited idle since `ready`. Whatever the check is late beyond
/// one more period, counted from the later of the two (never from inside
/// a commit: heartbeats queue during a commit and are planned before the
/// check, and a dead broker must not outlive slow commits). All in ms of
/// the loop's own monotonic timer, not the controller's clock (which tests
/// and simulations may run faster than the timer).
pub(crate) fn stalled_ms(previous: Option<i64>, ready: i64, now: i64, period: i64) -> i64 {
    let Some(previous) = previous else {
        return 0;
    };
    now.saturating_sub(previous.max(ready))
        .saturating_sub(2 * period)
        .max(0)
}

/// The in-memory session of each broker: its epoch, its last heartbeat,
/// and whether this controller heard from it at that epoch at all.
///
/// Sessions belong to one term of leadership ([`Sessions::activate`]): a
/// controller that leads again after another one led heard no heartbeat
/// meanwhile (they went to the other leader), so it starts every session
/// afresh, as Kafka's `ClusterControlManager.activate` does. Kept from its
/// earlier term they would all look expired, and its first check would
/// fence every broker at once: every partition offline and Metadata
/// listing no broker, after which librdkafka forgets every broker it knew
/// and its producers stop for good (found by the nemesis).
///
/// Where Sluice differs from Kafka: a fresh session does not start at
/// activation but when the quorum last had a leader this controller could
/// hear ([`MetadataLog::since_leader_contact`](crate::log::MetadataLog)),
/// because heartbeats sent while there was none reached no active
/// controller. Kafka restarts the clock at activation, so a broker that
/// died with the active controller's node is fenced an election plus a
/// whole session after its death, not one session after it. A fresh
/// session always has at least half a session left, time for a live
/// broker to find the new controller (it learns of it with the election)
/// and heartbeat there.
///
/// A heartbeat also counts as of its answer ([`Sessions::answered`]): a
/// broker sends its next heartbeat only once the previous one is answered,
/// and an answer waits for its group's commit (an unfence commits a
/// record for the broker and each of its partitions). A commit held longer
/// than a session by a slow disk made a single node under load fence
/// itself as soon as its unfence committed, again and again (CI's compat
/// run: heartbeat gaps of 1.6-3.2 s against a 1.2 s session).
///
/// And the controller does not count time it could not run itself against
/// anyone's session ([`stalled_ms`], [`Sessions::credit_stall`]): when its own fencing check
/// comes later than its period, the process was starved or stopped, and a
/// broker's heartbeats (on one node, sent by the same starved process)
/// could not arrive either. Without this a single node on a machine at
/// load 12-16 fenced itself after every stall longer than its 1.2 s
/// session, so its partitions went offline under the transactional
/// producers of `scripts/bench --transactions` (a commit's record was
/// still undelivered after 60 s). A broker that is really gone is still
/// fenced one session after the controller runs again.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    last_seen: BTreeMap<BrokerId, (BrokerEpoch, i64, bool)>,
    /// Heartbeats planned in the group being committed.
    answering: Vec<(BrokerId, BrokerEpoch)>,
    /// The leader epoch these sessions were kept in.
    term: Option<sluice_record::LeaderEpoch>,
    /// Where a fresh session of this term starts (controller clock, ms);
    /// before any activation, where it is created.
    fresh_start_ms: Option<i64>,
}

impl Sessions {
    /// This controller leads at `epoch` (at `now_ms`, the quorum having had
    /// no leader it heard for `leaderless_ms`; sessions last `timeout_ms`):
    /// sessions of another term are dropped. Every unfenced broker gets its
    /// fresh session at the first fencing check of the term (a broker
    /// unfenced later heartbeated first), so all fresh sessions start at
    /// the same point, fixed here.
    pub(crate) fn activate(
        &mut self,
        epoch: sluice_record::LeaderEpoch,
        now_ms: i64,
        leaderless_ms: i64,
        timeout_ms: i64,
    ) {
        if self.term != Some(epoch) {
            self.last_seen.clear();
            self.term = Some(epoch);
            let credit = leaderless_ms.clamp(0, timeout_ms.max(0) / 2);
            self.fresh_start_ms = Some(now_ms.saturating_sub(credit));
        }
    }

    /// Credits every session (and the fresh sessions still to start) with
    /// `stalled_ms` the controller did not run (see [`stalled_ms`]), never
    /// past `now_ms`.
    pub(crate) fn credit_stall(&mut self, now_ms: i64, stalled_ms: i64) {
        if stalled_ms <= 0 {
            return;
        }
        for s in self.last_seen.values_mut() {
            s.1 = s.1.saturating_add(stalled_ms).min(now_ms).max(s.1);
        }
        if let Some(f) = &mut self.fresh_start_ms {
            *f = f.saturating_add(stalled_ms).min(now_ms).max(*f);
        }
    }

    fn touch(&mut self, broker: BrokerId, epoch: BrokerEpoch, now_ms: i64) {
        self.last_seen.insert(broker, (epoch, now_ms, true));
    }

    /// A heartbeat of `broker` at `epoch`: refreshes its session, and
    /// warns when it came more than half a session after the previous
    /// one (a live broker that close to being fenced: a busy machine, or
    /// a session too short for it). Returns the gap since the previous
    /// heartbeat of this session, if there was one.
    fn heartbeat(
        &mut self,
        broker: BrokerId,
        epoch: BrokerEpoch,
        now_ms: i64,
        timeout_ms: i64,
    ) -> Option<i64> {
        let gap = self
            .last_seen
            .get(&broker)
            .filter(|&&(e, _, contact)| contact && e == epoch)
            .map(|&(_, t, _)| now_ms.saturating_sub(t));
        if let Some(gap) = gap.filter(|&g| g > timeout_ms / 2) {
            tracing::warn!(
                broker = broker.0,
                gap_ms = gap,
                session_timeout_ms = timeout_ms,
                "broker heartbeat late: more than half of broker.session.timeout.ms since its previous one"
            );
        }
        self.touch(broker, epoch, now_ms);
        self.answering.push((broker, epoch));
        gap
    }

    /// The group of operations planned since the last call was committed
    /// (or failed) and answered at `now_ms`: the sessions of the brokers
    /// whose heartbeats it held count from now.
    pub(crate) fn answered(&mut self, now_ms: i64) {
        for (broker, epoch) in self.answering.drain(..) {
            if let Some(s) = self.last_seen.get_mut(&broker) {
                if s.0 == epoch {
                    s.1 = s.1.max(now_ms);
                }
            }
        }
    }

    /// Whether `broker` at `epoch` heard from within the timeout; a broker
    /// without a session gets a fresh one (not counted as contact; see
    /// the type's docs for where it starts).
    fn alive(&mut self, broker: BrokerId, epoch: BrokerEpoch, now_ms: i64, timeout: i64) -> bool {
        let fresh = self.fresh_start_ms.unwrap_or(now_ms).min(now_ms);
        let e = self
            .last_seen
            .entry(broker)
            .or_insert((epoch, fresh, false));
        if e.0 != epoch {
            *e = (epoch, now_ms, false);
        }
        now_ms.saturating_sub(e.1) <= timeout
    }

    /// Whether this controller heard from `broker` at `epoch` within the
    /// timeout. Unlike [`Sessions::alive`], a broker it never heard from
    /// is not alive (Kafka's `hasValidSession`: a session starts at
    /// contact; the session the fencing check starts for a broker it
    /// never heard from is no contact), so after a controller restart or
    /// failover a restarted broker re-registers at once.
    fn heard_from(&self, broker: BrokerId, epoch: BrokerEpoch, now_ms: i64, timeout: i64) -> bool {
        self.last_seen.get(&broker).is_some_and(|&(e, t, contact)| {
            contact && e == epoch && now_ms.saturating_sub(t) <= timeout
        })
    }
}

impl QuorumController {
    /// BrokerRegistration: returns the new broker epoch once the
    /// registration committed. The broker starts fenced.
    pub async fn register_broker(
        &self,
        req: BrokerRegistrationRequest,
    ) -> Result<RegisteredBroker, ControllerError> {
        self.submit_non_atomic(move |ctx| plan_register(ctx, req))
            .await
    }

    /// BrokerHeartbeat.
    pub async fn heartbeat(&self, hb: BrokerHeartbeat) -> Result<HeartbeatReply, ControllerError> {
        self.submit_non_atomic(move |ctx| plan_heartbeat(ctx, hb))
            .await
    }

    /// Fences every unfenced broker whose session expired, moving its
    /// leaderships off; returns them. The controller calls it on its own
    /// every twentieth of `broker.session.timeout.ms` (at most 250 ms);
    /// tests call it directly.
    pub async fn fence_expired_brokers(&self) -> Result<Vec<BrokerId>, ControllerError> {
        let expired = self.submit_non_atomic(plan_fence_expired).await?;
        let fenced = expired.iter().map(|e| e.broker).collect();
        self.shared.expiries.lock().record(expired);
        Ok(fenced)
    }

    /// How many brokers this controller has fenced because their session
    /// expired (counted once the fence committed), and the last
    /// [`RECENT_EXPIRIES`] of them, oldest first. A broker fenced and
    /// unfenced again in one batch (its heartbeat planned right after
    /// the check) counts, though no committed image shows it fenced.
    pub fn session_expiries(&self) -> (u64, Vec<SessionExpiry>) {
        let e = self.shared.expiries.lock();
        (e.total, e.recent.iter().copied().collect())
    }
}

/// A broker the fencing check fenced because its session expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpiry {
    pub broker: BrokerId,
    pub epoch: BrokerEpoch,
    /// The controller's clock when the check planned the fence (ms).
    pub at_ms: i64,
}

/// How many [`SessionExpiry`]s a controller keeps.
pub const RECENT_EXPIRIES: usize = 64;

/// The count of committed session expiries and the most recent ones.
/// (Kafka's controller logs each one, "Fencing broker ... because its
/// session has timed out"; its `TimedOutBrokerHeartbeatCount` counts
/// something else: heartbeats that timed out in the controller's queue.)
#[derive(Debug, Default)]
pub(crate) struct SessionExpiries {
    total: u64,
    recent: VecDeque<SessionExpiry>,
}

impl SessionExpiries {
    fn record(&mut self, expired: Vec<SessionExpiry>) {
        for e in expired {
            self.total += 1;
            if self.recent.len() == RECENT_EXPIRIES {
                self.recent.pop_front();
            }
            self.recent.push_back(e);
        }
    }
}

/// The periodic fencing check as an operation whose answer nobody awaits;
/// the fences it commits are counted in `expiries`.
pub(super) fn fence_expired_op(
    expiries: std::sync::Arc<parking_lot::Mutex<SessionExpiries>>,
) -> super::Op {
    Box::new(move |ctx| match ctx.and_then(plan_fence_expired) {
        Ok((records, expired)) => super::Planned {
            records,
            finish: Box::new(move |res| match res {
                Ok(()) => expiries.lock().record(expired),
                Err(e) => tracing::warn!(error = %e, "fencing expired brokers failed"),
            }),
            atomic: false,
        },
        Err(_) => super::Planned {
            records: Vec::new(),
            finish: Box::new(|_| {}),
            atomic: false,
        },
    })
}

fn plan_register(
    ctx: &mut OpContext<'_>,
    req: BrokerRegistrationRequest,
) -> Result<(Vec<MetadataRecord>, RegisteredBroker), ControllerError> {
    if req.broker_id.0 < 0 {
        return Err(ControllerError::InvalidRequest(format!(
            "Invalid broker id {}",
            req.broker_id
        )));
    }
    let mut records = Vec::new();
    if let Some(old) = ctx.image.broker(req.broker_id) {
        let timeout = ctx.config.broker_session_timeout_ms;
        if old.incarnation_id != req.incarnation_id
            && !old.fenced
            && ctx
                .sessions
                .heard_from(old.id, old.epoch, ctx.now_ms, timeout)
        {
            return Err(ControllerError::DuplicateBrokerRegistration(req.broker_id));
        }
        // KIP-966: a new incarnation that did not shut down cleanly at its
        // last epoch may have lost acknowledged data: with ELR it leaves
        // every ISR and ELR and may not lead from them.
        let clean = req.previous_broker_epoch == Some(old.epoch);
        if old.incarnation_id != req.incarnation_id
            && !clean
            && ctx.config.eligible_leader_replicas_enabled
        {
            tracing::info!(broker = %req.broker_id, "registration after an unclean shutdown");
            records.extend(unclean_shutdown(ctx, req.broker_id));
        } else {
            records.extend(move_leaderships_off(ctx, req.broker_id));
        }
    }
    let next_offset = ctx.image.provenance().last_offset.0 + 1 + records.len() as i64;
    let epoch =
        BrokerEpoch(next_offset.max(ctx.image.broker(req.broker_id).map_or(0, |b| b.epoch.0 + 1)));
    records.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: req.broker_id,
        is_migrating_zk_broker: false,
        incarnation_id: req.incarnation_id,
        broker_epoch: epoch,
        end_points: req.listeners,
        features: req.features,
        rack: req.rack,
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: req.log_dirs,
    }));
    ctx.sessions.touch(req.broker_id, epoch, ctx.now_ms);
    Ok((
        records,
        RegisteredBroker {
            broker_epoch: epoch,
        },
    ))
}

fn change(broker: BrokerId, epoch: BrokerEpoch, fenced: i8, shutdown: i8) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
        broker_id: broker,
        broker_epoch: epoch,
        fenced,
        in_controlled_shutdown: shutdown,
        log_dirs: Vec::new(),
    })
}

fn plan_heartbeat(
    ctx: &mut OpContext<'_>,
    hb: BrokerHeartbeat,
) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ControllerError> {
    check_broker_epoch(ctx.image, hb.broker_id, hb.broker_epoch)?;
    let reg = ctx.image.broker(hb.broker_id).expect("checked above");
    let timeout = ctx.config.broker_session_timeout_ms;
    ctx.sessions
        .heartbeat(hb.broker_id, hb.broker_epoch, ctx.now_ms, timeout);
    let is_caught_up = hb.current_metadata_offset.0 >= reg.epoch.0;
    const NO: i8 = BrokerRegistrationChangeRecord::NO_CHANGE;
    let mut records = Vec::new();
    let mut reply = HeartbeatReply {
        is_caught_up,
        is_fenced: reg.fenced,
        should_shutdown: false,
    };
    if hb.want_shutdown {
        let fence = if reg.fenced {
            NO
        } else {
            BrokerRegistrationChangeRecord::FENCE
        };
        let shutdown = if reg.in_controlled_shutdown {
            NO
        } else {
            BrokerRegistrationChangeRecord::IN_CONTROLLED_SHUTDOWN
        };
        if fence != NO || shutdown != NO {
            records.push(change(hb.broker_id, hb.broker_epoch, fence, shutdown));
        }
        records.extend(move_leaderships_off(ctx, hb.broker_id));
        reply.is_fenced = true;
        reply.should_shutdown = true;
    } else if hb.want_fence {
        if !reg.fenced {
            records.push(change(
                hb.broker_id,
                hb.broker_epoch,
                BrokerRegistrationChangeRecord::FENCE,
                NO,
            ));
            records.extend(move_leaderships_off(ctx, hb.broker_id));
        }
        reply.is_fenced = true;
    } else if reg.fenced && is_caught_up && !reg.in_controlled_shutdown {
        records.push(change(
            hb.broker_id,
            hb.broker_epoch,
            BrokerRegistrationChangeRecord::UNFENCE,
            NO,
        ));
        records.extend(elect_onto(ctx, hb.broker_id));
        reply.is_fenced = false;
    }
    Ok((records, reply))
}

fn plan_fence_expired(
    ctx: &mut OpContext<'_>,
) -> Result<(Vec<MetadataRecord>, Vec<SessionExpiry>), ControllerError> {
    let timeout = ctx.config.broker_session_timeout_ms;
    let mut records = Vec::new();
    let mut fenced = Vec::new();
    let mut expired = Vec::new();
    for b in ctx.image.brokers().values() {
        if b.fenced || ctx.sessions.alive(b.id, b.epoch, ctx.now_ms, timeout) {
            continue;
        }
        tracing::info!(broker = %b.id, epoch = %b.epoch, "fencing broker: session expired");
        records.push(change(
            b.id,
            b.epoch,
            BrokerRegistrationChangeRecord::FENCE,
            0,
        ));
        fenced.push(b.id);
        expired.push(SessionExpiry {
            broker: b.id,
            epoch: b.epoch,
            at_ms: ctx.now_ms,
        });
    }
    // Leaderships move off all of them at once: none is elected in place
    // of another one being fenced.
    records.extend(move_leaderships_off_all(ctx, &fenced));
    Ok((records, expired))
}

fn move_leaderships_off(ctx: &OpContext<'_>, broker: BrokerId) -> Vec<MetadataRecord> {
    move_leaderships_off_all(ctx, &[broker])
}

/// Partition changes that take `gone` out of every leadership and ISR,
/// each electing another usable leader if the rules allow one (see
/// [`ChangeBuilder`]: without ELR an ISR never empties, its last member
/// stays, leaderless; with ELR it may empty into the ELR). The brokers
/// leave one after the other, as Kafka fences one broker at a time, so
/// of an ISR whose members all go only the last one stays.
fn move_leaderships_off_all(ctx: &OpContext<'_>, gone: &[BrokerId]) -> Vec<MetadataRecord> {
    if gone.is_empty() {
        return Vec::new();
    }
    let image = ctx.image;
    let mut out = Vec::new();
    for t in image.topics() {
        for (&p, reg) in t.partitions() {
            let rules = rules_for(image, ctx.config, t.name(), reg.replicas.len());
            let mut current = sluice_metadata::PartitionRegistration::clone(reg);
            for &g in gone {
                if current.leader != g && !current.isr.contains(&g) {
                    continue;
                }
                let isr: Vec<BrokerId> = current.isr.iter().copied().filter(|&b| b != g).collect();
                let Some(change) = ChangeBuilder::new(image, &current, t.id(), p, rules)
                    .target_isr(isr)
                    .not_leaders(gone)
                    .build()
                else {
                    continue;
                };
                match current.merge(&change) {
                    Ok(next) => current = next,
                    // Cannot happen (the builder keeps the rules merge
                    // checks); the batch would be refused before the log.
                    Err(e) => tracing::error!(error = %e, "a fencing change does not apply"),
                }
                out.push(MetadataRecord::PartitionChange(change));
            }
        }
    }
    out
}

/// Changes that take `broker`, back from an unclean shutdown, out of
/// every ISR and ELR (Kafka's `handleBrokerUncleanShutdown`).
fn unclean_shutdown(ctx: &OpContext<'_>, broker: BrokerId) -> Vec<MetadataRecord> {
    let image = ctx.image;
    let gone = [broker];
    let mut out = Vec::new();
    for t in image.topics() {
        for (&p, reg) in t.partitions() {
            if reg.leader != broker && !reg.isr.contains(&broker) && !reg.elr.contains(&broker) {
                continue;
            }
            let isr: Vec<BrokerId> = reg.isr.iter().copied().filter(|&b| b != broker).collect();
            let rules = rules_for(image, ctx.config, t.name(), reg.replicas.len());
            let change = ChangeBuilder::new(image, reg, t.id(), p, rules)
                .target_isr(isr)
                .not_leaders(&gone)
                .unclean_shutdown(&gone)
                .build();
            out.extend(change.map(MetadataRecord::PartitionChange));
        }
    }
    out
}

/// Elections for the leaderless partitions now that `broker` (being
/// unfenced in the same batch) may lead again: from the ISR, else the ELR,
/// else (if the topic allows it) uncleanly.
fn elect_onto(ctx: &OpContext<'_>, broker: BrokerId) -> Vec<MetadataRecord> {
    let image = ctx.image;
    let mut out = Vec::new();
    for t in image.topics() {
        for (&p, reg) in t.partitions() {
            if reg.has_leader() || !reg.replicas.contains(&broker) {
                continue;
            }
            let rules = rules_for(image, ctx.config, t.name(), reg.replicas.len());
            let change = ChangeBuilder::new(image, reg, t.id(), p, rules)
                .may_lead(broker)
                .build();
            out.extend(change.map(MetadataRecord::PartitionChange));
        }
    }
    out
}

#[cfg(test)]
mod session_tests {
    use super::*;

    #[test]
    fn a_heartbeat_measures_the_gap_within_one_session_only() {
        let mut s = Sessions::default();
        let (b, e) = (BrokerId(1), BrokerEpoch(7));
        assert_eq!(s.heartbeat(b, e, 1_000, 1_500), None, "first contact");
        assert_eq!(s.heartbeat(b, e, 1_900, 1_500), Some(900));
        // A new incarnation's session starts afresh.
        assert_eq!(s.heartbeat(b, BrokerEpoch(8), 2_000, 1_500), None);
        // A session the fencing check started is no contact to measure
        // from.
        assert!(s.alive(BrokerId(2), e, 2_000, 1_500));
        assert_eq!(s.heartbeat(BrokerId(2), e, 2_100, 1_500), None);
    }

    /// The whole process stopped for 2.5 s (a starved single node): the
    /// broker's heartbeat could not come meanwhile, so its session is not
    /// over when the controller runs again; a broker that stays silent
    /// while the controller runs is fenced one session later.
    #[test]
    fn time_the_controller_did_not_run_is_not_counted_against_a_session() {
        let (timeout, period) = (1_200, 60);
        let mut s = Sessions::default();
        let (b, e) = (BrokerId(1), BrokerEpoch(7));
        // The periodic check at `now`, the loop idle since `ready`.
        let mut last = None;
        let mut check = |s: &mut Sessions, now: i64, ready: i64| {
            s.credit_stall(now, stalled_ms(last.replace(now), ready, now, period));
        };
        s.heartbeat(b, e, 0, timeout);
        let mut now = 0;
        while now < 600 {
            check(&mut s, now, now - period);
            now += period;
        }
        assert!(s.alive(b, e, now, timeout));
        // Stopped from 600 to 3,100 ms, the loop idle since its last
        // check at 540 ms.
        now = 3_100;
        check(&mut s, now, 540);
        assert!(
            s.alive(b, e, now, timeout),
            "fenced for the controller's own stall"
        );
        // Ticks on time, no heartbeat: expired one session after its
        // heartbeat plus the stall (0 + 1,200 + 2,440).
        while now <= 3_600 {
            check(&mut s, now, now - period);
            assert!(s.alive(b, e, now, timeout), "at {now}");
            now += period;
        }
        while s.alive(b, e, now, timeout) {
            check(&mut s, now, now - period);
            now += period;
            assert!(now < 5_000, "never fenced");
        }
        assert!(now > 3_640, "fenced at {now}");
        // A check a little late (within two periods) credits nothing.
        assert_eq!(stalled_ms(Some(0), 0, 110, period), 0);
        assert_eq!(stalled_ms(None, 0, 5_000, period), 0);
        // A check late because a commit held the operation loop for 2.5 s
        // credits nothing (the loop was ready only when the commit ended):
        // a broker that sent nothing meanwhile is fenced on time, however
        // slow the commits.
        let mut s = Sessions::default();
        s.heartbeat(b, e, 0, timeout);
        s.credit_stall(3_100, stalled_ms(Some(540), 3_100, 3_100, period));
        assert!(!s.alive(b, e, 3_100, timeout), "a commit's hold credited");
    }
}
