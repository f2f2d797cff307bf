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
use kafka_protocol::protocol::StrBytes;
use sluice_auth::acl::{AclOperation as Op, ResourceType as Rt, AUTHORIZED_OPERATIONS_OMITTED};

use super::ops::{message, pass_and_edit, split_denied};
use super::{Authz, Gate};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const TXN_DENIED: i16 = 53;

/// These APIs; `rest` decides any other.
pub(super) fn gate(a: &Authz, body: RequestKind, rest: impl FnOnce(RequestKind) -> Gate) -> Gate {
    match body {
        RequestKind::OffsetDelete(r) => offset_delete(a, r),
        RequestKind::ConsumerGroupDescribe(r) => consumer_group_describe(a, r),
        RequestKind::DescribeTransactions(r) => describe_transactions(a, r),
        RequestKind::DescribeProducers(r) => describe_producers(a, r),
        RequestKind::ListTransactions(r) => {
            let authz = a.clone();
            pass_and_edit!(ListTransactions, r, |l| {
                l.transaction_states.retain(|t| {
                    authz.allow_quietly(
                        Op::Describe,
                        Rt::TransactionalId,
                        t.transactional_id.0.as_str(),
                    )
                });
            })
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
    let denied = split_denied(
        &mut r.topics,
        |t| a.allow(Op::Read, Rt::Topic, t.name.as_str()),
        |t| {
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
                )
        },
    );
    pass_and_edit!(OffsetDelete, r, |o| {
        o.topics.extend(denied);
    })
}

/// Kafka 4.1's rule: a described group whose members' assignments name a
/// topic the principal may not describe is answered as
/// TOPIC_AUTHORIZATION_FAILED without its members, so that no topic name
/// leaks (each topic is checked, and audited, once).
fn hide_unauthorized_topics(a: &Authz, groups: &mut [DescribedGroup]) {
    let topics: std::collections::BTreeSet<&str> = groups
        .iter()
        .filter(|g| g.error_code == 0)
        .flat_map(|g| &g.members)
        .flat_map(|m| [&m.assignment, &m.target_assignment])
        .flat_map(|asg| &asg.topic_partitions)
        .map(|tp| tp.topic_name.as_str())
        .collect();
    let denied: std::collections::BTreeSet<String> = topics
        .into_iter()
        .filter(|t| !a.allow(Op::Describe, Rt::Topic, t))
        .map(str::to_string)
        .collect();
    if denied.is_empty() {
        return;
    }
    for g in groups.iter_mut().filter(|g| g.error_code == 0) {
        let hides = g
            .members
            .iter()
            .flat_map(|m| [&m.assignment, &m.target_assignment])
            .flat_map(|asg| &asg.topic_partitions)
            .any(|tp| denied.contains(tp.topic_name.as_str()));
        if hides {
            *g = DescribedGroup::default()
                .with_group_id(g.group_id.clone())
                .with_error_code(TOPIC_DENIED)
                .with_error_message(Some(StrBytes::from_static_str(
                    "The group has described topic(s) that the client is not authorized to describe.",
                )));
        }
    }
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
    pass_and_edit!(ConsumerGroupDescribe, r, |d| {
        if with_ops {
            for g in d.groups.iter_mut().filter(|g| g.error_code == 0) {
                g.authorized_operations = authz.operations(Rt::Group, g.group_id.0.as_str());
            }
        }
        hide_unauthorized_topics(&authz, &mut d.groups);
        d.groups.extend(denied);
    })
}

/// DescribeTransactions: DESCRIBE on each transactional id; a described
/// transaction lists only the topics the principal may describe.
fn describe_transactions(a: &Authz, mut r: DescribeTransactionsRequest) -> Gate {
    let denied = split_denied(
        &mut r.transactional_ids,
        |t| a.allow(Op::Describe, Rt::TransactionalId, t.0.as_str()),
        |t| {
            TransactionState::default()
                .with_transactional_id(t.clone())
                .with_error_code(TXN_DENIED)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1)
        },
    );
    let authz = a.clone();
    pass_and_edit!(DescribeTransactions, r, |d| {
        for t in &mut d.transaction_states {
            t.topics
                .retain(|t| authz.allow(Op::Describe, Rt::Topic, t.topic.as_str()));
        }
        d.transaction_states.extend(denied);
    })
}

/// DescribeProducers: READ on each topic, else TOPIC_AUTHORIZATION_FAILED
/// on each of its partitions (an invalid name is left to the handler, as
/// Kafka validates the name first).
fn describe_producers(a: &Authz, mut r: DescribeProducersRequest) -> Gate {
    use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
    let denied = split_denied(
        &mut r.topics,
        |t| {
            crate::metadata::validate_topic_name(t.name.as_str()).is_err()
                || a.allow(Op::Read, Rt::Topic, t.name.as_str())
        },
        |t| {
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|&p| {
                            PartitionResponse::default()
                                .with_partition_index(p)
                                .with_error_code(TOPIC_DENIED)
                                .with_error_message(Some(StrBytes::from_static_str(
                                    "Topic authorization failed.",
                                )))
                        })
                        .collect(),
                )
        },
    );
    pass_and_edit!(DescribeProducers, r, |d| {
        d.topics.extend(denied);
    })
}
