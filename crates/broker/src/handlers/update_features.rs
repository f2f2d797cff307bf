//! UpdateFeatures (KIP-584), forwarded to the controller as Kafka's
//! brokers forward it: the controller checks every update against the
//! registered brokers' supported ranges and the features' dependencies and
//! commits the `FeatureLevelRecord`s (`sluice_controller`'s `features.rs`);
//! the answer comes once this broker published them, so an ApiVersions
//! asked after it lists the new finalized levels (and the transaction
//! coordinator reads the new `transaction.version` from the same image).

use kafka_protocol::messages::{RequestHeader, UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_transport::features::{self, FAILED_FOR_ALL};

use crate::context::BrokerContext;
use crate::metadata::MetadataError;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let version = header.request_api_version;
    let updates = features::updates(&req, version);
    match ctx
        .controller
        .update_features(updates, req.validate_only)
        .await
    {
        Ok(()) => features::response(&req, version, &Ok(())),
        Err(MetadataError::Controller(e)) => features::response(&req, version, &Err(e)),
        Err(e) => UpdateFeaturesResponse::default()
            .with_error_code(e.kafka_error_code())
            .with_error_message(Some(StrBytes::from_string(format!("{FAILED_FOR_ALL}{e}")))),
    }
}
