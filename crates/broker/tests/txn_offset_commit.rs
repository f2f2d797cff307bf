//! Transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447) through
//! the group coordinator, in process over the simulated file system: the
//! offsets are written as one transactional batch of the producer, are
//! invisible to OffsetFetch (and UNSTABLE_OFFSET_COMMIT with
//! `require_stable`) until the transaction's marker, committed or dropped
//! then, fenced by member and producer epoch as Kafka fences them, and
//! after a restart the log (with markers written to it directly) gives the
//! same state, transactions without a marker still pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_broker::group::consumer::{Assignment, HeartbeatRequest};
use sluice_broker::group::{
    CommitRequest, GroupCoordinator, GroupError, JoinRequest, TxnCommitter, OFFSETS_TOPIC,
};
use sluice_broker::handlers::consumer_group_heartbeat::topics_view;
use sluice_broker::{Broker, BrokerConfig};
use sluice_record::{
    BatchBuilder, BatchHeader, Batches, CompressionType, ProducerEpoch, ProducerId, Timestamp,
};
use sluice_storage::{Clock, Fs, ManualClock, SimFs, TopicPartition};

const DIR: &str = "/sim/data";

async fn start(fs: &Arc<SimFs>, clock: &Arc<ManualClock>) -> Broker {
    start_with(fs, clock, &[]).await
}

async fn start_with(fs: &Arc<SimFs>, clock: &Arc<ManualClock>, extra: &[(&str, &str)]) -> Broker {
    let mut all = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", DIR),
        ("offsets.topic.num.partitions", "3"),
        ("group.initial.rebalance.delay.ms", "0"),
        // The manual clock does not move with real time; see
        // group_coordinator.rs.
        ("broker.session.timeout.ms", "600000"),
    ];
    all.extend_from_slice(extra);
    let config = BrokerConfig::with_overrides(&all).unwrap();
    let fs: Arc<dyn Fs> = fs.clone();
    let clock: Arc<dyn Clock> = clock.clone();
    Broker::start(config, fs, clock).await.unwrap()
}

/// Creates the offsets topic if needed and waits until `group`'s partition
/// is loaded.
async fn ready(broker: &Broker, group: &str) {
    let ctx = broker.context();
    ctx.groups.ensure_offsets_topic(ctx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ctx.groups.check_ready(group) {
            Ok(()) => return,
            Err(GroupError::CoordinatorLoadInProgress) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(Instant::now() < deadline, "never loaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A producer outside group management (TxnOffsetCommit v0–v2, or v3 with
/// generation -1).
fn producer(pid: i64, epoch: i16) -> TxnCommitter {
    TxnCommitter {
        transactional_id: format!("tx-{pid}"),
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(epoch),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
    }
}

fn offsets(list: &[(&str, i32, i64)]) -> Vec<CommitRequest> {
    list.iter()
        .map(|&(topic, partition, offset)| CommitRequest {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: 2,
            metadata: format!("m{offset}"),
        })
        .collect()
}

fn committed(groups: &GroupCoordinator, group: &str, topic: &str, p: i32) -> Option<i64> {
    groups
        .fetch_offsets(group, Some(vec![(topic.into(), p)]))
        .unwrap()[0]
        .2
        .as_ref()
        .map(|v| v.offset)
}

/// OffsetFetch with `require_stable`.
fn stable(
    groups: &GroupCoordinator,
    group: &str,
    topic: &str,
    p: i32,
) -> Result<Option<i64>, GroupError> {
    let rows = groups
        .fetch_offsets_stable(group, Some(vec![(topic.into(), p)]), true)
        .unwrap();
    rows[0].2.clone().map(|v| v.map(|v| v.offset))
}

/// The headers of every batch in `group`'s partition of `__consumer_offsets`.
fn batches(broker: &Broker, group: &str) -> Vec<BatchHeader> {
    let p = broker.context().groups.partition_for(group);
    let part = broker
        .context()
        .replicas
        .get_partition(&TopicPartition::new(OFFSETS_TOPIC, p))
        .unwrap();
    let log = part.log();
    let buf = log.read_to_vec(log.log_start_offset(), 64 << 20).unwrap();
    Batches::without_crc(&buf).map(|b| b.unwrap().1).collect()
}

/// Appends a transaction marker of `pid` to `group`'s partition of
/// `__consumer_offsets` directly with the record builder (a control batch:
/// transactional and control, one record whose key is version 0 and type
/// COMMIT or ABORT, value version 0 and coordinator epoch 0), the way the
/// partition leader writes one for WriteTxnMarkers.
fn write_marker(broker: &Broker, group: &str, pid: i64, epoch: i16, commit: bool) {
    let p = broker.context().groups.partition_for(group);
    let part = broker
        .context()
        .replicas
        .get_partition(&TopicPartition::new(OFFSETS_TOPIC, p))
        .unwrap();
    let log = part.log();
    let mut b = BatchBuilder::new(CompressionType::None)
        .base_offset(log.log_end_offset())
        .partition_leader_epoch(part.leader_epoch())
        .producer(ProducerId(pid), ProducerEpoch(epoch), -1)
        .transactional(true)
        .control(true);
    b.append(
        Timestamp(now()),
        Some(&[0, 0, 0, u8::from(commit)]),
        Some(&[0, 0, 0, 0, 0, 0]),
        &[],
    )
    .unwrap();
    log.append_as_follower(&b.build().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_offset_commit_is_invisible_until_its_commit_marker_and_dropped_on_abort() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let groups = broker.context().groups.clone();
    ready(&broker, "g").await;
    let part = groups.partition_for("g");

    groups
        .commit_transactional_offsets("g", &producer(100, 0), offsets(&[("t", 0, 42)]))
        .await
        .unwrap();
    // One transactional batch of the producer, base sequence -1.
    let last = batches(&broker, "g").pop().expect("a batch");
    assert!(last.is_transactional() && !last.is_control());
    assert_eq!(last.producer_id, ProducerId(100));
    assert_eq!(last.producer_epoch, ProducerEpoch(0));
    assert_eq!(last.base_sequence, -1);
    assert_eq!(last.record_count, 1);
    // Pending: invisible, and unstable for require_stable.
    assert_eq!(committed(&groups, "g", "t", 0), None);
    assert_eq!(
        stable(&groups, "g", "t", 0),
        Err(GroupError::UnstableOffsetCommit)
    );
    assert_eq!(stable(&groups, "g", "t", 1), Ok(None));
    // The group exists (an empty group without protocol, as Kafka creates).
    assert!(groups.list_groups().iter().any(|l| l.group_id == "g"));

    // A marker of another producer, or in another partition, changes nothing.
    groups
        .complete_transaction(part, ProducerId(7), true)
        .unwrap();
    groups
        .complete_transaction((part + 1) % 3, ProducerId(100), true)
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 0), None);

    groups
        .complete_transaction(part, ProducerId(100), true)
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 0), Some(42));
    assert_eq!(stable(&groups, "g", "t", 0), Ok(Some(42)));
    assert!(groups.pending_offsets("g").unwrap().is_empty());

    // Aborted: dropped, the committed offset stays.
    groups
        .commit_transactional_offsets(
            "g",
            &producer(101, 0),
            offsets(&[("t", 0, 77), ("u", 3, 1)]),
        )
        .await
        .unwrap();
    assert_eq!(
        stable(&groups, "g", "u", 3),
        Err(GroupError::UnstableOffsetCommit)
    );
    groups
        .complete_transaction(part, ProducerId(101), false)
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 0), Some(42));
    assert_eq!(committed(&groups, "g", "u", 3), None);
    assert_eq!(stable(&groups, "g", "u", 3), Ok(None));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_commit_later_in_the_log_wins_over_a_committed_transaction() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let groups = broker.context().groups.clone();
    ready(&broker, "g").await;
    let part = groups.partition_for("g");

    // Something in the log first, so no record of the test is at offset 0.
    groups
        .commit_offsets("g", "", None, -1, None, offsets(&[("z", 0, 1)]))
        .await
        .unwrap();
    // Transactional first, then a plain commit of t-0: the plain one is
    // later in the log and stays; t-1 only the transaction wrote.
    groups
        .commit_transactional_offsets(
            "g",
            &producer(200, 0),
            offsets(&[("t", 0, 50), ("t", 1, 51)]),
        )
        .await
        .unwrap();
    groups
        .commit_offsets("g", "", None, -1, None, offsets(&[("t", 0, 60)]))
        .await
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 0), Some(60));
    groups
        .complete_transaction(part, ProducerId(200), true)
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 0), Some(60));
    assert_eq!(committed(&groups, "g", "t", 1), Some(51));

    // Plain first, then transactional: the transaction's offset wins.
    groups
        .commit_offsets("g", "", None, -1, None, offsets(&[("t", 2, 5)]))
        .await
        .unwrap();
    groups
        .commit_transactional_offsets("g", &producer(201, 0), offsets(&[("t", 2, 6)]))
        .await
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 2), Some(5));
    groups
        .complete_transaction(part, ProducerId(201), true)
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 2), Some(6));
    broker.shutdown().await.unwrap();
}

/// A static member `inst-a` of classic group `group`, Stable in generation
/// 1: its member id.
async fn static_member(groups: &GroupCoordinator, group: &str) -> String {
    let join = groups
        .join(
            group,
            JoinRequest {
                member_id: String::new(),
                group_instance_id: Some("inst-a".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 45_000,
                rebalance_timeout_ms: 60_000,
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), Bytes::new())],
                require_known_member_id: false,
            },
        )
        .await;
    assert_eq!(join.error, None, "{join:?}");
    assert_eq!(join.generation_id, 1);
    let sync = groups
        .sync(
            group,
            &join.member_id,
            Some("inst-a"),
            1,
            None,
            None,
            vec![(join.member_id.clone(), Bytes::from_static(b"a"))],
        )
        .await;
    assert_eq!(sync.error, None);
    join.member_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_producers_are_fenced_as_kafka_fences_transactional_commits() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let ctx = broker.context();
    let groups = ctx.groups.clone();
    for g in ["new", "classic", "cg"] {
        ready(&broker, g).await;
    }
    let one = || offsets(&[("t", 0, 1)]);
    // Each accepted commit comes from its own producer: until the log
    // checks a coordinator's batch by epoch only, a second batch of one
    // producer epoch with sequence -1 in a partition is refused.
    let mut pid = 300;
    let mut next = || {
        pid += 1;
        pid
    };

    // A group that does not exist: only a committer outside group
    // management creates it.
    let member_of_nothing = TxnCommitter {
        generation_id: 1,
        member_id: "m".into(),
        ..producer(next(), 0)
    };
    assert_eq!(
        groups
            .commit_transactional_offsets("new", &member_of_nothing, one())
            .await,
        Err(GroupError::IllegalGeneration)
    );
    assert!(groups.pending_offsets("new").unwrap().is_empty());
    groups
        .commit_transactional_offsets("new", &producer(next(), 0), one())
        .await
        .unwrap();
    assert_eq!(
        groups
            .commit_transactional_offsets("", &producer(next(), 0), one())
            .await,
        Err(GroupError::InvalidGroupId)
    );

    // A classic group with the static member inst-a (KIP-447, v3+).
    let a = static_member(&groups, "classic").await;
    let member =
        |generation: i32, member_id: &str, instance: Option<&str>, pid: i64| TxnCommitter {
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            ..producer(pid, 0)
        };
    let cases = [
        (member(1, &a, Some("inst-a"), next()), Ok(())),
        (member(1, &a, None, next()), Ok(())),
        (
            member(2, &a, Some("inst-a"), next()),
            Err(GroupError::IllegalGeneration),
        ),
        (
            member(0, &a, None, next()),
            Err(GroupError::IllegalGeneration),
        ),
        (
            member(1, "ghost", None, next()),
            Err(GroupError::UnknownMemberId),
        ),
        (
            member(1, "ghost", Some("inst-a"), next()),
            Err(GroupError::FencedInstanceId),
        ),
        (
            member(1, &a, Some("inst-b"), next()),
            Err(GroupError::UnknownMemberId),
        ),
        (
            member(-1, "", Some("inst-a"), next()),
            Err(GroupError::FencedInstanceId),
        ),
        // Outside group management (v0–v2): accepted even though the group
        // has members, unlike OffsetCommit.
        (member(-1, "", None, next()), Ok(())),
    ];
    for (committer, want) in cases {
        let got = groups
            .commit_transactional_offsets("classic", &committer, one())
            .await;
        assert_eq!(got, want, "{committer:?}");
    }

    // A consumer group (KIP-848): the member epoch, and a stale one is
    // ILLEGAL_GENERATION for a transactional commit.
    let beat = groups
        .consumer_heartbeat(
            "cg",
            HeartbeatRequest {
                member_id: "m1".into(),
                member_epoch: 0,
                rebalance_timeout_ms: 30_000,
                subscribed_topic_names: Some(vec!["t".into()]),
                owned: Some(Assignment::new()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                ..HeartbeatRequest::default()
            },
            &topics_view(ctx),
        )
        .await
        .unwrap();
    let epoch = beat.member_epoch;
    assert!(epoch > 0);
    let cases = [
        (member(epoch, "m1", None, next()), Ok(())),
        (
            member(epoch - 1, "m1", None, next()),
            Err(GroupError::IllegalGeneration),
        ),
        (
            member(epoch, "m2", None, next()),
            Err(GroupError::UnknownMemberId),
        ),
        (
            member(-1, "", None, next()),
            Err(GroupError::UnknownMemberId),
        ),
    ];
    for (committer, want) in cases {
        let got = groups
            .commit_transactional_offsets("cg", &committer, one())
            .await;
        assert_eq!(got, want, "{committer:?}");
    }

    // The producer epoch: the log refuses an older epoch of the producer.
    groups
        .commit_transactional_offsets("new", &producer(900, 1), offsets(&[("t", 5, 10)]))
        .await
        .unwrap();
    assert_eq!(
        groups
            .commit_transactional_offsets("new", &producer(900, 0), offsets(&[("t", 5, 11)]))
            .await,
        Err(GroupError::InvalidProducerEpoch)
    );
    let pending = groups.pending_offsets("new").unwrap();
    assert_eq!(
        pending.get(ProducerId(900), "t", 5).map(|p| p.value.offset),
        Some(10),
        "the fenced commit left nothing behind"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_transactions_from_the_log_with_their_markers() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let groups = broker.context().groups.clone();
    ready(&broker, "g").await;
    ready(&broker, "h").await;
    let part = groups.partition_for("g");

    // A group that only an open transaction made.
    groups
        .commit_transactional_offsets("h", &producer(5, 0), offsets(&[("e", 0, 50)]))
        .await
        .unwrap();
    // P1 commits (its marker written to the log, then the coordinator
    // told, as WriteTxnMarkers will), P2 aborts, P3 has no marker yet.
    for (pid, t, offset) in [(1, "a", 10), (2, "b", 20), (3, "c", 30)] {
        groups
            .commit_transactional_offsets("g", &producer(pid, 4), offsets(&[(t, 0, offset)]))
            .await
            .unwrap();
    }
    // A plain commit after P1's offset of a-0, before P1's marker.
    groups
        .commit_offsets(
            "g",
            "",
            None,
            -1,
            None,
            offsets(&[("a", 0, 11), ("d", 0, 40)]),
        )
        .await
        .unwrap();
    write_marker(&broker, "g", 1, 4, true);
    groups
        .complete_transaction(part, ProducerId(1), true)
        .unwrap();
    write_marker(&broker, "g", 2, 4, false);
    groups
        .complete_transaction(part, ProducerId(2), false)
        .unwrap();
    let markers = batches(&broker, "g")
        .iter()
        .filter(|b| b.is_control())
        .count();
    assert_eq!(markers, 2);

    let state = |groups: &GroupCoordinator| {
        let seen: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| (committed(groups, "g", t, 0), stable(groups, "g", t, 0)))
            .collect();
        (seen, groups.pending_offsets("g").unwrap())
    };
    let before = state(&groups);
    let only_pending = groups.pending_offsets("h").unwrap();
    assert_eq!(only_pending.len(), 1);
    assert_eq!(
        before.0,
        vec![
            (Some(11), Ok(Some(11))),
            (None, Ok(None)),
            (None, Err(GroupError::UnstableOffsetCommit)),
            (Some(40), Ok(Some(40))),
        ]
    );
    assert_eq!(
        before.1.producers().collect::<Vec<_>>(),
        vec![ProducerId(3)]
    );

    broker.shutdown().await.unwrap();
    let broker = start(&fs, &clock).await;
    let groups = broker.context().groups.clone();
    ready(&broker, "g").await;
    ready(&broker, "h").await;
    assert_eq!(state(&groups), before, "the log gives the same state");
    assert_eq!(groups.pending_offsets("h").unwrap(), only_pending);
    assert_eq!(
        stable(&groups, "h", "e", 0),
        Err(GroupError::UnstableOffsetCommit)
    );

    // The still-open transaction ends after the failover.
    write_marker(&broker, "g", 3, 4, true);
    groups
        .complete_transaction(part, ProducerId(3), true)
        .unwrap();
    assert_eq!(committed(&groups, "g", "c", 0), Some(30));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_commits_go_to_the_log_before_a_transactional_batch() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    // Lingered plain commits wait up to 2 s for their batch.
    let broker = start_with(
        &fs,
        &clock,
        &[("group.coordinator.append.linger.ms", "2000")],
    )
    .await;
    let groups = broker.context().groups.clone();
    ready(&broker, "g").await;
    let before = batches(&broker, "g").len();

    let plain = {
        let groups = groups.clone();
        tokio::spawn(async move {
            groups
                .commit_offsets("g", "", None, -1, None, offsets(&[("t", 0, 1)]))
                .await
        })
    };
    // Staged, not written yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed(&groups, "g", "t", 0).is_none() {
        assert!(Instant::now() < deadline, "never staged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(batches(&broker, "g").len(), before);
    groups
        .commit_transactional_offsets("g", &producer(600, 0), offsets(&[("t", 0, 2)]))
        .await
        .unwrap();
    // The staged batch went first, and its answer did not wait for the linger.
    let written = batches(&broker, "g");
    assert_eq!(written.len(), before + 2);
    assert!(!written[before].is_transactional());
    assert!(written[before + 1].is_transactional());
    let answered = tokio::time::timeout(Duration::from_millis(1500), plain).await;
    assert_eq!(
        answered
            .expect("answered with the transactional write")
            .unwrap(),
        Ok(())
    );
    // The transaction is later in the log than the plain commit: it wins.
    groups
        .complete_transaction(groups.partition_for("g"), ProducerId(600), true)
        .unwrap();
    assert_eq!(committed(&groups, "g", "t", 0), Some(2));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_deletions_treat_pending_offsets_as_kafka_does() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let opts = [("offsets.retention.minutes", "1")];
    let broker = start_with(&fs, &clock, &opts).await;
    let groups = broker.context().groups.clone();
    for g in ["ex", "open", "od", "dg", "tp"] {
        ready(&broker, g).await;
    }
    let listed =
        |groups: &GroupCoordinator, g: &str| groups.list_groups().iter().any(|l| l.group_id == g);

    // Expiry keeps an offset a transaction holds a pending offset of, and
    // a group with an open transaction.
    groups
        .commit_offsets(
            "ex",
            "",
            None,
            -1,
            None,
            offsets(&[("t", 0, 1), ("t", 1, 1)]),
        )
        .await
        .unwrap();
    groups
        .commit_transactional_offsets("ex", &producer(700, 0), offsets(&[("t", 0, 2)]))
        .await
        .unwrap();
    groups
        .commit_transactional_offsets("open", &producer(701, 0), offsets(&[("t", 0, 2)]))
        .await
        .unwrap();
    clock.advance(120_000);
    groups.expire_offsets();
    assert_eq!(committed(&groups, "ex", "t", 0), Some(1), "pending: kept");
    assert_eq!(committed(&groups, "ex", "t", 1), None, "expired");
    assert!(listed(&groups, "ex") && listed(&groups, "open"));
    groups
        .complete_transaction(groups.partition_for("open"), ProducerId(701), false)
        .unwrap();
    groups.expire_offsets();
    assert!(
        !listed(&groups, "open"),
        "no offsets, no transaction: deleted"
    );
    assert!(listed(&groups, "ex"));

    // OffsetDelete writes a tombstone for a pending offset; it goes.
    groups
        .commit_transactional_offsets("od", &producer(702, 0), offsets(&[("t", 0, 3)]))
        .await
        .unwrap();
    let deleted = groups.delete_offsets("od", vec![("t".into(), 0)]).unwrap();
    assert_eq!(deleted, vec![("t".to_string(), 0, None)]);
    assert_eq!(stable(&groups, "od", "t", 0), Ok(None));

    // An open transaction does not keep DeleteGroups from deleting.
    groups
        .commit_transactional_offsets("dg", &producer(703, 0), offsets(&[("t", 0, 4)]))
        .await
        .unwrap();
    groups.delete_group("dg").unwrap();
    assert!(!listed(&groups, "dg"));
    assert!(groups.pending_offsets("dg").unwrap().is_empty());

    // A deleted topic's pending offsets go with its committed ones.
    groups
        .commit_transactional_offsets(
            "tp",
            &producer(704, 0),
            offsets(&[("t", 0, 5), ("u", 0, 5)]),
        )
        .await
        .unwrap();
    assert_eq!(
        groups.on_topic_deleted("t"),
        2,
        "ex's t-0 and tp's pending t-0"
    );
    assert_eq!(stable(&groups, "tp", "t", 0), Ok(None));
    assert_eq!(
        stable(&groups, "tp", "u", 0),
        Err(GroupError::UnstableOffsetCommit)
    );

    // Their markers find nothing to commit; a restart agrees.
    for (g, pid) in [("od", 702), ("dg", 703), ("tp", 704)] {
        write_marker(&broker, g, pid, 0, true);
        groups
            .complete_transaction(groups.partition_for(g), ProducerId(pid), true)
            .unwrap();
        assert_eq!(committed(&groups, g, "t", 0), None, "{g}");
    }
    assert_eq!(committed(&groups, "tp", "u", 0), Some(5));
    broker.shutdown().await.unwrap();
    let broker = start_with(&fs, &clock, &opts).await;
    let groups = broker.context().groups.clone();
    for g in ["ex", "od", "dg", "tp"] {
        ready(&broker, g).await;
    }
    assert_eq!(groups.pending_offsets("od").unwrap().len(), 0);
    assert_eq!(groups.pending_offsets("dg").unwrap().len(), 0);
    assert_eq!(
        committed(&groups, "dg", "t", 0),
        None,
        "its marker came after the tombstone"
    );
    assert!(!listed(&groups, "dg"));
    assert_eq!(groups.pending_offsets("tp").unwrap().len(), 0);
    assert_eq!(committed(&groups, "tp", "t", 0), None);
    assert_eq!(committed(&groups, "tp", "u", 0), Some(5));
    assert_eq!(stable(&groups, "ex", "t", 0), Ok(None), "tombstoned");
    broker.shutdown().await.unwrap();
}
