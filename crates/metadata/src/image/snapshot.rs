//! The canonical form of an image: the records that recreate it, in a fixed
//! order. It is what a metadata snapshot (log compaction of
//! `__cluster_metadata`) holds, and, encoded, the bytes two replicas
//! compare to prove they hold the same image.
//!
//! Order (Kafka's `MetadataImage.write` order, each part sorted):
//! `metadata.version` first, then the other feature levels by name; broker
//! registrations by id; topics by name, each a `TopicRecord` followed by its
//! `PartitionRecord`s by partition id; config keys by (resource type id,
//! resource name, key); a `ProducerIdsRecord` (broker id and epoch -1, as in
//! Kafka) when a block was ever handed out; SCRAM credentials by (user,
//! mechanism id); ACLs by id; client quotas by (entity, key).

use sluice_record::ProducerId;

use super::MetadataImage;
use crate::codec::{put_i32, put_i64, put_uvarint};
use crate::error::MetadataError;
use crate::record::*;
use crate::types::{BrokerEpoch, BrokerId};

/// The feature Kafka writes first, so that a reader knows the record
/// versions of everything after it.
pub const METADATA_VERSION: &str = "metadata.version";

impl MetadataImage {
    /// The records that recreate this image, in canonical order.
    pub fn write_snapshot(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        let feature = |(name, &level): (&String, &i16)| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.clone(),
                feature_level: level,
            })
        };
        let (mv, others): (Vec<_>, Vec<_>) = self
            .features
            .iter()
            .partition(|(name, _)| name.as_str() == METADATA_VERSION);
        out.extend(mv.into_iter().chain(others).map(feature));
        out.extend(
            self.brokers
                .values()
                .map(|b| MetadataRecord::RegisterBroker(b.to_record())),
        );
        for &id in self.topics_by_name.values() {
            let Some(topic) = self.topic_by_id(id) else {
                debug_assert!(false, "the name index names a topic that is not there");
                continue;
            };
            out.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name().to_owned(),
                topic_id: topic.id(),
            }));
            out.extend(
                topic
                    .partitions()
                    .iter()
                    .map(|(&p, reg)| MetadataRecord::Partition(reg.to_record(topic.id(), p))),
            );
        }
        for (res, keys) in self.configs.iter() {
            out.extend(keys.iter().map(|(k, v)| {
                MetadataRecord::Config(ConfigRecord {
                    resource_type: res.resource_type.id(),
                    resource_name: res.name.clone(),
                    name: k.clone(),
                    value: Some(v.clone()),
                })
            }));
        }
        if self.next_producer_id != ProducerId(0) {
            out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: BrokerId(-1),
                broker_epoch: BrokerEpoch(-1),
                next_producer_id: self.next_producer_id,
            }));
        }
        out.extend(self.scram.iter().map(|((name, mechanism), c)| {
            MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: name.clone(),
                mechanism: *mechanism,
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            })
        }));
        out.extend(
            self.acls.by_id().iter().map(|(&id, acl)| {
                MetadataRecord::AccessControlEntry(super::acl_to_record(id, acl))
            }),
        );
        out.extend(self.quotas.to_records().map(MetadataRecord::ClientQuota));
        out
    }

    /// The canonical bytes of this image: the provenance (last offset as
    /// int64, last epoch as int32), then each snapshot record, framed as in
    /// the log, behind its length as an unsigned varint. Equal images give
    /// equal bytes, and unequal images unequal bytes.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        let mut out = Vec::new();
        put_i64(&mut out, self.provenance.last_offset.0);
        put_i32(&mut out, self.provenance.last_epoch.0);
        let mut buf = Vec::new();
        for record in self.write_snapshot() {
            buf.clear();
            record.encode(&mut buf)?;
            let len =
                u32::try_from(buf.len()).map_err(|_| MetadataError::FieldTooLong("record"))?;
            put_uvarint(&mut out, len);
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }
}
