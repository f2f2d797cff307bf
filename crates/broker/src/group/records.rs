//! The record formats of `__consumer_offsets`, byte-compatible with what
//! Apache Kafka writes (its `OffsetCommitKey`/`OffsetCommitValue` and
//! `GroupMetadataKey`/`GroupMetadataValue` schemas), so the topic reads the
//! same to tools that decode it.
//!
//! Keys start with a version that tells the record type apart: 0 and 1 are
//! offset commits, 2 is group metadata. A record with a null value is a
//! tombstone: the offset (or the whole group) is deleted, and a compacting
//! cleaner may drop every earlier record with the same key.
//!
//! Written versions (as Kafka 4.1 writes them): OffsetCommitKey v1,
//! OffsetCommitValue v3 (v1 when an explicit expire timestamp exists),
//! GroupMetadataKey v2, GroupMetadataValue v3. Reading accepts every
//! non-flexible version (OffsetCommitValue 0–3, GroupMetadataValue 0–3);
//! flexible versions (OffsetCommitValue v4, GroupMetadataValue v4) are
//! reported as unsupported and skipped by the loader.

use bytes::Bytes;

pub use crate::coordinator::codec::RecordFormatError;
use crate::coordinator::codec::{put_bytes, put_nullable_str, put_str, Reader};

/// A decoded record key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// A consumer group record (KIP-848, record types 3–8).
    Consumer(super::consumer::records::ConsumerKey),
}

/// One committed offset as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only v1 commits with an explicit retention time set this.
    pub expire_timestamp: Option<i64>,
}

/// One member as stored in GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

// ---- encoding ----

/// OffsetCommitKey v1.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.extend_from_slice(&1i16.to_be_bytes());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// GroupMetadataKey v2.
pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&2i16.to_be_bytes());
    put_str(&mut out, group);
    out
}

/// OffsetCommitValue v3 (v1 if an expire timestamp is set).
pub fn offset_value(v: &OffsetCommitValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + v.metadata.len());
    match v.expire_timestamp {
        Some(expire) => {
            out.extend_from_slice(&1i16.to_be_bytes());
            out.extend_from_slice(&v.offset.to_be_bytes());
            put_str(&mut out, &v.metadata);
            out.extend_from_slice(&v.commit_timestamp.to_be_bytes());
            out.extend_from_slice(&expire.to_be_bytes());
        }
        None => {
            out.extend_from_slice(&3i16.to_be_bytes());
            out.extend_from_slice(&v.offset.to_be_bytes());
            out.extend_from_slice(&v.leader_epoch.to_be_bytes());
            put_str(&mut out, &v.metadata);
            out.extend_from_slice(&v.commit_timestamp.to_be_bytes());
        }
    }
    out
}

/// GroupMetadataValue v3.
pub fn group_value(v: &GroupMetadataValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&3i16.to_be_bytes());
    put_str(&mut out, &v.protocol_type);
    out.extend_from_slice(&v.generation.to_be_bytes());
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.extend_from_slice(&v.current_state_timestamp.to_be_bytes());
    out.extend_from_slice(&(v.members.len() as i32).to_be_bytes());
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout.to_be_bytes());
        out.extend_from_slice(&m.session_timeout.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

// ---- decoding (bounded: every length is checked against what remains) ----

/// Decodes a record key.
pub fn decode_key(buf: &[u8]) -> Result<RecordKey, RecordFormatError> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        t @ 3..=8 => match super::consumer::records::decode_key(t, r.buf)? {
            Some(k) => Ok(RecordKey::Consumer(k)),
            None => Err(RecordFormatError::UnsupportedVersion {
                what: "key",
                version: t,
            }),
        },
        version => Err(RecordFormatError::UnsupportedVersion {
            what: "key",
            version,
        }),
    }
}

/// Decodes an OffsetCommitValue (versions 0–3).
pub fn decode_offset_value(buf: &[u8]) -> Result<OffsetCommitValue, RecordFormatError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    match version {
        0 => Ok(OffsetCommitValue {
            offset: r.i64()?,
            leader_epoch: -1,
            metadata: r.str()?,
            commit_timestamp: r.i64()?,
            expire_timestamp: None,
        }),
        1 => {
            let offset = r.i64()?;
            let metadata = r.str()?;
            let commit_timestamp = r.i64()?;
            let expire = r.i64()?;
            Ok(OffsetCommitValue {
                offset,
                leader_epoch: -1,
                metadata,
                commit_timestamp,
                expire_timestamp: (expire >= 0).then_some(expire),
            })
        }
        2 => Ok(OffsetCommitValue {
            offset: r.i64()?,
            leader_epoch: -1,
            metadata: r.str()?,
            commit_timestamp: r.i64()?,
            expire_timestamp: None,
        }),
        3 => Ok(OffsetCommitValue {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.str()?,
            commit_timestamp: r.i64()?,
            expire_timestamp: None,
        }),
        version => Err(RecordFormatError::UnsupportedVersion {
            what: "OffsetCommitValue",
            version,
        }),
    }
}

/// Decodes a GroupMetadataValue (versions 0–3).
pub fn decode_group_value(buf: &[u8]) -> Result<GroupMetadataValue, RecordFormatError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion {
            what: "GroupMetadataValue",
            version,
        });
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 {
        return Err(RecordFormatError::NegativeLength(count));
    }
    let mut members = Vec::new();
    for _ in 0..count {
        // Each member needs at least a few bytes; a huge count simply runs
        // out of input (no allocation is sized by it).
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let rebalance_timeout = if version >= 1 {
            rebalance_timeout
        } else {
            session_timeout
        };
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// A control record's type (Kafka's `ControlRecordType`): what a control
/// batch in `__consumer_offsets` says about the transaction of its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecord {
    /// Type 0: the transaction aborted.
    Abort,
    /// Type 1: the transaction committed.
    Commit,
    /// Any other type (leader change, snapshot records): nothing for groups.
    Other(i16),
}

/// Decodes a control record's key: INT16 version, INT16 type. A version
/// above 0 is read as version 0, as Kafka does; a negative one, or a key
/// shorter than four bytes, is an error.
pub fn decode_control_key(buf: &[u8]) -> Result<ControlRecord, RecordFormatError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if version < 0 {
        return Err(RecordFormatError::UnsupportedVersion {
            what: "control record key",
            version,
        });
    }
    Ok(match r.i16()? {
        0 => ControlRecord::Abort,
        1 => ControlRecord::Commit,
        other => ControlRecord::Other(other),
    })
}

/// The topics of a `consumer` protocol subscription
/// (ConsumerProtocolSubscription, any version: version, then the topic
/// array). `None` if it does not parse.
pub fn subscription_topics(buf: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(buf);
    let _version = r.i16().ok()?;
    let count = r.i32().ok()?;
    if count < 0 {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        topics.push(r.str().ok()?);
    }
    Some(topics)
}

pub use crate::coordinator::partition_for;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "hello".hashCode() == 99162322 in Java; 99162322 % 50 == 22.
        assert_eq!(partition_for("hello", 50), 22);
        // "".hashCode() == 0.
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Non-ASCII goes by UTF-16 code units: "é".hashCode() == 233.
        assert_eq!(partition_for("é", 50), 233 % 50);
    }

    #[test]
    fn offset_key_layout_is_kafkas() {
        let k = offset_key("g", "t", 7);
        assert_eq!(k, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
    }

    #[test]
    fn control_keys_decode_as_kafka_writes_them() {
        assert_eq!(decode_control_key(&[0, 0, 0, 0]), Ok(ControlRecord::Abort));
        assert_eq!(decode_control_key(&[0, 0, 0, 1]), Ok(ControlRecord::Commit));
        assert_eq!(
            decode_control_key(&[0, 0, 0, 2]),
            Ok(ControlRecord::Other(2))
        );
        // A newer key version is read as version 0.
        assert_eq!(decode_control_key(&[0, 1, 0, 1]), Ok(ControlRecord::Commit));
        assert_eq!(
            decode_control_key(&[0, 0, 0]),
            Err(RecordFormatError::Truncated)
        );
        assert!(decode_control_key(&[0xff, 0xff, 0, 1]).is_err());
    }

    #[test]
    fn truncated_and_hostile_inputs_are_errors() {
        assert_eq!(decode_key(&[0]), Err(RecordFormatError::Truncated));
        assert!(decode_key(&[0, 9, 0, 0]).is_err());
        // A member count of i32::MAX with no bytes behind it.
        let mut v = vec![0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        v.extend_from_slice(&0i64.to_be_bytes());
        v.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_group_value(&v), Err(RecordFormatError::Truncated));
        assert_eq!(
            decode_offset_value(&[0, 4, 0]),
            Err(RecordFormatError::UnsupportedVersion {
                what: "OffsetCommitValue",
                version: 4
            })
        );
    }

    fn arb_str() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._\\-é]{0,20}"
    }

    proptest! {
        #[test]
        fn offset_records_round_trip(group in arb_str(), topic in arb_str(), partition in any::<i32>(),
                                     offset in any::<i64>(), epoch in any::<i32>(), metadata in arb_str(),
                                     ts in any::<i64>(), expire in proptest::option::of(0i64..i64::MAX)) {
            let key = decode_key(&offset_key(&group, &topic, partition)).unwrap();
            prop_assert_eq!(key, RecordKey::Offset { group, topic, partition });
            let v = OffsetCommitValue { offset, leader_epoch: if expire.is_some() { -1 } else { epoch },
                                        metadata, commit_timestamp: ts, expire_timestamp: expire };
            prop_assert_eq!(decode_offset_value(&offset_value(&v)).unwrap(), v);
        }

        #[test]
        fn group_records_round_trip(group in arb_str(), ptype in arb_str(), generation in any::<i32>(),
                                    protocol in proptest::option::of(arb_str()), leader in proptest::option::of(arb_str()),
                                    ts in any::<i64>(),
                                    members in proptest::collection::vec((arb_str(), proptest::option::of(arb_str()),
                                        any::<i32>(), any::<i32>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..5)) {
            prop_assert_eq!(decode_key(&group_key(&group)).unwrap(), RecordKey::Group { group });
            let v = GroupMetadataValue {
                protocol_type: ptype, generation, protocol, leader, current_state_timestamp: ts,
                members: members.into_iter().map(|(id, inst, rt, st, b)| MemberMetadata {
                    member_id: id.clone(), group_instance_id: inst, client_id: format!("c-{id}"),
                    client_host: "/127.0.0.1".into(), rebalance_timeout: rt, session_timeout: st,
                    subscription: Bytes::from(b.clone()), assignment: Bytes::from(b),
                }).collect(),
            };
            prop_assert_eq!(decode_group_value(&group_value(&v)).unwrap(), v);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_key(&bytes);
            let _ = decode_offset_value(&bytes);
            let _ = decode_group_value(&bytes);
            let _ = subscription_topics(&bytes);
            let _ = decode_control_key(&bytes);
        }
    }
}
