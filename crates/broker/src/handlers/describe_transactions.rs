//! DescribeTransactions v0 (`kafka-transactions describe`): each id's
//! state, timeout, start time, producer and partitions, from its
//! coordinator (NOT_COORDINATOR elsewhere, TRANSACTIONAL_ID_NOT_FOUND for
//! an id without state).

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId as WireProducerId,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::txn::admin;

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| match admin::describe(ctx.txns.state(), id.as_str()) {
            Ok(m) => TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(WireProducerId(m.producer_id.0))
                .with_producer_epoch(m.producer_epoch.0)
                .with_topics(
                    m.partitions
                        .iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(StrBytes::from_string(t.clone()).into())
                                .with_partitions(ps.iter().copied().collect())
                        })
                        .collect(),
                ),
            Err(e) => TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(e.code())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(WireProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
