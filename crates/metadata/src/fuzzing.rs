//! The body of the `metadata_record` fuzz target (`fuzz/fuzz_targets/`),
//! kept here so that the crate's own tests run it too and it cannot rot
//! while the fuzz package (outside the workspace) goes unbuilt. Not an API.

use sluice_record::{LeaderEpoch, Offset};

use crate::codec::Reader;
use crate::delta::MetadataDelta;
use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// Most records one input is read as (keeps each run short).
const MAX_RECORDS: usize = 256;

/// Decodes `data` as one record and as a log of length-prefixed records,
/// replays the log, and panics if a promise breaks: a decoded record must
/// re-encode to a record that decodes to itself; a record that fails to
/// replay must leave the delta as it was; the resulting image must come
/// back unchanged from its own snapshot.
pub fn metadata_record(data: &[u8]) {
    if let Ok(record) = MetadataRecord::decode(data) {
        check_round_trip(&record);
    }

    let mut reader = Reader::new(data);
    let mut delta = MetadataDelta::new(MetadataImage::empty());
    for i in 0..MAX_RECORDS {
        let Ok(len) = reader.uvarint("length") else {
            break;
        };
        let Ok(bytes) = reader.take(len as usize, "record") else {
            break;
        };
        let Ok(record) = MetadataRecord::decode(bytes) else {
            continue;
        };
        check_round_trip(&record);
        let before = delta.clone();
        if delta
            .replay(Offset(i as i64), LeaderEpoch(0), &record)
            .is_err()
        {
            assert_eq!(delta.clone().apply().0, before.apply().0);
        }
    }
    let (image, _) = delta.apply();
    let snapshot = image.write_snapshot();
    let again = MetadataImage::from_snapshot(&snapshot, image.provenance())
        .expect("an image's own snapshot replays");
    assert_eq!(again, image);
    // Strings may exceed what encodes only if they were decoded, and
    // decoding refuses those, so the canonical bytes always exist.
    assert_eq!(
        again.canonical_bytes().expect("images encode"),
        image.canonical_bytes().expect("images encode")
    );
}

fn check_round_trip(record: &MetadataRecord) {
    let bytes = record.to_bytes().expect("a decoded record re-encodes");
    assert_eq!(
        &MetadataRecord::decode(&bytes).expect("a re-encoded record decodes"),
        record
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::put_uvarint;
    use crate::scenario;
    use proptest::prelude::*;

    fn framed(records: &[MetadataRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let bytes = r.to_bytes().unwrap();
            put_uvarint(&mut out, bytes.len() as u32);
            out.extend_from_slice(&bytes);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn harness_holds_on_valid_logs_and_damaged_ones(
            ops in proptest::collection::vec(scenario::op(), 0..40),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            garbage in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let records: Vec<_> = scenario::log(&ops).into_iter().map(|(_, _, r)| r).collect();
            let mut data = framed(&records);
            metadata_record(&data);
            for (at, byte) in edits {
                if !data.is_empty() {
                    let i = at.index(data.len());
                    data[i] = byte;
                }
            }
            metadata_record(&data);
            metadata_record(&garbage);
        }
    }
}
