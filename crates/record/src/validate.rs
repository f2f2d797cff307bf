//! Producer-grade checks of a batch's records against its header, the ones
//! Kafka's `LogValidator` / `DefaultRecordBatch` make before appending:
//!
//! - exactly `recordCount` records are present (`Incorrect declared batch
//!   size`), and nothing follows the last one;
//! - record `i` has `offsetDelta == i` (`Invalid offset`): a client's batch
//!   numbers its records 0..count-1, so `lastOffsetDelta == count - 1`
//!   (checked on the header by [`BatchHeader::validate`]) covers them;
//! - each record's `length` varint frames exactly its fields, every length
//!   inside a record stays inside it (`Invalid record size`).
//!
//! [`check_records`] walks an uncompressed records section in place: it
//! allocates nothing and copies nothing. [`check_compressed_records`]
//! streams a compressed section through its codec's decoder and walks the
//! records as they come out, so it keeps no more than the decoder's own
//! state (charged to the caller's [`Budget`]) whatever the batch expands to.

use std::io::{BufRead, BufReader, Read};

use crate::batch::{BatchHeader, CompressionType, BATCH_HEADER_SIZE};
use crate::budget::Budget;
use crate::compression::{dec_err, too_large};
use crate::error::RecordError;
#[cfg(doc)]
use crate::record::decode_record;
use crate::stream::{decoder_state, with_decoder};
use crate::varint::read_varint;

/// The smallest record: length, attributes, timestamp delta, offset delta,
/// key length, value length and header count, one byte each.
pub const MIN_RECORD_SIZE: usize = 7;

const FEWER: &str = "fewer records than the batch's record count";
const LEFT_OVER: &str = "bytes left over after the batch's last record";
const NEGATIVE_LENGTH: &str = "negative record length";
const DISAGREES: &str = "record length disagrees with its fields";

/// Checks the records of one whole, header-validated batch as a producer
/// sent it: uncompressed sections in place ([`check_records`]), compressed
/// ones streamed ([`check_compressed_records`]) within `max_decompressed`
/// bytes of output.
pub fn check_batch_records(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
    budget: &mut dyn Budget,
) -> Result<(), RecordError> {
    let section = batch
        .get(BATCH_HEADER_SIZE..header.size())
        .ok_or(RecordError::Truncated {
            needed: header.size(),
            available: batch.len(),
        })?;
    match header.compression() {
        CompressionType::None => check_records(header, section),
        codec => check_compressed_records(header, codec, section, max_decompressed, budget),
    }
}

/// Walks an uncompressed records section: `header.record_count` records,
/// each decoding exactly within its `length`, record `i` at offset delta
/// `i`, and no byte after the last. Allocates and copies nothing.
pub fn check_records(header: &BatchHeader, data: &[u8]) -> Result<(), RecordError> {
    // A count the bytes cannot hold fails before any walking.
    let count = usize::try_from(header.record_count)
        .map_err(|_| RecordError::MalformedRecord("negative record count"))?;
    if count > data.len() / MIN_RECORD_SIZE {
        return Err(RecordError::MalformedRecord(FEWER));
    }
    let mut pos = 0;
    for index in 0..header.record_count {
        if pos == data.len() {
            return Err(RecordError::MalformedRecord(FEWER));
        }
        let length = varint_at(data, &mut pos)?;
        if length < 0 {
            return Err(RecordError::MalformedRecord(NEGATIVE_LENGTH));
        }
        let length = length as usize;
        if length > data.len() - pos {
            return Err(RecordError::MalformedRecord(
                "record length exceeds the bytes left in the batch",
            ));
        }
        walk_record(&data[pos..pos + length], index)?;
        pos += length;
    }
    if pos != data.len() {
        return Err(RecordError::MalformedRecord(LEFT_OVER));
    }
    Ok(())
}

/// A varint, with the one-byte case (every small length and delta) first.
#[inline(always)]
fn varint_at(buf: &[u8], pos: &mut usize) -> Result<i32, RecordError> {
    if let Some(&b) = buf.get(*pos) {
        if b < 0x80 {
            *pos += 1;
            let v = u32::from(b);
            return Ok(((v >> 1) as i32) ^ -((v & 1) as i32));
        }
    }
    read_varint(buf, pos)
}

/// Skips a varlong (at most 10 bytes), as `read_varlong` would read it.
#[inline(always)]
fn skip_varlong(buf: &[u8], pos: &mut usize) -> Result<(), RecordError> {
    for _ in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err(RecordError::MalformedRecord("varlong runs past the end"));
        };
        *pos += 1;
        if b & 0x80 == 0 {
            return Ok(());
        }
    }
    Err(RecordError::MalformedRecord("varlong longer than 10 bytes"))
}

/// Skips a length-prefixed field (negative: null, if `nullable`).
#[inline(always)]
fn skip_field(body: &[u8], pos: &mut usize, nullable: bool) -> Result<(), RecordError> {
    let len = varint_at(body, pos)?;
    if len < 0 {
        return if nullable {
            Ok(())
        } else {
            Err(RecordError::MalformedRecord("negative header key length"))
        };
    }
    if len as usize > body.len() - *pos {
        return Err(RecordError::MalformedRecord(DISAGREES));
    }
    *pos += len as usize;
    Ok(())
}

/// One record's body (the bytes its length frames): the fields must take
/// exactly those bytes, and the offset delta must be `index`. Accepts
/// exactly what [`decode_record`] decodes, without building the record.
#[inline]
fn walk_record(body: &[u8], index: i32) -> Result<(), RecordError> {
    if body.is_empty() {
        return Err(RecordError::MalformedRecord("empty record"));
    }
    let mut p = 1; // attributes
    skip_varlong(body, &mut p)?; // timestamp delta
    let offset_delta = varint_at(body, &mut p)?;
    if offset_delta != index {
        return Err(RecordError::InvalidOffsetDelta {
            index,
            offset_delta,
        });
    }
    skip_field(body, &mut p, true)?; // key
    skip_field(body, &mut p, true)?; // value
    let headers = varint_at(body, &mut p)?;
    if headers < 0 {
        return Err(RecordError::MalformedRecord("negative header count"));
    }
    // Each header takes at least two bytes.
    if headers as usize > (body.len() - p) / 2 {
        return Err(RecordError::MalformedRecord(DISAGREES));
    }
    for _ in 0..headers {
        skip_field(body, &mut p, false)?;
        skip_field(body, &mut p, true)?;
    }
    if p != body.len() {
        return Err(RecordError::MalformedRecord(DISAGREES));
    }
    Ok(())
}

/// [`check_records`] for a compressed section, decoded as a stream: the
/// decompressed bytes are never held, only walked. Fails with
/// [`RecordError::Decompression`] if the output passes `max_output` bytes
/// or the codec's data is corrupt. The decoder's state (gzip's window, an
/// lz4 block, a snappy block, a zstd window) is charged to `budget` first.
pub fn check_compressed_records(
    header: &BatchHeader,
    codec: CompressionType,
    section: &[u8],
    max_output: usize,
    budget: &mut dyn Budget,
) -> Result<(), RecordError> {
    budget.grow(decoder_state(codec, section, max_output)? + STREAM_BUFFER)?;
    let limit = (max_output as u64).saturating_add(1);
    with_decoder(codec, section, max_output, |decoder| {
        let mut s = Stream {
            r: BufReader::with_capacity(STREAM_BUFFER, decoder.take(limit)),
            pos: 0,
            codec,
        };
        let walked = s.records(header.record_count);
        // The stream is cut one byte past the limit: whatever the walk
        // made of that, the batch is too large.
        if s.pos > max_output as u64 {
            return Err(too_large(codec, max_output));
        }
        walked
    })
}

/// Bytes of decompressed output the stream walker reads at a time.
const STREAM_BUFFER: usize = 8 * 1024;

/// A decompressed byte stream with the record format's primitives.
struct Stream<R: BufRead> {
    r: R,
    /// Decompressed bytes consumed so far.
    pos: u64,
    codec: CompressionType,
}

impl<R: BufRead> Stream<R> {
    fn fill(&mut self) -> Result<&[u8], RecordError> {
        let codec = self.codec;
        self.r.fill_buf().map_err(|e| dec_err(codec, e))
    }

    fn at_end(&mut self) -> Result<bool, RecordError> {
        Ok(self.fill()?.is_empty())
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        let Some(&b) = self.fill()?.first() else {
            return Err(RecordError::MalformedRecord("record runs past the batch"));
        };
        self.r.consume(1);
        self.pos += 1;
        Ok(b)
    }

    /// Skips `n` bytes, which must all be there.
    fn skip(&mut self, mut n: u64) -> Result<(), RecordError> {
        while n > 0 {
            let avail = self.fill()?.len() as u64;
            if avail == 0 {
                return Err(RecordError::MalformedRecord("record runs past the batch"));
            }
            let step = avail.min(n);
            self.r.consume(step as usize);
            self.pos += step;
            n -= step;
        }
        Ok(())
    }

    fn unsigned(&mut self, max_bytes: u32) -> Result<u64, RecordError> {
        let mut raw = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f).wrapping_shl(7 * i);
            if b & 0x80 == 0 {
                return Ok(raw);
            }
        }
        Err(RecordError::MalformedRecord("varint too long"))
    }

    fn varint(&mut self) -> Result<i32, RecordError> {
        let v = self.unsigned(5)? as u32;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, RecordError> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A nullable byte field inside a record that ends at `end`.
    fn field(&mut self, end: u64, null_ok: bool) -> Result<(), RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return if null_ok {
                Ok(())
            } else {
                Err(RecordError::MalformedRecord("negative header key length"))
            };
        }
        let len = len as u64;
        if self.pos > end || len > end - self.pos {
            return Err(RecordError::MalformedRecord(DISAGREES));
        }
        self.skip(len)
    }

    /// `count` records, then the end of the stream.
    fn records(&mut self, count: i32) -> Result<(), RecordError> {
        for index in 0..count {
            if self.at_end()? {
                return Err(RecordError::MalformedRecord(FEWER));
            }
            self.record(index)?;
        }
        if !self.at_end()? {
            return Err(RecordError::MalformedRecord(LEFT_OVER));
        }
        Ok(())
    }

    /// One record, which must be the batch's `index`th.
    fn record(&mut self, index: i32) -> Result<(), RecordError> {
        let length = self.varint()?;
        if length < 0 {
            return Err(RecordError::MalformedRecord(NEGATIVE_LENGTH));
        }
        if length == 0 {
            return Err(RecordError::MalformedRecord("empty record"));
        }
        let end = self.pos + length as u64;
        self.byte()?; // attributes
        self.varlong()?; // timestamp delta
        let offset_delta = self.varint()?;
        if offset_delta != index {
            return Err(RecordError::InvalidOffsetDelta {
                index,
                offset_delta,
            });
        }
        self.field(end, true)?; // key
        self.field(end, true)?; // value
        let headers = self.varint()?;
        if headers < 0 {
            return Err(RecordError::MalformedRecord("negative header count"));
        }
        // Each header takes at least two bytes.
        if self.pos > end || headers as u64 > (end - self.pos) / 2 {
            return Err(RecordError::MalformedRecord(DISAGREES));
        }
        for _ in 0..headers {
            self.field(end, false)?;
            self.field(end, true)?;
        }
        if self.pos != end {
            return Err(RecordError::MalformedRecord(DISAGREES));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::batch::LOG_OVERHEAD;
    use crate::budget::{Fixed, Unbounded};
    use crate::builder::BatchBuilder;
    use crate::compression::compress;
    use crate::types::Timestamp;
    use crate::varint::{read_varint, read_varlong, write_varint};

    const LIMIT: usize = 16 << 20;
    const COUNT_AT: usize = 57;
    const DELTA_AT: usize = 23;
    const CODECS: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];

    fn uncompressed(values: &[Vec<u8>]) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None);
        for (i, v) in values.iter().enumerate() {
            let h = crate::record::Header {
                key: b"h",
                value: Some(v),
            };
            let headers = if i % 2 == 0 { vec![h] } else { vec![] };
            b.append(Timestamp(1_000 + i as i64), Some(v), Some(v), &headers)
                .unwrap();
        }
        b.build().unwrap()
    }

    /// `batch` (uncompressed) with its records section replaced by
    /// `section` compressed with `codec`, and the codec bits, length and
    /// CRC made right: a batch whose only fault is in its records.
    fn rebuilt(batch: &[u8], section: &[u8], codec: CompressionType) -> Vec<u8> {
        let mut out = batch[..BATCH_HEADER_SIZE].to_vec();
        out.extend(compress(codec, section).unwrap());
        let len = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        let attributes = (i16::from_be_bytes([out[21], out[22]]) & !7) | codec.id();
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        fix_crc(&mut out);
        out
    }

    fn fix_crc(batch: &mut [u8]) {
        let crc = crate::crc::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    fn set_i32(batch: &mut [u8], at: usize, v: i32) {
        batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
        fix_crc(batch);
    }

    fn section(batch: &[u8]) -> &[u8] {
        &batch[BATCH_HEADER_SIZE..]
    }

    /// Start of each record in an uncompressed section.
    fn record_starts(section: &[u8]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut pos = 0;
        while pos < section.len() {
            starts.push(pos);
            let mut p = pos;
            let len = read_varint(section, &mut p).unwrap();
            pos = p + len as usize;
        }
        starts
    }

    /// Producer validation as the log runs it: header, then records.
    fn check(batch: &[u8]) -> Result<(), RecordError> {
        let h = BatchHeader::validate(batch)?;
        check_batch_records(batch, &h, LIMIT, &mut Unbounded)
    }

    fn values(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![b'v'; 10 + i]).collect()
    }

    #[test]
    fn the_issues_three_malformed_batches_are_rejected_in_every_codec() {
        for codec in CODECS {
            // 1. count 2^31-1 and lastOffsetDelta 2^31-2 over three records.
            let three = uncompressed(&values(3));
            let mut b = rebuilt(&three, section(&three), codec);
            b[DELTA_AT..DELTA_AT + 4].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
            set_i32(&mut b, COUNT_AT, i32::MAX);
            assert!(
                BatchHeader::validate(&b).is_ok(),
                "the header alone is consistent"
            );
            assert_eq!(
                check(&b),
                Err(RecordError::MalformedRecord(FEWER)),
                "{codec:?}"
            );
            // 2. count 3 (and 1) over two records.
            let two = uncompressed(&values(2));
            for (count, err) in [(3i32, FEWER), (1, LEFT_OVER)] {
                let mut b = rebuilt(&two, section(&two), codec);
                b[DELTA_AT..DELTA_AT + 4].copy_from_slice(&(count - 1).to_be_bytes());
                set_i32(&mut b, COUNT_AT, count);
                assert_eq!(
                    check(&b),
                    Err(RecordError::MalformedRecord(err)),
                    "{codec:?}"
                );
            }
            // 3. The first record's length varint one byte long or short.
            for lie in [1i32, -1] {
                let starts = record_starts(section(&two));
                let mut p = 0;
                let len = read_varint(section(&two), &mut p).unwrap();
                let mut s = Vec::new();
                write_varint(&mut s, len + lie);
                s.extend_from_slice(&section(&two)[p..]);
                assert_eq!(starts.len(), 2);
                let b = rebuilt(&two, &s, codec);
                assert!(check(&b).is_err(), "{codec:?} lie {lie}");
            }
        }
    }

    #[test]
    fn a_record_at_the_wrong_offset_delta_is_rejected() {
        let two = uncompressed(&values(2));
        let sec = section(&two);
        let second = record_starts(sec)[1];
        let mut p = second;
        read_varint(sec, &mut p).unwrap();
        p += 1; // attributes
        read_varlong(sec, &mut p).unwrap();
        assert_eq!(sec[p], 2, "offset delta 1, zig-zag encoded");
        let mut s = sec.to_vec();
        s[p] = 0; // offset delta 0 again
        for codec in CODECS {
            assert_eq!(
                check(&rebuilt(&two, &s, codec)),
                Err(RecordError::InvalidOffsetDelta {
                    index: 1,
                    offset_delta: 0
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn decoder_state_is_charged_and_a_small_budget_refuses() {
        let batch = uncompressed(&values(4));
        let z = rebuilt(&batch, section(&batch), CompressionType::Zstd);
        let h = BatchHeader::validate(&z).unwrap();
        let mut tiny = Fixed::new(1024);
        assert!(matches!(
            check_batch_records(&z, &h, LIMIT, &mut tiny),
            Err(RecordError::MemoryBudget { .. })
        ));
        let mut enough = Fixed::new(64 << 20);
        check_batch_records(&z, &h, LIMIT, &mut enough).unwrap();
        assert!(enough.granted > 0);
        // Uncompressed batches are walked in place: nothing is charged.
        let mut none = Fixed::new(0);
        let h = BatchHeader::validate(&batch).unwrap();
        check_batch_records(&batch, &h, LIMIT, &mut none).unwrap();
    }

    #[test]
    fn a_stream_past_the_limit_is_refused_without_holding_it() {
        // One valid record with an 8 MiB value, against a 1 MiB limit.
        let mut b = BatchBuilder::new(CompressionType::Zstd);
        b.append(Timestamp(1), None, Some(&vec![0u8; 8 << 20]), &[])
            .unwrap();
        let bomb = b.build().unwrap();
        assert!(bomb.len() < 4096);
        let h = BatchHeader::validate(&bomb).unwrap();
        let err = check_batch_records(&bomb, &h, 1 << 20, &mut Unbounded).unwrap_err();
        assert!(matches!(err, RecordError::Decompression { .. }), "{err}");
        check_batch_records(&bomb, &h, 9 << 20, &mut Unbounded).unwrap();
    }

    fn arb_values() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn batches_from_the_builder_always_pass(
            values in arb_values(),
            codec in prop::sample::select(CODECS.to_vec()),
        ) {
            let plain = uncompressed(&values);
            let mut b = BatchBuilder::new(codec);
            for v in &values {
                b.append(Timestamp(5), Some(v), None, &[]).unwrap();
            }
            for batch in [rebuilt(&plain, section(&plain), codec), b.build().unwrap()] {
                prop_assert_eq!(check(&batch), Ok(()));
            }
        }

        #[test]
        fn every_other_count_is_rejected(
            values in arb_values(),
            codec in prop::sample::select(CODECS.to_vec()),
            count in 1i32..=i32::MAX,
            keep_delta in any::<bool>(),
        ) {
            prop_assume!(count as usize != values.len());
            let plain = uncompressed(&values);
            let mut b = rebuilt(&plain, section(&plain), codec);
            if !keep_delta {
                b[DELTA_AT..DELTA_AT + 4].copy_from_slice(&(count - 1).to_be_bytes());
            }
            set_i32(&mut b, COUNT_AT, count);
            prop_assert!(check(&b).is_err());
        }

        #[test]
        fn every_other_last_offset_delta_is_rejected(
            values in arb_values(),
            codec in prop::sample::select(CODECS.to_vec()),
            delta in any::<i32>(),
        ) {
            prop_assume!(i64::from(delta) != values.len() as i64 - 1);
            let plain = uncompressed(&values);
            let mut b = rebuilt(&plain, section(&plain), codec);
            set_i32(&mut b, DELTA_AT, delta);
            prop_assert!(check(&b).is_err());
        }

        #[test]
        fn every_lying_length_varint_is_rejected(
            values in arb_values(),
            codec in prop::sample::select(CODECS.to_vec()),
            which in any::<prop::sample::Index>(),
            lie in prop_oneof![-3i32..=3, any::<i32>()],
        ) {
            prop_assume!(lie != 0);
            let plain = uncompressed(&values);
            let sec = section(&plain);
            let starts = record_starts(sec);
            let at = starts[which.index(starts.len())];
            let mut p = at;
            let len = read_varint(sec, &mut p).unwrap();
            let mut s = sec[..at].to_vec();
            write_varint(&mut s, len.wrapping_add(lie));
            s.extend_from_slice(&sec[p..]);
            prop_assert!(check(&rebuilt(&plain, &s, codec)).is_err());
        }

        #[test]
        fn the_walk_never_panics_and_agrees_with_the_record_iterator(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            count in 0i32..20,
            codec in prop::sample::select(CODECS.to_vec()),
        ) {
            let plain = uncompressed(&values(1));
            let mut b = rebuilt(&plain, &bytes, codec);
            b[DELTA_AT..DELTA_AT + 4].copy_from_slice(&(count - 1).max(0).to_be_bytes());
            set_i32(&mut b, COUNT_AT, count);
            let h = BatchHeader::parse(&b).unwrap();
            let walked = check_batch_records(&b, &h, LIMIT, &mut Unbounded);
            // The iterator decodes the same bytes; where the walk accepts,
            // every record decodes, at its own index.
            if walked.is_ok() {
                let reader = crate::reader::BatchReader::new(&b, LIMIT).unwrap();
                let deltas: Vec<i32> = reader
                    .records()
                    .map(|r| r.map(|r| r.offset_delta))
                    .collect::<Result<_, _>>()
                    .unwrap();
                prop_assert_eq!(deltas, (0..count).collect::<Vec<_>>());
            }
            let _ = check_records(&h, &bytes);
        }
    }
}
