//! AlterClientQuotas: through the controller, which validates and plans as
//! Kafka's `ClientQuotaControlManager`; the answer (one entry per entity)
//! comes once this broker's image holds the change, so a describe or a
//! request on this broker sees the new quota at once.

use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use sluice_transport::server::quotas::{from_request, refused_with, to_response};

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let (alterations, validate_only) = from_request(&req);
    match ctx
        .controller
        .alter_client_quotas(alterations.clone(), validate_only)
        .await
    {
        Ok(results) => to_response(&results),
        Err(e) => refused_with(&alterations, e.kafka_error_code(), &e.to_string()),
    }
}
