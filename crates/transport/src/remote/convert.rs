//! Domain requests to Kafka's wire types and wire answers back, for
//! [`RemoteController`](super::RemoteController): the mirror image of the
//! server's `admin.rs` and `broker_rpc.rs`.

use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest,
    BrokerRegistrationRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    ElectLeadersRequest, ElectLeadersResponse, IncrementalAlterConfigsRequest, TopicName,
};
use sluice_controller::{
    AlterConfigOp, BrokerRegistrationRequest as Registration, ConfigAlteration, ConfigKeys,
    ControllerError, CreatePartitions, CreateTopic, CreatedTopic, DeletedTopic, ElectionResult,
    ElectionType, TopicRef,
};
use sluice_metadata::{BrokerId, ConfigResource};
use sluice_protocol::kafka_protocol;
use uuid::Uuid;

use crate::codes::{controller_error_from_code, ErrorCode, ErrorContext};
use crate::server::str_bytes;

fn wire_broker(b: BrokerId) -> kafka_protocol::messages::BrokerId {
    b.0.into()
}

fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

/// An answer naming another item than the one asked at its place.
fn mismatch(what: &str, answered: &str, asked: &str) -> ControllerError {
    ControllerError::Internal(format!(
        "{what}: the controller answered '{answered}' where '{asked}' was asked"
    ))
}

pub(super) fn create_topics(
    topics: &[CreateTopic],
    validate_only: bool,
    timeout_ms: i32,
) -> CreateTopicsRequest {
    let topics = topics
        .iter()
        .map(|t| {
            CreatableTopic::default()
                .with_name(topic_name(&t.name))
                .with_num_partitions(t.num_partitions)
                .with_replication_factor(t.replication_factor)
                .with_assignments(
                    t.assignments
                        .iter()
                        .map(|a| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(a.partition)
                                .with_broker_ids(
                                    a.replicas.iter().copied().map(wire_broker).collect(),
                                )
                        })
                        .collect(),
                )
                .with_configs(
                    t.configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(str_bytes(k.clone()))
                                .with_value(v.clone().map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only)
}

/// One topic's answer (the outer error: an answer about another topic).
pub(super) fn created_topic(
    r: CreatableTopicResult,
    asked: &str,
) -> Result<Result<CreatedTopic, ControllerError>, ControllerError> {
    if *r.name.0 != *asked {
        return Err(mismatch("CreateTopics", &r.name.0, asked));
    }
    let ctx = ErrorContext {
        topic: Some(asked),
        ..ErrorContext::default()
    };
    if let Some(e) = controller_error_from_code(r.error_code, r.error_message.as_deref(), &ctx) {
        return Ok(Err(e));
    }
    Ok(Ok(CreatedTopic {
        name: asked.to_string(),
        topic_id: r.topic_id,
        num_partitions: r.num_partitions,
        replication_factor: r.replication_factor,
        configs: r
            .configs
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string())))
            .collect(),
    }))
}

/// DeleteTopics v6+ (by name or by id, per topic).
pub(super) fn delete_topics(topics: &[TopicRef], timeout_ms: i32) -> DeleteTopicsRequest {
    let topics = topics
        .iter()
        .map(|t| match t {
            TopicRef::Name(n) => DeleteTopicState::default()
                .with_name(Some(topic_name(n)))
                .with_topic_id(Uuid::nil()),
            TopicRef::Id(id) => DeleteTopicState::default().with_topic_id(*id),
        })
        .collect();
    DeleteTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(timeout_ms)
}

pub(super) fn deleted_topic(
    r: DeletableTopicResult,
    asked: &TopicRef,
) -> Result<DeletedTopic, ControllerError> {
    let name = r.name.as_ref().map(|n| n.0.to_string());
    let ctx = match asked {
        TopicRef::Name(n) => ErrorContext {
            topic: Some(n),
            ..ErrorContext::default()
        },
        TopicRef::Id(id) => ErrorContext {
            topic_id: Some(*id),
            ..ErrorContext::default()
        },
    };
    match controller_error_from_code(r.error_code, r.error_message.as_deref(), &ctx) {
        Some(e) => Err(e),
        None => Ok(DeletedTopic {
            name: name.unwrap_or_default(),
            topic_id: r.topic_id,
        }),
    }
}

pub(super) fn create_partitions(
    topics: &[CreatePartitions],
    validate_only: bool,
    timeout_ms: i32,
) -> CreatePartitionsRequest {
    let topics = topics
        .iter()
        .map(|t| {
            CreatePartitionsTopic::default()
                .with_name(topic_name(&t.topic))
                .with_count(t.count)
                .with_assignments(t.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|replicas| {
                            CreatePartitionsAssignment::default().with_broker_ids(
                                replicas.iter().copied().map(wire_broker).collect(),
                            )
                        })
                        .collect()
                }))
        })
        .collect();
    CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only)
}

/// One item's result, checked to be about the item asked.
pub(super) fn item(
    what: &str,
    answered: &str,
    asked: &str,
    code: ErrorCode,
    message: Option<&str>,
) -> Result<Result<(), ControllerError>, ControllerError> {
    if answered != asked {
        return Err(mismatch(what, answered, asked));
    }
    let ctx = ErrorContext {
        topic: Some(asked),
        ..ErrorContext::default()
    };
    Ok(match controller_error_from_code(code, message, &ctx) {
        Some(e) => Err(e),
        None => Ok(()),
    })
}

fn op_code(op: AlterConfigOp) -> i8 {
    match op {
        AlterConfigOp::Set => 0,
        AlterConfigOp::Delete => 1,
        AlterConfigOp::Append => 2,
        AlterConfigOp::Subtract => 3,
    }
}

pub(super) fn incremental_alter_configs(
    resources: &[(ConfigResource, Vec<ConfigAlteration>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resources = resources
        .iter()
        .map(|(r, ops)| {
            AlterConfigsResource::default()
                .with_resource_type(r.resource_type.id())
                .with_resource_name(str_bytes(r.name.clone()))
                .with_configs(
                    ops.iter()
                        .map(|a| {
                            AlterableConfig::default()
                                .with_name(str_bytes(a.name.clone()))
                                .with_config_operation(op_code(a.op))
                                .with_value(a.value.clone().map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only)
}

pub(super) fn alter_configs(
    resources: &[(ConfigResource, ConfigKeys)],
    validate_only: bool,
) -> AlterConfigsRequest {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resources = resources
        .iter()
        .map(|(r, keys)| {
            AlterConfigsResource::default()
                .with_resource_type(r.resource_type.id())
                .with_resource_name(str_bytes(r.name.clone()))
                .with_configs(
                    keys.iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(str_bytes(k.clone()))
                                .with_value(v.clone().map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    AlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only)
}

/// ElectLeaders v1+: partitions grouped by topic, in the order topics
/// first appear; `None` elects every partition.
pub(super) fn elect_leaders(
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
    timeout_ms: i32,
) -> ElectLeadersRequest {
    let topic_partitions = partitions.map(|ps| {
        let mut out: Vec<TopicPartitions> = Vec::new();
        for (topic, p) in ps {
            match out.iter_mut().find(|t| *t.topic.0 == **topic) {
                Some(t) => t.partitions.push(*p),
                None => out.push(
                    TopicPartitions::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        out
    });
    ElectLeadersRequest::default()
        .with_election_type(match election {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        })
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(timeout_ms)
}

/// The partitions' results; for listed partitions in the order asked (the
/// wire groups them by topic), then any the controller added.
pub(super) fn election_results(
    resp: ElectLeadersResponse,
    asked: Option<&[(String, i32)]>,
) -> Vec<ElectionResult> {
    let mut results: Vec<Option<ElectionResult>> = resp
        .replica_election_results
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.0.to_string();
            t.partition_result.into_iter().map(move |p| {
                let ctx = ErrorContext {
                    topic: Some(&topic),
                    ..ErrorContext::default()
                };
                let error =
                    controller_error_from_code(p.error_code, p.error_message.as_deref(), &ctx);
                Some(ElectionResult {
                    topic: topic.clone(),
                    partition: p.partition_id,
                    result: error.map_or(Ok(()), Err),
                })
            })
        })
        .collect();
    let mut out = Vec::with_capacity(results.len());
    for (topic, p) in asked.unwrap_or_default() {
        let found = results.iter_mut().find(|r| {
            r.as_ref()
                .is_some_and(|r| r.topic == *topic && r.partition == *p)
        });
        if let Some(r) = found.and_then(Option::take) {
            out.push(r);
        }
    }
    out.extend(results.into_iter().flatten());
    out
}

/// The error of a broker RPC's answer (BrokerRegistration, BrokerHeartbeat,
/// AllocateProducerIds: no message field).
pub(super) fn broker_error(
    code: ErrorCode,
    broker: BrokerId,
    epoch: i64,
) -> Result<(), ControllerError> {
    let ctx = ErrorContext {
        broker: Some(broker),
        broker_epoch: Some(epoch),
        ..ErrorContext::default()
    };
    match controller_error_from_code(code, None, &ctx) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(super) fn registration(r: &Registration, cluster_id: &str) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest::default()
        .with_broker_id(wire_broker(r.broker_id))
        .with_cluster_id(str_bytes(cluster_id))
        .with_incarnation_id(r.incarnation_id)
        .with_listeners(
            r.listeners
                .iter()
                .map(|e| {
                    Listener::default()
                        .with_name(str_bytes(e.name.clone()))
                        .with_host(str_bytes(e.host.clone()))
                        .with_port(e.port)
                        .with_security_protocol(e.security_protocol)
                })
                .collect(),
        )
        .with_features(
            r.features
                .iter()
                .map(|f| {
                    Feature::default()
                        .with_name(str_bytes(f.name.clone()))
                        .with_min_supported_version(f.min_supported_version)
                        .with_max_supported_version(f.max_supported_version)
                })
                .collect(),
        )
        .with_rack(r.rack.clone().map(str_bytes))
        .with_log_dirs(r.log_dirs.clone())
        .with_previous_broker_epoch(r.previous_broker_epoch.map_or(-1, |e| e.0))
}
