//! The faults: what each does to the [`Cluster`] and how it is healed.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::proxy::Link;

/// One kind of fault.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9` of a random node; healed by starting it again.
    Kill,
    /// `kill -9` of the leader of a workload partition (by Metadata).
    KillLeader,
    /// `kill -9` of the active controller (by DescribeQuorum).
    KillController,
    /// SIGSTOP of a random node; healed by SIGCONT.
    Pause,
    /// SIGSTOP of a partition leader.
    PauseLeader,
    /// SIGSTOP of the active controller (by DescribeQuorum).
    PauseController,
    /// A clean stop (SIGTERM, waited for); healed by starting it again.
    Restart,
    /// The nodes split into a minority and a majority that cannot reach
    /// each other (both ways).
    PartitionHalves,
    /// A partition leader cut off from every other node (both ways).
    PartitionLeader,
    /// One node receives nothing from the others; they still receive from it.
    PartitionOneWay,
    /// The active controller cut off from every other node (both ways).
    PartitionController,
    /// Nodes drop every packet from the workload's clients.
    IsolateClients,
    /// A node's data disk fills up; healed by freeing it (and starting the
    /// node if it stopped).
    DiskFull,
    /// Every workload partition reassigned (KIP-455) while the workload
    /// runs. With more nodes than replicas, one replica of each moves to a
    /// node that has none (the new one copies the log, then the old one is
    /// deleted); with as many, each partition drops a replica, and healing
    /// adds it back, so it copies the whole log from nothing.
    Reassign,
    /// Traffic between a random node and the others delayed (through the
    /// delay proxy, [`crate::proxy`]): 50-500 ms with up to half as much
    /// jitter, to the node, from it, or both ways.
    Delay,
    /// The same for a partition leader.
    DelayLeader,
    /// Traffic from and to a random node held by the proxy (the node keeps
    /// running), then released all at once when healed.
    Hold,
}

impl FaultKind {
    pub const ALL: [FaultKind; 17] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::KillController,
        FaultKind::Pause,
        FaultKind::PauseLeader,
        FaultKind::Restart,
        FaultKind::PartitionHalves,
        FaultKind::PartitionLeader,
        FaultKind::PartitionOneWay,
        FaultKind::IsolateClients,
        FaultKind::DiskFull,
        FaultKind::Reassign,
        FaultKind::Delay,
        FaultKind::DelayLeader,
        FaultKind::Hold,
        FaultKind::PauseController,
        FaultKind::PartitionController,
    ];

    /// The faults that mean something with `nodes` nodes and `nft` present.
    pub fn applicable(nodes: usize, nft: bool) -> Vec<FaultKind> {
        Self::ALL
            .into_iter()
            .filter(|k| nodes > 1 || !k.needs_peers())
            .filter(|k| nft || !k.needs_nft())
            .collect()
    }

    fn needs_peers(self) -> bool {
        matches!(
            self,
            FaultKind::KillLeader
                | FaultKind::KillController
                | FaultKind::PauseLeader
                | FaultKind::PauseController
                | FaultKind::PartitionController
                | FaultKind::PartitionHalves
                | FaultKind::PartitionLeader
                | FaultKind::PartitionOneWay
                | FaultKind::Reassign
                | FaultKind::Delay
                | FaultKind::DelayLeader
                | FaultKind::Hold
        )
    }

    /// The faults that need the delay proxy between the nodes.
    pub fn needs_proxy(self) -> bool {
        matches!(
            self,
            FaultKind::Delay | FaultKind::DelayLeader | FaultKind::Hold
        )
    }

    fn needs_nft(self) -> bool {
        matches!(
            self,
            FaultKind::PartitionHalves
                | FaultKind::PartitionLeader
                | FaultKind::PartitionOneWay
                | FaultKind::PartitionController
                | FaultKind::IsolateClients
                | FaultKind::Delay
                | FaultKind::DelayLeader
                | FaultKind::Hold
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillController => "kill-controller",
            FaultKind::Pause => "pause",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::Restart => "restart",
            FaultKind::PartitionHalves => "partition-halves",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::PartitionOneWay => "partition-one-way",
            FaultKind::IsolateClients => "isolate-clients",
            FaultKind::DiskFull => "disk-full",
            FaultKind::Reassign => "reassign",
            FaultKind::Delay => "delay",
            FaultKind::DelayLeader => "delay-leader",
            FaultKind::Hold => "hold",
            FaultKind::PauseController => "pause-controller",
            FaultKind::PartitionController => "partition-controller",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a fault left that healing must undo.
#[derive(Debug)]
pub enum Active {
    Killed(usize),
    Paused(usize),
    Stopped(usize),
    /// Nodes with drop rules.
    Rules(Vec<usize>),
    DiskFull(usize),
    /// Partitions shrunk by a reassignment: their replica lists before it,
    /// to reassign back to.
    Shrunk(Vec<(i32, Vec<i32>)>),
    /// Links of the delay proxy with a fault in force.
    Delayed,
    /// Nothing to undo (a reassignment that moved replicas, or failed).
    Nothing,
}

/// A leader of a random workload partition, else a random node.
fn leader_or_random(cluster: &mut Cluster, rng: &mut StdRng) -> (usize, String) {
    let partition = rng.gen_range(0..crate::workload::PARTITIONS);
    match cluster.leader(partition) {
        Some(l) => (
            l,
            format!("leader of {}-{partition}", crate::workload::TOPIC),
        ),
        None => (
            rng.gen_range(1..=cluster.len()),
            "no leader known: a random node".into(),
        ),
    }
}

/// The active controller, else node `random`.
fn controller_or_random(cluster: &mut Cluster, random: usize) -> (usize, String) {
    match cluster.controller() {
        Some(c) => (c, "active controller".to_string()),
        None => (random, "no controller known: a random node".into()),
    }
}

/// Applies a fault of `kind`; returns what to heal and a description.
pub fn apply(kind: FaultKind, cluster: &mut Cluster, rng: &mut StdRng) -> (Active, String) {
    let n = cluster.len();
    let random = rng.gen_range(1..=n);
    match kind {
        FaultKind::Kill => {
            cluster.node(random).kill();
            (Active::Killed(random), format!("kill -9 node {random}"))
        }
        FaultKind::KillLeader => {
            let (id, why) = leader_or_random(cluster, rng);
            cluster.node(id).kill();
            (Active::Killed(id), format!("kill -9 node {id} ({why})"))
        }
        FaultKind::KillController => {
            let (id, why) = controller_or_random(cluster, random);
            cluster.node(id).kill();
            (Active::Killed(id), format!("kill -9 node {id} ({why})"))
        }
        FaultKind::Pause => {
            cluster.node(random).pause();
            (Active::Paused(random), format!("SIGSTOP node {random}"))
        }
        FaultKind::PauseLeader => {
            let (id, why) = leader_or_random(cluster, rng);
            cluster.node(id).pause();
            (Active::Paused(id), format!("SIGSTOP node {id} ({why})"))
        }
        FaultKind::PauseController => {
            let (id, why) = controller_or_random(cluster, random);
            cluster.node(id).pause();
            (Active::Paused(id), format!("SIGSTOP node {id} ({why})"))
        }
        FaultKind::PartitionController => {
            let (id, why) = controller_or_random(cluster, random);
            let others: Vec<usize> = (1..=n).filter(|&j| j != id).collect();
            cut(cluster, &[id], &others);
            (
                Active::Rules((1..=n).collect()),
                format!("partition [{id}] ({why}) | {others:?}"),
            )
        }
        FaultKind::Restart => {
            let clean = cluster.node(random).stop(Duration::from_secs(60));
            let how = if clean {
                "clean stop"
            } else {
                "stop (killed after 60 s)"
            };
            (Active::Stopped(random), format!("{how} of node {random}"))
        }
        FaultKind::PartitionHalves => {
            let mut ids: Vec<usize> = (1..=n).collect();
            ids.shuffle(rng);
            let (minority, majority) = ids.split_at(n / 2);
            cut(cluster, minority, majority);
            (
                Active::Rules((1..=n).collect()),
                format!("partition {minority:?} | {majority:?}"),
            )
        }
        FaultKind::PartitionLeader => {
            let (id, why) = leader_or_random(cluster, rng);
            let others: Vec<usize> = (1..=n).filter(|&j| j != id).collect();
            cut(cluster, &[id], &others);
            (
                Active::Rules((1..=n).collect()),
                format!("partition [{id}] ({why}) | {others:?}"),
            )
        }
        FaultKind::PartitionOneWay => {
            let others: Vec<usize> = (1..=n).filter(|&j| j != random).collect();
            let _ = cluster.net.drop_from(random, &others);
            (
                Active::Rules(vec![random]),
                format!("node {random} receives nothing from {others:?}"),
            )
        }
        FaultKind::IsolateClients => {
            // A broker (with split roles, clients reach only those).
            let brokers = cluster.system.brokers();
            let ids = vec![brokers[(random - 1) % brokers.len()]];
            for &i in &ids {
                let _ = cluster.net.drop_from(i, &[0]);
            }
            (
                Active::Rules(ids.clone()),
                format!("nodes {ids:?} drop the clients' packets"),
            )
        }
        FaultKind::DiskFull => {
            let bytes = cluster.node(random).fill_disk().unwrap_or(0);
            (
                Active::DiskFull(random),
                format!("fill node {random}'s disk ({} MiB)", bytes >> 20),
            )
        }
        FaultKind::Reassign => reassign(cluster, rng),
        FaultKind::Delay => delay(cluster, random, String::new(), rng),
        FaultKind::DelayLeader => {
            let (id, why) = leader_or_random(cluster, rng);
            delay(cluster, id, format!(" ({why})"), rng)
        }
        FaultKind::Hold => {
            let Some(proxy) = cluster.proxy.as_ref() else {
                return (Active::Nothing, "hold: no delay proxy".into());
            };
            let hold = Link {
                hold: true,
                ..Link::default()
            };
            for j in (1..=n).filter(|&j| j != random) {
                proxy.set(random, j, hold);
                proxy.set(j, random, hold);
            }
            (
                Active::Delayed,
                format!("hold the traffic between node {random} and the others"),
            )
        }
    }
}

/// Delays the traffic between node `id` and every other node, one way or
/// both (see [`FaultKind::Delay`]).
fn delay(cluster: &mut Cluster, id: usize, why: String, rng: &mut StdRng) -> (Active, String) {
    let n = cluster.len();
    let Some(proxy) = cluster.proxy.as_ref() else {
        return (Active::Nothing, "delay: no delay proxy".into());
    };
    let ms = rng.gen_range(50..=500u64);
    let link = Link {
        delay: Duration::from_millis(ms),
        jitter: Duration::from_millis(rng.gen_range(0..=ms / 2)),
        hold: false,
    };
    let (to, from) = match rng.gen_range(0..3) {
        0 => (true, false),
        1 => (false, true),
        _ => (true, true),
    };
    for j in (1..=n).filter(|&j| j != id) {
        if to {
            proxy.set(j, id, link);
        }
        if from {
            proxy.set(id, j, link);
        }
    }
    let way = match (to, from) {
        (true, false) => "to",
        (false, true) => "from",
        _ => "to and from",
    };
    (
        Active::Delayed,
        format!(
            "delay the traffic {way} node {id}{why}: {ms} ms + up to {} ms jitter",
            link.jitter.as_millis()
        ),
    )
}

/// The reassignment of every workload partition (see [`FaultKind::Reassign`]).
fn reassign(cluster: &mut Cluster, rng: &mut StdRng) -> (Active, String) {
    let topic = crate::workload::TOPIC;
    let Some(md) = cluster.metadata(Some(&[topic])) else {
        return (
            Active::Nothing,
            "reassign: no node answered Metadata".into(),
        );
    };
    let brokers: Vec<i32> = cluster.system.brokers().iter().map(|&b| b as i32).collect();
    let mut before = Vec::new();
    let mut plan = Vec::new();
    for p in 0..crate::workload::PARTITIONS {
        let Some(pm) = md.partition(topic, p) else {
            continue;
        };
        let mut replicas = pm.replicas.clone();
        if replicas.len() < 2 {
            continue;
        }
        before.push((p, replicas.clone()));
        let i = rng.gen_range(0..replicas.len());
        let free: Vec<i32> = brokers
            .iter()
            .copied()
            .filter(|b| !replicas.contains(b))
            .collect();
        match free.choose(rng) {
            Some(&to) => replicas[i] = to,
            None => {
                replicas.remove(i);
            }
        }
        plan.push((p, replicas));
    }
    let shown: Vec<String> = plan
        .iter()
        .zip(&before)
        .map(|((p, new), (_, old))| format!("{topic}-{p} {old:?} -> {new:?}"))
        .collect();
    let shrinking = plan.iter().zip(&before).any(|(a, b)| a.1.len() < b.1.len());
    let via = cluster.addr(brokers[rng.gen_range(0..brokers.len())] as usize);
    // Refused as a whole or in part, what was refused stays as it was; a
    // shrink that did happen still needs its replica back.
    let refused = match crate::admin::reassign(via, topic, &plan) {
        Ok(()) => String::new(),
        Err(e) => format!(" (refused: {e})"),
    };
    let active = if shrinking {
        Active::Shrunk(before)
    } else {
        Active::Nothing
    };
    (active, format!("reassign {}{refused}", shown.join(", ")))
}

/// Both ways: nodes in `a` drop packets from `b` and vice versa.
fn cut(cluster: &mut Cluster, a: &[usize], b: &[usize]) {
    for &i in a {
        let _ = cluster.net.drop_from(i, b);
    }
    for &i in b {
        let _ = cluster.net.drop_from(i, a);
    }
}

/// Undoes `active`; returns a description.
pub fn heal(active: Active, cluster: &mut Cluster) -> String {
    match active {
        Active::Killed(i) | Active::Stopped(i) => match cluster.node(i).start() {
            Ok(()) => format!("start node {i}"),
            Err(e) => format!("start node {i} failed: {e}"),
        },
        Active::Paused(i) => {
            cluster.node(i).resume();
            format!("SIGCONT node {i}")
        }
        Active::Rules(ids) => {
            for &i in &ids {
                let _ = cluster.net.drop_from(i, &[]);
            }
            format!("remove the rules of nodes {ids:?}")
        }
        Active::Nothing => "nothing to undo".into(),
        Active::Delayed => {
            if let Some(p) = cluster.proxy.as_ref() {
                p.clear();
            }
            "release the delayed and held traffic".into()
        }
        Active::Shrunk(before) => {
            // The controller may be elsewhere or just elected: try each node.
            let mut last = String::new();
            for i in cluster.system.brokers() {
                match crate::admin::reassign(cluster.addr(i), crate::workload::TOPIC, &before) {
                    Ok(()) => return format!("reassign back to {before:?}"),
                    Err(e) => last = e,
                }
            }
            format!("reassign back to {before:?} failed: {last}")
        }
        Active::DiskFull(i) => {
            let node = cluster.node(i);
            node.free_disk();
            if node.is_running() {
                format!("free node {i}'s disk")
            } else {
                let _ = node.start();
                format!("free node {i}'s disk; it had stopped: start it")
            }
        }
    }
}
