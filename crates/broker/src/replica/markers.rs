//! WriteTxnMarkers on a partition leader (KIP-98): what the transaction
//! coordinator asks of the leaders of a transaction's partitions when the
//! transaction ends. [`write_txn_markers`] is the domain function the
//! coordinator calls for the partitions this broker leads (and the
//! `WriteTxnMarkers` handler for requests from other brokers' coordinators).
//!
//! For each partition of each marker: UNKNOWN_TOPIC_OR_PARTITION if the
//! partition is not online here, NOT_LEADER_OR_FOLLOWER if this broker does
//! not lead it, NOT_ENOUGH_REPLICAS when its ISR is under
//! `min.insync.replicas`; otherwise the COMMIT or ABORT marker is appended
//! as leader (the coordinator's append: `Log::append_txn_marker`, whose
//! epoch and coordinator-epoch refusals come back as
//! [`MarkerError::Storage`]) and the answer waits, as an `acks=all`
//! produce does, in the partition's purgatory until the high watermark
//! covers the marker or `timeout` passes.
//!
//! A marker committed on a `__consumer_offsets` partition then calls
//! `on_offsets_marker(partition, producer_id, commit)`, so the group
//! coordinator completes (or drops) the transaction's pending offsets; if
//! it cannot (the partition is loading) the partition answers
//! [`MarkerError::OffsetsNotCompleted`] and the marker is sent again. As
//! in Kafka (`KafkaApis.handleWriteTxnMarkersRequest`), the hook runs only
//! for partitions whose marker was appended and replicated without error:
//! a marker that may still be lost never makes offsets visible.

use std::sync::Arc;
use std::time::Duration;

use sluice_record::{ControlRecordType, ProducerEpoch, ProducerId};
use sluice_storage::{AppendInfo, StorageError, TopicPartition, TxnMarker};

use super::leader::ReplicationWait;
use crate::group::OFFSETS_TOPIC;
use crate::partition::{Partition, ReplicaManager};

/// The markers of one transaction's end for some of its partitions
/// (one entry of a WriteTxnMarkers request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerEntry {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub coordinator_epoch: i32,
    /// [`ControlRecordType::Commit`] or [`ControlRecordType::Abort`].
    pub result: ControlRecordType,
    pub partitions: Vec<TopicPartition>,
    /// The transaction's version (KIP-890): 0 or 1 for the classic
    /// protocol, 2 when the coordinator bumps the epoch at every end.
    pub transaction_version: i16,
}

impl MarkerEntry {
    /// The marker each of the entry's partitions gets.
    pub fn marker(&self) -> TxnMarker {
        TxnMarker {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            coordinator_epoch: self.coordinator_epoch,
            control_type: self.result,
            transaction_version: self.transaction_version,
        }
    }
}

/// Why a partition's marker was not written (or not replicated).
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("the partition is not online on this broker")]
    UnknownTopicOrPartition,
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    #[error("the ISR is smaller than min.insync.replicas")]
    NotEnoughReplicas,
    #[error("marker appended, then: {0}")]
    Replication(ReplicationWait),
    /// The marker is in `__consumer_offsets`, but the group coordinator
    /// could not complete the transaction's offsets (the partition is
    /// loading): the marker must be written again.
    #[error("the group coordinator is loading the offsets partition")]
    OffsetsNotCompleted,
    /// The log refused the marker (an old producer epoch, a fenced
    /// coordinator, an unknown control type) or failed to write it.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// The outcome of one [`MarkerEntry`]: each partition's result, in order.
#[derive(Debug)]
pub struct MarkerOutcome {
    pub producer_id: ProducerId,
    pub partitions: Vec<(TopicPartition, Result<(), MarkerError>)>,
}

impl Partition {
    /// Appends the end-of-transaction marker of `producer_id` as this
    /// partition's leader, under the role lock (as every leader append);
    /// `Ok(None)` when this broker no longer leads it. See
    /// `Log::append_txn_marker` for the rules.
    pub fn append_txn_marker(&self, marker: TxnMarker) -> Result<Option<AppendInfo>, StorageError> {
        let _role = self.role.read();
        if !self.is_leader() {
            return Ok(None);
        }
        self.log
            .append_txn_marker(marker, self.leader_epoch())
            .map(Some)
    }
}

impl Partition {
    /// [`Partition::append_txn_marker`] if it needs no waiting: `Ok(None)`,
    /// with nothing written, when the role lock or the log's lock is held,
    /// when the marker would roll the segment or start a leader epoch, or
    /// when this broker no longer leads (the blocking append then finds
    /// that out).
    pub fn try_append_txn_marker(
        &self,
        marker: TxnMarker,
    ) -> Result<Option<AppendInfo>, StorageError> {
        let Some(_role) = self.role.try_read() else {
            return Ok(None);
        };
        if !self.is_leader() {
            return Ok(None);
        }
        self.log.try_append_txn_marker(marker, self.leader_epoch())
    }
}

/// One partition's marker to write: its place in the outcome.
struct Job {
    entry: usize,
    slot: usize,
    partition: Arc<Partition>,
}

/// Writes the markers of `entries` on the partitions this broker leads and
/// waits (at most `timeout`) for the high watermark to cover each; calls
/// `on_offsets_marker` for each `__consumer_offsets` partition whose marker
/// is committed. Outcomes are in the order of `entries` and of their
/// partitions. See the module docs.
pub async fn write_txn_markers(
    replicas: &ReplicaManager,
    entries: Vec<MarkerEntry>,
    timeout: Duration,
    on_offsets_marker: &(dyn Fn(i32, ProducerId, bool) -> bool + Sync),
) -> Vec<MarkerOutcome> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut outcomes: Vec<MarkerOutcome> = Vec::with_capacity(entries.len());
    let mut jobs = Vec::new();
    for (e, entry) in entries.iter().enumerate() {
        let mut partitions = Vec::with_capacity(entry.partitions.len());
        for tp in &entry.partitions {
            let slot = partitions.len();
            let ready = match replicas.get_partition(tp) {
                None => Err(MarkerError::UnknownTopicOrPartition),
                Some(p) if !p.is_leader() => Err(MarkerError::NotLeaderOrFollower),
                Some(p) if p.check_enough_replicas().is_err() => {
                    Err(MarkerError::NotEnoughReplicas)
                }
                Some(p) => {
                    jobs.push(Job {
                        entry: e,
                        slot,
                        partition: p,
                    });
                    Ok(())
                }
            };
            partitions.push((tp.clone(), ready));
        }
        outcomes.push(MarkerOutcome {
            producer_id: entry.producer_id,
            partitions,
        });
    }
    if jobs.is_empty() {
        return outcomes;
    }

    let markers: Vec<TxnMarker> = entries.iter().map(MarkerEntry::marker).collect();
    // A marker whose append needs no waiting (see
    // `Partition::try_append_txn_marker`) is appended here, on the network
    // thread, as a small produce is: a hand-off to the blocking pool and
    // back would cost more than the append, and sits in every commit's
    // latency. The others, and the fsyncs `flush.messages` asks for, go to
    // the blocking pool in one trip.
    let mut appended = Vec::with_capacity(jobs.len());
    let mut blocking = Vec::new();
    for job in jobs {
        match job.partition.try_append_txn_marker(markers[job.entry]) {
            Ok(Some(info)) => {
                job.partition.note_append(info.first_offset, info.bytes);
                if info.needs_flush {
                    blocking.push((job, Some(info)));
                } else {
                    job.partition.publish_append(info.last_offset.plus(1));
                    appended.push((job, Ok(info)));
                }
            }
            Ok(None) => blocking.push((job, None)),
            Err(e) => appended.push((job, Err(MarkerError::Storage(e)))),
        }
    }
    let inline = appended.len();
    if !blocking.is_empty() {
        match append_blocking(blocking, markers).await {
            Ok(more) => appended.extend(more),
            Err(join_error) => {
                tracing::error!(error = %join_error, "transaction marker append task failed");
                for o in &mut outcomes {
                    for (_, r) in o.partitions.iter_mut().filter(|(_, r)| r.is_ok()) {
                        *r = Err(MarkerError::Storage(StorageError::InvalidRecord(
                            "the append task failed".into(),
                        )));
                    }
                }
                return outcomes;
            }
        }
    }
    tracing::debug!(
        target: crate::txn::STAGES,
        partitions = appended.len(),
        inline,
        "markers appended"
    );

    // Then wait for each, as acks=all produce does (one deadline for all).
    for (job, r) in appended {
        let done = match r {
            Ok(info) => job
                .partition
                .wait_replicated(info.last_offset.plus(1), deadline)
                .await
                .map_err(MarkerError::Replication),
            Err(e) => Err(e),
        };
        let done = done.and_then(|()| {
            let tp = job.partition.topic_partition();
            let entry = &entries[job.entry];
            let completed = tp.topic != OFFSETS_TOPIC
                || on_offsets_marker(
                    tp.partition,
                    entry.producer_id,
                    entry.result == ControlRecordType::Commit,
                );
            if completed {
                Ok(())
            } else {
                Err(MarkerError::OffsetsNotCompleted)
            }
        });
        outcomes[job.entry].partitions[job.slot].1 = done;
    }
    outcomes
}

/// On the blocking pool: appends the markers not appended yet (`None`) and
/// fsyncs those `flush.messages` asks for, each then published.
async fn append_blocking(
    jobs: Vec<(Job, Option<AppendInfo>)>,
    markers: Vec<TxnMarker>,
) -> Result<Vec<(Job, Result<AppendInfo, MarkerError>)>, sluice_runtime::RuntimeError> {
    let handed = std::time::Instant::now();
    let done = sluice_runtime::spawn_blocking(move || {
        let started = handed.elapsed();
        let done = jobs
            .into_iter()
            .map(|(job, info)| {
                let r = match info {
                    Some(info) => flush_and_publish(&job.partition, info),
                    None => append_one(&job.partition, markers[job.entry]),
                };
                (job, r)
            })
            .collect::<Vec<_>>();
        (done, started, handed.elapsed())
    })
    .await?;
    let (done, started, ended) = done;
    tracing::debug!(
        target: crate::txn::STAGES,
        partitions = done.len(),
        to_pool_us = started.as_micros() as u64,
        appended_us = ended.as_micros() as u64,
        back_us = handed.elapsed().as_micros() as u64,
        "markers appended on the blocking pool"
    );
    Ok(done)
}

/// Appends one marker (on a blocking thread), fsyncs it if the topic's
/// `flush.messages` asks for it, and moves the high watermark as far as
/// the ISR allows.
fn append_one(partition: &Partition, marker: TxnMarker) -> Result<AppendInfo, MarkerError> {
    let info = partition
        .append_txn_marker(marker)?
        .ok_or(MarkerError::NotLeaderOrFollower)?;
    partition.note_append(info.first_offset, info.bytes);
    flush_and_publish(partition, info)
}

/// Fsyncs an appended marker if the topic's `flush.messages` asks for it,
/// then moves the high watermark as far as the ISR allows (never before
/// the fsync: consumers see no unflushed marker).
fn flush_and_publish(partition: &Partition, info: AppendInfo) -> Result<AppendInfo, MarkerError> {
    if info.needs_flush {
        partition.log().flush_until(info.last_offset)?;
    }
    partition.publish_append(info.last_offset.plus(1));
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::ReplicaRole;
    use sluice_metadata::BrokerId;
    use sluice_record::{BatchBuilder, CompressionType, LeaderEpoch, Offset, Timestamp};
    use sluice_storage::{LogConfig, LogManager, LogManagerConfig, SimFs, SystemClock};
    use std::sync::Mutex;

    fn manager() -> LogManager {
        LogManager::open(
            LogManagerConfig {
                log_dirs: vec!["/d".into()],
                ..Default::default()
            },
            Arc::new(SimFs::new()),
            Arc::new(SystemClock),
        )
        .unwrap()
    }

    fn lead(replicas: &ReplicaManager, logs: &LogManager, tp: &TopicPartition) -> Arc<Partition> {
        let log = logs.get_or_create_log(tp, LogConfig::default()).unwrap();
        let p = replicas.add_partition(log);
        p.become_replica(&ReplicaRole::alone(BrokerId(1), LeaderEpoch(1)));
        p
    }

    fn txn_batch(pid: i64) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None)
            .producer(ProducerId(pid), ProducerEpoch(0), 0)
            .transactional(true);
        b.append(Timestamp(SystemClock.now_ms()), None, Some(b"v"), &[])
            .unwrap();
        b.build().unwrap()
    }

    use sluice_storage::Clock;

    fn entry(pid: i64, commit: bool, partitions: Vec<TopicPartition>) -> MarkerEntry {
        MarkerEntry {
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(0),
            coordinator_epoch: 0,
            result: ControlRecordType::from_commit(commit),
            partitions,
            transaction_version: 1,
        }
    }

    /// Markers are written on led partitions, which then become stable
    /// once replicated (a lone replica: at once); other partitions get
    /// Kafka's errors; the offsets hook runs for committed markers on
    /// `__consumer_offsets` only.
    #[tokio::test]
    async fn markers_are_written_waited_for_and_the_offsets_hook_called() {
        let logs = manager();
        let replicas = ReplicaManager::new();
        let data = TopicPartition::new("t", 0);
        let offsets = TopicPartition::new(OFFSETS_TOPIC, 3);
        let p = lead(&replicas, &logs, &data);
        let o = lead(&replicas, &logs, &offsets);
        for part in [&p, &o] {
            let info = part
                .append_produce(
                    &txn_batch(7),
                    sluice_storage::producer_state::Verification::NotRequired,
                )
                .unwrap()
                .unwrap();
            part.publish_append(info.last_offset.plus(1));
        }
        assert_eq!(p.last_stable_offset(), Offset(0));
        let follower = TopicPartition::new("t", 1);
        let f = lead(&replicas, &logs, &follower);
        let mut role = ReplicaRole::alone(BrokerId(1), LeaderEpoch(2));
        role.leader = BrokerId(2);
        f.become_replica(&role);

        let calls = Mutex::new(Vec::new());
        let hook = |partition: i32, pid: ProducerId, commit: bool| {
            calls.lock().unwrap().push((partition, pid, commit));
            true
        };
        let out = write_txn_markers(
            &replicas,
            vec![
                entry(
                    7,
                    true,
                    vec![data.clone(), offsets.clone(), follower.clone()],
                ),
                entry(8, false, vec![TopicPartition::new("nope", 0)]),
            ],
            Duration::from_secs(5),
            &hook,
        )
        .await;
        let codes: Vec<Vec<&str>> = out
            .iter()
            .map(|o| {
                o.partitions
                    .iter()
                    .map(|(_, r)| match r {
                        Ok(()) => "ok",
                        Err(MarkerError::NotLeaderOrFollower) => "not leader",
                        Err(MarkerError::UnknownTopicOrPartition) => "unknown",
                        Err(_) => "other",
                    })
                    .collect()
            })
            .collect();
        assert_eq!(codes, vec![vec!["ok", "ok", "not leader"], vec!["unknown"]]);
        assert_eq!(*calls.lock().unwrap(), vec![(3, ProducerId(7), true)]);
        // Committed and replicated: stable.
        assert_eq!(p.last_stable_offset(), p.high_watermark());
        assert_eq!(p.high_watermark(), Offset(2));

        // A refusal of the log comes back as such, and calls no hook.
        let out = write_txn_markers(
            &replicas,
            vec![MarkerEntry {
                coordinator_epoch: -5,
                ..entry(7, false, vec![offsets.clone()])
            }],
            Duration::from_secs(5),
            &hook,
        )
        .await;
        assert!(matches!(
            out[0].partitions[0].1,
            Err(MarkerError::Storage(
                StorageError::TransactionCoordinatorFenced { .. }
            ))
        ));
        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    /// With a follower that does not fetch, the marker is appended but the
    /// answer waits, then times out; the partition's last stable offset
    /// stays at the transaction's start until the high watermark passes
    /// the marker.
    #[tokio::test]
    async fn the_answer_waits_for_the_high_watermark() {
        use crate::replica::isr::Assignment;
        use sluice_metadata::PartitionEpoch;
        let logs = manager();
        let replicas = ReplicaManager::new();
        let tp = TopicPartition::new("t", 0);
        let p = lead(&replicas, &logs, &tp);
        let info = p
            .append_produce(
                &txn_batch(7),
                sluice_storage::producer_state::Verification::NotRequired,
            )
            .unwrap()
            .unwrap();
        p.publish_append(info.last_offset.plus(1));
        let mut role = ReplicaRole::alone(BrokerId(1), LeaderEpoch(2));
        role.assignment = Assignment {
            replicas: vec![BrokerId(1), BrokerId(2)],
            isr: vec![BrokerId(1), BrokerId(2)],
            leader_epoch: LeaderEpoch(2),
            partition_epoch: PartitionEpoch(1),
            unavailable: Vec::new(),
        };
        p.become_replica(&role);
        let hw = p.high_watermark();
        let out = write_txn_markers(
            &replicas,
            vec![entry(7, true, vec![tp.clone()])],
            Duration::from_millis(50),
            &|_, _, _| true,
        )
        .await;
        assert!(matches!(
            out[0].partitions[0].1,
            Err(MarkerError::Replication(ReplicationWait::TimedOut))
        ));
        assert_eq!(p.high_watermark(), hw);
        assert_eq!(
            p.log().log_end_offset(),
            Offset(2),
            "the marker is in the log"
        );
        assert_eq!(p.last_stable_offset(), Offset(0));
        // The follower catches up: the high watermark passes the marker.
        p.follower_fetch(BrokerId(2), Offset(2), Offset(0), -1, true);
        assert_eq!(p.high_watermark(), Offset(2));
        assert_eq!(p.last_stable_offset(), Offset(2));
    }
}
