//! AddPartitionsToTxn v0–v3 (a transactional producer adds the partitions
//! it is about to write to its transaction).
//!
//! As Kafka's `KafkaApis`: partitions of unknown topics (or beyond a
//! topic's partition count) answer UNKNOWN_TOPIC_OR_PARTITION and every
//! other partition of the request OPERATION_NOT_ATTEMPTED, without asking
//! the coordinator; otherwise the coordinator's answer goes to every
//! partition. Versions 4 and up (batched, sent by brokers to verify a
//! produce, KIP-890) are not advertised.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, RequestHeader,
};
use sluice_record::{ProducerEpoch, ProducerId};

use crate::context::BrokerContext;
use crate::txn::metadata::TxnPartitions;
use crate::txn::TxnError;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let image = ctx.image.image();
    let exists = |topic: &str, p: i32| image.topic(topic).is_some_and(|t| t.partition(p).is_some());
    let any_unknown = req
        .v3_and_below_topics
        .iter()
        .any(|t| t.partitions.iter().any(|&p| !exists(t.name.as_str(), p)));
    let outcome: Result<(), TxnError> = if any_unknown {
        Err(TxnError::OperationNotAttempted)
    } else {
        let mut added = TxnPartitions::new();
        for t in &req.v3_and_below_topics {
            added
                .entry(t.name.to_string())
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        drop(image);
        ctx.txns
            .add_partitions(
                req.v3_and_below_transactional_id.as_str(),
                ProducerId(req.v3_and_below_producer_id.0),
                ProducerEpoch(req.v3_and_below_producer_epoch),
                &added,
            )
            .await
    };
    let image = ctx.image.image();
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let known = image
                        .topic(t.name.as_str())
                        .is_some_and(|tt| tt.partition(p).is_some());
                    let code = match outcome {
                        Err(TxnError::OperationNotAttempted) if !known => {
                            TxnError::UnknownTopicOrPartition.code()
                        }
                        Err(e) => crate::txn::fenced_code(e, header.request_api_version, 2),
                        Ok(()) => 0,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(by_partition)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
