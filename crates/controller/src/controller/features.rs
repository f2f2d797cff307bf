//! UpdateFeatures (Kafka's `FeatureControlManager.updateFeatures`): the
//! finalized feature levels of the cluster change only through here.
//!
//! Each update is checked in request order, the first refusal refusing
//! the whole request (Kafka answers every feature with it):
//! - the upgrade type is known;
//! - the level is at least 0;
//! - this controller and every registered broker support the level (a
//!   broker that does not list the feature supports only level 0);
//! - a lower level needs a downgrade type, a higher one the upgrade type;
//! - `metadata.version`: a downgrade across a level that changed the
//!   metadata format is refused, an unsafe one too (Kafka does not
//!   implement it); other features: their dependencies on the levels the
//!   cluster would have after the whole request
//!   ([`sluice_metadata::features::validate_level`]).
//!
//! Invariant: the request's `FeatureLevelRecord`s commit together or not
//! at all, and none with `validate_only`. Level 0 removes a feature from
//! the image (so it reads as not finalized, as in Kafka).

use std::collections::BTreeMap;

use sluice_metadata::features::{self, supported_features, METADATA_VERSION};
use sluice_metadata::record::{BrokerFeature, FeatureLevelRecord};
use sluice_metadata::MetadataRecord;

use super::{OpContext, QuorumController};
use crate::error::ControllerError;

/// Kafka's `FeatureUpdate.UpgradeType` (UpdateFeatures v1+'s byte; v0's
/// `AllowDowngrade` is SAFE_DOWNGRADE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
    /// A code Kafka does not define.
    Unknown(i8),
}

impl UpgradeType {
    /// The type of wire code `code` (Kafka's `UpgradeType.fromCode`).
    pub fn from_code(code: i8) -> UpgradeType {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            other => UpgradeType::Unknown(other),
        }
    }

    /// The wire code.
    pub fn code(self) -> i8 {
        match self {
            UpgradeType::Upgrade => 1,
            UpgradeType::SafeDowngrade => 2,
            UpgradeType::UnsafeDowngrade => 3,
            UpgradeType::Unknown(c) => c,
        }
    }
}

/// One feature of an UpdateFeatures request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureUpdate {
    pub feature: String,
    pub max_version_level: i16,
    pub upgrade_type: UpgradeType,
}

impl QuorumController {
    /// UpdateFeatures: checks every update against the committed image and
    /// commits their `FeatureLevelRecord`s (none with `validate_only`).
    /// The error is the first update's refusal (INVALID_UPDATE_VERSION).
    pub async fn update_features(
        &self,
        updates: Vec<FeatureUpdate>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        self.submit(move |ctx| {
            let records = plan_update(ctx, &updates)?;
            Ok((if validate_only { Vec::new() } else { records }, ()))
        })
        .await
    }
}

fn plan_update(
    ctx: &OpContext<'_>,
    updates: &[FeatureUpdate],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let image = ctx.image;
    let mut proposed: BTreeMap<String, i16> = image.features().clone();
    for u in updates {
        proposed.insert(u.feature.clone(), u.max_version_level);
    }
    let mut records = Vec::with_capacity(updates.len());
    for u in updates {
        check_update(ctx, u, &proposed).map_err(|message| {
            tracing::warn!("{message}");
            ControllerError::InvalidUpdateVersion(message)
        })?;
        records.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: u.feature.clone(),
            feature_level: u.max_version_level,
        }));
    }
    Ok(records)
}

/// Why `u` is refused, in Kafka's words (`FeatureControlManager.updateFeature`).
fn check_update(
    ctx: &OpContext<'_>,
    u: &FeatureUpdate,
    proposed: &BTreeMap<String, i16>,
) -> Result<(), String> {
    let invalid = |reason: String| {
        format!(
            "Invalid update version {} for feature {}. {reason}",
            u.max_version_level, u.feature
        )
    };
    if u.feature == METADATA_VERSION {
        check_levels(ctx, u).map_err(invalid)?;
        let current = ctx.image.feature_level(METADATA_VERSION).unwrap_or(0);
        return check_metadata_version(current, u.max_version_level, u.upgrade_type);
    }
    check_levels(ctx, u).map_err(invalid)?;
    features::validate_level(&u.feature, u.max_version_level, proposed).map_err(invalid)
}

/// The checks every feature shares: type, range, support, direction.
fn check_levels(ctx: &OpContext<'_>, u: &FeatureUpdate) -> Result<(), String> {
    if let UpgradeType::Unknown(_) = u.upgrade_type {
        return Err("The controller does not support the given upgrade type.".into());
    }
    let current = ctx.image.feature_level(&u.feature).unwrap_or(0);
    let level = u.max_version_level;
    if level < 0 {
        return Err("A feature version cannot be less than 0.".into());
    }
    reason_not_supported(ctx, &u.feature, level)?;
    let upgrade = u.upgrade_type == UpgradeType::Upgrade;
    if level < current && upgrade {
        return Err(
            "Can't downgrade the version of this feature without setting the \
                    upgrade type to either safe or unsafe downgrade."
                .into(),
        );
    }
    if level > current && !upgrade {
        return Err("Can't downgrade to a newer version.".into());
    }
    Ok(())
}

/// Kafka's `QuorumFeatures.reasonNotSupported`, for this controller (the
/// active one; Sluice has no controller registrations to check the other
/// voters by) and then every registered broker.
fn reason_not_supported(ctx: &OpContext<'_>, feature: &str, level: i16) -> Result<(), String> {
    let local = format!("Local controller {}", ctx.node_id.0);
    not_supported_by(&local, &supported_features(), feature, level)?;
    for b in ctx.image.brokers().values() {
        let who = format!("Broker {}", b.id.0);
        not_supported_by(&who, &b.supported_features, feature, level)?;
    }
    Ok(())
}

fn not_supported_by(
    who: &str,
    supported: &[BrokerFeature],
    feature: &str,
    level: i16,
) -> Result<(), String> {
    let (min, max) = supported
        .iter()
        .find(|f| f.name == feature)
        .map_or((0, 0), |f| {
            (f.min_supported_version, f.max_supported_version)
        });
    if (min..=max).contains(&level) {
        return Ok(());
    }
    if max == 0 {
        return Err(format!("{who} does not support this feature."));
    }
    // Kafka's `VersionRange.toString`.
    let range = match (min, max) {
        (a, b) if a == b => a.to_string(),
        (a, i16::MAX) => format!("{a}+"),
        (a, b) => format!("{a}-{b}"),
    };
    Err(format!("{who} only supports versions {range}"))
}

/// Kafka's `updateMetadataVersion` (the range was checked before).
fn check_metadata_version(current: i16, level: i16, t: UpgradeType) -> Result<(), String> {
    if level < current && features::metadata_changed_between(current, level) {
        let why = if t == UpgradeType::UnsafeDowngrade {
            "Unsafe metadata downgrade is not supported in this version."
        } else {
            "Refusing to perform the requested downgrade because it might delete metadata \
             information."
        };
        return Err(format!("Invalid metadata.version {level}. {why}"));
    }
    Ok(())
}
