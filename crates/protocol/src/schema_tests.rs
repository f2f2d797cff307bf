//! Tests that tie the generated schema table to kafka-protocol: random request bodies
//! generated from Kafka's spec must be accepted by the walker, decoded by kafka-protocol,
//! and re-encoded by kafka-protocol into bytes the walker accepts again. Any
//! disagreement about where a field starts or ends between the two shows up here.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};
use proptest::prelude::*;

use crate::error::{MalformedReason, ProtocolError};
use crate::schema::{all_requests, struct_def, Field, StructDef, Ty};
use crate::validate::validate_request_body;

/// Small deterministic generator (xorshift64*), seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Gen {
    rng: Rng,
    version: i16,
    flexible: bool,
    /// Emit tagged-field sections with entries (known and unknown tags).
    tags: bool,
    tagged_emitted: bool,
}

fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

impl Gen {
    fn length(&mut self, out: &mut BytesMut, compact: bool, short: bool, len: Option<usize>) {
        match (compact, len) {
            (true, None) => put_uvarint(out, 0),
            (true, Some(n)) => put_uvarint(out, n as u32 + 1),
            (false, None) if short => out.put_i16(-1),
            (false, None) => out.put_i32(-1),
            (false, Some(n)) if short => out.put_i16(n as i16),
            (false, Some(n)) => out.put_i32(n as i32),
        }
    }

    fn compact(&self, f: &Field) -> bool {
        f.flexible
            .map_or(self.flexible, |v| v.contains(self.version))
    }

    fn strukt(&mut self, def: &StructDef, out: &mut BytesMut, depth: u32) {
        for f in def.fields {
            if f.versions.contains(self.version) && !f.tagged.contains(self.version) {
                self.field(f, out, depth);
            }
        }
        if self.flexible {
            let mut entries: Vec<(u32, BytesMut)> = Vec::new();
            if self.tags {
                for f in def.fields {
                    if let Some(tag) = f.tag {
                        if f.tagged.contains(self.version)
                            && f.versions.contains(self.version)
                            && self.rng.chance(60)
                        {
                            let mut content = BytesMut::new();
                            self.field(f, &mut content, depth);
                            entries.push((tag, content));
                        }
                    }
                }
                if self.rng.chance(30) {
                    let mut content = BytesMut::new();
                    for _ in 0..self.rng.below(4) {
                        content.put_u8(self.rng.next() as u8);
                    }
                    entries.push((1000 + self.rng.below(100) as u32, content));
                }
            }
            entries.sort_by_key(|e| e.0);
            entries.dedup_by_key(|e| e.0);
            self.tagged_emitted |= !entries.is_empty();
            put_uvarint(out, entries.len() as u32);
            for (tag, content) in entries {
                put_uvarint(out, tag);
                put_uvarint(out, content.len() as u32);
                out.put_slice(&content);
            }
        }
    }

    fn field(&mut self, f: &Field, out: &mut BytesMut, depth: u32) {
        let compact = self.compact(f);
        let nullable = f.nullable.contains(self.version);
        if f.array {
            if nullable && self.rng.chance(15) {
                self.length(out, compact, false, None);
                return;
            }
            let n = if depth > 3 {
                0
            } else {
                self.rng.below(4) as usize
            };
            self.length(out, compact, false, Some(n));
            for _ in 0..n {
                self.value(f, f.ty, false, out, depth + 1);
            }
        } else {
            self.value(f, f.ty, nullable, out, depth);
        }
    }

    fn value(&mut self, f: &Field, ty: Ty, nullable: bool, out: &mut BytesMut, depth: u32) {
        let compact = self.compact(f);
        match ty {
            Ty::Bool => out.put_u8(self.rng.below(2) as u8),
            Ty::Int8 => out.put_u8(self.rng.next() as u8),
            Ty::Int16 | Ty::Uint16 => out.put_u16(self.rng.next() as u16),
            Ty::Int32 | Ty::Uint32 => out.put_u32(self.rng.next() as u32),
            Ty::Int64 => out.put_u64(self.rng.next()),
            Ty::Float64 => out.put_f64((self.rng.below(1000) as f64) / 8.0),
            Ty::Uuid => {
                out.put_u64(self.rng.next());
                out.put_u64(self.rng.next());
            }
            Ty::String => {
                if nullable && self.rng.chance(20) {
                    self.length(out, compact, true, None);
                } else {
                    let n = self.rng.below(9) as usize;
                    self.length(out, compact, true, Some(n));
                    for _ in 0..n {
                        out.put_u8(b'a' + self.rng.below(26) as u8);
                    }
                }
            }
            Ty::Bytes | Ty::Records => {
                if nullable && self.rng.chance(20) {
                    self.length(out, compact, false, None);
                } else {
                    let n = self.rng.below(17) as usize;
                    self.length(out, compact, false, Some(n));
                    for _ in 0..n {
                        out.put_u8(self.rng.next() as u8);
                    }
                }
            }
            Ty::Struct(idx) => {
                if nullable {
                    if self.rng.chance(30) {
                        out.put_i8(-1);
                        return;
                    }
                    out.put_i8(1);
                }
                self.strukt(struct_def(idx), out, depth + 1);
            }
        }
    }
}

/// Every (api, version) that both the spec table and kafka-protocol can decode.
fn decodable() -> Vec<(ApiKey, i16)> {
    let mut out = Vec::new();
    for s in all_requests() {
        let Ok(key) = ApiKey::try_from(s.api_key) else {
            continue;
        };
        let kp = key.valid_versions();
        for v in s.valid.lo..=s.valid.hi {
            if kp.min <= v && v <= kp.max {
                out.push((key, v));
            }
        }
    }
    out
}

fn generate(key: ApiKey, version: i16, seed: u64, tags: bool) -> (Bytes, bool) {
    let schema = crate::schema::request_schema(key as i16).unwrap();
    generate_from(schema, version, seed, tags)
}

fn generate_from(
    schema: &crate::schema::ApiSchema,
    version: i16,
    seed: u64,
    tags: bool,
) -> (Bytes, bool) {
    let mut g = Gen {
        rng: Rng(seed | 1),
        version,
        flexible: schema.flexible.contains(version),
        tags,
        tagged_emitted: false,
    };
    let mut out = BytesMut::new();
    g.strukt(schema.body(), &mut out, 0);
    (out.freeze(), g.tagged_emitted)
}

fn encode(body: &RequestKind, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    body.encode(&mut out, version).expect("re-encode");
    out.freeze()
}

#[test]
fn every_spec_version_kafka_protocol_knows_is_covered() {
    // The table is at least as new as kafka-protocol: every version kafka-protocol
    // decodes has a schema, so the walker never lets an unchecked API through.
    for key in ApiKey::iter() {
        let kp = key.valid_versions();
        let schema = crate::schema::request_schema(key as i16)
            .unwrap_or_else(|| panic!("no schema for {key:?}"));
        assert!(
            schema.valid.lo <= kp.min && kp.max <= schema.valid.hi,
            "{key:?}: kafka-protocol {kp} outside spec {:?}",
            schema.valid
        );
    }
}

#[test]
fn generated_bodies_round_trip_through_kafka_protocol() {
    let cases = decodable();
    assert!(cases.len() > 250, "only {} api versions", cases.len());
    let mut unsupported = Vec::new();
    for (i, &(key, version)) in cases.iter().enumerate() {
        for round in 0..40u64 {
            let seed = (i as u64) << 20 | round;
            let tags = round % 2 == 1;
            let (body, tagged) = generate(key, version, seed, tags);
            validate_request_body(key as i16, version, &body).unwrap_or_else(|e| {
                panic!("{key:?} v{version} seed {seed}: walker rejected generated body: {e}")
            });
            let decoded = match RequestKind::decode(key, &mut body.clone(), version) {
                Ok(d) => d,
                Err(e) if format!("{e:#}").contains("specified version not supported") => {
                    // kafka-protocol's ApiKey::valid_versions claims a version its
                    // message type cannot decode (OffsetCommit v10 and the like).
                    unsupported.push((key, version));
                    break;
                }
                Err(e) => panic!(
                    "{key:?} v{version} seed {seed}: kafka-protocol rejected {body:02x?}: {e:#}"
                ),
            };
            let again = encode(&decoded, version);
            if !tagged {
                assert_eq!(
                    again, body,
                    "{key:?} v{version} seed {seed}: re-encoding differs"
                );
            }
            validate_request_body(key as i16, version, &again).unwrap_or_else(|e| {
                panic!("{key:?} v{version}: walker rejected kafka-protocol's encoding: {e}")
            });
            let decoded_again = RequestKind::decode(key, &mut again.clone(), version).unwrap();
            assert_eq!(decoded_again, decoded, "{key:?} v{version} seed {seed}");
        }
    }
    println!("kafka-protocol cannot decode (skipped): {unsupported:?}");
    for &(key, lo, hi) in crate::SUPPORTED_APIS
        .iter()
        .chain(crate::ANSWERED_WITH_ERROR)
    {
        for v in lo..=hi {
            assert!(
                !unsupported.contains(&(key, v)),
                "advertised or answered {key:?} v{v} is not decodable"
            );
        }
    }
    assert!(unsupported.len() < 20, "{unsupported:?}");
}

#[test]
fn truncated_generated_bodies_are_rejected() {
    for (i, &(key, version)) in decodable().iter().enumerate() {
        let (body, _) = generate(key, version, 0x9e37 + i as u64, true);
        for cut in 0..body.len() {
            let r = validate_request_body(key as i16, version, &body[..cut]);
            assert!(
                r.is_err(),
                "{key:?} v{version}: prefix {cut}/{} accepted",
                body.len()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Mutated bodies: the walker may accept or reject, but whatever it accepts
    /// kafka-protocol decodes without panicking (see tests/alloc_bound.rs for the
    /// allocation bound).
    #[test]
    fn mutated_bodies_never_panic(case in 0usize..10_000, seed in any::<u64>(), flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..4)) {
        let cases = decodable();
        let (key, version) = cases[case % cases.len()];
        let (body, _) = generate(key, version, seed, seed % 2 == 0);
        let mut bytes = body.to_vec();
        if bytes.is_empty() { bytes.push(0); }
        for (pos, val) in flips {
            let p = usize::from(pos) % bytes.len();
            bytes[p] = val;
        }
        if validate_request_body(key as i16, version, &bytes).is_ok() {
            let _ = RequestKind::decode(key, &mut Bytes::from(bytes), version);
        }
    }
}

#[test]
fn metadata_v12_huge_count_is_rejected_before_decoding() {
    // The 7-byte body that aborted the process inside kafka-protocol.
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00];
    let err = validate_request_body(ApiKey::Metadata as i16, 12, &body).unwrap_err();
    match err {
        ProtocolError::Malformed {
            field: "Topics",
            reason:
                MalformedReason::ArrayTooLong {
                    count,
                    remaining: 2,
                },
            ..
        } => assert_eq!(count, 0xffff_fffe),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn known_tagged_field_must_fill_its_size_exactly() {
    // Fetch v12: ClusterId is tag 0 (compact nullable string). Declaring 5 bytes for a
    // 3-byte string would make kafka-protocol (which reads known tags from the outer
    // buffer) and the walker disagree about what follows.
    let (body, _) = generate(ApiKey::Fetch, 12, 77, false);
    // The top-level tagged section is the last byte (count 0). Replace it.
    let mut bytes = body[..body.len() - 1].to_vec();
    bytes.extend_from_slice(&[1, 0, 5, 3, b'a', b'b', 0, 0]);
    let err = validate_request_body(ApiKey::Fetch as i16, 12, &bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Malformed {
                reason: MalformedReason::TaggedFieldSize {
                    tag: 0,
                    declared: 5,
                    used: 3
                },
                ..
            }
        ),
        "{err:?}"
    );
    // The same tag with the right size is accepted and decoded.
    let mut ok = body[..body.len() - 1].to_vec();
    ok.extend_from_slice(&[1, 0, 3, 3, b'a', b'b']);
    validate_request_body(ApiKey::Fetch as i16, 12, &ok).unwrap();
    let RequestKind::Fetch(f) =
        RequestKind::decode(ApiKey::Fetch, &mut Bytes::from(ok), 12).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(f.cluster_id.as_deref(), Some("ab"));
}

#[test]
fn nullable_struct_presence_byte_must_be_minus_one_or_one() {
    // DescribeTopicPartitions v0: Topics (compact array), ResponsePartitionLimit
    // (int32), Cursor (nullable struct), tags.
    let mut body = vec![1u8, 0, 0, 0, 10];
    body.push(0); // presence byte 0: Java reads a struct, kafka-protocol reads null
    body.extend_from_slice(&[2, b't', 0, 0, 0, 0, 0]);
    body.push(0);
    let err = validate_request_body(ApiKey::DescribeTopicPartitions as i16, 0, &body).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Malformed {
                reason: MalformedReason::InvalidPresence(0),
                ..
            }
        ),
        "{err:?}"
    );
    body[5] = 1;
    validate_request_body(ApiKey::DescribeTopicPartitions as i16, 0, &body).unwrap();
    RequestKind::decode(ApiKey::DescribeTopicPartitions, &mut Bytes::from(body), 0).unwrap();
}

#[test]
fn tag_numbers_above_i32_max_are_rejected() {
    // DescribeCluster v0: bool, then one tagged field numbered 0xcfff_ffff, size 0.
    let body = [0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0c, 0x00];
    let err = validate_request_body(ApiKey::DescribeCluster as i16, 0, &body).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Malformed {
                reason: MalformedReason::InvalidTag(0xcfff_ffff),
                ..
            }
        ),
        "{err:?}"
    );
    let ok = [0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
    validate_request_body(ApiKey::DescribeCluster as i16, 0, &ok).unwrap();
}

/// Every (api, version) of a response that both the spec table and kafka-protocol know.
fn decodable_responses() -> Vec<(ApiKey, i16)> {
    let mut out = Vec::new();
    for key in ApiKey::iter() {
        let Some(s) = crate::schema::response_schema(key as i16) else {
            continue;
        };
        let kp = key.valid_versions();
        for v in s.valid.lo.max(kp.min)..=s.valid.hi.min(kp.max) {
            out.push((key, v));
        }
    }
    out
}

/// The response half of the table agrees with kafka-protocol as the request half does:
/// generated bodies pass the walker, decode, re-encode into bytes the walker accepts,
/// and every strict prefix is refused.
#[test]
fn generated_response_bodies_round_trip_and_prefixes_are_refused() {
    use crate::validate::validate_response_body;
    use kafka_protocol::messages::ResponseKind;
    let cases = decodable_responses();
    assert!(cases.len() > 250, "only {} api versions", cases.len());
    let mut checked = 0;
    for (i, &(key, version)) in cases.iter().enumerate() {
        let schema = crate::schema::response_schema(key as i16).unwrap();
        for round in 0..10u64 {
            let seed = (i as u64) << 20 | round;
            let (body, tagged) = generate_from(schema, version, seed, round % 2 == 1);
            validate_response_body(key as i16, version, &body).unwrap_or_else(|e| {
                panic!("{key:?} v{version} seed {seed}: walker rejected generated body: {e}")
            });
            let Ok(decoded) = ResponseKind::decode(key, &mut body.clone(), version) else {
                // kafka-protocol claims versions some message types cannot decode.
                break;
            };
            let mut again = BytesMut::new();
            decoded.encode(&mut again, version).expect("re-encode");
            if !tagged {
                assert_eq!(again.freeze(), body, "{key:?} v{version} seed {seed}");
            }
            checked += 1;
            if round == 0 {
                for cut in 0..body.len() {
                    assert!(
                        validate_response_body(key as i16, version, &body[..cut]).is_err(),
                        "{key:?} v{version}: prefix {cut}/{} accepted",
                        body.len()
                    );
                }
            }
        }
    }
    assert!(checked > 2000, "{checked}");
}

/// A Fetch response whose partition count claims far more than the bytes that follow
/// is refused before kafka-protocol could reserve memory for it.
#[test]
fn fetch_response_huge_count_is_rejected_before_decoding() {
    use crate::validate::validate_response_body;
    // v17: throttle, error, session id, then Responses (compact array): one topic
    // (id + partitions with a count of ~2^32).
    let mut body = BytesMut::new();
    body.put_i32(0);
    body.put_i16(0);
    body.put_i32(0);
    put_uvarint(&mut body, 2);
    body.put_slice(&[7u8; 16]);
    body.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    body.put_u8(0);
    let err = validate_response_body(ApiKey::Fetch as i16, 17, &body).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Malformed {
                reason: MalformedReason::ArrayTooLong { .. },
                ..
            }
        ),
        "{err:?}"
    );
}
