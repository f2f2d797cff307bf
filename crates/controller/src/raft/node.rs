//! [`RaftMetadataLog`]: one voter of the metadata quorum, implementing the
//! [`MetadataLog`] seam on openraft.
//!
//! Start: open the log store and state machine (recovering both), start
//! openraft, serve the RPC on the given acceptor, and, on a node that has
//! never been initialized, propose the static voter set (every voter does
//! so with the same set, which openraft allows: the membership entry is
//! identical at index 0 everywhere). A node outside the voter set with an
//! `observer_address` starts as an observer instead: it never initializes
//! the quorum and asks the leader to admit it as a learner
//! ([`super::observer`]).
//!
//! Leadership: on election the new leader commits an empty batch naming
//! itself (see [`announce_leadership`]).
//!
//! Append: only when this node leads at the named epoch; the batch goes
//! through `client_write`, which returns once the entry is committed and
//! applied here; the state machine ignores a batch whose entry landed in
//! another term, and that answers `NotLeader`. If leadership is lost while
//! the batch is in flight the answer is `Uncertain`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use parking_lot::RwLock;
use sluice_metadata::MetadataRecord;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{Clock, Fs};
use tokio::task::JoinHandle;

use super::listener::RaftListener;
use super::log_store::{LogEntries, LogStore};
use super::network::{serve, LeaderContact, NetworkFactory, PeerTimes, RPC_BACKOFF};
use super::observer;
use super::state_machine::{SmShared, StateMachine};
use super::transport::{Acceptor, Transport};
use super::{ApplyResult, FatalLatch, MetadataEntry, RaftTypes};
use crate::{
    BoxFuture, LeaderAndEpoch, LogError, LogListener, MetadataLog, NodeId, QuorumInfo, VoterState,
};

/// How a voter runs (Kafka's names where Kafka has one).
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// The cluster id every RPC carries; a peer of another cluster is refused.
    pub cluster_id: String,
    /// `controller.quorum.voters`: id → RPC address.
    pub voters: BTreeMap<NodeId, String>,
    /// Where the log, vote and snapshot live (`metadata.log.dir`).
    pub dir: PathBuf,
    /// The election timeout of the lowest-ranked voter
    /// (`controller.quorum.election.timeout.ms` in spirit). Each voter's
    /// timeout lies in its own slot: rank k (its position among the voter
    /// ids) draws from `min + k*step .. min + k*step + jitter`.
    pub election_timeout_min_ms: u64,
    /// Distance between the slots of consecutive ranks; must exceed
    /// `jitter + 1.5 * heartbeat` (openraft checks timeouts every 1.5
    /// heartbeats) so no two voters ever stand in the same check.
    pub election_timeout_step_ms: u64,
    pub election_timeout_jitter_ms: u64,
    /// Heartbeat interval of the leader (`controller.quorum.fetch.timeout.ms`
    /// plays this part in Kafka).
    pub heartbeat_interval_ms: u64,
    /// A snapshot is taken after this many entries since the last one
    /// (`metadata.log.max.snapshot.interval`-like).
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot (for followers slightly
    /// behind; 0 compacts everything the snapshot covers).
    pub entries_kept_after_snapshot: u64,
    /// The most records one append accepts (Kafka's controller caps a
    /// user operation at 10,000).
    pub max_records_per_append: usize,
    /// The largest batch one append accepts, in encoded record bytes.
    pub max_bytes_per_append: usize,
    /// Set on a node outside `voters` (`process.roles=broker`): its RPC
    /// address, where the leader replicates the log to it. Such a node is
    /// an observer (see [`super::observer`]); a voter must leave it unset.
    pub observer_address: Option<String>,
}

impl RaftConfig {
    /// Defaults tuned for failover well under a second on loopback that
    /// still tolerate a busy 2-core machine. openraft 0.9 draws a voter's
    /// election timeout once, at start, and checks it on a tick of 1.5
    /// heartbeats; with overlapping ranges, voters whose ticks line up
    /// stand together forever (the simulation found three candidates
    /// splitting every vote for 50+ terms). Disjoint slots per rank make the
    /// lowest-ranked live voter stand first. openraft grants a vote only
    /// once the voter's leader lease (its own timeout range's max) has
    /// passed, and a follower that had a leader stands after lease +
    /// timeout: with 3 voters rank 0 stands ~0.63 s after the last
    /// heartbeat, rank 1 ~0.79 s (rank k's lease + timeout), and every
    /// voter's lease (at most 0.48 s) has passed by then, so the first
    /// candidate wins; a follower must miss 15+ heartbeats before it
    /// disrupts a live leader.
    pub fn new(
        node_id: NodeId,
        cluster_id: &str,
        voters: BTreeMap<NodeId, String>,
        dir: PathBuf,
    ) -> Self {
        RaftConfig {
            node_id,
            cluster_id: cluster_id.to_owned(),
            voters,
            dir,
            election_timeout_min_ms: 300,
            election_timeout_step_ms: 80,
            election_timeout_jitter_ms: 15,
            heartbeat_interval_ms: 40,
            snapshot_every_entries: 1000,
            entries_kept_after_snapshot: 500,
            max_records_per_append: 10_000,
            max_bytes_per_append: 1 << 20,
            observer_address: None,
        }
    }

    /// This voter's election timeout range (see the field docs).
    pub fn election_timeout_range_ms(&self) -> (u64, u64) {
        let rank = self
            .voters
            .keys()
            .take_while(|&&v| v < self.node_id)
            .count() as u64;
        let min = self.election_timeout_min_ms + rank * self.election_timeout_step_ms;
        (min, min + self.election_timeout_jitter_ms.max(1))
    }

    fn openraft_config(&self) -> Result<Arc<Config>, LogError> {
        if self.election_timeout_step_ms
            <= self.election_timeout_jitter_ms + self.heartbeat_interval_ms * 3 / 2
        {
            return Err(LogError::Fatal(
                "election timeout step must exceed jitter + 1.5 heartbeats".into(),
            ));
        }
        let (min, max) = self.election_timeout_range_ms();
        let c = Config {
            cluster_name: self.cluster_id.clone(),
            election_timeout_min: min,
            election_timeout_max: max,
            heartbeat_interval: self.heartbeat_interval_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            max_payload_entries: 32,
            ..Default::default()
        };
        c.validate()
            .map(Arc::new)
            .map_err(|e| LogError::Fatal(format!("invalid metadata quorum config: {e}")))
    }
}

/// One voter of the metadata quorum (see the module docs).
pub struct RaftMetadataLog {
    id: NodeId,
    raft: Raft<RaftTypes>,
    config: RaftConfig,
    log: Arc<RwLock<LogEntries>>,
    sm: Arc<SmShared>,
    fatal: Arc<FatalLatch>,
    times: Arc<PeerTimes>,
    /// When this node last heard from another leader.
    contact: Arc<LeaderContact>,
    clock: Arc<dyn Clock>,
    server: JoinHandle<()>,
    announcer: JoinHandle<()>,
    /// An observer's task asking the leader to admit it.
    joiner: Option<JoinHandle<()>>,
    shut_down: AtomicBool,
}

impl RaftMetadataLog {
    /// Starts the voter; `acceptor` is bound to its own address in
    /// `config.voters`.
    pub async fn start(
        config: RaftConfig,
        fs: Arc<dyn Fs>,
        transport: Arc<dyn Transport>,
        acceptor: Box<dyn Acceptor>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let id = config.node_id;
        let observer = config.observer_address.clone();
        match (config.voters.contains_key(&id), &observer) {
            (false, None) => {
                return Err(LogError::Fatal(format!(
                    "node {} is not in controller.quorum.voters and has no observer address",
                    id.0
                )))
            }
            (true, Some(_)) => {
                return Err(LogError::Fatal(format!(
                    "node {} is in controller.quorum.voters and cannot be an observer",
                    id.0
                )))
            }
            _ => {}
        }
        if config.voters.is_empty() {
            return Err(LogError::Fatal("controller.quorum.voters is empty".into()));
        }
        let fatal = Arc::new(FatalLatch::default());
        let mut store = LogStore::open(fs.clone(), &config.dir, fatal.clone())?;
        // openraft resumes a restarted leader's leadership in its old term;
        // as in Kafka (a restarted leader resigns), a restart starts a new
        // epoch instead.
        let resigned = store.resign_leadership(raft_id(id))?;
        let sm = StateMachine::open(fs, &config.dir, fatal.clone())?;
        let (log, shared) = (store.entries(), sm.shared());
        let times = Arc::new(PeerTimes::default());
        let voter_ids: Vec<u64> = config.voters.keys().map(|&v| raft_id(v)).collect();
        let network = NetworkFactory {
            id: raft_id(id),
            cluster_id: config.cluster_id.clone(),
            voters: voter_ids.clone(),
            transport,
            clock: clock.clone(),
            times: times.clone(),
            log: log.clone(),
        };
        let joiner = observer.as_ref().map(|addr| {
            let factory = NetworkFactory {
                id: raft_id(id),
                cluster_id: config.cluster_id.clone(),
                voters: voter_ids.clone(),
                transport: network.transport.clone(),
                clock: clock.clone(),
                times: Arc::default(),
                log: log.clone(),
            };
            tokio::spawn(observer::join(factory, config.voters.clone(), addr.clone()))
        });
        let raft = Raft::new(raft_id(id), config.openraft_config()?, network, store, sm)
            .await
            .map_err(|e| LogError::Fatal(format!("starting the metadata quorum: {e}")))?;
        let contact = Arc::new(LeaderContact::default());
        let server = tokio::spawn(serve(
            acceptor,
            raft.clone(),
            raft_id(id),
            config.cluster_id.clone(),
            voter_ids,
            contact.clone(),
            clock.clone(),
        ));
        if resigned {
            hold_elections(&raft, &config);
        }
        let announcer = tokio::spawn(announce_leadership(raft.clone(), id, clock.clone()));
        let node = RaftMetadataLog {
            id,
            raft,
            config,
            log,
            sm: shared,
            fatal,
            times,
            contact,
            clock,
            server,
            announcer,
            joiner,
            shut_down: AtomicBool::new(false),
        };
        if observer.is_none() {
            node.initialize_once().await?;
        }
        Ok(node)
    }

    async fn initialize_once(&self) -> Result<(), LogError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| self.fatal_error(e))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<u64, BasicNode> = self
            .config
            .voters
            .iter()
            .map(|(id, addr)| (raft_id(*id), BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(e)) => {
                tracing::info!("metadata quorum already initialized: {e}");
                Ok(())
            }
            Err(RaftError::Fatal(e)) => Err(self.fatal_error(e)),
        }
    }

    fn fatal_error(&self, e: impl std::fmt::Display) -> LogError {
        if let Some(why) = self.fatal.get() {
            return LogError::Fatal(why);
        }
        let msg = e.to_string();
        if msg.contains("stopped") || msg.contains("Stopped") {
            return LogError::Shutdown;
        }
        self.fatal.set(msg.clone());
        self.sm.notify();
        LogError::Fatal(msg)
    }

    /// Whether [`MetadataLog::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Whether this node leads and has applied an entry of its own term
    /// (its announcement), so its high watermark is current.
    pub fn is_ready_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader
            && m.current_leader == Some(raft_id(self.id))
            && m.last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term)
    }

    /// openraft's handle (tests and tools).
    pub fn raft(&self) -> &Raft<RaftTypes> {
        &self.raft
    }

    fn leader_and_epoch_now(&self) -> (LeaderAndEpoch, bool) {
        let m = self.raft.metrics().borrow().clone();
        let le = LeaderAndEpoch {
            leader: m
                .current_leader
                .map(|l| sluice_metadata::BrokerId(l as i32)),
            epoch: LeaderEpoch(m.current_term as i32),
        };
        let leading = m.state == ServerState::Leader && m.current_leader == Some(raft_id(self.id));
        (le, leading)
    }

    async fn append_inner(
        &self,
        epoch: LeaderEpoch,
        records: Vec<MetadataRecord>,
    ) -> Result<Offset, LogError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(LogError::Shutdown);
        }
        if let Some(why) = self.fatal.get() {
            return Err(LogError::Fatal(why));
        }
        let (le, leading) = self.leader_and_epoch_now();
        if !leading || le.epoch != epoch {
            return Err(LogError::NotLeader(le));
        }
        if records.is_empty() || records.len() > self.config.max_records_per_append {
            return Err(LogError::TooLarge {
                records: records.len(),
                bytes: 0,
            });
        }
        let mut encoded = Vec::with_capacity(records.len());
        let mut bytes = 0;
        for r in &records {
            let mut buf = Vec::new();
            r.encode(&mut buf).map_err(|_| LogError::TooLarge {
                records: records.len(),
                bytes: usize::MAX,
            })?;
            bytes += buf.len();
            encoded.push(buf);
        }
        if bytes > self.config.max_bytes_per_append {
            return Err(LogError::TooLarge {
                records: records.len(),
                bytes,
            });
        }
        let entry = MetadataEntry {
            epoch: epoch.0,
            leader: self.id.0,
            append_time_ms: self.clock.now_ms(),
            records: encoded,
        };
        // openraft answers a write whose entry was truncated away, but not
        // one whose entry a snapshot from a newer leader replaced (the
        // answer would never come): stop waiting once this node no longer
        // leads at `epoch`. The batch may still commit: Uncertain.
        let written = tokio::select! {
            r = self.raft.client_write(entry) => r,
            _ = lost_leadership(&self.raft, self.id, epoch) => {
                return Err(match self.fatal.get() {
                    Some(why) => LogError::Fatal(why),
                    None if self.is_shut_down() => LogError::Shutdown,
                    None => LogError::Uncertain,
                });
            }
        };
        match written {
            Ok(resp) => match resp.data {
                ApplyResult::Committed { last_offset, .. } => Ok(Offset(last_offset)),
                ApplyResult::EpochMismatch => {
                    Err(LogError::NotLeader(self.leader_and_epoch_now().0))
                }
                ApplyResult::None => Err(LogError::Fatal("a batch applied as no batch".into())),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(LogError::Uncertain)
            }
            Err(RaftError::APIError(e)) => Err(LogError::Fatal(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(self.fatal_error(e)),
        }
    }
}

/// Resolves once node `id` no longer leads at `epoch`.
async fn lost_leadership(raft: &Raft<RaftTypes>, id: NodeId, epoch: LeaderEpoch) {
    let mut metrics = raft.metrics();
    let me = Some(raft_id(id));
    loop {
        {
            let m = metrics.borrow_and_update();
            let leads = m.state == ServerState::Leader && m.current_leader == me;
            if !leads || m.current_term != epoch.0 as u64 {
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// A resigned leader has voted for itself in a new term and would stand as
/// soon as its election timeout passes; if the others elected a leader
/// meanwhile, whose heartbeats have not reached it yet (replication backs
/// off from a dead peer), its higher term would depose that leader. So it
/// stands only after two of its lease periods plus the backoff, by when
/// a live leader has reached it.
fn hold_elections(raft: &Raft<RaftTypes>, config: &RaftConfig) {
    let (_, max) = config.election_timeout_range_ms();
    let hold = Duration::from_millis(2 * max) + RPC_BACKOFF;
    raft.runtime_config().elect(false);
    let raft = raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        raft.runtime_config().elect(true);
    });
}

/// Commits an empty batch naming this node at the start of each term it
/// leads (Kafka's `LeaderChangeMessage`), so listeners learn the leader in
/// log order even before the controller appends anything.
async fn announce_leadership(raft: Raft<RaftTypes>, id: NodeId, clock: Arc<dyn Clock>) {
    let mut metrics = raft.metrics();
    let mut announced = 0u64;
    loop {
        let (leading, term) = {
            let m = metrics.borrow_and_update();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(raft_id(id));
            (leading, m.current_term)
        };
        if leading && term > announced {
            announced = term;
            let entry = MetadataEntry {
                epoch: term as i32,
                leader: id.0,
                append_time_ms: clock.now_ms(),
                records: Vec::new(),
            };
            tokio::select! {
                r = raft.client_write(entry) => if let Err(e) = r {
                    tracing::info!("leadership of epoch {term} not announced: {e}");
                },
                _ = lost_leadership(&raft, id, LeaderEpoch(term as i32)) => {}
            }
            continue;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// openraft's id for a node id (node ids are non-negative).
fn raft_id(id: NodeId) -> u64 {
    debug_assert!(id.0 >= 0);
    id.0 as u64
}

impl MetadataLog for RaftMetadataLog {
    fn node_id(&self) -> NodeId {
        self.id
    }

    fn leader_and_epoch(&self) -> LeaderAndEpoch {
        self.leader_and_epoch_now().0
    }

    fn append(
        &self,
        epoch: LeaderEpoch,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<Offset, LogError>> {
        Box::pin(self.append_inner(epoch, records))
    }

    fn listen(&self) -> Box<dyn LogListener> {
        Box::new(RaftListener::new(self.log.clone(), self.sm.clone()))
    }

    fn catch_up_local(&self, limit: Duration) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            // openraft keeps no commit point across restarts: what this
            // node's log held is applied once a leader's append names it
            // committed. A tail the new leader truncates never is, hence
            // the bound. The target comes from the log store itself: right
            // after a start openraft's metrics may not have loaded it yet
            // (they said "empty log", this returned at once, and the first
            // image of a restarted broker lacked its topics: their logs
            // were deleted as strays).
            let Some(target) = self.log.read().last_log_id().map(|l| l.index) else {
                return true;
            };
            let applied = self
                .raft
                .wait(Some(limit))
                .metrics(
                    |m| m.last_applied.is_some_and(|l| l.index >= target),
                    "apply the local log",
                )
                .await;
            match applied {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(target, error = %e, "metadata log: the local log was not applied in time; going on with what is applied (no stray log is deleted at this start)");
                    false
                }
            }
        })
    }

    fn since_leader_contact(&self) -> Option<Duration> {
        let last = self.contact.last_ms()?;
        let ago = self.clock.now_ms().saturating_sub(last).max(0);
        Some(Duration::from_millis(ago as u64))
    }

    fn quorum_info(&self) -> QuorumInfo {
        let m = self.raft.metrics().borrow().clone();
        let (leader, leading) = self.leader_and_epoch_now();
        let high_watermark = Offset(self.sm.state.lock().next_offset);
        let mut voters = Vec::new();
        let mut observers = Vec::new();
        if leading {
            observers = observer::observer_states(&m, &self.config.voters, &self.sm, &self.times);
            let now = self.clock.now_ms();
            let replication = m.replication.clone().unwrap_or_default();
            for &node in self.config.voters.keys() {
                let state = if node == self.id {
                    VoterState {
                        node,
                        log_end_offset: Offset(self.sm.offset_after(m.last_log_index)),
                        last_fetch_timestamp_ms: now,
                        last_caught_up_timestamp_ms: now,
                    }
                } else {
                    let matched = replication.get(&raft_id(node)).copied().flatten();
                    let t = self.times.get(raft_id(node)).unwrap_or_default();
                    let seen = self.times.get(raft_id(node)).is_some();
                    VoterState {
                        node,
                        log_end_offset: Offset(self.sm.offset_after(matched.map(|l| l.index))),
                        last_fetch_timestamp_ms: if seen { t.last_fetch_ms } else { -1 },
                        last_caught_up_timestamp_ms: if seen { t.last_caught_up_ms } else { -1 },
                    }
                };
                voters.push(state);
            }
        }
        QuorumInfo {
            leader,
            high_watermark,
            voters,
            observers,
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.shut_down.store(true, Ordering::Release);
            self.server.abort();
            self.announcer.abort();
            if let Some(j) = &self.joiner {
                j.abort();
            }
            let _ = self.raft.shutdown().await;
            self.sm.state.lock().shutdown = true;
            self.sm.notify();
        })
    }
}

impl Drop for RaftMetadataLog {
    fn drop(&mut self) {
        self.server.abort();
        self.announcer.abort();
        if let Some(j) = &self.joiner {
            j.abort();
        }
    }
}
