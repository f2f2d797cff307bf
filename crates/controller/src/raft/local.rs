//! A local quorum of voters on loopback TCP in one process, for tests,
//! benchmarks and examples: start, kill (stop a voter as a crash would:
//! no goodbye), restart on the same directory and port, find the leader.
//! Each voter keeps a listener that folds every event into an image, so a
//! test can compare what the nodes saw.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_metadata::{MetadataDelta, MetadataImage, MetadataRecord};
use sluice_record::LeaderEpoch;
use sluice_storage::{Fs, RealFs, SystemClock};

use super::transport::{TcpAcceptor, TcpTransport};
use super::{RaftConfig, RaftMetadataLog};
use crate::{LogError, LogEvent, MetadataLog, NodeId};

/// What one node's listener has seen.
#[derive(Debug, Default)]
pub struct Seen {
    pub events: Vec<LogEvent>,
    pub image: Option<MetadataImage>,
    /// Set when the listener ended (shutdown or fatal).
    pub ended: Option<String>,
}

/// Folds one event into an image, as a broker's metadata loader would.
pub fn fold(image: MetadataImage, event: &LogEvent) -> MetadataImage {
    match event {
        LogEvent::Snapshot(img) => img.clone(),
        LogEvent::LeaderChange(_) => image,
        LogEvent::Batch(b) => {
            let mut delta = MetadataDelta::new(image);
            for (i, r) in b.records.iter().enumerate() {
                let offset = sluice_record::Offset(b.base_offset.0 + i as i64);
                if let Err(e) = delta.replay(offset, b.epoch, r) {
                    tracing::warn!("record at {} not applied: {e}", offset.0);
                }
            }
            delta.apply().0
        }
    }
}

pub struct LocalNode {
    pub log: Arc<RaftMetadataLog>,
    pub seen: Arc<Mutex<Seen>>,
    listener: tokio::task::JoinHandle<()>,
}

/// A quorum of voters on 127.0.0.1 (see the module docs).
pub struct LocalCluster {
    pub base: PathBuf,
    pub voters: BTreeMap<NodeId, String>,
    /// Observers (ids after the voters'): their RPC addresses.
    pub observers: BTreeMap<NodeId, String>,
    pub nodes: BTreeMap<NodeId, LocalNode>,
    pub tune: fn(&mut RaftConfig),
}

impl LocalCluster {
    /// Starts `n` voters with ids 1..=n under `base/node-N`.
    pub async fn start(n: i32, base: PathBuf, tune: fn(&mut RaftConfig)) -> Result<Self, LogError> {
        Self::start_with_observers(n, 0, base, tune).await
    }

    /// Starts `n` voters with ids 1..=n and `m` observers with ids
    /// n+1..=n+m under `base/node-N`.
    pub async fn start_with_observers(
        n: i32,
        m: i32,
        base: PathBuf,
        tune: fn(&mut RaftConfig),
    ) -> Result<Self, LogError> {
        let mut acceptors = BTreeMap::new();
        let mut voters = BTreeMap::new();
        let mut observers = BTreeMap::new();
        for id in 1..=n + m {
            let a = TcpAcceptor::bind("127.0.0.1:0").await.map_err(io_fatal)?;
            let addr = a.local_addr().map_err(io_fatal)?.to_string();
            let set = if id <= n { &mut voters } else { &mut observers };
            set.insert(sluice_metadata::BrokerId(id), addr);
            acceptors.insert(sluice_metadata::BrokerId(id), a);
        }
        let mut c = LocalCluster {
            base,
            voters,
            observers,
            nodes: BTreeMap::new(),
            tune,
        };
        for (id, a) in acceptors {
            c.start_node(id, a).await?;
        }
        Ok(c)
    }

    async fn start_node(&mut self, id: NodeId, acceptor: TcpAcceptor) -> Result<(), LogError> {
        let dir = self.base.join(format!("node-{}", id.0));
        let mut config = RaftConfig::new(id, "local-cluster", self.voters.clone(), dir);
        config.observer_address = self.observers.get(&id).cloned();
        (self.tune)(&mut config);
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let log = RaftMetadataLog::start(
            config,
            fs,
            Arc::new(TcpTransport),
            Box::new(acceptor),
            Arc::new(SystemClock),
        )
        .await?;
        let log = Arc::new(log);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut listener = log.listen();
        let s = seen.clone();
        let listener = tokio::spawn(async move {
            loop {
                match listener.next().await {
                    Ok(ev) => {
                        let mut g = s.lock();
                        let image = g.image.take().unwrap_or_else(MetadataImage::empty);
                        g.image = Some(fold(image, &ev));
                        g.events.push(ev);
                    }
                    Err(e) => {
                        s.lock().ended = Some(e.to_string());
                        return;
                    }
                }
            }
        });
        self.nodes.insert(
            id,
            LocalNode {
                log,
                seen,
                listener,
            },
        );
        Ok(())
    }

    /// Stops a voter abruptly (its RPC server and raft stop; peers see
    /// broken connections), keeping its directory.
    pub async fn kill(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.remove(&id) {
            n.log.shutdown().await;
            n.listener.abort();
        }
    }

    /// Restarts every node that was killed or shut down.
    pub async fn restart_stopped(&mut self) -> Result<(), LogError> {
        let ids: Vec<NodeId> = self
            .voters
            .keys()
            .chain(self.observers.keys())
            .copied()
            .collect();
        for id in ids {
            if self.nodes.get(&id).is_some_and(|n| n.log.is_shut_down()) {
                self.kill(id).await;
            }
            if !self.nodes.contains_key(&id) {
                self.restart(id).await?;
            }
        }
        Ok(())
    }

    /// Restarts a killed node on its directory and address.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), LogError> {
        let addr = self
            .voters
            .get(&id)
            .or_else(|| self.observers.get(&id))
            .expect("a node of this cluster")
            .clone();
        let mut tries = 0;
        let acceptor = loop {
            match TcpAcceptor::bind(&addr).await {
                Ok(a) => break a,
                Err(e) if tries < 100 => {
                    tries += 1;
                    tracing::debug!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(io_fatal(e)),
            }
        };
        self.start_node(id, acceptor).await
    }

    /// The node that leads, as it says itself and a majority agrees on,
    /// and its epoch.
    pub fn leader(&self) -> Option<(NodeId, LeaderEpoch)> {
        for (&id, n) in &self.nodes {
            let le = n.log.leader_and_epoch();
            if le.leader == Some(id) && n.log.is_ready_leader() {
                let agree = self
                    .nodes
                    .iter()
                    .filter(|(id, m)| {
                        self.voters.contains_key(id) && m.log.leader_and_epoch() == le
                    })
                    .count();
                if agree * 2 > self.voters.len() {
                    return Some((id, le.epoch));
                }
            }
        }
        None
    }

    /// Waits up to `timeout` for a leader other than `not`.
    pub async fn wait_leader(
        &self,
        not: Option<NodeId>,
        timeout: Duration,
    ) -> Option<(NodeId, LeaderEpoch)> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.leader().filter(|l| Some(l.0) != not) {
                return Some(l);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    /// Appends through whoever leads, retrying through elections until
    /// `timeout`; returns the committed last offset.
    pub async fn append(
        &self,
        records: Vec<MetadataRecord>,
        timeout: Duration,
    ) -> Result<sluice_record::Offset, LogError> {
        let start = Instant::now();
        loop {
            let Some((id, epoch)) = self.wait_leader(None, timeout).await else {
                return Err(LogError::NotLeader(crate::LeaderAndEpoch {
                    leader: None,
                    epoch: LeaderEpoch(-1),
                }));
            };
            match self.nodes[&id].log.append(epoch, records.clone()).await {
                Err(LogError::NotLeader(_)) if start.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    /// Waits until every running node's listener has seen the image at
    /// `last_offset` or later.
    pub async fn wait_seen(&self, last_offset: i64, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let all = self.nodes.values().all(|n| {
                n.seen
                    .lock()
                    .image
                    .as_ref()
                    .is_some_and(|i| i.provenance().last_offset.0 >= last_offset)
            });
            if all {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id).await;
        }
    }
}

fn io_fatal(e: std::io::Error) -> LogError {
    LogError::Fatal(format!("local cluster: {e}"))
}
