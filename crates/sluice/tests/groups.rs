//! Consumer groups against the real `sluice` binary: librdkafka consumers
//! (rdkafka crate) form a group, split partitions, rebalance when members
//! join and leave, commit offsets that survive a clean restart and a kill -9;
//! raw requests check the error codes of bad commits.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(90);
/// Broker settings for fast group formation in tests.
const OVERRIDES: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "200"),
    ("offsets.topic.num.partitions", "5"),
];

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

fn produce(bootstrap: &str, topic: &str, partition: i32, count: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..count {
            let payload = format!("v{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .expect("delivered");
        }
    });
}

fn consumer(bootstrap: &str, group: &str, client_id: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "range")
        .create()
        .expect("consumer")
}

fn assignment(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer until their assignments are a disjoint cover of
/// `0..partitions` in which every consumer owns at least one partition;
/// returns the assignments.
fn wait_for_cover(consumers: &[&BaseConsumer], partitions: i32) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + TIMEOUT;
    let want: BTreeSet<i32> = (0..partitions).collect();
    loop {
        for c in consumers {
            let _ = c.poll(Duration::from_millis(50));
        }
        let sets: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assignment(c)).collect();
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        if union == want && total == partitions as usize && sets.iter().all(|s| !s.is_empty()) {
            return sets;
        }
        assert!(
            Instant::now() < deadline,
            "no disjoint cover of {partitions} partitions by {} consumers: {sets:?}",
            consumers.len()
        );
    }
}

#[test]
fn three_consumers_split_six_partitions_and_rebalance_on_join_and_leave() {
    let broker = start(OVERRIDES);
    let b = broker.bootstrap().to_string();
    create_topic(&b, "orders", 6);

    let c1 = consumer(&b, "g-split", "c1");
    let c2 = consumer(&b, "g-split", "c2");
    let c3 = consumer(&b, "g-split", "c3");
    for c in [&c1, &c2, &c3] {
        c.subscribe(&["orders"]).unwrap();
    }
    let sets = wait_for_cover(&[&c1, &c2, &c3], 6);
    assert!(
        sets.iter().all(|s| s.len() == 2),
        "range over 6/3: {sets:?}"
    );

    // A fourth member joins: everyone rebalances, every partition owned once.
    let c4 = consumer(&b, "g-split", "c4");
    c4.subscribe(&["orders"]).unwrap();
    let sets = wait_for_cover(&[&c1, &c2, &c3, &c4], 6);
    assert_eq!(sets.iter().map(BTreeSet::len).sum::<usize>(), 6);

    // One leaves cleanly (LeaveGroup on close): the other three take over.
    drop(c2);
    let sets = wait_for_cover(&[&c1, &c3, &c4], 6);
    assert!(sets.iter().all(|s| s.len() == 2), "after leave: {sets:?}");
}

/// Consumes `n` messages of partition 0 of `topic` in `group`, committing
/// each synchronously; returns the offsets seen.
fn consume_and_commit(bootstrap: &str, topic: &str, group: &str, n: usize) -> Vec<i64> {
    let c = consumer(bootstrap, group, "committer");
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    while seen.len() < n {
        assert!(Instant::now() < deadline, "consumed only {seen:?}");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                seen.push(m.offset());
                c.commit_message(&m, CommitMode::Sync).expect("commit");
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    seen
}

#[test]
fn committed_offsets_survive_clean_restart_and_kill_9() {
    let mut broker = start(OVERRIDES);
    create_topic(broker.bootstrap(), "events", 1);
    produce(broker.bootstrap(), "events", 0, 100);

    let first = consume_and_commit(broker.bootstrap(), "events", "g-durable", 30);
    assert_eq!(first, (0..30).collect::<Vec<i64>>());

    broker.terminate().expect("clean stop");
    broker.restart().expect("restart");
    let second = consume_and_commit(broker.bootstrap(), "events", "g-durable", 20);
    assert_eq!(
        second,
        (30..50).collect::<Vec<i64>>(),
        "resumes right after the last commit"
    );

    broker.kill().expect("kill -9");
    broker.restart().expect("restart after kill -9");
    let third = consume_and_commit(broker.bootstrap(), "events", "g-durable", 10);
    assert_eq!(third, (50..60).collect::<Vec<i64>>());
}

fn commit_req(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
    metadata: &str,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(sb(metadata)))])])
}

fn committed(client: &mut RawClient, group: &str, topic: &str) -> (i64, String) {
    let resp = client.send(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partition_indexes(vec![0])])),
    );
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn bad_commits_get_kafkas_error_codes_and_leave_state_intact() {
    let broker = start(OVERRIDES);
    create_topic(broker.bootstrap(), "t", 1);
    let mut client = RawClient::connect(broker.bootstrap());

    // The request that creates __consumer_offsets answers 15, as Kafka's does.
    let fc = client.send(3, &FindCoordinatorRequest::default().with_key(sb("g-bad")));
    assert_eq!(
        fc.error_code, 15,
        "the request that creates __consumer_offsets"
    );
    let fc = client.send(3, &FindCoordinatorRequest::default().with_key(sb("g-bad")));
    assert_eq!(fc.error_code, 0);
    assert_eq!(fc.node_id.0, 1);
    let txn = client.send(
        3,
        &FindCoordinatorRequest::default()
            .with_key(sb("txn"))
            .with_key_type(1),
    );
    assert_eq!(txn.error_code, 15, "no transaction coordinator");

    // Join (v3: no member-id round trip) and sync as the only member.
    let join = client.send(
        3,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(sb("g-bad")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(sb(""))
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(bytes::Bytes::from_static(&[
                    0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0,
                ]))]),
    );
    assert_eq!(join.error_code, 0);
    assert_eq!(join.leader, join.member_id);
    let member = join.member_id.to_string();
    let generation = join.generation_id;
    let sync = client.send(
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(sb("g-bad")))
            .with_generation_id(generation)
            .with_member_id(sb(&member))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(sb(&member))
                .with_assignment(bytes::Bytes::from_static(b"a"))]),
    );
    assert_eq!(sync.error_code, 0);
    assert_eq!(&sync.assignment[..], b"a");

    let code =
        |r: kafka_protocol::messages::OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    // A good commit.
    let ok = client.send(8, &commit_req("g-bad", generation, &member, "t", 7, "meta"));
    assert_eq!(code(ok), 0);
    // Stale generation.
    let stale = client.send(
        8,
        &commit_req("g-bad", generation + 1, &member, "t", 99, ""),
    );
    assert_eq!(code(stale), 22, "ILLEGAL_GENERATION");
    // Unknown member.
    let unknown = client.send(8, &commit_req("g-bad", generation, "who", "t", 99, ""));
    assert_eq!(code(unknown), 25, "UNKNOWN_MEMBER_ID");
    // Unknown topic.
    let nt = client.send(
        8,
        &commit_req("g-bad", generation, &member, "no-such-topic", 99, ""),
    );
    assert_eq!(code(nt), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    // Metadata over offset.metadata.max.bytes (4096).
    let huge = "x".repeat(5000);
    let big = client.send(8, &commit_req("g-bad", generation, &member, "t", 99, &huge));
    assert_eq!(code(big), 12, "OFFSET_METADATA_TOO_LARGE");

    assert_eq!(
        committed(&mut client, "g-bad", "t"),
        (7, "meta".to_string())
    );
    // A member commit to a group that does not exist: stale generation, and
    // no group is created by it.
    let ghost = client.send(8, &commit_req("g-ghost", 5, "m", "t", 1, ""));
    assert_eq!(code(ghost), 22, "ILLEGAL_GENERATION");
    // A group that never committed: offset -1.
    assert_eq!(committed(&mut client, "g-none", "t").0, -1);
}

#[test]
fn offsets_per_group_are_independent() {
    let broker = start(OVERRIDES);
    create_topic(broker.bootstrap(), "shared", 1);
    let mut client = RawClient::connect(broker.bootstrap());
    let mut by_group = BTreeMap::new();
    for (i, g) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let r = client.send(8, &commit_req(g, -1, "", "shared", (i as i64 + 1) * 10, g));
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        by_group.insert(*g, (i as i64 + 1) * 10);
    }
    for (g, off) in by_group {
        assert_eq!(committed(&mut client, g, "shared"), (off, g.to_string()));
    }
}

/// Counts rebalance callbacks of one consumer.
struct RebalanceCounter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rdkafka::ClientContext for RebalanceCounter {}

impl rdkafka::consumer::ConsumerContext for RebalanceCounter {
    fn pre_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        _rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn static_consumer(
    bootstrap: &str,
    instance: &str,
) -> (
    BaseConsumer<RebalanceCounter>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "g-static")
        .set("group.instance.id", instance)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "range")
        .create_with_context(RebalanceCounter(count.clone()))
        .expect("static consumer");
    (c, count)
}

fn static_assignment(c: &BaseConsumer<RebalanceCounter>) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

#[test]
fn static_member_restart_rejoins_without_a_rebalance() {
    let broker = start(OVERRIDES);
    let b = broker.bootstrap().to_string();
    create_topic(&b, "static", 4);
    let (s1, s1_rebalances) = static_consumer(&b, "inst-1");
    let (s2, _) = static_consumer(&b, "inst-2");
    s1.subscribe(&["static"]).unwrap();
    s2.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let (a1, a2) = loop {
        let _ = s1.poll(Duration::from_millis(50));
        let _ = s2.poll(Duration::from_millis(50));
        let (a1, a2) = (static_assignment(&s1), static_assignment(&s2));
        if a1.len() == 2 && a2.len() == 2 && a1.is_disjoint(&a2) {
            break (a1, a2);
        }
        assert!(Instant::now() < deadline, "no cover: {a1:?} {a2:?}");
    };
    // Let s1 settle, then remember how many rebalances it has seen.
    for _ in 0..10 {
        let _ = s1.poll(Duration::from_millis(50));
    }
    let before = s1_rebalances.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        before >= 1,
        "the initial assignment is a rebalance callback too"
    );

    // inst-2 restarts: a static member's close sends no LeaveGroup, and its
    // new incarnation takes the old one's place and assignment.
    drop(s2);
    let (s2b, _) = static_consumer(&b, "inst-2");
    s2b.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let _ = s1.poll(Duration::from_millis(50));
        let _ = s2b.poll(Duration::from_millis(50));
        if static_assignment(&s2b) == a2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted static member never got {a2:?}"
        );
    }
    for _ in 0..20 {
        let _ = s1.poll(Duration::from_millis(50));
        let _ = s2b.poll(Duration::from_millis(50));
    }
    assert_eq!(static_assignment(&s1), a1);
    assert_eq!(
        s1_rebalances.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "the other member saw a rebalance"
    );
}

#[test]
fn crashed_member_is_removed_after_its_session_timeout() {
    let broker = start(&[
        ("group.initial.rebalance.delay.ms", "200"),
        ("offsets.topic.num.partitions", "5"),
        ("group.min.session.timeout.ms", "1000"),
    ]);
    let b = broker.bootstrap().to_string();
    create_topic(&b, "crash", 2);
    let a = consumer(&b, "g-crash", "alive");
    a.subscribe(&["crash"]).unwrap();
    let _ = wait_for_cover(&[&a], 2);

    // A second member joins over a raw connection, syncs, and then goes
    // silent as a crashed process would (no heartbeats, no LeaveGroup).
    let b2 = b.clone();
    let crashed = std::thread::spawn(move || {
        let mut client = RawClient::connect(&b2);
        let subscription = bytes::Bytes::from_static(&[
            0, 0, 0, 0, 0, 1, 0, 5, b'c', b'r', b'a', b's', b'h', 0, 0, 0, 0,
        ]);
        let join = client.send(
            3,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(sb("g-crash")))
                .with_session_timeout_ms(2_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(sb(""))
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(sb("range"))
                    .with_metadata(subscription)]),
        );
        assert_eq!(join.error_code, 0);
        let sync = client.send(
            3,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(sb("g-crash")))
                .with_generation_id(join.generation_id)
                .with_member_id(join.member_id.clone()),
        );
        assert_eq!(sync.error_code, 0);
        client
    });
    let deadline = Instant::now() + TIMEOUT;
    while !crashed.is_finished() {
        let _ = a.poll(Duration::from_millis(50));
        assert!(Instant::now() < deadline, "second member never synced");
    }
    // Keep the connection open (the process "hangs"), but silent.
    let _silent = crashed.join().expect("raw member");
    // The live member had to give up a partition...
    let deadline = Instant::now() + TIMEOUT;
    while assignment(&a).len() != 1 {
        let _ = a.poll(Duration::from_millis(50));
        assert!(
            Instant::now() < deadline,
            "never shared: {:?}",
            assignment(&a)
        );
    }
    // ...and gets both back once the silent member's session expires.
    let sets = wait_for_cover(&[&a], 2);
    assert_eq!(sets[0].len(), 2);
}

#[test]
fn cooperative_sticky_members_keep_the_partitions_they_keep() {
    let broker = start(OVERRIDES);
    let b = broker.bootstrap().to_string();
    create_topic(&b, "sticky", 6);
    let mk = |id: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "g-coop")
            .set("client.id", id)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "500")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create()
            .expect("consumer")
    };
    let (c1, c2, c3) = (mk("c1"), mk("c2"), mk("c3"));
    for c in [&c1, &c2, &c3] {
        c.subscribe(&["sticky"]).unwrap();
    }
    let before = wait_for_cover(&[&c1, &c2, &c3], 6);
    let c4 = mk("c4");
    c4.subscribe(&["sticky"]).unwrap();
    let after = wait_for_cover(&[&c1, &c2, &c3, &c4], 6);
    for (old, new) in before.iter().zip(&after) {
        assert!(
            new.is_subset(old),
            "a member gained or swapped partitions: {old:?} -> {new:?}"
        );
    }
    assert_eq!(
        after[3].len(),
        6 - after[..3].iter().map(BTreeSet::len).sum::<usize>()
    );
}
