//! AlterClientQuotas on the controller listener (a broker forwards its
//! clients' requests here, as Kafka's brokers do), and the conversions
//! both sides of the wire share. Results are per entity, as Kafka's
//! `AlterClientQuotasResponse.fromQuotaEntities` writes them.

use kafka_protocol::messages::alter_client_quotas_request::{
    EntityData as ReqEntity, EntryData as ReqEntry, OpData,
};
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as RespEntity, EntryData as RespEntry,
};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{
    ControllerError, QuorumController, QuotaAlteration, QuotaEntityPairs, QuotaResults,
};
use sluice_protocol::kafka_protocol;

use super::check_active;
use crate::codes::{controller_error_code, controller_error_from_code};

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The domain alterations of a request, and its validate-only flag.
pub fn from_request(r: &AlterClientQuotasRequest) -> (Vec<QuotaAlteration>, bool) {
    let alterations = r
        .entries
        .iter()
        .map(|e| QuotaAlteration {
            entity: e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .iter()
                .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                .collect(),
        })
        .collect();
    (alterations, r.validate_only)
}

/// The wire request of domain alterations.
pub fn to_request(
    alterations: &[QuotaAlteration],
    validate_only: bool,
) -> AlterClientQuotasRequest {
    AlterClientQuotasRequest::default()
        .with_validate_only(validate_only)
        .with_entries(
            alterations
                .iter()
                .map(|a| {
                    ReqEntry::default()
                        .with_entity(
                            a.entity
                                .iter()
                                .map(|(t, n)| {
                                    ReqEntity::default()
                                        .with_entity_type(str(t))
                                        .with_entity_name(n.as_deref().map(str))
                                })
                                .collect(),
                        )
                        .with_ops(
                            a.ops
                                .iter()
                                .map(|(k, v)| {
                                    OpData::default()
                                        .with_key(str(k))
                                        .with_value(v.unwrap_or(0.0))
                                        .with_remove(v.is_none())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn entity_data(pairs: &QuotaEntityPairs) -> Vec<RespEntity> {
    pairs
        .iter()
        .map(|(t, n)| {
            RespEntity::default()
                .with_entity_type(str(t))
                .with_entity_name(n.as_deref().map(str))
        })
        .collect()
}

/// The wire response of per-entity results.
pub fn to_response(results: &QuotaResults) -> AlterClientQuotasResponse {
    AlterClientQuotasResponse::default().with_entries(
        results
            .iter()
            .map(|(entity, r)| {
                let (code, message) = match r {
                    Ok(()) => (0, None),
                    Err(e) => (controller_error_code(e), Some(str(&e.to_string()))),
                };
                RespEntry::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_entity(entity_data(entity))
            })
            .collect(),
    )
}

/// Every entity of `alterations` refused with `e` (the whole call failed).
pub fn refused(alterations: &[QuotaAlteration], e: &ControllerError) -> AlterClientQuotasResponse {
    refused_with(alterations, controller_error_code(e), &e.to_string())
}

/// Every distinct entity of `alterations` answered with `code` and
/// `message`.
pub fn refused_with(
    alterations: &[QuotaAlteration],
    code: i16,
    message: &str,
) -> AlterClientQuotasResponse {
    let mut seen: Vec<QuotaEntityPairs> = Vec::new();
    let sorted = |p: &QuotaEntityPairs| {
        let mut p = p.clone();
        p.sort();
        p
    };
    for a in alterations {
        let key = sorted(&a.entity);
        if !seen.iter().any(|s| sorted(s) == key) {
            seen.push(a.entity.clone());
        }
    }
    AlterClientQuotasResponse::default().with_entries(
        seen.iter()
            .map(|entity| {
                RespEntry::default()
                    .with_error_code(code)
                    .with_error_message(Some(str(message)))
                    .with_entity(entity_data(entity))
            })
            .collect(),
    )
}

/// Per-entity results of a wire response.
pub fn from_response(resp: &AlterClientQuotasResponse) -> QuotaResults {
    resp.entries
        .iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let result = match controller_error_from_code(
                e.error_code,
                e.error_message.as_deref(),
                &Default::default(),
            ) {
                None => Ok(()),
                Some(err) => Err(err),
            };
            (entity, result)
        })
        .collect()
}

pub(super) async fn alter(
    c: &QuorumController,
    r: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let (alterations, validate_only) = from_request(&r);
    let result = match check_active(c) {
        Ok(()) => {
            c.alter_client_quotas(alterations.clone(), validate_only)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(results) => to_response(&results),
        Err(e) => refused(&alterations, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alterations_and_results_survive_the_wire() {
        let alterations = vec![QuotaAlteration {
            entity: vec![
                ("user".into(), Some("alice".into())),
                ("client-id".into(), None),
            ],
            ops: vec![
                ("producer_byte_rate".into(), Some(1024.0)),
                ("consumer_byte_rate".into(), None),
            ],
        }];
        let req = to_request(&alterations, true);
        assert_eq!(from_request(&req), (alterations.clone(), true));
        let results: QuotaResults = vec![
            (alterations[0].entity.clone(), Ok(())),
            (
                vec![("ip".into(), Some("x".into()))],
                Err(ControllerError::InvalidRequest(
                    "x is not a valid IP".into(),
                )),
            ),
        ];
        let back = from_response(&to_response(&results));
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].0, results[0].0);
        assert!(back[0].1.is_ok());
        assert_eq!(
            back[1].1.as_ref().unwrap_err().to_string(),
            "x is not a valid IP"
        );
        let refused = refused(
            &[alterations[0].clone(), alterations[0].clone()],
            &ControllerError::InvalidRequest("x".into()),
        );
        assert_eq!(refused.entries.len(), 1);
    }
}
