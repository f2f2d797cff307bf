//! The cluster under test: [`System`] (a 3-node Apache Kafka or Sluice) on
//! the nodes of a [`TestNet`], its leaders and controller, and its health.
//!
//! Everything here that opens a socket (metadata, DescribeQuorum) must run
//! on a thread that entered the client namespace ([`TestNet::enter_client`]):
//! the test network is not reachable from the host's namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};

use crate::netns::TestNet;
use crate::node::{Launch, Node};
use crate::proxy::DelayProxy;
use crate::NemesisError;

/// The client port every node listens on (each node has its own address).
pub const PORT: u16 = 9092;
/// The KRaft controller port.
pub const CONTROLLER_PORT: u16 = 9093;
/// Nodes of a Sluice cluster: three combined (`broker,controller`) nodes,
/// formatted with `sluice storage format`, one metadata quorum (issue 16).
/// `--nodes 1` still runs the single-node Sluice (no `process.roles`).
pub const SLUICE_NODES: usize = 3;

/// Every partition's replication factor (both systems): all nodes of a
/// 3-node cluster, three of five.
pub const REPLICATION_FACTOR: usize = 3;

/// The replication factor on `nodes` nodes.
pub fn replication_factor(nodes: usize) -> usize {
    nodes.min(REPLICATION_FACTOR)
}

/// What runs on the nodes.
#[derive(Clone, Debug)]
pub enum System {
    /// The pinned Apache Kafka (jars in `lib`), KRaft, combined roles.
    Kafka { lib: PathBuf, nodes: usize },
    /// The `sluice` binary on `nodes` nodes. With `controllers` 0 every
    /// node is combined (`broker,controller`; one node runs without
    /// `process.roles`); else nodes `1..=controllers` are controller-only
    /// (the quorum's voters) and the rest broker-only (its observers).
    Sluice {
        binary: PathBuf,
        nodes: usize,
        controllers: usize,
    },
}

impl System {
    /// Every node, brokers and controllers.
    pub fn nodes(&self) -> usize {
        match self {
            System::Kafka { nodes, .. } | System::Sluice { nodes, .. } => *nodes,
        }
    }

    /// How many nodes are controller-only (0: every node is combined).
    pub fn controller_only(&self) -> usize {
        match self {
            System::Kafka { .. } => 0,
            System::Sluice { controllers, .. } => *controllers,
        }
    }

    /// The nodes with the broker role (the clients' bootstrap list).
    pub fn brokers(&self) -> Vec<usize> {
        (self.controller_only() + 1..=self.nodes()).collect()
    }

    /// The voters of the metadata quorum.
    pub fn voters(&self) -> Vec<usize> {
        match self.controller_only() {
            0 => (1..=self.nodes()).collect(),
            c => (1..=c).collect(),
        }
    }

    pub fn is_broker(&self, id: usize) -> bool {
        id > self.controller_only()
    }

    /// True when `p` has all its [`replication_factor`] replicas and all
    /// of them are in its ISR (both systems replicate partition data).
    pub fn full_isr(&self, p: &sluice_testkit::metadata::PartitionMetadata) -> bool {
        let rf = replication_factor(self.brokers().len());
        p.isr.len() == rf && p.replicas.len() == rf
    }

    pub fn name(&self) -> String {
        match self {
            System::Kafka { nodes, .. } => format!("Apache Kafka 4.1.2, {nodes} nodes"),
            System::Sluice {
                nodes, controllers, ..
            } if *controllers > 0 => {
                format!(
                    "Sluice, {controllers} controllers + {} brokers",
                    nodes - controllers
                )
            }
            System::Sluice { nodes, .. } => {
                format!("Sluice, {nodes} node{}", if *nodes == 1 { "" } else { "s" })
            }
        }
    }
}

/// Settings the unsafe (checker-must-fail) runs change.
#[derive(Clone, Copy, Debug, Default)]
pub struct Safety {
    /// Kafka: `unclean.leader.election.enable=true`, `min.insync.replicas=1`.
    pub unsafe_broker: bool,
}

fn voters(net: &TestNet, ids: &[usize]) -> String {
    ids.iter()
        .map(|&i| format!("{i}@{}:{CONTROLLER_PORT}", net.node_addr(i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Node `i`'s Kafka `server.properties`.
pub fn kafka_properties(net: &TestNet, i: usize, data: &Path, safety: Safety) -> String {
    let n = replication_factor(net.nodes());
    let addr = net.node_addr(i);
    let min_isr = if safety.unsafe_broker { 1 } else { 2.min(n) };
    let mut p = format!(
        "process.roles=broker,controller\n\
         node.id={i}\n\
         controller.quorum.voters={}\n\
         listeners=PLAINTEXT://{addr}:{PORT},CONTROLLER://{addr}:{CONTROLLER_PORT}\n\
         advertised.listeners=PLAINTEXT://{addr}:{PORT}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         num.partitions={}\n\
         default.replication.factor={n}\n\
         min.insync.replicas={min_isr}\n\
         offsets.topic.replication.factor={n}\n\
         offsets.topic.num.partitions=3\n\
         transaction.state.log.replication.factor={n}\n\
         transaction.state.log.min.isr={}\n\
         share.coordinator.state.topic.replication.factor={n}\n\
         share.coordinator.state.topic.min.isr={}\n\
         group.initial.rebalance.delay.ms=0\n\
         broker.session.timeout.ms=6000\n\
         broker.heartbeat.interval.ms=1000\n\
         replica.lag.time.max.ms=10000\n\
         log.segment.bytes=16777216\n",
        voters(net, &(1..=net.nodes()).collect::<Vec<_>>()),
        data.display(),
        crate::workload::PARTITIONS,
        2.min(n),
        2.min(n),
    );
    if safety.unsafe_broker {
        p.push_str("unclean.leader.election.enable=true\n");
    }
    p
}

/// Node `i`'s `sluice serve` arguments (Kafka config keys as overrides).
pub fn sluice_args(system: &System, net: &TestNet, i: usize, data: &Path) -> Vec<String> {
    let addr = net.node_addr(i);
    let mut o = vec![
        format!("log.dirs={}", data.display()),
        "sluice.metrics.listener=127.0.0.1:0".into(),
        format!("num.partitions={}", crate::workload::PARTITIONS),
        "group.initial.rebalance.delay.ms=0".into(),
    ];
    if net.nodes() == 1 {
        o.push(format!("listeners=PLAINTEXT://{addr}:{PORT}"));
    } else {
        // The Kafka keys the Sluice cluster (issues 16/17) reads; the
        // config validator (broker config/roles.rs) checks them as Kafka does.
        let voter_ids = system.voters();
        let (broker, controller) = (system.is_broker(i), voter_ids.contains(&i));
        let mut listeners = Vec::new();
        if broker {
            listeners.push(format!("PLAINTEXT://{addr}:{PORT}"));
        }
        if controller {
            listeners.push(format!("CONTROLLER://{addr}:{CONTROLLER_PORT}"));
        }
        o.push(format!("listeners={}", listeners.join(",")));
        o.push("controller.listener.names=CONTROLLER".into());
        o.push(format!("node.id={i}"));
        if broker {
            o.push("inter.broker.listener.name=PLAINTEXT".into());
        }
        let roles = match (broker, controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            _ => "controller",
        };
        o.push(format!("process.roles={roles}"));
        o.push(format!(
            "controller.quorum.voters={}",
            voters(net, &voter_ids)
        ));
        let rf = replication_factor(system.brokers().len());
        o.push(format!("default.replication.factor={rf}"));
        o.push(format!("offsets.topic.replication.factor={rf}"));
        o.push("offsets.topic.num.partitions=3".into());
        o.push("min.insync.replicas=2".into());
        // Sluice's own broker.session.timeout.ms (1200) and heartbeat
        // (200): the faults run against what an operator gets.
    }
    // openraft's INFO lines (every vote and heartbeat error) would bury the
    // broker's own in the node logs.
    let mut args = vec![
        "serve".to_string(),
        "--log-level".into(),
        "info,openraft=warn".into(),
    ];
    for kv in o {
        args.push("--override".into());
        args.push(kv);
    }
    args
}

/// The nodes, their network and what runs on them. Dropping it kills every
/// process, unmounts the disks and deletes the namespaces.
pub struct Cluster {
    pub system: System,
    // Field order: nodes (processes, mounts) and the proxy go before the
    // network.
    pub nodes: Vec<Node>,
    /// The delay proxy between the nodes, when the run has delay faults.
    pub proxy: Option<DelayProxy>,
    pub net: TestNet,
    pub dir: tempfile::TempDir,
    /// Why the last [`Cluster::await_healthy`] was not healthy yet.
    pub last_unhealthy: String,
}

impl Cluster {
    /// Creates the network and the nodes' disks, writes their configuration
    /// (formatting Kafka's storage) and starts every node without waiting.
    pub fn create(system: System, safety: Safety, disk_size: &str) -> Result<Self, NemesisError> {
        Self::create_with(system, safety, disk_size, false)
    }

    /// [`Cluster::create`], with every node-to-node connection through the
    /// delay proxy ([`crate::proxy`]) when `proxied` (and more than one node).
    pub fn create_with(
        system: System,
        safety: Safety,
        disk_size: &str,
        proxied: bool,
    ) -> Result<Self, NemesisError> {
        let net = TestNet::create(system.nodes())?;
        let proxy = if proxied && system.nodes() > 1 {
            Some(DelayProxy::start(&net, &[PORT, CONTROLLER_PORT])?)
        } else {
            None
        };
        // SLUICE_NEMESIS_KEEP=1 keeps the run dir (node configs and output
        // logs) for a post-mortem.
        let keep = std::env::var("SLUICE_NEMESIS_KEEP").is_ok_and(|v| v == "1");
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", net.stem()))
            .disable_cleanup(keep)
            .tempdir()
            .map_err(|source| NemesisError::Io {
                what: "creating the run dir".into(),
                source,
            })?;
        let mut nodes = Vec::new();
        for i in 1..=system.nodes() {
            let node_dir = dir.path().join(format!("node-{i}"));
            nodes.push(Node::new(
                i,
                net.node_ns(i),
                net.node_addr(i),
                node_dir,
                net.stem(),
                disk_size,
            )?);
        }
        let mut cluster = Cluster {
            system,
            nodes,
            proxy,
            net,
            dir,
            last_unhealthy: String::new(),
        };
        cluster.configure(safety)?;
        for node in &mut cluster.nodes {
            node.start()?;
        }
        Ok(cluster)
    }

    fn configure(&mut self, safety: Safety) -> Result<(), NemesisError> {
        match self.system.clone() {
            System::Sluice { binary, .. } => {
                let cluster_id = kafka_cluster_id();
                for node in &mut self.nodes {
                    let args = sluice_args(&self.system, &self.net, node.id, &node.data_dir());
                    if self.net.nodes() > 1 {
                        // A node with process.roles starts only on storage
                        // formatted for its cluster (`sluice storage format`).
                        let mut format = vec!["storage", "format", "-t", &cluster_id];
                        format.extend(
                            args.iter()
                                .skip_while(|a| *a != "--override")
                                .map(String::as_str),
                        );
                        crate::netns::run(&binary.to_string_lossy(), &format)?;
                    }
                    node.set_launch(Launch {
                        program: binary.clone(),
                        args,
                    });
                }
            }
            System::Kafka { lib, .. } => {
                let cluster_id = kafka_cluster_id();
                let classpath = format!("{}/*", lib.display());
                let mut formats = Vec::new();
                for node in &mut self.nodes {
                    let config = node.dir.join("server.properties");
                    let props = kafka_properties(&self.net, node.id, &node.data_dir(), safety);
                    std::fs::write(&config, props).map_err(|source| NemesisError::Io {
                        what: "writing server.properties".into(),
                        source,
                    })?;
                    node.set_launch(Launch {
                        program: "java".into(),
                        args: vec![
                            "-Xmx512m".into(),
                            "-Xms512m".into(),
                            "-cp".into(),
                            classpath.clone(),
                            "kafka.Kafka".into(),
                            config.to_string_lossy().into_owned(),
                        ],
                    });
                    let (cp, id) = (classpath.clone(), cluster_id.clone());
                    formats.push(thread::spawn(move || {
                        crate::netns::run(
                            "java",
                            &[
                                "-cp",
                                &cp,
                                "kafka.tools.StorageTool",
                                "format",
                                "-t",
                                &id,
                                "-c",
                                &config.to_string_lossy(),
                            ],
                        )
                    }));
                }
                for f in formats {
                    f.join().expect("format thread")?;
                }
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&mut self, id: usize) -> &mut Node {
        &mut self.nodes[id - 1]
    }

    /// Broker `id`'s client listener.
    pub fn addr(&self, id: usize) -> SocketAddr {
        format!("{}:{PORT}", self.net.node_addr(id))
            .parse()
            .expect("an address")
    }

    /// Node `id`'s controller listener.
    pub fn controller_addr(&self, id: usize) -> SocketAddr {
        format!("{}:{CONTROLLER_PORT}", self.net.node_addr(id))
            .parse()
            .expect("an address")
    }

    /// Every broker's client listener (a bootstrap list).
    pub fn bootstrap(&self) -> String {
        self.system
            .brokers()
            .into_iter()
            .map(|i| format!("{}:{PORT}", self.net.node_addr(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Metadata for `topics` from the first broker that answers.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Option<ClusterMetadata> {
        self.system.brokers().into_iter().find_map(|i| {
            let node = &mut self.nodes[i - 1];
            if !node.is_running() || node.is_paused() {
                return None;
            }
            fetch_metadata(self.addr(i), topics).ok()
        })
    }

    /// The leader of `partition` of the workload topic, by Metadata.
    pub fn leader(&mut self, partition: i32) -> Option<usize> {
        let md = self.metadata(Some(&[crate::workload::TOPIC]))?;
        let leader = md.partition(crate::workload::TOPIC, partition)?.leader;
        (leader >= 1 && leader as usize <= self.len()).then_some(leader as usize)
    }

    /// The active controller (the metadata quorum's leader), by
    /// DescribeQuorum to a broker (which forwards it to the controller).
    pub fn controller(&mut self) -> Option<usize> {
        self.system.brokers().into_iter().find_map(|i| {
            let node = &mut self.nodes[i - 1];
            if !node.is_running() || node.is_paused() {
                return None;
            }
            describe_quorum_leader(self.addr(i))
                .filter(|&l| l >= 1 && l as usize <= self.len())
                .map(|l| l as usize)
        })
    }

    /// True when every node runs, unpaused, every one lists all brokers
    /// (registered and unfenced), every workload partition has a leader and
    /// a full ISR ([`System::full_isr`]), and (more than one node) every
    /// node names the same active controller.
    pub fn healthy(&mut self) -> bool {
        self.health().is_ok()
    }

    /// [`Cluster::healthy`], with what is not healthy yet.
    pub fn health(&mut self) -> Result<(), String> {
        let n = self.len();
        let brokers = self.system.brokers().len();
        let mut controller = None;
        for i in 1..=n {
            let node = &mut self.nodes[i - 1];
            if !node.is_running() {
                return Err(format!("node {i} is not running"));
            }
            if node.is_paused() {
                return Err(format!("node {i} is paused"));
            }
            if !self.system.is_broker(i) {
                // A controller-only node: its controller listener answers.
                TcpStream::connect_timeout(&self.controller_addr(i), Duration::from_secs(2))
                    .map_err(|e| format!("controller {i} does not answer: {e}"))?;
                continue;
            }
            let md = fetch_metadata(self.addr(i), Some(&[crate::workload::TOPIC]))
                .map_err(|e| format!("node {i} does not answer Metadata: {e}"))?;
            if md.brokers.len() != brokers {
                let ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id).collect();
                return Err(format!("node {i} lists brokers {ids:?}"));
            }
            let topic = md
                .topics
                .iter()
                .find(|t| t.name == crate::workload::TOPIC)
                .ok_or_else(|| format!("node {i} has no topic {}", crate::workload::TOPIC))?;
            if topic.partitions.len() != crate::workload::PARTITIONS as usize {
                return Err(format!(
                    "node {i} shows {} partitions",
                    topic.partitions.len()
                ));
            }
            if let Some(p) = topic
                .partitions
                .iter()
                .find(|p| p.leader < 0 || !self.system.full_isr(p))
            {
                return Err(format!(
                    "node {i}: partition {} has leader {}, replicas {:?}, ISR {:?}",
                    p.partition, p.leader, p.replicas, p.isr
                ));
            }
            if n > 1 {
                match describe_quorum_leader(self.addr(i)) {
                    Some(l) if l >= 1 && controller.is_none_or(|c| c == l) => controller = Some(l),
                    other => {
                        return Err(format!(
                            "node {i} names controller {other:?} (others: {controller:?})"
                        ))
                    }
                }
            }
        }
        if let Some(c) = controller.filter(|_| self.system.controller_only() > 0) {
            // Split roles: the brokers' controller is a voter that knows it
            // leads (asked on its own controller listener).
            let c = c as usize;
            if !self.system.voters().contains(&c)
                || describe_quorum_leader(self.controller_addr(c)) != Some(c as i32)
            {
                return Err(format!(
                    "the brokers name controller {c}, which does not answer as the leader"
                ));
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for [`Cluster::healthy`]; restarts nodes whose
    /// process died meanwhile (a full disk, a crash: each such exit is kept
    /// in [`Node::exits`] for the report). Returns whether it got healthy
    /// and how long it took; [`Cluster::last_unhealthy`] says why not.
    pub fn await_healthy(&mut self, timeout: Duration) -> (bool, Duration) {
        let start = Instant::now();
        loop {
            for node in &mut self.nodes {
                if !node.is_running() {
                    let _ = node.start();
                }
            }
            match self.health() {
                Ok(()) => {
                    self.last_unhealthy.clear();
                    return (true, start.elapsed());
                }
                Err(why) => self.last_unhealthy = why,
            }
            if start.elapsed() > timeout {
                return (false, start.elapsed());
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Heals every fault: no rules, every node resumed, disks freed, dead
    /// nodes started.
    pub fn heal_all(&mut self) {
        if let Some(p) = &self.proxy {
            p.clear();
        }
        for i in 1..=self.len() {
            let _ = self.net.drop_from(i, &[]);
            let node = &mut self.nodes[i - 1];
            node.resume();
            node.free_disk();
            if !node.is_running() {
                let _ = node.start();
            }
        }
    }
}

/// A random KRaft cluster id: 16 random bytes in URL-safe base64 without padding.
fn kafka_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    loop {
        let bytes: [u8; 16] = rand::random();
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut s = String::new();
        for b in bytes {
            bits = (bits << 8) | b as u32;
            nbits += 8;
            while nbits >= 6 {
                nbits -= 6;
                s.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
            }
        }
        s.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
        if !s.starts_with('-') {
            return s;
        }
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn read_i32(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let v = i32::from_be_bytes(buf.get(*pos..*pos + 4)?.try_into().ok()?);
    *pos += 4;
    Some(v)
}

fn read_i16(buf: &[u8], pos: &mut usize) -> Option<i16> {
    let v = i16::from_be_bytes(buf.get(*pos..*pos + 2)?.try_into().ok()?);
    *pos += 2;
    Some(v)
}

/// DescribeQuorum v0 for `__cluster_metadata-0`: the quorum leader's id.
pub fn describe_quorum_leader(addr: SocketAddr) -> Option<i32> {
    const TOPIC: &[u8] = b"__cluster_metadata";
    let client = b"sluice-nemesis";
    let mut body = Vec::new();
    body.extend_from_slice(&55i16.to_be_bytes()); // DescribeQuorum
    body.extend_from_slice(&0i16.to_be_bytes()); // v0 (flexible)
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    body.push(0); // header tagged fields
    body.push(2); // one topic
    body.push(TOPIC.len() as u8 + 1);
    body.extend_from_slice(TOPIC);
    body.push(2); // one partition
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&[0, 0, 0]); // partition, topic, body tagged fields
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);

    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&frame).ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = i32::from_be_bytes(len);
    if !(0..1 << 20).contains(&len) {
        return None;
    }
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).ok()?;
    let mut pos = 0;
    if read_i32(&buf, &mut pos)? != 7 {
        return None;
    }
    let _tags = read_varint(&buf, &mut pos)?;
    if read_i16(&buf, &mut pos)? != 0 {
        return None;
    }
    if read_varint(&buf, &mut pos)? != 2 {
        return None;
    }
    let name_len = read_varint(&buf, &mut pos)?.checked_sub(1)? as usize;
    pos += name_len;
    if read_varint(&buf, &mut pos)? != 2 {
        return None;
    }
    let _partition = read_i32(&buf, &mut pos)?;
    if read_i16(&buf, &mut pos)? != 0 {
        return None;
    }
    read_i32(&buf, &mut pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        for _ in 0..100 {
            let id = kafka_cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
}
