//! The coordinator's markers for partitions this broker leads, through the
//! replica layer's WriteTxnMarkers path ([`crate::replica::markers`]): the
//! same checks, append, `acks=all` wait and `__consumer_offsets`
//! completion as a WriteTxnMarkers request from another broker.

use std::sync::Arc;
use std::time::Duration;

use sluice_record::ControlRecordType;
use sluice_storage::{StorageError, TopicPartition};

use super::marker_writer::LocalMarkers;
use super::markers::{MarkerFuture, MarkerOutcome, TxnMarker};
use crate::group::GroupCoordinator;
use crate::partition::ReplicaManager;
use crate::replica::markers::{write_txn_markers, MarkerEntry, MarkerError};

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
}

/// What the marker channel does with a partition's result.
fn outcome(r: &Result<(), MarkerError>) -> MarkerOutcome {
    match r {
        Ok(()) => MarkerOutcome::Written,
        Err(MarkerError::Storage(
            StorageError::InvalidProducerEpoch { .. }
            | StorageError::TransactionCoordinatorFenced { .. },
        )) => MarkerOutcome::Fenced,
        Err(_) => MarkerOutcome::Retry,
    }
}

impl LocalMarkers for ReplicaMarkers {
    fn write<'a>(
        &'a self,
        marker: &'a TxnMarker,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'a> {
        Box::pin(async move {
            let entry = MarkerEntry {
                producer_id: marker.producer_id,
                producer_epoch: marker.producer_epoch,
                coordinator_epoch: marker.coordinator_epoch,
                result: ControlRecordType::from_commit(marker.commit),
                partitions,
                transaction_version: marker.transaction_version,
            };
            let groups = &self.groups;
            let hook =
                move |p: i32, pid, commit| groups.complete_transaction(p, pid, commit).is_ok();
            write_txn_markers(&self.replicas, vec![entry], self.timeout, &hook)
                .await
                .into_iter()
                .flat_map(|o| o.partitions)
                .map(|(tp, r)| {
                    let o = outcome(&r);
                    if let Err(e) = &r {
                        tracing::debug!(partition = %tp, error = %e, "marker not written yet");
                    }
                    (tp, o)
                })
                .collect()
        })
    }
}
