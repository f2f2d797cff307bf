//! The controller's internal RPC, carrying openraft's messages between
//! voters, and openraft's `RaftNetworkFactory`/`RaftNetwork` on top of it.
//!
//! Wire format, both directions: `len: u32 BE | version: u8 | body`, where
//! `len` counts the version byte and the body, `1 <= len <= MAX_RPC_FRAME`,
//! and the body is bincode (varint integers, decoding bounded by the frame
//! size). A request names the cluster id, the sender and target node ids
//! and the sender's voter ids; a server refuses a frame it cannot decode,
//! of an unknown version, for another cluster or another node, or from a
//! node whose voter set differs from its own: it logs why (WARN) and, when the
//! frame could be read, answers `Refused` before closing the connection.
//! Nothing a peer sends can make it panic or allocate beyond the frame.
//!
//! A client keeps one connection per target, sends one request at a time
//! (openraft calls each client sequentially) and drops the connection on
//! any error, when the RPC's deadline (`RPCOption::hard_ttl`) passes, or
//! when openraft abandons the call; every request carries an id that its
//! answer echoes, so an answer is never taken for another request's.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sluice_storage::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::frame;
use super::log_store::LogEntries;
use super::transport::{Acceptor, BoxConn, Transport};
use super::RaftTypes;

/// The RPC format version this node speaks.
pub const RPC_VERSION: u8 = 1;
/// The largest RPC frame accepted (entries are bounded by the append
/// limit times `max_payload_entries`; snapshots travel in chunks).
pub const MAX_RPC_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct RpcRequest {
    pub cluster_id: String,
    pub from: u64,
    pub to: u64,
    /// The sender's voter ids (`controller.quorum.voters`), sorted: voters
    /// that disagree on the set refuse each other.
    pub voters: Vec<u64>,
    /// Echoed in the answer; a client reads only the answer to its request.
    pub id: u64,
    pub body: RpcBody,
}

/// An answer, naming the request it answers (0 when the request could
/// not be read).
#[derive(Debug, Serialize, Deserialize)]
pub struct RpcReply {
    pub id: u64,
    pub body: RpcResponse,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcBody {
    AppendEntries(AppendEntriesRequest<RaftTypes>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<RaftTypes>),
    /// An observer (a node outside the voter set) asks the leader to
    /// replicate the log to it at `addr` (see [`super::observer`]).
    AddObserver {
        addr: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// `Ok` once the leader replicates to the observer; otherwise the
    /// leader this node knows of, if any.
    AddObserver(Result<(), Option<u64>>),
    /// The server refused the request (wrong cluster or node, bad frame).
    Refused(String),
}

/// Writes one frame.
pub async fn write_frame(conn: &mut BoxConn, body: &[u8]) -> io::Result<()> {
    if body.len() + 1 > MAX_RPC_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "RPC frame too large",
        ));
    }
    let mut buf = Vec::with_capacity(body.len() + 5);
    buf.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    buf.push(RPC_VERSION);
    buf.extend_from_slice(body);
    conn.write_all(&buf).await?;
    conn.flush().await
}

/// Reads one frame's body; refuses bad lengths and unknown versions.
pub async fn read_frame(conn: &mut BoxConn) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 5];
    conn.read_exact(&mut head).await?;
    let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
    if len == 0 || len > MAX_RPC_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("RPC frame of {len} bytes is outside 1..={MAX_RPC_FRAME}"),
        ));
    }
    if head[4] != RPC_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("RPC version {} (this node speaks {RPC_VERSION})", head[4]),
        ));
    }
    let mut body = vec![0; len - 1];
    conn.read_exact(&mut body).await?;
    Ok(body)
}

/// How long openraft waits before retrying an unreachable peer (its
/// default is 500 ms; a restarted voter should hear its leader sooner).
pub const RPC_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// When this node last heard from a leader other than itself (an
/// AppendEntries whose vote it accepted), on the node's clock; -1 if never.
/// A node just elected reads it as how long the quorum was leaderless.
#[derive(Debug)]
pub struct LeaderContact(std::sync::atomic::AtomicI64);

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact(std::sync::atomic::AtomicI64::new(-1))
    }
}

impl LeaderContact {
    /// The clock's ms at the last contact, if any.
    pub fn last_ms(&self) -> Option<i64> {
        let t = self.0.load(std::sync::atomic::Ordering::Acquire);
        (t >= 0).then_some(t)
    }

    fn record(&self, now_ms: i64) {
        self.0
            .fetch_max(now_ms, std::sync::atomic::Ordering::AcqRel);
    }
}

/// When the leader last heard from each peer, for DescribeQuorum.
#[derive(Debug, Default)]
pub struct PeerTimes(Mutex<BTreeMap<u64, PeerTime>>);

#[derive(Clone, Copy, Debug, Default)]
pub struct PeerTime {
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

impl PeerTimes {
    pub fn get(&self, node: u64) -> Option<PeerTime> {
        self.0.lock().get(&node).copied()
    }
    fn record(&self, node: u64, now: i64, caught_up: bool) {
        let mut g = self.0.lock();
        let t = g.entry(node).or_insert(PeerTime {
            last_fetch_ms: -1,
            last_caught_up_ms: -1,
        });
        t.last_fetch_ms = now;
        if caught_up {
            t.last_caught_up_ms = now;
        }
    }
}

/// Creates clients for openraft.
pub struct NetworkFactory {
    pub(crate) id: u64,
    pub(crate) cluster_id: String,
    pub(crate) voters: Vec<u64>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) times: Arc<PeerTimes>,
    pub(crate) log: Arc<RwLock<LogEntries>>,
}

impl NetworkFactory {
    /// A factory for a node outside a running voter (tools and tests).
    pub fn new(
        id: u64,
        cluster_id: &str,
        voters: Vec<u64>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        NetworkFactory {
            id,
            cluster_id: cluster_id.to_owned(),
            voters,
            transport,
            clock,
            times: Arc::default(),
            log: Arc::default(),
        }
    }
}

impl RaftNetworkFactory<RaftTypes> for NetworkFactory {
    type Network = Client;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Client {
        Client {
            id: self.id,
            target,
            addr: node.addr.clone(),
            cluster_id: self.cluster_id.clone(),
            voters: self.voters.clone(),
            transport: self.transport.clone(),
            clock: self.clock.clone(),
            times: self.times.clone(),
            log: self.log.clone(),
            conn: None,
            next_id: 0,
        }
    }
}

/// A connection to one peer.
pub struct Client {
    id: u64,
    target: u64,
    addr: String,
    cluster_id: String,
    voters: Vec<u64>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    times: Arc<PeerTimes>,
    log: Arc<RwLock<LogEntries>>,
    conn: Option<BoxConn>,
    next_id: u64,
}

type RpcErr<E> = RPCError<u64, BasicNode, E>;

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "RPC deadline passed")
}

enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RpcErr<E> {
        match self {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl Client {
    /// One request and its answer. The connection is taken out for the
    /// exchange and put back only after a whole answer to *this* request
    /// (same id) was read: if openraft drops the call midway (its own
    /// timeout is one heartbeat), the connection goes with it, so a late
    /// answer can never be read as the answer to a later request.
    async fn call(&mut self, body: RpcBody, option: &RPCOption) -> Result<RpcResponse, CallError> {
        self.next_id += 1;
        let id = self.next_id;
        let req = RpcRequest {
            cluster_id: self.cluster_id.clone(),
            from: self.id,
            to: self.target,
            voters: self.voters.clone(),
            id,
            body,
        };
        let bytes = frame::encode(&req).map_err(CallError::Network)?;
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let c = tokio::time::timeout(option.hard_ttl(), self.transport.connect(&self.addr));
                match c.await {
                    Ok(c) => c.map_err(CallError::Unreachable)?,
                    Err(_) => return Err(CallError::Unreachable(timed_out())),
                }
            }
        };
        let exchange = async {
            write_frame(&mut conn, &bytes).await?;
            let resp = read_frame(&mut conn).await?;
            let reply: RpcReply = frame::decode(&resp)?;
            if reply.id != id {
                let e = format!("answer to request {} where {id} was expected", reply.id);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            Ok(reply.body)
        };
        let result = match tokio::time::timeout(option.hard_ttl(), exchange).await {
            Ok(r) => r.map_err(CallError::Network),
            Err(_) => Err(CallError::Network(timed_out())),
        };
        match result {
            // A refusal (another cluster or node, a voter set that
            // differs) lasts until the peer changes: openraft backs off
            // from Unreachable, where a network error is retried at once
            // (about 400 times a second were seen).
            Ok(RpcResponse::Refused(why)) => {
                let e = io::Error::new(io::ErrorKind::ConnectionRefused, why);
                Err(CallError::Unreachable(e))
            }
            Ok(r) => {
                self.conn = Some(conn);
                Ok(r)
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the target (a voter) to replicate the log to this observer at
    /// `addr`: `Ok(Ok(()))` once it does, `Ok(Err(leader))` from a voter
    /// that does not lead.
    pub(crate) async fn add_observer(
        &mut self,
        addr: String,
        option: &RPCOption,
    ) -> io::Result<Result<(), Option<u64>>> {
        match self.call(RpcBody::AddObserver { addr }, option).await {
            Ok(RpcResponse::AddObserver(r)) => Ok(r),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "mismatched RPC response",
            )),
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(e),
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RpcErr<E> {
        let e = io::Error::new(io::ErrorKind::InvalidData, "mismatched RPC response");
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<RaftTypes> for Client {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(RPC_BACKOFF))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RaftTypes>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr<RaftError<u64>>> {
        let acked = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|l| l.index));
        match self.call(RpcBody::AppendEntries(rpc), &option).await {
            Ok(RpcResponse::AppendEntries(Ok(r))) => {
                let last = self.log.read().last_log_id().map(|l| l.index);
                let caught_up = matches!(r, AppendEntriesResponse::Success) && acked >= last;
                self.times
                    .record(self.target, self.clock.now_ms(), caught_up);
                Ok(r)
            }
            Ok(RpcResponse::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<RaftTypes>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<RaftError<u64, InstallSnapshotError>>> {
        match self.call(RpcBody::InstallSnapshot(rpc), &option).await {
            Ok(RpcResponse::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(RpcResponse::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr<RaftError<u64>>> {
        match self.call(RpcBody::Vote(rpc), &option).await {
            Ok(RpcResponse::Vote(Ok(r))) => Ok(r),
            Ok(RpcResponse::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(e.into_rpc()),
        }
    }
}

/// Accepts connections and serves each on its own task. The connection
/// tasks belong to this future: when it is dropped or aborted (the node
/// stops), they stop and their sockets close, as a dead process's would.
pub async fn serve(
    mut acceptor: Box<dyn Acceptor>,
    raft: Raft<RaftTypes>,
    id: u64,
    cluster_id: String,
    voters: Vec<u64>,
    contact: Arc<LeaderContact>,
    clock: Arc<dyn Clock>,
) {
    let voters = Arc::new(voters);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (conn, peer) = match acceptor.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metadata quorum RPC: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let raft = raft.clone();
        let cluster_id = cluster_id.clone();
        let voters = voters.clone();
        let heard = Heard {
            contact: contact.clone(),
            clock: clock.clone(),
        };
        conns.spawn(async move {
            if let Err(e) = serve_conn(conn, &raft, id, &cluster_id, &voters, &heard).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::warn!("metadata quorum RPC from {peer} refused: {e}");
                }
            }
        });
    }
}

/// Where a connection notes that a leader was heard.
struct Heard {
    contact: Arc<LeaderContact>,
    clock: Arc<dyn Clock>,
}

/// Serves one connection: request, answer, until the peer closes or
/// breaks the protocol.
async fn serve_conn(
    mut conn: BoxConn,
    raft: &Raft<RaftTypes>,
    me: u64,
    cluster_id: &str,
    voters: &[u64],
    heard: &Heard,
) -> io::Result<()> {
    loop {
        let body = read_frame(&mut conn).await?;
        let req: RpcRequest = match frame::decode(&body) {
            Ok(r) => r,
            Err(e) => return refuse(&mut conn, 0, format!("undecodable request: {e}")).await,
        };
        let id = req.id;
        if req.cluster_id != cluster_id {
            let why = format!(
                "request for cluster {:?} from node {}, but this is cluster {cluster_id:?}",
                req.cluster_id, req.from
            );
            return refuse(&mut conn, id, why).await;
        }
        if req.to != me {
            let why = format!(
                "request for node {} from node {}, but this is node {me}",
                req.to, req.from
            );
            return refuse(&mut conn, id, why).await;
        }
        if req.voters != voters {
            let why = format!(
                "node {} has voters {:?}, but this node (node {me}) has {voters:?}",
                req.from, req.voters
            );
            return refuse(&mut conn, id, why).await;
        }
        let resp = match req.body {
            RpcBody::AppendEntries(r) => {
                let answer = raft.append_entries(r).await;
                // Any answer but HigherVote means the sender leads at a
                // vote this node accepts (a heartbeat is an empty append).
                if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                    heard.contact.record(heard.clock.now_ms());
                }
                RpcResponse::AppendEntries(answer)
            }
            RpcBody::Vote(r) => RpcResponse::Vote(raft.vote(r).await),
            RpcBody::InstallSnapshot(r) => {
                RpcResponse::InstallSnapshot(raft.install_snapshot(r).await)
            }
            RpcBody::AddObserver { addr } => {
                if voters.contains(&req.from) {
                    let why = format!("node {} is a voter, not an observer", req.from);
                    return refuse(&mut conn, id, why).await;
                }
                RpcResponse::AddObserver(super::observer::admit(raft, me, req.from, addr).await)
            }
        };
        let reply = RpcReply { id, body: resp };
        write_frame(&mut conn, &frame::encode(&reply)?).await?;
    }
}

async fn refuse(conn: &mut BoxConn, id: u64, why: String) -> io::Result<()> {
    let reply = RpcReply {
        id,
        body: RpcResponse::Refused(why.clone()),
    };
    if let Ok(b) = frame::encode(&reply) {
        let _ = write_frame(conn, &b).await;
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, why))
}
