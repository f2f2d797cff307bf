//! Consumers in a group: KIP-848's ConsumerGroupHeartbeat through the
//! nodes' real group coordinator (its state in `__consumer_offsets`, led
//! and replicated like any partition), each member polling the partitions
//! the coordinator assigns it from their leaders, committing what it read
//! (OffsetCommit with its member epoch), and resuming from the committed
//! offsets (OffsetFetch) after a rebalance or its own restart. Every step
//! goes into the history, so the checker sees commits lost across a
//! coordinator failover (`LostCommit`) and records skipped past a resumed
//! position (`InternalSkip`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_checker::{Call, Offset, OpType, TopicPartition, Value};

use crate::client::{CallFailed, Client};
use crate::workload::{find_leader, Workload, TOPIC};

/// The group the consumers share.
pub const GROUP: &str = "sim-group";
/// Consumers in the group.
pub const CONSUMERS: u64 = 2;
/// The first consumer's process id in the history.
const FIRST_PROCESS: u64 = 2_000;
/// Rounds (heartbeat, poll, commit) a consumer lives before it restarts:
/// every other life ends with a leave, the others vanish as after
/// `kill -9` (the coordinator expires the member after its session).
const LIFETIME: u32 = 40;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Client {
    /// FindCoordinator (v4) of `group`: the coordinator's node id.
    pub async fn find_coordinator(&mut self, group: &str) -> Result<Option<i32>, CallFailed> {
        let req = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s(group)]);
        let resp: FindCoordinatorResponse = self.call(ApiKey::FindCoordinator, 4, &req).await?;
        Ok(resp
            .coordinators
            .first()
            .filter(|c| c.error_code == 0 && c.node_id.0 >= 0)
            .map(|c| c.node_id.0))
    }

    /// ConsumerGroupHeartbeat (v1).
    pub async fn group_heartbeat(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
    ) -> Result<ConsumerGroupHeartbeatResponse, CallFailed> {
        self.call(ApiKey::ConsumerGroupHeartbeat, 1, req).await
    }

    /// OffsetCommit (v9) of `offsets` (partition to next offset) by a
    /// member at `epoch`: the first error code (0: every offset committed).
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<i16, CallFailed> {
        let partitions = offsets
            .iter()
            .map(|(&p, &o)| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(o)
                    .with_committed_leader_epoch(-1)
            })
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(epoch)
            .with_member_id(s(member))
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(partitions)]);
        let resp: OffsetCommitResponse = self.call(ApiKey::OffsetCommit, 9, &req).await?;
        let codes: Vec<i16> = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        if codes.len() != offsets.len() {
            return Ok(-1);
        }
        Ok(codes.into_iter().find(|&c| c != 0).unwrap_or(0))
    }

    /// OffsetFetch (v7, stable offsets only) of `partitions`: the committed
    /// offsets (a partition without one is absent), or the error code.
    pub async fn committed_offsets(
        &mut self,
        group: &str,
        partitions: &[i32],
    ) -> Result<Result<BTreeMap<i32, i64>, i16>, CallFailed> {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_require_stable(true)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_indexes(partitions.to_vec())]));
        let resp: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, 7, &req).await?;
        if resp.error_code != 0 {
            return Ok(Err(resp.error_code));
        }
        let mut out = BTreeMap::new();
        for p in resp.topics.iter().flat_map(|t| t.partitions.iter()) {
            if p.error_code != 0 {
                return Ok(Err(p.error_code));
            }
            if p.committed_offset >= 0 {
                out.insert(p.partition_index, p.committed_offset);
            }
        }
        Ok(Ok(out))
    }
}

/// One life of a member: its id, epoch, and per owned partition the next
/// offset to read (`None` until the committed offsets were read).
struct Member {
    id: String,
    epoch: i32,
    owned: BTreeMap<i32, Option<i64>>,
    topic_id: Option<uuid::Uuid>,
}

struct Consumer {
    w: Arc<Workload>,
    process: u64,
    coordinator: Option<Client>,
    leaders: BTreeMap<i32, Client>,
    rotate: i32,
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

fn offsets_map(m: &BTreeMap<i32, i64>) -> BTreeMap<TopicPartition, Offset> {
    m.iter().map(|(&p, &o)| (tp(p), Offset(o))).collect()
}

impl Consumer {
    /// A connection to the group's coordinator, found through any node.
    async fn coordinator(&mut self) -> Option<&mut Client> {
        if self.coordinator.is_none() {
            self.rotate = self.w.next_broker(self.rotate);
            let mut c = Client::connect(self.rotate, "sim-consumer").await.ok()?;
            let id = c.find_coordinator(GROUP).await.ok()??;
            tracing::debug!(
                process = self.process,
                coordinator = id,
                "found the coordinator"
            );
            self.coordinator = Some(Client::connect(id, "sim-consumer").await.ok()?);
        }
        self.coordinator.as_mut()
    }

    /// One heartbeat; `false` when the member must start over (fenced or
    /// unknown: what it owned is lost).
    async fn heartbeat(&mut self, m: &mut Member, leave: bool) -> bool {
        let owned: Vec<TopicPartitions> = match m.topic_id {
            Some(id) => vec![TopicPartitions::default()
                .with_topic_id(id)
                .with_partitions(m.owned.keys().copied().collect())],
            None => Vec::new(),
        };
        let joining = m.epoch == 0;
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(s(&m.id))
            .with_member_epoch(if leave { -1 } else { m.epoch })
            .with_rebalance_timeout_ms(if joining { 10_000 } else { -1 })
            .with_subscribed_topic_names(joining.then(|| vec![TopicName(s(TOPIC))]))
            .with_topic_partitions((joining || !leave).then_some(owned));
        let Some(c) = self.coordinator().await else {
            return true;
        };
        let r = match c.group_heartbeat(&req).await {
            Ok(r) => r,
            Err(_) => {
                self.coordinator = None;
                return true;
            }
        };
        match r.error_code {
            0 if leave => true,
            0 => {
                m.epoch = r.member_epoch;
                if let Some(a) = &r.assignment {
                    let mut target = BTreeSet::new();
                    for t in &a.topic_partitions {
                        m.topic_id = Some(t.topic_id);
                        target.extend(t.partitions.iter().copied());
                    }
                    self.reconcile(m, target).await;
                }
                true
            }
            // UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH: rejoin from scratch.
            25 | 110 => {
                tracing::debug!(member = %m.id, code = r.error_code, "heartbeat: rejoining");
                false
            }
            // NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, ..._LOAD_IN_PROGRESS.
            code => {
                tracing::debug!(member = %m.id, code, "heartbeat refused");
                self.coordinator = None;
                true
            }
        }
    }

    /// Takes the coordinator's new assignment: revoked partitions go (what
    /// was read of them committed first), assigned ones start from the
    /// group's committed offsets.
    async fn reconcile(&mut self, m: &mut Member, target: BTreeSet<i32>) {
        let owned: BTreeSet<i32> = m.owned.keys().copied().collect();
        if owned == target {
            return;
        }
        let revoked: Vec<i32> = owned.difference(&target).copied().collect();
        let assigned: Vec<i32> = target.difference(&owned).copied().collect();
        tracing::debug!(member = %m.id, epoch = m.epoch, ?assigned, ?revoked, "rebalance");
        let done: BTreeMap<i32, i64> = revoked
            .iter()
            .filter_map(|p| Some((*p, m.owned.get(p).copied()??)))
            .collect();
        self.commit(m, &done).await;
        for p in &revoked {
            m.owned.remove(p);
        }
        for &p in &assigned {
            m.owned.insert(p, None);
        }
        self.w.record(
            self.process,
            OpType::Info,
            Call::Rebalance {
                assigned: assigned.iter().map(|&p| tp(p)).collect(),
                revoked: revoked.iter().map(|&p| tp(p)).collect(),
            },
        );
    }

    /// Reads the committed offsets of owned partitions that have no
    /// position yet (from 0 where the group has none).
    async fn resume(&mut self, m: &mut Member) {
        let unpositioned: Vec<i32> = m
            .owned
            .iter()
            .filter(|(_, pos)| pos.is_none())
            .map(|(p, _)| *p)
            .collect();
        if unpositioned.is_empty() {
            return;
        }
        let (w, process) = (self.w.clone(), self.process);
        let Some(c) = self.coordinator().await else {
            return;
        };
        let asked: Vec<TopicPartition> = unpositioned.iter().map(|&p| tp(p)).collect();
        let committed = |offsets| Call::Committed {
            group: GROUP.into(),
            partitions: asked.clone(),
            offsets,
        };
        w.record(process, OpType::Invoke, committed(BTreeMap::new()));
        let answer = c.committed_offsets(GROUP, &unpositioned).await;
        match answer {
            Ok(Ok(offsets)) => {
                w.record(process, OpType::Ok, committed(offsets_map(&offsets)));
                for p in unpositioned {
                    m.owned
                        .insert(p, Some(offsets.get(&p).copied().unwrap_or(0)));
                }
            }
            other => {
                tracing::debug!(answer = ?other.as_ref().map_err(|e| &e.0), "offset fetch failed");
                if other.is_err() {
                    self.coordinator = None;
                }
                w.record(process, OpType::Fail, committed(BTreeMap::new()));
            }
        }
    }

    /// Reads each positioned partition from its leader, up to the high
    /// watermark.
    async fn poll(&mut self, m: &mut Member) {
        let positioned: Vec<(i32, i64)> = m
            .owned
            .iter()
            .filter_map(|(p, pos)| Some((*p, (*pos)?)))
            .collect();
        for (p, offset) in positioned {
            if !self.leaders.contains_key(&p) {
                let Some(leader) = find_leader(&self.w, p, &mut self.rotate).await else {
                    continue;
                };
                let Ok(c) = Client::connect(leader, "sim-consumer").await else {
                    continue;
                };
                self.leaders.insert(p, c);
            }
            let c = self.leaders.get_mut(&p).expect("connected above");
            let Ok((0, hw, records)) = c.fetch(TOPIC, p, offset).await else {
                self.leaders.remove(&p);
                continue;
            };
            let records: Vec<(Offset, Value)> = records
                .into_iter()
                .filter(|(o, _)| *o >= offset && *o < hw)
                .map(|(o, v)| (Offset(o), Value(v)))
                .collect();
            let Some((last, _)) = records.last() else {
                continue;
            };
            m.owned.insert(p, Some(last.0 + 1));
            let mut polled = BTreeMap::new();
            polled.insert(tp(p), records);
            self.w.record(
                self.process,
                OpType::Invoke,
                Call::Poll {
                    records: Default::default(),
                },
            );
            self.w
                .record(self.process, OpType::Ok, Call::Poll { records: polled });
        }
    }

    /// Commits `offsets`; acknowledged or not (an error may still have been
    /// written: indeterminate, as for a send).
    async fn commit(&mut self, m: &Member, offsets: &BTreeMap<i32, i64>) {
        if offsets.is_empty() || m.epoch <= 0 {
            return;
        }
        let (w, process) = (self.w.clone(), self.process);
        let Some(c) = self.coordinator().await else {
            return;
        };
        let call = || Call::Commit {
            group: GROUP.into(),
            offsets: offsets_map(offsets),
        };
        w.record(process, OpType::Invoke, call());
        let answer = c.commit_offsets(GROUP, &m.id, m.epoch, offsets).await;
        let kind = match answer {
            Ok(0) => {
                tracing::debug!(member = %m.id, ?offsets, "commit acknowledged");
                w.commits_acked.fetch_add(1, Ordering::Relaxed);
                OpType::Ok
            }
            Ok(code) => {
                tracing::debug!(member = %m.id, code, "commit refused");
                OpType::Info
            }
            Err(e) => {
                tracing::debug!(member = %m.id, error = %e.0, "commit failed");
                self.coordinator = None;
                OpType::Info
            }
        };
        w.record(process, kind, call());
    }
}

/// Consumer `index` of the group, until the reader has read everything.
pub async fn group_consumer(w: Arc<Workload>, index: u64) {
    let mut c = Consumer {
        w: w.clone(),
        process: FIRST_PROCESS + index,
        coordinator: None,
        leaders: BTreeMap::new(),
        rotate: index as i32,
    };
    let finished = |w: &Workload| w.read_done.load(Ordering::Relaxed);
    let mut life = 0;
    while !finished(&w) {
        life += 1;
        let mut m = Member {
            id: format!("sim-consumer-{index}-{life}"),
            epoch: 0,
            owned: BTreeMap::new(),
            topic_id: None,
        };
        c.w.record(
            c.process,
            OpType::Ok,
            Call::Subscribe {
                topics: vec![TOPIC.into()],
            },
        );
        let mut rounds = 0;
        while rounds < LIFETIME && !finished(&w) {
            rounds += 1;
            if !c.heartbeat(&mut m, false).await {
                break;
            }
            c.resume(&mut m).await;
            c.poll(&mut m).await;
            let positions: BTreeMap<i32, i64> = m
                .owned
                .iter()
                .filter_map(|(p, pos)| Some((*p, (*pos)?)))
                .collect();
            c.commit(&m, &positions).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if life % 2 == 0 || finished(&w) {
            c.heartbeat(&mut m, true).await;
        }
        c.w.record(c.process, OpType::Info, Call::Crash);
        c.coordinator = None;
        c.leaders.clear();
    }
    w.consumers_done.fetch_add(1, Ordering::Relaxed);
}
