//! Creating and deleting one ACL binding (CreateAcls, DeleteAcls with a
//! filter that matches exactly that binding). The pages confirm first.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest};
use sluice_auth::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
use sluice_client::str_bytes;

use super::security::AclRow;
use super::{kafka_error, Session};
use crate::ConsoleError;

/// CreateAcls and DeleteAcls v1 (pattern types) to v3.
const ACL_WRITE_VERSIONS: (i16, i16) = (1, 3);

/// An ACL binding from Kafka's names (case-insensitive), refusing the
/// filter-only values (ANY, MATCH, UNKNOWN) a binding cannot hold.
pub fn binding(
    resource_type: &str,
    resource_name: &str,
    pattern_type: &str,
    principal: &str,
    host: &str,
    operation: &str,
    permission: &str,
) -> Result<AclRow, ConsoleError> {
    let bad = |what: &str, v: &str| {
        ConsoleError::BadRequest(format!("{what}: {v:?} is not valid in an ACL"))
    };
    let rt: ResourceType = resource_type
        .parse()
        .map_err(|_| bad("resource type", resource_type))?;
    let pt: PatternType = pattern_type
        .parse()
        .map_err(|_| bad("pattern type", pattern_type))?;
    let op: AclOperation = operation.parse().map_err(|_| bad("operation", operation))?;
    let perm: AclPermissionType = permission
        .parse()
        .map_err(|_| bad("permission", permission))?;
    if matches!(rt, ResourceType::Any | ResourceType::Unknown) {
        return Err(bad("resource type", resource_type));
    }
    if !matches!(pt, PatternType::Literal | PatternType::Prefixed) {
        return Err(bad("pattern type", pattern_type));
    }
    if matches!(op, AclOperation::Any | AclOperation::Unknown) {
        return Err(bad("operation", operation));
    }
    if !matches!(perm, AclPermissionType::Allow | AclPermissionType::Deny) {
        return Err(bad("permission", permission));
    }
    let principal = principal.trim();
    if !principal.contains(':') {
        return Err(ConsoleError::BadRequest(format!(
            "principal: {principal:?} is not TYPE:NAME, e.g. User:alice"
        )));
    }
    if resource_name.trim().is_empty() {
        return Err(ConsoleError::BadRequest(
            "an ACL needs a resource name".into(),
        ));
    }
    let host = host.trim();
    Ok(AclRow {
        resource_type: rt.name(),
        resource_name: resource_name.trim().to_string(),
        pattern_type: pt.name(),
        principal: principal.to_string(),
        host: if host.is_empty() {
            "*".into()
        } else {
            host.to_string()
        },
        operation: op.name(),
        permission: perm.name(),
    })
}

fn codes(b: &AclRow) -> (i8, i8, i8, i8) {
    let rt = b
        .resource_type
        .parse::<ResourceType>()
        .map_or(0, |v| v.code());
    let pt = b
        .pattern_type
        .parse::<PatternType>()
        .map_or(0, |v| v.code());
    let op = b.operation.parse::<AclOperation>().map_or(0, |v| v.code());
    let perm = b
        .permission
        .parse::<AclPermissionType>()
        .map_or(0, |v| v.code());
    (rt, pt, op, perm)
}

/// Creates the binding.
pub fn create(session: &mut Session, b: &AclRow) -> Result<(), ConsoleError> {
    let (rt, pt, op, perm) = codes(b);
    let req = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(str_bytes(&b.resource_name))
        .with_resource_pattern_type(pt)
        .with_principal(str_bytes(&b.principal))
        .with_host(str_bytes(&b.host))
        .with_operation(op)
        .with_permission_type(perm)]);
    let (_, resp) = session.send(&req, ACL_WRITE_VERSIONS)?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(kafka_error(
                "creating the ACL",
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

/// Deletes exactly the binding; how many bindings went (0 or 1).
pub fn delete(session: &mut Session, b: &AclRow) -> Result<usize, ConsoleError> {
    let (rt, pt, op, perm) = codes(b);
    let req = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(Some(str_bytes(&b.resource_name)))
        .with_pattern_type_filter(pt)
        .with_principal_filter(Some(str_bytes(&b.principal)))
        .with_host_filter(Some(str_bytes(&b.host)))
        .with_operation(op)
        .with_permission_type(perm)]);
    let (_, resp) = session.send(&req, ACL_WRITE_VERSIONS)?;
    let mut deleted = 0;
    for r in resp.filter_results {
        if r.error_code != 0 {
            return Err(kafka_error(
                "deleting the ACL",
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        deleted += r.matching_acls.len();
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_take_kafka_names_and_refuse_filter_values() {
        let b = binding(
            "topic",
            " pay ",
            "literal",
            "User:alice",
            "",
            "read",
            "allow",
        )
        .unwrap();
        assert_eq!(
            (
                b.resource_type,
                b.resource_name.as_str(),
                b.pattern_type,
                b.host.as_str(),
                b.operation,
                b.permission
            ),
            ("TOPIC", "pay", "LITERAL", "*", "READ", "ALLOW")
        );
        assert_eq!(codes(&b), (2, 3, 3, 3));
        assert!(binding("any", "pay", "literal", "User:a", "*", "read", "allow").is_err());
        assert!(binding("topic", "pay", "match", "User:a", "*", "read", "allow").is_err());
        assert!(binding("topic", "pay", "literal", "alice", "*", "read", "allow").is_err());
        assert!(binding("topic", "pay", "literal", "User:a", "*", "any", "allow").is_err());
        assert!(binding("topic", "", "literal", "User:a", "*", "read", "allow").is_err());
    }
}
