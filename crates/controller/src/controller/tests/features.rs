//! UpdateFeatures against the committed image: Kafka's checks and words.

use sluice_metadata::features::{supported_features, METADATA_VERSION, TRANSACTION_VERSION};
use sluice_metadata::record::{FeatureLevelRecord, RegisterBrokerRecord};

use super::*;

fn registration(id: i32, with_features: bool) -> MetadataRecord {
    let MetadataRecord::RegisterBroker(r) = broker_record(id, 0, None, false) else {
        unreachable!()
    };
    let features = if with_features {
        supported_features()
    } else {
        Vec::new()
    };
    MetadataRecord::RegisterBroker(RegisterBrokerRecord { features, ..r })
}

fn level(name: &str, feature_level: i16) -> MetadataRecord {
    MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: name.into(),
        feature_level,
    })
}

/// A controller on node 1 of a cluster at metadata.version 27 and
/// transaction.version 0, with brokers 1 and 2 (2 lists its features only
/// when `both_support`).
async fn cluster(both_support: bool) -> Fixture {
    let f = fixture_with(
        &[],
        Arc::new(PermissiveValidator),
        ControllerConfig::default(),
    )
    .await;
    f.log
        .append(
            sluice_record::LeaderEpoch(1),
            vec![
                level(METADATA_VERSION, 27),
                registration(1, true),
                registration(2, both_support),
            ],
        )
        .await
        .unwrap();
    f
}

fn update(feature: &str, level: i16, t: UpgradeType) -> FeatureUpdate {
    FeatureUpdate {
        feature: feature.into(),
        max_version_level: level,
        upgrade_type: t,
    }
}

async fn refusal(f: &Fixture, updates: Vec<FeatureUpdate>) -> String {
    match f.c.update_features(updates, false).await {
        Err(ControllerError::InvalidUpdateVersion(m)) => m,
        other => panic!("expected INVALID_UPDATE_VERSION, got {other:?}"),
    }
}

#[tokio::test]
async fn an_upgrade_commits_its_level_and_validate_only_nothing() {
    let f = cluster(true).await;
    let tv2 = || vec![update(TRANSACTION_VERSION, 2, UpgradeType::Upgrade)];
    f.c.update_features(tv2(), true).await.unwrap();
    assert_eq!(f.c.image().feature_level(TRANSACTION_VERSION), None);
    let before = f.log.batches().len();
    f.c.update_features(tv2(), false).await.unwrap();
    assert_eq!(f.c.image().feature_level(TRANSACTION_VERSION), Some(2));
    let written: Vec<_> = f.log.batches()[before..]
        .iter()
        .flat_map(|b| b.records.clone())
        .collect();
    assert_eq!(written, vec![level(TRANSACTION_VERSION, 2)]);
    // The same level again is no change of direction: accepted.
    f.c.update_features(tv2(), false).await.unwrap();
}

#[tokio::test]
async fn a_broker_without_the_feature_refuses_the_upgrade() {
    let f = cluster(false).await;
    let m = refusal(
        &f,
        vec![update(TRANSACTION_VERSION, 2, UpgradeType::Upgrade)],
    )
    .await;
    assert_eq!(
        m,
        "Invalid update version 2 for feature transaction.version. \
         Broker 2 does not support this feature."
    );
    assert_eq!(f.c.image().feature_level(TRANSACTION_VERSION), None);
    let m = refusal(
        &f,
        vec![update(TRANSACTION_VERSION, 3, UpgradeType::Upgrade)],
    )
    .await;
    assert!(
        m.ends_with("Local controller 1 only supports versions 0-2"),
        "{m}"
    );
}

#[tokio::test]
async fn downgrades_need_their_type_and_one_refusal_refuses_all() {
    let f = cluster(true).await;
    f.c.update_features(
        vec![update(TRANSACTION_VERSION, 2, UpgradeType::Upgrade)],
        false,
    )
    .await
    .unwrap();
    let m = refusal(
        &f,
        vec![update(TRANSACTION_VERSION, 1, UpgradeType::Upgrade)],
    )
    .await;
    assert!(m.ends_with("Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade."), "{m}");
    let m = refusal(
        &f,
        vec![update(METADATA_VERSION, 28, UpgradeType::SafeDowngrade)],
    )
    .await;
    assert!(m.ends_with("only supports versions 7-27"), "{m}");
    let m = refusal(
        &f,
        vec![update(TRANSACTION_VERSION, 1, UpgradeType::Unknown(9))],
    )
    .await;
    assert!(
        m.ends_with("The controller does not support the given upgrade type."),
        "{m}"
    );
    let m = refusal(&f, vec![update("no.such.feature", 1, UpgradeType::Upgrade)]).await;
    assert!(
        m.ends_with("Local controller 1 does not support this feature."),
        "{m}"
    );
    // The safe downgrade of transaction.version goes with an upgrade
    // that is refused: nothing is written.
    let m = refusal(
        &f,
        vec![
            update(TRANSACTION_VERSION, 0, UpgradeType::SafeDowngrade),
            update(METADATA_VERSION, 22, UpgradeType::SafeDowngrade),
        ],
    )
    .await;
    assert_eq!(
        m,
        "Invalid metadata.version 22. Refusing to perform the requested downgrade \
         because it might delete metadata information."
    );
    assert_eq!(f.c.image().feature_level(TRANSACTION_VERSION), Some(2));
    // Level 0 takes the feature out of the image.
    f.c.update_features(
        vec![update(TRANSACTION_VERSION, 0, UpgradeType::SafeDowngrade)],
        false,
    )
    .await
    .unwrap();
    assert_eq!(f.c.image().feature_level(TRANSACTION_VERSION), None);
    // 4.1-IV1 to 4.0-IV1 changed no metadata: a safe downgrade.
    f.c.update_features(
        vec![update(METADATA_VERSION, 23, UpgradeType::SafeDowngrade)],
        false,
    )
    .await
    .unwrap();
    assert_eq!(f.c.image().feature_level(METADATA_VERSION), Some(23));
}
