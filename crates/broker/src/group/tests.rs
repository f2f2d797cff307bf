//! Behaviour of the pure classic-group engine, driven with an explicit clock.

use bytes::Bytes;

use super::classic::*;
use super::GroupError;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
/// Initial rebalance delay used to form groups: every member joins at 0.
const DELAY: i32 = 100;
const D: i64 = DELAY as i64;
/// When a group whose members all joined at 0 completes its first join: the
/// timer fires at D, sees members that joined after the first one, and waits
/// one more delay (Kafka's InitialDelayedJoin).
const FORMED: i64 = 2 * D;

/// Fires the initial-rebalance timer until the first generation forms.
fn form(g: &mut ClassicGroup, out: &mut Vec<Completion>) {
    g.tick(D, out);
    g.tick(FORMED, out);
}

fn limits(delay: i32) -> GroupLimits {
    GroupLimits {
        initial_rebalance_delay_ms: delay,
        ..GroupLimits::default()
    }
}

fn req(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

fn static_req(member_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        ..req(member_id, &["range"])
    }
}

/// Joins with the v4+ handshake; returns the member id (join pending).
fn join_new(g: &mut ClassicGroup, l: &GroupLimits, now: i64, out: &mut Vec<Completion>) -> String {
    let id = match g.join(req("", &["range", "roundrobin"]), l, now, out) {
        Reply::Now(r) => {
            assert_eq!(r.error, Some(GroupError::MemberIdRequired));
            r.member_id
        }
        Reply::Later(_) => panic!("first join must ask for the member id"),
    };
    match g.join(req(&id, &["range", "roundrobin"]), l, now, out) {
        Reply::Later(m) => assert_eq!(m, id),
        Reply::Now(r) => panic!("unexpected immediate answer {r:?}"),
    }
    id
}

fn joins(out: &[Completion]) -> Vec<(String, JoinResult)> {
    out.iter()
        .filter_map(|c| match c {
            Completion::Join { member_id, result } => Some((member_id.clone(), result.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(out: &[Completion]) -> Vec<(String, SyncResult)> {
    out.iter()
        .filter_map(|c| match c {
            Completion::Sync { member_id, result } => Some((member_id.clone(), result.clone())),
            _ => None,
        })
        .collect()
}

/// Forms a Stable group of `n` dynamic members at generation 1.
fn stable_group(n: usize) -> (ClassicGroup, Vec<String>, i64) {
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(join_new(&mut g, &l, 0, &mut out));
    }
    form(&mut g, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let leader = g.leader_id().unwrap().to_string();
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("assign-{id}"))))
        .collect();
    out.clear();
    let gen = g.generation_id();
    for id in ids.iter().filter(|i| **i != leader) {
        assert!(matches!(
            g.sync(id, None, gen, None, None, vec![], FORMED, &mut out),
            Reply::Later(_)
        ));
    }
    assert!(matches!(
        g.sync(
            &leader,
            None,
            gen,
            None,
            None,
            assignments,
            FORMED,
            &mut out
        ),
        Reply::Later(_)
    ));
    assert_eq!(g.state(), GroupState::Stable);
    (g, ids, FORMED)
}

#[test]
fn first_join_asks_for_member_id_then_rebalance_completes_after_initial_delay() {
    let l = limits(3_000);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_new(&mut g, &l, 0, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.tick(2_999, &mut out);
    assert!(joins(&out).is_empty(), "initial delay not over");
    let b = join_new(&mut g, &l, 2_000, &mut out);
    // The timer fires at 3000; b joined since it was armed, so it waits
    // another initial delay (Kafka's InitialDelayedJoin), until 6000.
    g.tick(3_000, &mut out);
    assert!(joins(&out).is_empty(), "b extended the delay");
    g.tick(5_999, &mut out);
    assert!(joins(&out).is_empty());
    g.tick(6_000, &mut out);
    let j = joins(&out);
    assert_eq!(j.len(), 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.generation_id(), 1);
    let leader = g.leader_id().unwrap().to_string();
    assert_eq!(leader, a, "first member leads");
    for (id, r) in &j {
        assert_eq!(r.error, None);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.leader, leader);
        if *id == leader {
            let mut members: Vec<_> = r.members.iter().map(|m| m.member_id.clone()).collect();
            members.sort();
            let mut want = vec![a.clone(), b.clone()];
            want.sort();
            assert_eq!(members, want);
            assert!(r.members.iter().all(|m| m.metadata == "meta-range"));
        } else {
            assert!(r.members.is_empty(), "followers get no member list");
        }
    }
}

/// Static joins of a new group (no member-id round trip): returns the ids.
fn join_static(
    g: &mut ClassicGroup,
    l: &GroupLimits,
    instance: &str,
    now: i64,
    out: &mut Vec<Completion>,
) -> String {
    match g.join(static_req("", instance), l, now, out) {
        Reply::Later(id) => id,
        Reply::Now(r) => panic!("a join of a new group must wait for the timer: {r:?}"),
    }
}

#[test]
fn initial_rebalance_with_zero_delay_waits_for_the_timer_so_close_joins_share_a_generation() {
    let l = limits(0);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_static(&mut g, &l, "consumer2", 0, &mut out);
    // Even with no delay, the JoinGroup that starts the group does not
    // complete the generation itself.
    assert!(
        joins(&out).is_empty(),
        "completed inside the first JoinGroup"
    );
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.generation_id(), 0);
    let b = join_static(&mut g, &l, "consumer1", 1, &mut out);
    assert!(joins(&out).is_empty());
    // The timer fires: b joined since it was armed, so it is armed again
    // (for 0 ms); the next firing ends the join phase with both members.
    g.tick(2, &mut out);
    assert!(joins(&out).is_empty());
    g.tick(3, &mut out);
    let j = joins(&out);
    let mut got: Vec<_> = j.iter().map(|(id, _)| id.clone()).collect();
    got.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(got, want, "both members in the first generation");
    assert!(j
        .iter()
        .all(|(_, r)| r.error.is_none() && r.generation_id == 1));
    assert_eq!(g.generation_id(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.leader_id(), Some(a.as_str()), "first member leads");
}

#[test]
fn initial_rebalance_joins_before_the_timer_fires_land_in_one_generation() {
    for delay in [0, DELAY] {
        let l = limits(delay);
        let mut g = ClassicGroup::new("g", 0);
        let mut out = Vec::new();
        let a = join_new(&mut g, &l, 0, &mut out);
        let b = join_new(&mut g, &l, 0, &mut out);
        assert!(
            joins(&out).is_empty(),
            "delay {delay}: completed by a JoinGroup"
        );
        // Nothing joined after the timer was armed by a's join... except b,
        // which joined in the same instant: the first firing waits once more.
        g.tick(i64::from(delay), &mut out);
        g.tick(2 * i64::from(delay) + 1, &mut out);
        let mut got: Vec<_> = joins(&out).into_iter().map(|(id, _)| id).collect();
        got.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(got, want, "delay {delay}");
        assert_eq!(g.generation_id(), 1, "delay {delay}: one generation");
    }
}

#[test]
fn initial_rebalance_with_one_member_completes_at_the_first_timer() {
    let l = limits(0);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_static(&mut g, &l, "only", 5, &mut out);
    assert!(joins(&out).is_empty());
    g.tick(5, &mut out);
    let j = joins(&out);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].0, a);
    assert_eq!(j[0].1.generation_id, 1);
}

#[test]
fn initial_delay_extensions_stop_at_the_rebalance_timeout() {
    // delay 3000, rebalance timeout 5000: 2000 ms remain after the first
    // delay, so however many members keep arriving the phase ends at 5000.
    let l = limits(3_000);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let short = |instance: &str| JoinRequest {
        rebalance_timeout_ms: 5_000,
        ..static_req("", instance)
    };
    let mut ids = Vec::new();
    let mut t = 0;
    let mut n = 0;
    while joins(&out).is_empty() {
        assert!(t <= 5_000, "join phase outlived the rebalance timeout");
        if t < 5_000 {
            match g.join(short(&format!("i{n}")), &l, t, &mut out) {
                Reply::Later(id) => ids.push(id),
                Reply::Now(r) => panic!("{r:?}"),
            }
            n += 1;
        }
        g.tick(t, &mut out);
        t += 500;
    }
    assert_eq!(t - 500, 5_000, "ended when the remaining time ran out");
    assert_eq!(
        joins(&out).len(),
        ids.len(),
        "every member that joined is in"
    );
    assert_eq!(g.generation_id(), 1);
}

#[test]
fn leave_during_the_initial_delay_ends_the_join_phase_for_the_rest() {
    let l = limits(3_000);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_new(&mut g, &l, 0, &mut out);
    let b = join_new(&mut g, &l, 0, &mut out);
    g.leave(&b, None, 100, &mut out).unwrap();
    let j = joins(&out);
    assert!(j
        .iter()
        .any(|(id, r)| *id == b && r.error == Some(GroupError::UnknownMemberId)));
    let done: Vec<_> = j.iter().filter(|(_, r)| r.error.is_none()).collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, a);
    assert_eq!(g.generation_id(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn sync_hands_out_the_leaders_assignment_after_persist() {
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_new(&mut g, &l, 0, &mut out);
    let b = join_new(&mut g, &l, 0, &mut out);
    form(&mut g, &mut out);
    out.clear();
    let leader = g.leader_id().unwrap().to_string();
    let follower = if leader == a { b.clone() } else { a.clone() };
    // Follower waits.
    assert!(matches!(
        g.sync(
            &follower,
            None,
            1,
            Some("consumer"),
            Some("range"),
            vec![],
            1,
            &mut out
        ),
        Reply::Later(_)
    ));
    assert!(out.is_empty());
    let assignments = vec![
        (leader.clone(), Bytes::from_static(b"L")),
        (follower.clone(), Bytes::from_static(b"F")),
    ];
    g.sync(&leader, None, 1, None, None, assignments, 1, &mut out);
    assert_eq!(out.first(), Some(&Completion::Persist));
    let s = syncs(&out);
    assert_eq!(s.len(), 2);
    for (id, r) in s {
        assert_eq!(r.error, None);
        let want: &[u8] = if id == leader { b"L" } else { b"F" };
        assert_eq!(&r.assignment[..], want);
    }
    assert_eq!(g.state(), GroupState::Stable);
    // A late sync in Stable answers at once.
    match g.sync(&follower, None, 1, None, None, vec![], 2, &mut out) {
        Reply::Now(r) => assert_eq!(&r.assignment[..], b"F"),
        Reply::Later(_) => panic!("stable sync must answer at once"),
    }
}

#[test]
fn sync_errors_stale_generation_unknown_member_and_wrong_protocol() {
    let (mut g, ids, now) = stable_group(2);
    let mut out = Vec::new();
    let err = |r: Reply<SyncResult>| match r {
        Reply::Now(r) => r.error,
        Reply::Later(_) => panic!("expected an immediate error"),
    };
    assert_eq!(
        err(g.sync(&ids[0], None, 0, None, None, vec![], now, &mut out)),
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(
        err(g.sync("nobody", None, 1, None, None, vec![], now, &mut out)),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        err(g.sync(
            &ids[0],
            None,
            1,
            Some("consumer"),
            Some("roundrobin"),
            vec![],
            now,
            &mut out
        )),
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn new_member_triggers_rebalance_and_heartbeats_say_rejoin() {
    let (mut g, ids, now) = stable_group(3);
    let l = limits(0);
    let mut out = Vec::new();
    let d = join_new(&mut g, &l, now, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    for id in &ids {
        assert_eq!(
            g.heartbeat(id, None, 1, now),
            Err(GroupError::RebalanceInProgress)
        );
    }
    // Old members rejoin; the last one completes the join phase.
    for id in &ids {
        assert!(joins(&out).is_empty());
        assert!(matches!(
            g.join(req(id, &["range", "roundrobin"]), &l, now + 1, &mut out),
            Reply::Later(_)
        ));
    }
    let j = joins(&out);
    assert_eq!(j.len(), 4);
    assert!(j.iter().any(|(id, _)| *id == d));
    assert_eq!(g.generation_id(), 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    // The old generation is now stale.
    assert_eq!(
        g.heartbeat(&ids[0], None, 1, now + 2),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(g.heartbeat(&ids[0], None, 2, now + 2), Ok(()));
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (mut g, ids, now) = stable_group(2);
    let l = limits(0);
    let mut out = Vec::new();
    // ids[0] rejoins with changed protocols -> rebalance; ids[1] never rejoins
    // but keeps heartbeating.
    g.join(req(&ids[0], &["roundrobin", "range"]), &l, now, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // ids[1] stays alive (heartbeats answer REBALANCE_IN_PROGRESS) but never rejoins.
    let mut t = now;
    while t < now + i64::from(REBALANCE) - 1 {
        t = (t + 5_000).min(now + i64::from(REBALANCE) - 1);
        assert_eq!(
            g.heartbeat(&ids[1], None, 1, t),
            Err(GroupError::RebalanceInProgress)
        );
        g.tick(t, &mut out);
    }
    assert!(joins(&out).is_empty());
    g.tick(now + i64::from(REBALANCE), &mut out);
    let j = joins(&out);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].0, ids[0]);
    assert_eq!(g.num_members(), 1);
    assert!(g.member(&ids[1]).is_none());
    // The only member's preferred protocol wins now.
    assert_eq!(g.protocol_name(), Some("roundrobin"));
}

#[test]
fn session_timeout_removes_a_silent_member_and_rebalances() {
    let (mut g, ids, now) = stable_group(2);
    let mut out = Vec::new();
    let t = now + i64::from(SESSION) - 1;
    assert_eq!(g.heartbeat(&ids[0], None, 1, t), Ok(()));
    g.tick(t, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    g.tick(now + i64::from(SESSION), &mut out);
    assert!(g.member(&ids[1]).is_none(), "silent member expired");
    assert!(g.member(&ids[0]).is_some());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn leave_removes_member_and_the_last_leave_empties_the_group() {
    let (mut g, ids, now) = stable_group(2);
    let l = limits(0);
    let mut out = Vec::new();
    assert_eq!(g.leave(&ids[1], None, now, &mut out), Ok(ids[1].clone()));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.leave("nobody", None, now, &mut out),
        Err(GroupError::UnknownMemberId)
    );
    g.join(req(&ids[0], &["range"]), &l, now, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.generation_id(), 2);
    out.clear();
    g.leave(&ids[0], None, now, &mut out).unwrap();
    // Nobody is left to join: the group is Empty at generation 3 and persisted.
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id(), 3);
    assert!(out.contains(&Completion::Persist));
    assert!(g.can_delete());
}

#[test]
fn inconsistent_protocols_are_refused() {
    let (mut g, _, now) = stable_group(1);
    let l = limits(0);
    let mut out = Vec::new();
    let r = g.join(req("", &["sticky"]), &l, now, &mut out);
    assert!(matches!(
        r,
        Reply::Now(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        })
    ));
    let mut other_type = req("", &["range"]);
    other_type.protocol_type = "connect".into();
    let r = g.join(other_type, &l, now, &mut out);
    assert!(matches!(
        r,
        Reply::Now(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        })
    ));
    // An empty group refuses an empty protocol list.
    let mut e = ClassicGroup::new("e", 0);
    let r = e.join(req("", &[]), &l, now, &mut out);
    assert!(matches!(
        r,
        Reply::Now(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        })
    ));
}

#[test]
fn protocol_selection_picks_one_every_member_supports() {
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let mk = |protocols: &[&str]| JoinRequest {
        require_known_member_id: false,
        ..req("", protocols)
    };
    g.join(mk(&["cooperative-sticky", "range"]), &l, 0, &mut out);
    g.join(mk(&["range", "cooperative-sticky"]), &l, 0, &mut out);
    g.join(mk(&["roundrobin", "range"]), &l, 0, &mut out);
    form(&mut g, &mut out);
    assert_eq!(g.protocol_name(), Some("range"));
}

#[test]
fn session_timeout_outside_limits_is_refused() {
    let l = limits(0);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let mut r = req("", &["range"]);
    r.session_timeout_ms = 1_000;
    assert!(matches!(
        g.join(r, &l, 0, &mut out),
        Reply::Now(JoinResult {
            error: Some(GroupError::InvalidSessionTimeout),
            ..
        })
    ));
}

#[test]
fn group_max_size_is_enforced() {
    let l = GroupLimits {
        max_size: 1,
        ..limits(0)
    };
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    join_new(&mut g, &l, 0, &mut out);
    let r = g.join(req("", &["range"]), &l, 0, &mut out);
    assert!(matches!(
        r,
        Reply::Now(JoinResult {
            error: Some(GroupError::GroupMaxSizeReached),
            ..
        })
    ));
}

#[test]
fn pending_member_ids_expire_after_the_session_timeout() {
    let l = limits(0);
    let (mut g, ids, now) = stable_group(1);
    let mut out = Vec::new();
    let pending = match g.join(req("", &["range"]), &l, now, &mut out) {
        Reply::Now(r) => r.member_id,
        Reply::Later(_) => unreachable!(),
    };
    let _ = g.heartbeat(&ids[0], None, 1, now + i64::from(SESSION));
    g.tick(now + i64::from(SESSION), &mut out);
    // The pending id is forgotten: rejoining with it is an unknown member.
    let r = g.join(
        req(&pending, &["range"]),
        &l,
        now + i64::from(SESSION),
        &mut out,
    );
    assert!(matches!(
        r,
        Reply::Now(JoinResult {
            error: Some(GroupError::UnknownMemberId),
            ..
        })
    ));
}

#[test]
fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let Reply::Later(a) = g.join(static_req("", "inst-a"), &l, 0, &mut out) else {
        panic!("static members join without the member id round trip")
    };
    let Reply::Later(b) = g.join(static_req("", "inst-b"), &l, 0, &mut out) else {
        panic!()
    };
    form(&mut g, &mut out);
    let leader = g.leader_id().unwrap().to_string();
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    g.sync(&leader, None, 1, None, None, assignments, 0, &mut out);
    assert_eq!(g.state(), GroupState::Stable);

    // inst-b restarts (new process, no member id) with the same protocols.
    out.clear();
    let r = match g.join(static_req("", "inst-b"), &l, 10, &mut out) {
        Reply::Now(r) => r,
        Reply::Later(_) => panic!("static rejoin must not rebalance"),
    };
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_ne!(r.member_id, b);
    assert_eq!(g.state(), GroupState::Stable);
    // It gets its old assignment.
    match g.sync(
        &r.member_id,
        Some("inst-b"),
        1,
        None,
        None,
        vec![],
        11,
        &mut out,
    ) {
        Reply::Now(s) => assert_eq!(&s.assignment[..], b"B"),
        Reply::Later(_) => panic!(),
    }
    // The old incarnation is fenced.
    assert_eq!(
        g.heartbeat(&b, Some("inst-b"), 1, 12),
        Err(GroupError::FencedInstanceId)
    );
    // Leaving by instance id with a wrong member id is fenced too.
    assert_eq!(
        g.leave(&b, Some("inst-b"), 12, &mut out),
        Err(GroupError::FencedInstanceId)
    );
    // Leaving by instance id alone works (batched LeaveGroup v3+).
    assert_eq!(
        g.leave("", Some("inst-b"), 12, &mut out),
        Ok(r.member_id.clone())
    );
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn leader_missing_sync_drops_laggards_at_the_rebalance_timeout() {
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_new(&mut g, &l, 0, &mut out);
    let b = join_new(&mut g, &l, 0, &mut out);
    form(&mut g, &mut out);
    out.clear();
    let leader = g.leader_id().unwrap().to_string();
    let follower = if leader == a { b } else { a };
    g.sync(&follower, None, 1, None, None, vec![], FORMED, &mut out);
    // Both sessions stay alive; the leader never syncs.
    let mut t = FORMED;
    while t < FORMED + i64::from(REBALANCE) - 1 {
        t = (t + 5_000).min(FORMED + i64::from(REBALANCE) - 1);
        assert_eq!(g.heartbeat(&follower, None, 1, t), Ok(()));
        assert_eq!(g.heartbeat(&leader, None, 1, t), Ok(()));
        g.tick(t, &mut out);
    }
    assert!(g.member(&leader).is_some());
    g.tick(FORMED + i64::from(REBALANCE), &mut out);
    assert!(g.member(&leader).is_none());
    let s = syncs(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.error, Some(GroupError::RebalanceInProgress));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn restored_group_is_stable_with_its_members() {
    let (g, ids, _) = stable_group(2);
    let snap = g.snapshot();
    let encoded = super::records::group_value(&snap);
    let decoded = super::records::decode_group_value(&encoded).unwrap();
    assert_eq!(decoded, snap);
    let members = decoded
        .members
        .iter()
        .map(|m| Member {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout,
            session_timeout_ms: m.session_timeout,
            protocol_type: decoded.protocol_type.clone(),
            protocols: vec![(decoded.protocol.clone().unwrap(), m.subscription.clone())],
            assignment: m.assignment.clone(),
            awaiting_join: false,
            awaiting_sync: false,
            is_new: false,
            last_heartbeat_ms: 0,
        })
        .collect();
    let r = ClassicGroup::restore(
        "g",
        Some(decoded.protocol_type.clone()),
        decoded.generation,
        decoded.protocol.clone(),
        decoded.leader.clone(),
        decoded.current_state_timestamp,
        members,
        100,
    );
    assert_eq!(r.state(), GroupState::Stable);
    assert_eq!(r.generation_id(), 1);
    assert_eq!(r.leader_id(), g.leader_id());
    assert_eq!(
        r.member(&ids[0]).unwrap().assignment,
        g.member(&ids[0]).unwrap().assignment
    );
}

#[test]
fn error_codes_match_kafka() {
    use kafka_protocol::ResponseError as K;
    let pairs = [
        (
            GroupError::CoordinatorNotAvailable,
            K::CoordinatorNotAvailable,
        ),
        (
            GroupError::CoordinatorLoadInProgress,
            K::CoordinatorLoadInProgress,
        ),
        (GroupError::InvalidGroupId, K::InvalidGroupId),
        (GroupError::UnknownMemberId, K::UnknownMemberId),
        (GroupError::MemberIdRequired, K::MemberIdRequired),
        (GroupError::IllegalGeneration, K::IllegalGeneration),
        (GroupError::RebalanceInProgress, K::RebalanceInProgress),
        (GroupError::FencedInstanceId, K::FencedInstanceId),
        (
            GroupError::InconsistentGroupProtocol,
            K::InconsistentGroupProtocol,
        ),
        (GroupError::InvalidSessionTimeout, K::InvalidSessionTimeout),
        (GroupError::GroupMaxSizeReached, K::GroupMaxSizeReached),
        (GroupError::GroupIdNotFound, K::GroupIdNotFound),
        (GroupError::NonEmptyGroup, K::NonEmptyGroup),
        (
            GroupError::UnknownTopicOrPartition,
            K::UnknownTopicOrPartition,
        ),
        (
            GroupError::OffsetMetadataTooLarge,
            K::OffsetMetadataTooLarge,
        ),
        (
            GroupError::GroupSubscribedToTopic,
            K::GroupSubscribedToTopic,
        ),
        (GroupError::InvalidRequest, K::InvalidRequest),
        (GroupError::UnstableOffsetCommit, K::UnstableOffsetCommit),
        (GroupError::InvalidProducerEpoch, K::InvalidProducerEpoch),
        (GroupError::ProducerFenced, K::ProducerFenced),
        (GroupError::UnknownServerError, K::UnknownServerError),
    ];
    for (ours, kafka) in pairs {
        assert_eq!(ours.code(), kafka.code(), "{ours:?}");
    }
}

/// Two static members (inst-a leads) in a Stable generation 1 with
/// assignments "A" and "B".
fn stable_static_pair() -> (ClassicGroup, String, String, i64) {
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let Reply::Later(a) = g.join(static_req("", "inst-a"), &l, 0, &mut out) else {
        panic!("static members join without the member id round trip")
    };
    let Reply::Later(b) = g.join(static_req("", "inst-b"), &l, 0, &mut out) else {
        panic!("static members join without the member id round trip")
    };
    form(&mut g, &mut out);
    assert_eq!(g.leader_id(), Some(a.as_str()));
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    g.sync(
        &a,
        Some("inst-a"),
        1,
        None,
        None,
        assignments,
        FORMED,
        &mut out,
    );
    assert_eq!(g.state(), GroupState::Stable);
    (g, a, b, FORMED)
}

/// Heartbeats `member` every 5 s until just before the rebalance timeout
/// that started at `from`, ticking the group; every answer says rejoin.
fn heartbeat_through_rebalance(
    g: &mut ClassicGroup,
    member: &str,
    instance: &str,
    from: i64,
    out: &mut Vec<Completion>,
) {
    let mut t = from;
    while t < from + i64::from(REBALANCE) - 1 {
        t = (t + 5_000).min(from + i64::from(REBALANCE) - 1);
        assert_eq!(
            g.heartbeat(member, Some(instance), 1, t),
            Err(GroupError::RebalanceInProgress)
        );
        g.tick(t, out);
    }
}

#[test]
fn static_member_that_does_not_rejoin_stays_in_the_next_generation() {
    // Kafka (KIP-345): at the rebalance timeout only dynamic members that
    // did not rejoin are removed; a static one stays a member, the leader
    // assigns it partitions, and it catches up without another rebalance.
    let (mut g, a, b, now) = stable_static_pair();
    let l = limits(DELAY);
    let mut out = Vec::new();
    let c = join_new(&mut g, &l, now, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(matches!(
        g.join(static_req(&a, "inst-a"), &l, now, &mut out),
        Reply::Later(_)
    ));
    heartbeat_through_rebalance(&mut g, &b, "inst-b", now, &mut out);
    assert!(joins(&out).is_empty(), "the join phase waits for inst-b");
    let end = now + i64::from(REBALANCE);
    g.tick(end, &mut out);
    let j = joins(&out);
    let mut answered: Vec<&str> = j.iter().map(|(m, _)| m.as_str()).collect();
    answered.sort();
    let mut expected = vec![a.as_str(), c.as_str()];
    expected.sort();
    assert_eq!(
        answered, expected,
        "only members that rejoined are answered"
    );
    assert_eq!(g.generation_id(), 2);
    assert_eq!(g.num_members(), 3);
    assert!(g.member(&b).is_some(), "the static member stays");
    let leader = j.iter().find(|(m, _)| *m == a).map(|(_, r)| r).unwrap();
    assert_eq!(leader.leader, a);
    assert!(leader.members.iter().any(|m| m.member_id == b));

    // Had inst-b died instead, its session timeout (restarted with the
    // generation) would remove it while the others heartbeat.
    let mut silent = g.clone();
    let mut expired = Vec::new();
    let t = end + i64::from(SESSION) - 1;
    assert_eq!(silent.heartbeat(&a, Some("inst-a"), 2, t), Ok(()));
    assert_eq!(silent.heartbeat(&c, None, 2, t), Ok(()));
    silent.tick(t, &mut expired);
    assert!(silent.member(&b).is_some());
    silent.tick(end + i64::from(SESSION), &mut expired);
    assert!(silent.member(&b).is_none(), "static member expired");
    assert!(silent.member(&a).is_some() && silent.member(&c).is_some());

    // inst-b comes back: its old generation is refused, and its rejoin gets
    // generation 2 at once (no third rebalance).
    assert_eq!(
        g.heartbeat(&b, Some("inst-b"), 1, end + 1),
        Err(GroupError::IllegalGeneration)
    );
    out.clear();
    match g.join(static_req(&b, "inst-b"), &l, end + 1, &mut out) {
        Reply::Now(r) => {
            assert_eq!(r.error, None);
            assert_eq!(r.generation_id, 2);
        }
        Reply::Later(_) => panic!("a static member of the generation must not rebalance"),
    }
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.num_members(), 3);
}

#[test]
fn static_leader_that_does_not_rejoin_hands_leadership_to_a_member_that_did() {
    let (mut g, a, b, now) = stable_static_pair();
    let l = limits(DELAY);
    let mut out = Vec::new();
    // inst-b rejoins with other protocols: a rebalance that inst-a (the
    // leader) never rejoins, though it keeps heartbeating.
    let changed = JoinRequest {
        group_instance_id: Some("inst-b".into()),
        ..req(&b, &["roundrobin", "range"])
    };
    assert!(matches!(
        g.join(changed, &l, now, &mut out),
        Reply::Later(_)
    ));
    heartbeat_through_rebalance(&mut g, &a, "inst-a", now, &mut out);
    g.tick(now + i64::from(REBALANCE), &mut out);
    let j = joins(&out);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].0, b);
    assert_eq!(
        g.leader_id(),
        Some(b.as_str()),
        "only a member that rejoined can lead"
    );
    assert_eq!(j[0].1.leader, b);
    assert_eq!(j[0].1.members.len(), 2, "the leader assigns inst-a too");
    assert!(g.member(&a).is_some());
}

#[test]
fn join_phase_stays_open_while_only_static_members_that_did_not_rejoin_remain() {
    let (mut g, a, b, now) = stable_static_pair();
    let l = limits(DELAY);
    let mut out = Vec::new();
    // inst-a leaves; inst-b keeps heartbeating but does not rejoin.
    assert_eq!(g.leave("", Some("inst-a"), now, &mut out), Ok(a.clone()));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    heartbeat_through_rebalance(&mut g, &b, "inst-b", now, &mut out);
    let end = now + i64::from(REBALANCE);
    g.tick(end, &mut out);
    // Nobody rejoined: no empty generation, the static member is kept and
    // the phase waits another rebalance timeout.
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.generation_id(), 1);
    assert!(g.member(&b).is_some());
    assert!(joins(&out).is_empty());
    // Its rejoin completes the phase at once.
    match g.join(static_req(&b, "inst-b"), &l, end + 1, &mut out) {
        Reply::Later(_) => {}
        Reply::Now(r) => panic!("unexpected immediate answer {r:?}"),
    }
    let j = joins(&out);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].1.generation_id, 2);
    assert_eq!(j[0].1.leader, b);
}

#[test]
fn static_member_restarting_while_the_leader_assigns_triggers_a_new_rebalance() {
    // Kafka: a known instance id joining with a new member id during
    // CompletingRebalance rebalances again, since the leader was given the
    // old member id and its assignment would leave the new one empty.
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let Reply::Later(a) = g.join(static_req("", "inst-a"), &l, 0, &mut out) else {
        panic!("static members join without the member id round trip")
    };
    let Reply::Later(b) = g.join(static_req("", "inst-b"), &l, 0, &mut out) else {
        panic!("static members join without the member id round trip")
    };
    form(&mut g, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let leader_view = joins(&out)
        .into_iter()
        .find(|(m, _)| *m == a)
        .map(|(_, r)| r)
        .unwrap();
    assert!(leader_view.members.iter().any(|m| m.member_id == b));

    // inst-b restarts before the leader's SyncGroup.
    out.clear();
    let new_b = match g.join(static_req("", "inst-b"), &l, FORMED + 1, &mut out) {
        Reply::Later(id) => id,
        Reply::Now(r) => panic!("answered with the stale generation: {r:?}"),
    };
    assert_ne!(new_b, b);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // The leader's assignment for generation 1 is refused; it rejoins.
    assert!(matches!(
        g.sync(
            &a,
            Some("inst-a"),
            1,
            None,
            None,
            vec![],
            FORMED + 2,
            &mut out
        ),
        Reply::Now(SyncResult {
            error: Some(GroupError::RebalanceInProgress),
            ..
        })
    ));
    assert!(matches!(
        g.join(static_req(&a, "inst-a"), &l, FORMED + 3, &mut out),
        Reply::Later(_)
    ));
    let j = joins(&out);
    let leader_view = j.iter().find(|(m, _)| *m == a).map(|(_, r)| r).unwrap();
    assert_eq!(leader_view.generation_id, 2);
    let mut ids: Vec<&str> = leader_view
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    ids.sort();
    let mut expected = vec![a.as_str(), new_b.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "the leader assigns the new member id");
}

#[test]
fn static_restart_in_stable_rebalances_only_if_the_selected_protocol_changes() {
    // Kafka: the restarted member's protocols replace the old ones; a change
    // of metadata alone keeps the generation, a change of the protocol the
    // group would select starts a rebalance.
    let (mut g, _a, b, now) = stable_static_pair();
    let l = limits(DELAY);
    let mut out = Vec::new();
    let new_meta = JoinRequest {
        protocols: vec![("range".to_string(), Bytes::from_static(b"new-subscription"))],
        ..static_req("", "inst-b")
    };
    let r = match g.join(new_meta, &l, now + 1, &mut out) {
        Reply::Now(r) => r,
        Reply::Later(_) => panic!("same selected protocol must not rebalance"),
    };
    assert_eq!(r.generation_id, 1);
    assert_ne!(r.member_id, b);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(
        &g.member(&r.member_id).unwrap().metadata("range")[..],
        b"new-subscription"
    );

    // A lone static member that now prefers another protocol: rebalance.
    let mut g = ClassicGroup::new("solo", 0);
    let mut out = Vec::new();
    let both = |order: &[&str]| JoinRequest {
        group_instance_id: Some("inst-s".into()),
        ..req("", order)
    };
    assert!(matches!(
        g.join(both(&["range", "roundrobin"]), &l, 0, &mut out),
        Reply::Later(_)
    ));
    form(&mut g, &mut out);
    let s = g.leader_id().unwrap().to_string();
    g.sync(&s, Some("inst-s"), 1, None, None, vec![], FORMED, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.protocol_name(), Some("range"));
    assert!(matches!(
        g.join(both(&["roundrobin", "range"]), &l, FORMED + 1, &mut out),
        Reply::Later(_)
    ));
    assert_eq!(g.generation_id(), 2, "its own join completes the rebalance");
    assert_eq!(g.protocol_name(), Some("roundrobin"));
}

#[test]
fn member_that_never_syncs_is_removed_at_the_rebalance_timeout_even_after_the_leader_synced() {
    // Kafka's pending-sync expiration covers CompletingRebalance and Stable:
    // the leader's SyncGroup makes the group Stable, but a follower that
    // never sends its own is removed and the group rebalances.
    let l = limits(DELAY);
    let mut g = ClassicGroup::new("g", 0);
    let mut out = Vec::new();
    let a = join_new(&mut g, &l, 0, &mut out);
    let b = join_new(&mut g, &l, 0, &mut out);
    form(&mut g, &mut out);
    let leader = g.leader_id().unwrap().to_string();
    let follower = if leader == a { b.clone() } else { a.clone() };
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    g.sync(&leader, None, 1, None, None, assignments, FORMED, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    // Both keep heartbeating; the follower never syncs.
    let deadline = FORMED + i64::from(REBALANCE);
    let mut t = FORMED;
    while t < deadline - 1 {
        t = (t + 5_000).min(deadline - 1);
        assert_eq!(g.heartbeat(&leader, None, 1, t), Ok(()));
        assert_eq!(g.heartbeat(&follower, None, 1, t), Ok(()));
        g.tick(t, &mut out);
        assert_eq!(g.state(), GroupState::Stable);
    }
    g.tick(deadline, &mut out);
    assert!(g.member(&follower).is_none(), "the follower never synced");
    assert!(g.member(&leader).is_some());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn members_that_all_synced_are_kept_past_the_rebalance_timeout() {
    let (mut g, ids, now) = stable_group(2);
    let mut out = Vec::new();
    let t = now + i64::from(REBALANCE) + 1;
    for id in &ids {
        assert_eq!(g.heartbeat(id, None, 1, t - 1), Ok(()));
    }
    g.tick(t, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.num_members(), 2);
}
