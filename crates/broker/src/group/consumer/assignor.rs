//! Server-side assignors of the consumer group protocol (KIP-848): `uniform`
//! and `range`, pure functions from the group's members, their subscribed
//! topics and their current target assignment to a new target assignment.
//!
//! Both are sticky: a partition stays with its current owner unless the owner
//! no longer subscribes to it, the partition is gone, or the owner holds more
//! than its share. So a member joining takes partitions only from members
//! above the new share, and nobody else moves.
//!
//! - `uniform` spreads every subscribed partition over all members that
//!   subscribe to its topic, so that member loads differ by at most one when
//!   the subscriptions allow it (always, when every member subscribes to the
//!   same topics).
//! - `range` works topic by topic: the members subscribed to a topic, sorted
//!   by member id, each get `partitions / members` partitions of it (the first
//!   `partitions % members` one more), as contiguous ranges when nothing is
//!   retained from a previous assignment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// One member as the assignor sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// The topics (by id) the member subscribes to that exist.
    pub subscribed: BTreeSet<Uuid>,
    /// The member's current target assignment.
    pub current: Assignment,
}

/// The input of an assignor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignmentSpec {
    /// Members by member id.
    pub members: BTreeMap<String, MemberSpec>,
    /// Number of partitions of every subscribed topic.
    pub topics: BTreeMap<Uuid, i32>,
}

/// The server assignors (`group.consumer.assignors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignorKind {
    Uniform,
    Range,
}

impl AssignorKind {
    /// The name clients use in `group.remote.assignor`.
    pub fn name(self) -> &'static str {
        match self {
            AssignorKind::Uniform => "uniform",
            AssignorKind::Range => "range",
        }
    }

    /// Parses an assignor name (Kafka's short names, or the class names of
    /// its built-in assignors).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => {
                Some(AssignorKind::Uniform)
            }
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => {
                Some(AssignorKind::Range)
            }
            _ => None,
        }
    }

    /// Computes the target assignment: one entry per member (possibly empty).
    pub fn assign(self, spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
        match self {
            AssignorKind::Uniform => uniform(spec),
            AssignorKind::Range => range(spec),
        }
    }
}

fn valid(spec: &AssignmentSpec, member: &MemberSpec, topic: &Uuid, partition: i32) -> bool {
    member.subscribed.contains(topic)
        && spec
            .topics
            .get(topic)
            .is_some_and(|&n| partition >= 0 && partition < n)
}

/// The `uniform` assignor.
pub fn uniform(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let ids: Vec<&String> = spec.members.keys().collect();
    let n_members = ids.len();
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); n_members];
    let mut taken: HashMap<(Uuid, i32), usize> = HashMap::new();
    let homogeneous = spec
        .members
        .values()
        .map(|m| &m.subscribed)
        .collect::<BTreeSet<_>>()
        .len()
        <= 1;
    // Total partitions the members subscribe to, for the homogeneous quota.
    let all_subscribed: BTreeSet<Uuid> = spec
        .members
        .values()
        .flat_map(|m| m.subscribed.iter().copied())
        .filter(|t| spec.topics.contains_key(t))
        .collect();
    let total: usize = all_subscribed
        .iter()
        .map(|t| spec.topics[t].max(0) as usize)
        .sum();
    // 1. Retain current partitions that are still valid (each partition
    //    once). With homogeneous subscriptions a member keeps at most its
    //    quota (`total / members`, `+1` for the first `total % members`
    //    members that already hold more).
    let (min_quota, mut extras) = match total.checked_div(n_members) {
        Some(q) => (q, total % n_members),
        None => (0, 0),
    };
    for (i, id) in ids.iter().enumerate() {
        let m = &spec.members[*id];
        let mut keep: Vec<(Uuid, i32)> = Vec::new();
        for (t, ps) in &m.current {
            for &p in ps {
                if valid(spec, m, t, p) && !taken.contains_key(&(*t, p)) {
                    keep.push((*t, p));
                }
            }
        }
        if homogeneous {
            let quota = if keep.len() > min_quota && extras > 0 {
                extras -= 1;
                min_quota + 1
            } else {
                min_quota
            };
            keep.truncate(quota);
        }
        for tp in keep {
            taken.insert(tp, i);
            owned[i].insert(tp);
        }
    }
    // 2. Give every unassigned partition to the least loaded member that
    //    subscribes to its topic (ties: member id order).
    for t in &all_subscribed {
        for p in 0..spec.topics[t] {
            if taken.contains_key(&(*t, p)) {
                continue;
            }
            let best = ids
                .iter()
                .enumerate()
                .filter(|(_, id)| spec.members[**id].subscribed.contains(t))
                .min_by_key(|(i, _)| (owned[*i].len(), *i))
                .map(|(i, _)| i);
            if let Some(i) = best {
                taken.insert((*t, p), i);
                owned[i].insert((*t, p));
            }
        }
    }
    // 3. Balance: move a partition from a member holding at least two more
    //    than another member that subscribes to its topic. Each move lowers
    //    the sum of squared loads, so this ends.
    loop {
        let mut order: Vec<usize> = (0..n_members).collect();
        order.sort_by_key(|&i| (owned[i].len(), i));
        let mut moved = false;
        'search: for &heavy in order.iter().rev() {
            for &light in &order {
                if owned[light].len() + 1 >= owned[heavy].len() {
                    break;
                }
                let subs = &spec.members[ids[light]].subscribed;
                if let Some(&tp) = owned[heavy].iter().rev().find(|(t, _)| subs.contains(t)) {
                    owned[heavy].remove(&tp);
                    owned[light].insert(tp);
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
    ids.iter()
        .zip(owned)
        .map(|(id, set)| ((*id).clone(), to_assignment(set)))
        .collect()
}

fn to_assignment(set: BTreeSet<(Uuid, i32)>) -> Assignment {
    let mut a = Assignment::new();
    for (t, p) in set {
        a.entry(t).or_default().insert(p);
    }
    a
}

/// The `range` assignor.
pub fn range(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (&topic, &n) in &spec.topics {
        let members: Vec<(&String, &MemberSpec)> = spec
            .members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(&topic))
            .collect();
        if members.is_empty() || n <= 0 {
            continue;
        }
        let n = n as usize;
        let min_quota = n / members.len();
        let mut extras = n % members.len();
        let mut retained: Vec<Vec<i32>> = Vec::with_capacity(members.len());
        let mut leftover: Vec<Vec<i32>> = Vec::with_capacity(members.len());
        let mut taken: BTreeSet<i32> = BTreeSet::new();
        for (_, m) in &members {
            let mut cur: Vec<i32> = m
                .current
                .get(&topic)
                .map(|ps| {
                    ps.iter()
                        .copied()
                        .filter(|&p| p >= 0 && (p as usize) < n)
                        .collect()
                })
                .unwrap_or_default();
            cur.retain(|p| !taken.contains(p));
            let rest = cur.split_off(cur.len().min(min_quota));
            taken.extend(cur.iter().copied());
            retained.push(cur);
            leftover.push(rest);
        }
        let mut has_extra = vec![false; members.len()];
        for i in 0..members.len() {
            if extras == 0 {
                break;
            }
            if let Some(&p) = leftover[i].iter().find(|p| !taken.contains(p)) {
                retained[i].push(p);
                taken.insert(p);
                has_extra[i] = true;
                extras -= 1;
            }
        }
        let mut free = (0..n as i32).filter(|p| !taken.contains(p));
        for i in 0..members.len() {
            let quota = if has_extra[i] {
                min_quota + 1
            } else if extras > 0 {
                extras -= 1;
                min_quota + 1
            } else {
                min_quota
            };
            while retained[i].len() < quota {
                match free.next() {
                    Some(p) => retained[i].push(p),
                    None => break,
                }
            }
        }
        for ((id, _), ps) in members.iter().zip(retained) {
            if !ps.is_empty() {
                out.get_mut(*id)
                    .expect("every member has an entry")
                    .entry(topic)
                    .or_default()
                    .extend(ps);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic(i: u8) -> Uuid {
        Uuid::from_u128(u128::from(i) + 1)
    }

    fn spec(members: &[(&str, &[u8])], topics: &[(u8, i32)]) -> AssignmentSpec {
        AssignmentSpec {
            members: members
                .iter()
                .map(|(id, subs)| {
                    (
                        id.to_string(),
                        MemberSpec {
                            subscribed: subs.iter().map(|&t| topic(t)).collect(),
                            current: Assignment::new(),
                        },
                    )
                })
                .collect(),
            topics: topics.iter().map(|&(t, n)| (topic(t), n)).collect(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn with_current(mut s: AssignmentSpec, cur: &BTreeMap<String, Assignment>) -> AssignmentSpec {
        for (id, m) in s.members.iter_mut() {
            m.current = cur.get(id).cloned().unwrap_or_default();
        }
        s
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let s = spec(&[("a", &[0]), ("b", &[0]), ("c", &[0])], &[(0, 7)]);
        let out = range(&s);
        let ps = |id: &str| -> Vec<i32> {
            out[id]
                .get(&topic(0))
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default()
        };
        assert_eq!(ps("a"), vec![0, 1, 2]);
        assert_eq!(ps("b"), vec![3, 4]);
        assert_eq!(ps("c"), vec![5, 6]);
    }

    #[test]
    fn uniform_three_members_six_partitions_get_two_each() {
        let s = spec(&[("a", &[0]), ("b", &[0]), ("c", &[0])], &[(0, 6)]);
        let out = uniform(&s);
        assert!(out.values().all(|a| count(a) == 2), "{out:?}");
    }

    #[test]
    fn uniform_fourth_member_takes_only_from_others() {
        let s = spec(&[("a", &[0]), ("b", &[0]), ("c", &[0])], &[(0, 6)]);
        let first = uniform(&s);
        let s2 = with_current(
            spec(
                &[("a", &[0]), ("b", &[0]), ("c", &[0]), ("d", &[0])],
                &[(0, 6)],
            ),
            &first,
        );
        let second = uniform(&s2);
        for id in ["a", "b", "c"] {
            let before = &first[id][&topic(0)];
            let after = second[id].get(&topic(0)).cloned().unwrap_or_default();
            assert!(after.is_subset(before), "{id} gained a partition");
        }
        assert!(count(&second["d"]) >= 1);
    }

    fn arb_spec() -> impl Strategy<Value = AssignmentSpec> {
        (
            proptest::collection::vec(0i32..12, 1..4),
            proptest::collection::vec(proptest::collection::btree_set(0u8..3, 0..4), 0..8),
        )
            .prop_map(|(topics, subs)| AssignmentSpec {
                members: subs
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        (
                            format!("m{i}"),
                            MemberSpec {
                                subscribed: s.into_iter().map(topic).collect(),
                                current: Assignment::new(),
                            },
                        )
                    })
                    .collect(),
                topics: topics
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (topic(i as u8), n))
                    .collect(),
            })
    }

    /// Every partition of a topic some member subscribes to goes to exactly
    /// one member, and only to a member that subscribes to it.
    fn check_cover(s: &AssignmentSpec, out: &BTreeMap<String, Assignment>) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for (id, a) in out {
            let m = s.members.get(id).ok_or("unknown member")?;
            for (t, ps) in a {
                for &p in ps {
                    if !valid(s, m, t, p) {
                        return Err(format!("{id} got {t}-{p} it does not subscribe to"));
                    }
                    if !seen.insert((*t, p)) {
                        return Err(format!("{t}-{p} assigned twice"));
                    }
                }
            }
        }
        for (t, &n) in &s.topics {
            if s.members.values().any(|m| m.subscribed.contains(t)) {
                for p in 0..n {
                    if !seen.contains(&(*t, p)) {
                        return Err(format!("{t}-{p} not assigned"));
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn assignors_cover_every_partition_once(s in arb_spec(), kind in prop_oneof![Just(AssignorKind::Uniform), Just(AssignorKind::Range)]) {
            let out = kind.assign(&s);
            prop_assert_eq!(out.len(), s.members.len());
            check_cover(&s, &out).map_err(TestCaseError::fail)?;
            // Again from the previous result (sticky path) and after a member change.
            let again = kind.assign(&with_current(s.clone(), &out));
            check_cover(&s, &again).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&again, &out, "a second run with nothing changed moves nothing");
        }

        #[test]
        fn uniform_homogeneous_is_balanced_and_sticky(n_members in 1usize..7, extra in 1usize..4,
                                                       parts in proptest::collection::vec(0i32..10, 1..4)) {
            let ids: Vec<String> = (0..n_members + extra).map(|i| format!("m{i:02}")).collect();
            let topics: BTreeMap<Uuid, i32> = parts.iter().enumerate().map(|(i, &n)| (topic(i as u8), n)).collect();
            let subs: BTreeSet<Uuid> = topics.keys().copied().collect();
            let mk = |ids: &[String], cur: &BTreeMap<String, Assignment>| AssignmentSpec {
                members: ids.iter().map(|id| (id.clone(), MemberSpec { subscribed: subs.clone(),
                    current: cur.get(id).cloned().unwrap_or_default() })).collect(),
                topics: topics.clone(),
            };
            let first_spec = mk(&ids[..n_members], &BTreeMap::new());
            let first = uniform(&first_spec);
            let loads: Vec<usize> = first.values().map(count).collect();
            prop_assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{:?}", loads);
            // New members join: existing members only lose partitions.
            let second_spec = mk(&ids, &first);
            let second = uniform(&second_spec);
            check_cover(&second_spec, &second).map_err(TestCaseError::fail)?;
            let loads: Vec<usize> = second.values().map(count).collect();
            prop_assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{:?}", loads);
            for id in &ids[..n_members] {
                for (t, ps) in &second[id] {
                    let before = first[id].get(t).cloned().unwrap_or_default();
                    prop_assert!(ps.is_subset(&before), "{} gained a partition of {}", id, t);
                }
            }
            // A member leaves: the others keep everything they had.
            let remaining: Vec<String> = ids[1..].to_vec();
            let third_spec = mk(&remaining, &second);
            let third = uniform(&third_spec);
            check_cover(&third_spec, &third).map_err(TestCaseError::fail)?;
            for id in &remaining {
                for (t, ps) in &second[id] {
                    let after = third[id].get(t).cloned().unwrap_or_default();
                    prop_assert!(ps.is_subset(&after), "{} lost a partition of {} when another member left", id, t);
                }
            }
        }
    }
}
