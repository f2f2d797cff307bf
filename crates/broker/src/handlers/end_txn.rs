//! EndTxn: commit or abort (the coordinator's rules: `txn/end.rs`). v0–v4
//! are transaction version 1; v5 is version 2 (KIP-890 part 2): every end
//! bumps the producer epoch and the answer carries the producer id and
//! epoch the client goes on with.

use kafka_protocol::messages::{
    EndTxnRequest, EndTxnResponse, ProducerId as WireProducerId, RequestHeader,
};
use sluice_record::{ProducerEpoch, ProducerId};

use crate::context::BrokerContext;
use crate::txn::TransactionVersion;

/// The first EndTxn version of transaction version 2.
const V2_SINCE: i16 = 5;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let version = if header.request_api_version >= V2_SINCE {
        TransactionVersion(2)
    } else {
        TransactionVersion(0)
    };
    let outcome = ctx
        .txns
        .end_txn(
            req.transactional_id.as_str(),
            ProducerId(req.producer_id.0),
            ProducerEpoch(req.producer_epoch),
            req.committed,
            version,
        )
        .await;
    let (code, (pid, epoch)) = match outcome {
        Ok(next) => (0, next),
        Err(e) => (
            crate::txn::fenced_code(e, header.request_api_version, 2),
            (ProducerId(-1), ProducerEpoch(-1)),
        ),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(WireProducerId(pid.0))
        .with_producer_epoch(epoch.0)
}
