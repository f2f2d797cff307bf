//! The classic group membership protocol as a pure state machine.
//!
//! A [`ClassicGroup`] follows Apache Kafka's classic group life cycle:
//!
//! ```text
//!            join                      all joined / timeout           leader's SyncGroup
//!  Empty ─────────────► PreparingRebalance ─────────────► CompletingRebalance ─────────► Stable
//!    ▲                      ▲      │ nobody left                 │ member joins/leaves      │
//!    └──────────────────────┼──────┘                             ▼                           │
//!                           └────────────────────────────────────┴───────────────────────────┘
//!  any state ── DeleteGroups / all offsets expired ──► Dead
//! ```
//!
//! No I/O and no clock of its own: every call takes `now_ms`, and answers to
//! requests that must wait (JoinGroup until the rebalance completes,
//! SyncGroup until the leader's assignment arrives) come back later as
//! [`Completion`]s from the call that unblocks them. The async layer
//! ([`super::coordinator`]) owns the waiting requests and calls
//! [`ClassicGroup::tick`] on a timer for session timeouts, rebalance
//! timeouts and the initial rebalance delay.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::GroupError;

/// Group states (Kafka's names, as DescribeGroups and ListGroups report them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a ListGroups `states_filter` entry (case-insensitive, as Kafka).
    pub fn parse(s: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|g| g.name().eq_ignore_ascii_case(s))
    }
}

/// Limits from the broker config (`group.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub initial_rebalance_delay_ms: i32,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            initial_rebalance_delay_ms: 3_000,
        }
    }
}

/// One JoinGroup request, in domain terms.
#[derive(Clone, Debug, Default)]
pub struct JoinRequest {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// v0 has none: the session timeout is used.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(assignor name, subscription metadata)` in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: an unknown member first gets a member id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// One member of the join response's member list (sent to the leader only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// v9+: the leader must not compute a new assignment (static leader rejoin).
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub(crate) fn error(member_id: &str, error: GroupError) -> Self {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub(crate) fn error(error: GroupError) -> Self {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer to a request that was left waiting, or a side effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    Join {
        member_id: String,
        result: JoinResult,
    },
    Sync {
        member_id: String,
        result: SyncResult,
    },
    /// The group's membership/assignment changed in a way Kafka persists
    /// (a generation completed, the assignment was set, the group emptied):
    /// write a GroupMetadata record.
    Persist,
}

/// What JoinGroup/SyncGroup answer right away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    /// The request waits; its answer comes later as a [`Completion`] for
    /// this member id.
    Later(String),
}

/// A member of the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A JoinGroup of this member waits for the rebalance to complete.
    pub awaiting_join: bool,
    /// A SyncGroup of this member waits for the leader's assignment.
    pub awaiting_sync: bool,
    /// Joined during the current rebalance (removed if it never syncs).
    pub is_new: bool,
    /// Last heartbeat (or join/sync), for the session timeout.
    pub last_heartbeat_ms: i64,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A dynamic member that got its id (MEMBER_ID_REQUIRED) and has not joined yet.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingMember {
    session_timeout_ms: i32,
    since_ms: i64,
}

/// One classic group's membership state.
#[derive(Clone, Debug)]
pub struct ClassicGroup {
    group_id: String,
    state: GroupState,
    /// When the state last changed (Kafka's currentStateTimestamp; offsets of
    /// an Empty group expire relative to it).
    state_timestamp_ms: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Join order, for choosing a new leader like Kafka (first member).
    join_order: Vec<String>,
    static_members: BTreeMap<String, String>,
    pending_members: BTreeMap<String, PendingMember>,
    /// PreparingRebalance: when the join phase ends at the latest.
    join_deadline_ms: Option<i64>,
    /// Initial delayed join (from Empty): only the timer ([`ClassicGroup::tick`]
    /// at `join_deadline_ms`) ends the phase, never a JoinGroup, even if every
    /// member joined and even with a delay of 0, so members that arrive
    /// before the timer fires land in the first generation.
    initial_delay: Option<InitialDelay>,
    /// CompletingRebalance or Stable: members of the generation that have not
    /// sent SyncGroup by then are removed (Kafka's pending-sync expiration).
    sync_deadline_ms: Option<i64>,
    /// Members of the current generation that have not sent SyncGroup yet
    /// (at most every member); cleared when the next rebalance starts.
    pending_sync: BTreeSet<String>,
    /// Counter for generated member ids.
    next_member_seq: u64,
}

/// Kafka's InitialDelayedJoin: when the timer fires and a member joined since
/// it was armed, it is armed again for `min(configured delay, remaining)`;
/// each re-arm uses up the previous delay from `remaining_ms`, which starts
/// at the rebalance timeout minus the configured delay.
#[derive(Clone, Copy, Debug)]
struct InitialDelay {
    /// `group.initial.rebalance.delay.ms` when the phase started.
    configured_ms: i64,
    /// The delay the timer was last armed with.
    delay_ms: i64,
    /// What is left of the rebalance-timeout bound for further re-arms.
    remaining_ms: i64,
    /// A member joined since the timer was last armed.
    new_member_added: bool,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: impl Into<String>, now_ms: i64) -> Self {
        ClassicGroup {
            group_id: group_id.into(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            join_order: Vec::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            pending_sync: BTreeSet::new(),
            next_member_seq: 0,
        }
    }

    /// Rebuilds a group from its stored GroupMetadata record (on load).
    /// Members come back Stable with fresh session deadlines from `now_ms`,
    /// as Kafka does.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        group_id: impl Into<String>,
        protocol_type: Option<String>,
        generation_id: i32,
        protocol_name: Option<String>,
        leader_id: Option<String>,
        state_timestamp_ms: i64,
        members: Vec<Member>,
        now_ms: i64,
    ) -> Self {
        let mut g = ClassicGroup::new(group_id, now_ms);
        g.protocol_type = protocol_type.filter(|p| !p.is_empty());
        g.generation_id = generation_id;
        g.protocol_name = protocol_name;
        g.state_timestamp_ms = state_timestamp_ms;
        for mut m in members {
            m.last_heartbeat_ms = now_ms;
            m.awaiting_join = false;
            m.awaiting_sync = false;
            m.is_new = false;
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.join_order.push(m.member_id.clone());
            g.members.insert(m.member_id.clone(), m);
        }
        g.leader_id = leader_id.filter(|l| g.members.contains_key(l));
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            if g.leader_id.is_none() {
                g.leader_id = g.join_order.first().cloned();
            }
            GroupState::Stable
        };
        g
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }
    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }
    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }
    /// Members in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.join_order.iter().filter_map(|id| self.members.get(id))
    }
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }
    pub fn num_members(&self) -> usize {
        self.members.len()
    }

    /// Marks the group Dead (DeleteGroups, or all offsets of an Empty group expired).
    pub fn mark_dead(&mut self, now_ms: i64) {
        self.transition(GroupState::Dead, now_ms);
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    fn new_member_id(&mut self, client_id: &str, group_instance_id: Option<&str>) -> String {
        self.next_member_seq += 1;
        let prefix = group_instance_id.unwrap_or(client_id);
        format!("{prefix}-{}", sluice_runtime::random_uuid())
    }

    /// The protocols every member (other than `except`) supports.
    fn candidate_protocols(&self, except: Option<&str>) -> Option<Vec<String>> {
        let mut it = self
            .members()
            .filter(|m| Some(m.member_id.as_str()) != except);
        let first = it.next()?;
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        Some(candidates)
    }

    /// Kafka's supportsProtocols: an empty group takes any non-empty protocol
    /// list; otherwise the type must match and one protocol must be shared.
    fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        match self.candidate_protocols(except) {
            None => !protocol_type.is_empty() && !protocols.is_empty(),
            Some(candidates) => {
                self.protocol_type.as_deref() == Some(protocol_type)
                    && protocols.iter().any(|(n, _)| candidates.contains(n))
            }
        }
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols(None)?;
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        // Most votes; ties go to the candidate listed first (the first
        // member's preference order).
        let mut best: Option<(String, usize)> = None;
        for (c, n) in votes {
            if best.as_ref().is_none_or(|(_, b)| n > *b) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c)
    }

    fn validate_timeouts(&self, req: &JoinRequest, limits: &GroupLimits) -> Result<(), GroupError> {
        if req.session_timeout_ms < limits.min_session_timeout_ms
            || req.session_timeout_ms > limits.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        Ok(())
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        if let Err(e) = self.validate_timeouts(&req, limits) {
            return Reply::Now(JoinResult::error(&req.member_id, e));
        }
        if self.state == GroupState::Dead {
            // The group is being deleted: the client looks up the coordinator again.
            return Reply::Now(JoinResult::error(
                &req.member_id,
                GroupError::CoordinatorNotAvailable,
            ));
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req, limits, now_ms, out)
        } else {
            self.join_known_member(req, limits, now_ms, out)
        }
    }

    fn join_unknown_member(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        if !self.supports_protocols(&req.protocol_type, &req.protocols, None) {
            return Reply::Now(JoinResult::error("", GroupError::InconsistentGroupProtocol));
        }
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(old_id, req, now_ms, out);
            }
        }
        if self.members.len() + self.pending_members.len() >= limits.max_size {
            return Reply::Now(JoinResult::error("", GroupError::GroupMaxSizeReached));
        }
        let member_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        if req.require_known_member_id && req.group_instance_id.is_none() {
            self.pending_members.insert(
                member_id.clone(),
                PendingMember {
                    session_timeout_ms: req.session_timeout_ms,
                    since_ms: now_ms,
                },
            );
            return Reply::Now(JoinResult::error(&member_id, GroupError::MemberIdRequired));
        }
        self.add_member_and_rebalance(member_id, req, limits, now_ms, out)
    }

    fn join_known_member(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        let member_id = req.member_id.clone();
        if self.pending_members.contains_key(&member_id) {
            if !self.supports_protocols(&req.protocol_type, &req.protocols, None) {
                return Reply::Now(JoinResult::error(
                    &member_id,
                    GroupError::InconsistentGroupProtocol,
                ));
            }
            self.pending_members.remove(&member_id);
            return self.add_member_and_rebalance(member_id, req, limits, now_ms, out);
        }
        if let Err(e) = self.validate_member(&member_id, req.group_instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(&member_id, e));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols, Some(&member_id)) {
            return Reply::Now(JoinResult::error(
                &member_id,
                GroupError::InconsistentGroupProtocol,
            ));
        }
        let same = self.members[&member_id].same_protocols(&req.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&member_id, &req, now_ms, true);
                self.maybe_complete_join(now_ms, out);
                Reply::Later(member_id)
            }
            GroupState::CompletingRebalance if same => {
                // A retry of a join that already completed: answer with the
                // current generation.
                self.touch(&member_id, now_ms);
                Reply::Now(self.join_result_for(&member_id, false))
            }
            GroupState::Stable if same && self.leader_id.as_deref() != Some(&member_id) => {
                self.touch(&member_id, now_ms);
                Reply::Now(self.join_result_for(&member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&member_id, &req, now_ms, true);
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
                Reply::Later(member_id)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResult::error(&member_id, GroupError::UnknownMemberId))
            }
        }
    }

    /// A static member rejoins with a new member id: the old id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: String,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        let new_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        let Some(mut member) = self.members.remove(&old_id) else {
            return Reply::Now(JoinResult::error("", GroupError::UnknownMemberId));
        };
        // Whatever the old incarnation waited for is answered: it is fenced.
        if member.awaiting_join {
            out.push(Completion::Join {
                member_id: old_id.clone(),
                result: JoinResult::error(&old_id, GroupError::FencedInstanceId),
            });
        }
        if member.awaiting_sync {
            out.push(Completion::Sync {
                member_id: old_id.clone(),
                result: SyncResult::error(GroupError::FencedInstanceId),
            });
        }
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        member.awaiting_sync = false;
        member.awaiting_join = false;
        self.members.insert(new_id.clone(), member);
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        for id in self.join_order.iter_mut() {
            if *id == old_id {
                *id = new_id.clone();
            }
        }
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        let was_leader = self.leader_id.as_deref() == Some(&old_id);
        if was_leader {
            self.leader_id = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                // Kafka: the member's protocols are updated and the group
                // rebalances only if that changes the protocol the next
                // generation would select. Otherwise the member gets the
                // current generation and its old assignment (SyncGroup); a
                // static leader must not reassign (skip_assignment, v9+).
                self.update_member(&new_id, &req, now_ms, false);
                if self.select_protocol() == self.protocol_name {
                    out.push(Completion::Persist);
                    let mut result = self.join_result_for(&new_id, was_leader);
                    result.skip_assignment = was_leader;
                    Reply::Now(result)
                } else {
                    self.update_member(&new_id, &req, now_ms, true);
                    self.prepare_rebalance(now_ms, out);
                    self.maybe_complete_join(now_ms, out);
                    Reply::Later(new_id)
                }
            }
            // CompletingRebalance: as Kafka, always a new rebalance; the
            // leader may already have been given the old member id and
            // would assign nothing to the new one.
            _ => {
                self.update_member(&new_id, &req, now_ms, true);
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now_ms, out);
                }
                self.maybe_complete_join(now_ms, out);
                Reply::Later(new_id)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            is_new: true,
            last_heartbeat_ms: now_ms,
        };
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), member_id.clone());
        }
        self.join_order.push(member_id.clone());
        self.members.insert(member_id.clone(), member);
        tracing::debug!(group = %self.group_id, member = %member_id, state = self.state.name(), "member added");
        match self.state {
            GroupState::Empty => self.prepare_initial_rebalance(limits, now_ms),
            GroupState::PreparingRebalance => {
                if let Some(d) = self.initial_delay.as_mut() {
                    // Another member arrived during the initial delay: the
                    // timer waits once more when it fires.
                    d.new_member_added = true;
                }
            }
            _ => self.prepare_rebalance(now_ms, out),
        }
        self.maybe_complete_join(now_ms, out);
        Reply::Later(member_id)
    }

    fn update_member(&mut self, member_id: &str, req: &JoinRequest, now_ms: i64, awaiting: bool) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = req.protocols.clone();
            m.protocol_type = req.protocol_type.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.awaiting_join = awaiting;
            m.last_heartbeat_ms = now_ms;
        }
    }

    fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat_ms = now_ms;
        }
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Starts the join phase of a new (Empty) group: it ends from the timer
    /// after the initial delay, never inside the JoinGroup that started it.
    fn prepare_initial_rebalance(&mut self, limits: &GroupLimits, now_ms: i64) {
        let delay = i64::from(limits.initial_rebalance_delay_ms.max(0));
        self.transition(GroupState::PreparingRebalance, now_ms);
        self.initial_delay = Some(InitialDelay {
            configured_ms: delay,
            delay_ms: delay,
            remaining_ms: (self.rebalance_timeout_ms() - delay).max(0),
            new_member_added: false,
        });
        self.join_deadline_ms = Some(now_ms + delay);
        self.sync_deadline_ms = None;
    }

    /// The initial-delay timer fired: wait again if members joined since it
    /// was armed and time remains, else end the join phase.
    fn initial_delay_expired(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        let Some(d) = self.initial_delay else {
            return;
        };
        tracing::debug!(group = %self.group_id, new_member_added = d.new_member_added, remaining_ms = d.remaining_ms, "initial rebalance delay expired");
        if d.new_member_added && d.remaining_ms != 0 {
            let delay = d.configured_ms.min(d.remaining_ms);
            self.initial_delay = Some(InitialDelay {
                configured_ms: d.configured_ms,
                delay_ms: delay,
                remaining_ms: (d.remaining_ms - d.delay_ms).max(0),
                new_member_added: false,
            });
            self.join_deadline_ms = Some(now_ms + delay);
        } else {
            self.complete_join(now_ms, out);
        }
    }

    /// Starts a rebalance: answers waiting SyncGroups with
    /// REBALANCE_IN_PROGRESS and waits (up to the rebalance timeout) for
    /// every member to rejoin.
    fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    out.push(Completion::Sync {
                        member_id: m.member_id.clone(),
                        result: SyncResult::error(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        if self.state == GroupState::Empty {
            // From Empty a rebalance is always the delayed initial one; callers
            // use prepare_initial_rebalance.
            self.initial_delay = None;
        }
        self.transition(GroupState::PreparingRebalance, now_ms);
        self.initial_delay = None;
        self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        self.sync_deadline_ms = None;
        self.pending_sync.clear();
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self.initial_delay.is_some() {
            // Only the initial-delay timer ends this phase (tick).
            return;
        }
        let deadline_passed = self.join_deadline_ms.is_some_and(|d| now_ms >= d);
        if self.all_joined() || deadline_passed {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are removed,
    /// a new generation starts, every waiting JoinGroup is answered (the
    /// leader, a member that rejoined, gets the member list). As Kafka
    /// (KIP-345), a static member that did not rejoin in time stays in the
    /// group and the new generation; only its session timeout or not
    /// sending SyncGroup for the new generation within the rebalance
    /// timeout removes it, and when it comes back in time it rejoins
    /// without a further rebalance.
    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member_entry(&id);
        }
        self.pending_members.clear();
        self.initial_delay = None;
        if !self.members.is_empty() && !self.members.values().any(|m| m.awaiting_join) {
            // Only static members that have not rejoined are left: wait
            // another rebalance timeout for one of them (or their session
            // timeouts), as Kafka does.
            self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
            return;
        }
        self.join_deadline_ms = None;
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.transition(GroupState::Empty, now_ms);
            out.push(Completion::Persist);
            return;
        }
        self.protocol_name = self.select_protocol();
        let leader_joined = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join);
        if !leader_joined {
            self.leader_id = self
                .join_order
                .iter()
                .find(|id| self.members.get(*id).is_some_and(|m| m.awaiting_join))
                .cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        tracing::info!(
            group = %self.group_id,
            generation = self.generation_id,
            members = self.members.len(),
            "stabilized group"
        );
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        self.pending_sync = self.members.keys().cloned().collect();
        let ids: Vec<String> = self.join_order.clone();
        for id in ids {
            let is_leader = self.leader_id.as_deref() == Some(&id);
            let result = self.join_result_for(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                // Every member's session restarts with the new generation.
                m.last_heartbeat_ms = now_ms;
                if std::mem::take(&mut m.awaiting_join) {
                    out.push(Completion::Join {
                        member_id: id.clone(),
                        result,
                    });
                }
            }
        }
    }

    fn join_result_for(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members && is_leader {
                self.members()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Checks that `member_id` is a member and, for a static member, that
    /// the instance id still maps to it.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
                None => return Err(GroupError::UnknownMemberId),
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// SyncGroup. `assignments` is non-empty only from the leader.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<SyncResult> {
        if self.state == GroupState::Dead {
            return Reply::Now(SyncResult::error(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(member_id, group_instance_id) {
            return Reply::Now(SyncResult::error(e));
        }
        if generation_id != self.generation_id {
            return Reply::Now(SyncResult::error(GroupError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol_name.as_deref())
        {
            return Reply::Now(SyncResult::error(GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(GroupError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(GroupError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                self.touch(member_id, now_ms);
                self.synced(member_id);
                if let Some(m) = self.members.get_mut(member_id) {
                    m.awaiting_sync = true;
                }
                if self.leader_id.as_deref() == Some(member_id) {
                    for m in self.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    for (id, a) in assignments {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = a;
                        }
                    }
                    self.transition(GroupState::Stable, now_ms);
                    for m in self.members.values_mut() {
                        m.is_new = false;
                    }
                    out.push(Completion::Persist);
                    self.complete_syncs(out);
                }
                Reply::Later(member_id.to_string())
            }
            GroupState::Stable => {
                self.touch(member_id, now_ms);
                self.synced(member_id);
                Reply::Now(self.sync_result_for(member_id))
            }
        }
    }

    /// `member_id` sent its SyncGroup for this generation; once every
    /// member has, the pending-sync deadline is off.
    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    fn sync_result_for(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    fn complete_syncs(&mut self, out: &mut Vec<Completion>) {
        let waiting: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_sync)
            .map(|m| m.member_id.clone())
            .collect();
        for id in waiting {
            let result = self.sync_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_sync = false;
            }
            out.push(Completion::Sync {
                member_id: id,
                result,
            });
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        self.validate_member(member_id, group_instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        self.touch(member_id, now_ms);
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for a
    /// static member; both may be given).
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Result<String, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match group_instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(current) => current.clone(),
                None => return Err(GroupError::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now_ms, out);
            return Ok(id);
        }
        if !self.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove_member_and_rebalance(&id, now_ms, out);
        Ok(id)
    }

    fn remove_member_entry(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        self.join_order.retain(|id| id != member_id);
        self.pending_sync.remove(member_id);
        if let Some(i) = &m.group_instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        Some(m)
    }

    /// Removes a member (leave or session timeout) and rebalances the rest.
    fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) {
        let Some(m) = self.remove_member_entry(member_id) else {
            return;
        };
        if m.awaiting_join {
            out.push(Completion::Join {
                member_id: member_id.to_string(),
                result: JoinResult::error(member_id, GroupError::UnknownMemberId),
            });
        }
        if m.awaiting_sync {
            out.push(Completion::Sync {
                member_id: member_id.to_string(),
                result: SyncResult::error(GroupError::UnknownMemberId),
            });
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
            }
            // Like Kafka, a departure ends the join phase once everyone left
            // has joined, the initial delay included.
            GroupState::PreparingRebalance if self.all_joined() => self.complete_join(now_ms, out),
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Time-driven transitions: session timeouts of members and of pending
    /// members, the end of the join phase, members that never sent SyncGroup.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        if self.state == GroupState::Dead {
            return;
        }
        self.pending_members
            .retain(|_, p| now_ms < p.since_ms + i64::from(p.session_timeout_ms));
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                !m.awaiting_join && now_ms >= m.last_heartbeat_ms + i64::from(m.session_timeout_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "member session expired");
            self.remove_member_and_rebalance(&id, now_ms, out);
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline_ms.is_some_and(|d| now_ms >= d)
        {
            // Kafka's pending-sync timeout: members of the generation that
            // did not sync, even after the leader did, are removed and the
            // group rebalances.
            let laggards: Vec<String> =
                std::mem::take(&mut self.pending_sync).into_iter().collect();
            if laggards.is_empty() {
                self.sync_deadline_ms = None;
            } else {
                for id in &laggards {
                    tracing::info!(group = %self.group_id, member = %id, "member did not sync in time");
                    self.remove_member_entry(id);
                }
                self.prepare_rebalance(now_ms, out);
                // Everyone left waiting on sync must rejoin.
                for m in self.members.values_mut() {
                    m.awaiting_join = false;
                }
            }
        }
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_some()
            && self.join_deadline_ms.is_some_and(|d| now_ms >= d)
        {
            self.initial_delay_expired(now_ms, out);
        } else {
            self.maybe_complete_join(now_ms, out);
        }
    }

    /// Every member's session ended or left: DeleteGroups may delete it.
    pub fn can_delete(&self) -> bool {
        matches!(self.state, GroupState::Empty | GroupState::Dead)
    }

    /// The topics the members subscribe to, if the group uses the
    /// `consumer` protocol (for OffsetDelete and offset expiry).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let meta = m.metadata(&protocol);
            topics.extend(super::records::subscription_topics(&meta)?);
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }

    /// The group state as a GroupMetadata record stores it.
    pub fn snapshot(&self) -> super::records::GroupMetadataValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        super::records::GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members()
                .map(|m| super::records::MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
