//! AddOffsetsToTxn: the group's partition of `__consumer_offsets` joins
//! the transaction, so the coordinator writes a marker there at its end
//! and the group's transactional offset commits become visible (or are
//! dropped) with it.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, RequestHeader};
use sluice_record::{ProducerEpoch, ProducerId};

use crate::context::BrokerContext;
use crate::group::{GroupError, OFFSETS_TOPIC};
use crate::txn::metadata::TxnPartitions;
use crate::txn::TxnError;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let answer = |code: i16| AddOffsetsToTxnResponse::default().with_error_code(code);
    if req.group_id.is_empty() {
        return answer(GroupError::InvalidGroupId.code());
    }
    // The offsets topic exists before a group can be written to; creating
    // it here answers COORDINATOR_NOT_AVAILABLE once, as FindCoordinator.
    match ctx.groups.ensure_offsets_topic(ctx).await {
        Ok(false) => {}
        Ok(true) => return answer(TxnError::CoordinatorNotAvailable.code()),
        Err(e) => return answer(e.code()),
    }
    let partition = ctx.groups.partition_for(req.group_id.as_str());
    let added = TxnPartitions::from([(OFFSETS_TOPIC.to_string(), [partition].into())]);
    let outcome = ctx
        .txns
        .add_partitions(
            req.transactional_id.as_str(),
            ProducerId(req.producer_id.0),
            ProducerEpoch(req.producer_epoch),
            &added,
            crate::txn::TransactionVersion(0),
        )
        .await;
    answer(outcome.err().map_or(0, |e| {
        crate::txn::fenced_code(e, header.request_api_version, 2)
    }))
}
