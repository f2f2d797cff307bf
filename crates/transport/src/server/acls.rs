//! CreateAcls and DeleteAcls on the controller listener (a broker forwards
//! its clients' requests here, as Kafka's brokers do), and the conversions
//! between Kafka's messages and the domain bindings and filters that the
//! broker's handlers share.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_auth::acl::{
    AccessControlEntry, AccessControlEntryFilter, AclBinding, AclBindingFilter, AclOperation,
    AclPermissionType, PatternType, ResourcePattern, ResourcePatternFilter, ResourceType,
};
use sluice_controller::{AclCreateResults, AclDeleteResults, ControllerError, QuorumController};
use sluice_protocol::kafka_protocol;

use super::check_active;
use crate::codes::{controller_error_code, controller_error_from_code};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// The binding one creation asks for (codes Kafka does not define become
/// UNKNOWN, which validation refuses).
pub fn binding_of(c: &AclCreation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(c.resource_type),
            name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type),
        },
        entry: AccessControlEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission_type: AclPermissionType::from_code(c.permission_type),
        },
    }
}

/// The wire form of a binding to create.
pub fn creation_of(b: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(s(&b.pattern.name))
        .with_resource_pattern_type(b.pattern.pattern_type.code())
        .with_principal(s(&b.entry.principal))
        .with_host(s(&b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission_type.code())
}

/// The domain filter of a DeleteAcls filter.
pub fn delete_filter_of(f: &DeleteAclsFilter) -> AclBindingFilter {
    AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(f.resource_type_filter),
            name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
            pattern_type: PatternType::from_code(f.pattern_type_filter),
        },
        entry: AccessControlEntryFilter {
            principal: f.principal_filter.as_ref().map(|n| n.to_string()),
            host: f.host_filter.as_ref().map(|n| n.to_string()),
            operation: AclOperation::from_code(f.operation),
            permission_type: AclPermissionType::from_code(f.permission_type),
        },
    }
}

/// The wire form of a domain filter.
pub fn wire_delete_filter(f: &AclBindingFilter) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(f.pattern.resource_type.code())
        .with_resource_name_filter(f.pattern.name.as_deref().map(s))
        .with_pattern_type_filter(f.pattern.pattern_type.code())
        .with_principal_filter(f.entry.principal.as_deref().map(s))
        .with_host_filter(f.entry.host.as_deref().map(s))
        .with_operation(f.entry.operation.code())
        .with_permission_type(f.entry.permission_type.code())
}

fn code_and_message(e: &ControllerError) -> (i16, Option<StrBytes>) {
    (controller_error_code(e), Some(s(&e.to_string())))
}

fn from_code(code: i16, message: Option<&str>) -> Result<(), ControllerError> {
    match controller_error_from_code(code, message, &Default::default()) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The wire response of per-binding results.
pub fn create_response(results: &AclCreateResults) -> CreateAclsResponse {
    CreateAclsResponse::default().with_results(
        results
            .iter()
            .map(|r| {
                let (code, message) = match r {
                    Ok(()) => (0, None),
                    Err(e) => code_and_message(e),
                };
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

/// Per-binding results of a wire response.
pub fn create_results(resp: &CreateAclsResponse) -> AclCreateResults {
    resp.results
        .iter()
        .map(|r| from_code(r.error_code, r.error_message.as_deref()))
        .collect()
}

/// The wire form of a removed or described binding.
pub fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(s(&b.pattern.name))
        .with_pattern_type(b.pattern.pattern_type.code())
        .with_principal(s(&b.entry.principal))
        .with_host(s(&b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission_type.code())
}

fn binding_of_match(m: &DeleteAclsMatchingAcl) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(m.resource_type),
            name: m.resource_name.to_string(),
            pattern_type: PatternType::from_code(m.pattern_type),
        },
        entry: AccessControlEntry {
            principal: m.principal.to_string(),
            host: m.host.to_string(),
            operation: AclOperation::from_code(m.operation),
            permission_type: AclPermissionType::from_code(m.permission_type),
        },
    }
}

/// The wire response of per-filter results.
pub fn delete_response(results: &AclDeleteResults) -> DeleteAclsResponse {
    DeleteAclsResponse::default().with_filter_results(
        results
            .iter()
            .map(|r| match r {
                Ok(bindings) => DeleteAclsFilterResult::default()
                    .with_matching_acls(bindings.iter().map(matching_acl).collect()),
                Err(e) => {
                    let (code, message) = code_and_message(e);
                    DeleteAclsFilterResult::default()
                        .with_error_code(code)
                        .with_error_message(message)
                }
            })
            .collect(),
    )
}

/// Per-filter results of a wire response (a matched binding's own error
/// code is not used by Kafka's controller: always 0).
pub fn delete_results(resp: &DeleteAclsResponse) -> AclDeleteResults {
    resp.filter_results
        .iter()
        .map(|r| {
            from_code(r.error_code, r.error_message.as_deref())
                .map(|()| r.matching_acls.iter().map(binding_of_match).collect())
        })
        .collect()
}

pub(super) async fn create(c: &QuorumController, r: CreateAclsRequest) -> CreateAclsResponse {
    let bindings: Vec<AclBinding> = r.creations.iter().map(binding_of).collect();
    let n = bindings.len();
    let result = match check_active(c) {
        Ok(()) => c.create_acls(bindings).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(results) => create_response(&results),
        Err(e) => create_response(&(0..n).map(|_| Err(e.duplicate())).collect()),
    }
}

pub(super) async fn delete(c: &QuorumController, r: DeleteAclsRequest) -> DeleteAclsResponse {
    let filters: Vec<AclBindingFilter> = r.filters.iter().map(delete_filter_of).collect();
    let n = filters.len();
    let result = match check_active(c) {
        Ok(()) => c.delete_acls(filters).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(results) => delete_response(&results),
        Err(e) => delete_response(&(0..n).map(|_| Err(e.duplicate())).collect()),
    }
}
