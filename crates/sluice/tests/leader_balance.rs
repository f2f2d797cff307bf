//! Automatic preferred leader rebalance (`auto.leader.rebalance.enable`,
//! `leader.imbalance.check.interval.seconds`) on 3 real combined nodes:
//! a broker killed with SIGKILL loses its leaderships; once it is back and
//! in the ISR again, the active controller moves them back to it (the
//! preferred replica, first of each partition's replicas). With the key
//! false, they stay where they went.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{sb, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const LONG: Duration = Duration::from_secs(120);
const TOPIC: &str = "balanced";
const PARTITIONS: i32 = 6;

fn start(auto: &'static str) -> SluiceCluster {
    let extra = [
        ("broker.session.timeout.ms", "6000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("replica.lag.time.max.ms", "6000"),
        ("auto.leader.rebalance.enable", auto),
        ("leader.imbalance.check.interval.seconds", "1"),
    ];
    SluiceCluster::start(BIN, ClusterLayout::Combined(3), &extra).expect("the cluster starts")
}

/// partition → (leader, replicas, isr size).
type Leaders = BTreeMap<i32, (i32, Vec<i32>, usize)>;

fn leaders(m: &ClusterMetadata) -> Leaders {
    m.topics
        .iter()
        .filter(|t| t.name == TOPIC)
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition, (p.leader, p.replicas.clone(), p.isr.len())))
        })
        .collect()
}

/// Polls broker `via`'s Metadata until `check` holds for the topic.
fn wait(c: &SluiceCluster, via: i32, what: &str, check: impl Fn(&Leaders) -> bool) -> Leaders {
    let bound = Instant::now() + LONG;
    let mut last = None;
    loop {
        if let Ok(m) = fetch_metadata(c.broker_addr(via).parse().unwrap(), Some(&[TOPIC])) {
            let l = leaders(&m);
            if l.len() == PARTITIONS as usize && check(&l) {
                return l;
            }
            last = Some(l);
        }
        assert!(Instant::now() < bound, "{what}: never; last: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_preferred_and_in_sync(l: &Leaders) -> bool {
    l.values()
        .all(|(leader, replicas, isr)| replicas.first() == Some(leader) && *isr == 3)
}

fn create_topic(c: &SluiceCluster) {
    let mut raw = RawClient::connect(c.broker_addr(1));
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(3)])
        .with_timeout_ms(30_000);
    let resp = raw.send(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

/// Kills node 2 with SIGKILL, waits until it leads nothing, restarts it
/// and waits until it is back in every ISR. Returns the partitions whose
/// preferred replica is node 2.
fn kill_and_return_node_2(c: &mut SluiceCluster) -> Vec<i32> {
    create_topic(c);
    let before = wait(c, 1, "every partition led by its preferred replica", |l| {
        all_preferred_and_in_sync(l)
    });
    let preferring_2: Vec<i32> = before
        .iter()
        .filter(|(_, (_, r, _))| r[0] == 2)
        .map(|(&p, _)| p)
        .collect();
    assert!(
        !preferring_2.is_empty(),
        "placement gives node 2 leaders: {before:?}"
    );
    c.node_mut(2).process.kill().unwrap();
    wait(c, 1, "node 2's leaderships moved", |l| {
        l.values()
            .all(|(leader, _, _)| *leader >= 0 && *leader != 2)
    });
    c.node_mut(2).process.restart().unwrap();
    wait(c, 1, "node 2 back in every ISR", |l| {
        l.values().all(|(_, _, isr)| *isr == 3)
    });
    preferring_2
}

#[test]
fn leadership_returns_to_the_preferred_replicas_after_a_broker_comes_back() {
    let mut c = start("true");
    kill_and_return_node_2(&mut c);
    let after = wait(&c, 3, "leadership back on the preferred replicas", |l| {
        all_preferred_and_in_sync(l)
    });
    assert!(after.values().all(|(leader, r, _)| *leader == r[0]));
}

#[test]
fn without_auto_leader_rebalance_leadership_stays_where_it_went() {
    let mut c = start("false");
    let preferring_2 = kill_and_return_node_2(&mut c);
    // Several check intervals (1 s) pass: nothing moves back.
    let bound = Instant::now() + Duration::from_secs(6);
    while Instant::now() < bound {
        let l = wait(&c, 3, "metadata", |_| true);
        for p in &preferring_2 {
            assert_ne!(l[p].0, 2, "partition {p} moved back to node 2: {l:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
