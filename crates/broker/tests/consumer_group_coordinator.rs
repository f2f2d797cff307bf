//! Consumer groups (KIP-848) through the coordinator, in process over the
//! simulated file system and a manual clock: members converge to a disjoint
//! cover, offsets are checked against member epochs, and after a restart the
//! group (epochs, members, assignments) and its offsets are back, members
//! carry on with their epochs, and silent members are removed by the
//! session timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker::group::consumer::{
    Assignment, ConsumerGroupState, HeartbeatRequest, HeartbeatResponse,
};
use sluice_broker::group::{CommitRequest, GroupCoordinator, GroupError};
use sluice_broker::handlers::consumer_group_heartbeat::topics_view;
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{Clock, Fs, ManualClock, SimFs};

const DIR: &str = "/sim/data";
const GROUP: &str = "kip848";

async fn start(fs: &Arc<SimFs>, clock: &Arc<ManualClock>) -> Broker {
    let config = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", DIR),
        ("offsets.topic.num.partitions", "3"),
        // The tests jump the manual clock by tens of seconds; the broker's
        // heartbeats run on real time, so with the default session (1.5 s)
        // the controller may fence the only broker in the gap under load
        // (CoordinatorNotAvailable). A session longer than any jump.
        ("broker.session.timeout.ms", "600000"),
    ])
    .unwrap();
    let fs: Arc<dyn Fs> = fs.clone();
    let clock: Arc<dyn Clock> = clock.clone();
    Broker::start(config, fs, clock).await.unwrap()
}

async fn ready(broker: &Broker) {
    let ctx = broker.context();
    ctx.groups.ensure_offsets_topic(ctx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ctx.groups.check_ready(GROUP) {
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

#[derive(Clone, Debug, Default)]
struct Member {
    epoch: i32,
    owned: Assignment,
}

async fn heartbeat(
    broker: &Broker,
    id: &str,
    m: &Member,
    join: bool,
) -> Result<HeartbeatResponse, GroupError> {
    let ctx = broker.context();
    let req = HeartbeatRequest {
        member_id: id.into(),
        member_epoch: if join { 0 } else { m.epoch },
        rebalance_timeout_ms: if join { 30_000 } else { -1 },
        subscribed_topic_names: join.then(|| vec!["orders".to_string()]),
        owned: Some(if join {
            Assignment::new()
        } else {
            m.owned.clone()
        }),
        client_id: format!("client-{id}"),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    };
    ctx.groups
        .consumer_heartbeat(GROUP, req, &topics_view(ctx))
        .await
}

async fn beat(broker: &Broker, members: &mut BTreeMap<String, Member>, id: &str, join: bool) {
    let r = heartbeat(broker, id, &members[id], join).await.unwrap();
    let m = members.get_mut(id).unwrap();
    m.epoch = r.member_epoch;
    if let Some(a) = r.assignment {
        m.owned = a;
    }
}

async fn converge(broker: &Broker, members: &mut BTreeMap<String, Member>) {
    for _ in 0..10 {
        let ids: Vec<String> = members.keys().cloned().collect();
        for id in ids {
            beat(broker, members, &id, false).await;
        }
    }
    let g = broker
        .context()
        .groups
        .describe_consumer_group(GROUP)
        .unwrap();
    assert_eq!(g.state(), ConsumerGroupState::Stable);
}

fn cover(members: &BTreeMap<String, Member>) -> BTreeSet<i32> {
    let mut all = BTreeSet::new();
    for m in members.values() {
        for ps in m.owned.values() {
            for p in ps {
                assert!(all.insert(*p), "partition {p} owned twice");
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_and_offsets_survive_a_restart() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let ctx = broker.context().clone();
    ctx.controller
        .create_topic("orders", 6, 1, BTreeMap::new())
        .await
        .unwrap();
    ready(&broker).await;

    let mut members: BTreeMap<String, Member> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| (id.to_string(), Member::default()))
        .collect();
    for id in ["m1", "m2", "m3"] {
        beat(&broker, &mut members, id, true).await;
    }
    converge(&broker, &mut members).await;
    assert_eq!(cover(&members), (0..6).collect());
    assert!(members
        .values()
        .all(|m| m.owned.values().map(BTreeSet::len).sum::<usize>() == 2));

    // Offsets: a member commits with its epoch; a stale epoch or an unknown
    // member is refused, as Kafka does.
    let groups: &GroupCoordinator = &ctx.groups;
    let commit = |offset| {
        vec![CommitRequest {
            topic: "orders".into(),
            partition: 0,
            offset,
            leader_epoch: 0,
            metadata: String::new(),
        }]
    };
    let epoch = members["m1"].epoch;
    groups
        .commit_offsets(GROUP, "m1", None, epoch, None, commit(42))
        .await
        .unwrap();
    assert_eq!(
        groups
            .commit_offsets(GROUP, "m1", None, epoch - 1, None, commit(1))
            .await,
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        groups
            .commit_offsets(GROUP, "nobody", None, epoch, None, commit(1))
            .await,
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        groups
            .commit_offsets(GROUP, "", None, -1, None, commit(1))
            .await,
        Err(GroupError::UnknownMemberId),
        "no commits from outside a group with members"
    );
    assert_eq!(
        groups.validate_offset_fetch(GROUP, Some("m1"), epoch + 1),
        Err(GroupError::StaleMemberEpoch)
    );
    groups
        .validate_offset_fetch(GROUP, Some("m1"), epoch)
        .unwrap();
    groups.validate_offset_fetch(GROUP, None, -1).unwrap();
    let listed = groups.list_groups();
    let l = listed.iter().find(|g| g.group_id == GROUP).unwrap();
    assert_eq!(
        (l.group_type, l.state_name, l.protocol_type.as_str()),
        ("consumer", "Stable", "consumer")
    );
    assert_eq!(groups.delete_group(GROUP), Err(GroupError::NonEmptyGroup));
    let deleted = groups
        .delete_offsets(GROUP, vec![("orders".into(), 0)])
        .unwrap();
    assert_eq!(deleted[0].2, Some(GroupError::GroupSubscribedToTopic));
    let before = groups.describe_consumer_group(GROUP).unwrap();

    // Restart.
    broker.shutdown().await.unwrap();
    let broker = start(&fs, &clock).await;
    ready(&broker).await;
    let groups = broker.context().groups.clone();
    let after = groups.describe_consumer_group(GROUP).unwrap();
    assert_eq!(after.group_epoch(), before.group_epoch());
    assert_eq!(after.assignment_epoch(), before.assignment_epoch());
    for m in before.members() {
        let n = after.member(&m.member_id).expect("member reloaded");
        assert_eq!(n.assignment, m.assignment);
        assert_eq!(n.subscription, m.subscription);
        assert_eq!(
            after.target_of(&m.member_id),
            before.target_of(&m.member_id)
        );
    }
    let rows = groups
        .fetch_offsets(GROUP, Some(vec![("orders".into(), 0)]))
        .unwrap();
    assert_eq!(rows[0].2.as_ref().map(|v| v.offset), Some(42));
    // Members carry on with the epochs they had: no fencing, no movement.
    let owned_before: Vec<Assignment> = members.values().map(|m| m.owned.clone()).collect();
    converge(&broker, &mut members).await;
    let owned_after: Vec<Assignment> = members.values().map(|m| m.owned.clone()).collect();
    assert_eq!(owned_before, owned_after);

    // m3 goes silent: after the session timeout (45 s) its partitions move.
    clock.advance(30_000);
    for id in ["m1", "m2"] {
        beat(&broker, &mut members, id, false).await;
    }
    clock.advance(20_000);
    groups.tick_all();
    let g = groups.describe_consumer_group(GROUP).unwrap();
    assert!(g.member("m3").is_none(), "m3 not removed");
    assert!(g.member("m1").is_some() && g.member("m2").is_some());
    members.remove("m3");
    converge(&broker, &mut members).await;
    assert_eq!(cover(&members), (0..6).collect());

    // The removal is durable too.
    broker.shutdown().await.unwrap();
    let broker = start(&fs, &clock).await;
    ready(&broker).await;
    let groups = broker.context().groups.clone();
    let g = groups.describe_consumer_group(GROUP).unwrap();
    assert_eq!(g.num_members(), 2);
    // Everyone leaves; then the empty group can be deleted, for good.
    for id in ["m1", "m2"] {
        let mut m = members[id].clone();
        m.epoch = -1;
        let r = heartbeat(&broker, id, &m, false).await.unwrap();
        assert_eq!(r.member_epoch, -1);
    }
    let g = groups.describe_consumer_group(GROUP).unwrap();
    assert_eq!(g.state(), ConsumerGroupState::Empty);
    groups.delete_group(GROUP).unwrap();
    broker.shutdown().await.unwrap();
    let broker = start(&fs, &clock).await;
    ready(&broker).await;
    let groups = broker.context().groups.clone();
    assert_eq!(
        groups.describe_consumer_group(GROUP).err(),
        Some(GroupError::GroupIdNotFound)
    );
    let rows = groups
        .fetch_offsets(GROUP, Some(vec![("orders".into(), 0)]))
        .unwrap();
    assert!(rows[0].2.is_none());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_and_consumer_groups_of_the_same_id_exclude_each_other() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let ctx = broker.context().clone();
    ctx.controller
        .create_topic("orders", 2, 1, BTreeMap::new())
        .await
        .unwrap();
    ready(&broker).await;
    // A heartbeat with a non-zero epoch for a group that does not exist.
    let m = Member {
        epoch: 3,
        owned: Assignment::new(),
    };
    assert_eq!(
        heartbeat(&broker, "x", &m, false).await.err(),
        Some(GroupError::GroupIdNotFound)
    );
    let r = heartbeat(&broker, "x", &Member::default(), true)
        .await
        .unwrap();
    assert!(r.member_epoch > 0);
    // DescribeGroups sees no classic group.
    let d = ctx.groups.describe_group(GROUP).unwrap();
    assert_eq!(d.state.name(), "Dead");
    assert!(d.members.is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_partitions_are_assigned_without_anyone_losing_theirs() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(now()));
    let broker = start(&fs, &clock).await;
    let ctx = broker.context().clone();
    ctx.controller
        .create_topic("orders", 4, 1, BTreeMap::new())
        .await
        .unwrap();
    ready(&broker).await;
    let mut members: BTreeMap<String, Member> = ["m1", "m2"]
        .iter()
        .map(|id| (id.to_string(), Member::default()))
        .collect();
    for id in ["m1", "m2"] {
        beat(&broker, &mut members, id, true).await;
    }
    converge(&broker, &mut members).await;
    let epoch = groups_epoch(&broker);
    let before = members.clone();
    ctx.controller
        .create_partitions("orders", 8, None, false)
        .await
        .unwrap();
    // Every heartbeat from now on: nobody's assignment shrinks.
    for _ in 0..5 {
        for id in ["m1", "m2"] {
            beat(&broker, &mut members, id, false).await;
            for (t, ps) in &before[id].owned {
                assert!(ps.is_subset(&members[id].owned[t]), "{id} lost a partition");
            }
        }
    }
    converge(&broker, &mut members).await;
    assert!(groups_epoch(&broker) > epoch);
    assert_eq!(cover(&members), (0..8).collect());
    broker.shutdown().await.unwrap();
}

fn groups_epoch(broker: &Broker) -> i32 {
    broker
        .context()
        .groups
        .describe_consumer_group(GROUP)
        .unwrap()
        .group_epoch()
}
