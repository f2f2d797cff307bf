//! Builder -> validate -> decode round trips for every codec, and a batch
//! laid out by hand byte for byte, checked against an independent CRC-32C.

use proptest::prelude::*;
use sluice_record::{
    records, BatchBuilder, BatchHeader, Batches, CompressionType, Header, LeaderEpoch, Offset,
    OwnedHeader, OwnedRecord, ProducerEpoch, ProducerId, RecordError, Timestamp, TimestampType,
};

const CODECS: [CompressionType; 5] = [
    CompressionType::None,
    CompressionType::Gzip,
    CompressionType::Snappy,
    CompressionType::Lz4,
    CompressionType::Zstd,
];

const LIMIT: usize = 1 << 24;

/// CRC-32C (Castagnoli), bit by bit from its definition: reflected
/// polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF. Written
/// here so the test does not trust the crc32c crate the code uses.
fn crc32c_reference(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn reference_crc_matches_the_published_check_value() {
    // The CRC catalogue's check value for CRC-32/ISCSI over "123456789".
    assert_eq!(crc32c_reference(b"123456789"), 0xE306_9283);
}

#[test]
fn builder_output_matches_a_batch_laid_out_by_hand() {
    // Two records, second 5 ms later, one with a header, one null value.
    let mut expected: Vec<u8> = Vec::new();
    expected.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    let length_at = expected.len();
    expected.extend_from_slice(&[0; 4]); // batchLength, below
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    expected.push(2); // magic
    let crc_at = expected.len();
    expected.extend_from_slice(&[0; 4]); // crc, below
    expected.extend_from_slice(&0i16.to_be_bytes()); // attributes
    expected.extend_from_slice(&1i32.to_be_bytes()); // lastOffsetDelta
    expected.extend_from_slice(&1_000i64.to_be_bytes()); // baseTimestamp
    expected.extend_from_slice(&1_005i64.to_be_bytes()); // maxTimestamp
    expected.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    expected.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    expected.extend_from_slice(&2i32.to_be_bytes()); // recordCount
                                                     // Record 0: attrs 0, tsDelta 0, offDelta 0, key "k" (len 1 -> zigzag 2),
                                                     // value "v", header count 1, header "h" = "x". Body 12 bytes -> 0x18.
    expected.extend_from_slice(&[
        0x18, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x02, 0x02, b'h', 0x02, b'x',
    ]);
    // Record 1: attrs 0, tsDelta 5 (zigzag 10), offDelta 1 (zigzag 2), null
    // key (-1 -> 1), null value, no headers. Body 6 bytes -> length 12.
    expected.extend_from_slice(&[0x0c, 0x00, 0x0a, 0x02, 0x01, 0x01, 0x00]);
    let batch_length = (expected.len() - 12) as i32;
    expected[length_at..length_at + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c_reference(&expected[crc_at + 4..]);
    expected[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());

    let mut builder = BatchBuilder::new(CompressionType::None);
    builder
        .append(
            Timestamp(1_000),
            Some(b"k"),
            Some(b"v"),
            &[Header {
                key: b"h",
                value: Some(b"x"),
            }],
        )
        .unwrap();
    builder.append(Timestamp(1_005), None, None, &[]).unwrap();
    let built = builder.build().unwrap();
    assert_eq!(built, expected);

    let header = BatchHeader::validate(&built).unwrap();
    assert_eq!(header.crc, crc);
    let reader = records(&built, LIMIT).unwrap();
    let got: Vec<OwnedRecord> = reader.records().map(|r| r.unwrap().into_owned()).collect();
    assert_eq!(
        got,
        vec![
            OwnedRecord {
                offset: Offset(0),
                timestamp: Timestamp(1_000),
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                headers: vec![OwnedHeader {
                    key: b"h".to_vec(),
                    value: Some(b"x".to_vec()),
                }],
            },
            OwnedRecord {
                offset: Offset(1),
                timestamp: Timestamp(1_005),
                key: None,
                value: None,
                headers: vec![],
            },
        ]
    );
}

#[test]
fn compressed_batches_carry_a_crc_over_the_compressed_bytes() {
    for codec in CODECS {
        let mut b = BatchBuilder::new(codec);
        for i in 0..50u32 {
            b.append(Timestamp(i64::from(i)), None, Some(&i.to_be_bytes()), &[])
                .unwrap();
        }
        let batch = b.build().unwrap();
        let h = BatchHeader::validate(&batch).unwrap();
        assert_eq!(h.compression(), codec);
        assert_eq!(h.crc, crc32c_reference(&batch[21..]), "{codec:?}");
    }
}

#[test]
fn producer_and_flag_fields_are_written() {
    let mut b = BatchBuilder::new(CompressionType::Zstd)
        .base_offset(Offset(500))
        .partition_leader_epoch(LeaderEpoch(4))
        .producer(ProducerId(77), ProducerEpoch(2), 1234)
        .transactional(true)
        .control(true);
    b.append(
        Timestamp(10),
        Some(b"\0\0\0\x01"),
        Some(b"\0\0\0\0\0\0"),
        &[],
    )
    .unwrap();
    let batch = b.build().unwrap();
    let h = BatchHeader::validate(&batch).unwrap();
    assert_eq!(h.base_offset, Offset(500));
    assert_eq!(h.partition_leader_epoch, LeaderEpoch(4));
    assert_eq!(h.producer_id, ProducerId(77));
    assert_eq!(h.producer_epoch, ProducerEpoch(2));
    assert_eq!(h.base_sequence, 1234);
    assert!(h.is_transactional() && h.is_control());
    assert_eq!(h.compression(), CompressionType::Zstd);
    let r = records(&batch, LIMIT).unwrap();
    assert_eq!(r.records().next().unwrap().unwrap().offset, Offset(500));
}

#[test]
fn log_append_time_batches_report_the_append_time_for_every_record() {
    let mut b = BatchBuilder::new(CompressionType::Gzip).log_append_time(Timestamp(9_999));
    b.append(Timestamp(1), None, Some(b"a"), &[]).unwrap();
    b.append(Timestamp(2), None, Some(b"b"), &[]).unwrap();
    let batch = b.build().unwrap();
    let h = BatchHeader::validate(&batch).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, Timestamp(9_999));
    let r = records(&batch, LIMIT).unwrap();
    for rec in r.records() {
        assert_eq!(rec.unwrap().timestamp, Timestamp(9_999));
    }
}

#[test]
fn compacted_batches_keep_offsets_and_the_original_last_offset() {
    let mut b = BatchBuilder::new(CompressionType::Snappy)
        .base_offset(Offset(100))
        .last_offset(Offset(109));
    b.append_with_offset(Offset(101), Timestamp(5), Some(b"a"), Some(b"1"), &[])
        .unwrap();
    b.append_with_offset(Offset(104), Timestamp(6), Some(b"b"), None, &[])
        .unwrap();
    assert!(matches!(
        b.append_with_offset(Offset(104), Timestamp(7), Some(b"c"), None, &[]),
        Err(RecordError::Build(_))
    ));
    assert!(matches!(
        b.append_with_offset(Offset(99), Timestamp(7), Some(b"c"), None, &[]),
        Err(RecordError::Build(_))
    ));
    let batch = b.build().unwrap();
    assert!(matches!(
        BatchHeader::validate(&batch),
        Err(RecordError::CountMismatch { .. })
    ));
    let h = BatchHeader::validate_stored(&batch).unwrap();
    assert_eq!(h.record_count, 2);
    assert_eq!(h.last_offset(), Offset(109));
    assert_eq!(h.next_offset(), Offset(110));
    let offsets: Vec<Offset> = records(&batch, LIMIT)
        .unwrap()
        .records()
        .map(|r| r.unwrap().offset)
        .collect();
    assert_eq!(offsets, [Offset(101), Offset(104)]);
}

#[test]
fn compactor_can_rewrite_a_batch_record_by_record() {
    let mut original = BatchBuilder::new(CompressionType::Lz4)
        .base_offset(Offset(40))
        .producer(ProducerId(9), ProducerEpoch(1), 0);
    for i in 0..10u8 {
        original
            .append(
                Timestamp(1_000 + i64::from(i)),
                Some(&[i % 3]),
                Some(&[i]),
                &[Header {
                    key: b"n",
                    value: Some(&[i]),
                }],
            )
            .unwrap();
    }
    let original = original.build().unwrap();
    let reader = records(&original, LIMIT).unwrap();
    let h = *reader.header();
    // Keep the last record of each key.
    let all: Vec<_> = reader.records().map(Result::unwrap).collect();
    let kept: Vec<_> = all
        .iter()
        .filter(|r| {
            !all.iter()
                .any(|later| later.offset > r.offset && later.key == r.key)
        })
        .collect();
    let mut cleaned = BatchBuilder::new(h.compression())
        .base_offset(h.base_offset)
        .producer(h.producer_id, h.producer_epoch, h.base_sequence)
        .last_offset(h.last_offset());
    for r in &kept {
        cleaned.append_record(r).unwrap();
    }
    let cleaned = cleaned.build().unwrap();
    let ch = BatchHeader::validate_stored(&cleaned).unwrap();
    assert_eq!(ch.last_offset(), h.last_offset());
    assert_eq!(ch.producer_id, ProducerId(9));
    let back: Vec<OwnedRecord> = records(&cleaned, LIMIT)
        .unwrap()
        .records()
        .map(|r| r.unwrap().into_owned())
        .collect();
    let want: Vec<OwnedRecord> = kept.iter().map(|r| r.into_owned()).collect();
    assert_eq!(back, want);
    assert_eq!(
        back.iter().map(|r| r.offset.0).collect::<Vec<_>>(),
        [47, 48, 49]
    );
}

#[test]
fn empty_batch_is_valid() {
    let batch = BatchBuilder::new(CompressionType::Gzip).build().unwrap();
    let h = BatchHeader::validate(&batch).unwrap();
    assert_eq!(h.record_count, 0);
    assert_eq!(h.max_timestamp, Timestamp::NONE);
    assert_eq!(records(&batch, LIMIT).unwrap().records().count(), 0);
}

#[test]
fn decompression_limit_applies_to_whole_batches() {
    let mut b = BatchBuilder::new(CompressionType::Zstd);
    let big = vec![b'x'; 100_000];
    for _ in 0..20 {
        b.append(Timestamp(0), None, Some(&big), &[]).unwrap();
    }
    let batch = b.build().unwrap();
    assert!(batch.len() < 10_000, "{}", batch.len());
    assert!(matches!(
        records(&batch, 1 << 20),
        Err(RecordError::Decompression { codec: "zstd", .. })
    ));
    assert_eq!(records(&batch, 4 << 20).unwrap().records().count(), 20);
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_record() -> impl Strategy<Value = OwnedRecord> {
    (
        prop_oneof![any::<i64>(), 1_600_000_000_000i64..1_900_000_000_000],
        proptest::option::of(arb_bytes(40)),
        proptest::option::of(prop_oneof![arb_bytes(300), Just(vec![7u8; 5000])]),
        proptest::collection::vec(
            (arb_bytes(12), proptest::option::of(arb_bytes(20)))
                .prop_map(|(key, value)| OwnedHeader { key, value }),
            0..4,
        ),
    )
        .prop_map(|(ts, key, value, headers)| OwnedRecord {
            offset: Offset(0),
            timestamp: Timestamp(ts),
            key,
            value,
            headers,
        })
}

proptest! {
    #[test]
    fn crate_crc32c_agrees_with_the_reference(
        bytes in proptest::collection::vec(any::<u8>(), 0..5000),
        skip in 0usize..64,
    ) {
        // Unaligned starts and every length class of the SIMD folding.
        let data = &bytes[skip.min(bytes.len())..];
        prop_assert_eq!(sluice_record::crc32c(data), crc32c_reference(data));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn builder_validate_decode_round_trips(
        recs in proptest::collection::vec(arb_record(), 1..25),
        codec in prop::sample::select(CODECS.to_vec()),
        base in 0i64..1 << 40,
        producer in (any::<i64>(), any::<i16>(), any::<i32>()),
        transactional in any::<bool>(),
    ) {
        let mut b = BatchBuilder::new(codec)
            .base_offset(Offset(base))
            .producer(ProducerId(producer.0), ProducerEpoch(producer.1), producer.2)
            .transactional(transactional);
        for r in &recs {
            let headers: Vec<Header> = r.headers.iter().map(OwnedHeader::as_header).collect();
            b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers).unwrap();
        }
        let batch = b.build().unwrap();
        let h = BatchHeader::validate(&batch).unwrap();
        prop_assert_eq!(h.size(), batch.len());
        prop_assert_eq!(h.record_count as usize, recs.len());
        prop_assert_eq!(h.compression(), codec);
        prop_assert_eq!(h.is_transactional(), transactional);
        prop_assert_eq!(h.base_timestamp, recs[0].timestamp);
        // Like Kafka's builder, maxTimestamp starts at NO_TIMESTAMP (-1).
        let max = recs.iter().map(|r| r.timestamp).fold(Timestamp::NONE, Timestamp::max);
        prop_assert_eq!(h.max_timestamp, max);
        prop_assert_eq!(h.crc, crc32c_reference(&batch[21..]));

        let reader = records(&batch, LIMIT).unwrap();
        let back: Vec<OwnedRecord> =
            reader.records().collect::<Result<Vec<_>, _>>().unwrap().iter().map(|r| r.into_owned()).collect();
        let want: Vec<OwnedRecord> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| OwnedRecord { offset: Offset(base + i as i64), ..r.clone() })
            .collect();
        prop_assert_eq!(back, want);

        // Two batches end to end iterate as two.
        let mut log = batch.clone();
        log.extend_from_slice(&batch);
        prop_assert_eq!(Batches::new(&log).filter(Result::is_ok).count(), 2);
    }

    #[test]
    fn records_with_gaps_round_trip(
        recs in proptest::collection::vec((1i64..1000, arb_record()), 1..15),
        codec in prop::sample::select(CODECS.to_vec()),
    ) {
        let mut b = BatchBuilder::new(codec).base_offset(Offset(1_000));
        let mut want = Vec::new();
        let mut next = 1_000;
        for (gap, r) in recs {
            next += gap - 1;
            let r = OwnedRecord { offset: Offset(next), ..r };
            b.append_owned(&r).unwrap();
            want.push(r);
            next += 1;
        }
        let batch = b.build().unwrap();
        let h = BatchHeader::validate_stored(&batch).unwrap();
        prop_assert_eq!(h.last_offset(), want.last().unwrap().offset);
        let back: Vec<OwnedRecord> = records(&batch, LIMIT)
            .unwrap()
            .records()
            .map(|r| r.map(|r| r.into_owned()))
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(back, want);
    }

    #[test]
    fn mutated_record_bytes_never_panic(
        recs in proptest::collection::vec(arb_record(), 1..6),
        codec in prop::sample::select(CODECS.to_vec()),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut b = BatchBuilder::new(codec);
        for r in &recs {
            b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &[]).unwrap();
        }
        let mut batch = b.build().unwrap();
        // Edit the records section, then fix the CRC so decoding is reached.
        for (at, byte) in edits {
            let at = 61 + at.index(batch.len() - 61);
            batch[at] = byte;
        }
        let crc = crc32c_reference(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        if let Ok(reader) = records(&batch, 1 << 16) {
            prop_assert!(reader.records_data().len() <= 1 << 16 || codec == CompressionType::None);
            let mut n = 0;
            for r in reader.records() {
                n += 1;
                prop_assert!(n <= recs.len() + 1);
                if let Ok(r) = r {
                    let _ = r.headers.iter().count();
                }
            }
        }
    }
}
