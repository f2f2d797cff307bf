//! Determinism: replaying the same log gives byte-identical images however
//! the records are grouped into deltas, and an image's snapshot replays to
//! the same image.

use proptest::prelude::*;
use sluice_record::{LeaderEpoch, Offset};

use crate::delta::MetadataDelta;
use crate::image::{MetadataImage, MetadataProvenance};
use crate::record::MetadataRecord;
use crate::scenario;

type Log = Vec<(Offset, LeaderEpoch, MetadataRecord)>;

/// Replays `log` with a new delta after each record index in `cuts`.
fn replay(log: &Log, cuts: &[usize]) -> MetadataImage {
    let mut image = MetadataImage::empty();
    let mut delta = MetadataDelta::new(image.clone());
    for (i, (offset, epoch, record)) in log.iter().enumerate() {
        if cuts.contains(&i) {
            image = delta.apply().0;
            delta = MetadataDelta::new(image.clone());
        }
        delta.replay(*offset, *epoch, record).unwrap();
    }
    delta.apply().0
}

fn through_bytes(records: &[MetadataRecord]) -> Vec<MetadataRecord> {
    records
        .iter()
        .map(|r| MetadataRecord::decode(&r.to_bytes().unwrap()).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn replays_of_one_log_are_byte_identical(
        ops in proptest::collection::vec(scenario::op(), 0..80),
        cuts in proptest::collection::vec(0..200usize, 0..10),
    ) {
        let log = scenario::log(&ops);
        let once = replay(&log, &[]);
        let twice = replay(&log, &[]);
        let per_record = replay(&log, &(0..log.len()).collect::<Vec<_>>());
        let chunked = replay(&log, &cuts);
        let bytes = once.canonical_bytes().unwrap();
        prop_assert_eq!(&bytes, &twice.canonical_bytes().unwrap());
        prop_assert_eq!(&bytes, &per_record.canonical_bytes().unwrap());
        prop_assert_eq!(&bytes, &chunked.canonical_bytes().unwrap());
        prop_assert_eq!(&once, &chunked);
        // The name index and the id shards agree.
        prop_assert_eq!(once.topics().count(), once.topic_count());
        for (name, &id) in once.topic_names() {
            prop_assert_eq!(once.topic_by_id(id).map(|t| t.name()), Some(name.as_str()));
        }
        let ids: Vec<_> = once.topics().map(|t| t.id()).collect();
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "topics() is in id order");
        let last = log.last().map(|(o, e, _)| (*o, *e));
        prop_assert_eq!(last, Some((once.provenance().last_offset, once.provenance().last_epoch)));
    }

    #[test]
    fn an_image_replays_from_its_snapshot(ops in proptest::collection::vec(scenario::op(), 0..80)) {
        let image = replay(&scenario::log(&ops), &[]);
        let snapshot = through_bytes(&image.write_snapshot());
        let again = MetadataImage::from_snapshot(&snapshot, image.provenance()).unwrap();
        prop_assert_eq!(&again, &image);
        prop_assert_eq!(again.canonical_bytes().unwrap(), image.canonical_bytes().unwrap());
        prop_assert_eq!(again.write_snapshot(), image.write_snapshot());
    }
}

#[test]
fn different_images_have_different_bytes() {
    let log = scenario::log(&[]);
    let a = replay(&log, &[]);
    let mut delta = MetadataDelta::new(a.clone());
    delta
        .replay(
            Offset(10),
            LeaderEpoch(1),
            &MetadataRecord::NoOp(crate::record::NoOpRecord),
        )
        .unwrap();
    let b = delta.apply().0;
    assert_ne!(a.canonical_bytes().unwrap(), b.canonical_bytes().unwrap());
    assert_eq!(a.write_snapshot(), b.write_snapshot());
    assert_eq!(
        b.provenance(),
        MetadataProvenance {
            last_offset: Offset(10),
            last_epoch: LeaderEpoch(1)
        }
    );
}

#[test]
fn snapshots_start_with_metadata_version() {
    use crate::record::FeatureLevelRecord;
    let mut delta = MetadataDelta::new(MetadataImage::empty());
    for (name, level) in [
        ("group.version", 1),
        ("metadata.version", 27),
        ("kraft.version", 1),
    ] {
        delta
            .replay_record(&MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.into(),
                feature_level: level,
            }))
            .unwrap();
    }
    let names: Vec<String> = delta
        .apply()
        .0
        .write_snapshot()
        .into_iter()
        .map(|r| match r {
            MetadataRecord::FeatureLevel(f) => f.name,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        ["metadata.version", "group.version", "kraft.version"]
    );
}
