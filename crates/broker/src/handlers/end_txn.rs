//! EndTxn v0–v4: commit or abort. The answer comes once PrepareCommit or
//! PrepareAbort is in `__transaction_state` (at the ISR); the markers
//! follow in the background, and the transactional id answers
//! CONCURRENT_TRANSACTIONS until they are written. Version 5 (transaction
//! version 2, a new epoch in every answer) is not advertised.

use kafka_protocol::messages::{
    EndTxnRequest, EndTxnResponse, ProducerId as WireProducerId, RequestHeader,
};
use sluice_record::{ProducerEpoch, ProducerId};

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let outcome = ctx
        .txns
        .end_txn(
            req.transactional_id.as_str(),
            ProducerId(req.producer_id.0),
            ProducerEpoch(req.producer_epoch),
            req.committed,
        )
        .await;
    EndTxnResponse::default()
        .with_error_code(outcome.err().map_or(0, |e| {
            crate::txn::fenced_code(e, header.request_api_version, 2)
        }))
        .with_producer_id(WireProducerId(-1))
        .with_producer_epoch(-1)
}
