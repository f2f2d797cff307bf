//! The group coordinator in process, over the simulated file system and a
//! manual clock: committed offsets and group deletions come back after a
//! restart (and, with fsync-before-ack, after a power cut), and
//! `offsets.retention.minutes` removes offsets of abandoned groups for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker::group::{CommitRequest, GroupCoordinator, GroupError};
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{Clock, Fs, ManualClock, SimFs};

const DIR: &str = "/sim/data";

async fn start(fs: &Arc<SimFs>, clock: &Arc<ManualClock>, extra: &[(&str, &str)]) -> Broker {
    let mut all = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", DIR),
        ("offsets.topic.num.partitions", "3"),
        // The tests jump the manual clock by tens of seconds; the broker's
        // heartbeats run on real time, so with the default session (1.5 s)
        // the controller may fence the only broker in the gap under load
        // (CoordinatorNotAvailable). A session longer than any jump.
        ("broker.session.timeout.ms", "600000"),
    ];
    all.extend_from_slice(extra);
    let config = BrokerConfig::with_overrides(&all).unwrap();
    let fs: Arc<dyn Fs> = fs.clone();
    let clock: Arc<dyn Clock> = clock.clone();
    Broker::start(config, fs, clock).await.unwrap()
}

/// Creates the offsets topic if needed (as the first FindCoordinator does)
/// and waits until the coordinator has loaded the partition of `group`.
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

fn commit(offset: i64, metadata: &str) -> Vec<CommitRequest> {
    vec![CommitRequest {
        topic: "t".into(),
        partition: 0,
        offset,
        leader_epoch: 3,
        metadata: metadata.into(),
    }]
}

fn committed(groups: &GroupCoordinator, group: &str) -> Option<(i64, i32, String)> {
    let rows = groups
        .fetch_offsets(group, Some(vec![("t".into(), 0)]))
        .unwrap();
    rows[0]
        .2
        .as_ref()
        .map(|v| (v.offset, v.leader_epoch, v.metadata.clone()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_a_power_cut_with_fsync_before_ack() {
    for seed in 0..4u64 {
        let fs = Arc::new(SimFs::new());
        let clock = Arc::new(ManualClock::new(now()));
        let flush = [("log.flush.interval.messages", "1")];
        let broker = start(&fs, &clock, &flush).await;
        let groups = broker.context().groups.clone();
        for g in ["a", "b", "c", "d"] {
            ready(&broker, g).await;
        }
        for (i, g) in ["a", "b", "c", "d"].iter().enumerate() {
            for k in 0..=i as i64 {
                groups
                    .commit_offsets(g, "", None, -1, None, commit(10 * k + 1, g))
                    .await
                    .unwrap();
            }
        }
        // Power cut: everything not fsynced is gone; the old broker is abandoned.
        fs.crash(seed);
        let broker2 = start(&fs, &clock, &flush).await;
        let groups2 = broker2.context().groups.clone();
        for (i, g) in ["a", "b", "c", "d"].iter().enumerate() {
            ready(&broker2, g).await;
            assert_eq!(
                committed(&groups2, g),
                Some((10 * i as i64 + 1, 3, g.to_string())),
                "seed {seed} group {g}"
            );
        }
        broker2.shutdown().await.unwrap();
        drop(broker);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_groups_and_expired_offsets_stay_gone_after_restart() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let opts = [("offsets.retention.minutes", "1")];
    let broker = start(&fs, &clock, &opts).await;
    let groups = broker.context().groups.clone();
    for g in ["keep", "delete-me", "abandoned"] {
        ready(&broker, g).await;
    }
    groups
        .commit_offsets("delete-me", "", None, -1, None, commit(5, ""))
        .await
        .unwrap();
    groups
        .commit_offsets("abandoned", "", None, -1, None, commit(6, ""))
        .await
        .unwrap();
    groups.delete_group("delete-me").unwrap();
    assert_eq!(committed(&groups, "delete-me"), None);
    assert_eq!(
        groups.delete_group("delete-me"),
        Err(GroupError::GroupIdNotFound)
    );

    // Retention is one minute: 30 s later nothing expires, then "abandoned"
    // goes; "keep" commits late enough to survive.
    clock.advance(30_000);
    groups
        .commit_offsets("keep", "", None, -1, None, commit(7, "k"))
        .await
        .unwrap();
    groups.expire_offsets();
    assert_eq!(committed(&groups, "abandoned").map(|c| c.0), Some(6));
    clock.advance(31_000);
    groups.expire_offsets();
    assert_eq!(committed(&groups, "abandoned"), None);
    assert_eq!(committed(&groups, "keep").map(|c| c.0), Some(7));
    let listed: Vec<String> = groups
        .list_groups()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["keep".to_string()]);

    broker.shutdown().await.unwrap();
    let broker = start(&fs, &clock, &opts).await;
    let groups = broker.context().groups.clone();
    for g in ["keep", "delete-me", "abandoned"] {
        ready(&broker, g).await;
    }
    assert_eq!(committed(&groups, "keep"), Some((7, 3, "k".to_string())));
    assert_eq!(committed(&groups, "delete-me"), None);
    assert_eq!(committed(&groups, "abandoned"), None);
    let listed: Vec<String> = groups
        .list_groups()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["keep".to_string()]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topic_is_created_on_first_use_compacted_with_the_configured_partitions() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock, &[]).await;
    assert!(
        broker.context().image.topic("__consumer_offsets").is_none(),
        "created on first use, like Kafka"
    );
    ready(&broker, "g").await;
    let topic = broker
        .context()
        .image
        .topic("__consumer_offsets")
        .expect("created by the first group request");
    assert_eq!(topic.partitions, 3);
    assert_eq!(
        topic.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_a_deleted_topic_are_removed_for_good() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock, &[]).await;
    let ctx = broker.context().clone();
    ctx.controller
        .create_topic("t", 1, 1, Default::default())
        .await
        .unwrap();
    let groups = ctx.groups.clone();
    for g in ["g1", "g2"] {
        ready(&broker, g).await;
        groups
            .commit_offsets(g, "", None, -1, None, commit(9, ""))
            .await
            .unwrap();
    }
    let other = vec![CommitRequest {
        topic: "other".into(),
        partition: 0,
        offset: 4,
        leader_epoch: -1,
        metadata: String::new(),
    }];
    groups
        .commit_offsets("g1", "", None, -1, None, other)
        .await
        .unwrap();
    // DeleteTopics goes through the metadata store, which drops the
    // topic's committed offsets.
    ctx.controller
        .delete_topic(sluice_controller::TopicRef::Name("t".into()))
        .await
        .unwrap();
    assert_eq!(committed(&groups, "g1"), None);
    assert_eq!(committed(&groups, "g2"), None);
    assert_eq!(groups.on_topic_deleted("t"), 0, "nothing left to remove");
    broker.shutdown().await.unwrap();
    let broker = start(&fs, &clock, &[]).await;
    let groups = broker.context().groups.clone();
    ready(&broker, "g1").await;
    ready(&broker, "g2").await;
    assert_eq!(committed(&groups, "g1"), None);
    assert_eq!(committed(&groups, "g2"), None);
    let left = groups.fetch_offsets("g1", None).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].0.as_str(), left[0].2.as_ref().map(|v| v.offset)),
        ("other", Some(4))
    );
    broker.shutdown().await.unwrap();
}
