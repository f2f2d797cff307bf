//! CreateTopics, DeleteTopics and CreatePartitions: validation with
//! Kafka's rules and messages, replica placement, and the records
//! (`TopicRecord`, `ConfigRecord`s, `PartitionRecord`s; `RemoveTopicRecord`).
//!
//! Every item of a request is checked against the committed image plus
//! the items before it in the same request; the records of all items that
//! pass are appended as one batch (all of them commit, or none).
//! A new partition's ISR is its leader alone until replication exists.

use std::collections::{BTreeMap, BTreeSet};

use sluice_metadata::placement::{usable_brokers, ReplicaPlacer};
use sluice_metadata::record::{ConfigRecord, PartitionRecord, RemoveTopicRecord, TopicRecord};
use sluice_metadata::{
    BrokerId, ConfigResource, ConfigResourceType, MetadataError, MetadataImage, MetadataRecord,
    PartitionEpoch,
};
use sluice_record::LeaderEpoch;
use uuid::Uuid;

use super::validate::{check_replicas, colliding_topic, first_usable, validate_topic_name};
use super::{
    CreatePartitions, CreateTopic, CreatedTopic, DeletedTopic, OpContext, QuorumController,
    TopicRef,
};
use crate::error::ControllerError;
use crate::quota::mutation::{
    MutationQuota, MutationRequester, PendingThrottle, Throttled, CREATE_PARTITIONS_STRICT_SINCE,
    CREATE_TOPICS_STRICT_SINCE, DELETE_TOPICS_STRICT_SINCE,
};

type ItemResults<T> = Vec<Result<T, ControllerError>>;

impl QuorumController {
    /// CreateTopics. One result per topic, in request order; a name that
    /// appears twice fails both times with INVALID_REQUEST. With
    /// `validate_only` nothing is written and the created topics carry the
    /// nil id.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> Result<ItemResults<CreatedTopic>, ControllerError> {
        Ok(self
            .create_topics_for(topics, validate_only, None)
            .await?
            .value)
    }

    /// [`QuorumController::create_topics`] charged to `requester`'s
    /// controller mutation quota (KIP-599), as Kafka's `ControllerApis`:
    /// each valid topic's partitions, a strict quota refusing a topic
    /// while the group is in debt.
    pub async fn create_topics_for(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        requester: Option<MutationRequester>,
    ) -> Result<Throttled<ItemResults<CreatedTopic>>, ControllerError> {
        let quotas = self.shared.config.mutation_quotas.clone();
        let answer = self
            .submit(move |ctx| {
                let mut quota = requester.as_ref().and_then(|r| {
                    quotas.for_requester(ctx.image.client_quotas(), r, CREATE_TOPICS_STRICT_SINCE)
                });
                let (records, results) = plan_create_topics(ctx, &topics, &mut quota);
                let pending = quota.map(|q| q.pending());
                Ok((
                    if validate_only { Vec::new() } else { records },
                    (results, pending),
                ))
            })
            .await;
        let (mut results, pending) = answer?;
        if validate_only {
            for t in results.iter_mut().flatten() {
                t.topic_id = Uuid::nil();
            }
        }
        Ok(self.throttled(results, pending))
    }

    /// DeleteTopics, by name or id. One result per item, in order.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Result<ItemResults<DeletedTopic>, ControllerError> {
        Ok(self.delete_topics_for(topics, None).await?.value)
    }

    /// [`QuorumController::delete_topics`] charged to `requester`'s
    /// controller mutation quota (each existing topic's partitions).
    pub async fn delete_topics_for(
        &self,
        topics: Vec<TopicRef>,
        requester: Option<MutationRequester>,
    ) -> Result<Throttled<ItemResults<DeletedTopic>>, ControllerError> {
        let quotas = self.shared.config.mutation_quotas.clone();
        let (results, pending) = self
            .submit(move |ctx| {
                let mut quota = requester.as_ref().and_then(|r| {
                    quotas.for_requester(ctx.image.client_quotas(), r, DELETE_TOPICS_STRICT_SINCE)
                });
                let (records, results) =
                    plan_delete_topics(ctx.image, &topics, &mut quota, ctx.now_ms);
                Ok((records, (results, quota.map(|q| q.pending()))))
            })
            .await?;
        Ok(self.throttled(results, pending))
    }

    /// CreatePartitions. One result per topic, in order.
    pub async fn create_partitions(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> Result<ItemResults<()>, ControllerError> {
        Ok(self
            .create_partitions_for(topics, validate_only, None)
            .await?
            .value)
    }

    /// [`QuorumController::create_partitions`] charged to `requester`'s
    /// controller mutation quota (each topic's new partitions).
    pub async fn create_partitions_for(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
        requester: Option<MutationRequester>,
    ) -> Result<Throttled<ItemResults<()>>, ControllerError> {
        let quotas = self.shared.config.mutation_quotas.clone();
        let (results, pending) = self
            .submit(move |ctx| {
                let mut quota = requester.as_ref().and_then(|r| {
                    quotas.for_requester(
                        ctx.image.client_quotas(),
                        r,
                        CREATE_PARTITIONS_STRICT_SINCE,
                    )
                });
                let (records, results) = plan_create_partitions(
                    ctx.image,
                    ctx.config.new_partitions_isr_all_usable,
                    &topics,
                    (&mut quota, ctx.now_ms),
                );
                Ok((
                    if validate_only { Vec::new() } else { records },
                    (results, quota.map(|q| q.pending())),
                ))
            })
            .await?;
        Ok(self.throttled(results, pending))
    }

    /// Kafka's `sendResponseMaybeThrottleWithControllerQuota`: the
    /// request's throttle as of its answer.
    fn throttled<T>(&self, value: T, pending: Option<PendingThrottle>) -> Throttled<T> {
        let throttle_ms = pending.map_or(0, |p| {
            p.settle(
                &self.shared.config.mutation_quotas,
                self.shared.clock.now_ms(),
            )
        });
        Throttled { value, throttle_ms }
    }
}

/// Charges `partitions` to `quota`; a strict quota in debt refuses them.
fn charge(
    quota: &mut Option<MutationQuota<'_>>,
    partitions: i32,
    now_ms: i64,
) -> Result<(), ControllerError> {
    match quota {
        Some(q) => q
            .record(f64::from(partitions.max(0)), now_ms)
            .map_err(|_| ControllerError::ThrottlingQuotaExceeded),
        None => Ok(()),
    }
}

fn duplicates<'a>(names: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    names.filter(|n| !seen.insert(*n)).collect()
}

fn from_placement(e: MetadataError) -> ControllerError {
    match e {
        MetadataError::InvalidReplicationFactor {
            requested,
            available,
        } => ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {requested} time(s): The target replication factor of {requested} cannot be reached because only {available} broker(s) are registered."
        )),
        MetadataError::InvalidPartitionCount(n) => {
            ControllerError::InvalidPartitions(format!("Number of partitions was set to an invalid value {n}."))
        }
        other => ControllerError::Internal(other.to_string()),
    }
}

/// A placement start: random (as Kafka's). Randomness comes from the
/// runtime's RNG, which a simulation seeds so a seed replays exactly.
fn random_start() -> u64 {
    use rand::RngCore;
    crate::raft::runtime::SeededRng.next_u64()
}

/// A topic id not in use (nor nil).
fn new_topic_id(image: &MetadataImage, taken: &BTreeSet<Uuid>) -> Uuid {
    loop {
        let id = sluice_runtime::random_uuid();
        if !id.is_nil() && image.topic_by_id(id).is_none() && !taken.contains(&id) {
            return id;
        }
    }
}

/// A new partition led by `leader` (its first usable replica). Its ISR
/// is, as Kafka's, every usable replica with `isr_all`; else the leader
/// alone (a build whose followers do not replicate yet).
fn partition_record(
    image: &MetadataImage,
    isr_all: bool,
    (topic_id, partition_id): (Uuid, i32),
    replicas: Vec<BrokerId>,
    leader: BrokerId,
) -> MetadataRecord {
    let isr = if isr_all {
        replicas
            .iter()
            .copied()
            .filter(|&b| image.broker(b).is_some_and(|r| r.is_usable()))
            .collect()
    } else {
        vec![leader]
    };
    MetadataRecord::Partition(PartitionRecord {
        partition_id,
        topic_id,
        replicas,
        isr,
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader,
        leader_recovery_state: 0,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        directories: Vec::new(),
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

pub(crate) fn plan_create_topics(
    ctx: &OpContext<'_>,
    topics: &[CreateTopic],
    quota: &mut Option<MutationQuota<'_>>,
) -> (Vec<MetadataRecord>, ItemResults<CreatedTopic>) {
    let dups = duplicates(topics.iter().map(|t| t.name.as_str()));
    let placer = ReplicaPlacer::new(&usable_brokers(ctx.image));
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    let mut created_names: Vec<&str> = Vec::new();
    let mut ids = BTreeSet::new();
    for t in topics {
        if dups.contains(t.name.as_str()) {
            results.push(Err(ControllerError::InvalidRequest(format!(
                "Found multiple entries for topic {}.",
                t.name
            ))));
            continue;
        }
        // The quota is charged after the checks, as Kafka's
        // `ReplicationControlManager.createTopic`: a refused topic costs nothing.
        let planned = plan_one_topic(ctx, &placer, &created_names, t).and_then(|p| {
            charge(quota, p.1.len() as i32, ctx.now_ms)?;
            Ok(p)
        });
        match planned {
            Ok((mut created, recs)) => {
                created.topic_id = new_topic_id(ctx.image, &ids);
                ids.insert(created.topic_id);
                records.push(MetadataRecord::Topic(TopicRecord {
                    name: t.name.clone(),
                    topic_id: created.topic_id,
                }));
                for (k, v) in &created.configs {
                    records.push(MetadataRecord::Config(ConfigRecord {
                        resource_type: ConfigResourceType::Topic.id(),
                        resource_name: t.name.clone(),
                        name: k.clone(),
                        value: Some(v.clone()),
                    }));
                }
                for (p, (replicas, leader)) in recs.into_iter().enumerate() {
                    records.push(partition_record(
                        ctx.image,
                        ctx.config.new_partitions_isr_all_usable,
                        (created.topic_id, p as i32),
                        replicas,
                        leader,
                    ));
                }
                created_names.push(t.name.as_str());
                results.push(Ok(created));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (records, results)
}

/// Partition replica lists with their leaders.
type Layout = Vec<(Vec<BrokerId>, BrokerId)>;

fn plan_one_topic(
    ctx: &OpContext<'_>,
    placer: &ReplicaPlacer,
    created: &[&str],
    t: &CreateTopic,
) -> Result<(CreatedTopic, Layout), ControllerError> {
    validate_topic_name(&t.name)?;
    if ctx.image.topic(&t.name).is_some() || created.contains(&t.name.as_str()) {
        return Err(ControllerError::TopicAlreadyExists(t.name.clone()));
    }
    if let Some(other) = colliding_topic(ctx.image, created.iter().copied(), &t.name) {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {other}",
            t.name
        )));
    }
    let layout = if t.assignments.is_empty() {
        placed_layout(ctx, placer, t)?
    } else {
        assigned_layout(ctx.image, t)?
    };
    let mut configs = BTreeMap::new();
    for (k, v) in &t.configs {
        let Some(v) = v else {
            return Err(ControllerError::InvalidConfig(format!(
                "Null value not supported for topic configs: {k}"
            )));
        };
        if configs.insert(k.clone(), v.clone()).is_some() {
            return Err(ControllerError::InvalidRequest(format!(
                "Duplicate config key {k} for topic {}",
                t.name
            )));
        }
    }
    let resource = ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: t.name.clone(),
    };
    ctx.validator.validate(&resource, &configs)?;
    let created = CreatedTopic {
        name: t.name.clone(),
        topic_id: Uuid::nil(),
        num_partitions: layout.len() as i32,
        replication_factor: layout.first().map_or(0, |(r, _)| r.len() as i16),
        configs,
    };
    Ok((created, layout))
}

fn placed_layout(
    ctx: &OpContext<'_>,
    placer: &ReplicaPlacer,
    t: &CreateTopic,
) -> Result<Layout, ControllerError> {
    let partitions = match t.num_partitions {
        -1 => ctx.config.default_num_partitions,
        n if n <= 0 => {
            return Err(ControllerError::InvalidPartitions(
                "Number of partitions was set to an invalid non-positive value.".into(),
            ))
        }
        n => n,
    };
    let rf = match t.replication_factor {
        -1 => ctx.config.default_replication_factor,
        n if n <= 0 => {
            return Err(ControllerError::InvalidReplicationFactor(
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ))
        }
        n => n,
    };
    let placed = placer
        .place(random_start(), partitions, rf)
        .map_err(from_placement)?;
    Ok(placed
        .into_iter()
        .map(|r| {
            let leader = r[0];
            (r, leader)
        })
        .collect())
}

fn assigned_layout(image: &MetadataImage, t: &CreateTopic) -> Result<Layout, ControllerError> {
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(ControllerError::InvalidRequest(
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
        ));
    }
    let mut by_partition = BTreeMap::new();
    for a in &t.assignments {
        if by_partition.insert(a.partition, &a.replicas).is_some() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes partition {} more than once.",
                a.partition
            )));
        }
    }
    let n = by_partition.len() as i32;
    if by_partition.keys().copied().ne(0..n) {
        return Err(ControllerError::InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    let rf = by_partition[&0].len();
    let mut layout = Vec::with_capacity(by_partition.len());
    for (p, replicas) in by_partition {
        let what = format!("partition {p}");
        check_replicas(image, replicas, &what)?;
        if replicas.len() != rf {
            return Err(ControllerError::InvalidReplicaAssignment(
                "All partitions in the manual partition assignment must have the same number of replicas.".into(),
            ));
        }
        let leader = first_usable(image, replicas, &what)?;
        layout.push((replicas.clone(), leader));
    }
    Ok(layout)
}

pub(crate) fn plan_delete_topics(
    image: &MetadataImage,
    topics: &[TopicRef],
    quota: &mut Option<MutationQuota<'_>>,
    now_ms: i64,
) -> (Vec<MetadataRecord>, ItemResults<DeletedTopic>) {
    let mut removed = BTreeSet::new();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    for t in topics {
        let found = match t {
            TopicRef::Name(name) => image.topic(name).ok_or_else(|| {
                ControllerError::UnknownTopicOrPartition(format!(
                    "This server does not host this topic-partition: {name}"
                ))
            }),
            TopicRef::Id(id) => image
                .topic_by_id(*id)
                .ok_or(ControllerError::UnknownTopicId(*id)),
        };
        let result = found.and_then(|topic| {
            if !removed.insert(topic.id()) {
                return Err(ControllerError::InvalidRequest(format!(
                    "Topic {} is named more than once in the request.",
                    topic.name()
                )));
            }
            if let Err(e) = charge(quota, topic.partitions().len() as i32, now_ms) {
                removed.remove(&topic.id());
                return Err(e);
            }
            records.push(MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: topic.id(),
            }));
            Ok(DeletedTopic {
                name: topic.name().to_owned(),
                topic_id: topic.id(),
            })
        });
        results.push(result);
    }
    (records, results)
}

pub(crate) fn plan_create_partitions(
    image: &MetadataImage,
    isr_all: bool,
    topics: &[CreatePartitions],
    (quota, now_ms): (&mut Option<MutationQuota<'_>>, i64),
) -> (Vec<MetadataRecord>, ItemResults<()>) {
    let dups = duplicates(topics.iter().map(|t| t.topic.as_str()));
    let placer = ReplicaPlacer::new(&usable_brokers(image));
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    for t in topics {
        if dups.contains(t.topic.as_str()) {
            results.push(Err(ControllerError::InvalidRequest(format!(
                "Duplicate topic in request: {}",
                t.topic
            ))));
            continue;
        }
        let planned = plan_new_partitions(image, isr_all, &placer, t).and_then(|recs| {
            let added = t.count
                - image
                    .topic(&t.topic)
                    .map_or(0, |x| x.partitions().len() as i32);
            charge(quota, added, now_ms)?;
            Ok(recs)
        });
        match planned {
            Ok(recs) => {
                records.extend(recs);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (records, results)
}

fn plan_new_partitions(
    image: &MetadataImage,
    isr_all: bool,
    placer: &ReplicaPlacer,
    t: &CreatePartitions,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image.topic(&t.topic).ok_or_else(|| {
        ControllerError::UnknownTopicOrPartition(format!("The topic '{}' does not exist.", t.topic))
    })?;
    let current = topic.partitions().len() as i32;
    if t.count < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "The topic {} currently has {current} partition(s); {} would not be an increase.",
            t.topic, t.count
        )));
    }
    if t.count == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic already has {current} partition(s)."
        )));
    }
    let rf = topic
        .partitions()
        .values()
        .next()
        .map_or(1, |p| p.replicas.len());
    let added = t.count - current;
    let layout: Layout = match &t.assignments {
        None => placer
            .place(random_start(), added, rf as i16)
            .map_err(from_placement)?
            .into_iter()
            .map(|r| {
                let leader = r[0];
                (r, leader)
            })
            .collect(),
        Some(lists) => {
            if lists.len() != added as usize {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    lists.len()
                )));
            }
            let mut layout = Vec::with_capacity(lists.len());
            for (i, replicas) in lists.iter().enumerate() {
                let what = format!("partition {}", current + i as i32);
                check_replicas(image, replicas, &what)?;
                if replicas.len() != rf {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                        replicas.len()
                    )));
                }
                layout.push((replicas.clone(), first_usable(image, replicas, &what)?));
            }
            layout
        }
    };
    Ok(layout
        .into_iter()
        .enumerate()
        .map(|(i, (replicas, leader))| {
            partition_record(
                image,
                isr_all,
                (topic.id(), current + i as i32),
                replicas,
                leader,
            )
        })
        .collect())
}
