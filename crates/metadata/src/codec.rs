//! Kafka's flexible-version ("compact") primitives, as the generated
//! message classes read and write them: big-endian fixed-width integers,
//! unsigned varints, compact strings and arrays (length + 1, 0 = null) and
//! tagged-field sections.
//!
//! The reader is for untrusted bytes: every length and count is checked
//! against the bytes that remain before anything is allocated, strings are
//! limited to Kafka's 32767 bytes, and nothing panics.

use uuid::Uuid;

use crate::error::MetadataError;

/// Kafka refuses longer strings (`Short.MAX_VALUE`).
pub(crate) const MAX_STRING_LEN: usize = 0x7fff;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MetadataError> {
        if n > self.remaining() {
            return Err(MetadataError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], MetadataError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8, MetadataError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, MetadataError> {
        Ok(self.i8(what)? != 0)
    }
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, MetadataError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, MetadataError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, MetadataError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, MetadataError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, MetadataError> {
        Ok(f64::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn uuid(&mut self, what: &'static str) -> Result<Uuid, MetadataError> {
        Ok(Uuid::from_bytes(self.array(what)?))
    }

    /// An unsigned varint of at most 5 bytes (Kafka's `readUnsignedVarint`).
    pub(crate) fn uvarint(&mut self, what: &'static str) -> Result<u32, MetadataError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, what)?[0];
            if i == 4 && b > 0x0f {
                return Err(MetadataError::Malformed("varint longer than 32 bits"));
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MetadataError::Malformed("varint longer than 5 bytes"))
    }

    /// A compact length (`N + 1`, 0 meaning null) as `Option<N>`, with `N`
    /// bounded by the bytes remaining: each element takes at least
    /// `min_element` bytes, so a larger count cannot be genuine.
    pub(crate) fn compact_len(
        &mut self,
        min_element: usize,
        what: &'static str,
    ) -> Result<Option<usize>, MetadataError> {
        let raw = self.uvarint(what)?;
        if raw == 0 {
            return Ok(None);
        }
        let n = (raw - 1) as usize;
        if n.saturating_mul(min_element.max(1)) > self.remaining() {
            return Err(MetadataError::Truncated(what));
        }
        Ok(Some(n))
    }

    pub(crate) fn nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, MetadataError> {
        let Some(n) = self.compact_len(1, what)? else {
            return Ok(None);
        };
        if n > MAX_STRING_LEN {
            return Err(MetadataError::Malformed("string longer than 32767 bytes"));
        }
        let bytes = self.take(n, what)?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| MetadataError::Malformed("string is not UTF-8"))?;
        Ok(Some(s.to_owned()))
    }

    /// Non-null compact bytes, bounded by the bytes remaining.
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, MetadataError> {
        let n = self
            .compact_len(1, what)?
            .ok_or(MetadataError::Malformed("null in non-nullable bytes"))?;
        Ok(self.take(n, what)?.to_vec())
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, MetadataError> {
        self.nullable_string(what)?
            .ok_or(MetadataError::Malformed("null in a non-nullable string"))
    }

    pub(crate) fn nullable_i32s<T>(
        &mut self,
        what: &'static str,
        f: impl Fn(i32) -> T,
    ) -> Result<Option<Vec<T>>, MetadataError> {
        let Some(n) = self.compact_len(4, what)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self.i32(what)?));
        }
        Ok(Some(out))
    }

    pub(crate) fn i32s<T>(
        &mut self,
        what: &'static str,
        f: impl Fn(i32) -> T,
    ) -> Result<Vec<T>, MetadataError> {
        self.nullable_i32s(what, f)?
            .ok_or(MetadataError::Malformed("null in a non-nullable array"))
    }

    pub(crate) fn nullable_uuids(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Vec<Uuid>>, MetadataError> {
        let Some(n) = self.compact_len(16, what)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.uuid(what)?);
        }
        Ok(Some(out))
    }

    pub(crate) fn uuids(&mut self, what: &'static str) -> Result<Vec<Uuid>, MetadataError> {
        self.nullable_uuids(what)?
            .ok_or(MetadataError::Malformed("null in a non-nullable array"))
    }

    /// Reads a tagged-field section, handing each field's bytes to `known`
    /// (which returns false for a tag it does not know; such fields are
    /// skipped, as Kafka keeps them only as opaque bytes). Tags must be
    /// strictly increasing, as Kafka's writers emit them, and a known
    /// field's decoder must consume exactly the field's declared size.
    pub(crate) fn tagged_fields(
        &mut self,
        mut known: impl FnMut(u32, &mut Reader<'a>) -> Result<bool, MetadataError>,
    ) -> Result<(), MetadataError> {
        let count = self.uvarint("tagged field count")?;
        // Every tagged field takes at least two bytes (tag and size).
        if (count as usize).saturating_mul(2) > self.remaining() {
            return Err(MetadataError::Truncated("tagged fields"));
        }
        let mut previous: Option<u32> = None;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            if previous.is_some_and(|p| tag <= p) {
                return Err(MetadataError::Malformed("tagged fields out of order"));
            }
            previous = Some(tag);
            let size = self.uvarint("tagged field size")? as usize;
            let mut field = Reader::new(self.take(size, "tagged field")?);
            if known(tag, &mut field)? && field.remaining() != 0 {
                return Err(MetadataError::Malformed("tagged field size mismatch"));
            }
        }
        Ok(())
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self, api_key: i16) -> Result<(), MetadataError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(MetadataError::TrailingBytes(n, api_key)),
        }
    }
}

// ---- writing ----

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

pub(crate) fn put_i8(out: &mut Vec<u8>, v: i8) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_uuid(out: &mut Vec<u8>, v: Uuid) {
    out.extend_from_slice(v.as_bytes());
}

pub(crate) fn put_compact_len(
    out: &mut Vec<u8>,
    n: Option<usize>,
    what: &'static str,
) -> Result<(), MetadataError> {
    match n {
        None => put_uvarint(out, 0),
        Some(n) => {
            let raw = u32::try_from(n)
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or(MetadataError::FieldTooLong(what))?;
            put_uvarint(out, raw);
        }
    }
    Ok(())
}

pub(crate) fn put_nullable_string(
    out: &mut Vec<u8>,
    v: Option<&str>,
    what: &'static str,
) -> Result<(), MetadataError> {
    if let Some(s) = v {
        if s.len() > MAX_STRING_LEN {
            return Err(MetadataError::FieldTooLong(what));
        }
    }
    put_compact_len(out, v.map(str::len), what)?;
    if let Some(s) = v {
        out.extend_from_slice(s.as_bytes());
    }
    Ok(())
}

pub(crate) fn put_bytes(
    out: &mut Vec<u8>,
    v: &[u8],
    what: &'static str,
) -> Result<(), MetadataError> {
    put_compact_len(out, Some(v.len()), what)?;
    out.extend_from_slice(v);
    Ok(())
}

pub(crate) fn put_string(
    out: &mut Vec<u8>,
    v: &str,
    what: &'static str,
) -> Result<(), MetadataError> {
    put_nullable_string(out, Some(v), what)
}

pub(crate) fn put_nullable_i32s<T: Copy>(
    out: &mut Vec<u8>,
    v: Option<&[T]>,
    f: impl Fn(T) -> i32,
    what: &'static str,
) -> Result<(), MetadataError> {
    put_compact_len(out, v.map(<[T]>::len), what)?;
    for &x in v.unwrap_or(&[]) {
        put_i32(out, f(x));
    }
    Ok(())
}

pub(crate) fn put_i32s<T: Copy>(
    out: &mut Vec<u8>,
    v: &[T],
    f: impl Fn(T) -> i32,
    what: &'static str,
) -> Result<(), MetadataError> {
    put_nullable_i32s(out, Some(v), f, what)
}

pub(crate) fn put_nullable_uuids(
    out: &mut Vec<u8>,
    v: Option<&[Uuid]>,
    what: &'static str,
) -> Result<(), MetadataError> {
    put_compact_len(out, v.map(<[Uuid]>::len), what)?;
    for &x in v.unwrap_or(&[]) {
        put_uuid(out, x);
    }
    Ok(())
}

pub(crate) fn put_uuids(
    out: &mut Vec<u8>,
    v: &[Uuid],
    what: &'static str,
) -> Result<(), MetadataError> {
    put_nullable_uuids(out, Some(v), what)
}

/// Collects the tagged fields of one struct (in increasing tag order, only
/// those that differ from their defaults) and writes the section.
#[derive(Default)]
pub(crate) struct Tagged {
    fields: Vec<(u32, Vec<u8>)>,
}

impl Tagged {
    pub(crate) fn field(
        &mut self,
        tag: u32,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), MetadataError>,
    ) -> Result<(), MetadataError> {
        debug_assert!(self.fields.last().is_none_or(|(t, _)| *t < tag));
        let mut data = Vec::new();
        write(&mut data)?;
        self.fields.push((tag, data));
        Ok(())
    }

    pub(crate) fn write(self, out: &mut Vec<u8>) -> Result<(), MetadataError> {
        // A handful of fields per struct: the count always fits.
        put_uvarint(out, self.fields.len() as u32);
        for (tag, data) in self.fields {
            put_uvarint(out, tag);
            let len = u32::try_from(data.len())
                .map_err(|_| MetadataError::FieldTooLong("tagged field"))?;
            put_uvarint(out, len);
            out.extend_from_slice(&data);
        }
        Ok(())
    }
}
