//! Metadata: the registered brokers (this one at its advertised listener),
//! this node as the controller, and the topics with their ids and
//! partitions as the metadata image registers them (leader, leader epoch,
//! replicas, ISR). Unknown topics are
//! created when both the broker (`auto.create.topics.enable`) and the
//! request (`allow_auto_topic_creation`, v4+) allow it; as in Kafka 4.1, the
//! request that triggers the creation is answered UNKNOWN_TOPIC_OR_PARTITION
//! with no partitions and the topic appears on the next request (clients
//! retry on that error; some tests rely on the empty first answer).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use std::sync::Arc;

use sluice_metadata::{MetadataImage, TopicImage};

use super::controller_mutation as mutation;
use crate::context::BrokerContext;
use crate::metadata::is_internal_topic;
use crate::metadata::MetadataError;
use sluice_controller::{ControllerError, MutationRequester};

/// Kafka's bit field of the operations a client may perform on a topic when
/// no authorizer is configured (READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS).
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// The same for the cluster (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE).
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// "Not requested" in the authorized-operations fields.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// [`handle_on`] the listener this broker advertises first, for the
/// anonymous principal.
pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: MetadataRequest,
) -> MetadataResponse {
    let anonymous = sluice_auth::KafkaPrincipal::anonymous();
    handle_on(
        ctx,
        super::first_advertised(ctx),
        anonymous.name(),
        header,
        req,
    )
    .await
}

/// [`handle`] for a request that came in on `listener` from `principal`:
/// brokers are returned at their endpoint of that listener name, as Kafka
/// does; topics auto-created count against the principal's and client's
/// controller mutation quota.
pub async fn handle_on(
    ctx: &BrokerContext,
    listener: &str,
    principal: &str,
    header: &RequestHeader,
    req: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    let node_id = ctx.config.node_id;
    let image = ctx.image.image();
    let allow_auto_create =
        ctx.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
    let include_topic_ops = version >= 8 && req.include_topic_authorized_operations;

    let all_topics = match &req.topics {
        None => true,
        Some(list) => version == 0 && list.is_empty(),
    };

    let mut topics = Vec::new();
    // Auto-creation is charged to the client's controller mutation quota.
    let requester = mutation::requester_of(principal, header, mutation::AUTO_CREATION_VERSION);
    if all_topics {
        for t in image
            .topic_names()
            .values()
            .filter_map(|id| image.topic_by_id(*id))
        {
            topics.push(topic_response(t, include_topic_ops));
        }
    } else {
        for requested in req.topics.iter().flatten() {
            // As Kafka: a non-zero topic id wins and the name is ignored (the
            // Java client sends name "" when it asks by id).
            let by_id = !requested.topic_id.is_nil();
            let resp = match &requested.name {
                Some(name) if !by_id => {
                    by_name(ctx, &image, name.0.as_str(), allow_auto_create, &requester).await
                }
                _ => match image.topic_by_id(requested.topic_id) {
                    Some(t) => Ok(t.clone()),
                    None => Err((
                        ResponseError::UnknownTopicId.code(),
                        None,
                        requested.topic_id,
                    )),
                },
            };
            topics.push(match resp {
                Ok(t) => topic_response(&t, include_topic_ops),
                Err((code, name, id)) => MetadataResponseTopic::default()
                    .with_error_code(code)
                    .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
                    .with_topic_id(id)
                    .with_topic_authorized_operations(if include_topic_ops {
                        TOPIC_OPERATIONS
                    } else {
                        OPERATIONS_OMITTED
                    }),
            });
        }
    }

    // Every registered, unfenced broker at its endpoint of the listener
    // the request came in on (clients connect through one listener name).
    let brokers = image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let l = b.listeners.iter().find(|l| l.name == listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id.0))
                    .with_host(StrBytes::from_string(l.host.clone()))
                    .with_port(i32::from(l.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();

    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(ctx.metadata.cluster_id())))
        .with_controller_id(BrokerId(node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(
            if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
                CLUSTER_OPERATIONS
            } else {
                OPERATIONS_OMITTED
            },
        )
}

type TopicError = (i16, Option<String>, Uuid);

async fn by_name(
    ctx: &BrokerContext,
    image: &MetadataImage,
    name: &str,
    allow_auto_create: bool,
    requester: &MutationRequester,
) -> Result<Arc<TopicImage>, TopicError> {
    if let Some(t) = image.topic(name) {
        return Ok(t.clone());
    }
    let fail = |code: i16| Err((code, Some(name.to_string()), Uuid::nil()));
    if crate::metadata::validate_topic_name(name).is_err() {
        return fail(ResponseError::InvalidTopicException.code());
    }
    if !allow_auto_create {
        return fail(ResponseError::UnknownTopicOrPartition.code());
    }
    // Kafka's controller refuses the forwarded creation while the client's
    // mutation quota is in debt; the broker ignores that answer, so the
    // client sees the same UNKNOWN_TOPIC_OR_PARTITION and retries later.
    match ctx
        .controller
        .auto_create_topic_for(name, Some(requester.clone()))
        .await
    {
        Err(MetadataError::Controller(ControllerError::ThrottlingQuotaExceeded)) => {
            tracing::debug!(
                topic = name,
                "auto topic creation refused by the mutation quota"
            );
            fail(ResponseError::UnknownTopicOrPartition.code())
        }
        Ok(t) => {
            tracing::info!(topic = %t.name, partitions = t.partitions, "auto-created topic");
            // Created (committed) now, but answered as Kafka answers the
            // triggering request: unknown, no partitions, no id.
            fail(ResponseError::UnknownTopicOrPartition.code())
        }
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto topic creation failed");
            fail(e.kafka_error_code())
        }
    }
}

fn topic_response(t: &TopicImage, include_ops: bool) -> MetadataResponseTopic {
    let ids = |list: &[sluice_metadata::BrokerId]| -> Vec<BrokerId> {
        list.iter().map(|b| BrokerId(b.0)).collect()
    };
    let partitions = t
        .partitions()
        .iter()
        .map(|(&p, reg)| {
            MetadataResponsePartition::default()
                .with_error_code(if reg.has_leader() {
                    0
                } else {
                    ResponseError::LeaderNotAvailable.code()
                })
                .with_partition_index(p)
                .with_leader_id(BrokerId(reg.leader.0))
                .with_leader_epoch(reg.leader_epoch.0)
                .with_replica_nodes(ids(&reg.replicas))
                .with_isr_nodes(ids(&reg.isr))
                .with_offline_replicas(Vec::new())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(StrBytes::from_string(t.name().to_string()))))
        .with_topic_id(t.id())
        .with_is_internal(is_internal_topic(t.name()))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_ops {
            TOPIC_OPERATIONS
        } else {
            OPERATIONS_OMITTED
        })
}
