//! Topic records: `TopicRecord` (api key 2), `PartitionRecord` (3),
//! `PartitionChangeRecord` (5) and `RemoveTopicRecord` (9).

use sluice_record::LeaderEpoch;
use uuid::Uuid;

use crate::codec::*;
use crate::error::MetadataError;
use crate::types::{BrokerId, PartitionEpoch};

fn id(b: BrokerId) -> i32 {
    b.0
}

/// `TopicRecord` v0: a topic was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

impl TopicRecord {
    pub const API_KEY: i16 = 2;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_string(out, &self.name, "Name")?;
        put_uuid(out, self.topic_id);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = TopicRecord {
            name: r.string("Name")?,
            topic_id: r.uuid("TopicId")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

/// `PartitionRecord` v0-2: a partition's whole registration (creation, and
/// every partition in a snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    /// -1 ([`BrokerId::NO_LEADER`]) when the partition has no leader.
    pub leader: BrokerId,
    /// Tagged 0; `LeaderRecoveryState` byte (0 recovered, 1 recovering).
    pub leader_recovery_state: i8,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    /// v1+: the log directory of each replica (KIP-858), or empty.
    pub directories: Vec<Uuid>,
    /// v2+, tagged 1 (KIP-966).
    pub eligible_leader_replicas: Option<Vec<BrokerId>>,
    /// v2+, tagged 2 (KIP-966).
    pub last_known_elr: Option<Vec<BrokerId>>,
}

impl PartitionRecord {
    pub const API_KEY: i16 = 3;
    pub const HIGHEST_VERSION: i16 = 2;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i32(out, self.partition_id);
        put_uuid(out, self.topic_id);
        put_i32s(out, &self.replicas, id, "Replicas")?;
        put_i32s(out, &self.isr, id, "Isr")?;
        put_i32s(out, &self.removing_replicas, id, "RemovingReplicas")?;
        put_i32s(out, &self.adding_replicas, id, "AddingReplicas")?;
        put_i32(out, self.leader.0);
        put_i32(out, self.leader_epoch.0);
        put_i32(out, self.partition_epoch.0);
        put_uuids(out, &self.directories, "Directories")?;
        let mut tagged = Tagged::default();
        if self.leader_recovery_state != 0 {
            tagged.field(0, |o| {
                put_i8(o, self.leader_recovery_state);
                Ok(())
            })?;
        }
        if let Some(elr) = &self.eligible_leader_replicas {
            tagged.field(1, |o| put_i32s(o, elr, id, "EligibleLeaderReplicas"))?;
        }
        if let Some(lke) = &self.last_known_elr {
            tagged.field(2, |o| put_i32s(o, lke, id, "LastKnownElr"))?;
        }
        tagged.write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, MetadataError> {
        let partition_id = r.i32("PartitionId")?;
        let topic_id = r.uuid("TopicId")?;
        let replicas = r.i32s("Replicas", BrokerId)?;
        let isr = r.i32s("Isr", BrokerId)?;
        let removing_replicas = r.i32s("RemovingReplicas", BrokerId)?;
        let adding_replicas = r.i32s("AddingReplicas", BrokerId)?;
        let leader = BrokerId(r.i32("Leader")?);
        let leader_epoch = LeaderEpoch(r.i32("LeaderEpoch")?);
        let partition_epoch = PartitionEpoch(r.i32("PartitionEpoch")?);
        let directories = if version >= 1 {
            r.uuids("Directories")?
        } else {
            Vec::new()
        };
        let mut leader_recovery_state = 0;
        let (mut elr, mut lke) = (None, None);
        r.tagged_fields(|tag, f| {
            match tag {
                0 => leader_recovery_state = f.i8("LeaderRecoveryState")?,
                1 if version >= 2 => elr = f.nullable_i32s("EligibleLeaderReplicas", BrokerId)?,
                2 if version >= 2 => lke = f.nullable_i32s("LastKnownElr", BrokerId)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(PartitionRecord {
            partition_id,
            topic_id,
            replicas,
            isr,
            removing_replicas,
            adding_replicas,
            leader,
            leader_recovery_state,
            leader_epoch,
            partition_epoch,
            directories,
            eligible_leader_replicas: elr,
            last_known_elr: lke,
        })
    }
}

/// `PartitionChangeRecord` v0-2: a change to one partition's registration.
/// `None` (and the default -2 leader, -1 recovery state) mean "unchanged".
/// Replaying it bumps the partition epoch, and the leader epoch when the
/// leader field is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    /// Tagged 0.
    pub isr: Option<Vec<BrokerId>>,
    /// Tagged 1; [`BrokerId::NO_LEADER_CHANGE`] (-2) when unchanged,
    /// [`BrokerId::NO_LEADER`] (-1) for "no leader".
    pub leader: BrokerId,
    /// Tagged 2.
    pub replicas: Option<Vec<BrokerId>>,
    /// Tagged 3.
    pub removing_replicas: Option<Vec<BrokerId>>,
    /// Tagged 4.
    pub adding_replicas: Option<Vec<BrokerId>>,
    /// Tagged 5; -1 when unchanged.
    pub leader_recovery_state: i8,
    /// v1+, tagged 8.
    pub directories: Option<Vec<Uuid>>,
    /// v2+, tagged 6.
    pub eligible_leader_replicas: Option<Vec<BrokerId>>,
    /// v2+, tagged 7.
    pub last_known_elr: Option<Vec<BrokerId>>,
}

impl PartitionChangeRecord {
    pub const API_KEY: i16 = 5;
    pub const HIGHEST_VERSION: i16 = 2;

    /// A change of nothing yet, to fill in.
    pub fn new(topic_id: Uuid, partition_id: i32) -> Self {
        PartitionChangeRecord {
            partition_id,
            topic_id,
            isr: None,
            leader: BrokerId::NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: -1,
            directories: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_i32(out, self.partition_id);
        put_uuid(out, self.topic_id);
        let mut t = Tagged::default();
        let list = |t: &mut Tagged, tag, v: &Option<Vec<BrokerId>>, what| match v {
            Some(v) => t.field(tag, |o| put_i32s(o, v, id, what)),
            None => Ok(()),
        };
        list(&mut t, 0, &self.isr, "Isr")?;
        if self.leader != BrokerId::NO_LEADER_CHANGE {
            t.field(1, |o| {
                put_i32(o, self.leader.0);
                Ok(())
            })?;
        }
        list(&mut t, 2, &self.replicas, "Replicas")?;
        list(&mut t, 3, &self.removing_replicas, "RemovingReplicas")?;
        list(&mut t, 4, &self.adding_replicas, "AddingReplicas")?;
        if self.leader_recovery_state != -1 {
            t.field(5, |o| {
                put_i8(o, self.leader_recovery_state);
                Ok(())
            })?;
        }
        list(
            &mut t,
            6,
            &self.eligible_leader_replicas,
            "EligibleLeaderReplicas",
        )?;
        list(&mut t, 7, &self.last_known_elr, "LastKnownElr")?;
        if let Some(dirs) = &self.directories {
            t.field(8, |o| put_uuids(o, dirs, "Directories"))?;
        }
        t.write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, MetadataError> {
        let partition_id = r.i32("PartitionId")?;
        let mut rec = PartitionChangeRecord::new(r.uuid("TopicId")?, partition_id);
        r.tagged_fields(|tag, f| {
            match tag {
                0 => rec.isr = f.nullable_i32s("Isr", BrokerId)?,
                1 => rec.leader = BrokerId(f.i32("Leader")?),
                2 => rec.replicas = f.nullable_i32s("Replicas", BrokerId)?,
                3 => rec.removing_replicas = f.nullable_i32s("RemovingReplicas", BrokerId)?,
                4 => rec.adding_replicas = f.nullable_i32s("AddingReplicas", BrokerId)?,
                5 => rec.leader_recovery_state = f.i8("LeaderRecoveryState")?,
                6 if version >= 2 => {
                    rec.eligible_leader_replicas =
                        f.nullable_i32s("EligibleLeaderReplicas", BrokerId)?
                }
                7 if version >= 2 => {
                    rec.last_known_elr = f.nullable_i32s("LastKnownElr", BrokerId)?
                }
                8 if version >= 1 => rec.directories = f.nullable_uuids("Directories")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(rec)
    }
}

/// `RemoveTopicRecord` v0: a topic (and its partitions and configs) was deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

impl RemoveTopicRecord {
    pub const API_KEY: i16 = 9;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_uuid(out, self.topic_id);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        let rec = RemoveTopicRecord {
            topic_id: r.uuid("TopicId")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}
