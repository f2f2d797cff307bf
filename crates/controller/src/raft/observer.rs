//! Observers: nodes outside `controller.quorum.voters` (Kafka's brokers
//! with `process.roles=broker`) that follow the committed metadata log
//! without voting.
//!
//! An observer is an openraft *learner*: it runs the same log store,
//! state machine and listener as a voter, so its listeners see the same
//! snapshots, batches and leader changes at the same offsets; it never
//! stands for election and its log does not count towards commit, and
//! its appends answer `NotLeader`. Like Kafka's observers it finds the
//! leader from `controller.quorum.voters`: on start it asks the voters in
//! turn ([`join`], following `NotLeader` hints) until the leader has added
//! it to the membership as a learner at its RPC address ([`admit`]); from
//! then on every leader replicates to it, since the membership is in the
//! log. (Unlike Kafka's observers, which fetch, the leader pushes; so an
//! observer listens on an RPC address too.)
//!
//! Invariants:
//! - The voter set never changes: admitting an observer only adds (or
//!   re-addresses) a learner, and a voter's id is refused as an observer.
//! - Admission is idempotent: an observer already known at the same
//!   address costs no log entry, so restarts do not grow the log.
//! - The leader's `quorum_info` lists every learner of the membership with
//!   its replicated log end and last fetch / caught-up times
//!   ([`observer_states`]).

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics, ServerState};
use sluice_record::Offset;

use super::network::{NetworkFactory, PeerTimes};
use super::state_machine::SmShared;
use super::RaftTypes;
use crate::{NodeId, VoterState};

/// How long one join attempt may take, and the pause between attempts.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
const JOIN_BACKOFF: Duration = Duration::from_millis(100);

/// On the node `me`: admits observer `id` at `addr` if `me` leads, else
/// answers the leader it knows of.
pub(crate) async fn admit(
    raft: &Raft<RaftTypes>,
    me: u64,
    id: u64,
    addr: String,
) -> Result<(), Option<u64>> {
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader || m.current_leader != Some(me) {
        return Err(m.current_leader);
    }
    let known = m.membership_config.membership().get_node(&id).cloned();
    let result = match known {
        Some(n) if n.addr == addr => return Ok(()),
        Some(_) => {
            let nodes = BTreeMap::from([(id, BasicNode::new(&addr))]);
            raft.change_membership(ChangeMembers::SetNodes(nodes), true)
                .await
        }
        None => raft.add_learner(id, BasicNode::new(&addr), false).await,
    };
    match result {
        Ok(_) => {
            tracing::info!(observer = id, %addr, "metadata log observer admitted");
            Ok(())
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(f.leader_id),
        Err(e) => {
            tracing::info!(observer = id, "observer not admitted yet: {e}");
            Err(Some(me))
        }
    }
}

/// On an observer: asks the voters in turn until the leader admitted this
/// node at `addr`. Runs until it succeeds.
pub(crate) async fn join(
    mut factory: NetworkFactory,
    voters: BTreeMap<NodeId, String>,
    addr: String,
) {
    let ids: Vec<u64> = voters.keys().map(|v| v.0 as u64).collect();
    let mut clients = BTreeMap::new();
    let mut target = ids[0];
    let option = RPCOption::new(JOIN_TIMEOUT);
    let mut attempts = 0u64;
    loop {
        let node = BasicNode::new(&voters[&sluice_metadata::BrokerId(target as i32)]);
        let client = match clients.entry(target) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(factory.new_client(target, &node).await)
            }
        };
        let next = match client.add_observer(addr.clone(), &option).await {
            Ok(Ok(())) => {
                tracing::info!(leader = target, "following the metadata log as an observer");
                return;
            }
            Ok(Err(Some(leader))) if leader != target && ids.contains(&leader) => Some(leader),
            Ok(Err(_)) => None,
            Err(e) => {
                if attempts % 50 == 0 {
                    tracing::info!(voter = target, "observer cannot reach voter: {e}");
                }
                None
            }
        };
        attempts += 1;
        target = match next {
            Some(l) => l,
            None => {
                tokio::time::sleep(JOIN_BACKOFF).await;
                let i = ids.iter().position(|&v| v == target).unwrap_or(0);
                ids[(i + 1) % ids.len()]
            }
        };
    }
}

/// The replication state of every observer, as the leader sees it.
pub(crate) fn observer_states(
    m: &RaftMetrics<u64, BasicNode>,
    voters: &BTreeMap<NodeId, String>,
    sm: &SmShared,
    times: &PeerTimes,
) -> Vec<VoterState> {
    let replication = m.replication.clone().unwrap_or_default();
    m.membership_config
        .membership()
        .nodes()
        .map(|(&id, _)| id)
        .filter(|&id| !voters.contains_key(&sluice_metadata::BrokerId(id as i32)))
        .map(|id| {
            let matched = replication.get(&id).copied().flatten();
            let t = times.get(id);
            VoterState {
                node: sluice_metadata::BrokerId(id as i32),
                log_end_offset: Offset(sm.offset_after(matched.map(|l| l.index))),
                last_fetch_timestamp_ms: t.map_or(-1, |t| t.last_fetch_ms),
                last_caught_up_timestamp_ms: t.map_or(-1, |t| t.last_caught_up_ms),
            }
        })
        .collect()
}
