//! Slow and stalled disks in the cluster simulation, and the liveness
//! check they need.
//!
//! A fifth stream of the seed draws them, so the other streams' schedules
//! stay what they were: during the fault phases, a node's disk turns slow
//! (each write costs 1-20 ms, each fsync 10 ms to 2 s of simulated time)
//! or stalls (every write and fsync waits) for one to three phases
//! ([`inject`]); after healing, while the producers still write, a
//! [`Trial`] slows or stalls the disks of one node or of a majority of
//! the voters for up to 15 s with no other fault in the cluster. The
//! latency is paid where the nodes wait for disk work (see
//! `sluice_runtime::disk`): the metadata log's appends and votes, and the
//! brokers' blocking work (appends, flushes, fetches, checkpoints).
//!
//! What a slow disk legitimately causes: metadata commits and produce
//! acknowledgements wait, leaders of the metadata quorum change when
//! their appends block longer than an election timeout, and a broker
//! whose own disk stalls longer than its session may be fenced. What it
//! must not cause ([`FenceWatch`]): a broker whose node is up and whose
//! heartbeats keep reaching the controller, with the network healed, loses
//! its session. That is the class of bug that fenced a single node under
//! load (a heartbeat counted from its planning rather than its answer; a
//! fencing check that ran ahead of heartbeats queued behind a slow
//! commit). After the disks heal the trial also asks for progress:
//! writes acknowledged, and every broker unfenced, each within 10 s.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_controller::{QuorumController, SessionExpiry};
use sluice_metadata::{BrokerId, MetadataImage};
use sluice_runtime::DiskStall;
use sluice_storage::DiskSpeed;

use crate::node::NodeHandles;

/// Draws a speed: a stall a third of the time, else a slow disk.
fn draw_speed(rng: &mut StdRng) -> DiskSpeed {
    if rng.gen_ratio(1, 3) {
        return DiskSpeed::Stalled(DiskStall::new());
    }
    let write = Duration::from_millis(rng.gen_range(1..=20));
    // Log-uniform from 10 ms to 2 s: mostly tens and hundreds of ms.
    let sync_ms = 10f64 * 200f64.powf(rng.gen_range(0.0..=1.0));
    DiskSpeed::Slow {
        write,
        sync: Duration::from_millis(sync_ms as u64),
    }
}

fn describe(speed: &DiskSpeed) -> String {
    match speed {
        DiskSpeed::Instant => "instant".into(),
        DiskSpeed::Slow { write, sync } => format!(
            "slow (writes {} ms, fsyncs {} ms)",
            write.as_millis(),
            sync.as_millis()
        ),
        DiskSpeed::Stalled(_) => "stalled".into(),
    }
}

/// Disks slowed by [`inject`] and how many phases each has left.
pub(crate) type SlowDisks = Vec<(i32, usize)>;

/// Draws from the fifth stream: sometimes one node's disk turns slow or
/// stalls for one to three phases (a node whose disk is already slow
/// keeps its speed).
pub(crate) fn inject(
    rng: &mut StdRng,
    nodes: &[NodeHandles],
    slow: &mut SlowDisks,
) -> Option<String> {
    if !rng.gen_ratio(1, 5) {
        return None;
    }
    let victim = rng.gen_range(1..=nodes.len() as i32);
    let phases = rng.gen_range(1..=3);
    let speed = draw_speed(rng);
    if slow.iter().any(|(id, _)| *id == victim) {
        return None;
    }
    let what = format!("disk of n{victim} {} for {phases} phases", describe(&speed));
    nodes[victim as usize - 1].fs.set_speed(speed);
    slow.push((victim, phases));
    Some(what)
}

/// A phase ended: disks whose time is up are fast again (and what the
/// schedule says of them).
pub(crate) fn end_phase(nodes: &[NodeHandles], slow: &mut SlowDisks) -> Vec<String> {
    let mut healed = Vec::new();
    slow.retain_mut(|(id, left)| {
        *left -= 1;
        if *left > 0 {
            return true;
        }
        nodes[*id as usize - 1].fs.set_speed(DiskSpeed::Instant);
        healed.push(format!("disk of n{id} fast again"));
        false
    });
    healed
}

/// Every slowed disk is fast again.
pub(crate) fn heal(nodes: &[NodeHandles], slow: &mut SlowDisks) {
    for (id, _) in slow.drain(..) {
        nodes[id as usize - 1].fs.set_speed(DiskSpeed::Instant);
    }
}

/// A metadata write the trial starts around the moment the disks slow
/// down, so that its commit waits for them while heartbeats queue behind
/// it at the active controller (a healed cluster whose heartbeats change
/// nothing writes no metadata, and a stall then holds no commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A reassignment of one workload partition (its draws from this
    /// seed).
    Reassign(u64),
    /// A new topic of one partition (its records and each replica's).
    CreateTopic,
    /// `kill -9` of this broker's node and an immediate restart: its
    /// registration and then its unfence are written.
    Restart(i32),
}

/// Slow disks on a healed cluster with the producers writing.
pub(crate) struct Trial {
    /// Held commits ([`Trial::held_commit`]) rather than the first trial.
    held: bool,
    victims: Vec<i32>,
    speed: DiskSpeed,
    /// How long the disks stay slow.
    pub lasts: Duration,
    /// The metadata write, if any, and when it starts relative to the
    /// disks slowing down (negative: before, by up to 30 ms; else up to
    /// 600 ms after).
    pub hold: Option<(Hold, i64)>,
}

impl Trial {
    /// Draws a trial half the time: the disks of one node (any) or of a
    /// majority of the voters (so that metadata commits wait for them
    /// while the leader may keep its leadership), stalled for 1-15 s or
    /// slow for 2-12 s.
    ///
    /// In three trials of four it also starts a metadata write ([`Hold`])
    /// at about the time the disks slow down (drawn after the rest, so
    /// the disks, their speed and the duration are what they were before
    /// writes were added).
    ///
    /// `SLUICE_SIM_TRIAL_STALL_MS=N` (debugging) makes every seed's trial
    /// stall a majority of the voters for N ms.
    pub fn draw(rng: &mut StdRng, nodes: &[NodeHandles]) -> Option<Trial> {
        let forced = std::env::var("SLUICE_SIM_TRIAL_STALL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        if forced.is_none() && !rng.gen_bool(0.5) {
            return None;
        }
        let voters = nodes[0].layout.voters();
        let mut victims = if forced.is_none() && rng.gen_bool(0.5) {
            vec![rng.gen_range(1..=nodes.len() as i32)]
        } else {
            let mut pool = voters.clone();
            let mut picked = Vec::new();
            while picked.len() < voters.len() / 2 + 1 {
                picked.push(pool.remove(rng.gen_range(0..pool.len())));
            }
            picked
        };
        victims.sort_unstable();
        let (speed, lasts) = match forced {
            Some(lasts) => (DiskSpeed::Stalled(DiskStall::new()), lasts),
            None => {
                let speed = draw_speed(rng);
                let lasts = match speed {
                    DiskSpeed::Stalled(_) => Duration::from_millis(rng.gen_range(1000..15_000)),
                    _ => Duration::from_millis(rng.gen_range(2000..12_000)),
                };
                (speed, lasts)
            }
        };
        let hold = draw_hold(rng, nodes);
        Some(Trial {
            held: false,
            victims,
            speed,
            lasts,
            hold,
        })
    }

    /// Draws, half the time (every time with
    /// `SLUICE_SIM_HELD_COMMITS=always`), a trial that holds the active
    /// controller's commits while it keeps leading: the disks of enough of
    /// its followers that no majority is fast (2 of 3 voters' followers,
    /// 3 of 5's) turn slow, each fsync 1.3-3 s, longer than a broker
    /// session (1.2 s), for 3-10 s, with a metadata write as in
    /// [`Trial::draw`]. Every commit of the controller then waits for one
    /// slow fsync at least, while heartbeats and the fencing check's timer
    /// pile up behind it: the case the two fencing fixes are for (a
    /// heartbeat's session counts from its answer, `Sessions::answered`;
    /// the check goes after the heartbeats queued when it fired). A stall
    /// (the first trial's) does not reach it: the followers' appends never
    /// return, the quorum elects, and a new controller starts every
    /// session afresh. Its draws come from a stream of their own, after
    /// the first trial, so that trial stays what it was.
    pub fn held_commit(rng: &mut StdRng, nodes: &[NodeHandles]) -> Option<Trial> {
        let always = std::env::var("SLUICE_SIM_HELD_COMMITS").is_ok_and(|v| v == "always");
        let drawn = rng.gen_bool(0.5);
        let picks = rng.gen::<u64>();
        let write = Duration::from_millis(rng.gen_range(1..=10));
        let sync = Duration::from_millis(rng.gen_range(1300..=3000));
        let lasts = Duration::from_millis(rng.gen_range(3000..10_000));
        let hold = draw_hold(rng, nodes);
        if !drawn && !always {
            return None;
        }
        let leader = nodes.iter().find_map(|n| {
            let r = n.running.lock();
            let c = r.as_ref()?.controller.as_ref()?;
            c.is_active().then_some(n.id)
        });
        let voters = nodes[0].layout.voters();
        let mut pool: Vec<i32> = voters
            .iter()
            .copied()
            .filter(|v| Some(*v) != leader)
            .collect();
        let mut picks = StdRng::seed_from_u64(picks);
        let mut victims = Vec::new();
        while victims.len() < voters.len().div_ceil(2) && !pool.is_empty() {
            victims.push(pool.remove(picks.gen_range(0..pool.len())));
        }
        victims.sort_unstable();
        Some(Trial {
            held: true,
            victims,
            speed: DiskSpeed::Slow { write, sync },
            lasts,
            hold,
        })
    }

    /// The brokers the trial may legitimately fence: those whose own disk
    /// stalls longer than a session.
    pub fn exempt(&self, session: Duration) -> Vec<i32> {
        match self.speed {
            DiskSpeed::Stalled(_) if self.lasts > session => self.victims.clone(),
            _ => Vec::new(),
        }
    }

    pub fn apply(&self, nodes: &[NodeHandles]) {
        for id in &self.victims {
            // One stall per disk (a shared one would release them as one).
            let speed = match &self.speed {
                DiskSpeed::Stalled(_) => DiskSpeed::Stalled(DiskStall::new()),
                s => s.clone(),
            };
            nodes[*id as usize - 1].fs.set_speed(speed);
        }
    }

    pub fn heal(&self, nodes: &[NodeHandles]) {
        for id in &self.victims {
            nodes[*id as usize - 1].fs.set_speed(DiskSpeed::Instant);
        }
    }
}

/// Draws the trial's metadata write, three times in four, and its start
/// relative to the disks slowing down. `SLUICE_SIM_TRIAL_HOLD`
/// (debugging: `reassign`, `topic`, `restart` or `none`) picks the kind;
/// the draws are made either way, so the rest of the seed stays the same.
fn draw_hold(rng: &mut StdRng, nodes: &[NodeHandles]) -> Option<(Hold, i64)> {
    let brokers = nodes[0].layout.brokers();
    let drawn = rng.gen_ratio(3, 4);
    let kind = rng.gen_range(0..3);
    let (draws, broker) = (rng.gen::<u64>(), brokers[rng.gen_range(0..brokers.len())]);
    let start = if rng.gen_ratio(1, 4) {
        -rng.gen_range(0..=30)
    } else {
        rng.gen_range(0..=600)
    };
    let kind = match std::env::var("SLUICE_SIM_TRIAL_HOLD").ok().as_deref() {
        Some("reassign") => 0,
        Some("topic") => 1,
        Some("restart") => 2,
        Some("none") => return None,
        _ if !drawn => return None,
        _ => kind,
    };
    let hold = match kind {
        0 => Hold::Reassign(draws),
        1 => Hold::CreateTopic,
        _ => Hold::Restart(broker),
    };
    Some((hold, start))
}

impl std::fmt::Display for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who: Vec<String> = self.victims.iter().map(|id| format!("n{id}")).collect();
        write!(
            f,
            "{}: disks of {} {} for {} ms",
            if self.held {
                "held-commit trial"
            } else {
                "slow-disk trial"
            },
            who.join(", "),
            describe(&self.speed),
            self.lasts.as_millis()
        )?;
        if let Some((hold, start)) = &self.hold {
            let what = match hold {
                Hold::Reassign(_) => "a reassignment".to_string(),
                Hold::CreateTopic => "a topic creation".to_string(),
                Hold::Restart(b) => format!("a restart of n{b}"),
            };
            let when = if *start < 0 {
                format!("{} ms before", -start)
            } else {
                format!("{start} ms after")
            };
            write!(f, ", with {what} {when} they slow down")?;
        }
        Ok(())
    }
}

/// The active controller's image, if a controller is active.
fn active_image(nodes: &[NodeHandles]) -> Option<MetadataImage> {
    nodes.iter().find_map(|n| {
        let r = n.running.lock();
        let c = r.as_ref()?.controller.as_ref()?;
        c.is_active().then(|| c.image())
    })
}

/// The brokers the active controller holds fenced (`None`: no controller
/// is active).
pub(crate) fn fenced_brokers(nodes: &[NodeHandles]) -> Option<Vec<i32>> {
    let image = active_image(nodes)?;
    Some(
        nodes[0]
            .layout
            .brokers()
            .into_iter()
            .filter(|b| image.broker(BrokerId(*b)).is_none_or(|r| r.fenced))
            .collect(),
    )
}

/// Watches a trial: a broker the active controller held unfenced must not
/// be fenced again in the same broker epoch while its node stays up (a
/// node that halts is forgotten until it registers again), unless the
/// trial exempts it.
///
/// Two views of it: the active controller's committed image, sampled
/// (a fenced registration), and every controller's count of the brokers
/// it fenced for an expired session (`QuorumController::session_expiries`),
/// which also sees a fence that a heartbeat planned right after it in the
/// same batch undid, and that no committed image shows.
pub(crate) struct FenceWatch {
    exempt: Vec<i32>,
    /// Brokers seen unfenced, with their broker epoch.
    unfenced: BTreeMap<i32, i64>,
    /// Each node's controller and how many of its session expiries were
    /// looked at.
    expiries_seen: BTreeMap<i32, (Weak<QuorumController>, u64)>,
}

impl FenceWatch {
    /// Watches from now on: expiries counted before are not looked at.
    pub fn new(exempt: Vec<i32>, nodes: &[NodeHandles]) -> Self {
        let mut w = FenceWatch {
            exempt,
            unfenced: BTreeMap::new(),
            expiries_seen: BTreeMap::new(),
        };
        w.new_expiries(nodes);
        w
    }

    /// The session expiries counted since the last call, with the node of
    /// the controller that counted each (a restarted controller counts
    /// from zero).
    fn new_expiries(&mut self, nodes: &[NodeHandles]) -> Vec<(i32, SessionExpiry)> {
        let mut out = Vec::new();
        for n in nodes {
            let r = n.running.lock();
            let Some(c) = r.as_ref().and_then(|r| r.controller.as_ref()) else {
                continue;
            };
            let (total, recent) = c.session_expiries();
            let seen = match self.expiries_seen.get(&n.id) {
                Some((w, seen)) if w.ptr_eq(&Arc::downgrade(c)) => *seen,
                _ => 0,
            };
            let new = usize::try_from(total.saturating_sub(seen)).unwrap_or(usize::MAX);
            let skip = recent.len().saturating_sub(new);
            out.extend(recent.into_iter().skip(skip).map(|e| (n.id, e)));
            self.expiries_seen.insert(n.id, (Arc::downgrade(c), total));
        }
        out
    }

    /// Node `id` halted or crashed: its registration may be fenced.
    pub fn forget(&mut self, id: i32) {
        self.unfenced.remove(&id);
    }

    pub fn sample(&mut self, nodes: &[NodeHandles], at: Duration) -> Result<(), String> {
        let Some(image) = active_image(nodes) else {
            return Ok(());
        };
        for b in nodes[0].layout.brokers() {
            if nodes[b as usize - 1].running.lock().is_none() {
                self.forget(b);
                continue;
            }
            if self.exempt.contains(&b) {
                continue;
            }
            let Some(reg) = image.broker(BrokerId(b)) else {
                continue;
            };
            let epoch = reg.epoch.0;
            if !reg.fenced {
                self.unfenced.insert(b, epoch);
            } else if self.unfenced.get(&b) == Some(&epoch) {
                return Err(format!(
                    "n{b} (broker epoch {epoch}) fenced at {at:?} with only slow disks as a fault: \
                     its node is up and was unfenced in this epoch, so its heartbeats reach the controller"
                ));
            }
        }
        for (node, e) in self.new_expiries(nodes) {
            let b = e.broker.0;
            if self.exempt.contains(&b) || nodes[b as usize - 1].running.lock().is_none() {
                continue;
            }
            if self.unfenced.get(&b) == Some(&e.epoch.0) {
                return Err(format!(
                    "n{b} (broker epoch {}) timed out by the controller on n{node} (its clock at {} ms; \
                     seen by the watch at {at:?}) with only slow disks as a fault: its node is up and was \
                     unfenced in this epoch, so its heartbeats reach the controller",
                    e.epoch.0, e.at_ms
                ));
            }
        }
        Ok(())
    }
}
