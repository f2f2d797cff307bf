//! `sluice-bench cluster`: the figures issue 16 sets for a 3-node cluster,
//! measured the same way on any cluster that speaks Kafka's protocol:
//!
//! - **failover**: kill -9 the active controller (found with
//!   DescribeQuorum); the time until a surviving node names a new leader of
//!   the metadata quorum in a higher epoch. The killed node is restarted
//!   between trials.
//! - **propagation**: after a CreateTopics answer (the change is committed),
//!   the time until each node's Metadata answer shows the topic with a
//!   leader.
//! - **bulk create**: N topics x P partitions at replication factor R, one
//!   topic per CreateTopics request, a fixed number in flight, spread over
//!   the nodes; wall time to the last answer and until every node lists
//!   every topic.
//! - **idle**: resident memory and CPU of each node's process over a quiet
//!   window.
//!
//! Targets: `kafka` (the reference Apache Kafka, [`KafkaTarget`]) and
//! `sluice` (three combined Sluice nodes, [`SluiceTarget`]), each on
//! loopback with its defaults; run both in one session to compare.

mod client;
mod reassign;
mod replicated;
mod scenarios;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;

pub use reassign::{run as run_reassign, ReassignOptions};
pub use replicated::{run as run_replication, ReplicationOptions};
pub use scenarios::{BulkCreate, Failover, Idle, Propagation};

/// A running cluster the scenarios can measure and hurt.
pub trait ClusterTarget {
    fn name(&self) -> &'static str;
    fn node_ids(&self) -> Vec<i32>;
    /// Node `id`'s client listener.
    fn addr(&self, id: i32) -> SocketAddr;
    /// Node `id`'s process id while it runs.
    fn pid(&mut self, id: i32) -> Option<u32>;
    /// `kill -9` node `id`.
    fn kill(&mut self, id: i32) -> Result<()>;
    /// Starts node `id` again on its data and waits until it serves.
    fn restart(&mut self, id: i32) -> Result<()>;
    /// What node `id` logged so far, when the target keeps it.
    fn output(&self, _id: i32) -> Option<String> {
        None
    }
}

/// The pinned Apache Kafka 4.1.2, three combined nodes on loopback
/// (testkit's `ReferenceKafkaCluster`, Kafka's default timeouts).
pub struct KafkaTarget(sluice_testkit::ReferenceKafkaCluster);

impl KafkaTarget {
    pub fn start() -> Result<KafkaTarget> {
        match sluice_testkit::ReferenceKafkaCluster::start()? {
            Some(c) => Ok(KafkaTarget(c)),
            None => bail!("no reference Kafka here (tools/kafka/fetch, and java on PATH)"),
        }
    }
}

impl ClusterTarget for KafkaTarget {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn node_ids(&self) -> Vec<i32> {
        sluice_testkit::ReferenceKafkaCluster::NODE_IDS.to_vec()
    }
    fn addr(&self, id: i32) -> SocketAddr {
        self.0.addr(id)
    }
    fn pid(&mut self, id: i32) -> Option<u32> {
        self.0.pid(id)
    }
    fn kill(&mut self, id: i32) -> Result<()> {
        Ok(self.0.kill(id)?)
    }
    fn restart(&mut self, id: i32) -> Result<()> {
        Ok(self.0.restart(id)?)
    }
}

/// Three combined Sluice nodes on loopback (testkit's `SluiceCluster`,
/// formatted as an operator would; Sluice's default timeouts unless
/// given others), from the release binary
/// (`SLUICE_BIN`, else next to this one).
pub struct SluiceTarget(sluice_testkit::SluiceCluster, &'static str);

/// Kafka 4.1's broker liveness defaults, for comparing failover on equal
/// terms.
pub const KAFKA_BROKER_TIMEOUTS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "9000"),
    ("broker.heartbeat.interval.ms", "2000"),
];

impl SluiceTarget {
    pub fn start() -> Result<SluiceTarget> {
        Self::start_with("sluice", &[])
    }

    /// Sluice named `name` with `extra` config on every node.
    pub fn start_with(name: &'static str, extra: &[(&str, &str)]) -> Result<SluiceTarget> {
        let bin = sluice_testkit::locate_sluice_binary()?;
        let c = sluice_testkit::SluiceCluster::start(
            bin,
            sluice_testkit::ClusterLayout::Combined(3),
            extra,
        )?;
        Ok(SluiceTarget(c, name))
    }
}

impl ClusterTarget for SluiceTarget {
    fn name(&self) -> &'static str {
        self.1
    }
    fn node_ids(&self) -> Vec<i32> {
        self.0.broker_ids()
    }
    fn addr(&self, id: i32) -> SocketAddr {
        self.0
            .broker_addr(id)
            .parse()
            .expect("the node announced a socket address")
    }
    fn pid(&mut self, id: i32) -> Option<u32> {
        self.0.node(id).process.pid()
    }
    fn kill(&mut self, id: i32) -> Result<()> {
        Ok(self.0.node_mut(id).process.kill()?)
    }
    fn restart(&mut self, id: i32) -> Result<()> {
        Ok(self.0.node_mut(id).process.restart()?)
    }
    fn output(&self, id: i32) -> Option<String> {
        Some(self.0.node(id).process.output())
    }
}

/// What to run.
pub struct ClusterOptions {
    pub target: String,
    pub failover_trials: usize,
    pub propagation_topics: usize,
    pub bulk_topics: usize,
    pub bulk_partitions: i32,
    pub bulk_replication_factor: i16,
    pub bulk_in_flight: usize,
    pub idle_secs: u64,
    pub out: Option<PathBuf>,
}

#[derive(Serialize)]
struct ClusterReport {
    target: String,
    idle: Idle,
    propagation: Propagation,
    bulk_create: BulkCreate,
    failover: Failover,
}

pub fn run(opts: ClusterOptions) -> Result<()> {
    let mut target: Box<dyn ClusterTarget> = match opts.target.as_str() {
        "kafka" => Box::new(KafkaTarget::start()?),
        "sluice" => Box::new(SluiceTarget::start()?),
        other => bail!("unknown cluster target {other:?} (known: kafka, sluice)"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!(
        "[cluster] {} is up; idle window {} s",
        target.name(),
        opts.idle_secs
    );
    let idle = scenarios::idle(target.as_mut(), opts.idle_secs)?;
    // Each scenario's figures as soon as it ends: a later failure keeps them.
    eprintln!("[cluster] idle: {}", serde_json::to_string(&idle)?);
    eprintln!("[cluster] propagation: {} topics", opts.propagation_topics);
    let propagation = rt.block_on(scenarios::propagation(
        target.as_mut(),
        opts.propagation_topics,
    ))?;
    eprintln!(
        "[cluster] propagation: {}",
        serde_json::to_string(&propagation)?
    );
    eprintln!(
        "[cluster] bulk create: {} topics x {} partitions, rf {}",
        opts.bulk_topics, opts.bulk_partitions, opts.bulk_replication_factor
    );
    let bulk_create = rt.block_on(scenarios::bulk_create(
        target.as_mut(),
        opts.bulk_topics,
        opts.bulk_partitions,
        opts.bulk_replication_factor,
        opts.bulk_in_flight,
    ))?;
    eprintln!(
        "[cluster] bulk create: {}",
        serde_json::to_string(&bulk_create)?
    );
    eprintln!("[cluster] failover: {} trials", opts.failover_trials);
    let failover = scenarios::failover(&rt, target.as_mut(), opts.failover_trials)?;
    let report = ClusterReport {
        target: target.name().to_string(),
        idle,
        propagation,
        bulk_create,
        failover,
    };
    print_report(&report);
    if let Some(out) = opts.out {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&out, json).with_context(|| format!("writing {out:?}"))?;
        eprintln!("[cluster] wrote {out:?}");
    }
    Ok(())
}

fn print_report(r: &ClusterReport) {
    println!("cluster figures: {}", r.target);
    println!(
        "  idle: total RSS {:.1} MiB; per node RSS MiB {:?}; CPU % of a core {:?}",
        r.idle.total_rss_bytes as f64 / (1 << 20) as f64,
        r.idle
            .nodes
            .iter()
            .map(|n| (n.rss_bytes as f64 / (1 << 20) as f64).round())
            .collect::<Vec<_>>(),
        r.idle
            .nodes
            .iter()
            .map(|n| (n.cpu_percent * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
    );
    let p = &r.propagation;
    println!(
        "  propagation (commit -> every node's Metadata), {} samples: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p.samples, p.p50_ms, p.p99_ms, p.max_ms
    );
    let b = &r.bulk_create;
    println!(
        "  bulk create {} x {} rf {}: last answer {:.2} s, listed everywhere {:.2} s, {} errors",
        b.topics, b.partitions, b.replication_factor, b.answered_s, b.listed_s, b.errors
    );
    let f = &r.failover;
    println!(
        "  controller failover after kill -9, {} trials: median {:.0} ms, p99 {:.0} ms, max {:.0} ms ({:?})",
        f.trials.len(),
        f.median_ms,
        f.p99_ms,
        f.max_ms,
        f.trials.iter().map(|t| t.round()).collect::<Vec<_>>()
    );
}

/// The `q` quantile (0..=1) of `samples` by nearest rank; 0 when empty.
pub(crate) fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantile_is_nearest_rank() {
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut s, 0.5), 50.0);
        assert_eq!(quantile(&mut s, 0.99), 99.0);
        assert_eq!(quantile(&mut s, 1.0), 100.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
        assert_eq!(quantile(&mut [7.0], 0.99), 7.0);
    }
}
