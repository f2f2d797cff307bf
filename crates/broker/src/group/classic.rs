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
//!
//! This file holds the group's types, its state and the timer; each request
//! is its own child module of `impl ClassicGroup`: `join`, `rebalance` (the
//! join's completion), `sync` and `membership` (heartbeats and leaving).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::GroupError;

mod join;
mod membership;
mod rebalance;
mod sync;

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
