//! `sluice cluster start` and `sluice cluster info`, driving the real binary.
//!
//! `cluster start`: the generated configs pass the config validator with
//! one voter set, every node's dirs are formatted with one cluster id, the
//! children run, a child that dies is reported, and SIGTERM (or the death
//! of the parent) stops every child: no pid outlives it. The nodes form
//! one cluster: `cluster info` on any node lists all three brokers and
//! voters.
//!
//! `cluster info` against single-node Sluice, and (with `SLUICE_TEST_FULL=1`,
//! it starts three JVMs) against the 3-node reference Kafka.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_broker::BrokerConfig;
use sluice_testkit::{ReferenceKafkaCluster, SluiceProcess};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const TIMEOUT: Duration = Duration::from_secs(120);

fn sluice(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice")
}

fn ok(args: &[&str]) -> String {
    let out = sluice(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sluice {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its entry waits for the reaper.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// A base port whose client, controller and metrics ports for `n` nodes are all free now.
fn free_base(n: u16) -> u16 {
    let mut seed = std::process::id() as u16;
    loop {
        seed = seed.wrapping_mul(31).wrapping_add(7);
        let base = 20_000 + seed % 30_000;
        let free = (0..n).all(|i| {
            [0, 100, 200]
                .iter()
                .all(|off| std::net::TcpListener::bind(("127.0.0.1", base + off + i)).is_ok())
        });
        if free {
            return base;
        }
    }
}

/// `sluice cluster start` as a child; its stdout up to the bootstrap line.
struct Cluster {
    child: Child,
    stdout: BufReader<ChildStdout>,
    printed: String,
}

impl Cluster {
    fn start(dir: &Path, n: u16, base: u16) -> Cluster {
        let mut child = Command::new(BIN)
            .args(["cluster", "start", "--nodes", &n.to_string(), "--dir"])
            .arg(dir)
            .args(["--base-port", &base.to_string()])
            // Its own group, so the test can send a terminal's Ctrl-C to the group.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut c = Cluster {
            child,
            stdout,
            printed: String::new(),
        };
        c.read_until("bootstrap servers: ");
        c
    }

    fn read_until(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "cluster start ended early:\n{}", self.printed);
            self.printed.push_str(&line);
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// (node id, pid) as printed.
    fn pids(&self) -> Vec<(u16, u32)> {
        self.printed
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("node ")?;
                let (id, rest) = rest.split_once(": pid ")?;
                let pid = rest.split(',').next()?;
                Some((id.parse().ok()?, pid.parse().ok()?))
            })
            .collect()
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "cluster start did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut s).unwrap();
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cluster_start_formats_starts_reports_and_stops_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let mut cluster = Cluster::start(tmp.path(), 3, base);
    let pids = cluster.pids();
    assert_eq!(
        pids.iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "{}",
        cluster.printed
    );
    assert!(pids.iter().all(|&(_, pid)| alive(pid)));
    let bootstrap: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    assert!(
        cluster
            .printed
            .contains(&format!("bootstrap servers: {}", bootstrap.join(","))),
        "{}",
        cluster.printed
    );
    let cluster_id = cluster
        .printed
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();

    // Every generated config passes the validator, with one voter set; every dir is formatted for its node.
    let mut voters = Vec::new();
    for id in 1..=3 {
        let node = tmp
            .path()
            .canonicalize()
            .unwrap()
            .join(format!("node-{id}"));
        let config =
            BrokerConfig::from_properties(Some(&node.join("server.properties")), &[]).unwrap();
        let k = config.kraft.clone().expect("process.roles");
        assert_eq!(k.node_id, id);
        voters.push(k.quorum.voters.clone());
        let meta = std::fs::read_to_string(node.join("data/meta.properties")).unwrap();
        assert!(
            meta.contains(&format!("cluster.id={cluster_id}\n"))
                && meta.contains(&format!("node.id={id}\n")),
            "{meta}"
        );
    }
    voters.dedup();
    assert_eq!(voters.len(), 1);
    // The nodes form one cluster: any node lists all three brokers and
    // the quorum of all three voters (DescribeQuorum forwarded to its
    // leader), with the formatted cluster id.
    let info = ok(&["cluster", "info", "--bootstrap-server", &bootstrap[1]]);
    assert!(
        info.contains(&format!("CLUSTER-ID  {cluster_id}")),
        "{info}"
    );
    for id in 1..=3 {
        assert!(
            info.lines()
                .any(|l| l.starts_with(&format!("{id} ")) && l.contains("127.0.0.1")),
            "broker {id} missing:\n{info}"
        );
    }
    assert!(info.contains("voters [1,2,3]"), "{info}");

    // A node that dies is reported; the others keep running.
    let (_, victim) = pids[1];
    signal(victim, "-KILL");
    wait_until("node 2 to be gone", || !alive(victim));
    assert!(alive(pids[0].1) && alive(pids[2].1));

    // SIGTERM stops every node, and the parent exits 0.
    signal(cluster.child.id(), "-TERM");
    assert!(cluster.wait().success());
    let stderr = cluster.stderr();
    assert!(
        stderr.contains(&format!("node 2 (pid {victim}) exited unexpectedly")),
        "{stderr}"
    );
    for (id, pid) in pids {
        assert!(!alive(pid), "node {id} (pid {pid}) outlived cluster start");
    }

    let mut rest = String::new();
    cluster.stdout.read_to_string(&mut rest).unwrap();
    for id in [1, 3] {
        assert!(
            rest.contains(&format!("node {id} stopped (exit status: 0)")),
            "{rest}"
        );
    }

    // Ctrl-C at a terminal (SIGINT to the whole process group): every node
    // is stopped once, cleanly (exit 0), not by two signals.
    let mut ctrl_c = Cluster::start(tmp.path(), 3, base);
    let pids = ctrl_c.pids();
    let group = format!("-{}", ctrl_c.child.id());
    let status = Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT -- {group}");
    assert!(ctrl_c.wait().success());
    let mut rest = String::new();
    ctrl_c.stdout.read_to_string(&mut rest).unwrap();
    for (id, pid) in pids {
        assert!(
            rest.contains(&format!("node {id} stopped (exit status: 0)")),
            "{rest}"
        );
        assert!(!alive(pid));
    }

    // A single node pointed at the cluster dir refuses rather than deleting
    // node-N as stray partitions; cluster start refuses a node's log dir.
    let out = sluice(&[
        "serve",
        "--override",
        &format!("log.dir={}", tmp.path().display()),
        "--override",
        "listeners=PLAINTEXT://127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds the nodes of `sluice cluster start`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.path().join("node-1/data/meta.properties").exists());
    let single = tmp.path().join("node-1/data");
    let out = sluice(&[
        "cluster",
        "start",
        "--nodes",
        "1",
        "--dir",
        single.to_str().unwrap(),
        "--base-port",
        &base.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is the log dir of a Sluice or Kafka node"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!single.join("node-1").exists());

    // Starting again on the same dir reuses the cluster id.
    let mut again = Cluster::start(tmp.path(), 3, base);
    assert!(
        again.printed.starts_with(&format!("cluster {cluster_id}:")),
        "{}",
        again.printed
    );
    // kill -9 of the parent: the children get SIGTERM (PR_SET_PDEATHSIG) and exit.
    let pids = again.pids();
    signal(again.child.id(), "-KILL");
    again.wait();
    for (id, pid) in pids {
        wait_until(&format!("node {id} to exit after its parent"), || {
            !alive(pid)
        });
    }
}

#[test]
fn cluster_info_against_single_node_sluice() {
    let broker = SluiceProcess::start(BIN, &[]).expect("start sluice");
    let b = broker.bootstrap();
    let info = ok(&["cluster", "info", "--bootstrap-server", b]);
    let port = b.rsplit(':').next().unwrap();
    assert!(
        info.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["1", "127.0.0.1", port, "-", "no"]
        ),
        "{info}"
    );
    assert!(info.contains("ACTIVE-CONTROLLER  1"), "{info}");
    assert!(info.contains("QUORUM      leader 1, epoch "), "{info}");
    assert!(info.contains("voters [1], observers []"), "{info}");
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == ["1", "Leader"]),
        "{info}"
    );
}

#[test]
fn cluster_info_against_three_node_reference_kafka() {
    if !common::env_on("SLUICE_TEST_FULL") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to start a 3-node Kafka cluster");
        return;
    }
    let Some(cluster) = ReferenceKafkaCluster::start().expect("start the Kafka cluster") else {
        assert!(
            !common::env_on("SLUICE_REQUIRE_CLIENTS"),
            "the reference Kafka is required"
        );
        return;
    };
    let info = ok(&[
        "cluster",
        "info",
        "--bootstrap-server",
        &cluster.bootstrap(),
    ]);
    eprintln!("{info}");
    for id in ReferenceKafkaCluster::NODE_IDS {
        let port = cluster.addr(id).port().to_string();
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [&id.to_string(), "127.0.0.1", &port, "-", "no"]),
            "broker {id}: {info}"
        );
    }
    let quorum = info.lines().find(|l| l.starts_with("QUORUM")).expect(&info);
    assert!(quorum.contains("voters [1,2,3]"), "{info}");
    let leader: i32 = quorum
        .split("leader ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ReferenceKafkaCluster::NODE_IDS.contains(&leader), "{info}");
    assert!(
        info.contains(&format!("ACTIVE-CONTROLLER  {leader}")),
        "{info}"
    );
    let hw: i64 = quorum
        .split("high watermark ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(hw > 0, "{info}");
    // One Leader and two Followers, each with an end offset and a lag.
    let replicas: Vec<Vec<&str>> = info
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() > 3 && matches!(w[1], "Leader" | "Follower"))
        .collect();
    assert_eq!(replicas.len(), 3, "{info}");
    assert_eq!(
        replicas.iter().filter(|w| w[1] == "Leader").count(),
        1,
        "{info}"
    );
    for w in &replicas {
        assert!(
            w[2].parse::<i64>().unwrap() > 0 && w[3].parse::<i64>().is_ok(),
            "{info}"
        );
    }
    cluster.stop();
}
