//! Batches written by Apache Kafka's own Java record code (the producer's
//! `MemoryRecordsBuilder`, kafka-clients 4.1.2, one per codec) must decode
//! to the records Kafka was given; our builder must write Kafka's exact
//! bytes for the uncompressed batch. The fixtures in tests/data/ were made
//! by tests/java/run.sh write, which also lets Kafka read our batches back
//! (tests/java/run.sh read).

use std::path::PathBuf;

use sluice_record::{
    records, BatchBuilder, BatchHeader, Batches, CompressionType, Header, Offset, OwnedHeader,
    OwnedRecord, ProducerEpoch, ProducerId, Timestamp, BATCH_HEADER_SIZE,
};

const COUNT: usize = 50;

/// The records KafkaBatches.java writes (keep the two in step).
fn expected_records() -> Vec<OwnedRecord> {
    (0..COUNT)
        .map(|i| OwnedRecord {
            offset: Offset(i as i64),
            timestamp: Timestamp(1_700_000_000_000 + i as i64 * 10),
            key: (i % 3 != 0).then(|| format!("key-{i}").into_bytes()),
            value: (i % 7 != 0)
                .then(|| format!("value-{i}-{}", "x".repeat(i * 13 % 200)).into_bytes()),
            headers: if i % 2 != 0 {
                vec![]
            } else {
                vec![
                    OwnedHeader {
                        key: b"h1".to_vec(),
                        value: Some(format!("v{i}").into_bytes()),
                    },
                    OwnedHeader {
                        key: b"h2".to_vec(),
                        value: None,
                    },
                ]
            },
        })
        .collect()
}

const CODECS: [CompressionType; 5] = [
    CompressionType::None,
    CompressionType::Gzip,
    CompressionType::Snappy,
    CompressionType::Lz4,
    CompressionType::Zstd,
];

fn fixture(codec: CompressionType) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("java-{}.bin", codec.name()));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sluice_batch(codec: CompressionType) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec).producer(ProducerId(1234), ProducerEpoch(5), 77);
    for r in expected_records() {
        let headers: Vec<Header> = r.headers.iter().map(OwnedHeader::as_header).collect();
        b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
            .unwrap();
    }
    b.build().unwrap()
}

#[test]
fn batches_written_by_kafka_decode_to_the_records_kafka_was_given() {
    for codec in CODECS {
        let bytes = fixture(codec);
        let batches: Vec<_> = Batches::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 1, "{codec:?}");
        let h = BatchHeader::validate(&bytes).unwrap();
        assert_eq!(h.compression(), codec);
        assert_eq!(h.producer_id, ProducerId(1234));
        assert_eq!(h.producer_epoch, ProducerEpoch(5));
        assert_eq!(h.base_sequence, 77);
        assert_eq!(h.record_count as usize, COUNT);
        assert_eq!(h.max_timestamp, Timestamp(1_700_000_000_000 + 49 * 10));
        let reader = records(&bytes, 1 << 20).unwrap();
        let got: Vec<OwnedRecord> = reader.records().map(|r| r.unwrap().into_owned()).collect();
        assert_eq!(got, expected_records(), "{codec:?}");
    }
}

#[test]
fn kafka_java_writes_xerial_framed_snappy_which_we_read() {
    let bytes = fixture(CompressionType::Snappy);
    assert_eq!(
        &bytes[BATCH_HEADER_SIZE..BATCH_HEADER_SIZE + 8],
        b"\x82SNAPPY\0"
    );
}

#[test]
fn our_uncompressed_batch_is_byte_identical_to_kafkas() {
    assert_eq!(
        sluice_batch(CompressionType::None),
        fixture(CompressionType::None)
    );
}

#[test]
fn our_compressed_batches_decode_like_kafkas() {
    // Compressed bytes may differ from Java's (other compressor
    // implementations) but headers and records must agree.
    for codec in CODECS {
        let ours = sluice_batch(codec);
        let theirs = fixture(codec);
        let (a, b) = (
            BatchHeader::validate(&ours).unwrap(),
            BatchHeader::validate(&theirs).unwrap(),
        );
        assert_eq!(
            (
                a.attributes,
                a.last_offset_delta,
                a.base_timestamp,
                a.max_timestamp
            ),
            (
                b.attributes,
                b.last_offset_delta,
                b.base_timestamp,
                b.max_timestamp
            ),
            "{codec:?}"
        );
        assert_eq!(
            records(&ours, 1 << 20).unwrap().records_data(),
            records(&theirs, 1 << 20).unwrap().records_data(),
            "{codec:?}: uncompressed record sections differ"
        );
    }
}

/// Used by tests/java/run.sh read: writes our batches where Kafka's Java
/// code can read them (when SLUICE_RECORD_DUMP names a directory).
#[test]
fn dump_sluice_batches_for_java() {
    for codec in CODECS {
        let batch = sluice_batch(codec);
        assert_eq!(records(&batch, 1 << 20).unwrap().records().count(), COUNT);
        if let Some(dir) = std::env::var_os("SLUICE_RECORD_DUMP") {
            let path = PathBuf::from(dir).join(format!("sluice-{}.bin", codec.name()));
            std::fs::write(path, &batch).unwrap();
        }
    }
}
