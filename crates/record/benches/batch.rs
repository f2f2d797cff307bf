//! Hot paths of the record layer on ~16 KiB batches (a typical producer
//! batch) of 1 KiB and of 100-byte records:
//!
//! - `validate`: `BatchHeader::validate`, i.e. CRC-32C over the batch, which
//!   the broker runs on every produced byte;
//! - `produce_checks`: what the append path checks per produced batch, the
//!   header alone (CRC-32C, counts; all it checked before issue 15) against
//!   the header plus the record walk (`check_batch_records`: in place for
//!   uncompressed, streamed through the decoder for lz4/zstd/gzip), on
//!   16 records of 1 KiB, in ns per batch;
//! - `records`: decoding every record of an uncompressed batch;
//! - `read_compressed`: `BatchReader::new` + decoding for lz4 and zstd;
//! - `recompress`: `recompress` of a 16 KiB batch into a topic's codec
//!   (what the broker does per produced batch when `compression.type` is a
//!   codec other than the producer's), in uncompressed bytes per second.
//!
//! Criterion prints throughput (MiB/s of batch bytes) for each, and a
//! memcpy of the same 16 KiB as a baseline measured in the same run.
//! Run: `cargo bench -p sluice-record --bench batch`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_record::validate::check_batch_records;
use sluice_record::{
    recompress, records, BatchBuilder, BatchHeader, CompressionType, Timestamp, Unbounded,
};

const BATCH_TARGET: usize = 16 * 1024;

/// A batch of `record_size`-byte values filling about 16 KiB. Values are
/// pseudo-random text: realistic enough for the codecs to have work to do.
fn batch(record_size: usize, codec: CompressionType) -> (Vec<u8>, usize) {
    let mut b = BatchBuilder::new(codec);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut n = 0;
    while b.uncompressed_size() + record_size + 16 <= BATCH_TARGET {
        let value: Vec<u8> = (0..record_size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b"abcdefghijklmnopqrstuvwxyz      "[(seed % 32) as usize]
            })
            .collect();
        b.append(
            Timestamp(1_700_000_000_000 + n as i64),
            Some(format!("key-{n}").as_bytes()),
            Some(&value),
            &[],
        )
        .expect("record fits");
        n += 1;
    }
    (b.build().expect("batch builds"), n)
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    // Baseline in the same run: copying the same 16 KiB, so figures taken on
    // a busy shared machine can be read relative to memory bandwidth.
    let (bytes, _) = batch(1024, CompressionType::None);
    let mut dst = vec![0u8; bytes.len()];
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("memcpy_16KiB_baseline", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&bytes)))
    });
    for record_size in [1024, 100] {
        let (bytes, _) = batch(record_size, CompressionType::None);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("crc32c_16KiB", format!("{record_size}B_records")),
            &bytes,
            |b, bytes| b.iter(|| BatchHeader::validate(black_box(bytes)).expect("valid")),
        );
    }
    group.finish();
}

/// A batch of exactly `n` records of `record_size`-byte values.
fn batch_of(n: usize, record_size: usize, codec: CompressionType) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..n {
        let value: Vec<u8> = (0..record_size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b"abcdefghijklmnopqrstuvwxyz      "[(seed % 32) as usize]
            })
            .collect();
        b.append(
            Timestamp(1_700_000_000_000 + i as i64),
            Some(format!("key-{i}").as_bytes()),
            Some(&value),
            &[],
        )
        .expect("record fits");
    }
    b.build().expect("batch builds")
}

fn bench_produce_checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_checks");
    for codec in [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zstd,
        CompressionType::Gzip,
    ] {
        let bytes = batch_of(16, 1024, codec);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("header_only", format!("{}_16x1KiB", codec.name())),
            &bytes,
            |b, bytes| b.iter(|| BatchHeader::validate(black_box(bytes)).expect("valid")),
        );
        group.bench_with_input(
            BenchmarkId::new("header_and_records", format!("{}_16x1KiB", codec.name())),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let h = BatchHeader::validate(black_box(bytes)).expect("valid");
                    check_batch_records(bytes, &h, 256 << 20, &mut Unbounded).expect("valid")
                })
            },
        );
    }
    group.finish();
}

fn bench_records(c: &mut Criterion) {
    let mut group = c.benchmark_group("records");
    for record_size in [1024, 100] {
        let (bytes, n) = batch(record_size, CompressionType::None);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(
                format!("decode_{n}_records"),
                format!("{record_size}B_records"),
            ),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let reader = records(black_box(bytes), 1 << 20).expect("valid");
                    let mut sum = 0usize;
                    for r in reader.records() {
                        sum += r.expect("decodes").value.map_or(0, <[u8]>::len);
                    }
                    sum
                })
            },
        );
    }
    group.finish();
}

fn bench_read_compressed(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_compressed");
    for codec in [CompressionType::Lz4, CompressionType::Zstd] {
        for record_size in [1024, 100] {
            let (bytes, _) = batch(record_size, codec);
            // Throughput in uncompressed bytes: what the consumer gets.
            let plain = records(&bytes, 1 << 20)
                .expect("valid")
                .records_data()
                .len();
            group.throughput(Throughput::Bytes((plain + 61) as u64));
            group.bench_with_input(
                BenchmarkId::new(codec.name(), format!("{record_size}B_records")),
                &bytes,
                |b, bytes| {
                    b.iter(|| {
                        let reader = records(black_box(bytes), 1 << 20).expect("valid");
                        reader.records().filter(Result::is_ok).count()
                    })
                },
            );
        }
    }
    group.finish();
}

fn bench_recompress(c: &mut Criterion) {
    let mut group = c.benchmark_group("recompress");
    for (from, to) in [
        (CompressionType::None, CompressionType::Lz4),
        (CompressionType::None, CompressionType::Gzip),
        (CompressionType::None, CompressionType::Zstd),
        (CompressionType::Snappy, CompressionType::Lz4),
        (CompressionType::Lz4, CompressionType::None),
    ] {
        let (bytes, _) = batch(1024, from);
        let plain = records(&bytes, 1 << 20)
            .expect("valid")
            .records_data()
            .len();
        group.throughput(Throughput::Bytes((plain + 61) as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("{}_to_{}", from.name(), to.name()), "1024B_records"),
            &bytes,
            |b, bytes| b.iter(|| recompress(black_box(bytes), to, 1 << 20).expect("recompresses")),
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_validate,
    bench_produce_checks,
    bench_records,
    bench_read_compressed,
    bench_recompress
);
criterion_main!(benches);
