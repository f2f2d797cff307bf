//! DescribeClientQuotas: Sluice enforces no client quotas and stores none
//! (AlterClientQuotas is still answered UNSUPPORTED_VERSION,
//! `unsupported.rs`), so every filter matches no entity, which is the true
//! answer. Kafka's `kafka-configs --describe --entity-type users` asks this
//! before it describes SCRAM credentials, and its admin client refuses
//! locally when a broker does not advertise the API.

use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

pub fn handle(_req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()))
}
