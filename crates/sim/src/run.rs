//! One seed's run: a cluster of real nodes and the workload's client on
//! turmoil, a fault schedule drawn from the seed, the invariants after
//! every step, and the history judged by the checker at the end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::faults::{
    self, heal, inject, inject_io_error, inject_slow_node, plan_reassignment, release_stalls,
    Faults, CLIENT,
};
use crate::invariants::{self, all_up, converged, Invariants};
use crate::node::{self, host, NodeHandles, SimClock};
use crate::slow_disk::{self, FenceWatch, Hold, Trial};
use crate::workload::{self, Workload};

/// One simulated tick.
const TICK: Duration = Duration::from_millis(1);
/// The committed-batch check runs every this many steps.
const COMMITTED_EVERY: usize = 20;
/// The topic a slow-disk trial may create while the disks stall.
const TRIAL_TOPIC: &str = "trial";

/// What a run is made of.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: i32,
    pub partitions: i32,
    /// Fault phases before healing (each 0.2-2 s of simulated time).
    pub fault_phases: usize,
    /// KIP-966 eligible leader replicas and unclean-shutdown handling in
    /// the controllers (Kafka 4.1's default; off only in the test that
    /// shows what the simulation finds without it).
    pub eligible_leader_replicas: bool,
    /// Stalled nodes (traffic held, then delivered late) and full disks,
    /// drawn from a stream of their own: off, a seed's schedule is what it
    /// was before they were added.
    pub slow_nodes: bool,
    /// Reassignments of the workload's partitions (AlterPartitionReassignments)
    /// while the faults run, drawn from a third stream of their own (off, a
    /// seed's schedule is what it was before they were added).
    pub reassignments: bool,
    /// Failing fsyncs and writes (EIO) on a node's disk, drawn from a
    /// fourth stream of their own (off, a seed's schedule is what it was
    /// before they were added).
    pub io_errors: bool,
    /// Slow and stalled disks ([`crate::slow_disk`]), in the fault phases
    /// and in a trial after healing, drawn from a fifth stream of their
    /// own (off, a seed's schedule is what it was before they were added).
    pub slow_disks: bool,
    /// The held-commit trial ([`Trial::held_commit`]) after the slow-disk
    /// trial, drawn from a sixth stream of its own (off, a seed's schedule
    /// is what it was before it was added). Needs `slow_disks`.
    pub held_commits: bool,
    /// Consumers in a group ([`crate::group`]) beside the producers (off,
    /// the network carries what it carried before they were added).
    pub consumer_groups: bool,
    /// Split roles: nodes 1-3 controller-only voters, the others
    /// broker-only (`process.roles`); needs 5 nodes (2 brokers, each
    /// partition on both). Off: every node is combined.
    pub split_roles: bool,
}

impl SimConfig {
    /// Which nodes play which roles.
    pub fn layout(&self) -> node::Layout {
        node::Layout {
            nodes: self.nodes,
            controllers: if self.split_roles { 3 } else { 0 },
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            partitions: 3,
            fault_phases: 8,
            eligible_leader_replicas: true,
            slow_nodes: true,
            reassignments: true,
            io_errors: true,
            slow_disks: true,
            held_commits: true,
            consumer_groups: true,
            split_roles: false,
        }
    }
}

/// A run that kept every invariant: its trace (the schedule, then what
/// the checker counted), which a replay of the seed reproduces exactly.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub trace: Vec<String>,
    pub acked: usize,
    pub simulated: Duration,
}

/// How many shards a tokio runtime's task list has at most; a task's
/// shard is its id modulo the shard count.
const TASK_SHARDS: u64 = 1 << 16;

/// Starts this run's tokio task ids at the same residue modulo
/// [`TASK_SHARDS`] as every other run's.
///
/// Tokio numbers tasks from one process-wide counter, and a runtime that
/// shuts down (a crashed host) drops its tasks shard by shard. So a crash
/// closed the host's connections in an order that depended on how many
/// tasks the process had made before the run, and a seed run after
/// another in one process diverged from the same seed in a fresh process
/// (its peers saw the EOFs in another order). Spawning tasks that never
/// run until the next id is 1 modulo the shard count removes that
/// dependence; it costs at most 65,535 tasks (milliseconds).
fn align_task_ids() {
    let burner = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime to number tasks on");
    loop {
        let id: u64 = burner
            .spawn(async {})
            .id()
            .to_string()
            .parse()
            .expect("tokio prints task ids as numbers");
        if id % TASK_SHARDS == 0 {
            return;
        }
    }
}

/// Runs one seed: `Ok` with the run's trace, or `Err` naming the violated
/// invariant or the checker's anomalies, with the schedule.
pub fn run_seed(seed: u64, config: &SimConfig) -> Result<Outcome, String> {
    align_task_ids();
    sluice_runtime::simulate_on_this_thread(seed);
    // A panic (the simulator's or the nodes') fails this seed, not the
    // seeds after it.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed, config)))
        .unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(format!("seed {seed}: panicked: {why}"))
        });
    sluice_runtime::stop_simulating_on_this_thread();
    result
}

fn run(seed: u64, config: &SimConfig) -> Result<Outcome, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut r = Run::start(seed, config, &mut rng);
    r.form().map_err(|e| r.fail(e))?;
    // The fifth stream: slow and stalled disks.
    let mut disks = StdRng::seed_from_u64(seed ^ 0x510d_15c0);
    r.faults(config, &mut rng, &mut disks)
        .map_err(|e| r.fail(e))?;
    // The sixth stream: the held-commit trial.
    let mut held = StdRng::seed_from_u64(seed ^ 0x4e1d_c0c0);
    let held = (config.slow_disks && config.held_commits).then_some(&mut held);
    r.heal_and_read(config.slow_disks.then_some(&mut disks), held)
        .map_err(|e| r.fail(e))?;
    r.converge().map_err(|e| r.fail(e))?;
    r.verdict().map_err(|e| r.fail(e))
}

/// One seed's simulation in progress.
struct Run {
    seed: u64,
    sim: turmoil::Sim<'static>,
    nodes: Vec<NodeHandles>,
    workload: Arc<Workload>,
    inv: Invariants,
    steps: usize,
    /// The schedule so far (and, at the end, the checker's counts).
    trace: Vec<String>,
    /// `SLUICE_SIM_TRACE_PARTITION` and what it printed last.
    traced: Option<(String, String)>,
    faults: Faults,
    /// The faults have healed: a node that halts now restarts at once.
    healed: bool,
    /// The slow-disk trial's fencing check, while it runs.
    fence_watch: Option<FenceWatch>,
}

impl Run {
    /// The nodes (freshly formatted disks) and the client, not yet run.
    fn start(seed: u64, config: &SimConfig, rng: &mut StdRng) -> Run {
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .tick_duration(TICK)
            // Phases last at most 2 s; forming, healing, reading and
            // converging take at most 30 + 8 + 60 + 10 s.
            .simulation_duration(Duration::from_secs(600 + 2 * config.fault_phases as u64))
            // Accept queues deep enough for the connection attempts a
            // stall holds (turmoil panics where a kernel drops SYNs).
            .tcp_capacity(4096)
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(rng.gen_range(2..10)))
            .build();
        let layout = config.layout();
        assert!(
            layout.controllers < layout.nodes,
            "split roles need more nodes than the 3 controllers"
        );
        let mut nodes = Vec::new();
        for id in 1..=config.nodes {
            let fs = Arc::new(sluice_storage::SimFs::new());
            node::format(&fs, &node::config(id, layout));
            let h = NodeHandles {
                id,
                layout,
                fs,
                clock: SimClock::default(),
                running: Arc::default(),
                halted: Arc::default(),
                eligible_leader_replicas: config.eligible_leader_replicas,
            };
            let hh = h.clone();
            sim.host(host(id), move || node::node_main(hh.clone()));
            nodes.push(h);
        }
        let consumers = if config.consumer_groups {
            crate::group::CONSUMERS
        } else {
            0
        };
        let workload = Arc::new(Workload::new(
            layout.brokers(),
            config.partitions,
            consumers,
        ));
        let client = workload.clone();
        sim.client(CLIENT, async move {
            workload::create_topic(&client).await;
            tokio::spawn(workload::admin(client.clone()));
            let consumers: Vec<_> = (0..client.consumers)
                .map(|i| tokio::spawn(crate::group::group_consumer(client.clone(), i)))
                .collect();
            let producers: Vec<_> = (0..client.partitions)
                .map(|p| tokio::spawn(workload::producer(client.clone(), p)))
                .collect();
            for p in producers {
                p.await?;
            }
            workload::reader(client.clone()).await;
            // (The client host's tasks end with this future.)
            for c in consumers {
                c.await?;
            }
            Ok(())
        });
        Run {
            seed,
            sim,
            nodes,
            workload,
            inv: Invariants::default(),
            steps: 0,
            trace: Vec::new(),
            traced: std::env::var("SLUICE_SIM_TRACE_PARTITION")
                .ok()
                .map(|tp| (tp, String::new())),
            faults: Faults::default(),
            healed: false,
            fence_watch: None,
        }
    }

    fn fail(&self, e: String) -> String {
        format!("seed {}: {e}\n  schedule: {:#?}", self.seed, self.trace)
    }

    /// Steps for up to `d` of simulated time, checking the invariants after
    /// every step, until `until` holds (its value at the end).
    fn run_for(&mut self, d: Duration, until: impl Fn(&Workload) -> bool) -> Result<bool, String> {
        let end = self.sim.elapsed() + d;
        while self.sim.elapsed() < end {
            if until(&self.workload) {
                return Ok(true);
            }
            // (Whether the client finished does not matter: the nodes
            // keep running until the run's checks are done.)
            self.sim
                .step()
                .map_err(|e| format!("simulation error: {e}"))?;
            self.steps += 1;
            if let Some((tp, last)) = &mut self.traced {
                trace_partition(&self.nodes, tp, self.sim.elapsed(), last);
            }
            self.note_halts();
            self.inv.check_step(&self.nodes)?;
            if self.steps % COMMITTED_EVERY == 0 {
                self.inv.check_committed(&self.nodes)?;
                if let Some(w) = &mut self.fence_watch {
                    w.sample(&self.nodes, self.sim.elapsed())?;
                }
            }
        }
        Ok(until(&self.workload))
    }

    /// Nodes whose process halted on its own are down until restarted, as
    /// after `kill -9` (their writes are in the page cache).
    fn note_halts(&mut self) {
        for n in &self.nodes {
            let Some(why) = n.halted.lock().take() else {
                continue;
            };
            self.trace
                .push(format!("{:?} n{} halted: {why}", self.sim.elapsed(), n.id));
            self.sim.crash(host(n.id));
            *n.running.lock() = None;
            n.fs.kill();
            if let Some(w) = &mut self.fence_watch {
                w.forget(n.id);
            }
            if self.healed {
                // No restart comes after healing: as a supervisor would.
                self.sim.bounce(host(n.id));
            } else if !self.faults.crashed.contains(&n.id) {
                self.faults.crashed.push(n.id);
            }
        }
    }

    /// The cluster forms and acknowledges a first write before any fault.
    fn form(&mut self) -> Result<(), String> {
        if !self.run_for(Duration::from_secs(30), |w| w.acked() > 0)? {
            return Err("no write was acknowledged within 30 s of start".into());
        }
        Ok(())
    }

    /// The seed's fault phases.
    fn faults(
        &mut self,
        config: &SimConfig,
        rng: &mut StdRng,
        disks: &mut StdRng,
    ) -> Result<(), String> {
        let mut slow = StdRng::seed_from_u64(self.seed ^ 0x5107_d15c);
        let mut moves = StdRng::seed_from_u64(self.seed ^ 0x4ea5_5167);
        let mut io = StdRng::seed_from_u64(self.seed ^ 0x0e10_fa11);
        for _ in 0..config.fault_phases {
            if config.slow_disks {
                if let Some(what) =
                    slow_disk::inject(disks, &self.nodes, &mut self.faults.slow_disks)
                {
                    self.trace.push(format!("{:?} {what}", self.sim.elapsed()));
                }
            }
            let what = inject(&mut self.sim, rng, &self.nodes, &mut self.faults);
            self.trace.push(format!("{:?} {what}", self.sim.elapsed()));
            if config.slow_nodes {
                if let Some(what) =
                    inject_slow_node(&mut self.sim, &mut slow, &self.nodes, &mut self.faults)
                {
                    self.trace.push(format!("{:?} {what}", self.sim.elapsed()));
                }
            }
            if config.reassignments {
                if let Some(what) = plan_reassignment(&mut moves, &self.nodes, &self.workload) {
                    self.trace.push(format!("{:?} {what}", self.sim.elapsed()));
                }
            }
            if config.io_errors {
                if let Some(what) = inject_io_error(&mut io, &self.nodes) {
                    self.trace.push(format!("{:?} {what}", self.sim.elapsed()));
                }
            }
            let phase = Duration::from_millis(rng.gen_range(200..2000));
            self.run_for(phase, |_| false)?;
            // A stall lasts one phase, as a SIGSTOP of up to 2 s would
            // (longer, and turmoil's accept queues overflow with the
            // connection attempts held meanwhile).
            if !self.faults.stalled.is_empty() {
                release_stalls(&mut self.sim, config.nodes, &mut self.faults);
                self.trace
                    .push(format!("{:?} stalled nodes resume", self.sim.elapsed()));
            }
            for what in slow_disk::end_phase(&self.nodes, &mut self.faults.slow_disks) {
                self.trace.push(format!("{:?} {what}", self.sim.elapsed()));
            }
        }
        Ok(())
    }

    /// Heals everything; writes must be acknowledged again, then the
    /// producers stop and the reader reads every partition.
    fn heal_and_read(
        &mut self,
        disks: Option<&mut StdRng>,
        held: Option<&mut StdRng>,
    ) -> Result<(), String> {
        heal(&mut self.sim, &self.nodes, &mut self.faults);
        self.healed = true;
        self.trace.push(format!("{:?} heal", self.sim.elapsed()));
        let healed_acks = self.workload.acked();
        let healed_commits = self.workload.commits_acked.load(Ordering::Relaxed);
        self.run_for(Duration::from_secs(8), |_| false)?;
        if self.workload.acked() == healed_acks {
            return Err("no write was acknowledged in the 8 s after healing".into());
        }
        // Liveness: every node is up, so every partition has a leader again
        // (seed 1517 had one leaderless for 26 s after healing: its only
        // eligible replica stayed fenced while its heartbeat was stuck).
        let leaderless = invariants::leaderless(&self.nodes, workload::TOPIC);
        if !leaderless.is_empty() {
            return Err(format!(
                "partitions {leaderless:?} of {} still have no leader 8 s after healing",
                workload::TOPIC
            ));
        }
        if let Some(trial) = disks.and_then(|rng| Trial::draw(rng, &self.nodes)) {
            self.slow_disk_trial(trial)?;
        }
        if let Some(trial) = held.and_then(|rng| Trial::held_commit(rng, &self.nodes)) {
            self.slow_disk_trial(trial)?;
        }
        self.workload.stop.store(true, Ordering::Relaxed);
        let read = self.run_for(Duration::from_secs(60), |w| {
            w.read_done.load(Ordering::Relaxed)
                && w.consumers_done.load(Ordering::Relaxed) == w.consumers
        })?;
        if !read {
            let w = &self.workload;
            return Err(format!(
                "the producers, the reader and the group's consumers did not finish within 60 s of healing \
                 ({} of {} producers stopped, reader done: {}, {} of {} consumers done)",
                w.stopped.load(Ordering::Relaxed),
                w.partitions,
                w.read_done.load(Ordering::Relaxed),
                w.consumers_done.load(Ordering::Relaxed),
                w.consumers
            ));
        }
        if self.workload.consumers > 0
            && self.workload.commits_acked.load(Ordering::Relaxed) == healed_commits
        {
            return Err("the group coordinator acknowledged no commit after healing".into());
        }
        Ok(())
    }

    /// Slow disks on the healed cluster while the producers write (see
    /// [`crate::slow_disk`]): no broker may lose its session unless its
    /// own disk stalled longer than one, and once the disks heal, writes
    /// are acknowledged and every broker is unfenced within 10 s each.
    fn slow_disk_trial(&mut self, trial: Trial) -> Result<(), String> {
        let session = Duration::from_millis(
            node::config(1, self.nodes[0].layout).broker_session_timeout_ms as u64,
        );
        self.trace.push(format!("{:?} {trial}", self.sim.elapsed()));
        self.fence_watch = Some(FenceWatch::new(trial.exempt(session), &self.nodes));
        let (hold, start) = trial.hold.clone().unzip();
        let start = start.unwrap_or(0);
        if let Some(hold) = hold.as_ref().filter(|_| start < 0) {
            self.start_hold(hold);
            self.run_for(Duration::from_millis(start.unsigned_abs()), |_| false)?;
        }
        trial.apply(&self.nodes);
        let mut left = trial.lasts;
        if let Some(hold) = hold.as_ref().filter(|_| start >= 0) {
            let before = Duration::from_millis(start.unsigned_abs()).min(left);
            self.run_for(before, |_| false)?;
            left -= before;
            self.start_hold(hold);
        }
        self.run_for(left, |_| false)?;
        trial.heal(&self.nodes);
        self.trace.push(format!(
            "{:?} the trial's disks are fast again",
            self.sim.elapsed()
        ));
        let acked = self.workload.acked();
        if !self.run_for(Duration::from_secs(10), |w| w.acked() > acked)? {
            return Err("no write was acknowledged in the 10 s after the slow disks healed".into());
        }
        let mut fenced = None;
        for _ in 0..50 {
            fenced = slow_disk::fenced_brokers(&self.nodes);
            if fenced.as_ref().is_some_and(|f| f.is_empty()) {
                break;
            }
            self.run_for(Duration::from_millis(200), |_| false)?;
        }
        self.fence_watch = None;
        match fenced {
            Some(f) if f.is_empty() => Ok(()),
            Some(f) => Err(format!(
                "brokers {f:?} still fenced 10 s after the slow disks healed"
            )),
            None => Err("no active controller 10 s after the slow disks healed".into()),
        }
    }

    /// Starts the slow-disk trial's metadata write.
    fn start_hold(&mut self, hold: &Hold) {
        let what = match hold {
            Hold::Reassign(draws) => {
                let mut rng = StdRng::seed_from_u64(*draws);
                faults::reassign(&mut rng, &self.nodes, &self.workload)
                    .unwrap_or_else(|| "no reassignment: no controller image".into())
            }
            Hold::CreateTopic => {
                self.workload.request_topic(TRIAL_TOPIC.into(), 1);
                format!("create topic {TRIAL_TOPIC}")
            }
            Hold::Restart(id) => {
                let mut rng = StdRng::seed_from_u64(u64::from(id.unsigned_abs()));
                faults::crash(
                    &mut self.sim,
                    &self.nodes[*id as usize - 1],
                    false,
                    &mut rng,
                    &mut self.faults,
                );
                faults::restart(&mut self.sim, &mut self.faults);
                if let Some(w) = &mut self.fence_watch {
                    w.forget(*id);
                }
                format!("kill -9 n{id} and restart it")
            }
        };
        self.trace.push(format!(
            "{:?} the trial's write: {what}",
            self.sim.elapsed()
        ));
    }

    /// Every node is up again with its log directories online, and the
    /// followers catch up with the leaders' last high watermarks.
    fn converge(&mut self) -> Result<(), String> {
        let mut last = Err(String::new());
        for _ in 0..50 {
            last = all_up(&self.nodes).and_then(|_| converged(&self.nodes));
            if last.is_ok() {
                break;
            }
            self.run_for(Duration::from_millis(200), |_| false)?;
        }
        last.map_err(|e| format!("replicas did not converge after healing: {e}"))?;
        self.inv.check_committed(&self.nodes)
    }

    /// The checker's verdict on the history, and the run's trace.
    fn verdict(&mut self) -> Result<Outcome, String> {
        let history = self.workload.history();
        if let Ok(path) = std::env::var("SLUICE_SIM_HISTORY") {
            write_history(&path, &history);
        }
        let report = sluice_checker::check(&history).map_err(|e| e.to_string())?;
        if !report.is_valid() {
            return Err(format!("the checker found anomalies:\n{report}"));
        }
        for (p, replicas, code) in self.workload.reassigned() {
            self.trace.push(format!(
                "reassignment of {}-{p} to {replicas:?}: {}",
                workload::TOPIC,
                match code {
                    0 => "accepted".to_string(),
                    -1 => "superseded before any node answered".to_string(),
                    c => format!("error {c}"),
                }
            ));
        }
        self.trace
            .push(format!("history digest {:016x}", digest(&history)));
        let s = &report.stats;
        self.trace.push(format!(
            "{} sends ok, {} indeterminate, {} records read, {} commits acknowledged",
            s.sends_ok,
            s.sends_indeterminate,
            s.records_polled,
            self.workload.commits_acked.load(Ordering::Relaxed)
        ));
        Ok(Outcome {
            trace: self.trace.clone(),
            acked: s.sends_ok,
            simulated: self.sim.elapsed(),
        })
    }
}

/// Writes the history as JSON lines (`SLUICE_SIM_HISTORY=path`, debugging:
/// `sluice-check path` checks it again, and each op carries its simulated
/// time in ms).
fn write_history(path: &str, history: &[sluice_checker::Op]) {
    let mut out = String::new();
    for op in history {
        if let Ok(line) = serde_json::to_string(op) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Err(e) = std::fs::write(path, out) {
        eprintln!("SLUICE_SIM_HISTORY: cannot write {path}: {e}");
    }
}

/// FNV-1a over the history's text: two runs with the same digest made the
/// same operations with the same outcomes at the same simulated times.
fn digest(history: &[sluice_checker::Op]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for op in history {
        for b in format!("{op:?}").bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Prints `topic-partition`'s registration whenever the active
/// controller's image changes it (`SLUICE_SIM_TRACE_PARTITION`, debugging).
fn trace_partition(nodes: &[NodeHandles], tp: &str, at: Duration, last: &mut String) {
    let Some((topic, p)) = tp.rsplit_once('-') else {
        return;
    };
    let Ok(p) = p.parse::<i32>() else { return };
    for n in nodes {
        let r = n.running.lock();
        let Some(c) = r.as_ref().and_then(|r| r.controller.as_ref()) else {
            continue;
        };
        if !c.is_active() {
            continue;
        }
        let image = c.image();
        let Some(reg) = image.topic(topic).and_then(|t| t.partition(p).cloned()) else {
            return;
        };
        let now = format!(
            "leader {} epoch {} isr {:?} elr {:?} last_known_elr {:?} recovery {:?}",
            reg.leader.0,
            reg.leader_epoch.0,
            reg.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
            reg.elr.iter().map(|b| b.0).collect::<Vec<_>>(),
            reg.last_known_elr.iter().map(|b| b.0).collect::<Vec<_>>(),
            reg.leader_recovery_state
        );
        if now != *last {
            eprintln!("{:>9.3}s {tp} (n{} active): {now}", at.as_secs_f64(), n.id);
            *last = now;
        }
        return;
    }
}
