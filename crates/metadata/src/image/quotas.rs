//! Client quotas in the image (Kafka's `ClientQuotasImage`): quota values
//! by key, per client quota entity. An entity is a valid combination of
//! Kafka's entity types `user` and `client-id`, or `ip` alone, each either
//! named or the type's default entity.
//!
//! Invariant: an entity in [`ClientQuotas`] has at least one key (removing
//! its last key removes it), and every entity passed
//! [`ClientQuotaEntity::from_pairs`].

use std::collections::BTreeMap;

use crate::error::MetadataError;
use crate::record::{ClientQuotaRecord, EntityData};

/// Kafka's `ClientQuotaEntity.USER`.
pub const USER: &str = "user";
/// Kafka's `ClientQuotaEntity.CLIENT_ID`.
pub const CLIENT_ID: &str = "client-id";
/// Kafka's `ClientQuotaEntity.IP`.
pub const IP: &str = "ip";

/// The name of one part of an entity: a given name, or the default entity
/// of its type (a null name on the wire). `Default` sorts first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    Default,
    Name(String),
}

impl EntityName {
    pub fn from_wire(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Name(n.to_owned()))
    }
    /// The wire form: `None` for the default entity.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Name(n) => Some(n),
        }
    }
}

/// A client quota entity: which of the three types it has, and their names.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientQuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
    pub ip: Option<EntityName>,
}

impl ClientQuotaEntity {
    /// An entity from (type, name) pairs, checked as Kafka's
    /// `ClientQuotaControlManager` checks them (its messages): not empty,
    /// known types, each type once, no empty name, and `ip` not combined
    /// with `user` or `client-id`.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<ClientQuotaEntity, MetadataError> {
        let invalid = |m: String| Err(MetadataError::InvalidQuotaEntity(m));
        let mut entity = ClientQuotaEntity::default();
        let mut any = false;
        for (entity_type, name) in pairs {
            any = true;
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => &mut entity.ip,
                other => return invalid(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return invalid(format!(
                    "Invalid client quota entity, duplicate entity entry {entity_type}"
                ));
            }
            if name == Some("") {
                return invalid(format!("Empty {entity_type} not supported"));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if !any {
            return invalid("Invalid empty client quota entity".into());
        }
        if entity.ip.is_some() && (entity.user.is_some() || entity.client_id.is_some()) {
            return invalid(
                "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
                    .into(),
            );
        }
        Ok(entity)
    }

    /// The (type, name) pairs, in the order user, client-id, ip.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> {
        [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ]
        .into_iter()
        .filter_map(|(t, n)| n.as_ref().map(|n| (t, n.as_wire())))
    }

    /// The record form of the entity.
    pub fn to_entity_data(&self) -> Vec<EntityData> {
        self.pairs()
            .map(|(t, n)| EntityData {
                entity_type: t.to_owned(),
                entity_name: n.map(str::to_owned),
            })
            .collect()
    }
}

impl std::fmt::Display for ClientQuotaEntity {
    /// Kafka's `ClientQuotaEntity.toString` shape: `{user=alice, client-id=null}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (t, n)) in self.pairs().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t}={}", n.unwrap_or("null"))?;
        }
        f.write_str("}")
    }
}

/// Quota values by key (`producer_byte_rate`, ...).
pub type QuotaValues = BTreeMap<String, f64>;

/// Every client quota entity that has a value, with its values. Values
/// compare bit for bit, so images stay `Eq`.
#[derive(Clone, Debug, Default)]
pub struct ClientQuotas {
    by_entity: BTreeMap<ClientQuotaEntity, QuotaValues>,
}

impl PartialEq for ClientQuotas {
    fn eq(&self, other: &Self) -> bool {
        self.by_entity.len() == other.by_entity.len()
            && self
                .by_entity
                .iter()
                .zip(&other.by_entity)
                .all(|((e1, v1), (e2, v2))| {
                    e1 == e2
                        && v1.len() == v2.len()
                        && v1
                            .iter()
                            .zip(v2)
                            .all(|((k1, x1), (k2, x2))| k1 == k2 && x1.to_bits() == x2.to_bits())
                })
    }
}

impl Eq for ClientQuotas {}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.by_entity.is_empty()
    }
    pub fn len(&self) -> usize {
        self.by_entity.len()
    }
    /// Entities in order, with their values.
    pub fn iter(&self) -> impl Iterator<Item = (&ClientQuotaEntity, &QuotaValues)> {
        self.by_entity.iter()
    }
    /// One entity's values (None: it has none).
    pub fn get(&self, entity: &ClientQuotaEntity) -> Option<&QuotaValues> {
        self.by_entity.get(entity)
    }
    /// One value of one entity.
    pub fn value(&self, entity: &ClientQuotaEntity, key: &str) -> Option<f64> {
        self.by_entity.get(entity)?.get(key).copied()
    }

    pub(crate) fn set(&mut self, entity: ClientQuotaEntity, key: String, value: f64) {
        self.by_entity.entry(entity).or_default().insert(key, value);
    }

    pub(crate) fn remove(&mut self, entity: &ClientQuotaEntity, key: &str) {
        if let Some(values) = self.by_entity.get_mut(entity) {
            values.remove(key);
            if values.is_empty() {
                self.by_entity.remove(entity);
            }
        }
    }

    /// The records that recreate these quotas, by entity and key.
    pub(crate) fn to_records(&self) -> impl Iterator<Item = ClientQuotaRecord> + '_ {
        self.by_entity.iter().flat_map(|(entity, values)| {
            values.iter().map(move |(key, &value)| ClientQuotaRecord {
                entity: entity.to_entity_data(),
                key: key.clone(),
                value,
                remove: false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_checked_with_kafkas_messages() {
        let err = |pairs: &[(&str, Option<&str>)]| {
            ClientQuotaEntity::from_pairs(pairs.iter().copied())
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[]).ends_with("Invalid empty client quota entity"));
        assert!(err(&[("group", Some("g"))]).ends_with("Unhandled client quota entity type: group"));
        assert!(err(&[(USER, Some("a")), (USER, None)]).ends_with("duplicate entity entry user"));
        assert!(err(&[(CLIENT_ID, Some(""))]).ends_with("Empty client-id not supported"));
        assert!(err(&[(IP, None), (USER, Some("a"))]).contains("IP entity should not be combined"));
        let e = ClientQuotaEntity::from_pairs([(CLIENT_ID, None), (USER, Some("alice"))]).unwrap();
        assert_eq!(e.to_string(), "{user=alice, client-id=null}");
        let pairs: Vec<_> = e.pairs().collect();
        assert_eq!(pairs, vec![(USER, Some("alice")), (CLIENT_ID, None)]);
    }

    #[test]
    fn removing_the_last_key_removes_the_entity() {
        let e = ClientQuotaEntity::from_pairs([(USER, Some("a"))]).unwrap();
        let mut q = ClientQuotas::default();
        q.set(e.clone(), "producer_byte_rate".into(), 10.0);
        q.set(e.clone(), "consumer_byte_rate".into(), 20.0);
        q.remove(&e, "producer_byte_rate");
        assert_eq!(q.value(&e, "consumer_byte_rate"), Some(20.0));
        q.remove(&e, "consumer_byte_rate");
        assert!(q.is_empty());
        q.remove(&e, "nothing");
        assert!(q.is_empty());
    }
}
