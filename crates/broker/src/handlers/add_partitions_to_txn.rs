//! AddPartitionsToTxn: v0–v3 from a transactional producer adding the
//! partitions it is about to write to its transaction; v4 from a
//! partition leader, batched over transactions, `verify_only` asking
//! whether partitions are in their transactions before a first
//! transactional append (KIP-890 part 1).
//!
//! As Kafka's `KafkaApis`: partitions of unknown topics (or beyond a
//! topic's partition count) answer UNKNOWN_TOPIC_OR_PARTITION and every
//! other partition of the request OPERATION_NOT_ATTEMPTED, without asking
//! the coordinator; otherwise the coordinator's answer goes to every
//! partition. A v4 transaction without `verify_only` adds its partitions
//! like v3.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, RequestHeader,
};
use sluice_record::{ProducerEpoch, ProducerId};

use crate::context::BrokerContext;
use crate::txn::metadata::TxnPartitions;
use crate::txn::{TransactionVersion, TxnError};

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if header.request_api_version >= 4 {
        // v5 adds for a transaction version 2 producer (KIP-890 part 2).
        let version = TransactionVersion(if header.request_api_version >= 5 {
            2
        } else {
            0
        });
        return batched(ctx, req, version).await;
    }
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
                TransactionVersion(0),
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

/// Version 4: one result per transaction.
async fn batched(
    ctx: &BrokerContext,
    req: AddPartitionsToTxnRequest,
    version: TransactionVersion,
) -> AddPartitionsToTxnResponse {
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let partitions: Vec<(String, i32)> = t
            .topics
            .iter()
            .flat_map(|tt| tt.partitions.iter().map(|&p| (tt.name.to_string(), p)))
            .collect();
        let (pid, epoch) = (ProducerId(t.producer_id.0), ProducerEpoch(t.producer_epoch));
        let codes: Vec<i16> = if t.verify_only {
            match ctx
                .txns
                .verify(t.transactional_id.as_str(), pid, epoch, &partitions)
            {
                Ok(inside) => inside
                    .into_iter()
                    .map(|ok| {
                        if ok {
                            0
                        } else {
                            TxnError::InvalidTxnState.code()
                        }
                    })
                    .collect(),
                Err(e) => vec![e.code(); partitions.len()],
            }
        } else {
            let mut added = TxnPartitions::new();
            for (topic, p) in &partitions {
                added.entry(topic.clone()).or_default().insert(*p);
            }
            let code = crate::txn::error_code(
                ctx.txns
                    .add_partitions(t.transactional_id.as_str(), pid, epoch, &added, version)
                    .await
                    .err(),
            );
            vec![code; partitions.len()]
        };
        let mut by_topic: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
        for ((topic, p), code) in partitions.into_iter().zip(codes) {
            let result = AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(p)
                .with_partition_error_code(code);
            match by_topic.iter_mut().find(|r| r.name.as_str() == topic) {
                Some(r) => r.results_by_partition.push(result),
                None => by_topic.push(
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(kafka_protocol::protocol::StrBytes::from_string(topic).into())
                        .with_results_by_partition(vec![result]),
                ),
            }
        }
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id)
                .with_topic_results(by_topic),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}
