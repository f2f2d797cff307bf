use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const T0: Uuid = Uuid::from_u128(0xa0);
const T1: Uuid = Uuid::from_u128(0xa1);

fn topics(parts0: i32, parts1: i32) -> TopicsView {
    let mut v = TopicsView::new();
    v.insert(
        "orders".into(),
        TopicView {
            id: T0,
            partitions: parts0,
        },
    );
    if parts1 > 0 {
        v.insert(
            "payments".into(),
            TopicView {
                id: T1,
                partitions: parts1,
            },
        );
    }
    v
}

fn cfg() -> ConsumerGroupConfig {
    ConsumerGroupConfig::default()
}

fn join(id: &str, subs: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(subs.iter().map(|s| s.to_string()).collect()),
        owned: Some(Assignment::new()),
        client_id: format!("client-{id}"),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    }
}

fn hb(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        client_id: format!("client-{id}"),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    }
}

/// A simulated consumer: what it owns and its epoch, updated from answers.
#[derive(Clone, Debug, Default)]
struct Client {
    epoch: i32,
    /// What the consumer holds.
    owned: Assignment,
    /// The last assignment it was given (it gets there on its next
    /// heartbeat, or later if it is slow to revoke).
    latest: Assignment,
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// No partition is owned by two clients, nor assigned by the group to two
/// members (assigned or pending revocation).
fn check_exclusive(g: &ConsumerGroup, clients: &BTreeMap<String, Client>) {
    let mut seen = BTreeSet::new();
    for c in clients.values() {
        for (t, ps) in &c.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}-{p} owned by two clients");
            }
        }
    }
    let mut seen = BTreeSet::new();
    for m in g.members() {
        for (t, ps) in m
            .assignment
            .assigned
            .iter()
            .chain(m.assignment.pending_revocation.iter())
        {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}-{p} held by two members");
            }
        }
    }
}

struct Sim {
    g: ConsumerGroup,
    clients: BTreeMap<String, Client>,
    topics: TopicsView,
    now: i64,
    records: Vec<ConsumerRecord>,
}

impl Sim {
    fn new(topics: TopicsView) -> Self {
        Sim {
            g: ConsumerGroup::new("g", 0),
            clients: BTreeMap::new(),
            topics,
            now: 0,
            records: Vec::new(),
        }
    }

    fn join(&mut self, id: &str, subs: &[&str]) -> HeartbeatResponse {
        let r = self
            .g
            .heartbeat(
                join(id, subs),
                &self.topics,
                &cfg(),
                self.now,
                &mut self.records,
            )
            .unwrap();
        let c = self.clients.entry(id.to_string()).or_default();
        c.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            c.owned = a.clone();
            c.latest = a.clone();
        }
        check_exclusive(&self.g, &self.clients);
        r
    }

    /// One heartbeat of `id`, which acknowledges whatever it was told.
    fn beat(&mut self, id: &str) -> Result<HeartbeatResponse, GroupError> {
        let latest = self.clients[id].latest.clone();
        self.clients.get_mut(id).unwrap().owned = latest;
        let c = self.clients[id].clone();
        let r = self.g.heartbeat(
            hb(id, c.epoch, &c.owned),
            &self.topics,
            &cfg(),
            self.now,
            &mut self.records,
        )?;
        let c = self.clients.get_mut(id).unwrap();
        c.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            c.owned = a.clone();
            c.latest = a.clone();
        }
        check_exclusive(&self.g, &self.clients);
        Ok(r)
    }

    fn converge(&mut self) {
        for _ in 0..20 {
            let ids: Vec<String> = self.clients.keys().cloned().collect();
            for id in ids {
                self.beat(&id).unwrap();
            }
            if self.g.state() == ConsumerGroupState::Stable
                && self
                    .g
                    .members()
                    .all(|m| self.clients[&m.member_id].owned == m.assignment.assigned)
            {
                return;
            }
        }
        panic!("group did not converge: {:?}", self.g);
    }
}

#[test]
fn three_members_split_six_partitions() {
    let mut s = Sim::new(topics(6, 0));
    for id in ["a", "b", "c"] {
        s.join(id, &["orders"]);
    }
    s.converge();
    assert_eq!(s.g.group_epoch(), 3);
    assert_eq!(s.g.assignment_epoch(), 3);
    for c in s.clients.values() {
        assert_eq!(count(&c.owned), 2, "{:?}", s.clients);
        assert_eq!(c.epoch, 3);
    }
}

#[test]
fn fourth_member_waits_for_revocation_and_others_keep_partitions() {
    let mut s = Sim::new(topics(6, 0));
    for id in ["a", "b", "c"] {
        s.join(id, &["orders"]);
    }
    s.converge();
    let before = s.clients.clone();
    let r = s.join("d", &["orders"]);
    // Everything d's target holds is still owned by someone: nothing yet.
    assert_eq!(r.assignment.as_ref().map(count), Some(0));
    assert_eq!(s.g.state(), ConsumerGroupState::Reconciling);
    let target_d = s.g.target_of("d");
    assert_eq!(count(&target_d), 1);
    for _ in 0..5 {
        for id in ["a", "b", "c", "d"] {
            s.beat(id).unwrap();
            for old in ["a", "b", "c"] {
                assert!(
                    count(&s.clients[old].owned) >= 1,
                    "{old} lost every partition"
                );
            }
        }
    }
    s.converge();
    assert_eq!(s.clients["d"].owned, target_d);
    for old in ["a", "b", "c"] {
        for (t, ps) in &s.clients[old].owned {
            assert!(
                ps.is_subset(&before[old].owned[t]),
                "{old} gained a partition"
            );
        }
    }
}

#[test]
fn a_member_that_does_not_revoke_keeps_the_partition_from_the_new_owner() {
    let mut s = Sim::new(topics(2, 0));
    s.join("a", &["orders"]);
    s.converge();
    assert_eq!(count(&s.clients["a"].owned), 2);
    s.join("b", &["orders"]);
    // a is asked to revoke one partition.
    let r = s.beat("a").unwrap();
    assert_eq!(count(r.assignment.as_ref().unwrap()), 1);
    assert_eq!(
        s.g.member("a").unwrap().assignment.state,
        MemberState::UnrevokedPartitions
    );
    // Pretend a still owns both: b gets nothing.
    let owned_both = s.g.member("a").unwrap().assignment.assigned.clone();
    let mut both = owned_both.clone();
    both.entry(T0).or_default().extend([0, 1]);
    let epoch_a = s.clients["a"].epoch;
    s.g.heartbeat(
        hb("a", epoch_a, &both),
        &s.topics,
        &cfg(),
        0,
        &mut s.records,
    )
    .unwrap();
    let rb = s.beat("b").unwrap();
    assert_eq!(count(&s.clients["b"].owned), 0, "{rb:?}");
    assert_eq!(
        s.g.member("b").unwrap().assignment.state,
        MemberState::UnreleasedPartitions
    );
    // Once a revokes, b gets it.
    s.converge();
    assert_eq!(count(&s.clients["b"].owned), 1);
}

#[test]
fn epochs_are_checked() {
    let mut s = Sim::new(topics(3, 0));
    s.join("a", &["orders"]);
    s.converge();
    let e = s.clients["a"].epoch;
    let owned = s.clients["a"].owned.clone();
    let mut out = Vec::new();
    let err = |g: &mut ConsumerGroup, req, out: &mut Vec<ConsumerRecord>| {
        g.heartbeat(req, &topics(3, 0), &cfg(), 0, out).unwrap_err()
    };
    assert_eq!(
        err(&mut s.g, hb("a", e + 1, &owned), &mut out),
        GroupError::FencedMemberEpoch
    );
    assert_eq!(
        err(&mut s.g, hb("zz", e, &owned), &mut out),
        GroupError::UnknownMemberId
    );
    // The previous epoch with a subset of the assignment is accepted.
    let prev = s.g.member("a").unwrap().assignment.previous_member_epoch;
    s.g.heartbeat(hb("a", prev, &owned), &topics(3, 0), &cfg(), 0, &mut out)
        .unwrap();
}

#[test]
fn leave_bumps_the_epoch_and_frees_partitions() {
    let mut s = Sim::new(topics(4, 0));
    s.join("a", &["orders"]);
    s.join("b", &["orders"]);
    s.converge();
    let epoch = s.g.group_epoch();
    let mut req = hb("b", s.clients["b"].epoch, &Assignment::new());
    req.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
    let r =
        s.g.heartbeat(req, &s.topics, &cfg(), 0, &mut s.records)
            .unwrap();
    assert_eq!(r.member_epoch, -1);
    s.clients.remove("b");
    assert_eq!(s.g.group_epoch(), epoch + 1);
    s.converge();
    assert_eq!(count(&s.clients["a"].owned), 4);
}

#[test]
fn session_timeout_removes_a_silent_member() {
    let mut s = Sim::new(topics(4, 0));
    s.join("a", &["orders"]);
    s.join("b", &["orders"]);
    s.converge();
    s.now = 40_000;
    s.beat("a").unwrap();
    let mut out = Vec::new();
    assert!(s
        .g
        .expire_members(46_000, &mut out)
        .contains(&"b".to_string()));
    assert!(s.g.member("a").is_some());
    s.clients.remove("b");
    s.now = 46_000;
    s.converge();
    assert_eq!(count(&s.clients["a"].owned), 4);
}

#[test]
fn static_member_rejoins_with_its_partitions_and_no_new_epoch() {
    let mut s = Sim::new(topics(4, 0));
    let mut ja = join("a", &["orders"]);
    ja.instance_id = Some("inst-a".into());
    s.g.heartbeat(ja.clone(), &s.topics, &cfg(), 0, &mut s.records)
        .unwrap();
    s.clients.insert("a".into(), Client::default());
    s.join("b", &["orders"]);
    // a's client state from the group.
    s.clients.get_mut("a").unwrap().epoch = s.g.member("a").unwrap().assignment.member_epoch;
    let beat_a = |s: &mut Sim| {
        let c = s.clients["a"].clone();
        let mut r = hb("a", c.epoch, &c.owned);
        r.instance_id = Some("inst-a".into());
        let resp =
            s.g.heartbeat(r, &s.topics, &cfg(), 0, &mut s.records)
                .unwrap();
        let c = s.clients.get_mut("a").unwrap();
        c.epoch = resp.member_epoch;
        if let Some(x) = resp.assignment {
            c.owned = x.clone();
            c.latest = x;
        }
    };
    for _ in 0..4 {
        beat_a(&mut s);
        s.beat("b").unwrap();
    }
    let owned_a = s.clients["a"].owned.clone();
    assert_eq!(count(&owned_a), 2);
    // Neither a itself nor another instance with the same id can join
    // again while a has not left.
    let mut again = ja.clone();
    again.member_epoch = 0;
    assert_eq!(
        s.g.heartbeat(again, &s.topics, &cfg(), 0, &mut s.records)
            .unwrap_err(),
        GroupError::UnreleasedInstanceId
    );
    let mut other = join("a2", &["orders"]);
    other.instance_id = Some("inst-a".into());
    assert_eq!(
        s.g.heartbeat(other.clone(), &s.topics, &cfg(), 0, &mut s.records)
            .unwrap_err(),
        GroupError::UnreleasedInstanceId
    );
    // a leaves temporarily (-2), a2 takes over its partitions.
    let mut leave = hb("a", s.clients["a"].epoch, &owned_a);
    leave.instance_id = Some("inst-a".into());
    leave.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
    let epoch = s.g.group_epoch();
    assert_eq!(
        s.g.heartbeat(leave, &s.topics, &cfg(), 0, &mut s.records)
            .unwrap()
            .member_epoch,
        -2
    );
    let r =
        s.g.heartbeat(other, &s.topics, &cfg(), 0, &mut s.records)
            .unwrap();
    assert_eq!(r.assignment, Some(owned_a));
    assert_eq!(s.g.group_epoch(), epoch);
    assert!(s.g.member("a").is_none());
    // The old member id is now fenced by the instance id.
    let mut old = hb("a", 5, &Assignment::new());
    old.instance_id = Some("inst-a".into());
    assert_eq!(
        s.g.heartbeat(old, &s.topics, &cfg(), 0, &mut s.records)
            .unwrap_err(),
        GroupError::FencedInstanceId
    );
}

#[test]
fn group_max_size_and_validation() {
    let mut s = Sim::new(topics(2, 0));
    let c = ConsumerGroupConfig {
        max_size: 1,
        ..cfg()
    };
    s.g.heartbeat(join("a", &["orders"]), &s.topics, &c, 0, &mut s.records)
        .unwrap();
    assert_eq!(
        s.g.heartbeat(join("b", &["orders"]), &s.topics, &c, 0, &mut s.records)
            .unwrap_err(),
        GroupError::GroupMaxSizeReached
    );
    // Leaving is answered before the size check.
    let mut leave = hb("zz", 1, &Assignment::new());
    leave.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
    assert_eq!(
        s.g.heartbeat(leave, &s.topics, &c, 0, &mut s.records)
            .unwrap_err(),
        GroupError::UnknownMemberId
    );
    let mut bad = join("", &["orders"]);
    assert_eq!(
        validate_heartbeat(&bad, 1, &c).map_err(|e| e.0),
        Err(GroupError::InvalidRequest)
    );
    assert_eq!(validate_heartbeat(&bad, 0, &c).map_err(|e| e.0), Ok(()));
    bad.member_id = "x".repeat(40_000);
    assert_eq!(
        validate_heartbeat(&bad, 1, &c).map_err(|e| e.0),
        Err(GroupError::InvalidRequest)
    );
    bad.member_id = "x".into();
    bad.server_assignor = Some("sticky".into());
    assert_eq!(
        validate_heartbeat(&bad, 1, &c).map_err(|e| e.0),
        Err(GroupError::UnsupportedAssignor)
    );
    bad.server_assignor = Some("range".into());
    bad.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        validate_heartbeat(&bad, 1, &c).map_err(|e| e.0),
        Err(GroupError::InvalidRegularExpression)
    );
    bad.subscribed_topic_regex = None;
    bad.rebalance_timeout_ms = -1;
    assert_eq!(
        validate_heartbeat(&bad, 1, &c).map_err(|e| e.0),
        Err(GroupError::InvalidRequest)
    );
    bad.rebalance_timeout_ms = 1000;
    bad.member_epoch = -3;
    assert_eq!(
        validate_heartbeat(&bad, 1, &c).map_err(|e| e.0),
        Err(GroupError::InvalidRequest)
    );
}

#[test]
fn regex_subscription_and_new_topics_rebalance_without_stopping() {
    let mut s = Sim::new(topics(2, 0));
    let mut j = join("a", &[]);
    j.subscribed_topic_names = None;
    j.subscribed_topic_regex = Some("orders|pay.*".into());
    s.g.heartbeat(j, &s.topics, &cfg(), 0, &mut s.records)
        .unwrap();
    s.clients.insert("a".into(), Client::default());
    s.clients.get_mut("a").unwrap().epoch = s.g.member("a").unwrap().assignment.member_epoch;
    let a_owned = s.g.member("a").unwrap().assignment.assigned.clone();
    s.clients.get_mut("a").unwrap().owned = a_owned.clone();
    s.clients.get_mut("a").unwrap().latest = a_owned;
    s.join("b", &["orders"]);
    s.converge();
    let epoch = s.g.group_epoch();
    // A matching topic appears and orders grows: new epoch, new partitions.
    s.topics = topics(4, 3);
    s.converge();
    assert!(s.g.group_epoch() > epoch);
    let total: usize = s.clients.values().map(|c| count(&c.owned)).sum();
    assert_eq!(total, 7);
    assert!(
        !s.clients["b"].owned.contains_key(&T1),
        "b does not subscribe to payments"
    );
}

#[test]
fn replaying_the_records_rebuilds_the_group() {
    let mut s = Sim::new(topics(6, 2));
    s.join("a", &["orders", "payments"]);
    s.join("b", &["orders"]);
    s.join("c", &["payments"]);
    s.converge();
    s.join("d", &["orders"]);
    s.beat("a").unwrap();
    let mut g2 = ConsumerGroup::new("g", 0);
    for r in s.records.clone() {
        g2.replay(r, 0, 45_000);
    }
    assert_same(&s.g, &g2);
}

fn assert_same(a: &ConsumerGroup, b: &ConsumerGroup) {
    assert_eq!(a.group_epoch(), b.group_epoch());
    assert_eq!(a.assignment_epoch(), b.assignment_epoch());
    assert_eq!(a.state(), b.state());
    let ids = |g: &ConsumerGroup| g.members().map(|m| m.member_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(a), ids(b));
    for m in a.members() {
        let n = b.member(&m.member_id).unwrap();
        assert_eq!(m.subscription, n.subscription);
        assert_eq!(m.assignment, n.assignment);
        assert_eq!(a.target_of(&m.member_id), b.target_of(&m.member_id));
    }
    assert_eq!(a.partition_epochs, b.partition_epochs);
}

#[derive(Clone, Debug)]
enum Op {
    Join(u8, bool),
    Beat(u8),
    /// A heartbeat that still reports the partitions being revoked.
    BeatStubborn(u8),
    Leave(u8),
    Expire(u8),
    GrowTopic,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5, any::<bool>()).prop_map(|(m, both)| Op::Join(m, both)),
        (0u8..5).prop_map(Op::Beat),
        (0u8..5).prop_map(Op::Beat),
        (0u8..5).prop_map(Op::BeatStubborn),
        (0u8..5).prop_map(Op::Leave),
        (0u8..5).prop_map(Op::Expire),
        Just(Op::GrowTopic),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    /// Whatever members do, no partition is ever owned by two members (on
    /// the group's books and in the clients' hands); once everybody
    /// heartbeats, all members converge to a target that covers every
    /// subscribed partition; and the records rebuild the same group.
    #[test]
    fn reconciliation_never_double_assigns_and_converges(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let mut s = Sim::new(topics(5, 3));
        for op in ops {
            s.now += 1000;
            match op {
                Op::Join(m, both) => {
                    let id = format!("m{m}");
                    if s.clients.contains_key(&id) { continue; }
                    let subs: &[&str] = if both { &["orders", "payments"] } else { &["orders"] };
                    s.join(&id, subs);
                }
                Op::Beat(m) => {
                    let id = format!("m{m}");
                    if s.clients.contains_key(&id) { s.beat(&id).unwrap(); }
                }
                Op::BeatStubborn(m) => {
                    // The consumer has not finished revoking: it reports
                    // what it still holds.
                    let id = format!("m{m}");
                    if let Some(c) = s.clients.get(&id).cloned() {
                        let r = s.g.heartbeat(hb(&id, c.epoch, &c.owned), &s.topics, &cfg(), s.now, &mut s.records).unwrap();
                        let c = s.clients.get_mut(&id).unwrap();
                        c.epoch = r.member_epoch;
                        if let Some(a) = r.assignment {
                            c.latest = a.clone();
                            for (t, ps) in a { c.owned.entry(t).or_default().extend(ps); }
                        }
                        check_exclusive(&s.g, &s.clients);
                    }
                }
                Op::Leave(m) => {
                    let id = format!("m{m}");
                    if let Some(c) = s.clients.remove(&id) {
                        let mut req = hb(&id, c.epoch, &Assignment::new());
                        req.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        s.g.heartbeat(req, &s.topics, &cfg(), s.now, &mut s.records).unwrap();
                    }
                }
                Op::Expire(m) => {
                    let id = format!("m{m}");
                    if s.clients.remove(&id).is_some() {
                        // Everybody else heartbeats; m goes silent.
                        let later = s.now + 46_000;
                        let mut recs = Vec::new();
                        for other in s.clients.keys().cloned().collect::<Vec<_>>() {
                            s.now = later - 1000;
                            s.beat(&other).unwrap();
                        }
                        s.now = later;
                        s.g.expire_members(later, &mut recs);
                        s.records.extend(recs);
                        prop_assert!(s.g.member(&id).is_none());
                    }
                }
                Op::GrowTopic => {
                    let n = s.topics["orders"].partitions;
                    if n < 12 { s.topics = topics(n + 1, 3); }
                }
            }
        }
        if !s.clients.is_empty() {
            s.converge();
            // The target covers every partition of the subscribed topics.
            let mut all = BTreeSet::new();
            for m in s.g.members() {
                for (t, ps) in &m.assignment.assigned { for p in ps { all.insert((*t, *p)); } }
            }
            let subscribed = s.g.subscribed_topics(Some(&s.topics));
            let expected: usize = subscribed.iter().map(|t| s.topics[t].partitions as usize).sum();
            prop_assert_eq!(all.len(), expected);
        }
        let mut g2 = ConsumerGroup::new("g", 0);
        for r in s.records.clone() { g2.replay(r, s.now, 45_000); }
        assert_same(&s.g, &g2);
    }
}

#[test]
fn a_new_regex_takes_effect_one_heartbeat_later_as_in_kafka() {
    let mut s = Sim::new(topics(2, 3));
    let mut j = join("a", &["orders"]);
    j.subscribed_topic_regex = Some("pay.*".into());
    let r =
        s.g.heartbeat(j, &s.topics, &cfg(), 0, &mut s.records)
            .unwrap();
    // The named topic now; the regex is not resolved yet.
    let first = r.assignment.unwrap();
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), vec![T0]);
    s.clients.insert(
        "a".into(),
        Client {
            epoch: r.member_epoch,
            owned: first.clone(),
            latest: first,
        },
    );
    let r = s.beat("a").unwrap();
    let second = r.assignment.expect("the regex matches arrive");
    assert_eq!(second.keys().copied().collect::<Vec<_>>(), vec![T0, T1]);
    assert_eq!(count(&second), 5);
}
