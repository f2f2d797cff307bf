//! The body of the `record_batch` fuzz target (`fuzz/fuzz_targets/`), kept
//! here so that the crate's own tests run it too and it cannot rot while
//! the fuzz package (outside the workspace) goes unbuilt. Not an API.

use crate::batch::{BatchHeader, Batches, CompressionType, BATCH_HEADER_SIZE};
use crate::builder::BatchBuilder;
use crate::compression::decompress;
use crate::reader::BatchReader;
use crate::record::{Header, RecordIter};
use crate::types::Offset;
use crate::validate::{check_batch_records, check_records};

/// Decompression limit the target uses: output past it must be refused.
pub const LIMIT: usize = 1 << 20;

const CODECS: [CompressionType; 5] = [
    CompressionType::None,
    CompressionType::Gzip,
    CompressionType::Snappy,
    CompressionType::Lz4,
    CompressionType::Zstd,
];

/// Runs every parser of the crate over `data` and panics if one of them
/// breaks a promise (panics, reads out of bounds, exceeds the limit, or
/// decodes records that do not re-encode to the same records).
pub fn record_batch(data: &[u8]) {
    // 1. As a log: batches end to end, in each validation mode.
    for mut batches in [
        Batches::new(data),
        Batches::stored(data),
        Batches::without_crc(data),
    ] {
        let mut last_end = 0;
        for item in batches.by_ref() {
            let Ok((at, header)) = item else { break };
            assert_eq!(at, last_end);
            last_end = at + header.size();
            assert!(last_end <= data.len());
            read_batch(&data[at..]);
            walk_batch(&data[at..]);
        }
        assert_eq!(batches.position(), last_end);
    }

    // 2. The CRC stops a fuzzer from reaching record decoding; also try the
    //    input with its CRC (and batch length) made right.
    if data.len() >= BATCH_HEADER_SIZE {
        let mut fixed = data.to_vec();
        let len = (fixed.len() - 12) as i32;
        fixed[8..12].copy_from_slice(&len.to_be_bytes());
        fixed[16] = 2;
        let crc = crate::crc::crc32c(&fixed[21..]);
        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(BatchHeader::parse(&fixed).is_ok());
        read_batch(&fixed);
        walk_batch(&fixed);
    }

    // 3. As a compressed payload for every codec, and as a records section.
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    for codec in CODECS {
        if let Ok(out) = decompress(codec, payload, LIMIT) {
            assert!(out.len() <= LIMIT);
        }
    }
    let mut header = synthetic_header();
    header.record_count = i32::from(selector % 16);
    let walked = check_records(&header, payload);
    let mut decoded = 0;
    let mut iter_ok = true;
    for record in RecordIter::new(&header, payload) {
        let Ok(record) = record else {
            iter_ok = false;
            break;
        };
        // The producer walk accepts only records at their own index.
        if walked.is_ok() {
            assert_eq!(record.offset_delta, decoded);
        }
        decoded += 1;
        let _ = record.headers.iter().count();
    }
    // The in-place walk accepts exactly what the iterator decodes, with
    // offset deltas 0..count-1 (checked above).
    if walked.is_ok() {
        assert!(iter_ok && decoded == header.record_count);
    }
}

/// The producer's record walk over one header-valid batch: never panics;
/// where it accepts, the records all decode, at their own index, and the
/// streamed walk of a compressed batch agrees with decoding it whole.
fn walk_batch(batch: &[u8]) {
    let Ok(header) = BatchHeader::validate(batch) else {
        return;
    };
    let walked = check_batch_records(batch, &header, LIMIT, &mut crate::budget::Unbounded);
    let Ok(reader) = BatchReader::new(batch, LIMIT) else {
        assert!(
            walked.is_err(),
            "the walk accepted what does not decompress"
        );
        return;
    };
    let whole = check_records(&header, reader.records_data());
    // The walk accepts nothing the whole decode refuses. It may refuse more,
    // but only in the codec itself: the streamed decoders check what the
    // whole-buffer one lets pass (a zstd frame whose declared content size
    // is not what it holds decodes whole to its real content).
    match (&walked, &whole) {
        (Ok(()), Err(_)) => panic!("the walk accepted {whole:?}"),
        (Err(e), Ok(())) => assert!(
            matches!(e, crate::RecordError::Decompression { .. }),
            "the walk refused records the whole decode accepts: {e:?}"
        ),
        _ => {}
    }
}

fn synthetic_header() -> BatchHeader {
    let mut batch = BatchBuilder::new(CompressionType::None)
        .build()
        .expect("an empty batch builds");
    batch[16] = 2;
    BatchHeader::parse(&batch).expect("the builder's header parses")
}

/// Reads one batch's records; when they all decode with increasing
/// offsets, rebuilds the batch from them and checks it reads back the same.
fn read_batch(batch: &[u8]) {
    let Ok(reader) = BatchReader::new(batch, LIMIT) else {
        return;
    };
    let header = *reader.header();
    if header.compression() != CompressionType::None {
        assert!(reader.records_data().len() <= LIMIT);
    }
    let mut records = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => records.push(r),
            Err(_) => return,
        }
    }
    assert_eq!(records.len(), header.record_count as usize);

    let mut rebuilt = BatchBuilder::new(CompressionType::None).base_offset(header.base_offset);
    let mut previous: Option<Offset> = None;
    for r in &records {
        if r.offset < header.base_offset || previous.is_some_and(|p| r.offset <= p) {
            return; // not re-encodable at the same offsets; fine for a reader
        }
        previous = Some(r.offset);
        if rebuilt.append_record(r).is_err() {
            return;
        }
    }
    let bytes = rebuilt.build().expect("records that decoded re-encode");
    let again = BatchReader::new(&bytes, LIMIT).expect("a rebuilt batch validates");
    let decoded: Vec<_> = again
        .records()
        .collect::<Result<_, _>>()
        .expect("a rebuilt batch decodes");
    assert_eq!(decoded.len(), records.len());
    for (a, b) in records.iter().zip(&decoded) {
        assert_eq!(a.offset, b.offset);
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.key, b.key);
        assert_eq!(a.value, b.value);
        assert!(a.headers.iter().eq(b.headers.iter()));
        let _: Vec<Header<'_>> = b.headers.iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::OwnedHeader;
    use crate::types::Timestamp;
    use proptest::prelude::*;

    fn valid_batch(codec: CompressionType, values: &[Vec<u8>]) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for (i, v) in values.iter().enumerate() {
            let h = OwnedHeader {
                key: vec![b'h'],
                value: Some(v.clone()),
            };
            b.append(Timestamp(i as i64), Some(v), Some(v), &[h.as_header()])
                .unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn harness_runs_on_valid_batches_of_every_codec() {
        let values = vec![b"one".to_vec(), vec![], b"three".to_vec()];
        for codec in CODECS {
            let mut log = valid_batch(codec, &values);
            log.extend(valid_batch(codec, &values[1..]));
            record_batch(&log);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn harness_never_panics_on_arbitrary_or_mutated_input(
            codec in prop::sample::select(CODECS.to_vec()),
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..4),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            garbage in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut data = valid_batch(codec, &values);
            for (at, byte) in edits {
                let i = at.index(data.len());
                data[i] = byte;
            }
            record_batch(&data);
            record_batch(&garbage);
        }
    }
}
