//! The feature levels this build supports:
//! - `metadata.version` from Kafka 3.3-IV3 (level 7, the first KRaft-only
//!   level) to 4.1-IV1 (27, the level a new cluster is bootstrapped at);
//! - `transaction.version` 0 to 2 (2: KIP-890 part 2, every transaction
//!   ends with an epoch bump and partition leaders add partitions). A new
//!   cluster is bootstrapped at 2, as Kafka 4.x's `kafka-storage format`
//!   does; a cluster without the record is at 0 (clients use version 1)
//!   until UpdateFeatures raises it (the controller's `features.rs`).
//!
//! Brokers register them, and every ApiVersions answer (broker and
//! controller listeners) lists them.

use crate::record::BrokerFeature;

pub use crate::image::METADATA_VERSION;

/// The `metadata.version` this build writes and supports (Kafka 4.1-IV1).
pub const METADATA_VERSION_LEVEL: i16 = 27;

/// Lowest `metadata.version` this build reads (Kafka 3.3-IV3).
pub const MIN_METADATA_VERSION_LEVEL: i16 = 7;

/// The feature of the transaction protocol version (KIP-890).
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// The highest `transaction.version` this build speaks, and the level a
/// new cluster is bootstrapped at.
pub const TRANSACTION_VERSION_LEVEL: i16 = 2;

/// The features this node supports, as registered with the controller.
pub fn supported_features() -> Vec<BrokerFeature> {
    vec![
        BrokerFeature {
            name: METADATA_VERSION.into(),
            min_supported_version: MIN_METADATA_VERSION_LEVEL,
            max_supported_version: METADATA_VERSION_LEVEL,
        },
        BrokerFeature {
            name: TRANSACTION_VERSION.into(),
            min_supported_version: 0,
            max_supported_version: TRANSACTION_VERSION_LEVEL,
        },
    ]
}

/// Kafka's `MetadataVersion.didMetadataChange` of the levels this build
/// supports ([`MIN_METADATA_VERSION_LEVEL`]..=[`METADATA_VERSION_LEVEL`]),
/// read from the 4.1.2 release: a downgrade across a level that changed
/// the metadata format might lose information.
const METADATA_CHANGED: [bool; (METADATA_VERSION_LEVEL - MIN_METADATA_VERSION_LEVEL + 1) as usize] = [
    true, true, false, false, true, false, true, true, true, false, true, // 7..=17
    false, false, false, false, false, true, false, false, false, false, // 18..=27
];

/// Kafka's `MetadataVersion.checkIfMetadataChanged`: whether any level in
/// `(low, high]` changed the metadata format (levels outside this build's
/// range count as changed).
pub fn metadata_changed_between(a: i16, b: i16) -> bool {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    (low + 1..=high).any(|l| {
        l.checked_sub(MIN_METADATA_VERSION_LEVEL)
            .and_then(|i| METADATA_CHANGED.get(usize::try_from(i).ok()?))
            .copied()
            .unwrap_or(true)
    })
}

/// Kafka's names of the `metadata.version` levels this build supports
/// (`MetadataVersion.version()`), from 7 on.
const METADATA_VERSION_NAMES: [&str;
    (METADATA_VERSION_LEVEL - MIN_METADATA_VERSION_LEVEL + 1) as usize] = [
    "3.3-IV3", "3.4-IV0", "3.5-IV0", "3.5-IV1", "3.5-IV2", "3.6-IV0", "3.6-IV1", "3.6-IV2",
    "3.7-IV0", "3.7-IV1", "3.7-IV2", "3.7-IV3", "3.7-IV4", "3.8-IV0", "3.9-IV0", "4.0-IV0",
    "4.0-IV1", "4.0-IV2", "4.0-IV3", "4.1-IV0", "4.1-IV1",
];

/// Kafka's name of `metadata.version` `level` ("4.1-IV1"), if this build
/// knows it.
pub fn metadata_version_name(level: i16) -> Option<&'static str> {
    let i = usize::try_from(level.checked_sub(MIN_METADATA_VERSION_LEVEL)?).ok()?;
    METADATA_VERSION_NAMES.get(i).copied()
}

/// The `metadata.version` level of Kafka's name `name`: a full one
/// ("3.7-IV2"), or a release ("3.7": its last level), as `kafka-features
/// --metadata` reads it.
pub fn metadata_version_level(name: &str) -> Option<i16> {
    let found = METADATA_VERSION_NAMES
        .iter()
        .rposition(|n| *n == name || n.split('-').next() == Some(name))?;
    i16::try_from(found)
        .ok()
        .map(|i| i + MIN_METADATA_VERSION_LEVEL)
}

/// The features of Kafka 4.1.2 (`Feature` and `metadata.version`), known
/// by name even where this build does not support them.
const KNOWN_FEATURES: &[&str] = &[
    METADATA_VERSION,
    "kraft.version",
    TRANSACTION_VERSION,
    "group.version",
    "eligible.leader.replicas.version",
    "share.version",
    "streams.version",
];

/// Kafka's `Feature.validateVersion` for a feature other than
/// `metadata.version` at `level`, given the levels the cluster would have
/// (`proposed`, `metadata.version` included): a level of 1 or more needs
/// `metadata.version` 3.3-IV3 or later; the features this build supports
/// have no other dependencies in Kafka 4.1.2 (`TransactionVersion`'s
/// dependency maps are empty). `Err` is Kafka's message.
pub fn validate_level(
    name: &str,
    level: i16,
    proposed: &std::collections::BTreeMap<String, i16>,
) -> Result<(), String> {
    if !KNOWN_FEATURES.contains(&name) {
        return Err(format!("Feature {name} not found."));
    }
    let mv = proposed.get(METADATA_VERSION).copied();
    if level >= 1 && mv.is_none_or(|mv| mv < MIN_METADATA_VERSION_LEVEL) {
        let mv = mv.map_or_else(|| "null".to_owned(), |l| l.to_string());
        return Err(format!(
            "{name} could not be set to {level} because it depends on metadata.version={mv} (3.3-IV3)"
        ));
    }
    Ok(())
}

/// The first `metadata.version` at which Kafka bootstraps
/// `transaction.version` 1 and 2 (`TransactionVersion.TV_1`/`TV_2`:
/// 4.0-IV2).
const TRANSACTION_VERSION_BOOTSTRAP_MV: i16 = 24;

/// The first `metadata.version` with SCRAM credentials in the metadata
/// (3.5-IV2).
pub const SCRAM_METADATA_VERSION_LEVEL: i16 = 11;

/// Kafka's `Feature.defaultValue` of `transaction.version` for a cluster
/// formatted at `metadata_version`: the highest level whose bootstrap
/// `metadata.version` is at or below it.
pub fn default_transaction_version(metadata_version: i16) -> i16 {
    if metadata_version >= TRANSACTION_VERSION_BOOTSTRAP_MV {
        TRANSACTION_VERSION_LEVEL
    } else {
        0
    }
}

/// The finalized levels a new cluster starts with, as Kafka's
/// `kafka-storage format` computes them (`Formatter`'s effective release
/// version and feature levels) from `--release-version` and `--feature`
/// (name, level) pairs, for the features this build supports: the
/// release (or `metadata.version` given as a feature) sets
/// `metadata.version`, unspecified features take their default for it,
/// and every level is checked. Levels of 0 are kept in the map; they are
/// not written as records. `Err` is Kafka's message (with this build's
/// range of `metadata.version`).
pub fn bootstrap_levels(
    release: Option<&str>,
    features: &[(String, i16)],
) -> Result<std::collections::BTreeMap<String, i16>, String> {
    let (min_name, max_name) = (
        METADATA_VERSION_NAMES[0],
        METADATA_VERSION_NAMES[METADATA_VERSION_NAMES.len() - 1],
    );
    let given_mv = features.iter().find(|(n, _)| n == METADATA_VERSION);
    let mv = match (given_mv, release) {
        (Some(_), Some(_)) => return Err(format!(
            "Use --release-version instead of --feature {METADATA_VERSION}=X to avoid ambiguity."
        )),
        (Some((_, level)), None) => {
            if metadata_version_name(*level).is_none() {
                return Err(format!(
                    "No MetadataVersion with feature level {level}. Valid feature levels are from {MIN_METADATA_VERSION_LEVEL} to {METADATA_VERSION_LEVEL}."
                ));
            }
            *level
        }
        (None, Some(name)) => metadata_version_level(name)
            .ok_or_else(|| {
            format!(
                "Version {name} is not a valid version. The minimum version is {min_name} and the maximum version is {max_name}"
            )
        })?,
        (None, None) => METADATA_VERSION_LEVEL,
    };
    let mut levels = std::collections::BTreeMap::from([(METADATA_VERSION.to_owned(), mv)]);
    for (name, level) in features.iter().filter(|(n, _)| n != METADATA_VERSION) {
        if name != TRANSACTION_VERSION {
            return Err(format!(
                "Unsupported feature: {name}. Supported features are: {TRANSACTION_VERSION}"
            ));
        }
        levels.insert(name.clone(), *level);
    }
    levels
        .entry(TRANSACTION_VERSION.to_owned())
        .or_insert_with(|| default_transaction_version(mv));
    for (name, &level) in levels.iter().filter(|(n, _)| *n != METADATA_VERSION) {
        if !(0..=TRANSACTION_VERSION_LEVEL).contains(&level) {
            return Err(format!("No feature:{name} with feature level {level}"));
        }
        validate_level(name, level, &levels)?;
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_changes_follow_kafkas_table() {
        // 4.1-IV1 down to 4.0-IV1: no level in between changed the format.
        assert!(!metadata_changed_between(27, 23));
        assert!(!metadata_changed_between(23, 27));
        // 4.0-IV0 is below 4.0-IV1, which did.
        assert!(metadata_changed_between(27, 22));
        assert!(!metadata_changed_between(27, 27));
        assert!(metadata_changed_between(8, 7) == METADATA_CHANGED[1]);
    }

    #[test]
    fn metadata_versions_have_kafkas_names() {
        assert_eq!(metadata_version_name(7), Some("3.3-IV3"));
        assert_eq!(metadata_version_name(27), Some("4.1-IV1"));
        assert_eq!(metadata_version_name(6), None);
        assert_eq!(metadata_version_level("3.3"), Some(7));
        assert_eq!(metadata_version_level("3.7"), Some(19));
        assert_eq!(metadata_version_level("4.0-IV1"), Some(23));
        assert_eq!(metadata_version_level("9.9"), None);
    }

    #[test]
    fn levels_above_zero_need_a_metadata_version() {
        let mut proposed = std::collections::BTreeMap::new();
        assert!(validate_level(TRANSACTION_VERSION, 2, &proposed).is_err());
        assert!(validate_level(TRANSACTION_VERSION, 0, &proposed).is_ok());
        proposed.insert(METADATA_VERSION.to_owned(), METADATA_VERSION_LEVEL);
        assert!(validate_level(TRANSACTION_VERSION, 2, &proposed).is_ok());
        assert_eq!(
            validate_level("no.such.feature", 0, &proposed),
            Err("Feature no.such.feature not found.".to_owned())
        );
    }

    fn levels(
        release: Option<&str>,
        features: &[(&str, i16)],
    ) -> Result<Vec<(String, i16)>, String> {
        let features: Vec<_> = features.iter().map(|(n, l)| (n.to_string(), *l)).collect();
        bootstrap_levels(release, &features).map(|m| m.into_iter().collect())
    }

    #[test]
    fn format_levels_default_to_the_latest_release() {
        assert_eq!(
            levels(None, &[]).unwrap(),
            [
                (METADATA_VERSION.into(), 27),
                (TRANSACTION_VERSION.into(), 2)
            ]
        );
        // An older release brings its own default transaction.version.
        assert_eq!(
            levels(Some("3.9"), &[]).unwrap(),
            [
                (METADATA_VERSION.into(), 21),
                (TRANSACTION_VERSION.into(), 0)
            ]
        );
        assert_eq!(levels(Some("4.0-IV2"), &[]).unwrap()[1].1, 2);
        assert_eq!(levels(Some("4.0-IV1"), &[]).unwrap()[1].1, 0);
        // An explicit level wins over the default.
        assert_eq!(
            levels(None, &[(TRANSACTION_VERSION, 0)]).unwrap()[1],
            (TRANSACTION_VERSION.into(), 0)
        );
        assert_eq!(
            levels(None, &[(METADATA_VERSION, 22)]).unwrap(),
            [
                (METADATA_VERSION.into(), 22),
                (TRANSACTION_VERSION.into(), 0)
            ]
        );
    }

    #[test]
    fn format_levels_are_refused_as_kafka_refuses_them() {
        let err = |r, f: &[(&str, i16)]| levels(r, f).unwrap_err();
        assert_eq!(
            err(Some("4.1"), &[(METADATA_VERSION, 27)]),
            "Use --release-version instead of --feature metadata.version=X to avoid ambiguity."
        );
        assert!(err(Some("2.8"), &[]).starts_with("Version 2.8 is not a valid version"));
        assert!(err(None, &[(METADATA_VERSION, 3)])
            .starts_with("No MetadataVersion with feature level 3"));
        assert_eq!(
            err(None, &[("group.version", 1)]),
            "Unsupported feature: group.version. Supported features are: transaction.version"
        );
        assert_eq!(
            err(None, &[(TRANSACTION_VERSION, 3)]),
            "No feature:transaction.version with feature level 3"
        );
        assert!(err(None, &[(TRANSACTION_VERSION, -1)]).contains("feature level -1"));
    }
}
