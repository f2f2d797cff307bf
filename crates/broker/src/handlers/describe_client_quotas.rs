//! DescribeClientQuotas from this broker's image, with the filter
//! semantics of Kafka's `ClientQuotasImage.describe`: each component
//! matches one entity type exactly (a name), its default entity, or any
//! entity of that type ("specified"); a strict filter also excludes
//! entities with types the filter does not name. A malformed filter is
//! answered with Kafka's error and message and no entries.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_metadata::image::quotas::{CLIENT_ID, IP, USER};
use sluice_metadata::image::{ClientQuotaEntity, ClientQuotas, EntityName};

use crate::context::BrokerContext;

/// Kafka's `ClientQuotaFilterComponent` match types.
const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;

/// A checked filter: entity type -> the name it must have (exact or
/// default), and the types that must merely be present.
#[derive(Debug, Default)]
struct Filter {
    exact: BTreeMap<String, EntityName>,
    specified: Vec<String>,
    strict: bool,
}

/// Why a filter is refused: Kafka's error and message.
type Refusal = (ResponseError, String);

fn filter(req: &DescribeClientQuotasRequest) -> Result<Filter, Refusal> {
    let invalid = |m: String| (ResponseError::InvalidRequest, m);
    let mut f = Filter {
        strict: req.strict,
        ..Filter::default()
    };
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if f.exact.contains_key(t) || f.specified.iter().any(|s| s == t) {
            return Err(invalid(format!(
                "Entity type {t} cannot appear more than once in the filter."
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&t) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {t}"),
            ));
        }
        let name = c._match.as_deref();
        match (c.match_type, name) {
            (MATCH_TYPE_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_TYPE_EXACT, Some(n)) => {
                f.exact.insert(t.into(), EntityName::Name(n.into()));
            }
            (MATCH_TYPE_DEFAULT, None) => {
                f.exact.insert(t.into(), EntityName::Default);
            }
            (MATCH_TYPE_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_SPECIFIED, None) => f.specified.push(t.into()),
            (MATCH_TYPE_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
    }
    let has = |t: &str| f.exact.contains_key(t) || f.specified.iter().any(|s| s == t);
    if has(IP) && (has(USER) || has(CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(f)
}

fn part<'a>(entity: &'a ClientQuotaEntity, entity_type: &str) -> Option<&'a EntityName> {
    match entity_type {
        USER => entity.user.as_ref(),
        CLIENT_ID => entity.client_id.as_ref(),
        IP => entity.ip.as_ref(),
        _ => None,
    }
}

/// Kafka's `ClientQuotasImage.matches`.
fn matches(entity: &ClientQuotaEntity, f: &Filter) -> bool {
    if f.strict && entity.pairs().count() != f.exact.len() + f.specified.len() {
        return false;
    }
    f.exact
        .iter()
        .all(|(t, name)| part(entity, t) == Some(name))
        && f.specified.iter().all(|t| part(entity, t).is_some())
}

/// The entries of `quotas` that match the request's filter.
fn describe(
    req: &DescribeClientQuotasRequest,
    quotas: &ClientQuotas,
) -> Result<Vec<EntryData>, Refusal> {
    let f = filter(req)?;
    Ok(quotas
        .iter()
        .filter(|(entity, _)| matches(entity, &f))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .pairs()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(t))
                                .with_entity_name(n.map(|n| StrBytes::from_string(n.to_owned())))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, &v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect())
}

pub fn handle(
    ctx: &BrokerContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let image = ctx.image.image();
    match describe(&req, image.client_quotas()) {
        Ok(entries) => DescribeClientQuotasResponse::default().with_entries(Some(entries)),
        Err((code, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None),
    }
}

#[cfg(test)]
mod tests;
