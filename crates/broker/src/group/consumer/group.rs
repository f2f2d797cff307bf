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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::assignor::{Assignment, AssignmentSpec, AssignorKind, MemberSpec};
use crate::group::GroupError;

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

    fn lookup(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<&ConsumerMember, GroupError> {
        match instance_id {
            Some(inst) => {
                let id = self
                    .static_members
                    .get(inst)
                    .ok_or(GroupError::UnknownMemberId)?;
                if id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                self.members.get(id).ok_or(GroupError::UnknownMemberId)
            }
            None => self
                .members
                .get(member_id)
                .ok_or(GroupError::UnknownMemberId),
        }
    }

    /// Handles one ConsumerGroupHeartbeat (already checked with
    /// [`validate_heartbeat`]). The changes are appended to `out`.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicsView,
        config: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<HeartbeatResponse, GroupError> {
        // Regexes that members subscribed with before this heartbeat are
        // resolved now; one this heartbeat brings in waits for the next.
        self.resolve_regexes();
        let instance = req.instance_id.as_deref();

        // Leaving.
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            let member = self.lookup(&req.member_id, instance)?.clone();
            let member_id = member.member_id.clone();
            if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
                self.remove_member(&member_id, now_ms, out);
            } else {
                // A static member leaves for a while: it keeps its
                // partitions until it rejoins or its session expires.
                let mut a = member.assignment.clone();
                a.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                a.pending_revocation.clear();
                out.push(ConsumerRecord::CurrentAssignment {
                    member_id: member_id.clone(),
                    assignment: a.clone(),
                });
                self.set_assignment(&member_id, a);
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.session_deadline_ms =
                        now_ms.saturating_add(i64::from(config.session_timeout_ms));
                    m.rebalance_deadline_ms = None;
                }
            }
            return Ok(HeartbeatResponse {
                member_id,
                member_epoch: req.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }

        if self.members.len() >= config.max_size && !self.members.contains_key(&req.member_id) {
            return Err(GroupError::GroupMaxSizeReached);
        }

        // Find or create the member.
        let mut is_new = false;
        let member: ConsumerMember = if req.member_epoch == 0 {
            let static_old = instance.and_then(|i| self.static_members.get(i).cloned());
            match static_old {
                Some(old_id) => {
                    let old = self.members[&old_id].clone();
                    // As Kafka: even the same member id must have left (-2)
                    // before its instance id joins again.
                    if old.assignment.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        return Err(GroupError::UnreleasedInstanceId);
                    }
                    // The new instance takes over the old one's assignment.
                    let mut m = old.clone();
                    m.member_id = req.member_id.clone();
                    m.assignment.member_epoch = 0;
                    m.assignment.previous_member_epoch = 0;
                    if old_id != req.member_id {
                        let target = self.target_of(&old_id);
                        out.push(ConsumerRecord::CurrentAssignmentTombstone {
                            member_id: old_id.clone(),
                        });
                        out.push(ConsumerRecord::TargetMemberTombstone {
                            member_id: old_id.clone(),
                        });
                        out.push(ConsumerRecord::MemberTombstone {
                            member_id: old_id.clone(),
                        });
                        self.drop_member(&old_id, now_ms);
                        out.push(ConsumerRecord::TargetMember {
                            member_id: m.member_id.clone(),
                            assignment: target.clone(),
                        });
                        self.target.insert(m.member_id.clone(), target);
                        is_new = true;
                    }
                    out.push(ConsumerRecord::CurrentAssignment {
                        member_id: m.member_id.clone(),
                        assignment: m.assignment.clone(),
                    });
                    self.insert_member(m.clone());
                    m
                }
                None => match self.members.get(&req.member_id) {
                    Some(existing) => {
                        // A known member rejoins: it has given up every
                        // partition it owned.
                        let mut m = existing.clone();
                        m.assignment = MemberAssignmentState::default();
                        out.push(ConsumerRecord::CurrentAssignment {
                            member_id: m.member_id.clone(),
                            assignment: m.assignment.clone(),
                        });
                        self.insert_member(m.clone());
                        m
                    }
                    None => {
                        is_new = true;
                        ConsumerMember::new(&req.member_id)
                    }
                },
            }
        } else {
            let m = self.lookup(&req.member_id, instance)?;
            let known = m.assignment.member_epoch;
            if req.member_epoch > known {
                return Err(GroupError::FencedMemberEpoch);
            }
            if req.member_epoch < known {
                // The answer with the bumped epoch may have been lost: the
                // previous epoch is accepted if the member owns no more
                // than it is assigned.
                let subset = req.owned.as_ref().is_some_and(|owned| {
                    owned.iter().all(|(t, ps)| {
                        ps.is_empty()
                            || m.assignment
                                .assigned
                                .get(t)
                                .is_some_and(|a| ps.is_subset(a))
                    })
                });
                if req.member_epoch != m.assignment.previous_member_epoch || !subset {
                    return Err(GroupError::FencedMemberEpoch);
                }
            }
            m.clone()
        };

        // 1. Update the member's subscription; bump the group epoch if it
        //    changed or the subscribed topics' metadata changed.
        let mut updated = member.clone();
        {
            let s = &mut updated.subscription;
            if let Some(i) = &req.instance_id {
                s.instance_id = Some(i.clone());
            }
            if let Some(r) = &req.rack_id {
                s.rack_id = Some(r.clone());
            }
            if req.rebalance_timeout_ms != -1 {
                s.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if let Some(a) = &req.server_assignor {
                s.server_assignor = Some(a.clone());
            }
            if let Some(names) = &req.subscribed_topic_names {
                let mut n = names.clone();
                n.sort();
                n.dedup();
                s.subscribed_topic_names = n;
            }
            if let Some(re) = &req.subscribed_topic_regex {
                s.subscribed_topic_regex = (!re.is_empty()).then(|| re.clone());
            }
            s.client_id = req.client_id.clone();
            s.client_host = req.client_host.clone();
        }
        updated.compile_regex();
        // As Kafka: a member joining with an empty subscription does not
        // change the group epoch (nothing to assign).
        let mut bump = false;
        if is_new || updated.subscription != member.subscription {
            out.push(ConsumerRecord::Member {
                member_id: updated.member_id.clone(),
                subscription: updated.subscription.clone(),
            });
            if updated.subscription.subscribed_topic_names
                != member.subscription.subscribed_topic_names
                || updated.subscription.subscribed_topic_regex
                    != member.subscription.subscribed_topic_regex
            {
                bump = true;
            }
        }
        self.insert_member(updated.clone());
        let hash = self.metadata_hash_of(topics);
        if hash != self.metadata_hash {
            bump = true;
            self.metadata_hash = hash;
        }
        if bump {
            self.group_epoch += 1;
            out.push(ConsumerRecord::GroupMetadata {
                epoch: self.group_epoch,
                metadata_hash: self.metadata_hash,
            });
        }

        // 2. A new target assignment for a new group epoch.
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(topics, config, out);
        }

        // 3. Move the member towards its target.
        let member_id = updated.member_id.clone();
        if !updated.is_reconciled_to(self.assignment_epoch) {
            let target = self.target_of(&member_id);
            let next = self.next_assignment(&updated.assignment, &target, req.owned.as_ref());
            if next != updated.assignment {
                out.push(ConsumerRecord::CurrentAssignment {
                    member_id: member_id.clone(),
                    assignment: next.clone(),
                });
                let revoking = next.state == MemberState::UnrevokedPartitions;
                let rebalance_timeout = i64::from(updated.subscription.rebalance_timeout_ms.max(0));
                self.set_assignment(&member_id, next);
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.rebalance_deadline_ms =
                        revoking.then(|| now_ms.saturating_add(rebalance_timeout));
                }
            }
        }
        let m = self
            .members
            .get_mut(&member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        m.session_deadline_ms = now_ms.saturating_add(i64::from(config.session_timeout_ms));

        let full = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && req.owned.is_some());
        let send_assignment =
            full || assignment_changed(&member.assignment.assigned, &m.assignment.assigned);
        Ok(HeartbeatResponse {
            member_id: member_id.clone(),
            member_epoch: m.assignment.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: send_assignment.then(|| m.assignment.assigned.clone()),
        })
    }

    /// The member's regex (source and compiled) once it has been resolved.
    fn active_regex<'a>(&self, m: &'a ConsumerMember) -> Option<(&'a str, &'a regex::Regex)> {
        let src = m.subscription.subscribed_topic_regex.as_deref()?;
        let r = m.regex.as_ref()?;
        self.resolved_regexes.contains(src).then_some((src, r))
    }

    fn resolve_regexes(&mut self) {
        self.resolved_regexes = self
            .members
            .values()
            .filter_map(|m| m.subscription.subscribed_topic_regex.clone())
            .collect();
    }

    /// Resolves a member's subscription to topic ids that exist.
    fn resolved_subscription(&self, m: &ConsumerMember, topics: &TopicsView) -> BTreeSet<Uuid> {
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

    fn compute_target(
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
    fn next_assignment(
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

    fn compute_next(
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
