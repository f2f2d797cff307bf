//! Kafka's cluster-metadata records (Kafka 4.1's
//! `metadata/src/main/resources/common/metadata/*.json`), with Kafka's names,
//! api keys, versions and meaning, and their bytes in Kafka's metadata
//! record framing (`MetadataRecordSerde`):
//!
//! ```text
//! frame version (unsigned varint, 1) | api key (unsigned varint)
//!   | version (unsigned varint) | the message, flexible ("compact") encoding
//! ```
//!
//! Each message's fields are in its schema's order; every record type is
//! flexible in all versions, so strings and arrays are compact (length + 1,
//! 0 for null) and every struct ends with a tagged-field section holding the
//! tagged fields that differ from their defaults, in tag order. This is the
//! value of one record in a `__cluster_metadata` batch, so Kafka's
//! `kafka-dump-log --cluster-metadata-decoder` can read a log of them.
//!
//! Where it differs from Kafka's generated classes:
//! - [`MetadataRecord::encode`] always writes the highest version listed
//!   here (Kafka 4.1's highest); Kafka picks the version from
//!   `metadata.version`. Decoding accepts every version 0..=highest.
//! - Unknown tagged fields are skipped on decode, not kept for re-encoding.
//! - Tagged fields must come in strictly increasing tag order (Kafka's
//!   writers always do this; its readers let a repeated tag win).
//! - Only the record types below; other api keys (delegation tokens,
//!   transactions markers, the deprecated Fence/UnfenceBrokerRecord, ZK migration) are [`MetadataError::UnknownApiKey`].
//!
//! Decoding reads untrusted bytes: every count is bounded by the bytes that
//! remain before anything is allocated, strings by Kafka's 32767 bytes, and
//! trailing bytes after a record are an error (as in Kafka).

mod acl;
mod broker;
mod client_quota;
mod misc;
mod scram;
mod topic;

pub use acl::{AccessControlEntryRecord, RemoveAccessControlEntryRecord};
pub use broker::{
    BrokerEndpoint, BrokerFeature, BrokerRegistrationChangeRecord, RegisterBrokerRecord,
    UnregisterBrokerRecord,
};
pub use client_quota::{ClientQuotaRecord, EntityData};
pub use misc::{ConfigRecord, FeatureLevelRecord, NoOpRecord, ProducerIdsRecord};
pub use scram::{RemoveUserScramCredentialRecord, UserScramCredentialRecord};
pub use topic::{PartitionChangeRecord, PartitionRecord, RemoveTopicRecord, TopicRecord};

use crate::codec::{put_uvarint, Reader};
use crate::error::MetadataError;

/// `AbstractApiMessageSerde.DEFAULT_FRAME_VERSION`.
pub const FRAME_VERSION: u32 = 1;

/// One metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker(UnregisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    FeatureLevel(FeatureLevelRecord),
    ProducerIds(ProducerIdsRecord),
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    NoOp(NoOpRecord),
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
    ClientQuota(ClientQuotaRecord),
}

macro_rules! each_record {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            MetadataRecord::RegisterBroker($r) => $body,
            MetadataRecord::UnregisterBroker($r) => $body,
            MetadataRecord::Topic($r) => $body,
            MetadataRecord::Partition($r) => $body,
            MetadataRecord::Config($r) => $body,
            MetadataRecord::PartitionChange($r) => $body,
            MetadataRecord::RemoveTopic($r) => $body,
            MetadataRecord::FeatureLevel($r) => $body,
            MetadataRecord::ProducerIds($r) => $body,
            MetadataRecord::BrokerRegistrationChange($r) => $body,
            MetadataRecord::NoOp($r) => $body,
            MetadataRecord::UserScramCredential($r) => $body,
            MetadataRecord::RemoveUserScramCredential($r) => $body,
            MetadataRecord::AccessControlEntry($r) => $body,
            MetadataRecord::RemoveAccessControlEntry($r) => $body,
            MetadataRecord::ClientQuota($r) => $body,
        }
    };
}

/// A record type's api key and its highest version.
trait Versions {
    const API_KEY: i16;
    const HIGHEST_VERSION: i16;
}

macro_rules! versions {
    ($($t:ty),*) => {$(
        impl Versions for $t {
            const API_KEY: i16 = <$t>::API_KEY;
            const HIGHEST_VERSION: i16 = <$t>::HIGHEST_VERSION;
        }
    )*};
}
versions!(
    RegisterBrokerRecord,
    UnregisterBrokerRecord,
    TopicRecord,
    PartitionRecord,
    ConfigRecord,
    PartitionChangeRecord,
    RemoveTopicRecord,
    FeatureLevelRecord,
    ProducerIdsRecord,
    BrokerRegistrationChangeRecord,
    NoOpRecord,
    UserScramCredentialRecord,
    RemoveUserScramCredentialRecord,
    AccessControlEntryRecord,
    RemoveAccessControlEntryRecord,
    ClientQuotaRecord
);

fn key_and_version<T: Versions>(_: &T) -> (i16, i16) {
    (T::API_KEY, T::HIGHEST_VERSION)
}

impl MetadataRecord {
    /// Kafka's api key of this record type.
    pub fn api_key(&self) -> i16 {
        each_record!(self, r => key_and_version(r).0)
    }

    /// The version [`MetadataRecord::encode`] writes.
    pub fn version(&self) -> i16 {
        each_record!(self, r => key_and_version(r).1)
    }

    /// Appends the framed record to `out`. Fails only for a string longer
    /// than Kafka's 32767 bytes (then `out` holds a partial record: callers
    /// encode into a fresh buffer).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_uvarint(out, FRAME_VERSION);
        put_uvarint(out, self.api_key() as u32);
        put_uvarint(out, self.version() as u32);
        each_record!(self, r => r.write(out))
    }

    /// The framed record as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes one framed record that fills `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        let mut r = Reader::new(bytes);
        let frame = r.uvarint("frame version")?;
        if frame != FRAME_VERSION {
            return Err(MetadataError::UnknownFrameVersion(frame));
        }
        let key = r.uvarint("api key")?;
        let raw_version = r.uvarint("version")?;
        let api_key = i16::try_from(key).map_err(|_| MetadataError::UnknownApiKey(key))?;
        let version = i16::try_from(raw_version).unwrap_or(i16::MAX);
        let check = |highest: i16| {
            if version > highest {
                Err(MetadataError::UnsupportedVersion {
                    api_key,
                    version: raw_version,
                })
            } else {
                Ok(version)
            }
        };
        use MetadataRecord as M;
        let record = match api_key {
            RegisterBrokerRecord::API_KEY => M::RegisterBroker(RegisterBrokerRecord::read(
                &mut r,
                check(RegisterBrokerRecord::HIGHEST_VERSION)?,
            )?),
            UnregisterBrokerRecord::API_KEY => M::UnregisterBroker(UnregisterBrokerRecord::read(
                &mut r,
                check(UnregisterBrokerRecord::HIGHEST_VERSION)?,
            )?),
            TopicRecord::API_KEY => M::Topic(TopicRecord::read(
                &mut r,
                check(TopicRecord::HIGHEST_VERSION)?,
            )?),
            PartitionRecord::API_KEY => M::Partition(PartitionRecord::read(
                &mut r,
                check(PartitionRecord::HIGHEST_VERSION)?,
            )?),
            ConfigRecord::API_KEY => M::Config(ConfigRecord::read(
                &mut r,
                check(ConfigRecord::HIGHEST_VERSION)?,
            )?),
            PartitionChangeRecord::API_KEY => M::PartitionChange(PartitionChangeRecord::read(
                &mut r,
                check(PartitionChangeRecord::HIGHEST_VERSION)?,
            )?),
            RemoveTopicRecord::API_KEY => M::RemoveTopic(RemoveTopicRecord::read(
                &mut r,
                check(RemoveTopicRecord::HIGHEST_VERSION)?,
            )?),
            FeatureLevelRecord::API_KEY => M::FeatureLevel(FeatureLevelRecord::read(
                &mut r,
                check(FeatureLevelRecord::HIGHEST_VERSION)?,
            )?),
            ProducerIdsRecord::API_KEY => M::ProducerIds(ProducerIdsRecord::read(
                &mut r,
                check(ProducerIdsRecord::HIGHEST_VERSION)?,
            )?),
            BrokerRegistrationChangeRecord::API_KEY => {
                M::BrokerRegistrationChange(BrokerRegistrationChangeRecord::read(
                    &mut r,
                    check(BrokerRegistrationChangeRecord::HIGHEST_VERSION)?,
                )?)
            }
            NoOpRecord::API_KEY => M::NoOp(NoOpRecord::read(
                &mut r,
                check(NoOpRecord::HIGHEST_VERSION)?,
            )?),
            UserScramCredentialRecord::API_KEY => {
                M::UserScramCredential(UserScramCredentialRecord::read(
                    &mut r,
                    check(UserScramCredentialRecord::HIGHEST_VERSION)?,
                )?)
            }
            RemoveUserScramCredentialRecord::API_KEY => {
                M::RemoveUserScramCredential(RemoveUserScramCredentialRecord::read(
                    &mut r,
                    check(RemoveUserScramCredentialRecord::HIGHEST_VERSION)?,
                )?)
            }
            AccessControlEntryRecord::API_KEY => {
                M::AccessControlEntry(AccessControlEntryRecord::read(
                    &mut r,
                    check(AccessControlEntryRecord::HIGHEST_VERSION)?,
                )?)
            }
            RemoveAccessControlEntryRecord::API_KEY => {
                M::RemoveAccessControlEntry(RemoveAccessControlEntryRecord::read(
                    &mut r,
                    check(RemoveAccessControlEntryRecord::HIGHEST_VERSION)?,
                )?)
            }
            ClientQuotaRecord::API_KEY => M::ClientQuota(ClientQuotaRecord::read(
                &mut r,
                check(ClientQuotaRecord::HIGHEST_VERSION)?,
            )?),
            _ => return Err(MetadataError::UnknownApiKey(key)),
        };
        r.finish(api_key)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests;
