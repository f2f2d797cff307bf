//! The decision for one action (Kafka's `StandardAuthorizerData.authorize`):
//! super users may do anything; otherwise the ACLs covering the resource
//! decide, DENY before ALLOW; a resource no ACL covers gets
//! `allow.everyone.if.no.acl.found`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use super::index::{AclIndex, StandardAcl};
use super::types::*;
use crate::KafkaPrincipal;

/// Allowed or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationResult {
    Allowed,
    Denied,
}

/// What decided (Kafka's `MatchingRule`), for the audit line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchingRule {
    SuperUser,
    /// No ACL covers the resource: `allow.everyone.if.no.acl.found`.
    DefaultAllow,
    /// No ACL covers the resource and everyone is not allowed, or ACLs
    /// cover it but none grants this principal the operation.
    DefaultDeny,
    MatchingAcl(StandardAcl),
}

impl fmt::Display for MatchingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchingRule::SuperUser => f.write_str("SuperUser"),
            MatchingRule::DefaultAllow => f.write_str("DefaultAllow"),
            MatchingRule::DefaultDeny => f.write_str("DefaultDeny"),
            MatchingRule::MatchingAcl(a) => write!(f, "MatchingAcl(acl={})", a.to_binding()),
        }
    }
}

/// A decision and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub result: AuthorizationResult,
    pub rule: MatchingRule,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.result == AuthorizationResult::Allowed
    }
}

/// The authorizer's configuration (`super.users`,
/// `allow.everyone.if.no.acl.found`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Principals as `type:name`.
    pub super_users: BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses `super.users`: principals separated by `;` (Kafka's
    /// `StandardAuthorizer.getConfiguredSuperUsers`), blanks ignored.
    pub fn parse_super_users(value: &str) -> Result<BTreeSet<String>, crate::AuthError> {
        value
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<KafkaPrincipal>().map(|p| p.to_string()))
            .collect()
    }
}

/// Kafka's `StandardAuthorizer`: a snapshot of the ACLs and the config.
/// Cheap to clone; a new ACL set is a new authorizer.
#[derive(Clone, Debug, Default)]
pub struct StandardAuthorizer {
    config: Arc<AuthorizerConfig>,
    acls: Arc<AclIndex>,
}

/// The rule under construction (Kafka's `MatchingRuleBuilder`).
#[derive(Default)]
struct RuleBuilder {
    deny: Option<StandardAcl>,
    allow: Option<StandardAcl>,
    has_resource_acls: bool,
}

impl StandardAuthorizer {
    pub fn new(config: AuthorizerConfig, acls: Arc<AclIndex>) -> Self {
        Self {
            config: Arc::new(config),
            acls,
        }
    }

    /// An authorizer over shared parts (a broker builds one per request
    /// from its config and its current image's index).
    pub fn from_shared(config: Arc<AuthorizerConfig>, acls: Arc<AclIndex>) -> Self {
        Self { config, acls }
    }

    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    pub fn acls(&self) -> &AclIndex {
        &self.acls
    }

    /// The same config with another ACL set.
    pub fn with_acls(&self, acls: Arc<AclIndex>) -> Self {
        Self {
            config: self.config.clone(),
            acls,
        }
    }

    pub fn is_super_user(&self, principal: &KafkaPrincipal) -> bool {
        self.config.super_users.contains(&principal.to_string())
    }

    /// May `principal`, connected from `host` (an IP address as text),
    /// perform `operation` on the literal resource `(resource_type, name)`?
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        if self.is_super_user(principal) {
            return Decision {
                result: AuthorizationResult::Allowed,
                rule: MatchingRule::SuperUser,
            };
        }
        let who = principal.to_string();
        let mut b = RuleBuilder::default();
        self.acls.for_each_covering(resource_type, name, |acl| {
            b.has_resource_acls = true;
            match find_result(operation, &who, host, acl) {
                Some(AuthorizationResult::Allowed) => {
                    b.allow = Some(acl.clone());
                    true
                }
                Some(AuthorizationResult::Denied) => {
                    b.deny = Some(acl.clone());
                    false
                }
                None => true,
            }
        });
        let (result, rule) = if let Some(acl) = b.deny {
            (AuthorizationResult::Denied, MatchingRule::MatchingAcl(acl))
        } else if let Some(acl) = b.allow {
            (AuthorizationResult::Allowed, MatchingRule::MatchingAcl(acl))
        } else if !b.has_resource_acls && self.config.allow_everyone_if_no_acl_found {
            (AuthorizationResult::Allowed, MatchingRule::DefaultAllow)
        } else {
            (AuthorizationResult::Denied, MatchingRule::DefaultDeny)
        };
        Decision { result, rule }
    }

    /// Kafka's `Authorizer.authorizeByResourceType`: may the principal
    /// perform `op` on *some* resource of `resource_type`? True if it may
    /// on a resource no ACL names (the name `hardcode`, as Kafka checks:
    /// super users, `allow.everyone.if.no.acl.found`), or if an ALLOW ACL
    /// of the principal (or `User:*`) for `op` (or ALL) from this host is a
    /// LITERAL `*`, or is not cancelled by a DENY of the same LITERAL name
    /// or of a PREFIXED prefix of it; a DENY on the LITERAL `*` denies.
    pub fn authorize_by_resource_type(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self
            .authorize(principal, host, op, resource_type, "hardcode")
            .allowed()
        {
            return true;
        }
        let who = principal.to_string();
        let mut deny_literal = BTreeSet::new();
        let mut deny_prefixed = BTreeSet::new();
        let mut allows: Vec<&StandardAcl> = Vec::new();
        for acl in self
            .acls
            .iter()
            .filter(|a| a.resource_type == resource_type)
        {
            let applies = (acl.host == host || acl.host == WILDCARD_HOST)
                && (acl.principal == who || acl.principal == WILDCARD_PRINCIPAL)
                && (acl.operation == op || acl.operation == AclOperation::All);
            if !applies {
                continue;
            }
            match (acl.permission_type, acl.pattern_type) {
                (AclPermissionType::Deny, PatternType::Literal) => {
                    if acl.resource_name == WILDCARD_RESOURCE {
                        return false;
                    }
                    deny_literal.insert(acl.resource_name.as_str());
                }
                (AclPermissionType::Deny, PatternType::Prefixed) => {
                    deny_prefixed.insert(acl.resource_name.as_str());
                }
                (AclPermissionType::Allow, _) => allows.push(acl),
                _ => {}
            }
        }
        if allows
            .iter()
            .any(|a| a.pattern_type == PatternType::Literal && a.resource_name == WILDCARD_RESOURCE)
        {
            return true;
        }
        allows.iter().any(|a| {
            if a.pattern_type == PatternType::Literal
                && deny_literal.contains(a.resource_name.as_str())
            {
                return false;
            }
            let name = a.resource_name.as_str();
            !name
                .char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .any(|prefix| deny_prefixed.contains(prefix))
        })
    }

    /// The operations of `resource_type` the principal may perform on the
    /// resource, as Kafka fills the authorized-operations fields.
    pub fn authorized_operations(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        resource_type: ResourceType,
        name: &str,
    ) -> Vec<AclOperation> {
        resource_type
            .supported_operations()
            .iter()
            .copied()
            .filter(|&op| {
                self.authorize(principal, host, op, resource_type, name)
                    .allowed()
            })
            .collect()
    }
}

/// Whether `acl` decides `operation` for the principal `who` at `host`
/// (Kafka's `findResult`): the principal is the ACL's or the ACL's is
/// `User:*`; the host is the ACL's or the ACL's is `*`; and the operation
/// is the ACL's, or ALL, or, for ALLOW ACLs only, implied: DESCRIBE by
/// READ, WRITE, DELETE and ALTER, DESCRIBE_CONFIGS by ALTER_CONFIGS.
pub fn find_result(
    operation: AclOperation,
    who: &str,
    host: &str,
    acl: &StandardAcl,
) -> Option<AuthorizationResult> {
    if acl.principal != who && acl.principal != WILDCARD_PRINCIPAL {
        return None;
    }
    if acl.host != WILDCARD_HOST && acl.host != host {
        return None;
    }
    if acl.operation != AclOperation::All {
        let implied = acl.permission_type == AclPermissionType::Allow
            && match operation {
                AclOperation::Describe => matches!(
                    acl.operation,
                    AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ),
                AclOperation::DescribeConfigs => acl.operation == AclOperation::AlterConfigs,
                _ => false,
            };
        if !implied && acl.operation != operation {
            return None;
        }
    }
    Some(if acl.permission_type == AclPermissionType::Allow {
        AuthorizationResult::Allowed
    } else {
        AuthorizationResult::Denied
    })
}
