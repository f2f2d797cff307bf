//! Test-only helpers building RecordBatch v2 bytes with
//! `sluice_record::BatchBuilder`, shared by unit tests, integration tests and
//! benches via `#[path]`.
#![allow(dead_code)]

use sluice_record::{BatchBuilder, CompressionType, Timestamp};

/// One batch of `values` (null keys, no headers), base offset 0, record i
/// at `timestamp + i` ms, compressed with `codec`.
pub fn build_batch_with(codec: CompressionType, values: &[&[u8]], timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    for (i, v) in values.iter().enumerate() {
        b.append(Timestamp(timestamp + i as i64), None, Some(v), &[])
            .expect("test record");
    }
    b.build().expect("test batch")
}

/// One uncompressed batch of `values`, base offset 0, record i at
/// `timestamp + i` ms.
pub fn build_batch(values: &[&[u8]], timestamp: i64) -> Vec<u8> {
    build_batch_with(CompressionType::None, values, timestamp)
}

/// A batch of `count` records of `size` bytes each (value bytes derived
/// from `seed`).
pub fn batch_of(count: usize, size: usize, timestamp: i64, seed: u8) -> Vec<u8> {
    let vals: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            (0..size)
                .map(|j| seed.wrapping_add((i * 7 + j) as u8))
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    build_batch(&refs, timestamp)
}
