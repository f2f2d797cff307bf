//! UpdateFeatures on the wire (Kafka's `QuorumController.updateFeatures`
//! answer), shared by the controller listener and the broker that forwards
//! the request: the request in domain types, and the answer as Kafka 4.1.2
//! writes it. A refusal is the top-level error alone, its message prefixed
//! "The update failed for all features since the following feature had an
//! error: "; a success carries one NONE result per feature only up to v1.

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{ControllerError, FeatureUpdate, UpgradeType};
use sluice_protocol::kafka_protocol;

use crate::codes::controller_error_code;

/// What Kafka's controller puts before a refusal's message.
pub const FAILED_FOR_ALL: &str =
    "The update failed for all features since the following feature had an error: ";

/// The request's updates at request `version` (v0's `AllowDowngrade` is a
/// safe downgrade, as Kafka's `UpdateFeaturesRequest` reads it).
pub fn updates(req: &UpdateFeaturesRequest, version: i16) -> Vec<FeatureUpdate> {
    req.feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            feature: u.feature.to_string(),
            max_version_level: u.max_version_level,
            upgrade_type: match (version, u.allow_downgrade) {
                (0, true) => UpgradeType::SafeDowngrade,
                (0, false) => UpgradeType::Upgrade,
                _ => UpgradeType::from_code(u.upgrade_type),
            },
        })
        .collect()
}

/// The answer to `req` at `version` for `result`.
pub fn response(
    req: &UpdateFeaturesRequest,
    version: i16,
    result: &Result<(), ControllerError>,
) -> UpdateFeaturesResponse {
    match result {
        Err(e) => UpdateFeaturesResponse::default()
            .with_error_code(controller_error_code(e))
            .with_error_message(Some(StrBytes::from_string(format!("{FAILED_FOR_ALL}{e}")))),
        Ok(()) if version <= 1 => UpdateFeaturesResponse::default().with_results(
            req.feature_updates
                .iter()
                .map(|u| {
                    UpdatableFeatureResult::default()
                        .with_feature(u.feature.clone())
                        .with_error_message(Some(StrBytes::from_static_str("NONE")))
                })
                .collect(),
        ),
        Ok(()) => UpdateFeaturesResponse::default(),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::update_features_request::FeatureUpdateKey;

    use super::*;

    fn request() -> UpdateFeaturesRequest {
        UpdateFeaturesRequest::default().with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(StrBytes::from_static_str("transaction.version"))
            .with_max_version_level(2)
            .with_allow_downgrade(true)
            .with_upgrade_type(3)])
    }

    #[test]
    fn versions_read_their_own_downgrade_field() {
        assert_eq!(
            updates(&request(), 0)[0].upgrade_type,
            UpgradeType::SafeDowngrade
        );
        assert_eq!(
            updates(&request(), 1)[0].upgrade_type,
            UpgradeType::UnsafeDowngrade
        );
    }

    /// What the controller channel sends at each version encodes (a
    /// field outside its versions does not).
    #[test]
    fn requests_encode_at_every_version() {
        use crate::channel::ControllerApi;
        use kafka_protocol::protocol::Encodable;
        let req =
            UpdateFeaturesRequest::default().with_feature_updates(vec![FeatureUpdateKey::default(
            )
            .with_feature(StrBytes::from_static_str("transaction.version"))
            .with_max_version_level(0)
            .with_upgrade_type(UpgradeType::SafeDowngrade.code())]);
        for v in 0..=2 {
            let sent = req.at_version(v).unwrap_or_else(|| req.clone());
            let mut buf = bytes::BytesMut::new();
            sent.encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
            assert_eq!(
                updates(&sent, v)[0].upgrade_type,
                UpgradeType::SafeDowngrade,
                "v{v}"
            );
        }
    }

    #[test]
    fn answers_are_kafkas() {
        let refused = response(
            &request(),
            1,
            &Err(ControllerError::InvalidUpdateVersion("why".into())),
        );
        assert_eq!(refused.error_code, 95);
        assert_eq!(
            refused.error_message.unwrap().to_string(),
            format!("{FAILED_FOR_ALL}why")
        );
        assert!(refused.results.is_empty());
        assert_eq!(response(&request(), 1, &Ok(())).results.len(), 1);
        assert!(response(&request(), 2, &Ok(())).results.is_empty());
    }
}
