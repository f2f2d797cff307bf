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

    pub fn to_owned(&self) -> OwnedHeader {
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
    pub fn to_owned(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers.iter().map(|h| h.to_owned()).collect(),
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
