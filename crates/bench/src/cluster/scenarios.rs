//! The four cluster scenarios (see the module docs of `cluster`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeQuorumRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::client::Conn;
use super::{quantile, ClusterTarget};
use crate::procstat;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A probe during a failover must not wait on a dead peer for long.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Give up on a trial or a wait after this long.
const GIVE_UP: Duration = Duration::from_secs(120);

#[derive(Serialize)]
pub struct IdleNode {
    pub node: i32,
    pub rss_bytes: u64,
    /// Percent of one core over the window.
    pub cpu_percent: f64,
}

#[derive(Serialize)]
pub struct Idle {
    pub window_s: u64,
    pub total_rss_bytes: u64,
    pub nodes: Vec<IdleNode>,
}

#[derive(Serialize)]
pub struct Propagation {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Serialize)]
pub struct BulkCreate {
    pub topics: usize,
    pub partitions: i32,
    pub replication_factor: i16,
    pub in_flight: usize,
    /// First request to last answer.
    pub answered_s: f64,
    /// First request until every node's Metadata lists every created topic.
    pub listed_s: f64,
    pub errors: usize,
}

#[derive(Serialize)]
pub struct Failover {
    /// Kill to a new metadata-quorum leader named by a survivor, ms.
    pub trials: Vec<f64>,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Resident memory now and CPU over `secs` of quiet, per node.
pub fn idle(target: &mut dyn ClusterTarget, secs: u64) -> Result<Idle> {
    // Let start-up work (log loading, first elections) finish first.
    std::thread::sleep(Duration::from_secs(10));
    let mut nodes = Vec::new();
    let mut start = Vec::new();
    for id in target.node_ids() {
        let pid = target
            .pid(id)
            .with_context(|| format!("node {id} is not running"))?;
        start.push((id, pid, procstat::process_cpu_s(pid).unwrap_or(0.0)));
    }
    std::thread::sleep(Duration::from_secs(secs));
    for (id, pid, cpu0) in start {
        let cpu1 = procstat::process_cpu_s(pid).unwrap_or(cpu0);
        nodes.push(IdleNode {
            node: id,
            rss_bytes: procstat::rss_bytes(pid).unwrap_or(0),
            cpu_percent: (cpu1 - cpu0) / secs as f64 * 100.0,
        });
    }
    Ok(Idle {
        window_s: secs,
        total_rss_bytes: nodes.iter().map(|n| n.rss_bytes).sum(),
        nodes,
    })
}

fn run_tag() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn topic_name(s: String) -> TopicName {
    TopicName(StrBytes::from_string(s))
}

/// Creates one topic through `conn`; returns the topic's error code.
async fn create_topic(conn: &mut Conn, name: &str, partitions: i32, rf: i16) -> Result<i16> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(REQUEST_TIMEOUT.as_millis() as i32)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name.to_string()))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)]);
    let resp = conn.call(7, &req).await?;
    match resp.topics.first() {
        Some(t) => Ok(t.error_code),
        None => bail!("CreateTopics answer without topics"),
    }
}

/// True when `conn`'s node lists `name` with a leader for every partition.
async fn visible_with_leader(conn: &mut Conn, name: &str) -> Result<bool> {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(name.to_string())))
    ]));
    let resp = conn.call(12, &req).await?;
    Ok(resp.topics.first().is_some_and(|t| {
        t.error_code == 0
            && !t.partitions.is_empty()
            && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
    }))
}

/// The number of topics named `prefix*` that `conn`'s node lists.
async fn count_listed(conn: &mut Conn, prefix: &str) -> Result<usize> {
    // A null topic list asks for every topic (an empty one for none).
    let resp = conn
        .call(12, &MetadataRequest::default().with_topics(None))
        .await?;
    Ok(resp
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref())
        .filter(|n| n.0.starts_with(prefix))
        .count())
}

async fn connect_all(target: &dyn ClusterTarget) -> Result<Vec<Conn>> {
    let mut conns = Vec::new();
    for id in target.node_ids() {
        conns.push(Conn::connect(target.addr(id), REQUEST_TIMEOUT).await?);
    }
    Ok(conns)
}

/// Commit (the CreateTopics answer) to every node showing the topic.
pub async fn propagation(target: &mut dyn ClusterTarget, topics: usize) -> Result<Propagation> {
    let mut conns = connect_all(target).await?;
    let rf = conns.len().min(3) as i16;
    let tag = run_tag();
    let mut samples = Vec::new();
    for i in 0..topics {
        let name = format!("bench-prop-{tag}-{i}");
        let via = i % conns.len();
        let code = create_topic(&mut conns[via], &name, 1, rf).await?;
        if code != 0 {
            bail!("creating {name}: error {code}");
        }
        let committed = Instant::now();
        let mut pending: Vec<usize> = (0..conns.len()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for n in pending {
                if visible_with_leader(&mut conns[n], &name).await? {
                    samples.push(committed.elapsed().as_secs_f64() * 1e3);
                } else {
                    still.push(n);
                }
            }
            pending = still;
            if committed.elapsed() > GIVE_UP {
                bail!("{name} not visible on every node after {GIVE_UP:?}");
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    Ok(Propagation {
        samples: samples.len(),
        p50_ms: quantile(&mut samples, 0.5),
        p99_ms: quantile(&mut samples, 0.99),
        max_ms: quantile(&mut samples, 1.0),
    })
}

/// `topics` CreateTopics requests of one topic each, `in_flight` at a time.
pub async fn bulk_create(
    target: &mut dyn ClusterTarget,
    topics: usize,
    partitions: i32,
    rf: i16,
    in_flight: usize,
) -> Result<BulkCreate> {
    let prefix = format!("bench-bulk-{}-", run_tag());
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let ids = target.node_ids();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..in_flight.max(1) {
        let addr = target.addr(ids[k % ids.len()]);
        let (next, errors, prefix) = (next.clone(), errors.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr, REQUEST_TIMEOUT).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= topics {
                    return anyhow::Ok(());
                }
                let code = create_topic(&mut conn, &format!("{prefix}{i}"), partitions, rf).await?;
                if code != 0 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let answered_s = started.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    let want = topics - errors;
    let mut conns = connect_all(target).await?;
    for conn in &mut conns {
        while count_listed(conn, &prefix).await? < want {
            if started.elapsed() > GIVE_UP * 5 {
                bail!("{} does not list all {want} topics", conn.addr());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(BulkCreate {
        topics,
        partitions,
        replication_factor: rf,
        in_flight,
        answered_s,
        listed_s: started.elapsed().as_secs_f64(),
        errors,
    })
}

/// The metadata quorum's leader and epoch as the node at `conn` reports it.
async fn describe_quorum(conn: &mut Conn) -> Result<(i32, i32)> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name("__cluster_metadata".into()))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = conn.call(1, &req).await?;
    if resp.error_code != 0 {
        bail!("DescribeQuorum error {}", resp.error_code);
    }
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("DescribeQuorum answer without a partition")?;
    if p.error_code != 0 {
        bail!("DescribeQuorum partition error {}", p.error_code);
    }
    Ok((p.leader_id.0, p.leader_epoch))
}

async fn probe(addr: std::net::SocketAddr) -> Result<(i32, i32)> {
    let mut conn = Conn::connect(addr, PROBE_TIMEOUT).await?;
    describe_quorum(&mut conn).await
}

/// Kill -9 the active controller `trials` times; restart it after each.
pub fn failover(
    rt: &tokio::runtime::Runtime,
    target: &mut dyn ClusterTarget,
    trials: usize,
) -> Result<Failover> {
    let mut times = Vec::new();
    for trial in 0..trials {
        let addrs: Vec<_> = target
            .node_ids()
            .iter()
            .map(|&id| (id, target.addr(id)))
            .collect();
        let (leader, epoch) = rt.block_on(async {
            let deadline = Instant::now() + GIVE_UP;
            loop {
                for &(_, a) in &addrs {
                    if let Ok((l, e)) = probe(a).await {
                        if l >= 0 {
                            return Ok((l, e));
                        }
                    }
                }
                if Instant::now() > deadline {
                    bail!("no metadata quorum leader");
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        })?;
        let survivors: Vec<_> = addrs
            .iter()
            .filter(|(id, _)| *id != leader)
            .map(|x| x.1)
            .collect();
        let killed = Instant::now();
        target.kill(leader)?;
        let ms = rt.block_on(async {
            loop {
                for &a in &survivors {
                    if let Ok((l, e)) = probe(a).await {
                        if l >= 0 && l != leader && e > epoch {
                            return Ok(killed.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                }
                if killed.elapsed() > GIVE_UP {
                    bail!("no new metadata quorum leader after {GIVE_UP:?}");
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        })?;
        eprintln!(
            "[cluster] failover trial {trial}: node {leader} killed, new leader in {ms:.0} ms"
        );
        times.push(ms);
        target.restart(leader)?;
        // Let the restarted node catch up as a voter before the next kill.
        std::thread::sleep(Duration::from_secs(3));
    }
    let mut sorted = times.clone();
    Ok(Failover {
        median_ms: quantile(&mut sorted, 0.5),
        p99_ms: quantile(&mut sorted, 0.99),
        max_ms: quantile(&mut sorted, 1.0),
        trials: times,
    })
}
