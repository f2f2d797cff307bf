//! Replication metrics at `/metrics` on 3 real combined nodes, scraped
//! over HTTP while a broker is killed and restarted:
//!
//! - healthy: no under-replicated or under-min-ISR partition anywhere,
//!   one active controller counting no offline partition, and every
//!   follower replica has its fetcher lag series (followers of a
//!   partition: the two brokers that do not lead it);
//! - node 2 killed (`replica.lag.time.max.ms` shorter than the session,
//!   so the leaders shrink their ISRs themselves): the leaders report the
//!   three `strict` partitions (`min.insync.replicas=3`) under-replicated
//!   and under min ISR, their ISR shrinks are counted, and the active
//!   controller counts `single`'s one partition (only on node 2) offline;
//! - node 2 back: ISR expands counted, nothing under-replicated or
//!   offline, and the fetchers' max lag settles at 0.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::{sb, RawClient};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const LONG: Duration = Duration::from_secs(120);

fn start() -> SluiceCluster {
    let extra = [
        ("broker.session.timeout.ms", "10000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("replica.lag.time.max.ms", "2000"),
        ("auto.leader.rebalance.enable", "false"),
    ];
    SluiceCluster::start(BIN, ClusterLayout::Combined(3), &extra).expect("the cluster starts")
}

fn create_topics(c: &SluiceCluster) {
    let mut raw = RawClient::connect(c.broker_addr(1));
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(sb("strict")))
                .with_num_partitions(3)
                .with_replication_factor(3)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(sb("min.insync.replicas"))
                    .with_value(Some(sb("3")))]),
            CreatableTopic::default()
                .with_name(TopicName(sb("single")))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(2)])]),
        ])
        .with_timeout_ms(30_000);
    let resp = raw.send(7, &req);
    for t in &resp.topics {
        assert_eq!(t.error_code, 0, "{resp:?}");
    }
}

/// One record to each `strict` partition with acks=1, waiting for the
/// acknowledgements (partitions led by the dead node once it is fenced).
fn produce_one_per_partition(c: &SluiceCluster) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let bootstrap = format!("{},{}", c.broker_addr(1), c.broker_addr(3));
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "1")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "100000")
        .create()
        .expect("producer");
    for part in 0..3 {
        p.send(
            BaseRecord::to("strict")
                .partition(part)
                .key("k")
                .payload("v"),
        )
        .map_err(|(e, _)| e)
        .expect("queued");
    }
    p.flush(LONG).expect("every record acknowledged");
}

fn metrics_addr(c: &SluiceCluster, id: i32) -> String {
    let out = c.node(id).process.output();
    out.lines()
        .filter_map(|l| l.strip_prefix("metrics on http://"))
        .filter_map(|l| l.strip_suffix("/metrics"))
        .next_back()
        .unwrap_or_else(|| panic!("node {id} printed no metrics address:\n{out}"))
        .to_string()
}

fn scrape(c: &SluiceCluster, id: i32) -> String {
    let addr = metrics_addr(c, id);
    let mut s = std::net::TcpStream::connect(&addr).expect("connect to metrics");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The samples of `metric`: labels → value.
fn samples(body: &str, metric: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            (name == metric).then(|| (labels.to_string(), value.parse().unwrap()))
        })
        .collect()
}

fn value(body: &str, metric: &str) -> f64 {
    let s = samples(body, metric);
    assert_eq!(s.len(), 1, "{metric}: {s:?}");
    s[""]
}

/// Sum of an unlabelled metric over `nodes`.
fn total(c: &SluiceCluster, nodes: &[i32], metric: &str) -> f64 {
    nodes.iter().map(|&n| value(&scrape(c, n), metric)).sum()
}

fn wait_metadata(c: &SluiceCluster, what: &str, check: impl Fn(&ClusterMetadata) -> bool) {
    let bound = Instant::now() + LONG;
    loop {
        if let Ok(m) = fetch_metadata(
            c.broker_addr(1).parse().unwrap(),
            Some(&["strict", "single"]),
        ) {
            if m.topics.iter().map(|t| t.partitions.len()).sum::<usize>() == 4 && check(&m) {
                return;
            }
        }
        assert!(Instant::now() < bound, "{what}: never");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until `check` holds for the scraped figures.
fn wait_metrics(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let bound = Instant::now() + LONG;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < bound, "{what}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn controller_figures(c: &SluiceCluster, nodes: &[i32]) -> (f64, f64) {
    let mut active = 0.0;
    let mut offline = 0.0;
    for &n in nodes {
        let m = scrape(c, n);
        active += value(&m, "sluice_active_controller");
        offline += value(&m, "sluice_offline_partitions");
    }
    (active, offline)
}

#[test]
fn replication_metrics_follow_a_broker_loss_and_return() {
    let mut c = start();
    create_topics(&c);
    let all = [1, 2, 3];
    wait_metadata(&c, "healthy", |m| {
        m.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
    });
    wait_metrics("healthy figures", || {
        let under = total(&c, &all, "sluice_under_replicated_partitions");
        let below = total(&c, &all, "sluice_under_min_isr_partitions");
        let (active, offline) = controller_figures(&c, &all);
        let lag_series: usize = all
            .iter()
            .map(|&n| samples(&scrape(&c, n), "sluice_replica_fetcher_lag").len())
            .sum();
        if (under, below, active, offline, lag_series) == (0.0, 0.0, 1.0, 0.0, 6) {
            Ok(())
        } else {
            Err(format!(
                "under {under}, below min {below}, active {active}, offline {offline}, lag series {lag_series}"
            ))
        }
    });
    let at_min = total(&c, &all, "sluice_at_min_isr_partitions");
    // strict: ISR 3 = min.insync.replicas 3; single: ISR 1 = min ISR
    // capped at its replication factor 1 (Kafka's effectiveMinIsr).
    assert_eq!(at_min, 4.0);
    let shrinks_before = total(&c, &all, "sluice_isr_shrinks_total");

    c.node_mut(2).process.kill().unwrap();
    let alive = [1, 3];
    // Records the dead follower never fetches: the leaders shrink it out
    // of their ISRs after replica.lag.time.max.ms (an idle follower at
    // the leader's log end stays in sync, as in Kafka, until fenced).
    produce_one_per_partition(&c);
    wait_metadata(&c, "node 2 out of every ISR, single offline", |m| {
        m.topics.iter().all(|t| {
            t.partitions.iter().all(|p| {
                if t.name == "single" {
                    p.leader < 0
                } else {
                    p.leader >= 0 && !p.isr.contains(&2)
                }
            })
        })
    });
    wait_metrics("figures with node 2 down", || {
        let under = total(&c, &alive, "sluice_under_replicated_partitions");
        let below = total(&c, &alive, "sluice_under_min_isr_partitions");
        let (active, offline) = controller_figures(&c, &alive);
        if (under, below, active, offline) == (3.0, 3.0, 1.0, 1.0) {
            Ok(())
        } else {
            Err(format!(
                "under {under}, below min {below}, active {active}, offline {offline}"
            ))
        }
    });
    let shrinks = total(&c, &alive, "sluice_isr_shrinks_total");
    assert!(
        shrinks > 0.0 && shrinks >= shrinks_before,
        "leaders shrank their ISRs: {shrinks_before} → {shrinks}"
    );
    // Node 2 no longer leads anything, so nobody follows it.
    for n in alive {
        let lags = samples(&scrape(&c, n), "sluice_replica_fetcher_lag");
        assert!(
            lags.keys().all(|l| !l.contains("leader=\"2\"")),
            "node {n}: {lags:?}"
        );
    }

    c.node_mut(2).process.restart().unwrap();
    wait_metadata(&c, "node 2 back in every ISR", |m| {
        m.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
    });
    wait_metrics("figures with node 2 back", || {
        let under = total(&c, &all, "sluice_under_replicated_partitions");
        let expands = total(&c, &[1, 3], "sluice_isr_expands_total");
        let (active, offline) = controller_figures(&c, &all);
        let max_lag = total(&c, &all, "sluice_replica_fetcher_max_lag");
        let node2_follows = samples(&scrape(&c, 2), "sluice_replica_fetcher_lag").len();
        if under == 0.0
            && expands > 0.0
            && active == 1.0
            && offline == 0.0
            && max_lag == 0.0
            && node2_follows == 3
        {
            Ok(())
        } else {
            Err(format!(
                "under {under}, expands {expands}, active {active}, offline {offline}, max lag {max_lag}, node 2 follows {node2_follows}"
            ))
        }
    });
}
