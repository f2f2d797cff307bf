//! Three controller-only `sluice serve` processes (`process.roles=controller`,
//! formatted with `sluice storage format`) on loopback form a metadata
//! quorum:
//! - a test broker registers through `ControllerChannel` (which follows
//!   NOT_CONTROLLER) and CreateTopics sent over Kafka's protocol commits;
//! - the active controller is killed with SIGKILL 20 times in a row and
//!   restarted each time: a new active controller every time (found with
//!   DescribeCluster and DescribeQuorum over the controller listener), a
//!   topic created after each kill, none lost (a validate-only CreateTopics
//!   of every earlier topic answers TOPIC_ALREADY_EXISTS), and at the end
//!   the leader's DescribeQuorum shows every voter at the high watermark
//!   and a clean stop of each node reports the same applied metadata
//!   offset and image digest (crc32c of its canonical bytes). The failover times are printed (median, p99), not asserted;
//! - Kafka's own `kafka-metadata-quorum --bootstrap-controller` (4.1.2
//!   jars) describes the quorum's status and replication, when java and
//!   the jars are there;
//! - a node formatted with another cluster id (it asks the running voters
//!   with DescribeCluster), or started with a node id that is already
//!   running (it cannot bind its twin's voter address), is refused with a
//!   clear log line, and the quorum keeps every topic; the real node
//!   rejoins and catches up; a broker that dies is fenced by the active
//!   controller's session check (the time is printed).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeClusterRequest, DescribeQuorumRequest, DescribeQuorumResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::record::BrokerEndpoint;
use sluice_storage::{Clock, SystemClock};
use sluice_testkit::SluiceProcess;
use sluice_transport::{
    BrokerLifecycleManager, BrokerState, ChannelConfig, ControllerChannel, LifecycleConfig,
    QuorumVoters,
};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
/// Generous bound for anything the quorum must do on a busy 2-core box.
const LONG: Duration = Duration::from_secs(60);
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_REPLICATION_FACTOR: i16 = 38;
/// `broker.session.timeout.ms` of the refusal test, whose broker dies.
const SESSION_MS: u32 = 6000;

struct Quorum {
    _tmp: tempfile::TempDir,
    session_ms: u32,
    cluster_id: String,
    voters: String,
    ports: Vec<u16>,
    nodes: Vec<SluiceProcess>,
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn node_overrides(
    id: i32,
    port: u16,
    voters: &str,
    dir: &Path,
    session_ms: u32,
) -> Vec<(String, String)> {
    vec![
        ("process.roles".into(), "controller".into()),
        ("node.id".into(), id.to_string()),
        ("controller.quorum.voters".into(), voters.into()),
        ("controller.listener.names".into(), "CONTROLLER".into()),
        ("listeners".into(), format!("CONTROLLER://127.0.0.1:{port}")),
        ("log.dirs".into(), dir.display().to_string()),
        ("broker.session.timeout.ms".into(), session_ms.to_string()),
    ]
}

fn format(cluster_id: &str, overrides: &[(String, String)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["storage", "format", "-t", cluster_id]);
    for (k, v) in overrides {
        cmd.arg("--override").arg(format!("{k}={v}"));
    }
    cmd.output().expect("run sluice storage format")
}

fn start(dir: &Path, overrides: &[(String, String)]) -> Result<SluiceProcess, String> {
    let o: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    SluiceProcess::start_in(BIN, dir, &o).map_err(|e| e.to_string())
}

impl Quorum {
    fn start(session_ms: u32) -> Quorum {
        let tmp = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["storage", "random-uuid"])
            .output()
            .unwrap();
        let cluster_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let ports = free_ports(3);
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut q = Quorum {
            _tmp: tmp,
            session_ms,
            cluster_id,
            voters,
            ports,
            nodes: Vec::new(),
        };
        for id in 1..=3 {
            let o = q.overrides(id);
            let f = format(&q.cluster_id, &o);
            assert!(f.status.success(), "format node {id}: {f:?}");
        }
        // Start every node before waiting on any (each waits only for its
        // own listening line, which comes before the quorum forms).
        for id in 1..=3 {
            let node = start(&q.dir(id), &q.overrides(id)).expect("controller starts");
            q.nodes.push(node);
        }
        q
    }

    fn dir(&self, id: i32) -> PathBuf {
        self._tmp.path().join(format!("node-{id}"))
    }

    fn overrides(&self, id: i32) -> Vec<(String, String)> {
        node_overrides(
            id,
            self.ports[id as usize - 1],
            &self.voters,
            &self.dir(id),
            self.session_ms,
        )
    }

    fn channel(&self) -> Arc<ControllerChannel> {
        Arc::new(ControllerChannel::new(
            QuorumVoters::parse(&self.voters).unwrap(),
            channel_config(),
        ))
    }

    /// A channel to one voter only (to ask that node).
    fn channel_to(&self, id: i32) -> ControllerChannel {
        let port = self.ports[id as usize - 1];
        ControllerChannel::new(
            QuorumVoters::parse(&format!("{id}@127.0.0.1:{port}")).unwrap(),
            ChannelConfig {
                request_timeout_ms: 3000,
                ..channel_config()
            },
        )
    }
}

fn channel_config() -> ChannelConfig {
    ChannelConfig {
        request_timeout_ms: 5000,
        retry_backoff_ms: 10,
        retry_backoff_max_ms: 200,
        ..ChannelConfig::default()
    }
}

fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
}

/// The DescribeQuorum answer of node `id` if it answers as the leader.
async fn leader_view(q: &Quorum, id: i32) -> Option<DescribeQuorumResponse> {
    let ch = q.channel_to(id);
    let resp = ch
        .send(&describe_quorum_request(), Duration::from_secs(3))
        .await
        .ok()?;
    let p = &resp.topics.first()?.partitions.first()?;
    (p.error_code == 0 && p.leader_id.0 == id).then_some(resp)
}

/// Polls the live nodes until one answers DescribeQuorum as the leader.
async fn wait_for_leader(q: &Quorum, live: &[i32]) -> (i32, DescribeQuorumResponse) {
    let bound = Instant::now() + LONG;
    loop {
        for &id in live {
            if let Some(r) = leader_view(q, id).await {
                return (id, r);
            }
        }
        assert!(
            Instant::now() < bound,
            "no active controller among {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn topic(name: &str) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(2)
        .with_replication_factor(1)
}

async fn create_topic(ch: &ControllerChannel, name: &str) {
    let bound = Instant::now() + LONG;
    loop {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic(name)])
            .with_timeout_ms(30_000);
        match ch.send(&req, LONG).await {
            Ok(r) if r.topics[0].error_code == 0 => return,
            // An uncertain commit during failover may have committed it.
            Ok(r) if r.topics[0].error_code == TOPIC_ALREADY_EXISTS => return,
            other => {
                assert!(Instant::now() < bound, "creating {name}: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Every topic in `names` exists: a validate-only CreateTopics answers
/// TOPIC_ALREADY_EXISTS for each.
async fn assert_all_exist(ch: &ControllerChannel, names: &[String]) {
    let req = CreateTopicsRequest::default()
        .with_topics(names.iter().map(|n| topic(n)).collect())
        .with_validate_only(true)
        .with_timeout_ms(30_000);
    let r = ch
        .send(&req, LONG)
        .await
        .expect("validate-only CreateTopics");
    for t in &r.topics {
        assert_eq!(
            t.error_code, TOPIC_ALREADY_EXISTS,
            "topic {:?} lost: {t:?}",
            t.name.0
        );
    }
    assert_eq!(r.topics.len(), names.len());
}

/// A broker in the test process, so the controllers have somewhere to
/// place partitions.
fn test_broker(q: &Quorum, channel: Arc<ControllerChannel>) -> Arc<BrokerLifecycleManager> {
    let config = LifecycleConfig {
        node_id: 100,
        cluster_id: q.cluster_id.clone(),
        incarnation_id: uuid::Uuid::new_v4(),
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9,
            security_protocol: 0,
        }],
        features: Vec::new(),
        rack: None,
        log_dirs: vec![uuid::Uuid::new_v4()],
        heartbeat_interval_ms: 200,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // It replays no metadata: it reports itself caught up.
    BrokerLifecycleManager::new(config, channel, clock, Arc::new(|| i64::MAX))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Every voter's log end offset equals the high watermark (leader's view).
fn all_caught_up(r: &DescribeQuorumResponse) -> bool {
    let p = &r.topics[0].partitions[0];
    p.current_voters.len() == 3
        && p.current_voters
            .iter()
            .all(|v| v.log_end_offset == p.high_watermark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_form_a_quorum_and_survive_20_kills_of_the_active_one() {
    // The test broker must stay unfenced through 20 failovers.
    let mut q = Quorum::start(120_000);
    let channel = q.channel();
    let broker = test_broker(&q, channel.clone());
    broker.start();
    let mut status = broker.subscribe();
    tokio::time::timeout(LONG, status.wait_for(|s| s.state == BrokerState::Running))
        .await
        .expect("the test broker was never unfenced")
        .unwrap();

    // (a) A CreateTopics over Kafka's protocol commits.
    let mut created = vec!["before-kills".to_string()];
    create_topic(&channel, &created[0]).await;
    assert_all_exist(&channel, &created).await;

    // DescribeCluster (controller endpoints) names the active controller.
    let dc = q
        .channel_to(1)
        .send(
            &DescribeClusterRequest::default().with_endpoint_type(2),
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(dc.error_code, 0, "{dc:?}");
    assert_eq!(dc.cluster_id.as_str(), q.cluster_id);
    assert_eq!(dc.brokers.len(), 3);

    // (b) 20 kills of the active controller.
    let mut failovers = Vec::new();
    for round in 0..20 {
        let (leader, _) = wait_for_leader(&q, &[1, 2, 3]).await;
        // Kill only a leader whose followers have everything (so the round
        // tests failover, not a lagging restart).
        let bound = Instant::now() + LONG;
        loop {
            if let Some(r) = leader_view(&q, leader).await {
                if all_caught_up(&r) {
                    break;
                }
            }
            assert!(Instant::now() < bound, "followers never caught up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = leader_view(&q, leader)
            .await
            .map(|r| r.topics[0].partitions[0].leader_epoch);
        q.nodes[leader as usize - 1].kill().unwrap();
        let killed_at = Instant::now();
        let live: Vec<i32> = (1..=3).filter(|&i| i != leader).collect();
        let (new_leader, r) = wait_for_leader(&q, &live).await;
        let took = killed_at.elapsed();
        failovers.push(took);
        let epoch = r.topics[0].partitions[0].leader_epoch;
        assert_ne!(new_leader, leader);
        if let Some(old) = before {
            assert!(epoch > old, "epoch {epoch} after {old}");
        }
        eprintln!("round {round}: killed {leader}, node {new_leader} active at epoch {epoch} after {took:?}");
        let name = format!("after-kill-{round}");
        create_topic(&channel, &name).await;
        created.push(name);
        assert_all_exist(&channel, &created).await;
        q.nodes[leader as usize - 1]
            .restart()
            .expect("the killed controller restarts");
    }
    failovers.sort();
    eprintln!(
        "failover after kill -9 of the active controller ({} rounds): median {:?}, p99 {:?}, max {:?}",
        failovers.len(),
        percentile(&failovers, 0.5),
        percentile(&failovers, 0.99),
        failovers.last().unwrap()
    );

    // Every voter reaches the same log end, the high watermark.
    let bound = Instant::now() + LONG;
    let final_view = loop {
        let (leader, r) = wait_for_leader(&q, &[1, 2, 3]).await;
        if all_caught_up(&r) {
            eprintln!(
                "final quorum (leader {leader}): {:?}",
                r.topics[0].partitions[0]
            );
            break r;
        }
        assert!(Instant::now() < bound, "voters never converged: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_all_exist(&channel, &created).await;
    kafka_metadata_quorum(&q, &final_view);

    broker.stop().await;
    settle(&q).await;
    // A clean stop reports the applied metadata offset and the image's
    // digest: the same on all three.
    let mut applied = Vec::new();
    for n in &mut q.nodes {
        let status = n.terminate().unwrap();
        assert!(status.success(), "{}", n.output());
        let out = n.output();
        let line = out
            .lines()
            .rev()
            .find(|l| l.contains("controller stopped"))
            .unwrap_or_else(|| panic!("no stop line: {out}"))
            .to_string();
        let field = |key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {key} in {line}"))
                .to_string()
        };
        applied.push((field("last_offset="), field("image_crc32c=")));
    }
    eprintln!("applied (last offset, image crc32c) per node at clean stop: {applied:?}");
    assert!(applied.windows(2).all(|w| w[0] == w[1]), "{applied:?}");
}

/// Waits until every voter holds the high watermark and has fetched
/// twice more since (so each follower has heard the commit index that
/// covers it, and applies everything before it is stopped).
async fn settle(q: &Quorum) {
    let bound = Instant::now() + LONG;
    let caught_up_at = loop {
        let (_, r) = wait_for_leader(q, &[1, 2, 3]).await;
        if all_caught_up(&r) {
            let p = &r.topics[0].partitions[0];
            break p
                .current_voters
                .iter()
                .map(|v| v.last_fetch_timestamp)
                .max()
                .unwrap();
        }
        assert!(Instant::now() < bound, "voters never caught up: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut seen = 0;
    while seen < 2 {
        let (_, r) = wait_for_leader(q, &[1, 2, 3]).await;
        let p = &r.topics[0].partitions[0];
        let oldest = p
            .current_voters
            .iter()
            .map(|v| v.last_fetch_timestamp)
            .min()
            .unwrap();
        if oldest > caught_up_at {
            seen += 1;
        }
        assert!(Instant::now() < bound, "followers stopped fetching: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn java_ready() -> bool {
    let jars = common::root().join(".cache/kafka/lib/.complete");
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if jars.exists() && java {
        return true;
    }
    if common::env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!(
            "kafka-metadata-quorum needs java and the Kafka jars (SLUICE_REQUIRE_CLIENTS is set)"
        );
    }
    eprintln!("\n\n!!! SKIPPED kafka-metadata-quorum --bootstrap-controller: needs java and .cache/kafka/lib; run scripts/setup !!!\n");
    false
}

/// Kafka's MetadataQuorumCommand with `--bootstrap-controller` against the
/// quorum, bootstrapped at a follower: the status names the cluster, the
/// leader and the voters, and replication lists the three voters, one of
/// them the leader.
fn kafka_metadata_quorum(q: &Quorum, view: &DescribeQuorumResponse) {
    if !java_ready() {
        return;
    }
    // Bootstrap at a follower: the tool must find the active controller
    // through DescribeCluster and ask it.
    let leader = view.topics[0].partitions[0].leader_id.0;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let bootstrap = format!("127.0.0.1:{}", q.ports[follower as usize - 1]);
    let run = |what: &str| {
        let out = Command::new("java")
            .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                common::root()
                    .join("clients/java/log4j.properties")
                    .display()
            ))
            .arg("-cp")
            .arg(common::root().join(".cache/kafka/lib/*"))
            .arg("org.apache.kafka.tools.MetadataQuorumCommand")
            .args(["--bootstrap-controller", &bootstrap, "describe", what])
            .output()
            .expect("run java");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kafka-metadata-quorum describe {what}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let p = &view.topics[0].partitions[0];
    let status = run("--status");
    eprintln!("kafka-metadata-quorum describe --status:\n{status}");
    assert!(
        status.contains(&format!("ClusterId:              {}", q.cluster_id)),
        "{status}"
    );
    assert!(
        status.contains(&format!("LeaderId:               {}", p.leader_id.0)),
        "{status}"
    );
    assert!(status.contains("CurrentVoters:"), "{status}");
    for id in 1..=3 {
        assert!(status.contains(&format!("\"id\": {id}")), "{status}");
    }
    let replication = run("--replication");
    eprintln!("kafka-metadata-quorum describe --replication:\n{replication}");
    let rows: Vec<&str> = replication
        .lines()
        .filter(|l| l.contains("Leader") || l.contains("Follower"))
        .collect();
    assert_eq!(rows.len(), 3, "{replication}");
    assert_eq!(
        rows.iter().filter(|l| l.contains("Leader")).count(),
        1,
        "{replication}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_id_or_a_duplicate_node_id_is_refused() {
    let mut q = Quorum::start(SESSION_MS);
    let channel = q.channel();
    let broker = test_broker(&q, channel.clone());
    broker.start();
    let mut status = broker.subscribe();
    tokio::time::timeout(LONG, status.wait_for(|s| s.state == BrokerState::Running))
        .await
        .expect("the test broker was never unfenced")
        .unwrap();
    let mut created = vec!["kept-1".to_string()];
    create_topic(&channel, &created[0]).await;

    // A duplicate node id: a second node 2 (its own dirs, formatted for
    // node 2) while node 2 runs cannot take node 2's voter address.
    let dup_dir = q._tmp.path().join("dup-2");
    let dup = node_overrides(2, q.ports[1], &q.voters, &dup_dir, SESSION_MS);
    let f = format(&q.cluster_id, &dup);
    assert!(f.status.success(), "{f:?}");
    let err = start(&dup_dir, &dup)
        .err()
        .expect("a duplicate node 2 is refused");
    assert!(
        err.contains("cannot bind the controller listener") && err.contains("node.id=2"),
        "{err}"
    );

    // A wrong cluster id: node 3 is stopped, and a node 3 formatted for
    // another cluster is started in its place. It asks the running voters
    // for their cluster id and refuses to start, before it writes or
    // sends anything to the quorum.
    q.nodes[2].terminate().unwrap();
    let wrong_dir = q._tmp.path().join("wrong-3");
    let wrong = node_overrides(3, q.ports[2], &q.voters, &wrong_dir, SESSION_MS);
    let out = Command::new(BIN)
        .args(["storage", "random-uuid"])
        .output()
        .unwrap();
    let other = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let f = format(&other, &wrong);
    assert!(f.status.success(), "{f:?}");
    let err = start(&wrong_dir, &wrong)
        .err()
        .expect("a node of another cluster is refused");
    assert!(
        err.contains(&format!(
            "belongs to cluster {}, but this node's meta.properties name cluster {other}",
            q.cluster_id
        )),
        "{err}"
    );
    // The quorum keeps its topics and still commits.
    let name = "kept-2".to_string();
    create_topic(&channel, &name).await;
    created.push(name);
    assert_all_exist(&channel, &created).await;

    // The real node 3 comes back, catches up, and has everything.
    q.nodes[2].restart().unwrap();
    let bound = Instant::now() + LONG;
    loop {
        let (_, r) = wait_for_leader(&q, &[1, 2, 3]).await;
        if all_caught_up(&r) {
            break;
        }
        assert!(Instant::now() < bound, "node 3 never caught up: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_all_exist(&channel, &created).await;

    // The broker dies (no controlled shutdown): the active controller's
    // periodic check fences it once its session expires, and with no
    // unfenced broker left a new topic cannot be placed.
    broker.stop().await;
    let died = Instant::now();
    let bound = died + LONG;
    loop {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic("after-death")])
            .with_validate_only(true)
            .with_timeout_ms(30_000);
        let r = channel.send(&req, LONG).await.unwrap();
        if r.topics[0].error_code == INVALID_REPLICATION_FACTOR {
            break;
        }
        assert_eq!(r.topics[0].error_code, 0, "{r:?}");
        assert!(Instant::now() < bound, "the dead broker was never fenced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "dead broker fenced {:?} after its last heartbeat (broker.session.timeout.ms={SESSION_MS})",
        died.elapsed()
    );
}
