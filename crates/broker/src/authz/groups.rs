//! Groups and transactions: READ on the group for the members' APIs and
//! offset commits, DESCRIBE for FindCoordinator, DescribeGroups and
//! OffsetFetch, DELETE for DeleteGroups; WRITE on the transactional id for
//! a transactional producer's APIs; IDEMPOTENT_WRITE on the cluster (or
//! WRITE on some topic) for an idempotent InitProducerId; CLUSTER_ACTION
//! for the brokers' own WriteTxnMarkers and AddPartitionsToTxn v4+.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_auth::acl::{AclOperation as Op, ResourceType as Rt, AUTHORIZED_OPERATIONS_OMITTED};

use super::ops::{message, pass_and_edit, split_denied, Fixups};
use super::{Authz, Gate};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;
const NOT_ATTEMPTED: i16 = 55;

fn answer(r: ResponseKind) -> Gate {
    Gate::Answer(message(r))
}

fn pass(r: RequestKind) -> Gate {
    Gate::Pass(r, Fixups::none())
}

/// The group and transaction APIs; `rest` decides any other.
pub(super) fn gate(
    a: &Authz,
    v: i16,
    body: RequestKind,
    rest: impl FnOnce(RequestKind) -> Gate,
) -> Gate {
    use RequestKind as R;
    let group = |g: &GroupId| a.allow(Op::Read, Rt::Group, g.0.as_str());
    let txn = |t: &TransactionalId| a.allow(Op::Write, Rt::TransactionalId, t.0.as_str());
    match body {
        R::JoinGroup(r) if !group(&r.group_id) => answer(ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(GROUP_DENIED)
                .with_generation_id(-1)
                .with_protocol_name((v < 7).then(StrBytes::default)),
        )),
        R::SyncGroup(r) if !group(&r.group_id) => answer(ResponseKind::SyncGroup(
            SyncGroupResponse::default().with_error_code(GROUP_DENIED),
        )),
        R::Heartbeat(r) if !group(&r.group_id) => answer(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(GROUP_DENIED),
        )),
        R::LeaveGroup(r) if !group(&r.group_id) => answer(ResponseKind::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
        )),
        R::ConsumerGroupHeartbeat(r) => {
            let code = if !group(&r.group_id) {
                GROUP_DENIED
            } else if !subscription_allowed(a, &r) {
                TOPIC_DENIED
            } else {
                return pass(R::ConsumerGroupHeartbeat(r));
            };
            answer(ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(code)
                    .with_heartbeat_interval_ms(0),
            ))
        }
        R::OffsetCommit(r) => offset_commit(a, r),
        R::OffsetFetch(r) => offset_fetch(a, v, r),
        R::FindCoordinator(r) => find_coordinator(a, v, r),
        R::DescribeGroups(r) => describe_groups(a, r),
        R::ListGroups(r) => list_groups(a, r),
        R::DeleteGroups(mut r) => {
            let denied = split_denied(
                &mut r.groups_names,
                |g| a.allow(Op::Delete, Rt::Group, g.0.as_str()),
                |g| {
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(GROUP_DENIED)
                },
            );
            pass_and_edit!(DeleteGroups, r, |d| {
                d.results.extend(denied);
            })
        }
        R::InitProducerId(r) => {
            let ok = match &r.transactional_id {
                Some(t) => txn(t),
                None => {
                    a.allow_quietly(Op::IdempotentWrite, Rt::Cluster, super::CLUSTER_NAME)
                        || a.allow_any_of_type(Op::Write, Rt::Topic)
                        || a.allow_cluster(Op::IdempotentWrite)
                }
            };
            if ok {
                return pass(R::InitProducerId(r));
            }
            let code = if r.transactional_id.is_some() {
                TXN_DENIED
            } else {
                CLUSTER_DENIED
            };
            answer(ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            ))
        }
        R::AddPartitionsToTxn(r) => add_partitions_to_txn(a, v, r),
        R::AddOffsetsToTxn(r) => {
            let code = if !txn(&r.transactional_id) {
                TXN_DENIED
            } else if !group(&r.group_id) {
                GROUP_DENIED
            } else {
                return pass(R::AddOffsetsToTxn(r));
            };
            answer(ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(code),
            ))
        }
        R::EndTxn(r) if !txn(&r.transactional_id) => answer(ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(TXN_DENIED)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        )),
        R::TxnOffsetCommit(r) => txn_offset_commit(a, r),
        R::WriteTxnMarkers(r) if !a.allow_cluster(Op::ClusterAction) => {
            answer(ResponseKind::WriteTxnMarkers(write_txn_markers_denied(&r)))
        }
        other => rest(other),
    }
}

/// Kafka 4.1: a consumer may subscribe (by name) only to topics it may
/// describe, else the heartbeat is TOPIC_AUTHORIZATION_FAILED; each
/// distinct name is checked and audited once.
fn subscription_allowed(a: &Authz, r: &ConsumerGroupHeartbeatRequest) -> bool {
    let Some(names) = &r.subscribed_topic_names else {
        return true;
    };
    let distinct: std::collections::BTreeSet<&str> = names.iter().map(|n| n.as_str()).collect();
    // Every name is checked (no short cut), so each denial is audited.
    distinct
        .into_iter()
        .filter(|n| !a.allow(Op::Describe, Rt::Topic, n))
        .count()
        == 0
}

fn offset_commit(a: &Authz, mut r: OffsetCommitRequest) -> Gate {
    let group_ok = a.allow(Op::Read, Rt::Group, r.group_id.0.as_str());
    let code = if group_ok { TOPIC_DENIED } else { GROUP_DENIED };
    let denied = split_denied(
        &mut r.topics,
        |t| group_ok && a.allow(Op::Read, Rt::Topic, t.name.as_str()),
        |t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        },
    );
    if !group_ok {
        return Gate::Answer(message(ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(denied),
        )));
    }
    pass_and_edit!(OffsetCommit, r, |o| {
        o.topics.extend(denied);
    })
}

fn txn_offset_commit(a: &Authz, mut r: TxnOffsetCommitRequest) -> Gate {
    let whole = if !a.allow(
        Op::Write,
        Rt::TransactionalId,
        r.transactional_id.0.as_str(),
    ) {
        Some(TXN_DENIED)
    } else if !a.allow(Op::Read, Rt::Group, r.group_id.0.as_str()) {
        Some(GROUP_DENIED)
    } else {
        None
    };
    let code = whole.unwrap_or(TOPIC_DENIED);
    let denied = split_denied(
        &mut r.topics,
        |t| whole.is_none() && a.allow(Op::Read, Rt::Topic, t.name.as_str()),
        |t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        },
    );
    if whole.is_some() {
        return Gate::Answer(message(ResponseKind::TxnOffsetCommit(
            TxnOffsetCommitResponse::default().with_topics(denied),
        )));
    }
    pass_and_edit!(TxnOffsetCommit, r, |o| {
        o.topics.extend(denied);
    })
}

/// OffsetFetch: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED), then
/// DESCRIBE on each named topic (TOPIC_AUTHORIZATION_FAILED); asked for
/// every topic, the unauthorized ones are left out.
fn offset_fetch(a: &Authz, v: i16, mut r: OffsetFetchRequest) -> Gate {
    let authz = a.clone();
    if v < 8 {
        if !a.allow(Op::Describe, Rt::Group, r.group_id.0.as_str()) {
            return Gate::Answer(message(ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_error_code(GROUP_DENIED),
            )));
        }
        let denied = match r.topics.as_mut() {
            Some(topics) => split_denied(
                topics,
                |t| a.allow(Op::Describe, Rt::Topic, t.name.as_str()),
                |t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_committed_leader_epoch(-1)
                                        .with_error_code(TOPIC_DENIED)
                                })
                                .collect(),
                        )
                },
            ),
            None => Vec::new(),
        };
        return pass_and_edit!(OffsetFetch, r, |o| {
            o.topics
                .retain(|t| authz.allow_quietly(Op::Describe, Rt::Topic, t.name.as_str()));
            o.topics.extend(denied);
        });
    }
    let denied_groups = split_denied(
        &mut r.groups,
        |g| a.allow(Op::Describe, Rt::Group, g.group_id.0.as_str()),
        |g| {
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_error_code(GROUP_DENIED)
        },
    );
    let mut denied_topics: Vec<(GroupId, OffsetFetchResponseTopics)> = Vec::new();
    for g in &mut r.groups {
        let Some(topics) = g.topics.as_mut() else {
            continue;
        };
        let denied = split_denied(
            topics,
            |t| a.allow(Op::Describe, Rt::Topic, t.name.as_str()),
            |t| {
                OffsetFetchResponseTopics::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    )
            },
        );
        denied_topics.extend(denied.into_iter().map(|t| (g.group_id.clone(), t)));
    }
    pass_and_edit!(OffsetFetch, r, |o| {
        for g in &mut o.groups {
            g.topics
                .retain(|t| authz.allow_quietly(Op::Describe, Rt::Topic, t.name.as_str()));
            for (group, t) in &denied_topics {
                if *group == g.group_id {
                    g.topics.push(t.clone());
                }
            }
        }
        o.groups.extend(denied_groups);
    })
}

fn find_coordinator(a: &Authz, v: i16, mut r: FindCoordinatorRequest) -> Gate {
    let (rt, code) = if r.key_type == 1 {
        (Rt::TransactionalId, TXN_DENIED)
    } else {
        (Rt::Group, GROUP_DENIED)
    };
    if v < 4 {
        if a.allow(Op::Describe, rt, r.key.as_str()) {
            return Gate::Pass(RequestKind::FindCoordinator(r), Fixups::none());
        }
        return Gate::Answer(message(ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id((-1).into())
                .with_port(-1),
        )));
    }
    let denied = split_denied(
        &mut r.coordinator_keys,
        |k| a.allow(Op::Describe, rt, k.as_str()),
        |k| {
            Coordinator::default()
                .with_key(k.clone())
                .with_node_id((-1).into())
                .with_port(-1)
                .with_error_code(code)
        },
    );
    pass_and_edit!(FindCoordinator, r, |f| {
        f.coordinators.extend(denied);
    })
}

fn describe_groups(a: &Authz, mut r: DescribeGroupsRequest) -> Gate {
    let with_ops = r.include_authorized_operations;
    let denied = split_denied(
        &mut r.groups,
        |g| a.allow(Op::Describe, Rt::Group, g.0.as_str()),
        |g| {
            DescribedGroup::default()
                .with_group_id(g.clone())
                .with_error_code(GROUP_DENIED)
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        },
    );
    let authz = a.clone();
    pass_and_edit!(DescribeGroups, r, |d| {
        if with_ops {
            for g in &mut d.groups {
                g.authorized_operations = authz.operations(Rt::Group, g.group_id.0.as_str());
            }
        }
        d.groups.extend(denied);
    })
}

fn list_groups(a: &Authz, r: ListGroupsRequest) -> Gate {
    if a.allow_quietly(Op::Describe, Rt::Cluster, super::CLUSTER_NAME) {
        return Gate::Pass(RequestKind::ListGroups(r), Fixups::none());
    }
    let authz = a.clone();
    pass_and_edit!(ListGroups, r, |l| {
        l.groups
            .retain(|g| authz.allow_quietly(Op::Describe, Rt::Group, g.group_id.0.as_str()));
    })
}

/// AddPartitionsToTxn: v4+ come from partition leaders (CLUSTER_ACTION);
/// v0-3 need WRITE on the transactional id, then WRITE on every topic:
/// if any topic is denied nothing is added (the others are
/// OPERATION_NOT_ATTEMPTED), as in Kafka.
fn add_partitions_to_txn(a: &Authz, v: i16, r: AddPartitionsToTxnRequest) -> Gate {
    if v >= 4 {
        if a.allow_cluster(Op::ClusterAction) {
            return Gate::Pass(RequestKind::AddPartitionsToTxn(r), Fixups::none());
        }
        return Gate::Answer(message(ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_DENIED),
        )));
    }
    let txn_ok = a.allow(
        Op::Write,
        Rt::TransactionalId,
        r.v3_and_below_transactional_id.0.as_str(),
    );
    let codes: Vec<i16> = r
        .v3_and_below_topics
        .iter()
        .map(|t| {
            if !txn_ok {
                TXN_DENIED
            } else if a.allow(Op::Write, Rt::Topic, t.name.as_str()) {
                0
            } else {
                TOPIC_DENIED
            }
        })
        .collect();
    if codes.iter().all(|&c| c == 0) {
        return Gate::Pass(RequestKind::AddPartitionsToTxn(r), Fixups::none());
    }
    let results = r
        .v3_and_below_topics
        .iter()
        .zip(codes)
        .map(|(t, code)| {
            let code = if code == 0 { NOT_ATTEMPTED } else { code };
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Gate::Answer(message(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    )))
}

fn write_txn_markers_denied(r: &WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    WriteTxnMarkersResponse::default().with_markers(
        r.markers
            .iter()
            .map(|m| {
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(
                        m.topics
                            .iter()
                            .map(|t| {
                                WritableTxnMarkerTopicResult::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|&p| {
                                                WritableTxnMarkerPartitionResult::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(CLUSTER_DENIED)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
