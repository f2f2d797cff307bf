//! [`ReferenceKafkaCluster`]: three pinned Apache Kafka nodes (KRaft,
//! combined broker+controller roles, static quorum) on free loopback ports,
//! for comparing cluster behaviour (leader failover, ISR shrink/expand) with
//! Sluice's. `scripts/kafka-cluster` starts the same cluster by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::kafka::{
    answers_api_versions, capture_output, format_storage, java_available, log_config_flag,
    lost_a_port_race, random_cluster_id, START_ATTEMPTS,
};
use crate::metadata::{fetch_metadata, ClusterMetadata};
use crate::{io, ReferenceKafka, TestkitError};

const START_TIMEOUT: Duration = Duration::from_secs(240);
/// The JVM heap of each node: three fit on a small shared machine.
const HEAP: [&str; 2] = ["-Xmx512m", "-Xms512m"];

struct Node {
    id: i32,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
    output: Arc<Mutex<String>>,
}

/// Three running Kafka nodes, ids 1..=3. Every node is killed on drop.
pub struct ReferenceKafkaCluster {
    lib: PathBuf,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl ReferenceKafkaCluster {
    /// The node ids.
    pub const NODE_IDS: [i32; 3] = [1, 2, 3];

    /// Formats and starts three nodes and waits until every one lists all
    /// three brokers in Metadata. `Ok(None)` = skipped (no jars or no `java`).
    pub fn start() -> Result<Option<Self>, TestkitError> {
        Self::start_with(&[])
    }

    /// Like [`ReferenceKafkaCluster::start`] with extra `server.properties`
    /// entries for every node (e.g. `broker.session.timeout.ms`); `{id}` in
    /// a value becomes the node's id (e.g. `broker.rack=rack-{id}`).
    pub fn start_with(extra: &[(&str, &str)]) -> Result<Option<Self>, TestkitError> {
        let Some(lib) = ReferenceKafka::lib_dir() else {
            eprintln!("reference Kafka cluster skipped: no jars in .cache/kafka/lib");
            return Ok(None);
        };
        if !java_available() {
            eprintln!("reference Kafka cluster skipped: no `java` on PATH");
            return Ok(None);
        }
        let mut attempt = 1;
        loop {
            match Self::start_once(&lib, extra) {
                Err(TestkitError::Exited { output, .. })
                    if attempt < START_ATTEMPTS && lost_a_port_race(&output) =>
                {
                    eprintln!("reference Kafka cluster: a chosen port was taken; starting again");
                    attempt += 1;
                }
                r => return r.map(Some),
            }
        }
    }

    fn start_once(lib: &Path, extra: &[(&str, &str)]) -> Result<Self, TestkitError> {
        let lib = lib.to_path_buf();
        let dir = tempfile::Builder::new()
            .prefix("reference-kafka-cluster-")
            .tempdir()
            .map_err(io("creating the Kafka cluster dir"))?;
        let mut ports = Vec::new();
        // Hold every listener until all are chosen, so no two collide.
        let mut held = Vec::new();
        for _ in 0..6 {
            let l =
                std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
            ports.push(l.local_addr().map_err(io("finding a free port"))?.port());
            held.push(l);
        }
        drop(held);
        let (client, controller) = ports.split_at(3);
        let voters = Self::NODE_IDS
            .iter()
            .zip(controller)
            .map(|(id, p)| format!("{id}@127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let cluster_id = random_cluster_id();
        let mut nodes = Vec::new();
        for (i, &id) in Self::NODE_IDS.iter().enumerate() {
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).map_err(io("creating a node dir"))?;
            let config = node_dir.join("server.properties");
            let props = node_properties(id, client[i], controller[i], &voters, &node_dir, extra);
            std::fs::write(&config, props).map_err(io("writing server.properties"))?;
            nodes.push(Node {
                id,
                port: client[i],
                config,
                child: None,
                output: Arc::default(),
            });
        }
        // Format the three nodes concurrently: each is a JVM start.
        let formats: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (lib, config, id) = (lib.clone(), n.config.clone(), cluster_id.clone());
                thread::spawn(move || format_storage(&lib, &config, &id, &[]))
            })
            .collect();
        for f in formats {
            f.join().expect("format thread")?;
        }
        let mut cluster = ReferenceKafkaCluster { lib, dir, nodes };
        // Every node first: a KRaft broker opens its client listener only
        // once the controller quorum has formed.
        for id in Self::NODE_IDS {
            cluster.spawn(id)?;
        }
        cluster.wait_until_all_listed(START_TIMEOUT)?;
        Ok(cluster)
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn spawn(&mut self, id: i32) -> Result<(), TestkitError> {
        let classpath = format!("{}/*", self.lib.display());
        let log_config = log_config_flag(self.dir.path())?;
        let node = self.node_mut(id);
        let mut child = Command::new("java")
            .args(HEAP)
            .arg(&log_config)
            .args(["-cp", &classpath, "kafka.Kafka"])
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting Kafka node {id}")))?;
        node.output = capture_output(&mut child);
        node.child = Some(child);
        Ok(())
    }

    /// The three client listeners, comma-separated (a bootstrap list).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s client listener.
    pub fn addr(&self, id: i32) -> SocketAddr {
        ([127, 0, 0, 1], self.node(id).port).into()
    }

    /// The cluster's working directory (a `node-N/` per node).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What node `id`'s JVM printed since it last started.
    pub fn output(&self, id: i32) -> String {
        self.node(id).output.lock().unwrap().clone()
    }

    /// True while node `id`'s process runs.
    pub fn is_running(&mut self, id: i32) -> bool {
        let node = self.node_mut(id);
        match node.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The ids of the nodes whose processes run.
    pub fn running(&mut self) -> Vec<i32> {
        Self::NODE_IDS
            .into_iter()
            .filter(|&id| self.is_running(id))
            .collect()
    }

    /// Node `id`'s process id while it runs (for RSS and CPU figures).
    pub fn pid(&mut self, id: i32) -> Option<u32> {
        if !self.is_running(id) {
            return None;
        }
        self.node(id).child.as_ref().map(|c| c.id())
    }

    /// `kill -9` node `id` and reap it.
    pub fn kill(&mut self, id: i32) -> Result<(), TestkitError> {
        let node = self.node_mut(id);
        let mut child = node
            .child
            .take()
            .ok_or(TestkitError::NotRunning("Kafka node"))?;
        child
            .kill()
            .map_err(io(format!("killing Kafka node {id}")))?;
        child
            .wait()
            .map_err(io(format!("reaping Kafka node {id}")))?;
        Ok(())
    }

    /// Starts node `id` again on its data and waits until every running node
    /// lists all three brokers.
    pub fn restart(&mut self, id: i32) -> Result<(), TestkitError> {
        if self.is_running(id) {
            return Err(TestkitError::Exited {
                what: "Kafka node restart",
                status: "still running".into(),
                output: String::new(),
            });
        }
        self.spawn(id)?;
        self.wait_until_all_listed(START_TIMEOUT)
    }

    /// Metadata for `topics` (all when `None`) from the first running node
    /// that answers.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<ClusterMetadata, TestkitError> {
        let mut last = TestkitError::NotRunning("any Kafka node");
        for id in self.running() {
            match fetch_metadata(self.addr(id), topics) {
                Ok(md) => return Ok(md),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn wait_until_all_listed(&mut self, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut ready = true;
            for id in Self::NODE_IDS {
                let node = self.node_mut(id);
                if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                    return Err(TestkitError::Exited {
                        what: "reference Kafka cluster node",
                        status: format!("node {id}: {status}"),
                        output: self.output(id),
                    });
                }
                let addr = self.addr(id);
                ready &= answers_api_versions(addr)
                    && fetch_metadata(addr, Some(&[])).is_ok_and(|md| md.brokers.len() == 3);
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::NotReady {
                    what: "reference Kafka cluster (3 brokers in Metadata)",
                    timeout,
                    output: Self::NODE_IDS
                        .iter()
                        .map(|&id| format!("--- node {id}\n{}", self.output(id)))
                        .collect(),
                });
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs a Kafka CLI class (e.g. `org.apache.kafka.tools.TopicCommand`)
    /// with the pinned jars.
    pub fn run_tool(&self, class: &str, args: &[&str]) -> Result<Output, TestkitError> {
        crate::kafka::run_tool(&self.lib, class, args)
    }

    /// Kills every node.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for ReferenceKafkaCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// One node's `server.properties`: replication factor 3 everywhere, as a
/// production cluster would run, and no initial rebalance delay.
fn node_properties(
    id: i32,
    port: u16,
    controller_port: u16,
    voters: &str,
    dir: &Path,
    extra: &[(&str, &str)],
) -> String {
    let mut props = format!(
        "process.roles=broker,controller\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         num.partitions=1\n\
         default.replication.factor=3\n\
         min.insync.replicas=2\n\
         offsets.topic.replication.factor=3\n\
         transaction.state.log.replication.factor=3\n\
         transaction.state.log.min.isr=2\n\
         share.coordinator.state.topic.replication.factor=3\n\
         share.coordinator.state.topic.min.isr=2\n\
         group.initial.rebalance.delay.ms=0\n",
        dir.join("logs").display()
    );
    for (k, v) in extra {
        props.push_str(&format!("{k}={}\n", v.replace("{id}", &id.to_string())));
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_properties_name_the_static_quorum_and_own_listeners() {
        let p = node_properties(
            2,
            19093,
            19193,
            "1@127.0.0.1:19192,2@127.0.0.1:19193",
            Path::new("/d"),
            &[("broker.session.timeout.ms", "6000")],
        );
        assert!(p.contains("node.id=2\n"));
        assert!(p.contains("controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193\n"));
        assert!(p.contains("listeners=PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:19193\n"));
        assert!(p.contains("log.dirs=/d/logs\n"));
        assert!(p.ends_with("broker.session.timeout.ms=6000\n"));
    }
}
