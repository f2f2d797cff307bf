//! AlterClientQuotas, as Kafka's `ClientQuotaControlManager` validates and
//! plans it: each entity a valid combination of known types
//! ([`ClientQuotaEntity::from_pairs`]; an `ip` name must be an IP address,
//! where Kafka also resolves host names), each key known for the entity
//! (`QuotaConfig`'s user/client-id keys, or `connection_creation_rate` for
//! `ip`), each value greater than 0 and integral for the LONG and INT keys,
//! no key twice for an entity and no entity twice in a request (both
//! INVALID_REQUEST). A value equal to the current one writes no record; a
//! removal of an absent key writes none. The valid entities commit
//! together; validate-only plans the same and writes nothing.
//!
//! Unlike Kafka, which keeps the records of an entity's first alteration
//! when the same entity comes again, an entity named twice is refused
//! whole, so an error result always means nothing changed.

use std::collections::BTreeMap;

use sluice_metadata::image::{ClientQuotaEntity, ClientQuotas};
use sluice_metadata::record::ClientQuotaRecord;
use sluice_metadata::MetadataRecord;

use super::QuorumController;
use crate::error::ControllerError;

/// The wire form of an entity: (entity type, name; `None` = the default).
pub type QuotaEntityPairs = Vec<(String, Option<String>)>;

/// One entity's changes: keys set to a value, or removed (`None`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaAlteration {
    pub entity: QuotaEntityPairs,
    pub ops: Vec<(String, Option<f64>)>,
}

/// One result per distinct entity of a request, in first-appearance order.
pub type QuotaResults = Vec<(QuotaEntityPairs, Result<(), ControllerError>)>;

/// How a quota key's value is typed (Kafka's `ConfigDef.Type`).
#[derive(Clone, Copy)]
enum KeyType {
    Long,
    Int,
    Double,
}

/// Quota keys and their types.
type KeyTypes = &'static [(&'static str, KeyType)];

/// The keys of user and client-id entities (`QuotaConfig.userAndClientQuotaConfigs`).
const USER_AND_CLIENT_KEYS: KeyTypes = &[
    ("producer_byte_rate", KeyType::Long),
    ("consumer_byte_rate", KeyType::Long),
    ("request_percentage", KeyType::Double),
    ("controller_mutation_rate", KeyType::Double),
];

/// The keys of ip entities (`QuotaConfig.ipConfigs`).
const IP_KEYS: KeyTypes = &[("connection_creation_rate", KeyType::Int)];

fn invalid(message: String) -> ControllerError {
    ControllerError::InvalidRequest(message)
}

/// Kafka's `validateQuotaKeyValue`.
fn check_value(keys: &[(&str, KeyType)], key: &str, value: f64) -> Result<(), ControllerError> {
    let Some(&(_, kind)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    // Kafka lets NaN through (every comparison with it is false); a NaN
    // quota would make every resolution meaningless, so Sluice refuses it.
    if value.is_nan() || value <= 0.0 {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let (max, name) = match kind {
        KeyType::Double => return Ok(()),
        KeyType::Int => (f64::from(i32::MAX), "an INT"),
        KeyType::Long => (i64::MAX as f64, "a LONG"),
    };
    if value > max {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for {name}."
        )));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(invalid(format!("{key} cannot be a fractional value.")));
    }
    Ok(())
}

/// The entity, checked, and the keys it may have.
fn check_entity(
    pairs: &QuotaEntityPairs,
) -> Result<(ClientQuotaEntity, KeyTypes), ControllerError> {
    let entity =
        ClientQuotaEntity::from_pairs(pairs.iter().map(|(t, n)| (t.as_str(), n.as_deref())))
            .map_err(|e| match e {
                sluice_metadata::MetadataError::InvalidQuotaEntity(m) => invalid(m),
                other => invalid(other.to_string()),
            })?;
    match &entity.ip {
        None => Ok((entity, USER_AND_CLIENT_KEYS)),
        Some(ip) => match ip.as_wire() {
            Some(name) if name.parse::<std::net::IpAddr>().is_err() => Err(invalid(format!(
                "{name} is not a valid IP or resolvable host."
            ))),
            _ => Ok((entity, IP_KEYS)),
        },
    }
}

/// The records of one entity's alteration against the current quotas.
fn plan_entity(
    alteration: &QuotaAlteration,
    current: &ClientQuotas,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let (entity, keys) = check_entity(&alteration.entity)?;
    let mut ops: BTreeMap<&str, Option<f64>> = BTreeMap::new();
    for (key, value) in &alteration.ops {
        if ops.insert(key, *value).is_some() {
            return Err(invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {entity}"
            )));
        }
    }
    let values = current.get(&entity);
    let mut records = Vec::new();
    for (key, value) in ops {
        let now = values.and_then(|v| v.get(key)).copied();
        let record = match value {
            None if now.is_none() => continue,
            None => ClientQuotaRecord {
                entity: entity.to_entity_data(),
                key: key.to_owned(),
                value: 0.0,
                remove: true,
            },
            Some(v) => {
                check_value(keys, key, v)?;
                if now.is_some_and(|n| n.to_bits() == v.to_bits()) {
                    continue;
                }
                ClientQuotaRecord {
                    entity: entity.to_entity_data(),
                    key: key.to_owned(),
                    value: v,
                    remove: false,
                }
            }
        };
        records.push(MetadataRecord::ClientQuota(record));
    }
    Ok(records)
}

/// The records and per-entity results of one request.
pub(super) fn plan(
    alterations: &[QuotaAlteration],
    current: &ClientQuotas,
) -> (Vec<MetadataRecord>, QuotaResults) {
    // Entities compare as maps: the order of their pairs does not matter.
    let key_of = |pairs: &QuotaEntityPairs| {
        let mut k = pairs.clone();
        k.sort();
        k
    };
    let mut count: BTreeMap<QuotaEntityPairs, usize> = BTreeMap::new();
    for a in alterations {
        *count.entry(key_of(&a.entity)).or_default() += 1;
    }
    let mut seen: BTreeMap<QuotaEntityPairs, ()> = BTreeMap::new();
    let mut records = Vec::new();
    let mut results = Vec::new();
    for a in alterations {
        let key = key_of(&a.entity);
        if seen.insert(key.clone(), ()).is_some() {
            continue;
        }
        let result = if count[&key] > 1 {
            Err(invalid(format!(
                "Ignoring duplicate entity {}",
                display(&a.entity)
            )))
        } else {
            plan_entity(a, current).map(|r| records.extend(r))
        };
        results.push((a.entity.clone(), result));
    }
    (records, results)
}

fn display(pairs: &QuotaEntityPairs) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

impl QuorumController {
    /// AlterClientQuotas: the valid entities' changes commit together
    /// (none when `validate_only`), and each entity gets its result.
    pub async fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Result<QuotaResults, ControllerError> {
        self.submit(move |ctx| {
            let (records, results) = plan(&alterations, ctx.image.client_quotas());
            Ok((if validate_only { Vec::new() } else { records }, results))
        })
        .await
    }
}
