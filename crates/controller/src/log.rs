//! The metadata-log seam: what a node sees of the replicated log of
//! metadata records, whatever replicates it.
//!
//! Kafka's counterpart is `RaftClient` with its `Listener`
//! (`handleCommit`, `handleLoadSnapshot`, `handleLeaderChange`). Two
//! differences: a listener here *pulls* events ([`LogListener::next`]),
//! so a slow consumer holds back only itself and nothing is queued
//! without bound; and an append resolves on commit, so the quorum
//! controller's "answer only after commit" is one `await`.

use std::future::Future;
use std::pin::Pin;

use sluice_metadata::{MetadataImage, MetadataRecord};
use sluice_record::{LeaderEpoch, Offset};

/// A boxed future, so the seam stays object-safe (`Arc<dyn MetadataLog>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node of the metadata quorum (`node.id`). Voters and brokers share
/// the id space, as in KRaft.
pub type NodeId = sluice_metadata::BrokerId;

/// Who leads the metadata log, and in which epoch (Kafka's
/// `LeaderAndEpoch`; the epoch is the Raft term).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderAndEpoch {
    /// `None` while an election is under way.
    pub leader: Option<NodeId>,
    pub epoch: LeaderEpoch,
}

/// Records that committed together. They hold the consecutive offsets
/// `base_offset ..= last_offset()`.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedBatch {
    pub base_offset: Offset,
    /// The epoch of the leader that appended the batch.
    pub epoch: LeaderEpoch,
    /// The leader's wall clock when it appended the batch (ms since the
    /// epoch); informational (timestamps of the metadata log's batches).
    pub append_time_ms: i64,
    /// Never empty.
    pub records: Vec<MetadataRecord>,
}

impl CommittedBatch {
    pub fn last_offset(&self) -> Offset {
        debug_assert!(!self.records.is_empty());
        Offset(self.base_offset.0 + self.records.len() as i64 - 1)
    }
}

/// What a listener receives, in log order.
#[derive(Clone, Debug)]
pub enum LogEvent {
    /// The log was compacted past the listener's position: here is the
    /// state as of the image's provenance. Whatever the listener built
    /// before is replaced by it; batches after it follow.
    Snapshot(MetadataImage),
    /// The next committed batch.
    Batch(CommittedBatch),
    /// The leader or epoch changed (a new election). Delivered in order
    /// with the batches: batches after it were appended by this leader.
    LeaderChange(LeaderAndEpoch),
}

/// The replication state of one voter, as DescribeQuorum reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoterState {
    pub node: NodeId,
    /// The next offset the leader knows this voter holds (its log end).
    pub log_end_offset: Offset,
    /// When the leader last heard from it (ms since the epoch), -1 if never.
    pub last_fetch_timestamp_ms: i64,
    /// When it was last caught up to the leader's log end, -1 if never.
    pub last_caught_up_timestamp_ms: i64,
}

/// The quorum as this node sees it (DescribeQuorum, `sluice cluster info`).
/// The per-voter states are known on the leader only; elsewhere they are
/// empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumInfo {
    pub leader: LeaderAndEpoch,
    /// The offset after the last committed record.
    pub high_watermark: Offset,
    pub voters: Vec<VoterState>,
    /// Nodes that replicate the log without voting (brokers).
    pub observers: Vec<VoterState>,
}

/// Why an append or a listener failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// This node does not lead the log at the epoch the caller named.
    /// The caller (the quorum controller) steps down and forwards.
    #[error("not the metadata log leader (leader is {:?} at epoch {})", .0.leader, .0.epoch.0)]
    NotLeader(LeaderAndEpoch),
    /// The batch may or may not commit: leadership was lost after it was
    /// handed to the quorum. The caller cannot tell the client "done".
    #[error("leadership lost while the batch was in flight")]
    Uncertain,
    /// The batch is larger than the log accepts in one append.
    #[error("batch of {records} records and {bytes} bytes is over the limit")]
    TooLarge { records: usize, bytes: usize },
    /// The log is shutting down.
    #[error("metadata log is shut down")]
    Shutdown,
    /// The log's storage failed; the node must stop.
    #[error("fatal metadata log error: {0}")]
    Fatal(String),
}

/// Resolves with the reason once `log` fails fatally (a disk error, a
/// record that does not replay); never after a clean shutdown. A node
/// halts then, as Kafka's does, rather than serve a state it cannot trust.
pub async fn failure(log: &dyn MetadataLog) -> String {
    let mut listener = log.listen();
    loop {
        match listener.next().await {
            Ok(_) => {}
            Err(LogError::Shutdown) => std::future::pending::<()>().await,
            Err(e) => return e.to_string(),
        }
    }
}

/// The replicated metadata log, as one node sees it.
pub trait MetadataLog: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> NodeId;

    /// The current leader and epoch as this node knows them.
    fn leader_and_epoch(&self) -> LeaderAndEpoch;

    /// Appends `records` as one batch, if this node leads the log at
    /// `epoch`, and resolves with the batch's last offset once it is
    /// committed. Never resolves `Ok` for a batch that did not commit.
    fn append(
        &self,
        epoch: LeaderEpoch,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<Offset, LogError>>;

    /// A listener that starts at the beginning of the log (a snapshot
    /// first if the log was compacted) and follows its commits.
    fn listen(&self) -> Box<dyn LogListener>;

    /// The quorum as this node sees it.
    fn quorum_info(&self) -> QuorumInfo;

    /// How long ago this node last heard from a leader other than itself
    /// (accepted its entries or heartbeat); `None` if it never did or
    /// cannot tell (a single voter never waits for another leader). A
    /// controller that has just won an election reads it as how long the
    /// quorum had no leader it could hear: heartbeats brokers sent then
    /// reached no active controller.
    fn since_leader_contact(&self) -> Option<std::time::Duration> {
        None
    }

    /// Resolves once this node has applied every entry its local log held
    /// when called (`true`), or after `limit` (`false`). A restarted member
    /// of a quorum knows its commit point only once the leader tells it, so
    /// until then [`quorum_info`](MetadataLog::quorum_info) understates
    /// what is committed; a broker waits here before its first image, lest
    /// it take logs of topics it has not replayed yet for strays, and
    /// deletes no stray at all if this answers `false`. Logs that know
    /// their commit point at open answer `true` at once.
    fn catch_up_local(&self, limit: std::time::Duration) -> BoxFuture<'_, bool> {
        let _ = limit;
        Box::pin(async { true })
    }

    /// Stops the log: pending appends fail with [`LogError::Shutdown`] (or
    /// commit first), listeners end.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// A cursor over the committed log.
pub trait LogListener: Send {
    /// The next event; waits for one. `Err(Shutdown)` once the log stops.
    fn next(&mut self) -> BoxFuture<'_, Result<LogEvent, LogError>>;
}
