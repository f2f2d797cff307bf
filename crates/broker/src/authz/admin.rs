//! Admin APIs: topics (CREATE on the cluster or each topic, DELETE, ALTER
//! for new partitions), configs (DESCRIBE_CONFIGS / ALTER_CONFIGS on the
//! topic, the cluster for brokers, the group), ACLs and SCRAM credentials
//! (ALTER / DESCRIBE on the cluster), client quotas (ALTER_CONFIGS /
//! DESCRIBE_CONFIGS on the cluster), the cluster-wide operations
//! (ElectLeaders, reassignments, features: ALTER / DESCRIBE on the
//! cluster), DescribeQuorum (DESCRIBE on the cluster), AlterReplicaLogDirs
//! (ALTER on the cluster), ListConfigResources (DESCRIBE_CONFIGS on the
//! cluster), and DescribeCluster's authorized operations.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_auth::acl::{AclOperation as Op, ResourceType as Rt};
use sluice_metadata::MetadataImage;

use super::ops::{message, pass_and_edit, split_denied, Fixups};
use super::{Authz, Gate, CLUSTER_NAME};
use crate::handlers::Response;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;

fn answer(r: ResponseKind) -> Gate {
    Gate::Answer(message(r))
}

/// The Kafka config resource types: 2 TOPIC, 4 BROKER, 8 BROKER_LOGGER,
/// 32 GROUP, 16 CLIENT_METRICS.
fn config_allowed(a: &Authz, op: Op, resource_type: i8, name: &str) -> Result<(), i16> {
    let (rt, rname, code) = match resource_type {
        2 => (Rt::Topic, name, TOPIC_DENIED),
        32 => (Rt::Group, name, GROUP_DENIED),
        _ => (Rt::Cluster, CLUSTER_NAME, CLUSTER_DENIED),
    };
    if a.allow(op, rt, rname) {
        Ok(())
    } else {
        Err(code)
    }
}

/// [`split_denied`] for config resources: the ones `op` is denied on come
/// back as `denied(resource, error code)`.
fn split_config_denied<T, D>(
    a: &Authz,
    op: Op,
    items: &mut Vec<T>,
    key: impl Fn(&T) -> (i8, &str),
    denied: impl Fn(&T, i16) -> D,
) -> Vec<D> {
    // `split_denied` calls `denied` right after `allowed` refused the
    // same item: the code is handed over in between.
    let code = std::cell::Cell::new(0);
    split_denied(
        items,
        |res| {
            let (rt, name) = key(res);
            match config_allowed(a, op, rt, name) {
                Ok(()) => true,
                Err(c) => {
                    code.set(c);
                    false
                }
            }
        },
        |res| denied(res, code.get()),
    )
}

/// Checks one admin request: refused whole when the principal lacks the
/// cluster permission its API needs ([`cluster_refusal`]), else passed on
/// with the resources it may not touch answered here.
pub(super) fn gate(a: &Authz, image: &MetadataImage, v: i16, body: RequestKind) -> Gate {
    use RequestKind as R;
    if let Some(refused) = cluster_refusal(a, v, &body) {
        return answer(refused);
    }
    let pass = |r| Gate::Pass(r, Fixups::none());
    match body {
        R::CreateTopics(r) => create_topics(a, r),
        R::DescribeTopicPartitions(r) => describe_topic_partitions(a, r),
        R::DeleteRecords(mut r) => {
            use kafka_protocol::messages::delete_records_response::{
                DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
            };
            let denied = split_denied(
                &mut r.topics,
                |t| a.allow(Op::Delete, Rt::Topic, t.name.as_str()),
                |t| {
                    DeleteRecordsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    DeleteRecordsPartitionResult::default()
                                        .with_partition_index(p.partition_index)
                                        .with_low_watermark(-1)
                                        .with_error_code(TOPIC_DENIED)
                                })
                                .collect(),
                        )
                },
            );
            pass_and_edit!(DeleteRecords, r, |d| {
                d.topics.extend(denied);
            })
        }
        R::DeleteTopics(r) => delete_topics(a, image, r),
        R::CreatePartitions(mut r) => {
            let denied = split_denied(
                &mut r.topics,
                |t| a.allow(Op::Alter, Rt::Topic, t.name.as_str()),
                |t| {
                    CreatePartitionsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(TOPIC_DENIED)
                },
            );
            pass_and_edit!(CreatePartitions, r, |c| {
                c.results.extend(denied);
            })
        }
        R::DescribeConfigs(mut r) => {
            let denied = split_config_denied(
                a,
                Op::DescribeConfigs,
                &mut r.resources,
                |res| (res.resource_type, res.resource_name.as_str()),
                |res, code| {
                    DescribeConfigsResult::default()
                        .with_error_code(code)
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name.clone())
                },
            );
            pass_and_edit!(DescribeConfigs, r, |d| {
                d.results.extend(denied);
            })
        }
        R::AlterConfigs(mut r) => {
            use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as Res;
            let denied = split_config_denied(
                a,
                Op::AlterConfigs,
                &mut r.resources,
                |res| (res.resource_type, res.resource_name.as_str()),
                |res, code| {
                    Res::default()
                        .with_error_code(code)
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name.clone())
                },
            );
            pass_and_edit!(AlterConfigs, r, |d| {
                d.responses.extend(denied);
            })
        }
        R::IncrementalAlterConfigs(mut r) => {
            use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as Res;
            let denied = split_config_denied(
                a,
                Op::AlterConfigs,
                &mut r.resources,
                |res| (res.resource_type, res.resource_name.as_str()),
                |res, code| {
                    Res::default()
                        .with_error_code(code)
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name.clone())
                },
            );
            pass_and_edit!(IncrementalAlterConfigs, r, |d| {
                d.responses.extend(denied);
            })
        }
        R::DescribeCluster(r) => {
            let ops = r
                .include_cluster_authorized_operations
                .then(|| a.cluster_operations());
            Gate::Pass(
                R::DescribeCluster(r),
                Fixups::new(move |resp| match (resp, ops) {
                    (Response::Message(ResponseKind::DescribeCluster(mut d)), Some(ops)) => {
                        d.cluster_authorized_operations = ops;
                        message(ResponseKind::DescribeCluster(d))
                    }
                    (other, _) => other,
                }),
            )
        }
        other => pass(other),
    }
}

/// The answer to an API that needs a permission on the cluster the
/// principal does not have (each API's error shape as Kafka gives it).
fn cluster_refusal(a: &Authz, v: i16, body: &RequestKind) -> Option<ResponseKind> {
    use RequestKind as R;
    match body {
        R::CreateAcls(r) if !a.allow_cluster(Op::Alter) => Some(ResponseKind::CreateAcls(
            CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| AclCreationResult::default().with_error_code(CLUSTER_DENIED))
                    .collect(),
            ),
        )),
        R::DeleteAcls(r) if !a.allow_cluster(Op::Alter) => Some(ResponseKind::DeleteAcls(
            DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| DeleteAclsFilterResult::default().with_error_code(CLUSTER_DENIED))
                    .collect(),
            ),
        )),
        R::DescribeAcls(_) if !a.allow_cluster(Op::Describe) => Some(ResponseKind::DescribeAcls(
            DescribeAclsResponse::default().with_error_code(CLUSTER_DENIED),
        )),
        R::AlterUserScramCredentials(r) if !a.allow_cluster(Op::Alter) => {
            let names = r
                .upsertions
                .iter()
                .map(|u| u.name.to_string())
                .chain(r.deletions.iter().map(|d| d.name.to_string()))
                .collect();
            Some(ResponseKind::AlterUserScramCredentials(
                sluice_transport::server::scram::refused(
                    names,
                    CLUSTER_DENIED,
                    "Cluster authorization failed.",
                ),
            ))
        }
        R::DescribeUserScramCredentials(_) if !a.allow_cluster(Op::Describe) => {
            Some(ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER_DENIED),
            ))
        }
        // Client quotas: ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster
        // (Kafka's ControllerApis and KafkaApis).
        R::AlterClientQuotas(r) if !a.allow_cluster(Op::AlterConfigs) => {
            Some(ResponseKind::AlterClientQuotas(alter_quotas_refused(r)))
        }
        R::DescribeClientQuotas(_) if !a.allow_cluster(Op::DescribeConfigs) => {
            Some(ResponseKind::DescribeClientQuotas(
                DescribeClientQuotasResponse::default()
                    .with_error_code(CLUSTER_DENIED)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Cluster authorization failed.",
                    ))),
            ))
        }
        R::ElectLeaders(_) if !a.allow_cluster(Op::Alter) => Some(ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_error_code(CLUSTER_DENIED),
        )),
        R::AlterPartitionReassignments(_) if !a.allow_cluster(Op::Alter) => {
            Some(ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED),
            ))
        }
        R::ListPartitionReassignments(_) if !a.allow_cluster(Op::Describe) => {
            Some(ResponseKind::ListPartitionReassignments(
                ListPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED),
            ))
        }
        R::UpdateFeatures(_) if !a.allow_cluster(Op::Alter) => Some(ResponseKind::UpdateFeatures(
            UpdateFeaturesResponse::default().with_error_code(CLUSTER_DENIED),
        )),
        R::DescribeQuorum(_) if !a.allow_cluster(Op::Describe) => {
            Some(ResponseKind::DescribeQuorum(
                DescribeQuorumResponse::default()
                    .with_error_code(CLUSTER_DENIED)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Cluster authorization failed.",
                    ))),
            ))
        }
        R::AlterReplicaLogDirs(r) if !a.allow_cluster(Op::Alter) => {
            Some(ResponseKind::AlterReplicaLogDirs(alter_log_dirs_refused(r)))
        }
        R::ListConfigResources(_) if !a.allow_cluster(Op::DescribeConfigs) => {
            Some(ResponseKind::ListConfigResources(
                ListConfigResourcesResponse::default().with_error_code(CLUSTER_DENIED),
            ))
        }
        R::DescribeLogDirs(_) if !a.allow_cluster(Op::Describe) => {
            Some(ResponseKind::DescribeLogDirs(
                DescribeLogDirsResponse::default().with_error_code(if v >= 3 {
                    CLUSTER_DENIED
                } else {
                    0
                }),
            ))
        }
        _ => None,
    }
}

/// AlterReplicaLogDirs refused: every partition of every directory gets
/// CLUSTER_AUTHORIZATION_FAILED, as Kafka's
/// `AlterReplicaLogDirsRequest.getErrorResponse`.
fn alter_log_dirs_refused(r: &AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse {
    use kafka_protocol::messages::alter_replica_log_dirs_response::{
        AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
    };
    AlterReplicaLogDirsResponse::default().with_results(
        r.dirs
            .iter()
            .flat_map(|d| &d.topics)
            .map(|t| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AlterReplicaLogDirPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_error_code(CLUSTER_DENIED)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// AlterClientQuotas refused as a whole: every entry gets the error, as
/// Kafka's `AlterClientQuotasRequest.getErrorResponse`.
fn alter_quotas_refused(r: &AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    AlterClientQuotasResponse::default().with_entries(
        r.entries
            .iter()
            .map(|e| {
                EntryData::default()
                    .with_error_code(CLUSTER_DENIED)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Cluster authorization failed.",
                    )))
                    .with_entity(
                        e.entity
                            .iter()
                            .map(|d| {
                                EntityData::default()
                                    .with_entity_type(d.entity_type.clone())
                                    .with_entity_name(d.entity_name.clone())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// CreateTopics: CREATE on the cluster allows every topic; otherwise CREATE
/// on each topic.
fn create_topics(a: &Authz, mut r: CreateTopicsRequest) -> Gate {
    if a.allow_quietly(Op::Create, Rt::Cluster, CLUSTER_NAME) {
        return Gate::Pass(RequestKind::CreateTopics(r), Fixups::none());
    }
    let denied = split_denied(
        &mut r.topics,
        |t| a.allow(Op::Create, Rt::Topic, t.name.as_str()),
        |t| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(TOPIC_DENIED)
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_topic_config_error_code(TOPIC_DENIED)
        },
    );
    pass_and_edit!(CreateTopics, r, |c| {
        c.topics.extend(denied);
    })
}

/// DeleteTopics: DELETE on each topic; a topic named by id needs DESCRIBE
/// too, and an unknown id passes (the handler answers UNKNOWN_TOPIC_ID).
fn delete_topics(a: &Authz, image: &MetadataImage, mut r: DeleteTopicsRequest) -> Gate {
    let mut denied = split_denied(
        &mut r.topic_names,
        |n| a.allow(Op::Delete, Rt::Topic, n.as_str()),
        |n| {
            DeletableTopicResult::default()
                .with_name(Some(n.clone()))
                .with_error_code(TOPIC_DENIED)
        },
    );
    denied.extend(split_denied(
        &mut r.topics,
        |t| {
            let (name, by_id) = match &t.name {
                Some(n) => (n.as_str().to_string(), false),
                None => match image.topic_by_id(t.topic_id) {
                    Some(topic) => (topic.name().to_string(), true),
                    None => return true,
                },
            };
            (!by_id || a.allow(Op::Describe, Rt::Topic, &name))
                && a.allow(Op::Delete, Rt::Topic, &name)
        },
        |t| {
            DeletableTopicResult::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_error_code(TOPIC_DENIED)
                .with_error_message(Some(StrBytes::from_static_str(
                    "Topic authorization failed.",
                )))
        },
    ));
    pass_and_edit!(DeleteTopics, r, |d| {
        d.responses.extend(denied);
    })
}

/// DescribeTopicPartitions: DESCRIBE on each named topic
/// (TOPIC_AUTHORIZATION_FAILED), every topic the principal may describe
/// when none is named; each topic's authorized operations filled in.
fn describe_topic_partitions(a: &Authz, mut r: DescribeTopicPartitionsRequest) -> Gate {
    use kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
    let denied = split_denied(
        &mut r.topics,
        |t| a.allow(Op::Describe, Rt::Topic, t.name.as_str()),
        |t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(TOPIC_DENIED)
                .with_name(Some(t.name.clone()))
                .with_topic_authorized_operations(sluice_auth::acl::AUTHORIZED_OPERATIONS_OMITTED)
        },
    );
    // Every named topic denied: nothing to ask the handler (an empty list
    // would mean every topic).
    let asked_none = r.topics.is_empty() && !denied.is_empty();
    if asked_none {
        return Gate::Answer(message(ResponseKind::DescribeTopicPartitions(
            DescribeTopicPartitionsResponse::default().with_topics(denied),
        )));
    }
    let authz = a.clone();
    pass_and_edit!(DescribeTopicPartitions, r, |d| {
        d.topics.retain(|t| {
            t.name
                .as_ref()
                .is_none_or(|n| authz.allow_quietly(Op::Describe, Rt::Topic, n.as_str()))
        });
        for t in &mut d.topics {
            if let Some(n) = &t.name {
                t.topic_authorized_operations = authz.operations(Rt::Topic, n.as_str());
            }
        }
        d.topics.extend(denied);
    })
}
