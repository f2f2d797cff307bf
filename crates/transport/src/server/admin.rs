//! The admin APIs a broker forwards to the active controller: wire types
//! to the controller's domain types, one result per item in request order,
//! and the controller's errors as Kafka codes. A whole-request failure
//! (NOT_CONTROLLER, the log failed) is answered on every item, as Kafka's
//! controller does. Fields are set only in the versions that have them.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::RequestKind;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, ElectLeadersRequest,
    ElectLeadersResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_auth::KafkaPrincipal;
use sluice_controller::{
    AlterConfigOp, ConfigAlteration, ConfigKeys, ControllerError, CreatePartitions, CreateTopic,
    ElectionType, MutationRequester, QuorumController, ReplicaAssignment, Throttled, TopicRef,
};
use sluice_metadata::{BrokerId, ConfigResource, ConfigResourceType};
use sluice_protocol::kafka_protocol;
use sluice_protocol::DecodedRequest;
use uuid::Uuid;

use super::{check_active, log_refusal};
use crate::codes::{controller_error_code, item_error};

/// Kafka's `ConfigSource.DYNAMIC_TOPIC_CONFIG`.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// `items` results, or the whole-request error fanned out to `n` items.
fn per_item<T>(
    what: &'static str,
    r: Result<Vec<Result<T, ControllerError>>, ControllerError>,
    n: usize,
) -> Vec<Result<T, ControllerError>> {
    match r {
        Ok(v) if v.len() == n => v,
        Ok(v) => {
            let e = ControllerError::Internal(format!(
                "{what}: the controller answered {} items for {n}",
                v.len()
            ));
            (0..n).map(|_| Err(e.duplicate())).collect()
        }
        Err(e) => {
            log_refusal(what, &e);
            (0..n).map(|_| Err(e.duplicate())).collect()
        }
    }
}

/// Whom a CreateTopics, DeleteTopics or CreatePartitions is charged to
/// (`None` for other APIs): the client a broker forwarded it for, when
/// the request names one and `trust_forwarded` (the sender may act for
/// the cluster), else the sender itself, as Kafka's `ControllerApis`
/// builds the quota from the request context (an envelope's, when
/// forwarded).
pub(super) fn requester(
    req: &DecodedRequest,
    principal: &KafkaPrincipal,
    trust_forwarded: impl FnOnce() -> bool,
) -> Option<MutationRequester> {
    let tagged = match &req.body {
        RequestKind::CreateTopics(r) => &r.unknown_tagged_fields,
        RequestKind::DeleteTopics(r) => &r.unknown_tagged_fields,
        RequestKind::CreatePartitions(r) => &r.unknown_tagged_fields,
        _ => return None,
    };
    if let Some(forwarded) = crate::forwarded::read(tagged) {
        if trust_forwarded() {
            return Some(forwarded);
        }
    }
    Some(MutationRequester {
        user: principal.name().to_string(),
        client_id: req.header.client_id.as_deref().unwrap_or("").to_string(),
        api_version: req.api_version(),
    })
}

/// The items of a whole request, or its failure, and the throttle.
fn split<T>(
    r: Result<Throttled<Vec<Result<T, ControllerError>>>, ControllerError>,
) -> (
    Result<Vec<Result<T, ControllerError>>, ControllerError>,
    i32,
) {
    match r {
        Ok(t) => (Ok(t.value), t.throttle_ms),
        Err(e) => (Err(e), 0),
    }
}

pub(super) async fn create_topics(
    c: &QuorumController,
    r: CreateTopicsRequest,
    version: i16,
    requester: Option<MutationRequester>,
) -> CreateTopicsResponse {
    let topics: Vec<CreateTopic> = r
        .topics
        .iter()
        .map(|t| CreateTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| ReplicaAssignment {
                    partition: a.partition_index,
                    replicas: a.broker_ids.iter().map(|b| BrokerId(b.0)).collect(),
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|k| (k.name.to_string(), k.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let n = topics.len();
    let names: Vec<TopicName> = r.topics.iter().map(|t| t.name.clone()).collect();
    let (result, throttle_ms) = split(match check_active(c) {
        Ok(()) => {
            c.create_topics_for(topics, r.validate_only, requester)
                .await
        }
        Err(e) => Err(e),
    });
    let results = per_item("CreateTopics", result, n)
        .into_iter()
        .zip(names)
        .map(|(res, name)| {
            let (code, message) = item_error(&res);
            let mut out = CreatableTopicResult::default()
                .with_name(name)
                .with_error_code(code)
                .with_error_message(message.map(str_bytes));
            if version >= 5 {
                out = match &res {
                    Ok(t) => out
                        .with_num_partitions(t.num_partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(Some(topic_configs(&t.configs))),
                    Err(_) => out.with_num_partitions(-1).with_replication_factor(-1),
                };
            }
            if version >= 7 {
                out = out.with_topic_id(res.as_ref().map_or(Uuid::nil(), |t| t.topic_id));
            }
            out
        })
        .collect();
    CreateTopicsResponse::default()
        .with_throttle_time_ms(throttle_ms)
        .with_topics(results)
}

fn topic_configs(configs: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(k.clone()))
                .with_value(Some(str_bytes(v.clone())))
                .with_config_source(DYNAMIC_TOPIC_CONFIG)
        })
        .collect()
}

pub(super) async fn delete_topics(
    c: &QuorumController,
    r: DeleteTopicsRequest,
    version: i16,
    requester: Option<MutationRequester>,
) -> DeleteTopicsResponse {
    let refs: Vec<TopicRef> = if version >= 6 {
        r.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) if t.topic_id.is_nil() => TopicRef::Name(n.0.to_string()),
                _ => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| TopicRef::Name(n.0.to_string()))
            .collect()
    };
    let n = refs.len();
    let (result, throttle_ms) = split(match check_active(c) {
        Ok(()) => c.delete_topics_for(refs.clone(), requester).await,
        Err(e) => Err(e),
    });
    let responses = per_item("DeleteTopics", result, n)
        .into_iter()
        .zip(refs)
        .map(|(res, asked)| {
            let (code, message) = item_error(&res);
            let (name, id) = match (&res, asked) {
                (Ok(d), _) => (Some(d.name.clone()), d.topic_id),
                (Err(_), TopicRef::Name(n)) => (Some(n), Uuid::nil()),
                (Err(_), TopicRef::Id(id)) => (None, id),
            };
            let mut out = DeletableTopicResult::default()
                .with_name(name.map(|n| TopicName(str_bytes(n))))
                .with_error_code(code);
            if version >= 5 {
                out = out.with_error_message(message.map(str_bytes));
            }
            if version >= 6 {
                out = out.with_topic_id(id);
            }
            out
        })
        .collect();
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(throttle_ms)
        .with_responses(responses)
}

pub(super) async fn create_partitions(
    c: &QuorumController,
    r: CreatePartitionsRequest,
    requester: Option<MutationRequester>,
) -> CreatePartitionsResponse {
    let topics: Vec<CreatePartitions> = r
        .topics
        .iter()
        .map(|t| CreatePartitions {
            topic: t.name.0.to_string(),
            count: t.count,
            assignments: t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
                    .collect()
            }),
        })
        .collect();
    let n = topics.len();
    let (result, throttle_ms) = split(match check_active(c) {
        Ok(()) => {
            c.create_partitions_for(topics, r.validate_only, requester)
                .await
        }
        Err(e) => Err(e),
    });
    let results = per_item("CreatePartitions", result, n)
        .into_iter()
        .zip(r.topics.iter())
        .map(|(res, t)| {
            let (code, message) = item_error(&res);
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
        })
        .collect();
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(throttle_ms)
        .with_results(results)
}

/// A resource of a config request: its type id and name as sent, and the
/// domain resource if the type is one Kafka's controller alters.
fn resource(type_id: i8, name: &StrBytes) -> Result<ConfigResource, ControllerError> {
    match ConfigResourceType::from_id(type_id) {
        Some(t @ (ConfigResourceType::Topic | ConfigResourceType::Broker)) => Ok(ConfigResource {
            resource_type: t,
            name: name.to_string(),
        }),
        Some(ConfigResourceType::Group) => Ok(ConfigResource {
            resource_type: ConfigResourceType::Group,
            name: name.to_string(),
        }),
        _ => Err(ControllerError::InvalidRequest(format!(
            "Unexpected resource type {type_id} for resource '{}'",
            &**name
        ))),
    }
}

fn alter_op(op: i8) -> Result<AlterConfigOp, ControllerError> {
    match op {
        0 => Ok(AlterConfigOp::Set),
        1 => Ok(AlterConfigOp::Delete),
        2 => Ok(AlterConfigOp::Append),
        3 => Ok(AlterConfigOp::Subtract),
        _ => Err(ControllerError::InvalidRequest(format!(
            "Unknown config operation {op}"
        ))),
    }
}

/// Runs the items that converted, and merges their results with the
/// conversion errors, in request order.
async fn run_converted<I, F, Fut>(
    what: &'static str,
    c: &QuorumController,
    items: Vec<Result<I, ControllerError>>,
    call: F,
) -> Vec<Result<(), ControllerError>>
where
    F: FnOnce(Vec<I>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Result<(), ControllerError>>, ControllerError>>,
{
    let mut ok = Vec::new();
    let mut slots = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Ok(i) => {
                ok.push(i);
                slots.push(None);
            }
            Err(e) => slots.push(Some(Err(e))),
        }
    }
    let n = ok.len();
    let result = match check_active(c) {
        Ok(()) if n > 0 => call(ok).await,
        Ok(()) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let mut done = per_item(what, result, n).into_iter();
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| done.next().unwrap_or(Ok(()))))
        .collect()
}

pub(super) async fn incremental_alter_configs(
    c: &QuorumController,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let items = r
        .resources
        .iter()
        .map(|res| {
            let resource = resource(res.resource_type, &res.resource_name)?;
            let ops = res
                .configs
                .iter()
                .map(|k| {
                    Ok(ConfigAlteration {
                        name: k.name.to_string(),
                        op: alter_op(k.config_operation)?,
                        value: k.value.as_ref().map(|v| v.to_string()),
                    })
                })
                .collect::<Result<Vec<_>, ControllerError>>()?;
            Ok((resource, ops))
        })
        .collect();
    let validate_only = r.validate_only;
    let results = run_converted("IncrementalAlterConfigs", c, items, |items| {
        c.incremental_alter_configs(items, validate_only)
    })
    .await;
    let responses = results
        .iter()
        .zip(r.resources.iter())
        .map(|(res, req)| {
            let (code, message) = item_error(res);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
                .with_resource_type(req.resource_type)
                .with_resource_name(req.resource_name.clone())
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub(super) async fn alter_configs(
    c: &QuorumController,
    r: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let items = r
        .resources
        .iter()
        .map(|res| {
            let resource = resource(res.resource_type, &res.resource_name)?;
            let keys: ConfigKeys = res
                .configs
                .iter()
                .map(|k| (k.name.to_string(), k.value.as_ref().map(|v| v.to_string())))
                .collect();
            Ok((resource, keys))
        })
        .collect();
    let validate_only = r.validate_only;
    let results = run_converted("AlterConfigs", c, items, |items| {
        c.alter_configs(items, validate_only)
    })
    .await;
    let responses = results
        .iter()
        .zip(r.resources.iter())
        .map(|(res, req)| {
            let (code, message) = item_error(res);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
                .with_resource_type(req.resource_type)
                .with_resource_name(req.resource_name.clone())
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) async fn elect_leaders(
    c: &QuorumController,
    r: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election = match (version, r.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, other) => {
            return ElectLeadersResponse::default().with_error_code(controller_error_code(
                &ControllerError::InvalidRequest(format!("Unknown election type {other}")),
            ))
        }
    };
    let partitions = r.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .flat_map(|tp| tp.partitions.iter().map(|&p| (tp.topic.0.to_string(), p)))
            .collect::<Vec<_>>()
    });
    let result = match check_active(c) {
        Ok(()) => c.elect_leaders(election, partitions.clone()).await,
        Err(e) => Err(e),
    };
    let results = match result {
        Ok(results) => results
            .into_iter()
            .map(|e| (e.topic, e.partition, item_error(&e.result)))
            .collect::<Vec<_>>(),
        Err(e) => {
            log_refusal("ElectLeaders", &e);
            let code = controller_error_code(&e);
            if version >= 1 {
                return ElectLeadersResponse::default().with_error_code(code);
            }
            let msg = e.to_string();
            partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, (code, Some(msg.clone()))))
                .collect()
        }
    };
    // Grouped by topic, in the order topics first appear.
    let mut out: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition, (code, message)) in results {
        let pr = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes));
        match out.iter_mut().find(|r| *r.topic.0 == *topic) {
            Some(r) => r.partition_result.push(pr),
            None => out.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(vec![pr]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(out)
}
