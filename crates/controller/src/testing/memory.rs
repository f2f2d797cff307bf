//! [`MemoryLog`]: an in-memory [`MetadataLog`] for tests of code above the
//! seam (the quorum controller, the broker's publishers). One node that
//! leads at the epoch it was given; an append commits at once. Leadership
//! can be taken away and given back ([`MemoryLog::set_leader`]) to test
//! NOT_CONTROLLER paths. No snapshots, no disk.

use std::sync::Arc;

use parking_lot::Mutex;
use sluice_metadata::MetadataRecord;
use sluice_record::{LeaderEpoch, Offset};
use tokio::sync::watch;

use crate::log::*;

struct State {
    leader: LeaderAndEpoch,
    /// Every event in log order (batches and leader changes).
    events: Vec<LogEvent>,
    next_offset: i64,
    shutdown: bool,
    /// Appends still to refuse with [`LogError::Uncertain`].
    refuse: usize,
    /// A batch of the previous epoch that commits together with the new
    /// leader's first entry, and that leader's change event (see
    /// [`MemoryLog::set_leader_with_tail`]).
    tail: Option<(CommittedBatch, LeaderAndEpoch)>,
    /// What [`MetadataLog::since_leader_contact`] answers.
    since_leader_contact: Option<std::time::Duration>,
}

/// An in-memory metadata log (see the module docs).
pub struct MemoryLog {
    node: NodeId,
    max_records: usize,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    /// While true, appends wait (a slow disk: [`MemoryLog::hold_appends`]).
    held: watch::Sender<bool>,
}

impl MemoryLog {
    /// A log led by `node` at epoch 1.
    pub fn new(node: NodeId) -> Arc<MemoryLog> {
        let leader = LeaderAndEpoch {
            leader: Some(node),
            epoch: LeaderEpoch(1),
        };
        Arc::new(MemoryLog {
            node,
            max_records: 10_000,
            state: Arc::new(Mutex::new(State {
                leader,
                events: vec![LogEvent::LeaderChange(leader)],
                next_offset: 0,
                shutdown: false,
                refuse: 0,
                tail: None,
                since_leader_contact: None,
            })),
            changed: watch::channel(0).0,
            held: watch::channel(false).0,
        })
    }

    /// Appends wait from now until [`MemoryLog::release_appends`], as on
    /// a disk whose fsyncs take seconds.
    pub fn hold_appends(&self) {
        self.held.send_replace(true);
    }

    pub fn release_appends(&self) {
        self.held.send_replace(false);
    }

    /// A new leader (or none) at the next epoch.
    pub fn set_leader(&self, leader: Option<NodeId>) {
        let mut st = self.state.lock();
        st.leader = LeaderAndEpoch {
            leader,
            epoch: LeaderEpoch(st.leader.epoch.0 + 1),
        };
        let l = st.leader;
        st.events.push(LogEvent::LeaderChange(l));
        drop(st);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Leadership passes to `leader` at the next epoch as a Raft election
    /// does: the new leader leads at once, but `tail` (records the old
    /// leader appended, not yet known committed) and the leader change
    /// commit only with the new leader's first entry, i.e. at
    /// [`MemoryLog::commit_tail`] or before the next append, whichever
    /// comes first. Until then the high watermark does not count them.
    pub fn set_leader_with_tail(&self, leader: NodeId, tail: Vec<MetadataRecord>) {
        let mut st = self.state.lock();
        let batch = CommittedBatch {
            base_offset: Offset(st.next_offset),
            epoch: st.leader.epoch,
            append_time_ms: 0,
            records: tail,
        };
        st.leader = LeaderAndEpoch {
            leader: Some(leader),
            epoch: LeaderEpoch(st.leader.epoch.0 + 1),
        };
        st.tail = Some((batch, st.leader));
    }

    /// Commits the tail of [`MemoryLog::set_leader_with_tail`].
    pub fn commit_tail(&self) {
        Self::commit_tail_locked(&mut self.state.lock());
        self.changed.send_modify(|v| *v += 1);
    }

    fn commit_tail_locked(st: &mut State) {
        if let Some((batch, leader)) = st.tail.take() {
            st.next_offset = batch.last_offset().0 + 1;
            st.events.push(LogEvent::Batch(batch));
            st.events.push(LogEvent::LeaderChange(leader));
        }
    }

    /// What [`MetadataLog::since_leader_contact`] answers from now on: as
    /// if this node last heard from another leader `ago` before the call
    /// (a test's controller clock, not this log, says how time passes).
    pub fn set_since_leader_contact(&self, ago: Option<std::time::Duration>) {
        self.state.lock().since_leader_contact = ago;
    }

    /// The next `n` appends fail with [`LogError::Uncertain`] (leadership
    /// lost in flight) and write nothing.
    pub fn refuse_next_appends(&self, n: usize) {
        self.state.lock().refuse = n;
    }

    /// Every committed batch so far.
    pub fn batches(&self) -> Vec<CommittedBatch> {
        self.state
            .lock()
            .events
            .iter()
            .filter_map(|e| match e {
                LogEvent::Batch(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }
}

impl MetadataLog for MemoryLog {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn leader_and_epoch(&self) -> LeaderAndEpoch {
        self.state.lock().leader
    }

    fn append(
        &self,
        epoch: LeaderEpoch,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<Offset, LogError>> {
        Box::pin(async move {
            let mut held = self.held.subscribe();
            let _ = held.wait_for(|h| !h).await;
            let mut st = self.state.lock();
            if st.shutdown {
                return Err(LogError::Shutdown);
            }
            if st.leader.leader != Some(self.node) || st.leader.epoch != epoch {
                return Err(LogError::NotLeader(st.leader));
            }
            if st.refuse > 0 {
                st.refuse -= 1;
                return Err(LogError::Uncertain);
            }
            if records.is_empty() || records.len() > self.max_records {
                return Err(LogError::TooLarge {
                    records: records.len(),
                    bytes: 0,
                });
            }
            Self::commit_tail_locked(&mut st);
            let batch = CommittedBatch {
                base_offset: Offset(st.next_offset),
                epoch,
                append_time_ms: 0,
                records,
            };
            let last = batch.last_offset();
            st.next_offset = last.0 + 1;
            st.events.push(LogEvent::Batch(batch));
            drop(st);
            self.changed.send_modify(|v| *v += 1);
            Ok(last)
        })
    }

    fn listen(&self) -> Box<dyn LogListener> {
        Box::new(MemoryListener {
            state: self.state.clone(),
            changed: self.changed.subscribe(),
            next: 0,
        })
    }

    fn quorum_info(&self) -> QuorumInfo {
        let st = self.state.lock();
        QuorumInfo {
            leader: st.leader,
            high_watermark: Offset(st.next_offset),
            voters: Vec::new(),
            observers: Vec::new(),
        }
    }

    fn since_leader_contact(&self) -> Option<std::time::Duration> {
        self.state.lock().since_leader_contact
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.state.lock().shutdown = true;
            self.changed.send_modify(|v| *v += 1);
        })
    }
}

struct MemoryListener {
    state: Arc<Mutex<State>>,
    changed: watch::Receiver<u64>,
    next: usize,
}

impl LogListener for MemoryListener {
    fn next(&mut self) -> BoxFuture<'_, Result<LogEvent, LogError>> {
        Box::pin(async move {
            loop {
                self.changed.borrow_and_update();
                {
                    let st = self.state.lock();
                    if st.shutdown {
                        return Err(LogError::Shutdown);
                    }
                    if let Some(e) = st.events.get(self.next) {
                        self.next += 1;
                        return Ok(e.clone());
                    }
                }
                if self.changed.changed().await.is_err() {
                    return Err(LogError::Shutdown);
                }
            }
        })
    }
}
