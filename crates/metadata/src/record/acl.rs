//! `AccessControlEntryRecord` (api key 18) and
//! `RemoveAccessControlEntryRecord` (19): an ACL was created, with the id
//! the controller gave it, or the ACL of an id was removed. The enum
//! fields hold Kafka's wire codes (`ResourceType`, `PatternType`,
//! `AclOperation`, `AclPermissionType`).

use uuid::Uuid;

use crate::codec::*;
use crate::error::MetadataError;

/// `AccessControlEntryRecord` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessControlEntryRecord {
    pub id: Uuid,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl AccessControlEntryRecord {
    pub const API_KEY: i16 = 18;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_uuid(out, self.id);
        put_i8(out, self.resource_type);
        put_string(out, &self.resource_name, "ResourceName")?;
        put_i8(out, self.pattern_type);
        put_string(out, &self.principal, "Principal")?;
        put_string(out, &self.host, "Host")?;
        put_i8(out, self.operation);
        put_i8(out, self.permission_type);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = AccessControlEntryRecord {
            id: r.uuid("Id")?,
            resource_type: r.i8("ResourceType")?,
            resource_name: r.string("ResourceName")?,
            pattern_type: r.i8("PatternType")?,
            principal: r.string("Principal")?,
            host: r.string("Host")?,
            operation: r.i8("Operation")?,
            permission_type: r.i8("PermissionType")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `RemoveAccessControlEntryRecord` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveAccessControlEntryRecord {
    pub id: Uuid,
}

impl RemoveAccessControlEntryRecord {
    pub const API_KEY: i16 = 19;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_uuid(out, self.id);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = RemoveAccessControlEntryRecord { id: r.uuid("Id")? };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}
