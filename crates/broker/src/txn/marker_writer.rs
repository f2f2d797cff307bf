//! The broker's [`MarkerWriter`]: markers for partitions this broker
//! leads are appended here; those another broker leads go to it as
//! WriteTxnMarkers over its inter-broker listener ([`Peers`]).

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId as WireProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::BrokerId;
use sluice_storage::TopicPartition;

use super::markers::{MarkerFuture, MarkerOutcome, MarkerWriter, TxnMarker};
use super::peer::Peers;

/// WriteTxnMarkers version sent to other brokers (flexible; Kafka 4.1
/// speaks 1 and 2).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// Writes markers locally or through the partition's leader.
pub struct BrokerMarkerWriter {
    peers: Arc<Peers>,
    local: Arc<dyn LocalMarkers>,
}

/// Appending markers to partitions this broker leads.
pub trait LocalMarkers: Send + Sync + 'static {
    fn write<'a>(
        &'a self,
        marker: &'a TxnMarker,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'a>;
}

impl BrokerMarkerWriter {
    pub fn new(peers: Arc<Peers>, local: Arc<dyn LocalMarkers>) -> Self {
        BrokerMarkerWriter { peers, local }
    }

    async fn remote(
        &self,
        leader: BrokerId,
        marker: &TxnMarker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, MarkerOutcome)> {
        let mut topics: HashMap<&str, Vec<i32>> = HashMap::new();
        for tp in &partitions {
            topics.entry(&tp.topic).or_default().push(tp.partition);
        }
        let req =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(WireProducerId(marker.producer_id.0))
                .with_producer_epoch(marker.producer_epoch.0)
                .with_transaction_result(marker.commit)
                .with_coordinator_epoch(marker.coordinator_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            WritableTxnMarkerTopic::default()
                                .with_name(StrBytes::from_string(t.to_string()).into())
                                .with_partition_indexes(ps)
                        })
                        .collect(),
                )]);
        let answer: WriteTxnMarkersResponse = match self
            .peers
            .call(
                leader,
                ApiKey::WriteTxnMarkers,
                WRITE_TXN_MARKERS_VERSION,
                &req,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "WriteTxnMarkers failed");
                return partitions
                    .into_iter()
                    .map(|tp| (tp, MarkerOutcome::Retry))
                    .collect();
            }
        };
        let mut codes: HashMap<TopicPartition, i16> = HashMap::new();
        for m in answer.markers {
            for t in m.topics {
                for p in t.partitions {
                    codes.insert(
                        TopicPartition::new(t.name.as_str(), p.partition_index),
                        p.error_code,
                    );
                }
            }
        }
        partitions
            .into_iter()
            .map(|tp| {
                let outcome = codes
                    .get(&tp)
                    .map_or(MarkerOutcome::Retry, |&c| outcome_of(c));
                (tp, outcome)
            })
            .collect()
    }
}

/// Kafka's handling of a WriteTxnMarkers partition error
/// (`TransactionMarkerRequestCompletionHandler`).
pub fn outcome_of(code: i16) -> MarkerOutcome {
    match code {
        0 => MarkerOutcome::Written,
        // INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED.
        47 | 52 => MarkerOutcome::Fenced,
        // Anything else (UNKNOWN_TOPIC_OR_PARTITION while metadata
        // propagates, NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS*,
        // REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR): again, after the leader
        // is looked up again; a deleted topic is skipped by the channel.
        _ => MarkerOutcome::Retry,
    }
}

impl MarkerWriter for BrokerMarkerWriter {
    fn write<'a>(
        &'a self,
        leader: BrokerId,
        marker: &'a TxnMarker,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'a> {
        Box::pin(async move {
            if leader == self.peers.node() {
                self.local.write(marker, partitions).await
            } else {
                self.remote(leader, marker, partitions).await
            }
        })
    }
}
