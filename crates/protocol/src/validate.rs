//! The bounds-checking pass that runs before kafka-protocol decodes a request body (and,
//! for a node that is itself a client of another node, such as a follower fetching
//! from its leader, a response body).
//!
//! kafka-protocol 0.18 reserves `Vec::with_capacity(count)` with the array count taken
//! from the wire (its `Array` and `CompactArray` decoders), so a few bytes claiming a
//! huge count abort the process. This walker follows Kafka's message spec (the table
//! in `schema_gen.rs`) field by field over the raw bytes and rejects the request
//! unless every array count, string length and bytes length fits in the bytes that
//! remain, exactly as Kafka's own generated readers do, and unless every known tagged
//! field's content fills exactly its declared size (kafka-protocol decodes known tagged
//! fields from the outer buffer, so the two views must agree on where they end). After
//! this pass, every count kafka-protocol reads is one whose elements were already seen
//! in the buffer, so no allocation is sized by an unverified length.
//!
//! The walker allocates nothing.

use crate::error::{MalformedReason, ProtocolError};
use crate::schema::{request_schema, response_schema, struct_def, ApiSchema, Field, StructDef, Ty};

/// Kafka's limit on string lengths (Java readers reject longer ones).
const MAX_STRING_LEN: u64 = 0x7fff;

/// The most array elements (summed over all arrays) one request may hold.
///
/// Bounding each count by the bytes remaining keeps allocations proportional to the
/// request, but decoding still expands it: an empty topic name is 2 bytes on the wire
/// and a 72-byte `MetadataRequestTopic` in memory, so a 100 MiB request could become
/// 3.6 GB. No client sends anywhere near a million topics or partitions in one request,
/// so this caps the decoded size at roughly 1 Mi × the largest element (~112 bytes).
/// Kafka itself has no such limit; it is a deliberate deviation for hostile input.
pub const MAX_REQUEST_ELEMENTS: u64 = 1 << 20;

/// Check that `body` (the request after its header) is a well-formed `api_key` request
/// at `api_version` according to Kafka's message spec, with every length bounded by the
/// bytes that remain. Trailing bytes after the body are allowed (kafka-protocol ignores
/// them too).
pub fn validate_request_body(
    api_key: i16,
    api_version: i16,
    body: &[u8],
) -> Result<(), ProtocolError> {
    validate_body(
        "request",
        request_schema(api_key),
        api_key,
        api_version,
        body,
    )
}

/// Check that `body` (the response after its header) is a well-formed `api_key`
/// response at `api_version`, by the same rules as [`validate_request_body`]: a peer
/// broker's answer is as untrusted as a client's request (a bad count would make
/// kafka-protocol allocate from it).
pub fn validate_response_body(
    api_key: i16,
    api_version: i16,
    body: &[u8],
) -> Result<(), ProtocolError> {
    validate_body(
        "response",
        response_schema(api_key),
        api_key,
        api_version,
        body,
    )
}

/// Walks `body` against `schema` (a request's or a response's: `api`).
fn validate_body(
    api: &'static str,
    schema: Option<&'static ApiSchema>,
    api_key: i16,
    api_version: i16,
    body: &[u8],
) -> Result<(), ProtocolError> {
    let schema =
        schema
            .filter(|s| s.valid.contains(api_version))
            .ok_or(ProtocolError::Malformed {
                api,
                api_version,
                field: "",
                offset: 0,
                reason: MalformedReason::NoSchema {
                    api_key,
                    api_version,
                },
                correlation_id: None,
            })?;
    let mut w = Walker {
        buf: body,
        pos: 0,
        version: api_version,
        flexible: schema.flexible.contains(api_version),
        elements: 0,
    };
    w.walk_struct(schema.body())
        .map_err(|e| e.into_error(schema.name, api_version))
}

/// Walk a response header of `header_version` (0 or 1) at the start of `buf`,
/// returning its length.
pub(crate) fn walk_response_header(buf: &[u8], header_version: i16) -> Result<usize, WalkError> {
    let mut w = Walker {
        buf,
        pos: 0,
        version: header_version,
        flexible: crate::schema_gen::RESPONSE_HEADER_FLEXIBLE.contains(header_version),
        elements: 0,
    };
    w.walk_struct(struct_def(crate::schema_gen::RESPONSE_HEADER))?;
    Ok(w.pos)
}

/// Walk a request header of `header_version` (1 or 2) at the start of `buf`, returning
/// its length. Used by the header parser.
pub(crate) fn walk_header(buf: &[u8], header_version: i16) -> Result<usize, WalkError> {
    let mut w = Walker {
        buf,
        pos: 0,
        version: header_version,
        flexible: crate::schema_gen::REQUEST_HEADER_FLEXIBLE.contains(header_version),
        elements: 0,
    };
    w.walk_struct(struct_def(crate::schema_gen::REQUEST_HEADER))?;
    Ok(w.pos)
}

/// A problem found by the walker, before it is tied to an API name.
#[derive(Debug)]
pub(crate) struct WalkError {
    pub field: &'static str,
    pub offset: usize,
    pub reason: MalformedReason,
}

impl WalkError {
    pub(crate) fn into_error(self, api: &'static str, api_version: i16) -> ProtocolError {
        ProtocolError::Malformed {
            api,
            api_version,
            field: self.field,
            offset: self.offset,
            reason: self.reason,
            correlation_id: None,
        }
    }
}

type Walk<T> = Result<T, WalkError>;

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
    /// Array elements seen so far (see [`MAX_REQUEST_ELEMENTS`]).
    elements: u64,
}

impl<'a> Walker<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, field: &'static str, reason: MalformedReason) -> WalkError {
        WalkError {
            field,
            offset: self.pos,
            reason,
        }
    }

    fn take(&mut self, field: &'static str, n: u64) -> Walk<&'a [u8]> {
        let remaining = self.remaining();
        if n > remaining as u64 {
            return Err(self.err(
                field,
                MalformedReason::Truncated {
                    needed: n,
                    remaining,
                },
            ));
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn skip(&mut self, field: &'static str, n: u64) -> Walk<()> {
        self.take(field, n).map(|_| ())
    }

    fn i8(&mut self, field: &'static str) -> Walk<i8> {
        Ok(self.take(field, 1)?[0] as i8)
    }

    fn i16(&mut self, field: &'static str) -> Walk<i16> {
        let b = self.take(field, 2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Walk<i32> {
        let b = self.take(field, 4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Unsigned varint of at most 5 bytes (Kafka's `readUnsignedVarint`).
    fn uvarint(&mut self, field: &'static str) -> Walk<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(field, 1)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err(field, MalformedReason::VarintTooLong))
    }

    /// Read a length prefix: compact (varint, 0 = null) or classic (`int16` for strings,
    /// `int32` otherwise, -1 = null). Returns `None` for null.
    fn length(&mut self, field: &'static str, compact: bool, short: bool) -> Walk<Option<u64>> {
        if compact {
            let n = self.uvarint(field)?;
            Ok(if n == 0 { None } else { Some(u64::from(n) - 1) })
        } else {
            let n = if short {
                i64::from(self.i16(field)?)
            } else {
                i64::from(self.i32(field)?)
            };
            match n {
                -1 => Ok(None),
                n if n < 0 => Err(self.err(field, MalformedReason::InvalidLength(n))),
                n => Ok(Some(n as u64)),
            }
        }
    }

    fn field_flexible(&self, f: &Field) -> bool {
        match f.flexible {
            Some(v) => v.contains(self.version),
            None => self.flexible,
        }
    }

    fn walk_struct(&mut self, def: &'static StructDef) -> Walk<()> {
        for f in def.fields {
            if !f.versions.contains(self.version) || f.tagged.contains(self.version) {
                continue;
            }
            self.walk_field(f)?;
        }
        if self.flexible {
            self.walk_tagged_fields(def)?;
        }
        Ok(())
    }

    fn walk_tagged_fields(&mut self, def: &'static StructDef) -> Walk<()> {
        let count = self.uvarint("_tagged_fields")?;
        for _ in 0..count {
            let tag = self.uvarint("_tagged_fields")?;
            if tag > i32::MAX as u32 {
                // Tags are non-negative int32s; kafka-protocol keys unknown tags by i32
                // and would re-encode such a tag inconsistently.
                return Err(self.err("_tagged_fields", MalformedReason::InvalidTag(tag)));
            }
            let size = self.uvarint("_tagged_fields")?;
            let known = def.fields.iter().find(|f| {
                f.tag == Some(tag)
                    && f.tagged.contains(self.version)
                    && f.versions.contains(self.version)
            });
            let start = self.pos;
            let content = self.take("_tagged_fields", u64::from(size))?;
            if let Some(f) = known {
                // kafka-protocol reads a known tagged field from the enclosing buffer,
                // not from a slice of `size` bytes: insist the two agree exactly.
                let mut sub = Walker {
                    buf: content,
                    pos: 0,
                    version: self.version,
                    flexible: self.flexible,
                    elements: self.elements,
                };
                sub.walk_field(f).map_err(|mut e| {
                    e.offset += start;
                    e
                })?;
                self.elements = sub.elements;
                if sub.pos != content.len() {
                    return Err(WalkError {
                        field: f.name,
                        offset: start,
                        reason: MalformedReason::TaggedFieldSize {
                            tag,
                            declared: content.len(),
                            used: sub.pos,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    fn nullable(&self, f: &Field) -> bool {
        f.nullable.contains(self.version)
    }

    fn walk_field(&mut self, f: &'static Field) -> Walk<()> {
        let compact = self.field_flexible(f);
        if f.array {
            let Some(count) = self.length(f.name, compact, false)? else {
                return self.null(f);
            };
            // Kafka's rule: every element takes at least one byte, so a count larger
            // than the bytes remaining is rejected before anything is read.
            let remaining = self.remaining();
            if count > remaining as u64 {
                return Err(self.err(f.name, MalformedReason::ArrayTooLong { count, remaining }));
            }
            self.elements += count;
            if self.elements > MAX_REQUEST_ELEMENTS {
                return Err(self.err(f.name, MalformedReason::TooManyElements(self.elements)));
            }
            for _ in 0..count {
                self.walk_value(f, f.ty, compact)?;
            }
            Ok(())
        } else {
            self.walk_value(f, f.ty, compact)
        }
    }

    fn null(&self, f: &Field) -> Walk<()> {
        if self.nullable(f) {
            Ok(())
        } else {
            Err(self.err(f.name, MalformedReason::UnexpectedNull))
        }
    }

    /// One value of type `ty` (a scalar field, or one element of an array field).
    /// Array elements are never null, so nullability applies to scalar fields only.
    fn walk_value(&mut self, f: &'static Field, ty: Ty, compact: bool) -> Walk<()> {
        let n = f.name;
        match ty {
            Ty::Bool | Ty::Int8 => self.skip(n, 1),
            Ty::Int16 | Ty::Uint16 => self.skip(n, 2),
            Ty::Int32 | Ty::Uint32 => self.skip(n, 4),
            Ty::Int64 | Ty::Float64 => self.skip(n, 8),
            Ty::Uuid => self.skip(n, 16),
            Ty::String => match self.length(n, compact, true)? {
                None if !f.array => self.null(f),
                None => Err(self.err(n, MalformedReason::UnexpectedNull)),
                Some(len) if len > MAX_STRING_LEN => {
                    Err(self.err(n, MalformedReason::StringTooLong(len)))
                }
                Some(len) => self.skip(n, len),
            },
            Ty::Bytes | Ty::Records => match self.length(n, compact, false)? {
                None if !f.array => self.null(f),
                None => Err(self.err(n, MalformedReason::UnexpectedNull)),
                Some(len) => self.skip(n, len),
            },
            Ty::Struct(idx) => {
                if !f.array && self.nullable(f) {
                    // Kafka writes -1 (null) or 1 (present). Java reads any
                    // non-negative byte as present while kafka-protocol reads only 1
                    // as present; accept only the two values they agree on.
                    match self.i8(n)? {
                        -1 => return Ok(()),
                        1 => {}
                        other => {
                            self.pos -= 1;
                            return Err(self.err(n, MalformedReason::InvalidPresence(other)));
                        }
                    }
                }
                self.walk_struct(struct_def(idx))
            }
        }
    }
}
