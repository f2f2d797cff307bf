//! CreateAcls, DescribeAcls and DeleteAcls, as Kafka's `AclApis` answers
//! them. Without `authorizer.class.name` every one answers
//! SECURITY_DISABLED (`unsupported.rs`, Kafka's words). Creations and
//! deletions go to the controller (Kafka's `AclControlManager` rules) and
//! are answered once this broker's image holds them, so the next request
//! here is authorized with them; DescribeAcls reads this broker's image,
//! grouped by resource pattern. Who may call them is checked in `authz/`.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_auth::acl::{
    AccessControlEntryFilter, AclBindingFilter, AclOperation, AclPermissionType, PatternType,
    ResourcePatternFilter, ResourceType,
};
use sluice_transport::server::acls::{
    binding_of, create_response, delete_filter_of, delete_response,
};

use super::{unsupported, Response};
use crate::authz::CLUSTER_NAME;
use crate::context::BrokerContext;

fn text(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

pub async fn create(ctx: &BrokerContext, header: &RequestHeader, r: CreateAclsRequest) -> Response {
    if ctx.config.authorizer.is_none() {
        return unsupported::answer(header, RequestKind::CreateAcls(r));
    }
    let invalid = ResponseError::InvalidRequest.code();
    // Kafka's broker-side checks first; the rest go to the controller.
    let mut results: Vec<Option<AclCreationResult>> = Vec::with_capacity(r.creations.len());
    let mut valid = Vec::new();
    for c in &r.creations {
        let b = binding_of(c);
        let refusal =
            if b.pattern.resource_type == ResourceType::Cluster && b.pattern.name != CLUSTER_NAME {
                Some(format!(
                    "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
                ))
            } else if b.pattern.name.is_empty() {
                Some("Invalid empty resource name".to_string())
            } else {
                None
            };
        match refusal {
            Some(m) => results.push(Some(
                AclCreationResult::default()
                    .with_error_code(invalid)
                    .with_error_message(text(m)),
            )),
            None => {
                results.push(None);
                valid.push(b);
            }
        }
    }
    let n = valid.len();
    let answered = if valid.is_empty() {
        Vec::new()
    } else {
        match ctx.controller.create_acls(valid).await {
            Ok(rs) => create_response(&rs).results,
            Err(e) => (0..n)
                .map(|_| {
                    AclCreationResult::default()
                        .with_error_code(e.kafka_error_code())
                        .with_error_message(text(e.to_string()))
                })
                .collect(),
        }
    };
    let mut answered = answered.into_iter();
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| answered.next().unwrap_or_default()))
        .collect();
    Response::Message(ResponseKind::CreateAcls(
        CreateAclsResponse::default().with_results(results),
    ))
}

pub async fn delete(ctx: &BrokerContext, header: &RequestHeader, r: DeleteAclsRequest) -> Response {
    if ctx.config.authorizer.is_none() {
        return unsupported::answer(header, RequestKind::DeleteAcls(r));
    }
    let filters: Vec<AclBindingFilter> = r.filters.iter().map(delete_filter_of).collect();
    let n = filters.len();
    let resp = match ctx.controller.delete_acls(filters).await {
        Ok(rs) => delete_response(&rs),
        Err(e) => DeleteAclsResponse::default().with_filter_results(
            (0..n)
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(e.kafka_error_code())
                        .with_error_message(text(e.to_string()))
                })
                .collect(),
        ),
    };
    Response::Message(ResponseKind::DeleteAcls(resp))
}

pub async fn describe(
    ctx: &BrokerContext,
    header: &RequestHeader,
    r: DescribeAclsRequest,
) -> Response {
    if ctx.config.authorizer.is_none() {
        return unsupported::answer(header, RequestKind::DescribeAcls(r));
    }
    let filter = AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(r.resource_type_filter),
            name: r.resource_name_filter.as_ref().map(|n| n.to_string()),
            pattern_type: PatternType::from_code(r.pattern_type_filter),
        },
        entry: AccessControlEntryFilter {
            principal: r.principal_filter.as_ref().map(|n| n.to_string()),
            host: r.host_filter.as_ref().map(|n| n.to_string()),
            operation: AclOperation::from_code(r.operation),
            permission_type: AclPermissionType::from_code(r.permission_type),
        },
    };
    if filter.is_unknown() {
        return Response::Message(ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(text("The filter has UNKNOWN fields".into())),
        ));
    }
    let image = ctx.image.image();
    let mut by_pattern: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in image.acls().index().bindings(&filter) {
        by_pattern
            .entry((
                b.pattern.resource_type.code(),
                b.pattern.name.clone(),
                b.pattern.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(b.entry.principal))
                    .with_host(StrBytes::from_string(b.entry.host))
                    .with_operation(b.entry.operation.code())
                    .with_permission_type(b.entry.permission_type.code()),
            );
    }
    let resources = by_pattern
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    Response::Message(ResponseKind::DescribeAcls(
        DescribeAclsResponse::default().with_resources(resources),
    ))
}
