//! `sluice cluster start --nodes N`: a local cluster in one command. Writes
//! one server.properties per node (combined broker+controller roles,
//! loopback ports, data under `<dir>/node-N/data`, the static voter set),
//! formats every node with one cluster id (`sluice storage format`'s code),
//! starts N child processes of this binary, prints their addresses, and
//! stops them all on Ctrl-C/SIGTERM. A child that dies on its own is
//! reported; children get SIGTERM if this process dies (PR_SET_PDEATHSIG),
//! so none outlives it.
//!
//! Ports of node N (1-based), from `--base-port P`: client P+N-1,
//! controller P+100+N-1, metrics P+200+N-1 (the layout of
//! `scripts/kafka-cluster`). Starting again on the same `--dir` reuses the
//! cluster id the nodes were formatted with.
//!
//! The nodes form one cluster: three voters of one metadata quorum, each
//! also a broker.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use sluice_broker::BrokerConfig;
use sluice_storage::meta_properties;

/// How long the nodes get to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for every node to print its listener.
const START_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Number of nodes (each runs the broker and controller roles).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=99))]
    nodes: u16,
    /// Directory holding node-1, node-2, ... (configs, data, logs).
    #[arg(long, default_value = "./data")]
    dir: PathBuf,
    /// Client port of node 1; node N uses base+N-1, its controller base+100+N-1, its metrics base+200+N-1.
    #[arg(long, default_value_t = 19092)]
    base_port: u16,
    /// Extra config for every node (repeatable), e.g. --override num.partitions=3;
    /// `{id}` in a value becomes the node's id (--override broker.rack=rack-{id}).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// The ports of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePorts {
    pub client: u16,
    pub controller: u16,
    pub metrics: u16,
}

/// The ports of node `id` (1-based) from `base`, if they fit.
pub fn node_ports(base: u16, id: u16) -> Option<NodePorts> {
    let at = |offset: u32| u16::try_from(u32::from(base) + offset + u32::from(id) - 1).ok();
    Some(NodePorts {
        client: at(0)?,
        controller: at(100)?,
        metrics: at(200)?,
    })
}

/// The server.properties of node `id` of an `n`-node local cluster.
pub fn node_properties(
    dir: &Path,
    base: u16,
    n: u16,
    id: u16,
    overrides: &[(String, String)],
) -> anyhow::Result<String> {
    let ports = |i| node_ports(base, i).context("--base-port too high for this many nodes");
    let voters = (1..=n)
        .map(|i| Ok(format!("{i}@127.0.0.1:{}", ports(i)?.controller)))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(",");
    let p = ports(id)?;
    let rf = n.min(3);
    let mut text = format!(
        "# Node {id} of a {n}-node local cluster, written by `sluice cluster start`.\n\
         process.roles=broker,controller\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         listeners=PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{client}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={data}\n\
         default.replication.factor={rf}\n\
         offsets.topic.replication.factor={rf}\n\
         sluice.metrics.listener=127.0.0.1:{metrics}\n",
        client = p.client,
        controller = p.controller,
        metrics = p.metrics,
        data = node_dir(dir, id).join("data").display(),
    );
    for (k, v) in overrides {
        let v = v.replace("{id}", &id.to_string());
        text.push_str(&format!("{k}={v}\n"));
    }
    Ok(text)
}

/// The file that marks a `cluster start` dir, so no node is ever served
/// with it as its log dir ([`super::storage::check_before_serve`]).
pub const CLUSTER_DIR_MARKER: &str = ".sluice-cluster";

/// A node's log dir takes every `name-N` entry for a partition of topic
/// `name`, and deletes it as a stray: so `dir` must not be (or become) a
/// log dir. Refuses a dir that already is one; marks `dir` as a cluster dir.
fn guard_cluster_dir(dir: &Path) -> anyhow::Result<()> {
    for file in [
        meta_properties::META_PROPERTIES,
        "recovery-point-offset-checkpoint",
    ] {
        if dir.join(file).exists() {
            bail!(
                "{} is the log dir of a Sluice or Kafka node (it has {file}); the cluster's node-N dirs there would be taken for partitions. Use --dir elsewhere, e.g. --dir {}",
                dir.display(),
                dir.join("cluster").display()
            );
        }
    }
    std::fs::write(
        dir.join(CLUSTER_DIR_MARKER),
        "Written by `sluice cluster start`: node-N/ hold its nodes. No node may use this dir as its log dir.\n",
    )
    .with_context(|| format!("writing {}", dir.join(CLUSTER_DIR_MARKER).display()))
}

fn node_dir(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("node-{id}"))
}

/// A started node.
struct Node {
    id: u16,
    child: Child,
    log: PathBuf,
    /// Set once it exited.
    exited: bool,
}

pub fn run(args: StartArgs) -> anyhow::Result<()> {
    let stop = super::stop_flag()?;
    let overrides = args
        .overrides
        .iter()
        .map(|o| BrokerConfig::parse_override(o))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    guard_cluster_dir(&dir)?;
    let mut configs = Vec::new();
    for id in 1..=args.nodes {
        let path = node_dir(&dir, id).join("server.properties");
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(
            &path,
            node_properties(&dir, args.base_port, args.nodes, id, &overrides)?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        let config = BrokerConfig::from_properties(Some(&path), &[])
            .with_context(|| format!("the generated {} is invalid", path.display()))?;
        configs.push((id, path, config));
    }
    let cluster_id = format_all(&configs)?;
    let mut nodes = Vec::new();
    let (tx, rx) = mpsc::channel();
    for (id, path, _) in &configs {
        match spawn(*id, path, tx.clone()) {
            Ok(node) => nodes.push(node),
            Err(e) => {
                stop_all(&mut nodes);
                return Err(e);
            }
        }
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "cluster {cluster_id}: {} node(s) under {}",
        nodes.len(),
        dir.display()
    )?;
    for n in &nodes {
        let p = node_ports(args.base_port, n.id).expect("checked");
        writeln!(
            out,
            "node {}: pid {}, client 127.0.0.1:{}, controller 127.0.0.1:{}, metrics 127.0.0.1:{}, log {}",
            n.id,
            n.child.id(),
            p.client,
            p.controller,
            p.metrics,
            n.log.display()
        )?;
    }
    out.flush()?;
    let mut listening = std::collections::BTreeSet::new();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut reported = false;
    while !stop.load(Ordering::SeqCst) {
        while let Ok((id, line)) = rx.try_recv() {
            writeln!(out, "node {id}: {line}")?;
            // A node serves once its client listener is up (it announces
            // its controller listener first, before the quorum forms).
            if line.starts_with("listening on PLAINTEXT://") {
                listening.insert(id);
            }
        }
        if !reported && listening.len() >= nodes.len() {
            let bootstrap = (1..=args.nodes)
                .map(|i| {
                    format!(
                        "127.0.0.1:{}",
                        node_ports(args.base_port, i).expect("checked").client
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            writeln!(out, "bootstrap servers: {bootstrap}")?;
            writeln!(out, "Ctrl-C stops every node.")?;
            reported = true;
        }
        if !reported && Instant::now() > deadline {
            eprintln!(
                "warning: not every node printed its listener within {} s; see the node logs",
                START_TIMEOUT.as_secs()
            );
            reported = true;
        }
        out.flush()?;
        if reap_unexpected(&mut nodes) == 0 {
            bail!(
                "every node has exited; see the node logs under {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A node that died before the signal still gets reported as such.
    reap_unexpected(&mut nodes);
    writeln!(
        out,
        "stopping {} node(s)",
        nodes.iter().filter(|n| !n.exited).count()
    )?;
    out.flush()?;
    stop_all(&mut nodes);
    Ok(())
}

/// Formats every node with one cluster id: the id the nodes already carry
/// when `dir` was used before, else a new one.
fn format_all(configs: &[(u16, PathBuf, BrokerConfig)]) -> anyhow::Result<String> {
    let mut existing = None;
    for (_, _, config) in configs {
        let meta_dir = super::storage::metadata_log_dir(config);
        if let Some(meta) = meta_properties::read(&sluice_storage::RealFs, &meta_dir)? {
            existing = Some(meta.cluster_id);
            break;
        }
    }
    let cluster_id =
        existing.unwrap_or_else(|| meta_properties::uuid_to_base64(meta_properties::random_uuid()));
    for (id, _, config) in configs {
        super::storage::format_node(config, &cluster_id, true)
            .with_context(|| format!("formatting node {id}"))?;
    }
    Ok(cluster_id)
}

fn spawn(id: u16, config: &Path, tx: mpsc::Sender<(u16, String)>) -> anyhow::Result<Node> {
    let exe = std::env::current_exe().context("locating the sluice binary")?;
    let log = config.with_file_name("sluice.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        // Its own process group: a Ctrl-C at the terminal reaches only this
        // process, which then stops each node once with SIGTERM (a node that
        // got both signals would take the second as "exit now, uncleanly").
        .process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting node {id}"))?;
    let stdout = child.stdout.take().expect("piped");
    std::thread::Builder::new()
        .name(format!("node-{id}-stdout"))
        .spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((id, line)).is_err() {
                    break;
                }
            }
        })?;
    Ok(Node {
        id,
        child,
        log,
        exited: false,
    })
}

/// Reports nodes that exited on their own; returns how many still run.
fn reap_unexpected(nodes: &mut [Node]) -> usize {
    for n in nodes.iter_mut().filter(|n| !n.exited) {
        if let Ok(Some(status)) = n.child.try_wait() {
            n.exited = true;
            eprintln!(
                "node {} (pid {}) exited unexpectedly ({status}); see {}",
                n.id,
                n.child.id(),
                n.log.display()
            );
        }
    }
    nodes.iter().filter(|n| !n.exited).count()
}

/// SIGTERM to every running node, wait, SIGKILL what is left after [`STOP_TIMEOUT`].
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter().filter(|n| !n.exited) {
        // SAFETY: kill(2) on a child we have not reaped yet, so its pid is ours.
        unsafe { libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for n in nodes.iter_mut().filter(|n| !n.exited) {
        loop {
            match n.child.try_wait() {
                Ok(Some(status)) => {
                    println!("node {} stopped ({status})", n.id);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("node {} did not stop in time: SIGKILL", n.id);
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
            }
        }
        n.exited = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configs_pass_the_validator_with_one_voter_set() {
        let dir = Path::new("/tmp/sluice-cluster");
        let extra = vec![
            ("num.partitions".to_string(), "3".to_string()),
            ("broker.rack".to_string(), "RACK{id}".to_string()),
        ];
        for n in [1u16, 3, 5] {
            let mut voter_sets = Vec::new();
            for id in 1..=n {
                let text = node_properties(dir, 19092, n, id, &extra).unwrap();
                let pairs = sluice_broker::config::parse_properties(&text);
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let c =
                    BrokerConfig::with_overrides(&refs).unwrap_or_else(|e| panic!("{text}\n{e}"));
                let k = c.kraft.expect("combined roles");
                assert_eq!(k.node_id, i32::from(id));
                assert!(k.roles.broker && k.roles.controller);
                assert_eq!(k.quorum.voter_ids(), (1..=i32::from(n)).collect::<Vec<_>>());
                assert_eq!(k.controller_listeners[0].port, 19192 + id - 1);
                assert_eq!(c.listeners[0].port, 19092 + id - 1);
                assert_eq!(c.log_dirs, vec![dir.join(format!("node-{id}/data"))]);
                assert_eq!(k.default_replication_factor, i32::from(n.min(3)));
                assert_eq!(c.num_partitions, 3);
                assert_eq!(k.rack.as_deref(), Some(format!("RACK{id}").as_str()));
                voter_sets.push(k.quorum.voters);
            }
            voter_sets.dedup();
            assert_eq!(voter_sets.len(), 1, "every node has the same voter set");
        }
        assert!(node_properties(dir, 65400, 3, 1, &[]).is_err());
        assert_eq!(node_ports(65535, 1), None);
    }
}
