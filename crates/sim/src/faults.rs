//! The fault streams of one seed's run: what each draws and applies to
//! the simulated cluster (network, crashes and clocks; stalled nodes and
//! full disks; reassignments; failing fsyncs and writes; the fifth
//! stream, slow disks, is `slow_disk.rs`), and how the faults heal.
//! Each stream has its own generator, so adding one kept the schedules
//! the others draw.

use rand::rngs::StdRng;
use rand::Rng;

use crate::node::{host, NodeHandles};
use crate::slow_disk::{self, SlowDisks};
use crate::workload::{self, Workload};
use sluice_storage::{Fault, FaultKind};

/// The client's host name.
pub(crate) const CLIENT: &str = "client";

#[derive(Default)]
pub(crate) struct Faults {
    pub crashed: Vec<i32>,
    /// Whether this run's one power cut has happened.
    pub power_cut: bool,
    /// Nodes whose traffic is held (a stalled process, as under SIGSTOP):
    /// what they send and what is sent to them arrives only on release.
    pub stalled: Vec<i32>,
    /// Nodes whose disk is full.
    pub full_disks: Vec<i32>,
    /// Nodes whose disk is slow or stalled, and for how many more phases.
    pub slow_disks: SlowDisks,
}

pub(crate) fn all_hosts(nodes: i32) -> Vec<String> {
    (1..=nodes).map(host).chain([CLIENT.to_string()]).collect()
}

/// The node that leads the most partitions, as the nodes themselves say.
pub(crate) fn busiest_leader(nodes: &[NodeHandles]) -> Option<i32> {
    nodes
        .iter()
        .filter_map(|n| {
            let r = n.running.lock();
            let led = r
                .as_ref()?
                .broker
                .as_ref()?
                .replicas
                .partitions()
                .iter()
                .filter(|p| p.is_leader())
                .count();
            Some((led, n.id))
        })
        .max()
        .map(|(_, id)| id)
}

/// Stops node `n` at once: `kill -9` (its unsynced writes survive in the
/// page cache), or with `power_cut` a power cut (they are lost).
pub(crate) fn crash(
    sim: &mut turmoil::Sim<'_>,
    n: &NodeHandles,
    power_cut: bool,
    rng: &mut StdRng,
    f: &mut Faults,
) {
    sim.crash(host(n.id));
    *n.running.lock() = None;
    if power_cut {
        n.fs.crash(rng.gen());
    } else {
        n.fs.kill();
    }
    f.crashed.push(n.id);
}

pub(crate) fn restart(sim: &mut turmoil::Sim<'_>, f: &mut Faults) {
    for id in f.crashed.drain(..) {
        sim.bounce(host(id));
    }
}

/// Stalled nodes resume: what they and the others sent meanwhile is
/// delivered now, late.
pub(crate) fn release_stalls(sim: &mut turmoil::Sim<'_>, nodes: i32, f: &mut Faults) {
    let hosts = all_hosts(nodes);
    for id in f.stalled.drain(..) {
        for o in hosts.iter().filter(|o| **o != host(id)) {
            sim.release(host(id), o.as_str());
        }
    }
}

pub(crate) fn heal(sim: &mut turmoil::Sim<'_>, nodes: &[NodeHandles], f: &mut Faults) {
    sim.set_fail_rate(0.0);
    let hosts = all_hosts(nodes.len() as i32);
    release_stalls(sim, nodes.len() as i32, f);
    for id in f.full_disks.drain(..) {
        nodes[id as usize - 1].fs.set_capacity(None);
    }
    slow_disk::heal(nodes, &mut f.slow_disks);
    for n in nodes {
        n.fs.clear_faults();
    }
    for a in &hosts {
        for b in &hosts {
            if a != b {
                sim.repair(a.as_str(), b.as_str());
            }
        }
    }
    restart(sim, f);
}

/// Draws and applies one fault.
pub(crate) fn inject(
    sim: &mut turmoil::Sim<'_>,
    rng: &mut StdRng,
    nodes: &[NodeHandles],
    f: &mut Faults,
) -> String {
    let n = nodes.len() as i32;
    let hosts = all_hosts(n);
    let a = hosts[rng.gen_range(0..hosts.len())].clone();
    let b = loop {
        let b = &hosts[rng.gen_range(0..hosts.len())];
        if *b != a {
            break b.clone();
        }
    };
    let victim = rng.gen_range(1..=n);
    match rng.gen_range(0..12) {
        0 | 1 => {
            heal(sim, nodes, f);
            "heal".into()
        }
        2 => {
            sim.partition(a.as_str(), b.as_str());
            format!("partition {a} {b}")
        }
        3 => {
            sim.partition_oneway(a.as_str(), b.as_str());
            format!("partition {a} -> {b}")
        }
        4 => {
            let a = host(victim);
            for o in hosts.iter().filter(|o| **o != a) {
                sim.partition(a.as_str(), o.as_str());
            }
            format!("isolate {a}")
        }
        5 => {
            let rate = rng.gen_range(0.0..0.03);
            sim.set_fail_rate(rate);
            format!("message loss {rate:.3}")
        }
        6 | 7 if f.crashed.is_empty() => {
            // One power cut per run at most: Kafka's replication (and so
            // Sluice's) keeps acknowledged records through the loss of any
            // one replica's unsynced bytes, not through such losses on
            // every replica that holds them.
            let power_cut = !f.power_cut && rng.gen_ratio(1, 3);
            f.power_cut |= power_cut;
            crash(sim, &nodes[victim as usize - 1], power_cut, rng, f);
            if power_cut {
                format!("power cut of n{victim}")
            } else {
                format!("kill -9 n{victim}")
            }
        }
        8 if f.crashed.is_empty() => {
            let id = busiest_leader(nodes).unwrap_or(victim);
            crash(sim, &nodes[id as usize - 1], false, rng, f);
            format!("kill -9 n{id} (the busiest leader)")
        }
        9 => {
            let ms = rng.gen_range(-3000..6000);
            nodes[victim as usize - 1].clock.jump(ms);
            format!("clock of n{victim} jumps {ms} ms")
        }
        _ => {
            restart(sim, f);
            "restart".into()
        }
    }
}

/// Draws from the second stream (so adding these kept the first stream's
/// schedules): sometimes a stall of a node or a full disk.
pub(crate) fn inject_slow_node(
    sim: &mut turmoil::Sim<'_>,
    rng: &mut StdRng,
    nodes: &[NodeHandles],
    f: &mut Faults,
) -> Option<String> {
    if !rng.gen_ratio(1, 6) {
        return None;
    }
    let victim = rng.gen_range(1..=nodes.len() as i32);
    if rng.gen_bool(0.5) {
        if f.stalled.contains(&victim) {
            return None;
        }
        let hosts = all_hosts(nodes.len() as i32);
        for o in hosts.iter().filter(|o| **o != host(victim)) {
            sim.hold(host(victim), o.as_str());
        }
        f.stalled.push(victim);
        Some(format!("stall n{victim} (its traffic held for the phase)"))
    } else {
        let fs = &nodes[victim as usize - 1].fs;
        let room = rng.gen_range(0..8 << 10);
        fs.set_capacity(Some(fs.used_bytes() + room));
        if !f.full_disks.contains(&victim) {
            f.full_disks.push(victim);
        }
        Some(format!("disk of n{victim} full ({room} bytes left)"))
    }
}

/// Draws from the fourth stream: sometimes the next fsync (or, less
/// often, the next write) of some files of one node fails with EIO: the
/// workload's partitions, `__consumer_offsets`, the metadata log, or any
/// file of its data directory (checkpoints, producer-state snapshots,
/// indexes). The node takes the directory offline and halts (the metadata
/// log's directory fails), or its metadata log fails fatally; either way it
/// is down until the next restart. Faults that have not fired by healing
/// are withdrawn.
pub(crate) fn inject_io_error(rng: &mut StdRng, nodes: &[NodeHandles]) -> Option<String> {
    if !rng.gen_ratio(1, 6) {
        return None;
    }
    let victim = rng.gen_range(1..=nodes.len() as i32);
    let files = ["sim-", "__consumer_offsets-", "__cluster_metadata-", ""][rng.gen_range(0..4)];
    let sync = rng.gen_ratio(3, 4);
    let kind = if sync {
        FaultKind::SyncError(EIO)
    } else {
        FaultKind::WriteError(EIO)
    };
    nodes[victim as usize - 1]
        .fs
        .inject(Fault::once(format!("/{}/data/{files}", host(victim)), kind));
    Some(format!(
        "the next {} of n{victim}'s {} fails with EIO",
        if sync { "fsync" } else { "write" },
        if files.is_empty() {
            "data directory".to_string()
        } else {
            format!("{files}* files")
        }
    ))
}

/// EIO's number on Linux (the simulated disk only carries the number).
const EIO: i32 = 5;

/// Draws from the third stream: sometimes a reassignment of one workload
/// partition, planned from the current registration (the active
/// controller's image, else any running node's): with fewer than 3
/// replicas a node is added back; with more brokers than replicas one
/// replica moves to a broker that has none; otherwise one is dropped (3
/// nodes: RF 3 to 2, still at `min.insync.replicas`), or with two
/// brokers the two swap places (the preferred leader moves).
pub(crate) fn plan_reassignment(
    rng: &mut StdRng,
    nodes: &[NodeHandles],
    w: &Workload,
) -> Option<String> {
    if !rng.gen_ratio(1, 5) {
        return None;
    }
    reassign(rng, nodes, w)
}

/// Asks for a reassignment of one workload partition, drawn from `rng` and
/// planned from the current registration (see [`plan_reassignment`]).
pub(crate) fn reassign(rng: &mut StdRng, nodes: &[NodeHandles], w: &Workload) -> Option<String> {
    let p = rng.gen_range(0..w.partitions);
    // Drawn before looking at the nodes, so the stream's draws do not
    // depend on what the nodes hold.
    let (which, to) = (rng.gen::<u64>(), rng.gen::<u64>());
    let registration = nodes
        .iter()
        .filter_map(|n| {
            let r = n.running.lock();
            let c = r.as_ref()?.controller.as_ref()?;
            let image = c.image();
            let reg = image.topic(workload::TOPIC)?.partition(p)?.clone();
            Some((!c.is_active(), reg))
        })
        .min_by_key(|(inactive, _)| *inactive)?
        .1;
    let mut replicas: Vec<i32> = registration.replicas.iter().map(|b| b.0).collect();
    let before = replicas.clone();
    let free: Vec<i32> = nodes[0]
        .layout
        .brokers()
        .into_iter()
        .filter(|b| !replicas.contains(b))
        .collect();
    let pick = |draw: u64, len: usize| (draw % len as u64) as usize;
    if replicas.len() < 3 && !free.is_empty() {
        replicas.push(free[pick(to, free.len())]);
    } else if !free.is_empty() {
        let i = pick(which, replicas.len());
        replicas[i] = free[pick(to, free.len())];
    } else if replicas.len() > 2 {
        replicas.remove(pick(which, replicas.len()));
    } else if replicas.len() == 2 {
        // Two brokers (split roles): the preferred leader moves.
        replicas.reverse();
    } else {
        return None;
    }
    w.request_reassignment(p, replicas.clone());
    Some(format!(
        "reassign {}-{p} from {before:?} to {replicas:?}",
        workload::TOPIC
    ))
}
