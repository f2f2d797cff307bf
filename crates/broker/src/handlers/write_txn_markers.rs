//! WriteTxnMarkers (v1, as Kafka 4.1.2's broker listener serves it): a
//! transaction coordinator asks this broker, as leader of some of a
//! transaction's partitions, to write the transaction's COMMIT or ABORT
//! markers. Decoding and encoding only: the work is
//! [`crate::replica::markers::write_txn_markers`], and Kafka codes are
//! chosen here.
//!
//! v1 carries no transaction version, so markers from the wire are
//! checked with the classic rule (marker epoch >= the producer's, as a
//! Kafka 4.1 leader does); the coordinator on this broker calls the domain
//! function with its own version.
//!
//! The admin client's abort of a hanging transaction (`kafka-transactions
//! abort`, `Admin.abortTransaction`, `sluice transactions abort`) is the
//! same request, sent straight to the partition's leader with one ABORT
//! marker: the producer id and epoch DescribeProducers reported and its
//! coordinator epoch (0 when the producer never had a marker). It is
//! handled exactly as a coordinator's; as in Kafka, the errors it can get
//! are partition errors only (a `__consumer_offsets` partition still
//! loading answers NOT_LEADER_OR_FOLLOWER, which the admin client retries).
//!
//! The hook that completes pending transactional offset commits when a
//! marker lands on `__consumer_offsets` is [`offsets_marker_hook`]: the
//! one place that points at the group coordinator.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ProducerId as WireProducerId, RequestHeader, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use sluice_record::{ControlRecordType, ProducerEpoch, ProducerId};
use sluice_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::error::storage_error_code;
use crate::replica::markers::{write_txn_markers, MarkerEntry, MarkerError};

/// How long the markers wait for the high watermark: Kafka's default
/// `request.timeout.ms`, which its handler uses.
const MARKER_TIMEOUT: Duration = Duration::from_millis(30_000);

/// The transaction version of markers that come over the wire (v1 of the
/// API carries none).
const WIRE_TRANSACTION_VERSION: i16 = 0;

/// What a marker in `__consumer_offsets` partition `partition` does for
/// producer `producer_id`: the group coordinator completes (`commit`) or
/// drops the transaction's pending offsets; `false` when it cannot yet
/// (the partition is loading), so the marker is written again.
pub fn offsets_marker_hook(
    ctx: &BrokerContext,
) -> impl Fn(i32, ProducerId, bool) -> bool + Sync + use<> {
    let groups = ctx.groups.clone();
    move |partition, producer_id, commit| match groups.complete_transaction(
        partition,
        producer_id,
        commit,
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(partition, producer_id = producer_id.0, error = %e, "offsets marker to be written again");
            false
        }
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: WriteTxnMarkersRequest,
    on_offsets_marker: &(dyn Fn(i32, ProducerId, bool) -> bool + Sync),
) -> WriteTxnMarkersResponse {
    let entries: Vec<MarkerEntry> = req
        .markers
        .iter()
        .map(|m| MarkerEntry {
            producer_id: ProducerId(m.producer_id.0),
            producer_epoch: ProducerEpoch(m.producer_epoch),
            coordinator_epoch: m.coordinator_epoch,
            result: ControlRecordType::from_commit(m.transaction_result),
            partitions: m
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|p| TopicPartition::new(t.name.0.as_str(), *p))
                })
                .collect(),
            transaction_version: WIRE_TRANSACTION_VERSION,
        })
        .collect();
    let outcomes =
        write_txn_markers(&ctx.replicas, entries, MARKER_TIMEOUT, on_offsets_marker).await;

    // Answer in the request's shape: per marker, its topics in order, each
    // with its partitions.
    let markers = req
        .markers
        .iter()
        .zip(outcomes)
        .map(|(m, outcome)| {
            let mut results = outcome.partitions.into_iter();
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            let code = match results.next() {
                                Some((_, r)) => marker_error_code(r.err().as_ref()),
                                None => ResponseError::UnknownServerError.code(),
                            };
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(TopicName(t.name.0.clone()))
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(WireProducerId(m.producer_id.0))
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// Kafka's code for a partition's outcome.
fn marker_error_code(e: Option<&MarkerError>) -> i16 {
    match e {
        None => 0,
        Some(MarkerError::UnknownTopicOrPartition) => ResponseError::UnknownTopicOrPartition.code(),
        Some(MarkerError::NotLeaderOrFollower) => ResponseError::NotLeaderOrFollower.code(),
        Some(MarkerError::NotEnoughReplicas) => ResponseError::NotEnoughReplicas.code(),
        Some(MarkerError::Replication(w)) => w.code(),
        // As Kafka's handler translates the group coordinator's
        // COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR: senders (a
        // transaction coordinator, the admin client's abort) expect only
        // partition errors and retry this one after a leader lookup.
        Some(MarkerError::OffsetsNotCompleted) => ResponseError::NotLeaderOrFollower.code(),
        Some(MarkerError::Storage(e)) => storage_error_code(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::leader::ReplicationWait;
    use sluice_storage::StorageError;

    #[test]
    fn outcomes_map_to_kafkas_codes() {
        let pid = ProducerId(1);
        let cases = [
            (None, 0),
            (Some(MarkerError::UnknownTopicOrPartition), 3),
            (Some(MarkerError::NotLeaderOrFollower), 6),
            (Some(MarkerError::NotEnoughReplicas), 19),
            (Some(MarkerError::OffsetsNotCompleted), 6),
            (Some(MarkerError::Replication(ReplicationWait::TimedOut)), 7),
            (
                Some(MarkerError::Replication(
                    ReplicationWait::NotEnoughReplicasAfterAppend,
                )),
                20,
            ),
            (
                Some(MarkerError::Storage(StorageError::InvalidProducerEpoch {
                    producer_id: pid,
                    epoch: ProducerEpoch(1),
                    current: ProducerEpoch(2),
                })),
                47,
            ),
            (
                Some(MarkerError::Storage(
                    StorageError::TransactionCoordinatorFenced {
                        producer_id: pid,
                        coordinator_epoch: 1,
                        current: 2,
                    },
                )),
                52,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(marker_error_code(e.as_ref()), code, "{e:?}");
        }
    }
}
