//! The consumer group state machine of KIP-848 (pure, clock injected).
//!
//! A group has a *group epoch* (bumped whenever a member joins, leaves,
//! changes its subscription, or the subscribed topics' metadata changes), a
//! *target assignment* computed by a server assignor for a group epoch (the
//! *assignment epoch*), and members that each move from their current
//! assignment towards their target one heartbeat at a time, as Kafka's
//! `CurrentAssignmentBuilder` does:
//!
//! - a member first gives up (revokes) the partitions that are not in its
//!   target, staying at its epoch in state `UnrevokedPartitions` until a
//!   heartbeat no longer lists them as owned;
//! - it is then moved to the assignment epoch and given the target
//!   partitions nobody else still owns; partitions another member still owns
//!   or is revoking are *unreleased* and given later (state
//!   `UnreleasedPartitions`), so no partition is ever owned by two members.
//!
//! Every change is described by [`ConsumerRecord`]s, which the coordinator
//! writes to `__consumer_offsets`; [`ConsumerGroup::replay`] rebuilds a group
//! from them on start.
//!
//! This file holds the group's types, state and bookkeeping; `heartbeat`
//! (one ConsumerGroupHeartbeat, phase by phase) and `reconcile` (target
//! assignments and each member's way to its target) are its child modules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::assignor::{Assignment, AssignorKind};
use crate::group::GroupError;

mod heartbeat;
mod reconcile;

/// Member epoch of a leave request.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member's temporary leave.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Longest regular expression a member may subscribe with.
const MAX_REGEX_LEN: usize = 4096;

/// The `group.consumer.*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub max_size: usize,
    /// The first one is the default.
    pub assignors: Vec<AssignorKind>,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            assignors: vec![AssignorKind::Uniform, AssignorKind::Range],
        }
    }
}

/// A member's reconciliation state (Kafka's `MemberState`, same byte values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemberState {
    #[default]
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
    Unknown,
}

impl MemberState {
    pub fn value(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }
    pub fn from_value(v: i8) -> Self {
        match v {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// The group state (Kafka's `ConsumerGroupState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
        }
    }
}

/// What a member told the coordinator about itself (the
/// ConsumerGroupMemberMetadata record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Sorted, without duplicates.
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// A member's current assignment (the ConsumerGroupCurrentMemberAssignment
/// record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAssignmentState {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// Partitions the member owns (or is being given).
    pub assigned: Assignment,
    /// Partitions the member must give up.
    pub pending_revocation: Assignment,
}

/// One member of a consumer group.
#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub member_id: String,
    pub subscription: MemberSubscription,
    pub assignment: MemberAssignmentState,
    /// The member is removed when no heartbeat arrives before this.
    pub session_deadline_ms: i64,
    /// While revoking: the member is removed if it has not revoked by this.
    pub rebalance_deadline_ms: Option<i64>,
    regex: Option<regex::Regex>,
}

impl ConsumerMember {
    fn new(member_id: &str) -> Self {
        ConsumerMember {
            member_id: member_id.to_string(),
            subscription: MemberSubscription {
                rebalance_timeout_ms: -1,
                ..MemberSubscription::default()
            },
            assignment: MemberAssignmentState::default(),
            session_deadline_ms: i64::MAX,
            rebalance_deadline_ms: None,
            regex: None,
        }
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.assignment.state == MemberState::Stable && self.assignment.member_epoch == epoch
    }

    /// Whether the member subscribes to `topic` (by name or regex).
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscription
            .subscribed_topic_names
            .binary_search_by(|t| t.as_str().cmp(topic))
            .is_ok()
            || self.regex.as_ref().is_some_and(|r| r.is_match(topic))
    }

    fn compile_regex(&mut self) {
        self.regex = self
            .subscription
            .subscribed_topic_regex
            .as_deref()
            .and_then(|r| compile_regex(r).ok());
    }
}

/// Compiles a subscription regex: it must match the whole topic name, as
/// RE2/J's `matches()` does in Kafka.
pub fn compile_regex(re: &str) -> Result<regex::Regex, GroupError> {
    if re.len() > MAX_REGEX_LEN {
        return Err(GroupError::InvalidRegularExpression);
    }
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|_| GroupError::InvalidRegularExpression)
}

/// A topic as the group sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicView {
    pub id: Uuid,
    pub partitions: i32,
}

/// The cluster's (non-internal) topics by name.
pub type TopicsView = BTreeMap<String, TopicView>;

/// A change of a consumer group, as stored in `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerRecord {
    /// ConsumerGroupMetadata: the group epoch and the hash of the
    /// subscribed topics' metadata.
    GroupMetadata {
        epoch: i32,
        metadata_hash: i64,
    },
    /// ConsumerGroupMemberMetadata.
    Member {
        member_id: String,
        subscription: MemberSubscription,
    },
    MemberTombstone {
        member_id: String,
    },
    /// ConsumerGroupTargetAssignmentMember.
    TargetMember {
        member_id: String,
        assignment: Assignment,
    },
    TargetMemberTombstone {
        member_id: String,
    },
    /// ConsumerGroupTargetAssignmentMetadata.
    TargetEpoch {
        epoch: i32,
    },
    /// ConsumerGroupCurrentMemberAssignment.
    CurrentAssignment {
        member_id: String,
        assignment: MemberAssignmentState,
    },
    CurrentAssignmentTombstone {
        member_id: String,
    },
    /// Tombstones of the group-level records (the group is deleted).
    GroupTombstone,
}

/// A ConsumerGroupHeartbeat, as the engine sees it.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatRequest {
    /// Never empty (the coordinator generates one for v0 joins).
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns, `None` if not sent.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// The engine's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the request was a full one or the assignment changed.
    pub assignment: Option<Assignment>,
}

/// Checks a heartbeat the way Kafka does before it looks at the group
/// (INVALID_REQUEST, UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION); the
/// error comes with Kafka's message.
pub fn validate_heartbeat(
    req: &HeartbeatRequest,
    api_version: i16,
    config: &ConsumerGroupConfig,
) -> Result<(), (GroupError, String)> {
    let invalid = |m: &str| Err((GroupError::InvalidRequest, m.to_string()));
    let empty = |s: &Option<String>| s.as_deref().is_some_and(|s| s.trim().is_empty());
    if (api_version >= 1 || req.member_epoch > 0 || req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH)
        && req.member_id.trim().is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    // Stored keys carry the member id as an INT16-length string.
    if req.member_id.len() > i16::MAX as usize {
        return invalid("MemberId is too long.");
    }
    if empty(&req.instance_id) {
        return invalid("InstanceId can't be empty.");
    }
    if empty(&req.rack_id) {
        return invalid("RackId can't be empty.");
    }
    if req.member_epoch == 0 {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if req.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(re) = &req.subscribed_topic_regex {
        if !re.is_empty() {
            compile_regex(re).map_err(|e| {
                (
                    e,
                    format!("SubscribedTopicRegex `{re}` is not a valid regular expression."),
                )
            })?;
        }
    }
    if let Some(a) = &req.server_assignor {
        // Members name an assignor by its short name only.
        if !config.assignors.iter().any(|k| k.name() == a) {
            let names: Vec<&str> = config.assignors.iter().map(|k| k.name()).collect();
            return Err((
                GroupError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A consumer group (KIP-848).
#[derive(Clone, Debug)]
pub struct ConsumerGroup {
    group_id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    metadata_hash: i64,
    members: BTreeMap<String, ConsumerMember>,
    /// instance id -> member id.
    static_members: HashMap<String, String>,
    /// Target assignment by member id.
    target: BTreeMap<String, Assignment>,
    /// (topic, partition) -> epoch of the member that owns it (assigned or
    /// pending revocation).
    partition_epochs: HashMap<(Uuid, i32), i32>,
    /// When the group last became empty (or was loaded).
    empty_since_ms: i64,
    /// Subscription regexes that have been resolved against the topics. As
    /// in Kafka, where regexes are resolved asynchronously, a regex new to
    /// the group takes effect from the next heartbeat (of any member), so a
    /// member subscribing to names and a new regex gets the named topics
    /// first and the matches one heartbeat later.
    resolved_regexes: BTreeSet<String>,
}

fn assignment_changed(a: &Assignment, b: &Assignment) -> bool {
    let nonempty = |x: &Assignment| -> Assignment {
        x.iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(t, p)| (*t, p.clone()))
            .collect()
    };
    nonempty(a) != nonempty(b)
}

impl ConsumerGroup {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            metadata_hash: 0,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            partition_epochs: HashMap::new(),
            empty_since_ms: now_ms,
            resolved_regexes: BTreeSet::new(),
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }
    pub fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }
    pub fn member(&self, member_id: &str) -> Option<&ConsumerMember> {
        self.members.get(member_id)
    }
    pub fn num_members(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn empty_since_ms(&self) -> i64 {
        self.empty_since_ms
    }
    /// The member's target assignment (empty if none).
    pub fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the group uses: the one most members ask for among the
    /// configured ones, else the first configured one.
    pub fn assignor(&self, config: &ConsumerGroupConfig) -> AssignorKind {
        let mut votes: BTreeMap<&'static str, (usize, AssignorKind)> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(k) = m
                .subscription
                .server_assignor
                .as_deref()
                .and_then(AssignorKind::parse)
                .filter(|k| config.assignors.contains(k))
            {
                votes.entry(k.name()).or_insert((0, k)).0 += 1;
            }
        }
        votes
            .values()
            .max_by_key(|(n, k)| (*n, std::cmp::Reverse(k.name())))
            .map(|(_, k)| *k)
            .or_else(|| config.assignors.first().copied())
            .unwrap_or(AssignorKind::Uniform)
    }

    /// Topic names any member subscribes to (by name, or by regex among
    /// `topics`).
    pub fn subscribed_topics(&self, topics: Option<&TopicsView>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        // Members usually share one regex: match each distinct one once.
        let mut regexes: BTreeMap<&str, &regex::Regex> = BTreeMap::new();
        for m in self.members.values() {
            out.extend(m.subscription.subscribed_topic_names.iter().cloned());
            if let Some((src, r)) = self.active_regex(m) {
                regexes.insert(src, r);
            }
        }
        if let Some(topics) = topics {
            for r in regexes.values() {
                out.extend(topics.keys().filter(|t| r.is_match(t)).cloned());
            }
        }
        out
    }

    fn metadata_hash_of(&self, topics: &TopicsView) -> i64 {
        // FNV-1a over the subscribed topics' (name, id, partitions).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for name in self.subscribed_topics(Some(topics)) {
            if let Some(t) = topics.get(&name) {
                eat(name.as_bytes());
                eat(&[0]);
                eat(t.id.as_bytes());
                eat(&t.partitions.to_be_bytes());
            }
        }
        h as i64
    }

    // ---- partition epochs ----

    fn remove_partition_epochs(&mut self, a: &MemberAssignmentState) {
        for (t, ps) in a.assigned.iter().chain(a.pending_revocation.iter()) {
            for p in ps {
                self.partition_epochs.remove(&(*t, *p));
            }
        }
    }

    fn add_partition_epochs(&mut self, a: &MemberAssignmentState) {
        for (t, ps) in a.assigned.iter().chain(a.pending_revocation.iter()) {
            for p in ps {
                self.partition_epochs.insert((*t, *p), a.member_epoch);
            }
        }
    }

    /// Epoch of the member owning the partition, -1 if free.
    pub fn current_partition_epoch(&self, topic: Uuid, partition: i32) -> i32 {
        self.partition_epochs
            .get(&(topic, partition))
            .copied()
            .unwrap_or(-1)
    }

    fn set_assignment(&mut self, member_id: &str, a: MemberAssignmentState) {
        if let Some(old) = self.members.get(member_id).map(|m| m.assignment.clone()) {
            self.remove_partition_epochs(&old);
        }
        self.add_partition_epochs(&a);
        if let Some(m) = self.members.get_mut(member_id) {
            m.assignment = a;
        }
    }

    fn insert_member(&mut self, m: ConsumerMember) {
        let id = m.member_id.clone();
        if let Some(old) = self.members.remove(&id) {
            self.remove_partition_epochs(&old.assignment);
            if let Some(i) = &old.subscription.instance_id {
                if self.static_members.get(i) == Some(&id) {
                    self.static_members.remove(i);
                }
            }
        }
        if let Some(i) = &m.subscription.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        self.add_partition_epochs(&m.assignment);
        self.members.insert(id, m);
    }

    fn drop_member(&mut self, member_id: &str, now_ms: i64) {
        if let Some(old) = self.members.remove(member_id) {
            self.remove_partition_epochs(&old.assignment);
            if let Some(i) = &old.subscription.instance_id {
                if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(i);
                }
            }
        }
        self.target.remove(member_id);
        if self.members.is_empty() {
            self.empty_since_ms = now_ms;
        }
    }

    /// Removes a member (leave, session or rebalance timeout) and bumps the
    /// group epoch, so the others get a new target assignment.
    fn remove_member(&mut self, member_id: &str, now_ms: i64, out: &mut Vec<ConsumerRecord>) {
        out.push(ConsumerRecord::CurrentAssignmentTombstone {
            member_id: member_id.to_string(),
        });
        out.push(ConsumerRecord::TargetMemberTombstone {
            member_id: member_id.to_string(),
        });
        out.push(ConsumerRecord::MemberTombstone {
            member_id: member_id.to_string(),
        });
        self.drop_member(member_id, now_ms);
        self.group_epoch += 1;
        out.push(ConsumerRecord::GroupMetadata {
            epoch: self.group_epoch,
            metadata_hash: self.metadata_hash,
        });
    }

    /// Removes members whose session expired or that did not revoke in
    /// time. Returns the removed member ids.
    pub fn expire_members(&mut self, now_ms: i64, out: &mut Vec<ConsumerRecord>) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now_ms
                    || (m.assignment.state == MemberState::UnrevokedPartitions
                        && m.rebalance_deadline_ms.is_some_and(|d| d <= now_ms))
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id, now_ms, out);
        }
        expired
    }

    /// Records that delete the whole group (it must be empty).
    pub fn delete_records(&self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        for id in self.target.keys() {
            out.push(ConsumerRecord::TargetMemberTombstone {
                member_id: id.clone(),
            });
        }
        out.push(ConsumerRecord::GroupTombstone);
        out
    }

    /// Applies a stored record (loading). Members get a fresh session.
    pub fn replay(&mut self, rec: ConsumerRecord, now_ms: i64, session_timeout_ms: i32) {
        let deadline = now_ms.saturating_add(i64::from(session_timeout_ms));
        match rec {
            ConsumerRecord::GroupMetadata {
                epoch,
                metadata_hash,
            } => {
                self.group_epoch = epoch;
                self.metadata_hash = metadata_hash;
            }
            ConsumerRecord::Member {
                member_id,
                subscription,
            } => {
                let mut m = self
                    .members
                    .get(&member_id)
                    .cloned()
                    .unwrap_or_else(|| ConsumerMember::new(&member_id));
                m.subscription = subscription;
                m.compile_regex();
                m.session_deadline_ms = deadline;
                self.insert_member(m);
            }
            ConsumerRecord::MemberTombstone { member_id } => {
                let target = self.target.remove(&member_id);
                self.drop_member(&member_id, now_ms);
                // The target tombstone comes separately; keep a target the
                // log still has.
                if let Some(t) = target {
                    self.target.insert(member_id, t);
                }
            }
            ConsumerRecord::TargetMember {
                member_id,
                assignment,
            } => {
                self.target.insert(member_id, assignment);
            }
            ConsumerRecord::TargetMemberTombstone { member_id } => {
                self.target.remove(&member_id);
            }
            ConsumerRecord::TargetEpoch { epoch } => self.assignment_epoch = epoch,
            ConsumerRecord::CurrentAssignment {
                member_id,
                assignment,
            } => {
                if !self.members.contains_key(&member_id) {
                    let mut m = ConsumerMember::new(&member_id);
                    m.session_deadline_ms = deadline;
                    self.insert_member(m);
                }
                self.set_assignment(&member_id, assignment);
            }
            ConsumerRecord::CurrentAssignmentTombstone { member_id } => {
                if self.members.contains_key(&member_id) {
                    self.set_assignment(&member_id, MemberAssignmentState::default());
                }
            }
            ConsumerRecord::GroupTombstone => {
                *self = ConsumerGroup::new(&self.group_id, now_ms);
            }
        }
    }

    /// After loading: members left without metadata are dropped, and every
    /// member's session starts now.
    pub fn finish_loading(&mut self, now_ms: i64, session_timeout_ms: i32) {
        self.empty_since_ms = now_ms;
        self.resolve_regexes();
        let deadline = now_ms.saturating_add(i64::from(session_timeout_ms));
        for m in self.members.values_mut() {
            m.session_deadline_ms = deadline;
            m.rebalance_deadline_ms = (m.assignment.state == MemberState::UnrevokedPartitions)
                .then(|| {
                    now_ms.saturating_add(i64::from(m.subscription.rebalance_timeout_ms.max(0)))
                });
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
