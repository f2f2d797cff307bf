//! The data-path APIs: Produce (WRITE on each topic; a transactional
//! producer also WRITE on its transactional id), Fetch (READ on each topic;
//! a follower CLUSTER_ACTION), ListOffsets and OffsetForLeaderEpoch
//! (DESCRIBE), and Metadata (DESCRIBE filters the topics; auto-creation
//! needs CREATE on the cluster or the topic).
//!
//! A topic named by an unknown id passes through, so that the handler
//! answers UNKNOWN_TOPIC_ID; a named topic the principal may not touch is
//! TOPIC_AUTHORIZATION_FAILED whether it exists or not, so nothing leaks.

use std::collections::BTreeSet;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use sluice_auth::acl::{AclOperation as Op, ResourceType as Rt, AUTHORIZED_OPERATIONS_OMITTED};
use sluice_metadata::MetadataImage;
use uuid::Uuid;

use super::ops::{message, pass_and_edit, split_denied, Fixups};
use super::{Authz, Gate, CLUSTER_NAME};
use crate::context::BrokerContext;
use crate::handlers::Response;

const TOPIC_DENIED: i16 = 29; // TOPIC_AUTHORIZATION_FAILED

/// The name of a topic given by name or by id (`None`: an unknown id).
fn topic_name(image: &MetadataImage, name: &str, id: Uuid) -> Option<String> {
    if !name.is_empty() || id.is_nil() {
        return Some(name.to_string());
    }
    image.topic_by_id(id).map(|t| t.name().to_string())
}

pub(super) fn produce(a: &Authz, image: &MetadataImage, mut r: ProduceRequest) -> Gate {
    let txn_denied = r
        .transactional_id
        .as_ref()
        .is_some_and(|id| !a.allow(Op::Write, Rt::TransactionalId, id.0.as_str()));
    let code = if txn_denied {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else {
        TOPIC_DENIED
    };
    let denied = split_denied(
        &mut r.topic_data,
        |t| {
            !txn_denied
                && match topic_name(image, t.name.as_str(), t.topic_id) {
                    Some(n) => a.allow(Op::Write, Rt::Topic, &n),
                    None => true,
                }
        },
        |t| {
            let parts: Vec<i32> = t.partition_data.iter().map(|p| p.index).collect();
            (t.name.clone(), t.topic_id, parts)
        },
    );
    if denied.is_empty() {
        return Gate::Pass(RequestKind::Produce(r), Fixups::none());
    }
    Gate::Pass(
        RequestKind::Produce(r),
        Fixups::new(move |resp| match resp {
            Response::Message(ResponseKind::Produce(mut p)) => {
                for (name, id, parts) in denied {
                    p.responses.push(
                        TopicProduceResponse::default()
                            .with_name(name)
                            .with_topic_id(id)
                            .with_partition_responses(
                                parts
                                    .into_iter()
                                    .map(|i| {
                                        PartitionProduceResponse::default()
                                            .with_index(i)
                                            .with_error_code(code)
                                            .with_base_offset(-1)
                                            .with_log_append_time_ms(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            ),
                    );
                }
                message(ResponseKind::Produce(p))
            }
            // acks=0: the producer expects no answer, so Kafka closes the
            // connection to tell it that something was refused.
            Response::NoResponse => Response::Close("produce with acks=0 was denied".into()),
            other => other,
        }),
    )
}

fn fetch_error(name: TopicName, id: Uuid, parts: Vec<i32>, code: i16) -> FetchableTopicResponse {
    FetchableTopicResponse::default()
        .with_topic(name)
        .with_topic_id(id)
        .with_partitions(
            parts
                .into_iter()
                .map(|i| {
                    PartitionData::default()
                        .with_partition_index(i)
                        .with_error_code(code)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Default::default()))
                })
                .collect(),
        )
}

pub(super) fn fetch(a: &Authz, image: &MetadataImage, mut r: FetchRequest) -> Gate {
    let follower = r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0;
    let cluster_denied = follower && !a.allow_cluster(Op::ClusterAction);
    let denied = split_denied(
        &mut r.topics,
        |t| {
            !cluster_denied
                && (follower
                    || match topic_name(image, t.topic.as_str(), t.topic_id) {
                        Some(n) => a.allow(Op::Read, Rt::Topic, &n),
                        None => true,
                    })
        },
        |t| {
            let parts = t.partitions.iter().map(|p| p.partition).collect();
            fetch_error(t.topic.clone(), t.topic_id, parts, TOPIC_DENIED)
        },
    );
    if denied.is_empty() {
        return Gate::Pass(RequestKind::Fetch(r), Fixups::none());
    }
    Gate::Pass(
        RequestKind::Fetch(r),
        Fixups::new(move |resp| match resp {
            Response::Fetch(mut plan) => {
                // Appended after the handler's topics: the file slices
                // index the existing ones and stay valid.
                plan.response.responses.extend(denied);
                Response::Fetch(plan)
            }
            other => other,
        }),
    )
}

pub(super) fn list_offsets(a: &Authz, mut r: ListOffsetsRequest) -> Gate {
    let denied = split_denied(
        &mut r.topics,
        |t| a.allow(Op::Describe, Rt::Topic, t.name.as_str()),
        |t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                                .with_timestamp(-1)
                                .with_offset(-1)
                                .with_leader_epoch(-1)
                        })
                        .collect(),
                )
        },
    );
    pass_and_edit!(ListOffsets, r, |l| {
        l.topics.extend(denied);
    })
}

pub(super) fn offset_for_leader_epoch(a: &Authz, mut r: OffsetForLeaderEpochRequest) -> Gate {
    let follower = r.replica_id.0 >= 0;
    let cluster_denied = follower && !a.allow_cluster(Op::ClusterAction);
    let code = if cluster_denied {
        ResponseError::ClusterAuthorizationFailed.code()
    } else {
        TOPIC_DENIED
    };
    let denied = split_denied(
        &mut r.topics,
        |t| !cluster_denied && (follower || a.allow(Op::Describe, Rt::Topic, t.topic.as_str())),
        |t| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(code)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect(),
                )
        },
    );
    pass_and_edit!(OffsetForLeaderEpoch, r, |l| {
        l.topics.extend(denied);
    })
}

/// Kafka's `handleTopicMetadataRequest` rules (see the module docs).
pub(super) fn metadata(
    a: &Authz,
    ctx: &BrokerContext,
    image: &MetadataImage,
    version: i16,
    mut r: MetadataRequest,
) -> Gate {
    let all_topics = match &r.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let topic_ops = r.include_topic_authorized_operations;
    let cluster_ops = r
        .include_cluster_authorized_operations
        .then(|| a.cluster_operations());
    let auto_create =
        ctx.config.auto_create_topics_enable && (version < 4 || r.allow_auto_topic_creation);
    // The names the handler may answer (None: every topic it lists that
    // the principal may describe), and the error entries to add.
    let mut allowed: Option<BTreeSet<String>> = None;
    let mut denied: Vec<MetadataResponseTopic> = Vec::new();
    if !all_topics {
        let mut keep = BTreeSet::new();
        let mut create_cluster: Option<bool> = None;
        // A named topic's name; `None` for an unknown id (it passes).
        let name_of = |t: &metadata_request::MetadataRequestTopic| match &t.name {
            Some(n) => Some(n.as_str().to_string()),
            None => image.topic_by_id(t.topic_id).map(|t| t.name().to_string()),
        };
        if let Some(topics) = r.topics.as_mut() {
            denied = split_denied(
                topics,
                |t| {
                    let Some(name) = name_of(t) else { return true };
                    let mut ok = a.allow(Op::Describe, Rt::Topic, &name);
                    if ok && auto_create && image.topic(&name).is_none() {
                        let cluster = *create_cluster.get_or_insert_with(|| {
                            a.allow_quietly(Op::Create, Rt::Cluster, CLUSTER_NAME)
                        });
                        ok = cluster || a.allow(Op::Create, Rt::Topic, &name);
                    }
                    if ok {
                        keep.insert(name);
                    }
                    ok
                },
                |t| {
                    let by_id = t.name.is_none() && !t.topic_id.is_nil();
                    MetadataResponseTopic::default()
                        .with_error_code(TOPIC_DENIED)
                        .with_name(t.name.clone())
                        .with_topic_id(if by_id { t.topic_id } else { Uuid::nil() })
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                },
            );
        }
        allowed = Some(keep);
    }
    let principal_view = (topic_ops, cluster_ops);
    let authz = a.clone();
    pass_and_edit!(Metadata, r, |m| {
        m.topics.retain(|t| {
            let Some(name) = &t.name else { return true };
            match &allowed {
                Some(keep) => keep.contains(name.as_str()),
                None => authz.allow_quietly(Op::Describe, Rt::Topic, name.as_str()),
            }
        });
        let (topic_ops, cluster_ops) = principal_view;
        if topic_ops {
            for t in &mut m.topics {
                if let Some(name) = &t.name {
                    t.topic_authorized_operations = authz.operations(Rt::Topic, name.as_str());
                }
            }
        }
        if let Some(ops) = cluster_ops {
            m.cluster_authorized_operations = ops;
        }
        m.topics.extend(denied);
    })
}
