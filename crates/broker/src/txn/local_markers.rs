//! Appending an ended transaction's markers to partitions this broker
//! leads: one control batch per partition (Kafka's `EndTransactionMarker`:
//! key = version 0 + type, 0 abort and 1 commit; value = version 0 +
//! coordinator epoch), in the partition's leader epoch, answered once the
//! high watermark covers it (`acks=all`, as Kafka appends markers).

use std::sync::Arc;
use std::time::Duration;

use sluice_record::{BatchBuilder, CompressionType, Timestamp};
use sluice_storage::TopicPartition;

use super::marker_writer::LocalMarkers;
use super::markers::{MarkerFuture, MarkerOutcome, TxnMarker};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::partition::ReplicaManager;

/// The control record of `marker`: `(key, value)`.
pub fn control_record(marker: &TxnMarker) -> ([u8; 4], [u8; 6]) {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&i16::from(marker.commit).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&marker.coordinator_epoch.to_be_bytes());
    (key, value)
}

/// Markers appended through this broker's partitions; a marker in
/// `__consumer_offsets` also ends the transaction's offset commits in the
/// group coordinator.
pub struct ReplicaMarkers {
    replicas: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
    timeout: Duration,
}

impl ReplicaMarkers {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        timeout: Duration,
    ) -> Self {
        ReplicaMarkers {
            replicas,
            groups,
            timeout,
        }
    }

    async fn one(&self, marker: &TxnMarker, tp: &TopicPartition) -> MarkerOutcome {
        let Some(part) = self.replicas.get_partition(tp) else {
            return MarkerOutcome::Retry;
        };
        let (key, value) = control_record(marker);
        let now = Timestamp(self.replicas.clock().now_ms());
        let mut builder = BatchBuilder::new(CompressionType::None)
            .producer(marker.producer_id, marker.producer_epoch, -1)
            .transactional(true)
            .control(true);
        if builder.append(now, Some(&key), Some(&value), &[]).is_err() {
            return MarkerOutcome::Retry;
        }
        let Ok(mut batch) = builder.build() else {
            return MarkerOutcome::Retry;
        };
        let info = match part.append_as_leader_checked(&mut batch) {
            Ok(Some(info)) => info,
            Ok(None) => return MarkerOutcome::Retry,
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "cannot append a transaction marker");
                return MarkerOutcome::Retry;
            }
        };
        part.note_append(info.first_offset, info.bytes);
        part.publish_append(info.last_offset.plus(1));
        let deadline = tokio::time::Instant::now() + self.timeout;
        if part
            .await_replicated(info.last_offset.plus(1), deadline)
            .await
            .is_err()
        {
            return MarkerOutcome::Retry;
        }
        if tp.topic == OFFSETS_TOPIC {
            // A partition (re)loading cannot take the completion; the
            // marker is written again once it can (the loader applies the
            // markers it reads itself).
            if let Err(e) =
                self.groups
                    .complete_transaction(tp.partition, marker.producer_id, marker.commit)
            {
                tracing::debug!(partition = %tp, error = %e, "offsets marker to be written again");
                return MarkerOutcome::Retry;
            }
        }
        MarkerOutcome::Written
    }
}

impl LocalMarkers for ReplicaMarkers {
    fn write<'a>(
        &'a self,
        marker: &'a TxnMarker,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(partitions.len());
            for tp in partitions {
                let outcome = self.one(marker, &tp).await;
                out.push((tp, outcome));
            }
            out
        })
    }
}
