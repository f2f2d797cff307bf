//! The ACLs of the image (Kafka's `AclsImage`): each by the id the
//! controller gave it, and the same ACLs ordered for the authorizer's
//! search, built once per change so that every broker request reads a
//! ready index.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_auth::acl::{
    AclIndex, AclOperation, AclPermissionType, PatternType, ResourceType, StandardAcl,
};
use uuid::Uuid;

use crate::error::MetadataError;
use crate::record::AccessControlEntryRecord;

/// Every ACL, by id and in search order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclsImage {
    by_id: BTreeMap<Uuid, StandardAcl>,
    index: Arc<AclIndex>,
}

impl AclsImage {
    pub(crate) fn new(by_id: BTreeMap<Uuid, StandardAcl>) -> Self {
        let index = Arc::new(by_id.values().cloned().collect());
        Self { by_id, index }
    }

    pub fn by_id(&self) -> &BTreeMap<Uuid, StandardAcl> {
        &self.by_id
    }

    pub fn get(&self, id: Uuid) -> Option<&StandardAcl> {
        self.by_id.get(&id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The ACLs in the authorizer's search order (shared, not copied).
    pub fn index(&self) -> &Arc<AclIndex> {
        &self.index
    }
}

/// The ACL a record describes, if every code is one a binding may hold
/// (Kafka's `StandardAcl.fromRecord` plus `validateNewAcl`'s checks).
pub fn acl_from_record(r: &AccessControlEntryRecord) -> Result<StandardAcl, MetadataError> {
    let acl = StandardAcl {
        resource_type: ResourceType::from_code(r.resource_type),
        resource_name: r.resource_name.clone(),
        pattern_type: PatternType::from_code(r.pattern_type),
        principal: r.principal.clone(),
        host: r.host.clone(),
        operation: AclOperation::from_code(r.operation),
        permission_type: AclPermissionType::from_code(r.permission_type),
    };
    sluice_auth::acl::validate_new_binding(&acl.to_binding())
        .map_err(|e| MetadataError::InvalidAcl(e.to_string()))?;
    Ok(acl)
}

/// The record of an ACL with its id.
pub fn acl_to_record(id: Uuid, acl: &StandardAcl) -> AccessControlEntryRecord {
    AccessControlEntryRecord {
        id,
        resource_type: acl.resource_type.code(),
        resource_name: acl.resource_name.clone(),
        pattern_type: acl.pattern_type.code(),
        principal: acl.principal.clone(),
        host: acl.host.clone(),
        operation: acl.operation.code(),
        permission_type: acl.permission_type.code(),
    }
}
