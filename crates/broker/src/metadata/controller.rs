//! `ControllerChannel`: the one way handlers change cluster metadata.
//!
//! Each operation goes to the controller through the [`ControllerClient`]
//! seam (today the in-process `QuorumController` of this node; later the
//! active controller of a quorum) and returns only once the controller
//! committed it *and* this broker's loader has published the committed
//! offset, so a CreateTopics answer is followed by Metadata that shows the
//! topic and by produce requests that find its partitions online.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_controller::client::Committed;
use sluice_controller::{
    ConfigAlteration, ConfigKeys, ControllerError, CreatePartitions, CreateTopic, CreatedTopic,
    DeletedTopic, ElectionResult, ElectionType, FeatureUpdate, MutationRequester,
    OngoingReassignment, ReassignPartition, ReassignmentResult, Throttled, TopicRef,
};
use sluice_metadata::{BrokerId, ConfigResource};
use sluice_record::Offset;

use super::client::ControllerClient;
use super::image_cache::ImageCache;
use super::names::validate_topic_name;
use super::producer_ids::ProducerIds;
use super::publishers::PartitionsPublisher;
use super::{MetadataError, TopicMetadata};
use crate::config::BrokerConfig;

/// A config change of one resource, as the controller applies it to the
/// committed overrides.
#[derive(Clone, Debug)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: SET, DELETE, APPEND, SUBTRACT in order.
    Incremental(Vec<ConfigAlteration>),
    /// The legacy AlterConfigs: these keys become the whole set.
    Replace(ConfigKeys),
}

/// Metadata changes, answered after they are committed and published.
pub struct ControllerChannel {
    config: Arc<BrokerConfig>,
    client: Arc<dyn ControllerClient>,
    cache: Arc<ImageCache>,
    partitions: Arc<PartitionsPublisher>,
    producer_ids: ProducerIds,
}

impl std::fmt::Debug for ControllerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerChannel")
            .field("cache", &self.cache)
            .finish()
    }
}

fn one<T>(mut items: Vec<Result<T, ControllerError>>) -> Result<T, MetadataError> {
    match items.pop() {
        Some(r) if items.is_empty() => r.map_err(MetadataError::Controller),
        _ => Err(MetadataError::Controller(ControllerError::Internal(
            "the controller answered a different number of items".into(),
        ))),
    }
}

impl ControllerChannel {
    pub fn new(
        config: Arc<BrokerConfig>,
        client: Arc<dyn ControllerClient>,
        cache: Arc<ImageCache>,
        partitions: Arc<PartitionsPublisher>,
        broker_epoch: Arc<std::sync::atomic::AtomicI64>,
    ) -> Self {
        let producer_ids = ProducerIds::new(
            BrokerId(config.node_id),
            broker_epoch,
            client.clone(),
            cache.clone(),
        );
        ControllerChannel {
            config,
            client,
            cache,
            partitions,
            producer_ids,
        }
    }

    /// Producer ids for InitProducerId (blocks from the controller).
    pub fn producer_ids(&self) -> &ProducerIds {
        &self.producer_ids
    }

    /// The controller seam (lifecycle, producer ids).
    pub fn client(&self) -> &Arc<dyn ControllerClient> {
        &self.client
    }

    /// Waits until the change at `offset` is published.
    async fn published(&self, offset: Offset) -> Result<(), MetadataError> {
        self.cache
            .wait_for(offset)
            .await
            .map(|_| ())
            .map_err(|e| MetadataError::LoaderStopped(e.to_string()))
    }

    /// The first partition of `topic` whose log could not be created.
    fn log_failure(&self, topic: &TopicMetadata) -> Option<MetadataError> {
        topic.topic_partitions().find_map(|tp| {
            self.partitions
                .failure(&tp)
                .map(|f| MetadataError::LogUnavailable {
                    partition: tp,
                    message: f.message,
                    no_space: f.no_space,
                })
        })
    }

    /// CreateTopics: one result per topic, in order. Created topics are
    /// published (logs open) when this returns. A topic whose logs cannot
    /// be created on a full disk is taken back rather than published half
    /// made; on other log errors it stays (the next start retries its
    /// logs) and the error is returned.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, MetadataError>>, MetadataError> {
        let answer = self.client.create_topics(topics, validate_only).await?;
        self.created(answer.offset, answer.value, validate_only)
            .await
    }

    /// [`ControllerChannel::create_topics`] for a client: the controller
    /// charges its controller mutation quota and answers its throttle.
    pub async fn create_topics_for(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Result<Throttled<Vec<Result<CreatedTopic, MetadataError>>>, MetadataError> {
        let answer = self
            .client
            .create_topics_for(topics, validate_only, requester)
            .await?;
        let throttle_ms = answer.value.throttle_ms;
        let value = self
            .created(answer.offset, answer.value.value, validate_only)
            .await?;
        Ok(Throttled { value, throttle_ms })
    }

    /// The controller's CreateTopics answer once published here.
    async fn created(
        &self,
        offset: Offset,
        answers: Vec<Result<CreatedTopic, ControllerError>>,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, MetadataError>>, MetadataError> {
        self.published(offset).await?;
        let mut out = Vec::with_capacity(answers.len());
        for r in answers {
            let r = match r {
                Err(e) => Err(MetadataError::Controller(e)),
                Ok(t) if validate_only => Ok(t),
                Ok(t) => match self.cache.topic(&t.name).and_then(|m| self.log_failure(&m)) {
                    None => Ok(t),
                    Some(e) if e.is_no_space() => {
                        self.take_back(&t).await;
                        Err(e)
                    }
                    Some(e) => Err(e),
                },
            };
            out.push(r);
        }
        Ok(out)
    }

    /// Deletes a topic created a moment ago whose logs do not fit the disk.
    async fn take_back(&self, t: &CreatedTopic) {
        match self
            .client
            .delete_topics(vec![TopicRef::Id(t.topic_id)])
            .await
        {
            Ok(answer) => {
                let _ = self.published(answer.offset).await;
                tracing::warn!(topic = %t.name, "disk full: topic not created");
            }
            Err(e) => {
                tracing::warn!(topic = %t.name, error = %e, "cannot take back a partly created topic");
            }
        }
    }

    /// Creates one topic (`partitions` -1 = `num.partitions`, replication
    /// factor -1 = the default) and returns it as published.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        let topic = CreateTopic {
            num_partitions: partitions,
            replication_factor,
            configs: configs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            ..CreateTopic::named(name)
        };
        let answers = self.create_topics(vec![topic], false).await?;
        self.one_created(answers)
    }

    /// The one topic of a CreateTopics answer, as published.
    fn one_created(
        &self,
        mut answers: Vec<Result<CreatedTopic, MetadataError>>,
    ) -> Result<TopicMetadata, MetadataError> {
        let created = match answers.pop() {
            Some(r) => r?,
            None => {
                return Err(MetadataError::Controller(ControllerError::Internal(
                    "the controller answered no topic".into(),
                )))
            }
        };
        self.cache
            .topic(&created.name)
            .ok_or_else(|| MetadataError::UnknownTopic(created.name.clone()))
    }

    /// Creates `name` with the broker defaults if it does not exist yet
    /// (auto-creation); returns the existing topic otherwise.
    pub async fn auto_create_topic(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        self.auto_create_topic_for(name, None).await
    }

    /// [`ControllerChannel::auto_create_topic`] for a client: Kafka's
    /// broker forwards the creation as its newest CreateTopics in an
    /// envelope with the client's principal and client id, so the
    /// controller charges that client's mutation quota, strictly (a
    /// refusal is THROTTLING_QUOTA_EXCEEDED; the throttle is not the
    /// Metadata answer's).
    pub async fn auto_create_topic_for(
        &self,
        name: &str,
        requester: Option<MutationRequester>,
    ) -> Result<TopicMetadata, MetadataError> {
        validate_topic_name(name)?;
        if let Some(t) = self.cache.topic(name) {
            return Ok(t);
        }
        let created = match requester {
            None => self.create_topic(name, -1, -1, BTreeMap::new()).await,
            Some(r) => {
                let topic = CreateTopic {
                    num_partitions: -1,
                    replication_factor: -1,
                    ..CreateTopic::named(name)
                };
                match self.create_topics_for(vec![topic], false, r).await {
                    Ok(answer) => self.one_created(answer.value),
                    Err(e) => Err(e),
                }
            }
        };
        match created {
            Err(MetadataError::Controller(ControllerError::TopicAlreadyExists(_))) => self
                .cache
                .topic(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.into())),
            other => other,
        }
    }

    /// Deletes a topic (by name or id); its logs and committed offsets go
    /// when the change is published.
    pub async fn delete_topic(&self, target: TopicRef) -> Result<DeletedTopic, MetadataError> {
        self.delete_topic_as(target, None).await.0
    }

    /// [`ControllerChannel::delete_topic`] for a client (its controller
    /// mutation quota), with the throttle the controller answered.
    pub async fn delete_topic_for(
        &self,
        target: TopicRef,
        requester: MutationRequester,
    ) -> (Result<DeletedTopic, MetadataError>, i32) {
        self.delete_topic_as(target, Some(requester)).await
    }

    async fn delete_topic_as(
        &self,
        target: TopicRef,
        requester: Option<MutationRequester>,
    ) -> (Result<DeletedTopic, MetadataError>, i32) {
        if !self.config.delete_topic_enable {
            return (Err(MetadataError::DeletionDisabled), 0);
        }
        let answer = match requester {
            None => self
                .client
                .delete_topics(vec![target])
                .await
                .map(|a| Committed {
                    value: Throttled::none(a.value),
                    offset: a.offset,
                }),
            Some(r) => self.client.delete_topics_for(vec![target], r).await,
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return (Err(e.into()), 0),
        };
        let throttle_ms = answer.value.throttle_ms;
        if let Err(e) = self.published(answer.offset).await {
            return (Err(e), throttle_ms);
        }
        (one(answer.value.value), throttle_ms)
    }

    /// Grows a topic to `count` partitions (`assignments`: replica lists
    /// of the new partitions, or `None` to place them).
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let req = CreatePartitions {
            topic: name.to_string(),
            count,
            assignments,
        };
        let answer = self
            .client
            .create_partitions(vec![req], validate_only)
            .await?;
        self.partitions_created(name, answer.offset, answer.value, validate_only)
            .await
    }

    /// [`ControllerChannel::create_partitions`] for a client (its
    /// controller mutation quota), with the throttle the controller answered.
    pub async fn create_partitions_for(
        &self,
        req: CreatePartitions,
        validate_only: bool,
        requester: MutationRequester,
    ) -> (Result<(), MetadataError>, i32) {
        let name = req.topic.clone();
        let answer = match self
            .client
            .create_partitions_for(vec![req], validate_only, requester)
            .await
        {
            Ok(a) => a,
            Err(e) => return (Err(e.into()), 0),
        };
        let throttle_ms = answer.value.throttle_ms;
        let r = self
            .partitions_created(&name, answer.offset, answer.value.value, validate_only)
            .await;
        (r, throttle_ms)
    }

    /// The controller's CreatePartitions answer for `name` once published.
    async fn partitions_created(
        &self,
        name: &str,
        offset: Offset,
        answers: Vec<Result<(), ControllerError>>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        self.published(offset).await?;
        one(answers)?;
        if validate_only {
            return Ok(());
        }
        match self.cache.topic(name).and_then(|t| self.log_failure(&t)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Changes one resource's config overrides (TOPIC, BROKER or GROUP);
    /// publishers apply them to logs, the broker's dynamic configs and the
    /// group coordinator before this returns.
    pub async fn alter_config(
        &self,
        resource: ConfigResource,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let answer = match change {
            ConfigChange::Incremental(ops) => {
                self.client
                    .incremental_alter_configs(vec![(resource, ops)], validate_only)
                    .await?
            }
            ConfigChange::Replace(keys) => {
                self.client
                    .alter_configs(vec![(resource, keys)], validate_only)
                    .await?
            }
        };
        self.published(answer.offset).await?;
        one(answer.value)
    }

    /// UpdateFeatures: committed and published when this returns.
    pub async fn update_features(
        &self,
        updates: Vec<FeatureUpdate>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let answer = self.client.update_features(updates, validate_only).await?;
        self.published(answer.offset).await
    }

    /// ElectLeaders.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<ElectionResult>, MetadataError> {
        let answer = self.client.elect_leaders(election, partitions).await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }

    /// AlterPartitionReassignments (KIP-455): one result per partition, in
    /// order; the changes are published (new replicas' logs created,
    /// fetchers started) when this returns.
    pub async fn alter_partition_reassignments(
        &self,
        partitions: Vec<ReassignPartition>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<ReassignmentResult>, MetadataError> {
        let answer = self
            .client
            .alter_partition_reassignments(partitions, allow_replication_factor_change)
            .await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }

    /// AlterUserScramCredentials: one result per user named; the changes
    /// are in this broker's image when this returns.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: Vec<sluice_controller::ScramUpsertion>,
        deletions: Vec<sluice_controller::ScramDeletion>,
    ) -> Result<sluice_controller::ScramResults, MetadataError> {
        let answer = self
            .client
            .alter_user_scram_credentials(upsertions, deletions)
            .await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }

    /// CreateAcls: one result per binding, once published here.
    pub async fn create_acls(
        &self,
        bindings: Vec<sluice_auth::acl::AclBinding>,
    ) -> Result<sluice_controller::AclCreateResults, MetadataError> {
        let answer = self.client.create_acls(bindings).await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }

    /// DeleteAcls: the bindings each filter removed, once published here.
    pub async fn delete_acls(
        &self,
        filters: Vec<sluice_auth::acl::AclBindingFilter>,
    ) -> Result<sluice_controller::AclDeleteResults, MetadataError> {
        let answer = self.client.delete_acls(filters).await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }

    /// AlterClientQuotas: one result per entity; the changes are in this
    /// broker's image when this returns.
    pub async fn alter_client_quotas(
        &self,
        alterations: Vec<sluice_controller::QuotaAlteration>,
        validate_only: bool,
    ) -> Result<sluice_controller::QuotaResults, MetadataError> {
        let answer = self
            .client
            .alter_client_quotas(alterations, validate_only)
            .await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }

    /// ListPartitionReassignments (`None`: every partition).
    pub async fn list_partition_reassignments(
        &self,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<OngoingReassignment>, MetadataError> {
        let answer = self.client.list_partition_reassignments(topics).await?;
        self.published(answer.offset).await?;
        Ok(answer.value)
    }
}
