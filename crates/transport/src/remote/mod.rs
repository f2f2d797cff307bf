//! [`RemoteController`]: the broker's [`ControllerClient`] when the active
//! controller is another node (Kafka's `ForwardingManager` plus the
//! broker-to-controller channel, as one client).
//!
//! Each operation becomes the Kafka request the controller listener serves
//! (`server/`), sent over the [`ControllerChannel`] (which finds the active
//! controller among `controller.quorum.voters` and retries NOT_CONTROLLER
//! on the next voter until the call's timeout). Its answer comes back in
//! domain types, one result per item in request order, the Kafka error
//! codes turned back into [`ControllerError`] by
//! [`controller_error_from_code`] with the controller's message kept
//! (BrokerRegistration, BrokerHeartbeat, AllocateProducerIds,
//! AlterPartition and ElectLeaders' top level have no message field: their errors are
//! rebuilt from the request, and STALE_BROKER_EPOCH's current epoch is -1).
//!
//! **The committed offset.** [`Committed::offset`] is read from the
//! answer's tagged field
//! [`COMMITTED_OFFSET_TAG`](crate::committed::COMMITTED_OFFSET_TAG), which
//! a Sluice controller adds to every answer of these APIs. An answer
//! without it, or with a field that is not 8 bytes or below -1, is refused
//! with [`ControllerError::Internal`] (UNKNOWN_SERVER_ERROR), never taken
//! as "do not wait": the broker answers its client only once its own
//! loader published the change, and without the offset it cannot keep that
//! promise. Such an answer comes only from a controller that is not Sluice
//! (whose metadata quorum a Sluice broker cannot join anyway) or from a
//! bug, so it fails loudly; the error says the change may have been
//! applied. (An offset above the truth cannot be caught here: the broker
//! then waits until its loader reaches it.)
//!
//! Failures of the channel: no active controller within the timeout is
//! `Log(Uncertain)` (REQUEST_TIMED_OUT: an attempt may have been applied,
//! as Kafka's forwarding broker answers), a closed channel is
//! `Log(Shutdown)`, a request the controller cannot take (no common
//! version) is the error of its code.

mod convert;
mod isr;
mod reassign;
mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_controller::client::{Answer, Committed, ControllerClient, Items};
use sluice_controller::{
    AlterPartitionReply, AlterPartitionRequest, BrokerHeartbeat,
    BrokerRegistrationRequest as Registration, ConfigAlteration, ConfigKeys, ControllerError,
    CreatePartitions, CreateTopic, CreatedTopic, DeletedTopic, ElectionResult, ElectionType,
    FeatureUpdate, HeartbeatReply, LogError, MutationRequester, OngoingReassignment,
    ProducerIdsBlock, QuotaAlteration, QuotaResults, ReassignPartition, ReassignmentResult,
    RegisteredBroker, ScramDeletion, ScramResults, ScramUpsertion, Throttled, TopicRef,
};
use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResource};
use sluice_protocol::kafka_protocol;

use crate::channel::{ControllerApi, ControllerChannel};
use crate::codes::controller_error_from_code;
use crate::error::TransportError;
use topics::unthrottled;

/// How long one operation may take, retries on other voters included,
/// unless [`RemoteController::with_timeout`] says otherwise (Kafka's
/// `request.timeout.ms` default, the budget a forwarded request has).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one heartbeat may take, retries included, unless
/// [`RemoteController::with_heartbeat_timeout`] says otherwise: half of
/// Kafka's default `broker.session.timeout.ms`, as Kafka's heartbeat
/// channel has (KAFKA-14392).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(4500);

/// The [`ControllerClient`] of a broker whose active controller is remote
/// (see the module docs). Cheap to share behind an `Arc`.
pub struct RemoteController {
    channel: Arc<ControllerChannel>,
    cluster_id: String,
    timeout: Duration,
    heartbeat_timeout: Duration,
}

impl RemoteController {
    /// A client over `channel`; `cluster_id` is this broker's
    /// (`meta.properties`), sent with its registration.
    pub fn new(channel: Arc<ControllerChannel>, cluster_id: impl Into<String>) -> RemoteController {
        RemoteController {
            channel,
            cluster_id: cluster_id.into(),
            timeout: DEFAULT_TIMEOUT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }

    /// The limit of one heartbeat, retries included: a broker passes half
    /// its `broker.session.timeout.ms`. A heartbeat answered later could
    /// not keep the session anyway; the channel gives up on the voter it
    /// waited for (moving on to the next) and the broker's next heartbeat
    /// may reach a controller elected meanwhile, where a heartbeat waited
    /// for as long as an admin request could sit on a voter that no
    /// longer answers, its broker fenced meanwhile.
    pub fn with_heartbeat_timeout(mut self, timeout: Duration) -> RemoteController {
        self.heartbeat_timeout = timeout;
        self
    }

    /// The limit of one operation, retries included.
    pub fn with_timeout(mut self, timeout: Duration) -> RemoteController {
        self.timeout = timeout;
        self
    }

    /// The channel the client sends on (to point it at a known leader).
    pub fn channel(&self) -> &Arc<ControllerChannel> {
        &self.channel
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Sends `req` and reads the answer's committed offset.
    async fn send<R>(&self, req: &R) -> Result<Committed<R::Response>, ControllerError>
    where
        R: ControllerApi,
        R::Response: Tagged + Send + 'static,
    {
        self.send_within(req, self.timeout).await
    }

    /// [`RemoteController::send`] within `timeout`.
    async fn send_within<R>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<Committed<R::Response>, ControllerError>
    where
        R: ControllerApi,
        R::Response: Tagged + Send + 'static,
    {
        let resp = self
            .channel
            .send(req, timeout)
            .await
            .map_err(channel_error)?;
        let offset = crate::committed::read(resp.tagged()).map_err(|e| {
            ControllerError::Internal(format!(
                "{e}; the controller's answer cannot be waited for (the change may have been applied)"
            ))
        })?;
        Ok(Committed {
            value: resp,
            offset,
        })
    }
}

/// A channel failure as the caller's error (see the module docs).
fn channel_error(e: TransportError) -> ControllerError {
    match e {
        TransportError::ControllerUnavailable { .. } => {
            tracing::debug!(error = %e, "no active controller answered");
            ControllerError::Log(LogError::Uncertain)
        }
        TransportError::Shutdown => ControllerError::Log(LogError::Shutdown),
        TransportError::Rejected { code, message } => {
            controller_error_from_code(code, Some(&message), &Default::default())
                .unwrap_or(ControllerError::Internal(message))
        }
        other => ControllerError::Internal(other.to_string()),
    }
}

/// One result per config resource asked, in request order, from the
/// (name, error code, message) of each answered resource.
fn config_items<'a, K>(
    what: &str,
    answered: impl ExactSizeIterator<Item = (&'a StrBytes, i16, Option<&'a str>)>,
    asked: &[(ConfigResource, K)],
) -> Result<Items<()>, ControllerError> {
    if answered.len() != asked.len() {
        return Err(count_mismatch(what, answered.len(), asked.len()));
    }
    answered
        .zip(asked)
        .map(|((name, code, message), (resource, _))| {
            convert::item(what, name, &resource.name, code, message)
        })
        .collect()
}

/// An answer whose item count is not the request's.
fn count_mismatch(what: &str, got: usize, want: usize) -> ControllerError {
    ControllerError::Internal(format!(
        "{what}: the controller answered {got} items for {want}"
    ))
}

/// Responses with tagged fields (the answers of the broker's APIs).
pub(crate) trait Tagged {
    fn tagged(&self) -> &BTreeMap<i32, Bytes>;
}

macro_rules! tagged {
    ($($resp:ty),*) => {$(
        impl Tagged for $resp {
            fn tagged(&self) -> &BTreeMap<i32, Bytes> {
                &self.unknown_tagged_fields
            }
        }
    )*};
}
tagged!(
    CreateTopicsResponse,
    DeleteTopicsResponse,
    CreatePartitionsResponse,
    IncrementalAlterConfigsResponse,
    AlterConfigsResponse,
    ElectLeadersResponse,
    AllocateProducerIdsResponse,
    BrokerRegistrationResponse,
    BrokerHeartbeatResponse,
    AlterPartitionResponse,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
    UpdateFeaturesResponse,
    AlterUserScramCredentialsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    AlterClientQuotasResponse
);

impl ControllerClient for RemoteController {
    fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> Answer<'_, Items<CreatedTopic>> {
        Box::pin(async move {
            let answer = self
                .send_create_topics(&topics, validate_only, None)
                .await?;
            Ok(unthrottled(answer))
        })
    }

    fn delete_topics(&self, topics: Vec<TopicRef>) -> Answer<'_, Items<DeletedTopic>> {
        Box::pin(async move { Ok(unthrottled(self.send_delete_topics(&topics, None).await?)) })
    }

    fn create_partitions(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>> {
        Box::pin(async move {
            let answer = self
                .send_create_partitions(&topics, validate_only, None)
                .await?;
            Ok(unthrottled(answer))
        })
    }

    fn create_topics_for(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<CreatedTopic>>> {
        Box::pin(async move {
            self.send_create_topics(&topics, validate_only, Some(&requester))
                .await
        })
    }

    fn delete_topics_for(
        &self,
        topics: Vec<TopicRef>,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<DeletedTopic>>> {
        Box::pin(async move { self.send_delete_topics(&topics, Some(&requester)).await })
    }

    fn create_partitions_for(
        &self,
        topics: Vec<CreatePartitions>,
        validate_only: bool,
        requester: MutationRequester,
    ) -> Answer<'_, Throttled<Items<()>>> {
        Box::pin(async move {
            self.send_create_partitions(&topics, validate_only, Some(&requester))
                .await
        })
    }

    fn incremental_alter_configs(
        &self,
        resources: Vec<(ConfigResource, Vec<ConfigAlteration>)>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>> {
        Box::pin(async move {
            let req = convert::incremental_alter_configs(&resources, validate_only);
            let answer = self.send(&req).await?;
            let answered = answer
                .value
                .responses
                .iter()
                .map(|r| (&r.resource_name, r.error_code, r.error_message.as_deref()));
            let value = config_items("IncrementalAlterConfigs", answered, &resources)?;
            Ok(Committed {
                value,
                offset: answer.offset,
            })
        })
    }

    fn alter_configs(
        &self,
        resources: Vec<(ConfigResource, ConfigKeys)>,
        validate_only: bool,
    ) -> Answer<'_, Items<()>> {
        Box::pin(async move {
            let req = convert::alter_configs(&resources, validate_only);
            let answer = self.send(&req).await?;
            let answered = answer
                .value
                .responses
                .iter()
                .map(|r| (&r.resource_name, r.error_code, r.error_message.as_deref()));
            let value = config_items("AlterConfigs", answered, &resources)?;
            Ok(Committed {
                value,
                offset: answer.offset,
            })
        })
    }

    fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Answer<'_, Vec<ElectionResult>> {
        Box::pin(async move {
            let req = convert::elect_leaders(election, partitions.as_deref(), self.timeout_ms());
            let answer = self.send(&req).await?;
            let resp = answer.value;
            if let Some(e) = controller_error_from_code(resp.error_code, None, &Default::default())
            {
                return Err(e);
            }
            Ok(Committed {
                value: convert::election_results(resp, partitions.as_deref()),
                offset: answer.offset,
            })
        })
    }

    fn alter_user_scram_credentials(
        &self,
        upsertions: Vec<ScramUpsertion>,
        deletions: Vec<ScramDeletion>,
    ) -> Answer<'_, ScramResults> {
        Box::pin(async move {
            let req = crate::server::scram::to_request(&upsertions, &deletions);
            let answer = self.send(&req).await?;
            Ok(Committed {
                value: crate::server::scram::from_response(&answer.value),
                offset: answer.offset,
            })
        })
    }

    fn create_acls(
        &self,
        bindings: Vec<sluice_auth::acl::AclBinding>,
    ) -> Answer<'_, sluice_controller::AclCreateResults> {
        Box::pin(async move {
            use crate::server::acls;
            let req = CreateAclsRequest::default()
                .with_creations(bindings.iter().map(acls::creation_of).collect());
            let answer = self.send(&req).await?;
            let results = acls::create_results(&answer.value);
            if results.len() != bindings.len() {
                return Err(count_mismatch("CreateAcls", results.len(), bindings.len()));
            }
            Ok(Committed {
                value: results,
                offset: answer.offset,
            })
        })
    }

    fn delete_acls(
        &self,
        filters: Vec<sluice_auth::acl::AclBindingFilter>,
    ) -> Answer<'_, sluice_controller::AclDeleteResults> {
        Box::pin(async move {
            use crate::server::acls;
            let req = DeleteAclsRequest::default()
                .with_filters(filters.iter().map(acls::wire_delete_filter).collect());
            let answer = self.send(&req).await?;
            let results = acls::delete_results(&answer.value);
            if results.len() != filters.len() {
                return Err(count_mismatch("DeleteAcls", results.len(), filters.len()));
            }
            Ok(Committed {
                value: results,
                offset: answer.offset,
            })
        })
    }

    fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Answer<'_, QuotaResults> {
        Box::pin(async move {
            let req = crate::server::quotas::to_request(&alterations, validate_only);
            let answer = self.send(&req).await?;
            Ok(Committed {
                value: crate::server::quotas::from_response(&answer.value),
                offset: answer.offset,
            })
        })
    }

    fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        epoch: BrokerEpoch,
    ) -> Answer<'_, ProducerIdsBlock> {
        Box::pin(async move {
            let req = AllocateProducerIdsRequest::default()
                .with_broker_id(broker.0.into())
                .with_broker_epoch(epoch.0);
            let answer = self.send(&req).await?;
            let resp = answer.value;
            convert::broker_error(resp.error_code, broker, epoch.0)?;
            Ok(Committed {
                value: ProducerIdsBlock {
                    broker_id: broker,
                    broker_epoch: epoch,
                    first_producer_id: sluice_record::ProducerId(resp.producer_id_start.0),
                    size: resp.producer_id_len,
                },
                offset: answer.offset,
            })
        })
    }

    fn register_broker(&self, req: Registration) -> Answer<'_, RegisteredBroker> {
        Box::pin(async move {
            let broker = req.broker_id;
            let wire = convert::registration(&req, &self.cluster_id);
            let answer = self.send(&wire).await?;
            let resp = answer.value;
            if resp.error_code == crate::codes::INCONSISTENT_CLUSTER_ID {
                return Err(ControllerError::InconsistentClusterId(format!(
                    "The controller's cluster id is not this broker's {} (meta.properties).",
                    self.cluster_id
                )));
            }
            convert::broker_error(resp.error_code, broker, -1)?;
            Ok(Committed {
                value: RegisteredBroker {
                    broker_epoch: BrokerEpoch(resp.broker_epoch),
                },
                offset: answer.offset,
            })
        })
    }

    fn heartbeat(&self, hb: BrokerHeartbeat) -> Answer<'_, HeartbeatReply> {
        Box::pin(async move {
            let req = BrokerHeartbeatRequest::default()
                .with_broker_id(hb.broker_id.0.into())
                .with_broker_epoch(hb.broker_epoch.0)
                .with_current_metadata_offset(hb.current_metadata_offset.0)
                .with_want_fence(hb.want_fence)
                .with_want_shut_down(hb.want_shutdown);
            let answer = self.send_within(&req, self.heartbeat_timeout).await?;
            let resp = answer.value;
            convert::broker_error(resp.error_code, hb.broker_id, hb.broker_epoch.0)?;
            Ok(Committed {
                value: HeartbeatReply {
                    is_caught_up: resp.is_caught_up,
                    is_fenced: resp.is_fenced,
                    should_shutdown: resp.should_shut_down,
                },
                offset: answer.offset,
            })
        })
    }

    fn alter_partition(&self, req: AlterPartitionRequest) -> Answer<'_, AlterPartitionReply> {
        Box::pin(async move {
            let answer = self.send(&isr::request(&req)).await?;
            Ok(Committed {
                value: isr::reply(&req, answer.value)?,
                offset: answer.offset,
            })
        })
    }

    fn alter_partition_reassignments(
        &self,
        partitions: Vec<ReassignPartition>,
        allow_replication_factor_change: bool,
    ) -> Answer<'_, Vec<ReassignmentResult>> {
        Box::pin(async move {
            let req = reassign::alter_request(
                &partitions,
                allow_replication_factor_change,
                self.timeout_ms(),
            );
            let answer = self.send(&req).await?;
            Ok(Committed {
                value: reassign::alter_reply(&partitions, answer.value)?,
                offset: answer.offset,
            })
        })
    }

    fn list_partition_reassignments(
        &self,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Answer<'_, Vec<OngoingReassignment>> {
        Box::pin(async move {
            let req = reassign::list_request(topics.as_deref(), self.timeout_ms());
            let answer = self.send(&req).await?;
            Ok(Committed {
                value: reassign::list_reply(answer.value)?,
                offset: answer.offset,
            })
        })
    }

    fn update_features(&self, updates: Vec<FeatureUpdate>, validate_only: bool) -> Answer<'_, ()> {
        Box::pin(async move {
            let keys = updates
                .iter()
                .map(|u| {
                    update_features_request::FeatureUpdateKey::default()
                        .with_feature(StrBytes::from_string(u.feature.clone()))
                        .with_max_version_level(u.max_version_level)
                        .with_upgrade_type(u.upgrade_type.code())
                })
                .collect();
            let req = UpdateFeaturesRequest::default()
                .with_timeout_ms(self.timeout_ms())
                .with_feature_updates(keys)
                .with_validate_only(validate_only);
            let answer = self.send(&req).await?;
            let resp = answer.value;
            // The controller's message carries Kafka's prefix; the error's
            // own text is what follows it.
            let message = resp
                .error_message
                .as_deref()
                .map(|m| m.strip_prefix(crate::features::FAILED_FOR_ALL).unwrap_or(m));
            if let Some(e) =
                controller_error_from_code(resp.error_code, message, &Default::default())
            {
                return Err(e);
            }
            Ok(Committed {
                value: (),
                offset: answer.offset,
            })
        })
    }
}
