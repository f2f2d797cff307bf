//! `UserScramCredentialRecord` (api key 11) and
//! `RemoveUserScramCredentialRecord` (22): a user's SCRAM credential for one
//! mechanism (Kafka's `ScramMechanism` ids: 1 = SCRAM-SHA-256,
//! 2 = SCRAM-SHA-512) was set, or removed. The record holds what a server
//! keeps (salt, StoredKey, ServerKey, iterations), never the password.

use crate::codec::*;
use crate::error::MetadataError;

/// `UserScramCredentialRecord` v0.
#[derive(Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for UserScramCredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserScramCredentialRecord")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl UserScramCredentialRecord {
    pub const API_KEY: i16 = 11;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_string(out, &self.name, "Name")?;
        put_i8(out, self.mechanism);
        put_bytes(out, &self.salt, "Salt")?;
        put_bytes(out, &self.stored_key, "StoredKey")?;
        put_bytes(out, &self.server_key, "ServerKey")?;
        put_i32(out, self.iterations);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = UserScramCredentialRecord {
            name: r.string("Name")?,
            mechanism: r.i8("Mechanism")?,
            salt: r.bytes("Salt")?,
            stored_key: r.bytes("StoredKey")?,
            server_key: r.bytes("ServerKey")?,
            iterations: r.i32("Iterations")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `RemoveUserScramCredentialRecord` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
}

impl RemoveUserScramCredentialRecord {
    pub const API_KEY: i16 = 22;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_string(out, &self.name, "Name")?;
        put_i8(out, self.mechanism);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = RemoveUserScramCredentialRecord {
            name: r.string("Name")?,
            mechanism: r.i8("Mechanism")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}
