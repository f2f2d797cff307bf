//! Replay of the ACL records: `AccessControlEntryRecord` must carry codes
//! a binding may hold and a new id; `RemoveAccessControlEntryRecord` must
//! name an existing id (Kafka's `AclControlManager.replay` fails then too).

use std::collections::BTreeMap;

use sluice_auth::acl::StandardAcl;
use uuid::Uuid;

use super::MetadataDelta;
use crate::error::MetadataError;
use crate::image::acl_from_record;
use crate::record::{AccessControlEntryRecord, RemoveAccessControlEntryRecord};

impl MetadataDelta {
    fn acls_mut(&mut self) -> &mut BTreeMap<Uuid, StandardAcl> {
        let base = &self.base;
        self.acls.get_or_insert_with(|| base.acls.by_id().clone())
    }

    fn acl_exists(&self, id: Uuid) -> bool {
        match &self.acls {
            Some(a) => a.contains_key(&id),
            None => self.base.acls.get(id).is_some(),
        }
    }

    pub(super) fn access_control_entry(
        &mut self,
        r: &AccessControlEntryRecord,
    ) -> Result<(), MetadataError> {
        let acl = acl_from_record(r)?;
        if self.acl_exists(r.id) {
            return Err(MetadataError::AclIdAlreadyExists(r.id));
        }
        self.acls_mut().insert(r.id, acl);
        Ok(())
    }

    pub(super) fn remove_access_control_entry(
        &mut self,
        r: &RemoveAccessControlEntryRecord,
    ) -> Result<(), MetadataError> {
        if !self.acl_exists(r.id) {
            return Err(MetadataError::UnknownAclId(r.id));
        }
        self.acls_mut().remove(&r.id);
        Ok(())
    }
}
