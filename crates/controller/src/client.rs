//! [`ControllerClient`]: a broker's one seam to the active controller.
//!
//! Every metadata write of a broker (topics, partitions, configs,
//! producer-id blocks, elections, its own registration and heartbeats,
//! the ISR changes of the partitions it leads)
//! goes through this trait. Each call resolves once the controller has
//! *committed* the change, with the metadata offset the broker's loader
//! must publish before the caller may answer ([`Committed::offset`]).
//!
//! It lives here, beside [`QuorumController`], so that both sides of the
//! seam can implement it without depending on the broker (dependencies
//! point one way: broker → transport → controller). Implementations:
//! - `Arc<QuorumController>` (below): the in-process controller of a node
//!   that is its own controller;
//! - `sluice_transport::RemoteController`: Kafka's protocol over the
//!   controller channel to the active controller of a quorum, which reads
//!   the committed offset from a tagged field the controller listener adds
//!   to its answers.
//!
//! Nothing above the seam can tell them apart.

use std::sync::Arc;

use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResource};
use sluice_record::Offset;

use sluice_auth::acl::{AclBinding, AclBindingFilter};

use crate::controller::{
    AclCreateResults, AclDeleteResults, AlterPartitionReply, AlterPartitionRequest,
    BrokerHeartbeat, BrokerRegistrationRequest, ConfigAlteration, ConfigKeys, CreatePartitions,
    CreateTopic, CreatedTopic, DeletedTopic, ElectionResult, ElectionType, FeatureUpdate,
    HeartbeatReply, OngoingReassignment, ProducerIdsBlock, QuorumController, QuotaAlteration,
    QuotaResults, ReassignPartition, ReassignmentResult, RegisteredBroker, ScramDeletion,
    ScramResults, ScramUpsertion, TopicRef,
};
use crate::error::ControllerError;
use crate::log::BoxFuture;
use crate::quota::mutation::{MutationRequester, Throttled};

/// A controller answer, with the metadata offset that includes it.
#[derive(Debug)]
pub struct Committed<T> {
    pub value: T,
    /// The committed offset the answer is true at: wait until the loader
    /// published it before telling a client.
    pub offset: Offset,
}

/// One result per item of a request, in request order.
pub type Items<T> = Vec<Result<T, ControllerError>>;

/// Result of a whole controller call.
pub type Answer<'a, T> = BoxFuture<'a, Result<Committed<T>, ControllerError>>;

/// The controller operations a broker uses (Kafka's controller APIs, in
/// domain types; see [`QuorumController`] for each).
pub trait ControllerClient: Send + Sync + 'static {
    fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> Answer<'_, Items<CreatedTopic>>;
    fn delete_topics(&self, topics: Vec<TopicRef>) -> Answer<'_, Items<DeletedTopic>>;
    fn create_partitions(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>>;
    /// CreateTopics for a client: the controller charges `requester`'s
    /// controller mutation quota (Kafka's forwarded request, whose envelope
    /// carries the client's principal and header) and answers the
    /// throttle time with the items.
    fn create_topics_for(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<CreatedTopic>>>;
    /// DeleteTopics for a client (see [`ControllerClient::create_topics_for`]).
    fn delete_topics_for(
        &self,
        topics: Vec<TopicRef>,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<DeletedTopic>>>;
    /// CreatePartitions for a client (see [`ControllerClient::create_topics_for`]).
    fn create_partitions_for(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<()>>>;
    fn incremental_alter_configs(
        &self,
        resources: Vec<(ConfigResource, Vec<ConfigAlteration>)>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>>;
    fn alter_configs(
        &self,
        resources: Vec<(ConfigResource, ConfigKeys)>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>>;
    fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Answer<'_, Vec<ElectionResult>>;
    fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        epoch: BrokerEpoch,
    ) -> Answer<'_, ProducerIdsBlock>;
    fn register_broker(&self, req: BrokerRegistrationRequest) -> Answer<'_, RegisteredBroker>;
    fn heartbeat(&self, hb: BrokerHeartbeat) -> Answer<'_, HeartbeatReply>;
    /// AlterPartition: a partition leader's ISR changes (one result per
    /// partition, in request order, each the committed state or why not).
    fn alter_partition(&self, req: AlterPartitionRequest) -> Answer<'_, AlterPartitionReply>;
    /// AlterPartitionReassignments (KIP-455): one result per partition.
    fn alter_partition_reassignments(
        &self,
        partitions: Vec<ReassignPartition>,
        allow_replication_factor_change: bool,
    ) -> Answer<'_, Vec<ReassignmentResult>>;
    /// ListPartitionReassignments: `None` lists every partition.
    fn list_partition_reassignments(
        &self,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Answer<'_, Vec<OngoingReassignment>>;
    /// UpdateFeatures: the whole request commits or is refused with the
    /// first update's error.
    fn update_features(&self, updates: Vec<FeatureUpdate>, validate_only: bool) -> Answer<'_, ()>;
    /// AlterUserScramCredentials: one result per user named.
    fn alter_user_scram_credentials(
        &self,
        upsertions: Vec<ScramUpsertion>,
        deletions: Vec<ScramDeletion>,
    ) -> Answer<'_, ScramResults>;
    /// CreateAcls: one result per binding, in request order.
    fn create_acls(&self, bindings: Vec<AclBinding>) -> Answer<'_, AclCreateResults>;
    /// DeleteAcls: the bindings each filter removed, in request order.
    fn delete_acls(&self, filters: Vec<AclBindingFilter>) -> Answer<'_, AclDeleteResults>;
    /// AlterClientQuotas: one result per distinct entity.
    fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Answer<'_, QuotaResults>;
}

/// The in-process controller: its answers come after commit and after
/// its own image applied the change, so that image's last offset covers
/// the change.
fn committed<T>(
    c: &QuorumController,
    r: Result<T, ControllerError>,
) -> Result<Committed<T>, ControllerError> {
    r.map(|value| Committed {
        value,
        offset: c.image().provenance().last_offset,
    })
}

impl ControllerClient for Arc<QuorumController> {
    fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> Answer<'_, Items<CreatedTopic>> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().create_topics(topics, validate_only).await,
            )
        })
    }
    fn delete_topics(&self, topics: Vec<TopicRef>) -> Answer<'_, Items<DeletedTopic>> {
        Box::pin(async move { committed(self, self.as_ref().delete_topics(topics).await) })
    }
    fn create_partitions(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().create_partitions(topics, validate_only).await,
            )
        })
    }
    fn create_topics_for(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<CreatedTopic>>> {
        Box::pin(async move {
            let r = self
                .as_ref()
                .create_topics_for(topics, validate_only, Some(requester))
                .await;
            committed(self, r)
        })
    }
    fn delete_topics_for(
        &self,
        topics: Vec<TopicRef>,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<DeletedTopic>>> {
        Box::pin(async move {
            let r = self
                .as_ref()
                .delete_topics_for(topics, Some(requester))
                .await;
            committed(self, r)
        })
    }
    fn create_partitions_for(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<()>>> {
        Box::pin(async move {
            let r = self
                .as_ref()
                .create_partitions_for(topics, validate_only, Some(requester))
                .await;
            committed(self, r)
        })
    }
    fn incremental_alter_configs(
        &self,
        resources: Vec<(ConfigResource, Vec<ConfigAlteration>)>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref()
                    .incremental_alter_configs(resources, validate_only)
                    .await,
            )
        })
    }
    fn alter_configs(
        &self,
        resources: Vec<(ConfigResource, ConfigKeys)>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().alter_configs(resources, validate_only).await,
            )
        })
    }
    fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Answer<'_, Vec<ElectionResult>> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().elect_leaders(election, partitions).await,
            )
        })
    }
    fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        epoch: BrokerEpoch,
    ) -> Answer<'_, ProducerIdsBlock> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().allocate_producer_ids(broker, epoch).await,
            )
        })
    }
    fn alter_user_scram_credentials(
        &self,
        upsertions: Vec<ScramUpsertion>,
        deletions: Vec<ScramDeletion>,
    ) -> Answer<'_, ScramResults> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref()
                    .alter_user_scram_credentials(upsertions, deletions)
                    .await,
            )
        })
    }
    fn create_acls(&self, bindings: Vec<AclBinding>) -> Answer<'_, AclCreateResults> {
        Box::pin(async move { committed(self, self.as_ref().create_acls(bindings).await) })
    }
    fn delete_acls(&self, filters: Vec<AclBindingFilter>) -> Answer<'_, AclDeleteResults> {
        Box::pin(async move { committed(self, self.as_ref().delete_acls(filters).await) })
    }
    fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Answer<'_, QuotaResults> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref()
                    .alter_client_quotas(alterations, validate_only)
                    .await,
            )
        })
    }
    fn register_broker(&self, req: BrokerRegistrationRequest) -> Answer<'_, RegisteredBroker> {
        Box::pin(async move { committed(self, self.as_ref().register_broker(req).await) })
    }
    fn heartbeat(&self, hb: BrokerHeartbeat) -> Answer<'_, HeartbeatReply> {
        Box::pin(async move { committed(self, self.as_ref().heartbeat(hb).await) })
    }
    fn alter_partition(&self, req: AlterPartitionRequest) -> Answer<'_, AlterPartitionReply> {
        Box::pin(async move { committed(self, self.as_ref().alter_partition(req).await) })
    }
    fn alter_partition_reassignments(
        &self,
        partitions: Vec<ReassignPartition>,
        allow_replication_factor_change: bool,
    ) -> Answer<'_, Vec<ReassignmentResult>> {
        Box::pin(async move {
            let r = self
                .as_ref()
                .alter_partition_reassignments(partitions, allow_replication_factor_change)
                .await;
            committed(self, r)
        })
    }
    fn list_partition_reassignments(
        &self,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Answer<'_, Vec<OngoingReassignment>> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().list_partition_reassignments(topics).await,
            )
        })
    }
    fn update_features(&self, updates: Vec<FeatureUpdate>, validate_only: bool) -> Answer<'_, ()> {
        Box::pin(async move {
            committed(
                self,
                self.as_ref().update_features(updates, validate_only).await,
            )
        })
    }
}
