//! Setting or removing one client quota value (AlterClientQuotas), planned
//! first: the cluster validates the change (`validate_only`) and the plan
//! says what the value is now.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::AlterClientQuotasRequest;
use sluice_client::str_bytes;

use super::security::quotas;
use super::{kafka_error, Session};
use crate::ConsoleError;

const ALTER_QUOTAS_VERSIONS: (i16, i16) = (0, 1);
/// The entity types a quota is set on.
pub const ENTITY_TYPES: [&str; 3] = ["user", "client-id", "ip"];

/// One quota change: `value` `None` removes the key.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaChange {
    pub entity_type: String,
    /// `None`: the entity type's default.
    pub entity_name: Option<String>,
    pub key: String,
    pub value: Option<f64>,
}

impl QuotaChange {
    /// `user=alice` or `user (default)`.
    pub fn entity(&self) -> String {
        match &self.entity_name {
            Some(n) => format!("{}={n}", self.entity_type),
            None => format!("{} (default)", self.entity_type),
        }
    }
}

/// The value the entity has for the key now, if any; and has the cluster
/// validate `c` without making it.
pub fn plan(session: &mut Session, c: &QuotaChange) -> Result<Option<f64>, ConsoleError> {
    let now = quotas(session)?
        .into_iter()
        .find(|r| r.entity == [(c.entity_type.clone(), c.entity_name.clone())])
        .and_then(|r| r.values.into_iter().find(|(k, _)| *k == c.key))
        .map(|(_, v)| v);
    alter(session, c, true)?;
    Ok(now)
}

/// Makes the change.
pub fn apply(session: &mut Session, c: &QuotaChange) -> Result<(), ConsoleError> {
    alter(session, c, false)
}

fn alter(session: &mut Session, c: &QuotaChange, validate_only: bool) -> Result<(), ConsoleError> {
    let req = AlterClientQuotasRequest::default()
        .with_validate_only(validate_only)
        .with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(str_bytes(&c.entity_type))
                .with_entity_name(c.entity_name.as_deref().map(str_bytes))])
            .with_ops(vec![OpData::default()
                .with_key(str_bytes(&c.key))
                .with_value(c.value.unwrap_or(0.0))
                .with_remove(c.value.is_none())])]);
    let (_, resp) = session.send(&req, ALTER_QUOTAS_VERSIONS)?;
    for e in resp.entries {
        if e.error_code != 0 {
            return Err(kafka_error(
                format!("altering quota {} of {}", c.key, c.entity()),
                e.error_code,
                e.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}
