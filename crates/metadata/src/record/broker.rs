//! Broker registration records: `RegisterBrokerRecord` (api key 0),
//! `UnregisterBrokerRecord` (1) and `BrokerRegistrationChangeRecord` (17).

use uuid::Uuid;

use crate::codec::*;
use crate::error::MetadataError;
use crate::types::{BrokerEpoch, BrokerId};

/// A listener the broker accepts connections on (`BrokerEndpoint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// The listener name (`PLAINTEXT`, ...); the collection's map key.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id (0 = PLAINTEXT).
    pub security_protocol: i16,
}

/// A feature range the broker supports (`BrokerFeature`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

/// `RegisterBrokerRecord` v0-3: a broker (re)registered with the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: BrokerId,
    /// v2+; always false in Sluice (there is no ZooKeeper migration).
    pub is_migrating_zk_broker: bool,
    pub incarnation_id: Uuid,
    pub broker_epoch: BrokerEpoch,
    pub end_points: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// v1+.
    pub in_controlled_shutdown: bool,
    /// v3+, tagged 0: the broker's online log directories (KIP-858).
    pub log_dirs: Vec<Uuid>,
}

impl RegisterBrokerRecord {
    pub const API_KEY: i16 = 0;
    pub const HIGHEST_VERSION: i16 = 3;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i32(out, self.broker_id.0);
        put_bool(out, self.is_migrating_zk_broker);
        put_uuid(out, self.incarnation_id);
        put_i64(out, self.broker_epoch.0);
        put_uvarint(out, count(self.end_points.len(), "EndPoints")?);
        for e in &self.end_points {
            put_string(out, &e.name, "Name")?;
            put_string(out, &e.host, "Host")?;
            put_u16(out, e.port);
            put_i16(out, e.security_protocol);
            Tagged::default().write(out)?;
        }
        put_uvarint(out, count(self.features.len(), "Features")?);
        for f in &self.features {
            put_string(out, &f.name, "Name")?;
            put_i16(out, f.min_supported_version);
            put_i16(out, f.max_supported_version);
            Tagged::default().write(out)?;
        }
        put_nullable_string(out, self.rack.as_deref(), "Rack")?;
        put_bool(out, self.fenced);
        put_bool(out, self.in_controlled_shutdown);
        let mut tagged = Tagged::default();
        if !self.log_dirs.is_empty() {
            tagged.field(0, |o| put_uuids(o, &self.log_dirs, "LogDirs"))?;
        }
        tagged.write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, MetadataError> {
        let broker_id = BrokerId(r.i32("BrokerId")?);
        let is_migrating_zk_broker = version >= 2 && r.bool("IsMigratingZkBroker")?;
        let incarnation_id = r.uuid("IncarnationId")?;
        let broker_epoch = BrokerEpoch(r.i64("BrokerEpoch")?);
        // Smallest endpoint: two empty strings, port, protocol, no tags.
        let n = r.compact_len(7, "EndPoints")?.ok_or(NULL_ARRAY)?;
        let mut end_points = Vec::with_capacity(n);
        for _ in 0..n {
            let e = BrokerEndpoint {
                name: r.string("Name")?,
                host: r.string("Host")?,
                port: r.u16("Port")?,
                security_protocol: r.i16("SecurityProtocol")?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            end_points.push(e);
        }
        let n = r.compact_len(6, "Features")?.ok_or(NULL_ARRAY)?;
        let mut features = Vec::with_capacity(n);
        for _ in 0..n {
            let f = BrokerFeature {
                name: r.string("Name")?,
                min_supported_version: r.i16("MinSupportedVersion")?,
                max_supported_version: r.i16("MaxSupportedVersion")?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            features.push(f);
        }
        let rack = r.nullable_string("Rack")?;
        let fenced = r.bool("Fenced")?;
        let in_controlled_shutdown = version >= 1 && r.bool("InControlledShutdown")?;
        let mut log_dirs = Vec::new();
        r.tagged_fields(|tag, f| match tag {
            0 if version >= 3 => {
                log_dirs = f.uuids("LogDirs")?;
                Ok(true)
            }
            _ => Ok(false),
        })?;
        Ok(RegisterBrokerRecord {
            broker_id,
            is_migrating_zk_broker,
            incarnation_id,
            broker_epoch,
            end_points,
            features,
            rack,
            fenced,
            in_controlled_shutdown,
            log_dirs,
        })
    }
}

const NULL_ARRAY: MetadataError = MetadataError::Malformed("null in a non-nullable array");

fn count(n: usize, what: &'static str) -> Result<u32, MetadataError> {
    u32::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or(MetadataError::FieldTooLong(what))
}

/// `UnregisterBrokerRecord` v0: a broker's registration was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnregisterBrokerRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
}

impl UnregisterBrokerRecord {
    pub const API_KEY: i16 = 1;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i32(out, self.broker_id.0);
        put_i64(out, self.broker_epoch.0);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = UnregisterBrokerRecord {
            broker_id: BrokerId(r.i32("BrokerId")?),
            broker_epoch: BrokerEpoch(r.i64("BrokerEpoch")?),
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `BrokerRegistrationChangeRecord` v0-2: a change to one registration.
/// `fenced` is Kafka's `BrokerRegistrationFencingChange` (1 fence, 0 no
/// change, -1 unfence) and `in_controlled_shutdown` its
/// `BrokerRegistrationInControlledShutdownChange` (0 no change, 1 entered);
/// replay rejects other values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistrationChangeRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    /// Tagged 0.
    pub fenced: i8,
    /// v1+, tagged 1.
    pub in_controlled_shutdown: i8,
    /// v2+, tagged 2; empty means unchanged.
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistrationChangeRecord {
    pub const API_KEY: i16 = 17;
    pub const HIGHEST_VERSION: i16 = 2;
    pub const FENCE: i8 = 1;
    pub const NO_CHANGE: i8 = 0;
    pub const UNFENCE: i8 = -1;
    pub const IN_CONTROLLED_SHUTDOWN: i8 = 1;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i32(out, self.broker_id.0);
        put_i64(out, self.broker_epoch.0);
        let mut tagged = Tagged::default();
        if self.fenced != 0 {
            tagged.field(0, |o| {
                put_i8(o, self.fenced);
                Ok(())
            })?;
        }
        if self.in_controlled_shutdown != 0 {
            tagged.field(1, |o| {
                put_i8(o, self.in_controlled_shutdown);
                Ok(())
            })?;
        }
        if !self.log_dirs.is_empty() {
            tagged.field(2, |o| put_uuids(o, &self.log_dirs, "LogDirs"))?;
        }
        tagged.write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, MetadataError> {
        let broker_id = BrokerId(r.i32("BrokerId")?);
        let broker_epoch = BrokerEpoch(r.i64("BrokerEpoch")?);
        let (mut fenced, mut in_controlled_shutdown, mut log_dirs) = (0, 0, Vec::new());
        r.tagged_fields(|tag, f| {
            match tag {
                0 => fenced = f.i8("Fenced")?,
                1 if version >= 1 => in_controlled_shutdown = f.i8("InControlledShutdown")?,
                2 if version >= 2 => log_dirs = f.uuids("LogDirs")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(BrokerRegistrationChangeRecord {
            broker_id,
            broker_epoch,
            fenced,
            in_controlled_shutdown,
            log_dirs,
        })
    }
}
