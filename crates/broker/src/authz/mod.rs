//! Authorization of every request, as Kafka's `KafkaApis` and `AuthHelper`
//! check it (issue 20). One place holds the per-API rules; handlers stay
//! unaware of ACLs.
//!
//! [`gate`] runs before a request's handler: it either answers the whole
//! request itself (an operation on the cluster, a group or a transactional
//! id that is denied), or takes the items the principal may not touch out
//! of the request and hands the rest to the handler, with [`Fixups`] that
//! put those items back into the handler's answer with Kafka's error code
//! (TOPIC_AUTHORIZATION_FAILED ...) and fill the authorized-operations
//! fields truthfully. Without `authorizer.class.name`, everything passes
//! untouched.
//!
//! Every denial of something a request named is logged once at INFO on the
//! target `kafka.authorizer.logger`, in Kafka's audit-line words;
//! filtering (Metadata of all topics, ListGroups) and authorized-operations
//! answers are not audited, as in Kafka.

mod admin;
mod clients;
mod groups;
mod inspect;
mod ops;

use std::net::IpAddr;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use sluice_auth::acl::{AclOperation, ResourceType, StandardAuthorizer};
use sluice_auth::KafkaPrincipal;

use crate::context::BrokerContext;
use crate::handlers::Response;
use crate::request::RequestContext;

pub use ops::Fixups;

/// Kafka's name of the cluster resource (`Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// One request's view of the authorizer.
#[derive(Clone)]
pub struct Authz {
    authorizer: StandardAuthorizer,
    principal: KafkaPrincipal,
    host: String,
    api: ApiKey,
}

/// A client address as Java's `InetAddress.getHostAddress` prints it, the
/// form ACL hosts are written in: dotted IPv4, or IPv6 as eight groups of
/// hex without `::` compression.
pub fn java_host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

impl Authz {
    /// The authorizer of this broker as of its current image; `None`
    /// without `authorizer.class.name`.
    pub fn new(ctx: &BrokerContext, request: &RequestContext, api: ApiKey) -> Option<Authz> {
        let config = ctx.config.authorizer.clone()?;
        let image = ctx.image.image();
        Some(Authz {
            authorizer: StandardAuthorizer::from_shared(config, image.acls().index().clone()),
            principal: request.principal.clone(),
            host: request
                .client_address
                .map_or_else(|| "127.0.0.1".to_string(), |a| java_host_address(a.ip())),
            api,
        })
    }

    /// May the principal perform `op` on the named resource? A denial is
    /// audited.
    pub fn allow(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let d = self
            .authorizer
            .authorize(&self.principal, &self.host, op, rt, name);
        if !d.allowed() {
            tracing::info!(
                target: "kafka.authorizer.logger",
                "Principal = {} is Denied operation = {} from host = {} on resource = {}:LITERAL:{} \
                 for request = {:?} with resourceRefCount = 1 based on rule {}",
                self.principal,
                op,
                self.host,
                rt.audit_name(),
                name,
                self.api,
                d.rule
            );
        }
        d.allowed()
    }

    /// As [`Authz::allow`], without an audit line (filtering).
    pub fn allow_quietly(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        self.authorizer
            .authorize(&self.principal, &self.host, op, rt, name)
            .allowed()
    }

    /// `op` on the cluster.
    pub fn allow_cluster(&self, op: AclOperation) -> bool {
        self.allow(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// The cluster's authorized-operations bit field as Metadata and
    /// DescribeCluster answer it: 0 unless the principal may DESCRIBE the
    /// cluster (checked, and audited, first), as Kafka's `KafkaApis` and
    /// `AuthHelper.computeDescribeClusterResponse` do.
    pub fn cluster_operations(&self) -> i32 {
        if self.allow_cluster(AclOperation::Describe) {
            self.operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        }
    }

    /// Kafka's authorized-operations bit field of a resource.
    pub fn operations(&self, rt: ResourceType, name: &str) -> i32 {
        sluice_auth::acl::operations_bit_field(self.authorizer.authorized_operations(
            &self.principal,
            &self.host,
            rt,
            name,
        ))
    }

    /// Kafka's `authorizeByResourceType`: is some resource of `rt`
    /// allowed `op` for this principal (used where Kafka accepts WRITE on
    /// any topic instead of IDEMPOTENT_WRITE on the cluster)?
    pub fn allow_any_of_type(&self, op: AclOperation, rt: ResourceType) -> bool {
        self.authorizer
            .authorize_by_resource_type(&self.principal, &self.host, op, rt)
    }
}

/// What [`gate`] decided.
pub enum Gate {
    /// Answer this without calling the handler.
    Answer(Response),
    /// Hand this request to the handler, then apply the fixups.
    Pass(RequestKind, Fixups),
}

/// Authorizes `body` (see the module docs).
pub fn gate(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    body: RequestKind,
) -> Gate {
    let Ok(api) = ApiKey::try_from(header.request_api_key) else {
        return Gate::Pass(body, Fixups::none());
    };
    let Some(authz) = Authz::new(ctx, request, api) else {
        return Gate::Pass(body, Fixups::none());
    };
    let image = ctx.image.image();
    let v = header.request_api_version;
    match body {
        RequestKind::Produce(r) => clients::produce(&authz, &image, r),
        RequestKind::Fetch(r) => clients::fetch(&authz, &image, r),
        RequestKind::ListOffsets(r) => clients::list_offsets(&authz, r),
        RequestKind::Metadata(r) => clients::metadata(&authz, ctx, &image, v, r),
        RequestKind::OffsetForLeaderEpoch(r) => clients::offset_for_leader_epoch(&authz, r),
        other => groups::gate(&authz, v, other, |rest| {
            inspect::gate(&authz, rest, |rest| admin::gate(&authz, &image, v, rest))
        }),
    }
}
