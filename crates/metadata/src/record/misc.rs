//! `ConfigRecord` (api key 4), `FeatureLevelRecord` (12),
//! `ProducerIdsRecord` (15) and `NoOpRecord` (20).

use sluice_record::ProducerId;

use crate::codec::*;
use crate::error::MetadataError;
use crate::types::{BrokerEpoch, BrokerId};

/// `ConfigRecord` v0: one config key of one resource was set, or deleted
/// (`value: None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRecord {
    /// Kafka's `ConfigResource.Type` id ([`crate::ConfigResourceType`]).
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

impl ConfigRecord {
    pub const API_KEY: i16 = 4;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i8(out, self.resource_type);
        put_string(out, &self.resource_name, "ResourceName")?;
        put_string(out, &self.name, "Name")?;
        put_nullable_string(out, self.value.as_deref(), "Value")?;
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = ConfigRecord {
            resource_type: r.i8("ResourceType")?,
            resource_name: r.string("ResourceName")?,
            name: r.string("Name")?,
            value: r.nullable_string("Value")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `FeatureLevelRecord` v0: a finalized feature level (`metadata.version`,
/// `kraft.version`, `transaction.version`, `group.version` ...); level 0
/// removes the feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

impl FeatureLevelRecord {
    pub const API_KEY: i16 = 12;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_string(out, &self.name, "Name")?;
        put_i16(out, self.feature_level);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = FeatureLevelRecord {
            name: r.string("Name")?,
            feature_level: r.i16("FeatureLevel")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `ProducerIdsRecord` v0: a block of producer ids was handed to a broker;
/// `next_producer_id` is the first id of the next block. (Snapshots write
/// broker id and epoch -1, as Kafka's do.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    pub next_producer_id: ProducerId,
}

impl ProducerIdsRecord {
    pub const API_KEY: i16 = 15;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i32(out, self.broker_id.0);
        put_i64(out, self.broker_epoch.0);
        put_i64(out, self.next_producer_id.0);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = ProducerIdsRecord {
            broker_id: BrokerId(r.i32("BrokerId")?),
            broker_epoch: BrokerEpoch(r.i64("BrokerEpoch")?),
            next_producer_id: ProducerId(r.i64("NextProducerId")?),
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `NoOpRecord` v0: written by the active controller to advance the
/// committed offset (and prove liveness) when nothing else changes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NoOpRecord;

impl NoOpRecord {
    pub const API_KEY: i16 = 20;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(NoOpRecord)
    }
}
