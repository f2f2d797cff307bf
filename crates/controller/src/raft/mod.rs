//! The metadata log replicated by openraft (0.9, storage v2):
//! [`RaftMetadataLog`] implements the [`crate::MetadataLog`] seam for a
//! static set of voters.
//!
//! - [`log_store`]: openraft's `RaftLogStorage` on disk through the storage
//!   crate's `Fs` seam: the vote, the entries, truncation and purge, each
//!   durable (fsynced) before openraft is told so.
//! - [`state_machine`]: openraft's `RaftStateMachine`: applies committed
//!   entries to a [`sluice_metadata::MetadataImage`], numbers records
//!   (offsets are a running count, so every node gives the same ones), and
//!   builds, persists and installs snapshots of the image.
//! - [`listener`]: the pull-based [`crate::LogListener`] that reads
//!   committed entries straight from the log (or the snapshot when the log
//!   was compacted past it): nothing is queued per listener.
//! - [`network`] and [`transport`]: openraft's `RaftNetwork` over our
//!   internal RPC (length-prefixed, versioned, bounded frames; bincode),
//!   on a socket behind a [`transport::Transport`] seam (tokio TCP, or
//!   turmoil in simulations).
//! - [`node`]: [`RaftMetadataLog`] itself: start, append, leadership,
//!   quorum info, shutdown.
//! - [`observer`]: a node outside the voter set (a broker) that follows
//!   the log as an openraft learner, admitted by the leader on request.
//!
//! Invariants:
//! - A Raft entry carries one batch of metadata records and the epoch the
//!   appender named; it takes effect only if that epoch is the entry's term
//!   (so a batch never commits in an epoch its appender did not lead).
//! - Listeners see committed entries only, in log order, with record
//!   offsets assigned at apply time by a running count.
//! - One leader per term (openraft's `single-term-leader`), so a term is a
//!   Kafka epoch. A new leader first commits an empty batch naming itself
//!   (Kafka's `LeaderChangeMessage`), which listeners turn into
//!   `LogEvent::LeaderChange` before any batch of that epoch.
//! - Any storage error is fatal: openraft stops, the node refuses appends
//!   and listeners end with [`crate::LogError::Fatal`].

pub mod frame;
pub mod listener;
pub mod local;
pub mod log_store;
pub mod network;
pub mod node;
pub mod observer;
pub mod runtime;
pub mod state_machine;
pub mod transport;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use node::{RaftConfig, RaftMetadataLog};
pub use runtime::{seed_thread_rng, SluiceRuntime};
pub use transport::{Acceptor, BoxConn, TcpAcceptor, TcpTransport, Transport};

/// The payload of one Raft entry: one batch of metadata records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataEntry {
    /// The epoch the appender led; the batch applies only if the entry was
    /// appended in this term.
    pub epoch: i32,
    /// The appending leader's node id (the only leader of `epoch`: openraft
    /// runs with one leader per term).
    pub leader: i32,
    /// The leader's wall clock at append (ms since the Unix epoch).
    pub append_time_ms: i64,
    /// Each record in Kafka's metadata-record framing
    /// (`MetadataRecord::encode`).
    pub records: Vec<Vec<u8>>,
}

/// What applying an entry gave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyResult {
    /// A blank or membership entry.
    #[default]
    None,
    /// The batch committed at these offsets (`last < base` when empty).
    Committed { base_offset: i64, last_offset: i64 },
    /// The entry's term was not the epoch its appender named: ignored.
    EpochMismatch,
}

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata log.
    pub RaftTypes:
        D = MetadataEntry,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<RaftTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = SluiceRuntime,
);

/// openraft's storage error for our node ids.
pub type StorageError = openraft::StorageError<u64>;
/// openraft's log id for our node ids.
pub type LogId = openraft::LogId<u64>;
/// A Raft entry of the metadata log.
pub type Entry = openraft::Entry<RaftTypes>;

/// A fatal-error latch shared by a node's parts: the first storage error
/// sets it, and everything that serves (appends, listeners) checks it;
/// waiting listeners are woken.
#[derive(Debug, Default)]
pub struct FatalLatch {
    why: parking_lot::Mutex<Option<String>>,
    set: tokio::sync::Notify,
}

impl FatalLatch {
    pub fn set(&self, why: impl Into<String>) {
        let mut g = self.why.lock();
        if g.is_none() {
            let why = why.into();
            tracing::error!("metadata log halted: {why}");
            *g = Some(why);
            self.set.notify_waiters();
        }
    }
    pub fn get(&self) -> Option<String> {
        self.why.lock().clone()
    }
    /// Resolves once the latch is set (register before checking [`get`]).
    ///
    /// [`get`]: FatalLatch::get
    pub fn wait(&self) -> tokio::sync::futures::Notified<'_> {
        self.set.notified()
    }
}

/// An openraft storage error (fatal to openraft) for an I/O error, also
/// latched in `fatal`.
pub(crate) fn storage_error(
    fatal: &FatalLatch,
    what: &str,
    e: impl std::fmt::Display,
) -> StorageError {
    let msg = format!("{what}: {e}");
    fatal.set(msg.clone());
    openraft::StorageIOError::write(openraft::AnyError::error(msg)).into()
}
