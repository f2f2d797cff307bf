//! The cluster's security settings as a client sees them: ACLs
//! (DescribeAcls: every binding), SCRAM users (DescribeUserScramCredentials:
//! names, mechanisms and iterations, never salts or keys) and client quotas
//! (DescribeClientQuotas: every entity). A cluster without an authorizer
//! answers DescribeAcls with SECURITY_DISABLED, which is a state here, not
//! an error.

use kafka_protocol::messages::{
    DescribeAclsRequest, DescribeClientQuotasRequest, DescribeUserScramCredentialsRequest,
};
use sluice_auth::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};

use super::{kafka_error, Session};
use crate::ConsoleError;

/// DescribeAcls v1 (pattern types) to v3.
const DESCRIBE_ACLS_VERSIONS: (i16, i16) = (1, 3);
const DESCRIBE_SCRAM_VERSIONS: (i16, i16) = (0, 0);
const DESCRIBE_QUOTAS_VERSIONS: (i16, i16) = (0, 1);
/// SECURITY_DISABLED: no authorizer is configured.
const SECURITY_DISABLED: i16 = 54;
/// RESOURCE_NOT_FOUND: DescribeUserScramCredentials' answer for a user
/// without credentials.
const RESOURCE_NOT_FOUND: i16 = 91;

/// One ACL binding, by Kafka's names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclRow {
    pub resource_type: &'static str,
    pub resource_name: String,
    pub pattern_type: &'static str,
    pub principal: String,
    pub host: String,
    pub operation: &'static str,
    pub permission: &'static str,
}

/// The ACLs, or that the cluster has no authorizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acls {
    Disabled,
    Bindings(Vec<AclRow>),
}

/// Every ACL binding of the cluster, sorted.
pub fn acls(session: &mut Session) -> Result<Acls, ConsoleError> {
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(ResourceType::Any.code())
        .with_resource_name_filter(None)
        .with_pattern_type_filter(PatternType::Any.code())
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(AclOperation::Any.code())
        .with_permission_type(AclPermissionType::Any.code());
    let (_, resp) = session.send(&req, DESCRIBE_ACLS_VERSIONS)?;
    if resp.error_code == SECURITY_DISABLED {
        return Ok(Acls::Disabled);
    }
    if resp.error_code != 0 {
        return Err(kafka_error(
            "listing ACLs",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut rows = Vec::new();
    for r in &resp.resources {
        for a in &r.acls {
            rows.push(AclRow {
                resource_type: ResourceType::from_code(r.resource_type).name(),
                resource_name: r.resource_name.to_string(),
                pattern_type: PatternType::from_code(r.pattern_type).name(),
                principal: a.principal.to_string(),
                host: a.host.to_string(),
                operation: AclOperation::from_code(a.operation).name(),
                permission: AclPermissionType::from_code(a.permission_type).name(),
            });
        }
    }
    rows.sort();
    Ok(Acls::Bindings(rows))
}

/// One SCRAM user: its mechanisms with their iteration counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramUser {
    pub name: String,
    pub credentials: Vec<(&'static str, i32)>,
}

/// The SCRAM mechanism of DescribeUserScramCredentials' code.
fn mechanism_name(code: i8) -> &'static str {
    match code {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "UNKNOWN",
    }
}

/// Every user with SCRAM credentials, by name.
pub fn scram_users(session: &mut Session) -> Result<Vec<ScramUser>, ConsoleError> {
    let req = DescribeUserScramCredentialsRequest::default().with_users(None);
    let (_, resp) = session.send(&req, DESCRIBE_SCRAM_VERSIONS)?;
    if resp.error_code != 0 {
        return Err(kafka_error(
            "listing SCRAM users",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut users = Vec::new();
    for r in resp.results {
        if r.error_code == RESOURCE_NOT_FOUND {
            continue;
        }
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("SCRAM credentials of {:?}", r.user.as_str()),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        users.push(ScramUser {
            name: r.user.to_string(),
            credentials: r
                .credential_infos
                .iter()
                .map(|c| (mechanism_name(c.mechanism), c.iterations))
                .collect(),
        });
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

/// One quota entity (`user`, `client-id`, `ip` with a name, or `None` for
/// the default) and its quota values.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaRow {
    pub entity: Vec<(String, Option<String>)>,
    pub values: Vec<(String, f64)>,
}

/// Every client quota of the cluster, by entity.
pub fn quotas(session: &mut Session) -> Result<Vec<QuotaRow>, ConsoleError> {
    // No components, not strict: every entity.
    let req = DescribeClientQuotasRequest::default()
        .with_components(vec![])
        .with_strict(false);
    let (_, resp) = session.send(&req, DESCRIBE_QUOTAS_VERSIONS)?;
    if resp.error_code != 0 {
        return Err(kafka_error(
            "listing client quotas",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut rows: Vec<QuotaRow> = resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| QuotaRow {
            entity: e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            values: e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| format!("{:?}", a.entity).cmp(&format!("{:?}", b.entity)));
    Ok(rows)
}
