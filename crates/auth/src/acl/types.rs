//! Kafka's ACL vocabulary (`org.apache.kafka.common.acl` and
//! `org.apache.kafka.common.resource`): resource and pattern types,
//! operations, permission types with their wire codes, resource patterns,
//! entries, bindings, and the filters DescribeAcls and DeleteAcls match
//! bindings with.

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// The resource name that matches every resource of its type in a LITERAL
/// pattern (`ResourcePattern.WILDCARD_RESOURCE`).
pub const WILDCARD_RESOURCE: &str = "*";
/// The host that matches every client address (`AclEntry.WILDCARD_HOST`).
pub const WILDCARD_HOST: &str = "*";
/// The principal that matches every user (`AclEntry.WILDCARD_PRINCIPAL_STRING`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Defines a Kafka enum with its wire codes, its Java names (parsed
/// case-insensitively, as `fromString` does) and `from_code`, where an
/// unknown code becomes `Unknown` as Kafka's `fromCode` makes it.
macro_rules! kafka_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every value, `Unknown` and `Any` included, in code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// The value of a wire code; `Unknown` for a code Kafka does not define.
            pub fn from_code(code: i8) -> Self {
                match code { $($code => $name::$variant,)* _ => $name::Unknown }
            }

            /// Kafka's enum name, such as `READ`.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = AuthError;
            fn from_str(s: &str) -> Result<Self, AuthError> {
                let upper = s.trim().to_ascii_uppercase().replace('-', "_");
                $name::ALL_VALUES
                    .iter()
                    .copied()
                    .find(|v| v.name() == upper)
                    .ok_or_else(|| AuthError::InvalidAcl(format!(
                        "unknown {} {s:?}", stringify!($name)
                    )))
            }
        }
    };
}

kafka_enum!(
    /// `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// `PatternType`: LITERAL and PREFIXED in bindings; ANY and MATCH only
    /// in filters.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// `AclPermissionType`.
    AclPermissionType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The name audit lines use (`SecurityUtils.resourceTypeName`):
    /// `Topic`, `Group`, `Cluster`, `TransactionalId` ...
    pub fn audit_name(self) -> &'static str {
        match self {
            ResourceType::Unknown => "Unknown",
            ResourceType::Any => "Any",
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
            ResourceType::DelegationToken => "DelegationToken",
            ResourceType::User => "User",
        }
    }

    /// The operations an ACL on this resource type can grant, for the
    /// authorized-operations fields (Kafka's `AclEntry.supportedOperations`).
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

/// Kafka's authorized-operations bit field: bit `code` set for each
/// operation in `ops` (`Utils.to32BitField`).
pub fn operations_bit_field(ops: impl IntoIterator<Item = AclOperation>) -> i32 {
    ops.into_iter()
        .fold(0, |bits, op| bits | (1i32 << (op.code() as u32 & 31)))
}

/// Kafka's sentinel for "authorized operations not requested".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Which resources a binding applies to (`ResourcePattern`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// Who may or may not do what from where (`AccessControlEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessControlEntry {
    /// `type:name`, such as `User:alice` or `User:*`.
    pub principal: String,
    /// An IP address as the client's address prints, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

/// A pattern and an entry (`AclBinding`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(pattern=ResourcePattern(resourceType={}, name={}, patternType={}), \
             entry=(principal={}, host={}, operation={}, permissionType={}))",
            self.pattern.resource_type,
            self.pattern.name,
            self.pattern.pattern_type,
            self.entry.principal,
            self.entry.host,
            self.entry.operation,
            self.entry.permission_type
        )
    }
}

/// `ResourcePatternFilter`: `None` name matches every name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePatternFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
}

impl ResourcePatternFilter {
    /// True if a filter field is UNKNOWN (Kafka's `isUnknown`).
    pub fn is_unknown(&self) -> bool {
        self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
    }

    /// Kafka's `ResourcePatternFilter.matches`: a MATCH filter matches the
    /// LITERAL patterns of its name and of `*`, and the PREFIXED patterns
    /// its name starts with; ANY matches every pattern type by name.
    pub fn matches(&self, p: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != p.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == p.pattern_type {
            return name == &p.name;
        }
        match p.pattern_type {
            PatternType::Literal => name == &p.name || p.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&p.name),
            _ => false,
        }
    }
}

/// `AccessControlEntryFilter`: `None` principal or host match any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessControlEntryFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl AccessControlEntryFilter {
    /// True if a filter field is UNKNOWN.
    pub fn is_unknown(&self) -> bool {
        self.operation == AclOperation::Unknown
            || self.permission_type == AclPermissionType::Unknown
    }

    /// Kafka's `AccessControlEntryFilter.matches`: exact fields or ANY.
    pub fn matches(&self, e: &AccessControlEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| p == &e.principal)
            && self.host.as_ref().is_none_or(|h| h == &e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission_type == AclPermissionType::Any
                || self.permission_type == e.permission_type)
    }
}

/// `AclBindingFilter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub pattern: ResourcePatternFilter,
    pub entry: AccessControlEntryFilter,
}

impl AclBindingFilter {
    /// The filter that matches every binding (`AclBindingFilter.ANY`).
    pub fn any() -> Self {
        Self {
            pattern: ResourcePatternFilter {
                resource_type: ResourceType::Any,
                name: None,
                pattern_type: PatternType::Any,
            },
            entry: AccessControlEntryFilter {
                principal: None,
                host: None,
                operation: AclOperation::Any,
                permission_type: AclPermissionType::Any,
            },
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.pattern.is_unknown() || self.entry.is_unknown()
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        self.pattern.matches(&b.pattern) && self.entry.matches(&b.entry)
    }
}

/// Kafka's checks of a binding to create (`AclControlManager.validateNewAcl`,
/// whose messages these are), plus a principal that parses as `type:name`
/// (Kafka's `CreateAcls` handler checks that at the broker).
pub fn validate_new_binding(b: &AclBinding) -> Result<(), AuthError> {
    let invalid = |what: String| Err(AuthError::InvalidAcl(what));
    match b.pattern.resource_type {
        ResourceType::Unknown | ResourceType::Any => {
            return invalid(format!("Invalid resourceType {}", b.pattern.resource_type))
        }
        _ => {}
    }
    if !matches!(
        b.pattern.pattern_type,
        PatternType::Literal | PatternType::Prefixed
    ) {
        return invalid(format!("Invalid patternType {}", b.pattern.pattern_type));
    }
    if matches!(b.entry.operation, AclOperation::Unknown | AclOperation::Any) {
        return invalid(format!("Invalid operation {}", b.entry.operation));
    }
    if !matches!(
        b.entry.permission_type,
        AclPermissionType::Allow | AclPermissionType::Deny
    ) {
        return invalid(format!(
            "Invalid permissionType {}",
            b.entry.permission_type
        ));
    }
    if b.pattern.name.is_empty() {
        return invalid("Resource name should not be empty".into());
    }
    if b.entry.principal.parse::<crate::KafkaPrincipal>().is_err() {
        return invalid(format!("Invalid principal {}", b.entry.principal));
    }
    Ok(())
}
