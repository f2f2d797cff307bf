use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::arbitrary;
use crate::types::BrokerId;

#[test]
fn topic_record_bytes_are_kafkas() {
    // Worked by hand from TopicRecord.json: frame 1, api key 2, version 0,
    // compact string "ab" (len+1 = 3), 16 uuid bytes, no tagged fields.
    let id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
    let rec = MetadataRecord::Topic(TopicRecord {
        name: "ab".into(),
        topic_id: id,
    });
    let bytes = rec.to_bytes().unwrap();
    let mut want = vec![1, 2, 0, 3, b'a', b'b'];
    want.extend_from_slice(id.as_bytes());
    want.push(0);
    assert_eq!(bytes, want);
    assert_eq!(MetadataRecord::decode(&bytes).unwrap(), rec);
}

#[test]
fn partition_change_writes_only_changed_fields_as_tags() {
    let id = Uuid::from_u128(7);
    let mut change = PartitionChangeRecord::new(id, 3);
    change.leader = BrokerId(2);
    change.isr = Some(vec![BrokerId(2)]);
    let bytes = MetadataRecord::PartitionChange(change.clone())
        .to_bytes()
        .unwrap();
    let mut want = vec![1, 5, 2, 0, 0, 0, 3];
    want.extend_from_slice(id.as_bytes());
    // Two tags: 0 (Isr: len 5 = count 2 + one int32) and 1 (Leader: 4 bytes).
    want.extend_from_slice(&[2, 0, 5, 2, 0, 0, 0, 2, 1, 4, 0, 0, 0, 2]);
    assert_eq!(bytes, want);
    assert_eq!(
        MetadataRecord::decode(&bytes).unwrap(),
        MetadataRecord::PartitionChange(change)
    );
}

#[test]
fn older_versions_decode_with_defaults() {
    // PartitionRecord v0 has no Directories; ELR fields are v2+ so tags 1
    // and 2 at v0 are unknown tagged fields and are skipped.
    let id = Uuid::from_u128(9);
    let mut v0 = vec![1, 3, 0, 0, 0, 0, 1];
    v0.extend_from_slice(id.as_bytes());
    v0.extend_from_slice(&[2, 0, 0, 0, 1]); // replicas [1]
    v0.extend_from_slice(&[2, 0, 0, 0, 1]); // isr [1]
    v0.extend_from_slice(&[1, 1]); // removing, adding: []
    v0.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 6]); // leader 1, epochs 5, 6
    v0.extend_from_slice(&[1, 1, 1, 1]); // one tagged field: tag 1, size 1, empty array
    let MetadataRecord::Partition(p) = MetadataRecord::decode(&v0).unwrap() else {
        panic!("not a PartitionRecord")
    };
    assert_eq!(p.replicas, vec![BrokerId(1)]);
    assert_eq!(p.leader_epoch.0, 5);
    assert_eq!(p.partition_epoch.0, 6);
    assert!(p.directories.is_empty());
    assert_eq!(p.eligible_leader_replicas, None);
}

#[test]
fn hostile_counts_and_framing_are_errors_not_allocations() {
    let cases: &[&[u8]] = &[
        &[],
        &[0],                                      // frame version 0 (Kafka 2.8 preview)
        &[2, 2, 0],                                // unknown frame version
        &[1, 99, 0],                               // unknown api key
        &[1, 2, 1],                                // TopicRecord v1 does not exist
        &[1, 0xff, 0xff, 0xff, 0xff, 0x0f],        // api key beyond u32/i16
        &[1, 2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],  // string of 4 Gi bytes
        &[1, 20, 0, 0xff, 0xff, 0xff, 0xff, 0x0f], // 4 Gi tagged fields
        &[1, 20, 0, 0, 7],                         // trailing garbage
        &[1, 20, 0, 2, 1, 0, 0, 0],                // tags out of order
    ];
    for bytes in cases {
        assert!(MetadataRecord::decode(bytes).is_err(), "{bytes:?}");
    }
    // A string one byte over Kafka's limit, with all its bytes present.
    let mut long = vec![1, 2, 0, 0x81, 0x80, 0x02];
    long.extend(std::iter::repeat_n(b'a', 0x8000));
    long.extend_from_slice(&[0; 17]);
    assert_eq!(
        MetadataRecord::decode(&long),
        Err(MetadataError::Malformed("string longer than 32767 bytes"))
    );
    long[3] = 0x80; // exactly 32767 bytes: fine
    long.remove(6);
    assert!(MetadataRecord::decode(&long).is_ok());
    // Replicas count claiming 2^28 int32s in a tiny record.
    let mut p = vec![1, 3, 2, 0, 0, 0, 0];
    p.extend_from_slice(&[0; 16]);
    p.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(
        MetadataRecord::decode(&p),
        Err(MetadataError::Truncated("Replicas"))
    );
}

#[test]
fn a_tagged_field_must_fill_its_declared_size() {
    let id = Uuid::from_u128(7);
    let mut bytes = vec![1, 5, 2, 0, 0, 0, 3];
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(&[1, 1, 5, 0, 0, 0, 2, 9]); // Leader in 5 bytes
    assert!(MetadataRecord::decode(&bytes).is_err());
}

#[test]
fn strings_over_kafkas_limit_do_not_encode() {
    let rec = MetadataRecord::Topic(TopicRecord {
        name: "x".repeat(0x8000),
        topic_id: Uuid::nil(),
    });
    assert_eq!(rec.to_bytes(), Err(MetadataError::FieldTooLong("Name")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_record_round_trips(rec in arbitrary::record()) {
        let bytes = rec.to_bytes().unwrap();
        prop_assert_eq!(bytes[0], 1);
        let back = MetadataRecord::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &rec);
        prop_assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn decode_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        key in prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 9, 12, 15, 17, 20]),
        version in 0..4u8,
    ) {
        let _ = MetadataRecord::decode(&bytes);
        // Past the framing, into a record type's fields.
        let mut framed = vec![1, key, version];
        framed.extend_from_slice(&bytes);
        if let Ok(r) = MetadataRecord::decode(&framed) {
            prop_assert_eq!(MetadataRecord::decode(&r.to_bytes().unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn decode_of_a_damaged_record_never_panics(
        rec in arbitrary::record(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = rec.to_bytes().unwrap();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(r) = MetadataRecord::decode(&bytes) {
            // Whatever decodes must re-encode and decode to itself.
            let again = r.to_bytes().unwrap();
            prop_assert_eq!(MetadataRecord::decode(&again).unwrap(), r);
        }
        let _ = MetadataRecord::decode(&bytes[..cut.index(bytes.len())]);
    }
}

/// Writes a few thousand arbitrary records as hex lines to the file named
/// by `SLUICE_METADATA_DUMP`, for `crates/metadata/kafka-check/run`, which
/// has Apache Kafka's own classes decode and re-encode them.
#[test]
#[ignore = "a tool for kafka-check/run, which needs Java and the Kafka jars"]
fn dump_records_for_kafka_check() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let path = std::env::var("SLUICE_METADATA_DUMP").expect("SLUICE_METADATA_DUMP");
    let mut runner = TestRunner::deterministic();
    let strategy = arbitrary::record();
    let mut text = String::new();
    for _ in 0..5000 {
        let rec = strategy.new_tree(&mut runner).unwrap().current();
        for b in rec.to_bytes().unwrap() {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Reads the "<old bytes> <Kafka's reading, re-encoded at our version>"
/// lines `kafka-check/run` has Kafka write (file named by
/// `SLUICE_METADATA_OLDER`) and checks we read every older version the way
/// Kafka does.
#[test]
#[ignore = "a tool for kafka-check/run, which needs Java and the Kafka jars"]
fn read_kafkas_older_versions() {
    let path = std::env::var("SLUICE_METADATA_OLDER").expect("SLUICE_METADATA_OLDER");
    let text = std::fs::read_to_string(path).unwrap();
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut n = 0;
    for line in text.lines() {
        let (old, kafka) = line.split_once(' ').unwrap();
        let ours = MetadataRecord::decode(&hex(old))
            .unwrap_or_else(|e| panic!("{old}: {e}"))
            .to_bytes()
            .unwrap();
        assert_eq!(ours, hex(kafka), "old bytes {old}");
        n += 1;
    }
    assert!(n > 0, "no older encodings to check");
    println!("read {n} older-version encodings as Kafka does");
}
