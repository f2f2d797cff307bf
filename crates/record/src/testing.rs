//! Hand-laid record batches for the tests of record validation, shared by
//! the storage, broker and binary tests so the malformed cases of issue 15
//! are written once.
//!
//! [`raw_batch`] writes a v2 batch field by field with a correct CRC,
//! whatever its `recordCount` and `lastOffsetDelta` claim about the records
//! it carries; [`raw_records`] writes records whose length varint may lie.
//! [`BatchBuilder`](crate::BatchBuilder) cannot make such batches, which is
//! the point.

use crate::batch::CompressionType;

fn zigzag(out: &mut Vec<u8>, v: i32) {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Records `(offset_delta, value, length_lie)` with `key` (None: a null key),
/// no headers and timestamp delta 0; each length varint is off by its lie.
pub fn raw_records(key: Option<&[u8]>, records: &[(i32, &[u8], i32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(offset_delta, value, lie) in records {
        let mut body = vec![0u8, 0]; // attributes, timestamp delta 0
        zigzag(&mut body, offset_delta);
        match key {
            Some(k) => {
                zigzag(&mut body, k.len() as i32);
                body.extend_from_slice(k);
            }
            None => zigzag(&mut body, -1),
        }
        zigzag(&mut body, value.len() as i32);
        body.extend_from_slice(value);
        zigzag(&mut body, 0); // no headers
        zigzag(&mut out, body.len() as i32 + lie);
        out.extend(body);
    }
    out
}

/// A v2 batch at base offset 0 with `records` compressed in `codec`, both
/// timestamps `timestamp_ms`, no producer, and the header fields given.
pub fn raw_batch(
    codec: CompressionType,
    last_offset_delta: i32,
    count: i32,
    records: &[u8],
    timestamp_ms: i64,
) -> Vec<u8> {
    let section = crate::compress(codec, records).expect("test records compress");
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&codec.id().to_be_bytes()); // attributes
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&section);
    let crc = crate::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Issue 15's batches whose records disagree with their header, each named:
/// counts over too few records (one claiming 2^31-1 with lastOffsetDelta
/// 2^31-2, which once moved a high watermark to 2,147,483,647), record
/// lengths one byte too long and too short, and offset deltas that skip.
pub fn malformed_batches(
    codec: CompressionType,
    key: Option<&[u8]>,
    timestamp_ms: i64,
) -> Vec<(&'static str, Vec<u8>)> {
    let recs = |r: &[(i32, &[u8], i32)]| raw_records(key, r);
    let three = recs(&[(0, b"a", 0), (1, b"b", 0), (2, b"c", 0)]);
    let two = recs(&[(0, b"a", 0), (1, b"b", 0)]);
    let batch = |last, count, records: &[u8]| raw_batch(codec, last, count, records, timestamp_ms);
    vec![
        (
            "count 2^31-1, lastOffsetDelta 2^31-2, three records",
            batch(i32::MAX - 1, i32::MAX, &three),
        ),
        ("count 3 over two records", batch(2, 3, &two)),
        ("count 1 over two records", batch(0, 1, &two)),
        (
            "first record's length one byte long",
            batch(1, 2, &recs(&[(0, b"a", 1), (1, b"b", 0)])),
        ),
        (
            "second record's length one byte short",
            batch(1, 2, &recs(&[(0, b"a", 0), (1, b"bb", -1)])),
        ),
        (
            "records at offset deltas 0 and 5",
            batch(1, 2, &recs(&[(0, b"a", 0), (5, b"b", 0)])),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(batch: &[u8]) -> Result<(), crate::RecordError> {
        let header = crate::BatchHeader::validate(batch)?;
        crate::check_batch_records(batch, &header, 1 << 20, &mut crate::Unbounded)
    }

    #[test]
    fn a_truthful_raw_batch_passes_and_every_malformed_one_fails() {
        for codec in [CompressionType::None, CompressionType::Gzip] {
            let ok = raw_records(Some(b"k"), &[(0, b"a", 0), (1, b"b", 0)]);
            let good = raw_batch(codec, 1, 2, &ok, 1_700_000_000_000);
            check(&good).expect("a truthful batch passes");
            for (what, bad) in malformed_batches(codec, Some(b"k"), 1_700_000_000_000) {
                assert!(check(&bad).is_err(), "{codec:?}: {what}");
            }
        }
    }
}
