//! Deterministic simulation (turmoil) of the controller quorum: three
//! voters, each running the real [`QuorumController`] on its real
//! [`RaftMetadataLog`] (openraft, RPC, storage on SimFs), and three
//! simulated brokers, each following the metadata log as an observer (a
//! `RaftMetadataLog` outside the voter set) and reporting the offset it
//! applied in its heartbeats, that register, heartbeat and send
//! CreateTopics, DeleteTopics, CreatePartitions and
//! IncrementalAlterConfigs to whichever voter is the active controller
//! (following NOT_CONTROLLER answers), and, for the partitions their
//! observer image says they lead, AlterPartition with random ISRs
//! (concurrent with fencing, controlled by session expiry on clock jumps).
//! Odd seeds run the controllers with eligible leader replicas (KIP-966),
//! and topics' `min.insync.replicas` changes under them.
//!
//! A seed draws the whole fault schedule: message loss, partitions (both
//! ways and one way, between any two hosts, voters or brokers), isolation
//! of a host, voter crashes that lose unsynced bytes (SimFs), broker
//! crashes (a new incarnation on restart), restarts, jumps of a voter's
//! wall clock (which drives session expiry), and failing disks (an fsync
//! of a voter fails with EIO: the node must halt, and it comes back at
//! the next restart; drawn from a stream of their own, so
//! `SLUICE_SIM_DISK_FAULTS=0` replays a seed's schedule without them).
//!
//! Checked after every simulation step by `common::checker` (one leader
//! per epoch, never an observer, which stays an openraft learner; every record and every image at an offset identical on
//! every node and incarnation, the controllers' own images included;
//! broker epochs unique and increasing; no image naming an unusable or
//! unregistered broker as leader, nor an ISR with a member that cannot
//! serve unless it is the last member of a leaderless ISR, nor a leader
//! outside its ISR). After the faults heal: every
//! acknowledged operation's record is committed, every voter's and
//! observer's image is byte-identical and at the end of the committed log, every broker is
//! registered and unfenced, and the quorum made progress.
//!
//! `SLUICE_SIM_SEEDS=N` runs N seeds (default 4 in CI) from
//! `SLUICE_SIM_FIRST_SEED`; `SLUICE_SIM_SEED=S` replays one (with the same
//! `SLUICE_SIM_PHASES`, default 10 fault phases); failing seeds are printed
//! with their fault schedule.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_controller::raft::local::fold;
use sluice_controller::raft::transport::Transport;
use sluice_controller::raft::{seed_thread_rng, RaftConfig, RaftMetadataLog};
use sluice_controller::{
    ControllerConfig, LogEvent, MetadataLog, NodeId, PermissiveValidator, QuorumController,
};
use sluice_metadata::{BrokerId, MetadataImage, MetadataRecord};
use sluice_storage::{Fault, FaultKind, SimFs};
use uuid::Uuid;

use common::checker::{Acked, Checker};
use common::rpc::{self, Body, Req, Resp};
use common::{SimClock, SimTransport};

const VOTERS: i32 = 3;
const BROKERS: [i32; 3] = [11, 12, 13];
const RAFT_PORT: u16 = 9000;
const CONTROLLER_PORT: u16 = 9100;
const TICK: Duration = Duration::from_millis(2);
const SESSION_TIMEOUT_MS: i64 = 2000;
const TOPICS: usize = 5;

fn voter_host(id: i32) -> String {
    format!("n{id}")
}

fn broker_host(id: i32) -> String {
    format!("b{id}")
}

fn voters() -> BTreeMap<NodeId, String> {
    (1..=VOTERS)
        .map(|i| (BrokerId(i), format!("{}:{RAFT_PORT}", voter_host(i))))
        .collect()
}

/// What a voter's listeners delivered (across its incarnations).
#[derive(Default)]
struct Seen {
    events: Vec<LogEvent>,
    /// The image after each batch or snapshot, in delivery order.
    images: Vec<MetadataImage>,
    image: Option<MetadataImage>,
}

/// A voter's running parts, as the checker reaches them.
#[derive(Default)]
struct Running {
    log: Option<Arc<RaftMetadataLog>>,
    controller: Option<Arc<QuorumController>>,
}

/// A host's parts the checker reads (a voter, or a broker's observer).
struct Node {
    fs: Arc<SimFs>,
    clock: SimClock,
    running: Arc<Mutex<Running>>,
    seen: Arc<Mutex<Seen>>,
    events_checked: usize,
    images_checked: usize,
}

/// What a host's software gets of its [`Node`] (again on every restart).
#[derive(Clone)]
struct NodeHandles {
    fs: Arc<SimFs>,
    clock: SimClock,
    running: Arc<Mutex<Running>>,
    seen: Arc<Mutex<Seen>>,
}

impl Node {
    fn handles(&self) -> NodeHandles {
        NodeHandles {
            fs: self.fs.clone(),
            clock: self.clock.clone(),
            running: self.running.clone(),
            seen: self.seen.clone(),
        }
    }
}

#[derive(Default)]
struct Shared {
    seed: u64,
    acked: Mutex<Vec<Acked>>,
    /// Broker starts so far (each start is a new incarnation).
    incarnations: AtomicU64,
    stop_admin: AtomicBool,
    /// Internal errors controllers answered (each is a bug).
    internal: Mutex<Vec<String>>,
}

/// Starts this host's metadata log (a voter, or an observer at
/// `observer`) and a listener folding what it delivers into `seen`.
async fn start_log(
    id: i32,
    fs: Arc<SimFs>,
    clock: &SimClock,
    observer: Option<String>,
    seen: Arc<Mutex<Seen>>,
) -> Result<Arc<RaftMetadataLog>, Box<dyn std::error::Error>> {
    let mut config = RaftConfig::new(BrokerId(id), "sim", voters(), "/meta".into());
    config.snapshot_every_entries = 20;
    config.entries_kept_after_snapshot = 5;
    let addr = observer
        .clone()
        .unwrap_or_else(|| voters()[&BrokerId(id)].clone());
    config.observer_address = observer;
    let acceptor = SimTransport.bind(&addr).await?;
    let log = RaftMetadataLog::start(
        config,
        fs,
        Arc::new(SimTransport),
        acceptor,
        Arc::new(clock.clone()),
    )
    .await?;
    let log = Arc::new(log);
    let mut listener = log.listen();
    tokio::spawn(async move {
        while let Ok(ev) = listener.next().await {
            let mut g = seen.lock();
            let image = g.image.take().unwrap_or_else(MetadataImage::empty);
            let image = fold(image, &ev);
            if !matches!(ev, LogEvent::LeaderChange(_)) {
                g.images.push(image.clone());
            }
            g.image = Some(image);
            g.events.push(ev);
        }
    });
    Ok(log)
}

async fn voter_main(
    id: i32,
    elr: bool,
    fs: Arc<SimFs>,
    clock: SimClock,
    running: Arc<Mutex<Running>>,
    seen: Arc<Mutex<Seen>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let log = match start_log(id, fs, &clock, None, seen).await {
        Ok(log) => log,
        // A failing disk stops the node as it starts: it stays down (a
        // halted process) until the simulation restarts it.
        Err(e) if e.to_string().contains("fatal") => {
            std::future::pending::<()>().await;
            unreachable!("{e}")
        }
        Err(e) => return Err(e),
    };
    let controller = Arc::new(QuorumController::start(
        log.clone(),
        ControllerConfig {
            broker_session_timeout_ms: SESSION_TIMEOUT_MS,
            eligible_leader_replicas_enabled: elr,
            ..ControllerConfig::default()
        },
        Arc::new(PermissiveValidator),
        Arc::new(clock),
    ));
    {
        let mut r = running.lock();
        r.log = Some(log.clone());
        r.controller = Some(controller.clone());
    }
    let l = turmoil::net::TcpListener::bind(("0.0.0.0", CONTROLLER_PORT)).await?;
    loop {
        let (s, _) = l.accept().await?;
        tokio::spawn(rpc::serve_conn(s, controller.clone()));
    }
}

/// One request to voter `target`, on `conn` (connecting first if needed).
async fn call(
    conn: &mut Option<turmoil::net::TcpStream>,
    target: i32,
    req: &Req,
) -> std::io::Result<Resp> {
    let attempt = async {
        if conn.is_none() {
            let s = turmoil::net::TcpStream::connect((voter_host(target), CONTROLLER_PORT)).await?;
            *conn = Some(s);
        }
        let s = conn.as_mut().expect("connected");
        rpc::send(s, req).await?;
        rpc::recv(s).await
    };
    match tokio::time::timeout(Duration::from_millis(400), attempt).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            *conn = None;
            Err(e)
        }
        Err(_) => {
            *conn = None;
            Err(std::io::Error::other("timed out"))
        }
    }
}

/// An admin request a broker forwards for a client.
fn admin(rng: &mut StdRng) -> Req {
    let name = format!("t{}", rng.gen_range(0..TOPICS));
    match rng.gen_range(0..4) {
        0 | 1 => Req::CreateTopic {
            name,
            partitions: rng.gen_range(1..=3),
            rf: rng.gen_range(1..=3),
        },
        2 if rng.gen_bool(0.5) => Req::DeleteTopic { name },
        2 => Req::CreatePartitions {
            name,
            count: rng.gen_range(2..=5),
        },
        _ if rng.gen_bool(0.5) => Req::SetConfig {
            topic: name,
            key: "retention.ms".into(),
            value: rng.gen_range(1000..100_000).to_string(),
        },
        // Shapes which ISR shrinks fill the ELR.
        _ => Req::SetConfig {
            topic: name,
            key: "min.insync.replicas".into(),
            value: rng.gen_range(1..=3).to_string(),
        },
    }
}

/// What a successful answer to `req` acknowledges.
fn acked(req: &Req, body: &Body) -> Option<Acked> {
    match (req, body) {
        (Req::Register { broker, .. }, Body::Registered { epoch }) => Some(Acked::Registered {
            broker: *broker,
            epoch: *epoch,
        }),
        (Req::CreateTopic { name, .. }, Body::Created { id }) => Some(Acked::TopicCreated {
            name: name.clone(),
            id: Uuid::from_u128(*id),
        }),
        (Req::DeleteTopic { .. }, Body::Deleted { id }) => Some(Acked::TopicDeleted {
            id: Uuid::from_u128(*id),
        }),
        (Req::CreatePartitions { name, count }, Body::Done) => Some(Acked::PartitionsCreated {
            topic: name.clone(),
            count: *count,
        }),
        (
            Req::AlterIsr {
                topic, partition, ..
            },
            Body::Isr { isr, .. },
        ) => Some(Acked::IsrChanged {
            topic: Uuid::from_u128(*topic),
            partition: *partition,
            isr: isr.clone(),
        }),
        (Req::SetConfig { topic, key, value }, Body::Done) => Some(Acked::ConfigSet {
            topic: topic.clone(),
            key: key.clone(),
            value: value.clone(),
        }),
        _ => None,
    }
}

/// An ISR change for a partition `id` leads in `image` (as a partition
/// leader proposes one: itself plus some of the other replicas, each at
/// the broker epoch its image shows, or -1), or `None` if it leads none.
fn isr_change(id: i32, epoch: i64, image: &MetadataImage, rng: &mut StdRng) -> Option<Req> {
    let led: Vec<_> = image
        .topics()
        .flat_map(|t| {
            t.partitions()
                .iter()
                .filter(|(_, r)| r.leader == BrokerId(id))
                .map(|(&p, r)| (t.id(), p, r.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    if led.is_empty() {
        return None;
    }
    let (topic, partition, reg) = led[rng.gen_range(0..led.len())].clone();
    let mut isr = Vec::new();
    for &b in &reg.replicas {
        if b != BrokerId(id) && !rng.gen_bool(0.6) {
            continue;
        }
        let e = match image.broker(b) {
            Some(r) if rng.gen_bool(0.9) => r.epoch.0,
            _ => -1,
        };
        isr.push((b.0, e));
    }
    Some(Req::AlterIsr {
        broker: id,
        epoch,
        topic: topic.as_u128(),
        partition,
        leader_epoch: reg.leader_epoch.0,
        partition_epoch: reg.partition_epoch.0,
        isr,
    })
}

/// A simulated broker: follows the metadata log as an observer (its own
/// `RaftMetadataLog` outside the voter set, on its own SimFs), registers
/// (again after a stale epoch), heartbeats with the offset its observer
/// applied, and forwards admin requests, to whichever voter is the active
/// controller.
async fn broker_main(
    id: i32,
    shared: Arc<Shared>,
    node: NodeHandles,
) -> Result<(), Box<dyn std::error::Error>> {
    let addr = format!("{}:{RAFT_PORT}", broker_host(id));
    let seen = node.seen.clone();
    let log = start_log(id, node.fs, &node.clock, Some(addr), node.seen).await?;
    node.running.lock().log = Some(log);
    let start = shared.incarnations.fetch_add(1, Ordering::Relaxed);
    let mut rng = StdRng::seed_from_u64(shared.seed ^ (start << 20) ^ id as u64);
    let incarnation: u128 = rng.gen();
    let mut target = rng.gen_range(1..=VOTERS);
    let mut conn = None;
    let mut epoch: Option<i64> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let applied = seen
            .lock()
            .image
            .as_ref()
            .map_or(-1, |i| i.provenance().last_offset.0);
        let req = match epoch {
            None => Req::Register {
                broker: id,
                incarnation,
            },
            Some(_) if !shared.stop_admin.load(Ordering::Relaxed) && rng.gen_bool(0.3) => {
                admin(&mut rng)
            }
            Some(e) => {
                let quiet = shared.stop_admin.load(Ordering::Relaxed);
                let change = if !quiet && rng.gen_bool(0.3) {
                    let image = seen.lock().image.clone();
                    image.and_then(|i| isr_change(id, e, &i, &mut rng))
                } else {
                    None
                };
                change.unwrap_or(Req::Heartbeat {
                    broker: id,
                    epoch: e,
                    offset: applied,
                })
            }
        };
        let Ok(resp) = call(&mut conn, target, &req).await else {
            target = target % VOTERS + 1;
            continue;
        };
        if let Some(a) = acked(&req, &resp.body) {
            shared.acked.lock().push(a);
        }
        match resp.body {
            Body::NotController { leader } => {
                target = match leader {
                    Some(l) if l != target => l,
                    _ => target % VOTERS + 1,
                };
                conn = None;
            }
            Body::Registered { epoch: e } => epoch = Some(e),
            Body::Stale => epoch = None,
            Body::Internal(e) => shared.internal.lock().push(format!("{req:?}: {e}")),
            _ => {}
        }
    }
}

/// Runs the checker over everything new since the last step.
fn check_step(
    checker: &mut Checker,
    voters: &mut BTreeMap<i32, Node>,
    images_too: bool,
) -> Result<(), String> {
    for (&id, v) in voters.iter_mut() {
        let (log, controller) = {
            let r = v.running.lock();
            (r.log.clone(), r.controller.clone())
        };
        if let Some(log) = log {
            let m = log.raft().metrics().borrow().clone();
            if m.state == openraft::ServerState::Leader {
                checker.leader(m.current_term as i64, id, "server state")?;
            }
            if id > VOTERS && !matches!(m.state, openraft::ServerState::Learner) {
                return Err(format!("observer {id} is {:?}, not a learner", m.state));
            }
        }
        let seen = v.seen.lock();
        for ev in &seen.events[v.events_checked..] {
            match ev {
                LogEvent::LeaderChange(le) => {
                    if le.leader.is_some_and(|l| l.0 > VOTERS) {
                        return Err(format!("node {id} delivered an observer as leader: {le:?}"));
                    }
                    checker.leader_change(id, *le)?
                }
                LogEvent::Batch(b) => checker.batch(id, b)?,
                LogEvent::Snapshot(_) => {}
            }
        }
        v.events_checked = seen.events.len();
        for img in &seen.images[v.images_checked..] {
            checker.image(&format!("listener of node {id}"), img)?;
        }
        v.images_checked = seen.images.len();
        if let (true, Some(c)) = (images_too, controller) {
            checker.image(&format!("controller of n{id}"), &c.image())?;
        }
    }
    Ok(())
}

struct Faults {
    crashed_voters: Vec<i32>,
    crashed_brokers: Vec<i32>,
    /// Voters whose disk failed (halted until restarted).
    failed_disks: Vec<i32>,
}

fn all_hosts() -> Vec<String> {
    (1..=VOTERS)
        .map(voter_host)
        .chain(BROKERS.iter().map(|&b| broker_host(b)))
        .collect()
}

/// A fault schedule step drawn from the seed.
fn inject(
    sim: &mut turmoil::Sim<'_>,
    rng: &mut StdRng,
    voters: &mut BTreeMap<i32, Node>,
    f: &mut Faults,
) -> String {
    let hosts = all_hosts();
    let a = hosts[rng.gen_range(0..hosts.len())].clone();
    let b = loop {
        let b = &hosts[rng.gen_range(0..hosts.len())];
        if *b != a {
            break b.clone();
        }
    };
    let mut v = rng.gen_range(1..=VOTERS);
    let choice = rng.gen_range(0..12);
    if choice == 11 {
        // Crash the active controller, if there is one.
        if let Some(l) = voters.iter().find_map(|(&id, n)| {
            let r = n.running.lock();
            r.controller.as_ref().filter(|c| c.is_active()).map(|_| id)
        }) {
            v = l;
        }
    }
    match choice {
        0 | 1 => {
            heal(sim, voters, f);
            "heal".into()
        }
        2 => {
            sim.partition(a.as_str(), b.as_str());
            format!("partition {a} {b}")
        }
        3 | 4 => {
            sim.partition_oneway(a.as_str(), b.as_str());
            format!("partition {a} -> {b}")
        }
        5 => {
            for o in hosts.iter().filter(|o| **o != a) {
                sim.partition(a.as_str(), o.as_str());
            }
            format!("isolate {a}")
        }
        6 => {
            let rate = rng.gen_range(0.0..0.05);
            sim.set_fail_rate(rate);
            format!("message loss {rate:.3}")
        }
        7 | 11 if f.crashed_voters.is_empty() => {
            sim.crash(voter_host(v));
            let n = voters.get_mut(&v).expect("voter");
            *n.running.lock() = Running::default();
            n.fs.crash(rng.gen());
            f.crashed_voters.push(v);
            format!("crash n{v}{}", if choice == 11 { " (active)" } else { "" })
        }
        8 if f.crashed_brokers.is_empty() => {
            let b = BROKERS[rng.gen_range(0..BROKERS.len())];
            sim.crash(broker_host(b));
            let n = voters.get_mut(&b).expect("broker");
            *n.running.lock() = Running::default();
            n.fs.crash(rng.gen());
            f.crashed_brokers.push(b);
            format!("crash b{b}")
        }
        9 => {
            let ms = rng.gen_range(-3000..6000);
            voters[&v].clock.jump(ms);
            format!("clock of n{v} jumps {ms} ms")
        }
        _ => {
            restart(sim, voters, f);
            "restart".into()
        }
    }
}

fn restart(sim: &mut turmoil::Sim<'_>, voters: &mut BTreeMap<i32, Node>, f: &mut Faults) {
    for c in f.failed_disks.drain(..) {
        // A node whose disk failed has halted; it comes back as after a
        // crash, its unsynced bytes lost, on a working disk.
        sim.crash(voter_host(c));
        let n = voters.get_mut(&c).expect("voter");
        *n.running.lock() = Running::default();
        n.fs.crash(c as u64);
        n.fs.clear_faults();
        sim.bounce(voter_host(c));
    }
    for c in f.crashed_voters.drain(..) {
        sim.bounce(voter_host(c));
    }
    for c in f.crashed_brokers.drain(..) {
        sim.bounce(broker_host(c));
    }
}

fn heal(sim: &mut turmoil::Sim<'_>, voters: &mut BTreeMap<i32, Node>, f: &mut Faults) {
    sim.set_fail_rate(0.0);
    let hosts = all_hosts();
    for a in &hosts {
        for b in &hosts {
            if a != b {
                sim.repair(a.as_str(), b.as_str());
            }
        }
    }
    restart(sim, voters, f);
}

/// Runs one seed; `Err` names the violated invariant with the schedule.
/// `Ok` is the run's trace (schedule, leaders, acknowledged operations),
/// which a replay must reproduce.
fn run_seed(seed: u64, fault_phases: usize, disk_faults: bool) -> Result<Vec<String>, String> {
    seed_thread_rng(seed);
    // Odd seeds run the controllers with eligible leader replicas.
    let elr = seed % 2 == 1;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut disk_rng = StdRng::seed_from_u64(seed ^ 0xd15c);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(TICK)
        .simulation_duration(Duration::from_secs(3600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(rng.gen_range(2..20)))
        .repair_rate(0.2)
        .build();
    let shared = Arc::new(Shared {
        seed,
        ..Shared::default()
    });
    let mut voters = BTreeMap::new();
    for id in (1..=VOTERS).chain(BROKERS) {
        let v = Node {
            fs: Arc::new(SimFs::new()),
            clock: SimClock::default(),
            running: Arc::default(),
            seen: Arc::default(),
            events_checked: 0,
            images_checked: 0,
        };
        let h = v.handles();
        if id <= VOTERS {
            sim.host(voter_host(id), move || {
                let h = h.clone();
                voter_main(id, elr, h.fs, h.clock, h.running, h.seen)
            });
        } else {
            let sh = shared.clone();
            sim.host(broker_host(id), move || {
                broker_main(id, sh.clone(), h.clone())
            });
        }
        voters.insert(id, v);
    }
    let mut trace = Vec::new();
    let mut checker = Checker::with_elr(elr);
    let mut faults = Faults {
        crashed_voters: Vec::new(),
        crashed_brokers: Vec::new(),
        failed_disks: Vec::new(),
    };
    let mut steps_run = 0usize;
    let mut step = |sim: &mut turmoil::Sim<'_>,
                    voters: &mut BTreeMap<i32, Node>,
                    checker: &mut Checker,
                    steps: usize|
     -> Result<(), String> {
        for _ in 0..steps {
            sim.step().map_err(|e| format!("simulation error: {e}"))?;
            steps_run += 1;
            check_step(checker, voters, steps_run % 25 == 0)?;
            if let Some(e) = shared.internal.lock().first() {
                return Err(format!("a controller answered an internal error: {e}"));
            }
        }
        Ok(())
    };
    let fail = |e: String, trace: &[String]| format!("{e}\n  schedule: {trace:?}");
    for _ in 0..fault_phases {
        let mut what = inject(&mut sim, &mut rng, &mut voters, &mut faults);
        // Disk failures come from their own stream, so the rest of a seed's
        // schedule is the same with or without them.
        if disk_faults && disk_rng.gen_bool(0.1) && faults.failed_disks.is_empty() {
            let v = disk_rng.gen_range(1..=VOTERS);
            voters[&v].fs.inject(Fault {
                path_contains: String::new(),
                kind: FaultKind::SyncError(5),
                times: 1,
            });
            faults.failed_disks.push(v);
            what.push_str(&format!(", disk of n{v} fails (EIO on fsync)"));
        }
        trace.push(format!("{:?} {what}", sim.elapsed()));
        let phase = rng.gen_range(100..1500) / TICK.as_millis() as usize;
        step(&mut sim, &mut voters, &mut checker, phase).map_err(|e| fail(e, &trace))?;
    }
    heal(&mut sim, &mut voters, &mut faults);
    trace.push(format!("{:?} heal", sim.elapsed()));
    let before = shared.acked.lock().len();
    step(
        &mut sim,
        &mut voters,
        &mut checker,
        6000 / TICK.as_millis() as usize,
    )
    .map_err(|e| fail(e, &trace))?;
    shared.stop_admin.store(true, Ordering::Relaxed);
    step(
        &mut sim,
        &mut voters,
        &mut checker,
        4000 / TICK.as_millis() as usize,
    )
    .map_err(|e| fail(e, &trace))?;
    let acked = shared.acked.lock().clone();
    if acked.len() == before {
        return Err(fail(
            "no operation was acknowledged in the 6 s after healing".into(),
            &trace,
        ));
    }
    let unsearchable = checker.check_acked(&acked).map_err(|e| fail(e, &trace))?;
    final_checks(&checker, &voters).map_err(|e| fail(e, &trace))?;
    let isr_changes = acked
        .iter()
        .filter(|a| matches!(a, Acked::IsrChanged { .. }))
        .count();
    // Committed changes that put brokers in an ELR (odd seeds).
    let elr_changes = checker
        .committed
        .values()
        .filter(|(_, r)| {
            matches!(r, MetadataRecord::PartitionChange(c)
                if c.eligible_leader_replicas.as_ref().is_some_and(|e| !e.is_empty()))
        })
        .count();
    trace.push(format!(
        "acked {} ({unsearchable} unsearchable, {isr_changes} ISR changes, {elr_changes} ELR changes), last offset {}, leaders {:?}",
        acked.len(),
        checker.committed.keys().next_back().copied().unwrap_or(-1),
        checker.leaders
    ));
    trace.extend(acked.iter().map(|a| format!("{a:?}")));
    Ok(trace)
}

/// After healing: every voter's image is the same and at the end of the
/// committed log, and every broker is registered and unfenced.
fn final_checks(checker: &Checker, voters: &BTreeMap<i32, Node>) -> Result<(), String> {
    let last = checker.committed.keys().next_back().copied().unwrap_or(-1);
    let mut first: Option<(i32, Vec<u8>)> = None;
    for (&id, v) in voters {
        let image = v
            .seen
            .lock()
            .image
            .clone()
            .unwrap_or_else(MetadataImage::empty);
        let at = image.provenance().last_offset.0;
        if at != last {
            return Err(format!(
                "n{id}'s image is at offset {at}, the committed log ends at {last}"
            ));
        }
        let bytes = image.canonical_bytes().map_err(|e| e.to_string())?;
        match &first {
            None => first = Some((id, bytes)),
            Some((f, b)) if *b != bytes => {
                return Err(format!("n{id}'s final image differs from n{f}'s"))
            }
            Some(_) => {}
        }
        for &b in &BROKERS {
            match image.broker(BrokerId(b)) {
                Some(r) if !r.fenced => {}
                other => {
                    return Err(format!(
                        "broker {b} not registered and unfenced after healing: {other:?}"
                    ))
                }
            }
        }
    }
    Ok(())
}

/// A seed determines the run: the schedule, the leader of every epoch and
/// every acknowledged operation are the same on replay.
#[test]
fn a_seed_replays_identically() {
    let a = run_seed(3, 4, true).unwrap();
    let b = run_seed(3, 4, true).unwrap();
    assert_eq!(a, b);
}

/// Seeds that failed before a fix. 5042 and 5074 ("broker 11 registered
/// at offset 250 with epoch 249") and 5128 (no progress after healing),
/// with 40 fault phases: a new leader's controller planned operations
/// before applying the previous epoch's tail, which commits with the
/// leader's first entry, so a broker epoch was not its record's offset (or
/// a record no longer replayed and every controller stopped). 109, with 20
/// phases and disk faults ("t4-4 has ISR [11, 12] (leader -1 ...): 11 cannot serve"):
/// brokers fenced in one session check all left an ISR at once, so an ISR
/// kept several fenced members instead of only its last.
#[test]
fn regression_seeds() {
    let seeds = [
        (5042, 40, false),
        (5074, 40, false),
        (5128, 40, false),
        (109, 20, true),
    ];
    for (seed, phases, disk) in seeds {
        if let Err(e) = run_seed(seed, phases, disk) {
            panic!(
                "seed {seed} FAILED: {e}\n  (replay: SLUICE_SIM_SEED={seed} SLUICE_SIM_PHASES={phases} SLUICE_SIM_DISK_FAULTS={})",
                disk as u8
            );
        }
    }
}

#[test]
fn controller_quorum_keeps_its_invariants_under_faults() {
    let mut failed = Vec::new();
    let seeds = common::seeds(4);
    let phases = std::env::var("SLUICE_SIM_PHASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // SLUICE_SIM_DISK_FAULTS=0 leaves them out (seeds found without them).
    let disk_faults = std::env::var("SLUICE_SIM_DISK_FAULTS").map_or(true, |v| v != "0");
    for &seed in &seeds {
        match run_seed(seed, phases, disk_faults) {
            Ok(trace) => eprintln!(
                "seed {seed}: ok, {}",
                trace.iter().find(|l| l.starts_with("acked")).unwrap()
            ),
            Err(e) => {
                eprintln!("seed {seed} FAILED: {e}\n  (replay: SLUICE_SIM_SEED={seed})");
                failed.push(seed);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "failing seeds: {failed:?} of {}",
        seeds.len()
    );
    eprintln!("{} seeds passed", seeds.len());
}
