//! Records inside a RecordBatch v2: encoding and zero-copy decoding.
//!
//! ```text
//! length          varint   (bytes after this field)
//! attributes      int8     (unused, 0)
//! timestampDelta  varlong  (from the batch's baseTimestamp)
//! offsetDelta     varint   (from the batch's baseOffset)
//! keyLength       varint   (-1: null key)
//! key             bytes
//! valueLength     varint   (-1: null value)
//! value           bytes
//! headerCount     varint
//!   headerKeyLength    varint
//!   headerKey          bytes (a UTF-8 string in Kafka's API)
//!   headerValueLength  varint (-1: null value)
//!   headerValue        bytes
//! ```
//!
//! Decoding borrows from the batch bytes and allocates nothing; every length
//! read from the bytes is checked against the bytes that remain before it is
//! used, and a record must consume exactly the bytes its `length` declares.

use crate::batch::{BatchHeader, TimestampType};
use crate::error::RecordError;
use crate::types::{Offset, Timestamp};
use crate::varint::{
    read_varint, read_varlong, varint_size, varlong_size, write_varint, write_varlong,
};

/// One record header: a key (a string in Kafka's API; kept as bytes here
/// because Kafka does not reject invalid UTF-8) and a nullable value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// The key as UTF-8, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.key).ok()
    }

    pub fn into_owned(self) -> OwnedHeader {
        OwnedHeader {
            key: self.key.to_vec(),
            value: self.value.map(<[u8]>::to_vec),
        }
    }
}

/// The headers of a decoded record, already validated; iterate them with
/// [`Headers::iter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers<'a> {
    count: usize,
    raw: &'a [u8],
}

impl<'a> Headers<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter {
            left: self.count,
            raw: self.raw,
            pos: 0,
        }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over validated headers.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    left: usize,
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The bytes were validated by `scan_headers`, so this cannot fail;
        // if it somehow did, end the iteration rather than panic.
        match read_header(self.raw, &mut self.pos) {
            Ok(h) => Some(h),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

/// A record decoded from a batch, borrowing its key, value and headers from
/// the (decompressed) batch bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset: the batch's base offset plus `offset_delta`.
    pub offset: Offset,
    /// Absolute timestamp: the batch's max timestamp for LogAppendTime
    /// batches, else its base timestamp plus `timestamp_delta`.
    pub timestamp: Timestamp,
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    /// Record attributes (unused by Kafka so far; 0).
    pub attributes: i8,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers<'a>,
}

impl Record<'_> {
    pub fn into_owned(self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers.iter().map(Header::into_owned).collect(),
        }
    }
}

/// An owned header.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct OwnedHeader {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl OwnedHeader {
    pub fn as_header(&self) -> Header<'_> {
        Header {
            key: &self.key,
            value: self.value.as_deref(),
        }
    }
}

/// An owned record: what tests, tools and the compactor keep around.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct OwnedRecord {
    pub offset: Offset,
    pub timestamp: Timestamp,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<OwnedHeader>,
}

/// Takes `len` bytes at `*pos` if `len` is non-negative and that many bytes
/// remain; `Ok(None)` for a negative (null) length.
fn take_nullable<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    len: i32,
    what: &'static str,
) -> Result<Option<&'a [u8]>, RecordError> {
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if len > buf.len() - *pos {
        return Err(RecordError::MalformedRecord(what));
    }
    let bytes = &buf[*pos..*pos + len];
    *pos += len;
    Ok(Some(bytes))
}

fn read_header<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Header<'a>, RecordError> {
    let key_len = read_varint(buf, pos)?;
    if key_len < 0 {
        return Err(RecordError::MalformedRecord("negative header key length"));
    }
    let key =
        take_nullable(buf, pos, key_len, "header key longer than the record")?.unwrap_or_default();
    let value_len = read_varint(buf, pos)?;
    let value = take_nullable(buf, pos, value_len, "header value longer than the record")?;
    Ok(Header { key, value })
}

/// Decodes one record from the start of `buf` (the records section of a
/// batch, at a record boundary). Returns the record and the bytes it took.
pub fn decode_record<'a>(
    buf: &'a [u8],
    header: &BatchHeader,
) -> Result<(Record<'a>, usize), RecordError> {
    let mut pos = 0;
    let length = read_varint(buf, &mut pos)?;
    if length < 0 {
        return Err(RecordError::MalformedRecord("negative record length"));
    }
    let length = length as usize;
    if length > buf.len() - pos {
        return Err(RecordError::MalformedRecord(
            "record length exceeds the bytes left in the batch",
        ));
    }
    let body = &buf[pos..pos + length];
    let consumed = pos + length;

    let mut p = 0;
    let Some(&attributes) = body.first() else {
        return Err(RecordError::MalformedRecord("empty record"));
    };
    p += 1;
    let timestamp_delta = read_varlong(body, &mut p)?;
    let offset_delta = read_varint(body, &mut p)?;
    let key_len = read_varint(body, &mut p)?;
    let key = take_nullable(body, &mut p, key_len, "key longer than the record")?;
    let value_len = read_varint(body, &mut p)?;
    let value = take_nullable(body, &mut p, value_len, "value longer than the record")?;
    let header_count = read_varint(body, &mut p)?;
    if header_count < 0 {
        return Err(RecordError::MalformedRecord("negative header count"));
    }
    let header_count = header_count as usize;
    // Each header takes at least two bytes (two one-byte lengths).
    if header_count > (body.len() - p) / 2 {
        return Err(RecordError::MalformedRecord(
            "header count exceeds the bytes left in the record",
        ));
    }
    let headers_start = p;
    for _ in 0..header_count {
        read_header(body, &mut p)?;
    }
    if p != body.len() {
        return Err(RecordError::MalformedRecord(
            "record length disagrees with its fields",
        ));
    }

    let timestamp = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => {
            Timestamp(header.base_timestamp.0.wrapping_add(timestamp_delta))
        }
    };
    let record = Record {
        offset: header.base_offset.plus(i64::from(offset_delta)),
        timestamp,
        offset_delta,
        timestamp_delta,
        attributes: attributes as i8,
        key,
        value,
        headers: Headers {
            count: header_count,
            raw: &body[headers_start..],
        },
    };
    Ok((record, consumed))
}

/// Iterates the records of one batch's (decompressed) records section.
///
/// Yields exactly `recordCount` records; a record that does not decode, too
/// few records for the count, or bytes left over after the last record are
/// reported as an error, once, after which the iterator ends.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    header: BatchHeader,
    data: &'a [u8],
    pos: usize,
    left: i32,
    done: bool,
}

impl<'a> RecordIter<'a> {
    /// `data` is the batch's records section, decompressed if the batch is
    /// compressed (see [`crate::BatchReader`] for a reader that does that).
    pub fn new(header: &BatchHeader, data: &'a [u8]) -> Self {
        RecordIter {
            header: *header,
            data,
            pos: 0,
            left: header.record_count.max(0),
            done: false,
        }
    }

    /// Bytes of the records section consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            if self.pos != self.data.len() {
                return Some(Err(RecordError::MalformedRecord(
                    "bytes left over after the batch's last record",
                )));
            }
            return None;
        }
        if self.pos == self.data.len() {
            self.done = true;
            return Some(Err(RecordError::MalformedRecord(
                "fewer records than the batch's record count",
            )));
        }
        match decode_record(&self.data[self.pos..], &self.header) {
            Ok((record, used)) => {
                self.pos += used;
                self.left -= 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // Possibly one more item: a trailing error.
            (0, Some(self.left as usize + 1))
        }
    }
}

/// Bytes a record takes when encoded, `length` prefix included; `None` if a
/// length does not fit Kafka's 32-bit fields.
pub(crate) fn encoded_record_size(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Option<(usize, i32)> {
    fn field(bytes: Option<&[u8]>) -> Option<usize> {
        match bytes {
            None => Some(varint_size(-1)),
            Some(b) => {
                let len = i32::try_from(b.len()).ok()?;
                Some(varint_size(len) + b.len())
            }
        }
    }
    let header_count = i32::try_from(headers.len()).ok()?;
    let mut body = 1 + varlong_size(timestamp_delta) + varint_size(offset_delta);
    body = body.checked_add(field(key)?)?;
    body = body.checked_add(field(value)?)?;
    body = body.checked_add(varint_size(header_count))?;
    for h in headers {
        body = body.checked_add(field(Some(h.key))?)?;
        body = body.checked_add(field(h.value)?)?;
    }
    let body_len = i32::try_from(body).ok()?;
    Some((varint_size(body_len) + body, body_len))
}

/// Appends one encoded record to `out`.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Result<(), RecordError> {
    fn put(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        match bytes {
            None => write_varint(out, -1),
            Some(b) => {
                // encoded_record_size checked that every length fits.
                write_varint(out, b.len() as i32);
                out.extend_from_slice(b);
            }
        }
    }
    let (total, body_len) = encoded_record_size(offset_delta, timestamp_delta, key, value, headers)
        .ok_or(RecordError::Build("record larger than 2 GiB"))?;
    out.reserve(total);
    write_varint(out, body_len);
    out.push(0); // attributes
    write_varlong(out, timestamp_delta);
    write_varint(out, offset_delta);
    put(out, key);
    put(out, value);
    write_varint(out, headers.len() as i32);
    for h in headers {
        put(out, Some(h.key));
        put(out, h.value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LeaderEpoch, ProducerEpoch, ProducerId};
    use proptest::prelude::*;

    fn header(count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: Offset(100),
            batch_length: 0,
            partition_leader_epoch: LeaderEpoch(0),
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: Timestamp(1_000),
            max_timestamp: Timestamp(2_000),
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch(-1),
            base_sequence: -1,
            record_count: count,
        }
    }

    /// A record from raw field bytes, with its length prefix computed.
    fn raw_record(fields: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::varint::write_varint(&mut out, fields.len() as i32);
        out.extend_from_slice(fields);
        out
    }

    fn malformed(result: Result<(Record<'_>, usize), RecordError>) -> &'static str {
        match result {
            Err(RecordError::MalformedRecord(why)) => why,
            other => panic!("expected a malformed record, got {other:?}"),
        }
    }

    #[test]
    fn decodes_fields_and_absolute_offset_and_timestamp() {
        let mut buf = Vec::new();
        let headers = [
            Header {
                key: b"a",
                value: Some(b"1"),
            },
            Header {
                key: b"b",
                value: None,
            },
        ];
        encode_record(&mut buf, 3, 250, Some(b"key"), Some(b"value"), &headers).unwrap();
        let (r, used) = decode_record(&buf, &header(4)).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(r.offset, Offset(103));
        assert_eq!(r.timestamp, Timestamp(1_250));
        assert_eq!((r.offset_delta, r.timestamp_delta), (3, 250));
        assert_eq!(r.key, Some(&b"key"[..]));
        assert_eq!(r.value, Some(&b"value"[..]));
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers.iter().collect::<Vec<_>>(), headers);
        assert_eq!(r.headers.iter().next().unwrap().key_str(), Some("a"));

        let mut lat = header(4);
        lat.attributes |= 0x08;
        assert_eq!(
            decode_record(&buf, &lat).unwrap().0.timestamp,
            Timestamp(2_000)
        );
    }

    #[test]
    fn any_negative_key_or_value_length_is_null_as_in_kafka() {
        // attrs, tsDelta 0, offDelta 0, key len -2 (zigzag 3), value len -1,
        // no headers.
        let buf = raw_record(&[0, 0, 0, 0x03, 0x01, 0x00]);
        let (r, _) = decode_record(&buf, &header(1)).unwrap();
        assert_eq!((r.key, r.value), (None, None));
    }

    #[test]
    fn lengths_past_the_record_are_rejected_without_allocating() {
        // Key length i32::MAX (zigzag 0xfffffffe).
        let buf = raw_record(&[0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f, b'x']);
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "key longer than the record"
        );
        // Value length 100 with 1 byte present.
        let buf = raw_record(&[0, 0, 0, 0x01, 0xc8, 0x01, b'x']);
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "value longer than the record"
        );
        // Header count i32::MAX.
        let buf = raw_record(&[0, 0, 0, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "header count exceeds the bytes left in the record"
        );
        // Negative header count and key length.
        let buf = raw_record(&[0, 0, 0, 0x01, 0x01, 0x01]);
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "negative header count"
        );
        let buf = raw_record(&[0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01]);
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "negative header key length"
        );
        // Record length past the batch.
        let buf = [0x20, 0, 0, 0];
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "record length exceeds the bytes left in the batch"
        );
        assert_eq!(
            malformed(decode_record(&[0x01], &header(1))),
            "negative record length"
        );
        assert_eq!(
            malformed(decode_record(&[0x00], &header(1))),
            "empty record"
        );
    }

    #[test]
    fn record_length_must_match_its_fields() {
        let mut fields = vec![0, 0, 0, 0x01, 0x01, 0x00];
        fields.push(0xaa); // one byte the fields do not account for
        let buf = raw_record(&fields);
        assert_eq!(
            malformed(decode_record(&buf, &header(1))),
            "record length disagrees with its fields"
        );
        // Length one short: the header count varint is cut off.
        let mut buf = raw_record(&[0, 0, 0, 0x01, 0x01, 0x00]);
        buf[0] -= 2;
        buf.pop();
        assert!(decode_record(&buf, &header(1)).is_err());
    }

    #[test]
    fn iterator_checks_the_count_against_the_bytes() {
        let mut two = Vec::new();
        encode_record(&mut two, 0, 0, None, Some(b"a"), &[]).unwrap();
        encode_record(&mut two, 1, 0, None, Some(b"b"), &[]).unwrap();

        let ok: Vec<_> = RecordIter::new(&header(2), &two).collect();
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(Result::is_ok));

        // Count 3 with two records: two records, then an error, then the end.
        let mut it = RecordIter::new(&header(3), &two);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next(),
            Some(Err(RecordError::MalformedRecord(
                "fewer records than the batch's record count"
            )))
        );
        assert_eq!(it.next(), None);

        // Count 1 with two records: the leftover bytes are an error.
        let mut it = RecordIter::new(&header(1), &two);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next(),
            Some(Err(RecordError::MalformedRecord(
                "bytes left over after the batch's last record"
            )))
        );
        assert_eq!(it.next(), None);

        // A huge declared count on empty data costs one step, not 2^31.
        let mut it = RecordIter::new(&header(i32::MAX), &[]);
        assert!(it.next().unwrap().is_err());
        assert_eq!(it.next(), None);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            count in -2i32..10,
        ) {
            let mut consumed = 0;
            let mut items = 0;
            let mut it = RecordIter::new(&header(count), &bytes);
            for r in it.by_ref() {
                items += 1;
                if let Ok(r) = r {
                    prop_assert!(r.key.map_or(0, <[u8]>::len) <= bytes.len());
                    let _ = r.headers.iter().count();
                }
            }
            consumed += it.position();
            prop_assert!(consumed <= bytes.len());
            prop_assert!(items <= count.max(0) as usize + 1);
        }

        #[test]
        fn encode_decode_round_trips(
            offset_delta in any::<i32>(),
            timestamp_delta in any::<i64>(),
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            headers in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..10),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10))),
                0..5),
        ) {
            let headers: Vec<Header> = headers
                .iter()
                .map(|(k, v)| Header { key: k, value: v.as_deref() })
                .collect();
            let mut buf = Vec::new();
            encode_record(&mut buf, offset_delta, timestamp_delta, key.as_deref(), value.as_deref(), &headers).unwrap();
            let (size, _) = encoded_record_size(offset_delta, timestamp_delta, key.as_deref(), value.as_deref(), &headers).unwrap();
            prop_assert_eq!(size, buf.len());
            let (r, used) = decode_record(&buf, &header(1)).unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(r.offset_delta, offset_delta);
            prop_assert_eq!(r.timestamp_delta, timestamp_delta);
            prop_assert_eq!(r.key, key.as_deref());
            prop_assert_eq!(r.value, value.as_deref());
            prop_assert_eq!(r.headers.iter().collect::<Vec<_>>(), headers);
        }
    }
}
