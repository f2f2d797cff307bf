//! The byte layout shared by every coordinator record (`__consumer_offsets`,
//! `__transaction_state`), as Kafka writes them: a key that starts with an
//! INT16 version or record type followed by non-flexible fields; a value
//! that starts with an INT16 version followed by a body in that version,
//! non-flexible (INT16-length strings) or flexible (compact strings and
//! arrays with unsigned-varint lengths, tagged fields).
//!
//! Why one module: these records come from disk and from other brokers'
//! replicas, so decoding must be bounded the same way everywhere. Every
//! length and count is checked against the bytes that remain before
//! anything is allocated from it.

use bytes::Bytes;

/// A decoding failure of one stored record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFormatError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("invalid UTF-8 in a string")]
    Utf8,
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("invalid {what} {value}")]
    Invalid { what: &'static str, value: i64 },
}

// ---- encoding ----

/// A non-nullable INT16-length string (longer strings are cut at
/// `i16::MAX` bytes: callers bound ids far below that).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

/// A nullable INT16-length string (-1: null).
pub fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

/// INT32-length bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// An unsigned varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A compact nullable string (length + 1 as an unsigned varint; 0: null).
pub fn put_compact_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_uvarint(out, 0),
        Some(s) => {
            put_uvarint(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A compact array's count (length + 1; 0: null).
pub fn put_compact_count(out: &mut Vec<u8>, n: Option<usize>) {
    put_uvarint(out, n.map_or(0, |n| n as u64 + 1));
}

// ---- decoding ----

/// Reads one record's fields, each checked against the bytes that remain.
pub struct Reader<'a> {
    pub buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RecordFormatError> {
        if self.buf.len() < n {
            return Err(RecordFormatError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub fn i8(&mut self) -> Result<i8, RecordFormatError> {
        Ok(self.take(1)?[0] as i8)
    }
    pub fn i16(&mut self) -> Result<i16, RecordFormatError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i32(&mut self) -> Result<i32, RecordFormatError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i64(&mut self) -> Result<i64, RecordFormatError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
    pub fn uvarint(&mut self) -> Result<u64, RecordFormatError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordFormatError::Truncated)
    }
    /// A nullable INT16-length string.
    pub fn nullable_str(&mut self) -> Result<Option<String>, RecordFormatError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| RecordFormatError::Utf8)
    }
    /// A non-nullable INT16-length string.
    pub fn str(&mut self) -> Result<String, RecordFormatError> {
        let len = self.i16()?;
        if len < 0 {
            return Err(RecordFormatError::NegativeLength(i32::from(len)));
        }
        String::from_utf8(self.take(len as usize)?.to_vec()).map_err(|_| RecordFormatError::Utf8)
    }
    /// INT32-length bytes (null reads as empty).
    pub fn bytes(&mut self) -> Result<Bytes, RecordFormatError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
    /// A compact nullable string.
    pub fn compact_str(&mut self) -> Result<Option<String>, RecordFormatError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let len = usize::try_from(n - 1).map_err(|_| RecordFormatError::Truncated)?;
        String::from_utf8(self.take(len)?.to_vec())
            .map(Some)
            .map_err(|_| RecordFormatError::Utf8)
    }
    /// A compact array count (`None`: null), checked against the bytes
    /// left (each element takes at least `min_size` bytes).
    pub fn compact_count(&mut self, min_size: usize) -> Result<Option<usize>, RecordFormatError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| RecordFormatError::Truncated)?;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(RecordFormatError::Truncated);
        }
        Ok(Some(n))
    }
    /// A compact array count, null read as empty.
    pub fn count(&mut self, min_size: usize) -> Result<usize, RecordFormatError> {
        Ok(self.compact_count(min_size)?.unwrap_or(0))
    }
    /// An INT32 array count (-1: null), checked like [`Reader::compact_count`].
    pub fn array_count(&mut self, min_size: usize) -> Result<Option<usize>, RecordFormatError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(RecordFormatError::Truncated);
        }
        Ok(Some(n))
    }
    /// A tagged-field section: the fields `(tag, bytes)`.
    pub fn tags(&mut self) -> Result<Vec<(u64, &'a [u8])>, RecordFormatError> {
        // A plain (not compact) count.
        let n = usize::try_from(self.uvarint()?).map_err(|_| RecordFormatError::Truncated)?;
        if n.saturating_mul(2) > self.buf.len() {
            return Err(RecordFormatError::Truncated);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size =
                usize::try_from(self.uvarint()?).map_err(|_| RecordFormatError::Truncated)?;
            out.push((tag, self.take(size)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_and_strings_round_trip(v in any::<u64>(), s in proptest::option::of(".{0,40}")) {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            put_compact_str(&mut out, s.as_deref());
            put_nullable_str(&mut out, s.as_deref());
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.uvarint().unwrap(), v);
            prop_assert_eq!(r.compact_str().unwrap(), s.clone());
            prop_assert_eq!(r.nullable_str().unwrap(), s);
            prop_assert!(r.buf.is_empty());
        }

        #[test]
        fn counts_never_exceed_the_bytes_left(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut r = Reader::new(&bytes);
            if let Ok(Some(n)) = r.compact_count(1) {
                prop_assert!(n <= r.buf.len());
            }
            let mut r = Reader::new(&bytes);
            if let Ok(Some(n)) = r.array_count(4) {
                prop_assert!(n * 4 <= r.buf.len());
            }
            let mut r = Reader::new(&bytes);
            if let Ok(tags) = r.tags() {
                prop_assert!(tags.len() <= bytes.len());
            }
        }
    }
}
