//! The ACLs in the order Kafka's `StandardAuthorizerData` searches them:
//! by resource type, then resource name in *reverse* order, so every ACL
//! whose name is a prefix of a resource name comes after that name. One
//! authorization is a few range scans of an ordered set, never a pass over
//! every ACL.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use super::types::*;

/// One ACL as the authorizer keeps it (Kafka's `StandardAcl`): a binding
/// with LITERAL or PREFIXED pattern, flattened, ordered for the search.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StandardAcl {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl Ord for StandardAcl {
    /// Kafka's `StandardAcl.compareTo`: resource type, then the name
    /// REVERSED, then pattern type, operation, principal, host, permission.
    fn cmp(&self, o: &Self) -> Ordering {
        self.resource_type
            .cmp(&o.resource_type)
            .then_with(|| o.resource_name.cmp(&self.resource_name))
            .then_with(|| self.pattern_type.cmp(&o.pattern_type))
            .then_with(|| self.operation.cmp(&o.operation))
            .then_with(|| self.principal.cmp(&o.principal))
            .then_with(|| self.host.cmp(&o.host))
            .then_with(|| self.permission_type.cmp(&o.permission_type))
    }
}

impl PartialOrd for StandardAcl {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl StandardAcl {
    /// The flattened form of a binding (Kafka's `StandardAcl.fromAclBinding`).
    pub fn from_binding(b: &AclBinding) -> Self {
        Self {
            resource_type: b.pattern.resource_type,
            resource_name: b.pattern.name.clone(),
            pattern_type: b.pattern.pattern_type,
            principal: b.entry.principal.clone(),
            host: b.entry.host.clone(),
            operation: b.entry.operation,
            permission_type: b.entry.permission_type,
        }
    }

    pub fn to_binding(&self) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: self.resource_type,
                name: self.resource_name.clone(),
                pattern_type: self.pattern_type,
            },
            entry: AccessControlEntry {
                principal: self.principal.clone(),
                host: self.host.clone(),
                operation: self.operation,
                permission_type: self.permission_type,
            },
        }
    }

    /// The smallest ACL of a resource type and name with the given
    /// pattern type: the start of a range scan. UNKNOWN sorts first.
    pub(crate) fn exemplar(rt: ResourceType, name: &str, pattern_type: PatternType) -> Self {
        Self {
            resource_type: rt,
            resource_name: name.to_owned(),
            pattern_type,
            principal: String::new(),
            host: String::new(),
            operation: AclOperation::Unknown,
            permission_type: AclPermissionType::Unknown,
        }
    }

    /// True if this ACL's pattern covers the literal resource `name`
    /// (a LITERAL of the name or of `*`, or a PREFIXED prefix of it).
    pub fn pattern_covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => {
                self.resource_name == name || self.resource_name == WILDCARD_RESOURCE
            }
            PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
            _ => false,
        }
    }
}

/// Every ACL, ordered for the search (Kafka's `AclCache.aclsByResource`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclIndex {
    acls: BTreeSet<StandardAcl>,
}

impl FromIterator<StandardAcl> for AclIndex {
    fn from_iter<I: IntoIterator<Item = StandardAcl>>(iter: I) -> Self {
        Self {
            acls: iter.into_iter().collect(),
        }
    }
}

impl AclIndex {
    pub fn insert(&mut self, acl: StandardAcl) -> bool {
        self.acls.insert(acl)
    }

    pub fn remove(&mut self, acl: &StandardAcl) -> bool {
        self.acls.remove(acl)
    }

    pub fn len(&self) -> usize {
        self.acls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acls.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &StandardAcl> {
        self.acls.iter()
    }

    /// The bindings a filter matches (DescribeAcls), in index order.
    pub fn bindings(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.acls
            .iter()
            .map(StandardAcl::to_binding)
            .filter(|b| filter.matches(b))
            .collect()
    }

    /// Calls `visit` with every ACL whose pattern covers the literal
    /// resource `(rt, name)`, in Kafka's search order: the name's own
    /// section (its LITERAL ACLs and every PREFIXED prefix), then the
    /// LITERAL `*` ACLs. `visit` returns false to stop.
    pub fn for_each_covering(
        &self,
        rt: ResourceType,
        name: &str,
        mut visit: impl FnMut(&StandardAcl) -> bool,
    ) {
        if !self.scan_section(rt, name, name, PatternType::Unknown, &mut visit) {
            return;
        }
        if name != WILDCARD_RESOURCE {
            self.scan_section(
                rt,
                name,
                WILDCARD_RESOURCE,
                PatternType::Literal,
                &mut visit,
            );
        }
    }

    /// Kafka's `checkSection`: from `start`, step forwards while ACL names
    /// are prefixes of `name`; at the first that is not, jump to the
    /// longest common prefix, where the next shorter prefixes begin.
    /// Returns false if `visit` stopped the scan.
    fn scan_section(
        &self,
        rt: ResourceType,
        name: &str,
        start: &str,
        start_pattern: PatternType,
        visit: &mut impl FnMut(&StandardAcl) -> bool,
    ) -> bool {
        let mut exemplar = StandardAcl::exemplar(rt, start, start_pattern);
        let mut iter = self
            .acls
            .range((Bound::Included(exemplar.clone()), Bound::Unbounded));
        while let Some(acl) = iter.next() {
            if acl.resource_type != rt {
                break;
            }
            let common = common_prefix_len(name, &acl.resource_name);
            let wildcard =
                acl.resource_name == WILDCARD_RESOURCE && acl.pattern_type == PatternType::Literal;
            if common == acl.resource_name.len() {
                // A LITERAL ACL on a proper prefix of the name is not ours,
                // but PREFIXED ACLs of shorter names may follow. (Kafka
                // skips the LITERAL `*` here too when the name starts with
                // `*`, a name only groups and transactional ids can have;
                // `*` covers every name here, as documented.)
                if acl.pattern_type == PatternType::Literal && common != name.len() && !wildcard {
                    continue;
                }
            } else if !wildcard {
                // Past every ACL whose name extends name[..common]: the
                // remaining candidates are prefixes of name[..common].
                exemplar.resource_name = name[..common].to_owned();
                iter = self
                    .acls
                    .range((Bound::Included(exemplar.clone()), Bound::Unbounded));
                continue;
            }
            if !visit(acl) {
                return false;
            }
        }
        true
    }
}

/// The length in bytes of the longest common prefix of `a` and `b` that
/// ends on a character boundary of both.
fn common_prefix_len(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(n) {
        n -= 1;
    }
    n
}
