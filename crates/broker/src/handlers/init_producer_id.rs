//! InitProducerId (v0–v5) for idempotent, non-transactional producers.
//!
//! * No transactional id: a producer id that was never handed out before
//!   (from this broker's block of ids, which the controller hands out and
//!   commits in the metadata log: AllocateProducerIds), epoch 0 — as
//!   Kafka's `TransactionCoordinator` answers.
//! * KIP-360 (v3+): a producer that re-initialises with the id and epoch it
//!   already holds keeps its id and gets the next epoch, so batches of its
//!   old incarnation are fenced (INVALID_PRODUCER_EPOCH) and its sequences
//!   restart at 0. Ids this broker never allocated, and epochs that would
//!   reach `i16::MAX`, get a fresh id with epoch 0 instead (Kafka also moves
//!   to a new id when the epoch is exhausted). An instance presenting an
//!   epoch older than the one last handed out for its id (remembered in
//!   memory for this run) is a zombie and gets PRODUCER_FENCED.
//! * A transactional id: the transaction coordinator
//!   ([`crate::txn::TransactionCoordinator::init_producer_id`]) answers,
//!   if this broker is the id's coordinator. Before v4, PRODUCER_FENCED is
//!   answered as INVALID_PRODUCER_EPOCH, as Kafka does for old clients.
//! * Allocation failure (the controller cannot commit a new block):
//!   COORDINATOR_NOT_AVAILABLE, which clients retry.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId as WireProducerId, RequestHeader,
};
use sluice_record::{ProducerEpoch, ProducerId};

use crate::context::BrokerContext;

fn error(e: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(e.code())
        .with_producer_id(WireProducerId(-1))
        .with_producer_epoch(-1)
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let version = header.request_api_version;
    if let Some(tid) = &req.transactional_id {
        let expected = (version >= 3 && req.producer_id.0 >= 0).then_some((
            ProducerId(req.producer_id.0),
            ProducerEpoch(req.producer_epoch),
        ));
        return match ctx
            .txns
            .init_producer_id(tid.as_str(), req.transaction_timeout_ms, expected)
            .await
        {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(WireProducerId(pid.0))
                .with_producer_epoch(epoch.0),
            Err(e) => InitProducerIdResponse::default()
                .with_error_code(crate::txn::fenced_code(e, version, 4))
                .with_producer_id(WireProducerId(-1))
                .with_producer_epoch(-1),
        };
    }
    // KIP-360 epoch bump for a producer that knows its id and epoch.
    let ids = ctx.controller.producer_ids();
    let (pid, epoch) = (ProducerId(req.producer_id.0), req.producer_epoch);
    if header.request_api_version >= 3
        && (0..i16::MAX - 1).contains(&epoch)
        && ids.was_allocated(pid)
    {
        return match ids.bump_epoch(pid, epoch) {
            Ok(next) => {
                tracing::debug!(producer_id = pid.0, epoch = next, "producer epoch bumped");
                InitProducerIdResponse::default()
                    .with_producer_id(WireProducerId(pid.0))
                    .with_producer_epoch(next)
            }
            Err(fenced) => {
                tracing::info!(error = %fenced, "re-initialising producer fenced");
                error(ResponseError::ProducerFenced)
            }
        };
    }
    match ids.generate().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(WireProducerId(id.0))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            error(ResponseError::CoordinatorNotAvailable)
        }
    }
}
