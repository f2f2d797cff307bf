//! `ClientQuotaRecord` (api key 14): one quota key of one client quota
//! entity was set to a value, or removed. The entity is Kafka's list of
//! (entity type, entity name) pairs, a null name meaning the type's default
//! entity (`user`, `client-id`, `ip`; checked on replay, not here).
//!
//! The value is an IEEE-754 float64 as Kafka writes it. Records compare
//! their values bit for bit, so every record (NaN included) equals its own
//! decoding and `MetadataRecord` stays `Eq`.

use crate::codec::*;
use crate::error::MetadataError;

/// One (entity type, entity name) pair; `None` names the default entity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntityData {
    pub entity_type: String,
    pub entity_name: Option<String>,
}

/// `ClientQuotaRecord` v0.
#[derive(Clone, Debug)]
pub struct ClientQuotaRecord {
    pub entity: Vec<EntityData>,
    pub key: String,
    /// Ignored when `remove` is set.
    pub value: f64,
    pub remove: bool,
}

impl PartialEq for ClientQuotaRecord {
    fn eq(&self, other: &Self) -> bool {
        self.entity == other.entity
            && self.key == other.key
            && self.value.to_bits() == other.value.to_bits()
            && self.remove == other.remove
    }
}

impl Eq for ClientQuotaRecord {}

impl ClientQuotaRecord {
    pub const API_KEY: i16 = 14;
    pub const HIGHEST_VERSION: i16 = 0;

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        put_compact_len(out, Some(self.entity.len()), "Entity")?;
        for e in &self.entity {
            put_string(out, &e.entity_type, "EntityType")?;
            put_nullable_string(out, e.entity_name.as_deref(), "EntityName")?;
            Tagged::default().write(out)?;
        }
        put_string(out, &self.key, "Key")?;
        put_f64(out, self.value);
        put_bool(out, self.remove);
        Tagged::default().write(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, MetadataError> {
        // Smallest entity: an empty type, a null name, no tagged fields.
        let n = r
            .compact_len(3, "Entity")?
            .ok_or(MetadataError::Malformed("null in a non-nullable array"))?;
        let mut entity = Vec::with_capacity(n);
        for _ in 0..n {
            let e = EntityData {
                entity_type: r.string("EntityType")?,
                entity_name: r.nullable_string("EntityName")?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            entity.push(e);
        }
        let rec = ClientQuotaRecord {
            entity,
            key: r.string("Key")?,
            value: r.f64("Value")?,
            remove: r.bool("Remove")?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MetadataRecord;

    #[test]
    fn bytes_are_kafkas() {
        // Worked by hand from ClientQuotaRecord.json: frame 1, api key 14,
        // version 0; one entity ("user", null, no tags); key "k"; float64
        // 1.5 big-endian; remove false; no tags.
        let rec = MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: vec![EntityData {
                entity_type: "user".into(),
                entity_name: None,
            }],
            key: "k".into(),
            value: 1.5,
            remove: false,
        });
        let bytes = rec.to_bytes().unwrap();
        let mut want = vec![1, 14, 0, 2, 5, b'u', b's', b'e', b'r', 0, 0, 2, b'k'];
        want.extend_from_slice(&1.5f64.to_be_bytes());
        want.extend_from_slice(&[0, 0]);
        assert_eq!(bytes, want);
        assert_eq!(MetadataRecord::decode(&bytes).unwrap(), rec);
        // A hostile entity count is an error, not an allocation.
        assert!(MetadataRecord::decode(&[1, 14, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
