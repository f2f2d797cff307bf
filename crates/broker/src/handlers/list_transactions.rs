//! ListTransactions v0–v2 (`kafka-transactions list`, `find-hanging`):
//! the transactional ids this broker coordinates, filtered by state,
//! producer id, duration (v1) and an id pattern (v2). Unknown state names
//! are echoed back in `unknown_state_filters`, as Kafka does.

use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId as WireProducerId, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use sluice_record::ProducerId;

use crate::context::BrokerContext;
use crate::txn::admin::{self, ListFilter};
use crate::txn::TransactionState;

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut filter = ListFilter {
        min_duration_ms: req.duration_filter,
        pattern: req.transactional_id_pattern.as_ref().map(|p| p.to_string()),
        ..ListFilter::default()
    };
    let mut unknown = Vec::new();
    for s in &req.state_filters {
        match TransactionState::from_name(s.as_str()) {
            Some(state) => {
                filter.states.insert(state);
            }
            None => unknown.push(s.clone()),
        }
    }
    filter.producer_ids = req
        .producer_id_filters
        .iter()
        .map(|p| ProducerId(p.0))
        .collect();
    // Only unknown names: nothing can match them.
    let listed = if filter.states.is_empty() && !unknown.is_empty() {
        Ok(Vec::new())
    } else {
        admin::list(ctx.txns.state(), &filter)
    };
    let resp = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    match listed {
        Ok(listed) => resp.with_transaction_states(
            listed
                .into_iter()
                .map(|l| {
                    Listed::default()
                        .with_transactional_id(StrBytes::from_string(l.transactional_id).into())
                        .with_producer_id(WireProducerId(l.producer_id.0))
                        .with_transaction_state(StrBytes::from_static_str(l.state.name()))
                })
                .collect(),
        ),
        Err(e) => resp.with_error_code(e.code()),
    }
}
