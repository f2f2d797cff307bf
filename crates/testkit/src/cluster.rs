//! [`SluiceCluster`]: a multi-node Sluice cluster of real `sluice serve`
//! processes on loopback, formatted with `sluice storage format` as an
//! operator would: either `n` combined nodes (`process.roles=broker,
//! controller`, ids 1..=n, all voters) or `c` controllers (ids 1..=c) and
//! `b` brokers (ids c+1..=c+b).
//!
//! [`SluiceCluster::start_pinned`] also fixes each broker's client port, so a
//! restarted broker comes back at the address clients already know (as an
//! operator's would); [`SluiceCluster::start`] lets every start pick a port.
//!
//! Every node starts at once (a node with the broker role announces its
//! client listener only once the quorum has registered and unfenced it,
//! so starting them one after another would wait forever).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{SluiceProcess, TestkitError};

/// Which nodes a cluster has.
#[derive(Clone, Copy, Debug)]
pub enum ClusterLayout {
    /// `n` nodes running both roles.
    Combined(usize),
    /// Controller-only and broker-only nodes.
    Split { controllers: usize, brokers: usize },
}

/// One node of a [`SluiceCluster`].
pub struct ClusterNode {
    pub id: i32,
    pub controller: bool,
    pub broker: bool,
    /// The voter address's port (controllers).
    pub controller_port: Option<u16>,
    pub process: SluiceProcess,
}

/// A running multi-node cluster (stopped when dropped: kill -9).
pub struct SluiceCluster {
    _tmp: tempfile::TempDir,
    cluster_id: String,
    voters: String,
    nodes: BTreeMap<i32, ClusterNode>,
}

fn free_ports(n: usize) -> Result<Vec<u16>, TestkitError> {
    let held = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestkitError::Io {
            what: "reserving loopback ports".into(),
            source: e,
        })?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| TestkitError::Io {
            what: "reserving loopback ports".into(),
            source: e,
        })
}

fn run(binary: &Path, args: &[String], what: &str) -> Result<String, TestkitError> {
    let out = Command::new(binary)
        .args(args)
        .output()
        .map_err(|e| TestkitError::Io {
            what: what.to_string(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(TestkitError::Protocol(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// How many times a cluster start is tried when a voter port it reserved
/// was taken by another process meanwhile (ports are reserved by binding
/// and releasing them; parallel tests bind ephemeral ports too).
const START_ATTEMPTS: usize = 3;

impl SluiceCluster {
    /// Formats and starts every node of `layout`, with `extra` config keys
    /// on every node, and waits until each has announced its address.
    /// `{id}` in a value becomes the node's id (e.g. `broker.rack=rack-{id}`),
    /// `{client_port}` and `{controller_port}` its client port (0: any) and
    /// voter port, so a test can name its own `listeners` (e.g.
    /// `SASL_SSL://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}`);
    /// an empty value removes the key.
    pub fn start(
        binary: impl AsRef<Path>,
        layout: ClusterLayout,
        extra: &[(&str, &str)],
    ) -> Result<SluiceCluster, TestkitError> {
        Self::start_with(binary.as_ref(), layout, extra, false, &[])
    }

    /// [`SluiceCluster::start`] with more `sluice storage format` arguments
    /// for every node (e.g. `--add-scram SCRAM-SHA-512=[name=broker,password=…]`).
    pub fn start_formatted(
        binary: impl AsRef<Path>,
        layout: ClusterLayout,
        extra: &[(&str, &str)],
        format_args: &[&str],
    ) -> Result<SluiceCluster, TestkitError> {
        Self::start_with(binary.as_ref(), layout, extra, false, format_args)
    }

    /// As [`SluiceCluster::start`], with each broker's client listener on a
    /// port reserved once, kept across restarts.
    pub fn start_pinned(
        binary: impl AsRef<Path>,
        layout: ClusterLayout,
        extra: &[(&str, &str)],
    ) -> Result<SluiceCluster, TestkitError> {
        Self::start_with(binary.as_ref(), layout, extra, true, &[])
    }

    fn start_with(
        binary: &Path,
        layout: ClusterLayout,
        extra: &[(&str, &str)],
        pin_client_ports: bool,
        format_args: &[&str],
    ) -> Result<SluiceCluster, TestkitError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(binary, layout, extra, pin_client_ports, format_args) {
                Err(e) if attempt < START_ATTEMPTS && e.to_string().contains("cannot bind") => {
                    eprintln!("cluster start: a reserved port was taken ({e}); starting again");
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn start_once(
        binary: &Path,
        layout: ClusterLayout,
        extra: &[(&str, &str)],
        pin_client_ports: bool,
        format_args: &[&str],
    ) -> Result<SluiceCluster, TestkitError> {
        let binary = binary.to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix("sluice-cluster-")
            .tempdir()
            .map_err(|e| TestkitError::Io {
                what: "creating the cluster's dir".into(),
                source: e,
            })?;
        let cluster_id = run(
            &binary,
            &["storage".into(), "random-uuid".into()],
            "sluice storage random-uuid",
        )?;
        let (voters_n, brokers_n, combined) = match layout {
            ClusterLayout::Combined(n) => (n, 0, true),
            ClusterLayout::Split {
                controllers,
                brokers,
            } => (controllers, brokers, false),
        };
        let ports = free_ports(voters_n)?;
        let client_ports = if pin_client_ports {
            free_ports(voters_n + brokers_n)?
        } else {
            Vec::new()
        };
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut specs = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            specs.push((i as i32 + 1, true, combined, Some(*port)));
        }
        for j in 0..brokers_n {
            specs.push(((voters_n + j) as i32 + 1, false, true, None));
        }
        let mut handles = Vec::new();
        for (id, controller, broker, port) in specs {
            let dir = tmp.path().join(format!("node-{id}"));
            let client_port = client_ports.get(id as usize - 1).copied().unwrap_or(0);
            let ports = (port, client_port);
            let overrides = node_overrides(id, controller, broker, ports, &voters, &dir, extra);
            let mut args: Vec<String> = vec![
                "storage".into(),
                "format".into(),
                "-t".into(),
                cluster_id.clone(),
            ];
            args.extend(format_args.iter().map(|a| a.to_string()));
            for (k, v) in &overrides {
                args.push("--override".into());
                args.push(format!("{k}={v}"));
            }
            run(&binary, &args, "sluice storage format")?;
            let binary = binary.clone();
            handles.push(std::thread::spawn(move || {
                let o: Vec<(&str, &str)> = overrides
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                SluiceProcess::start_in(&binary, &dir, &o).map(|process| ClusterNode {
                    id,
                    controller,
                    broker,
                    controller_port: port,
                    process,
                })
            }));
        }
        let mut nodes = BTreeMap::new();
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => {
                    nodes.insert(n.id, n);
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(TestkitError::Protocol(
                        "a node's start thread panicked".into(),
                    ));
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(SluiceCluster {
            _tmp: tmp,
            cluster_id,
            voters,
            nodes,
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// `controller.quorum.voters`.
    pub fn voters(&self) -> &str {
        &self.voters
    }

    pub fn node(&self, id: i32) -> &ClusterNode {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut ClusterNode {
        self.nodes.get_mut(&id).expect("no such node")
    }

    /// Ids of the nodes with the broker role.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes
            .values()
            .filter(|n| n.broker)
            .map(|n| n.id)
            .collect()
    }

    /// Ids of the voters.
    pub fn controller_ids(&self) -> Vec<i32> {
        self.nodes
            .values()
            .filter(|n| n.controller)
            .map(|n| n.id)
            .collect()
    }

    /// The client address of broker `id` (as last started).
    pub fn broker_addr(&self, id: i32) -> &str {
        self.nodes[&id].process.bootstrap()
    }

    /// Every running broker's client address, comma-separated.
    pub fn bootstrap(&mut self) -> String {
        self.nodes
            .values_mut()
            .filter_map(|n| {
                (n.broker && n.process.is_running()).then(|| n.process.bootstrap().to_string())
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:port` of voter `id`'s controller listener.
    pub fn controller_addr(&self, id: i32) -> Option<String> {
        self.nodes[&id]
            .controller_port
            .map(|p| format!("127.0.0.1:{p}"))
    }

    /// The data dir of node `id`.
    pub fn dir(&self, id: i32) -> PathBuf {
        self.nodes[&id].process.data_dir().to_path_buf()
    }

    /// Formats and starts one more broker-only node (the next id) in the
    /// running cluster, as an operator adds a broker: same cluster id and
    /// voters, `extra` config keys. Returns its id once it announced its
    /// address (registered and unfenced).
    pub fn add_broker(
        &mut self,
        binary: impl AsRef<Path>,
        extra: &[(&str, &str)],
    ) -> Result<i32, TestkitError> {
        let binary = binary.as_ref();
        let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        let dir = self._tmp.path().join(format!("node-{id}"));
        let overrides = node_overrides(id, false, true, (None, 0), &self.voters, &dir, extra);
        let mut args: Vec<String> = vec![
            "storage".into(),
            "format".into(),
            "-t".into(),
            self.cluster_id.clone(),
        ];
        for (k, v) in &overrides {
            args.push("--override".into());
            args.push(format!("{k}={v}"));
        }
        run(binary, &args, "sluice storage format")?;
        let o: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let process = SluiceProcess::start_in(binary, &dir, &o)?;
        self.nodes.insert(
            id,
            ClusterNode {
                id,
                controller: false,
                broker: true,
                controller_port: None,
                process,
            },
        );
        Ok(id)
    }
}

fn node_overrides(
    id: i32,
    controller: bool,
    broker: bool,
    (port, client_port): (Option<u16>, u16),
    voters: &str,
    dir: &Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let roles = match (broker, controller) {
        (true, true) => "broker,controller",
        (true, false) => "broker",
        _ => "controller",
    };
    let mut listeners = Vec::new();
    if broker {
        listeners.push(format!("PLAINTEXT://127.0.0.1:{client_port}"));
    }
    if let Some(p) = port {
        listeners.push(format!("CONTROLLER://127.0.0.1:{p}"));
    }
    let mut o: Vec<(String, String)> = vec![
        ("process.roles".into(), roles.into()),
        ("node.id".into(), id.to_string()),
        ("controller.quorum.voters".into(), voters.into()),
        ("controller.listener.names".into(), "CONTROLLER".into()),
        ("listeners".into(), listeners.join(",")),
        ("log.dirs".into(), dir.display().to_string()),
    ];
    if broker {
        o.push(("inter.broker.listener.name".into(), "PLAINTEXT".into()));
    }
    for (k, v) in extra {
        o.retain(|(ok, _)| ok != k);
        if v.is_empty() {
            // An empty value removes the key (e.g. the default
            // inter.broker.listener.name, for security.inter.broker.protocol).
            continue;
        }
        let v = v
            .replace("{id}", &id.to_string())
            .replace("{client_port}", &client_port.to_string())
            .replace(
                "{controller_port}",
                &port.map_or(String::new(), |p| p.to_string()),
            );
        o.push((k.to_string(), v));
    }
    o
}
