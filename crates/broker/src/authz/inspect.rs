//! The APIs that inspect or clean up groups and transactions: OffsetDelete
//! (DELETE on the group, READ on each topic), ConsumerGroupDescribe
//! (DESCRIBE on each group), DescribeTransactions (DESCRIBE on each
//! transactional id) and ListTransactions (only the transactional ids one
//! may describe are listed).

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::*;
use sluice_auth::acl::{AclOperation as Op, ResourceType as Rt, AUTHORIZED_OPERATIONS_OMITTED};

use super::ops::{message, split_denied, Fixups};
use super::{Authz, Gate};
use crate::handlers::Response;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const TXN_DENIED: i16 = 53;

/// These APIs; `rest` decides any other.
pub(super) fn gate(a: &Authz, body: RequestKind, rest: impl FnOnce(RequestKind) -> Gate) -> Gate {
    match body {
        RequestKind::OffsetDelete(r) => offset_delete(a, r),
        RequestKind::ConsumerGroupDescribe(r) => consumer_group_describe(a, r),
        RequestKind::DescribeTransactions(r) => describe_transactions(a, r),
        RequestKind::ListTransactions(r) => {
            let authz = a.clone();
            Gate::Pass(
                RequestKind::ListTransactions(r),
                Fixups::new(move |resp| match resp {
                    Response::Message(ResponseKind::ListTransactions(mut l)) => {
                        l.transaction_states.retain(|t| {
                            authz.allow_quietly(
                                Op::Describe,
                                Rt::TransactionalId,
                                t.transactional_id.0.as_str(),
                            )
                        });
                        message(ResponseKind::ListTransactions(l))
                    }
                    other => other,
                }),
            )
        }
        other => rest(other),
    }
}

fn offset_delete(a: &Authz, mut r: OffsetDeleteRequest) -> Gate {
    if !a.allow(Op::Delete, Rt::Group, r.group_id.0.as_str()) {
        return Gate::Answer(message(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
        )));
    }
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.allow(Op::Read, Rt::Topic, t.name.as_str());
        if !ok {
            denied.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    ),
            );
        }
        ok
    });
    Gate::Pass(
        RequestKind::OffsetDelete(r),
        Fixups::new(move |resp| match resp {
            Response::Message(ResponseKind::OffsetDelete(mut o)) => {
                o.topics.extend(denied);
                message(ResponseKind::OffsetDelete(o))
            }
            other => other,
        }),
    )
}

fn consumer_group_describe(a: &Authz, mut r: ConsumerGroupDescribeRequest) -> Gate {
    let with_ops = r.include_authorized_operations;
    let denied = split_denied(
        &mut r.group_ids,
        |g| a.allow(Op::Describe, Rt::Group, g.0.as_str()),
        |g| {
            DescribedGroup::default()
                .with_group_id(g.clone())
                .with_error_code(GROUP_DENIED)
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        },
    );
    let authz = a.clone();
    Gate::Pass(
        RequestKind::ConsumerGroupDescribe(r),
        Fixups::new(move |resp| match resp {
            Response::Message(ResponseKind::ConsumerGroupDescribe(mut d)) => {
                if with_ops {
                    for g in &mut d.groups {
                        g.authorized_operations =
                            authz.operations(Rt::Group, g.group_id.0.as_str());
                    }
                }
                d.groups.extend(denied);
                message(ResponseKind::ConsumerGroupDescribe(d))
            }
            other => other,
        }),
    )
}

fn describe_transactions(a: &Authz, mut r: DescribeTransactionsRequest) -> Gate {
    let mut denied = Vec::new();
    r.transactional_ids.retain(|t| {
        let ok = a.allow(Op::Describe, Rt::TransactionalId, t.0.as_str());
        if !ok {
            denied.push(
                TransactionState::default()
                    .with_transactional_id(t.clone())
                    .with_error_code(TXN_DENIED)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
            );
        }
        ok
    });
    Gate::Pass(
        RequestKind::DescribeTransactions(r),
        Fixups::new(move |resp| match resp {
            Response::Message(ResponseKind::DescribeTransactions(mut d)) => {
                d.transaction_states.extend(denied);
                message(ResponseKind::DescribeTransactions(d))
            }
            other => other,
        }),
    )
}
