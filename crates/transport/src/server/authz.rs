//! Authorization on the controller listener, as Kafka's `ControllerApis`
//! checks it (issue 20): each API needs its operation on the cluster
//! resource (`CLUSTER_ACTION` for the brokers' own RPCs: BrokerRegistration,
//! BrokerHeartbeat, AlterPartition, AllocateProducerIds; DESCRIBE for
//! DescribeQuorum and ListPartitionReassignments; ALTER for ElectLeaders,
//! reassignments, UpdateFeatures, SCRAM credentials, ACLs and, as in
//! Kafka, DescribeCluster; ALTER_CONFIGS for client quotas). The
//! topic-level admin APIs a broker forwards (CreateTopics, DeleteTopics,
//! CreatePartitions, configs) pass with the cluster-level operation
//! (CREATE, DELETE, ALTER, ALTER_CONFIGS) or CLUSTER_ACTION (a broker
//! forwarding a request it already authorized, as Kafka's Envelope check),
//! else with the operation on every topic named. The metadata quorum's RPC
//! needs CLUSTER_ACTION (`listener.rs`). ACLs and `super.users` come from
//! the controller's own image and config.
//!
//! A denial is logged on `kafka.authorizer.logger` and answered with
//! CLUSTER_AUTHORIZATION_FAILED where the response has a top-level error
//! code; the others close the connection (Sluice's brokers, the only
//! senders of those APIs here, are super users or hold CLUSTER_ACTION).

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{
    AllocateProducerIdsResponse, AlterPartitionReassignmentsResponse, AlterPartitionResponse,
    ApiKey, BrokerHeartbeatResponse, BrokerRegistrationResponse, DescribeClusterResponse,
    DescribeQuorumResponse, ElectLeadersResponse, ListPartitionReassignmentsResponse, RequestKind,
    ResponseKind, UpdateFeaturesResponse,
};
use kafka_protocol::ResponseError;
use sluice_auth::acl::{AclOperation, AuthorizerConfig, ResourceType, StandardAuthorizer};
use sluice_auth::KafkaPrincipal;
use sluice_controller::QuorumController;
use sluice_protocol::kafka_protocol;

/// Kafka's name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The cluster operation `api` needs on the controller listener; `None`
/// for ApiVersions (always answered).
pub fn required_operation(api: ApiKey) -> Option<AclOperation> {
    use AclOperation::*;
    Some(match api {
        ApiKey::ApiVersions => return None,
        ApiKey::BrokerRegistration
        | ApiKey::BrokerHeartbeat
        | ApiKey::AlterPartition
        | ApiKey::AllocateProducerIds => ClusterAction,
        ApiKey::DescribeQuorum | ApiKey::ListPartitionReassignments => Describe,
        ApiKey::CreateTopics => Create,
        ApiKey::DeleteTopics => Delete,
        ApiKey::CreatePartitions => Alter,
        ApiKey::IncrementalAlterConfigs | ApiKey::AlterConfigs | ApiKey::AlterClientQuotas => {
            AlterConfigs
        }
        _ => Alter,
    })
}

/// The topics a topic-level admin request names, with the operation each
/// needs when the cluster-level one is denied.
fn topic_fallback(req: &RequestKind) -> Option<(AclOperation, Vec<String>)> {
    Some(match req {
        RequestKind::CreateTopics(r) => (
            AclOperation::Create,
            r.topics.iter().map(|t| t.name.to_string()).collect(),
        ),
        RequestKind::DeleteTopics(r) => (
            AclOperation::Delete,
            r.topic_names
                .iter()
                .map(|t| t.to_string())
                .chain(
                    r.topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.to_string())),
                )
                .collect(),
        ),
        RequestKind::CreatePartitions(r) => (
            AclOperation::Alter,
            r.topics.iter().map(|t| t.name.to_string()).collect(),
        ),
        _ => return None,
    })
}

/// Authorizes requests with the controller's current ACLs.
pub struct ControllerAuthz<'a> {
    authorizer: StandardAuthorizer,
    principal: &'a KafkaPrincipal,
    host: String,
}

impl<'a> ControllerAuthz<'a> {
    pub fn new(
        config: Arc<AuthorizerConfig>,
        controller: &QuorumController,
        principal: &'a KafkaPrincipal,
        peer: SocketAddr,
    ) -> Self {
        let image = controller.image();
        Self {
            authorizer: StandardAuthorizer::from_shared(config, image.acls().index().clone()),
            principal,
            host: peer.ip().to_string(),
        }
    }

    fn allows(&self, op: AclOperation, resource: ResourceType, name: &str) -> bool {
        self.authorizer
            .authorize(self.principal, &self.host, op, resource, name)
            .allowed()
    }

    /// May the principal send `req`? Logs the denial.
    pub fn check(&self, api: ApiKey, req: &RequestKind) -> bool {
        let Some(op) = required_operation(api) else {
            return true;
        };
        if self.allows(op, ResourceType::Cluster, CLUSTER_NAME) {
            return true;
        }
        if let Some((topic_op, topics)) = topic_fallback(req) {
            if self.allows(
                AclOperation::ClusterAction,
                ResourceType::Cluster,
                CLUSTER_NAME,
            ) || (!topics.is_empty()
                && topics
                    .iter()
                    .all(|t| self.allows(topic_op, ResourceType::Topic, t)))
            {
                return true;
            }
        }
        tracing::info!(
            target: "kafka.authorizer.logger",
            "Principal = {} is Denied operation = {op:?} from host = {} on resource = Cluster:LITERAL:{CLUSTER_NAME} for request = {api:?} on the controller listener",
            self.principal,
            self.host
        );
        false
    }

    /// May the principal speak the metadata quorum's RPC (Kafka's Vote,
    /// BeginQuorumEpoch, EndQuorumEpoch, Fetch, FetchSnapshot)?
    pub fn quorum_allowed(&self) -> bool {
        self.allows(
            AclOperation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
    }
}

/// CLUSTER_AUTHORIZATION_FAILED as `api`'s whole answer, where its
/// response has a top-level error code; `None`: close the connection.
pub fn denied_response(api: ApiKey) -> Option<ResponseKind> {
    let code = ResponseError::ClusterAuthorizationFailed.code();
    Some(match api {
        ApiKey::BrokerRegistration => ResponseKind::BrokerRegistration(
            BrokerRegistrationResponse::default().with_error_code(code),
        ),
        ApiKey::BrokerHeartbeat => {
            ResponseKind::BrokerHeartbeat(BrokerHeartbeatResponse::default().with_error_code(code))
        }
        ApiKey::AllocateProducerIds => ResponseKind::AllocateProducerIds(
            AllocateProducerIdsResponse::default().with_error_code(code),
        ),
        ApiKey::AlterPartition => {
            ResponseKind::AlterPartition(AlterPartitionResponse::default().with_error_code(code))
        }
        ApiKey::DescribeQuorum => {
            ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(code))
        }
        ApiKey::ListPartitionReassignments => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        ApiKey::AlterPartitionReassignments => ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        ApiKey::ElectLeaders => {
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(code))
        }
        ApiKey::UpdateFeatures => {
            ResponseKind::UpdateFeatures(UpdateFeaturesResponse::default().with_error_code(code))
        }
        ApiKey::DescribeCluster => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default().with_error_code(code))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_operations_per_api() {
        use AclOperation::*;
        assert_eq!(required_operation(ApiKey::ApiVersions), None);
        for api in [
            ApiKey::BrokerRegistration,
            ApiKey::BrokerHeartbeat,
            ApiKey::AlterPartition,
            ApiKey::AllocateProducerIds,
        ] {
            assert_eq!(required_operation(api), Some(ClusterAction), "{api:?}");
            assert!(denied_response(api).is_some(), "{api:?}");
        }
        assert_eq!(required_operation(ApiKey::DescribeQuorum), Some(Describe));
        assert_eq!(required_operation(ApiKey::DescribeCluster), Some(Alter));
        assert_eq!(
            required_operation(ApiKey::AlterClientQuotas),
            Some(AlterConfigs)
        );
        assert_eq!(required_operation(ApiKey::CreateTopics), Some(Create));
    }
}
