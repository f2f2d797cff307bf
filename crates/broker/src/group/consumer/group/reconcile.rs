//! A consumer group's target assignment and each member's way to it
//! (Kafka's `TargetAssignmentBuilder` and `CurrentAssignmentBuilder`), and
//! the resolution of subscription regexes against the topics.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{
    assignment_changed, ConsumerGroup, ConsumerGroupConfig, ConsumerMember, ConsumerRecord,
    MemberAssignmentState, MemberState, TopicsView,
};
use crate::group::consumer::assignor::{Assignment, AssignmentSpec, MemberSpec};

impl ConsumerGroup {
    /// The member's regex (source and compiled) once it has been resolved.
    pub(super) fn active_regex<'a>(
        &self,
        m: &'a ConsumerMember,
    ) -> Option<(&'a str, &'a regex::Regex)> {
        let src = m.subscription.subscribed_topic_regex.as_deref()?;
        let r = m.regex.as_ref()?;
        self.resolved_regexes.contains(src).then_some((src, r))
    }

    pub(super) fn resolve_regexes(&mut self) {
        self.resolved_regexes = self
            .members
            .values()
            .filter_map(|m| m.subscription.subscribed_topic_regex.clone())
            .collect();
    }

    /// Resolves a member's subscription to topic ids that exist.
    pub(super) fn resolved_subscription(
        &self,
        m: &ConsumerMember,
        topics: &TopicsView,
    ) -> BTreeSet<Uuid> {
        let mut out: BTreeSet<Uuid> = m
            .subscription
            .subscribed_topic_names
            .iter()
            .filter_map(|n| topics.get(n).map(|t| t.id))
            .collect();
        if let Some((_, r)) = self.active_regex(m) {
            out.extend(
                topics
                    .iter()
                    .filter(|(n, _)| r.is_match(n))
                    .map(|(_, t)| t.id),
            );
        }
        out
    }

    pub(super) fn compute_target(
        &mut self,
        topics: &TopicsView,
        config: &ConsumerGroupConfig,
        out: &mut Vec<ConsumerRecord>,
    ) {
        let kind = self.assignor(config);
        let mut spec = AssignmentSpec::default();
        for (id, m) in &self.members {
            let subscribed = self.resolved_subscription(m, topics);
            for t in topics.values() {
                if subscribed.contains(&t.id) {
                    spec.topics.insert(t.id, t.partitions);
                }
            }
            spec.members.insert(
                id.clone(),
                MemberSpec {
                    subscribed,
                    current: self.target_of(id),
                },
            );
        }
        let new = kind.assign(&spec);
        for (id, a) in new {
            let old = self.target_of(&id);
            if assignment_changed(&old, &a) {
                out.push(ConsumerRecord::TargetMember {
                    member_id: id.clone(),
                    assignment: a.clone(),
                });
                self.target.insert(id, a);
            }
        }
        self.assignment_epoch = self.group_epoch;
        out.push(ConsumerRecord::TargetEpoch {
            epoch: self.assignment_epoch,
        });
    }

    /// Kafka's `CurrentAssignmentBuilder`: the member's next assignment
    /// state towards `target` at the assignment epoch.
    pub(super) fn next_assignment(
        &self,
        cur: &MemberAssignmentState,
        target: &Assignment,
        owned: Option<&Assignment>,
    ) -> MemberAssignmentState {
        let owns_any = |revoking: &Assignment| -> bool {
            match owned {
                None => true,
                Some(o) => o.iter().any(|(t, ps)| {
                    revoking
                        .get(t)
                        .is_some_and(|r| ps.iter().any(|p| r.contains(p)))
                }),
            }
        };
        match cur.state {
            MemberState::Stable => {
                if cur.member_epoch != self.assignment_epoch {
                    self.compute_next(cur, cur.member_epoch, target, &owns_any)
                } else {
                    cur.clone()
                }
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(&cur.pending_revocation) {
                    cur.clone()
                } else {
                    self.compute_next(cur, cur.member_epoch + 1, target, &owns_any)
                }
            }
            MemberState::UnreleasedPartitions => {
                self.compute_next(cur, cur.member_epoch, target, &owns_any)
            }
            MemberState::Unknown => {
                if owned.is_none_or(|o| o.values().any(|p| !p.is_empty())) {
                    // Kafka fences such a member; keep it where it is.
                    cur.clone()
                } else {
                    self.compute_next(cur, self.assignment_epoch, target, &owns_any)
                }
            }
        }
    }

    pub(super) fn compute_next(
        &self,
        cur: &MemberAssignmentState,
        member_epoch: i32,
        target: &Assignment,
        owns_any: &dyn Fn(&Assignment) -> bool,
    ) -> MemberAssignmentState {
        let mut unreleased = false;
        let mut assigned = Assignment::new();
        let mut revoking = Assignment::new();
        let mut to_assign = Assignment::new();
        let topics: BTreeSet<Uuid> = target.keys().chain(cur.assigned.keys()).copied().collect();
        let empty = BTreeSet::new();
        for t in topics {
            let tgt = target.get(&t).unwrap_or(&empty);
            let have = cur.assigned.get(&t).unwrap_or(&empty);
            let keep: BTreeSet<i32> = have.intersection(tgt).copied().collect();
            let revoke: BTreeSet<i32> = have.difference(&keep).copied().collect();
            let mut add: BTreeSet<i32> = tgt.difference(&keep).copied().collect();
            let before = add.len();
            add.retain(|p| self.current_partition_epoch(t, *p) == -1);
            unreleased |= add.len() != before;
            if !keep.is_empty() {
                assigned.insert(t, keep);
            }
            if !revoke.is_empty() {
                revoking.insert(t, revoke);
            }
            if !add.is_empty() {
                to_assign.insert(t, add);
            }
        }
        let bump = |epoch: i32| (epoch, cur.member_epoch);
        if !revoking.is_empty() && owns_any(&revoking) {
            let (e, prev) = bump(member_epoch);
            MemberAssignmentState {
                member_epoch: e,
                previous_member_epoch: prev,
                state: MemberState::UnrevokedPartitions,
                assigned,
                pending_revocation: revoking,
            }
        } else {
            for (t, ps) in to_assign {
                assigned.entry(t).or_default().extend(ps);
            }
            let (e, prev) = bump(self.assignment_epoch);
            MemberAssignmentState {
                member_epoch: e,
                previous_member_epoch: prev,
                state: if unreleased {
                    MemberState::UnreleasedPartitions
                } else {
                    MemberState::Stable
                },
                assigned,
                pending_revocation: Assignment::new(),
            }
        }
    }
}
