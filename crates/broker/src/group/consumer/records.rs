//! Consumer group records in `__consumer_offsets`, in the layout of Kafka
//! 4.1's coordinator records: the key starts with an INT16 record type
//! followed by non-flexible strings; the value is a version (0) followed by
//! a flexible-version body (compact strings and arrays, tagged fields).
//!
//! | type | key | value |
//! |---|---|---|
//! | 3 | ConsumerGroupMetadataKey (group) | epoch, tagged MetadataHash (tag 0) |
//! | 4 | ConsumerGroupPartitionMetadataKey (group) | written by older Kafka; only tombstoned here |
//! | 5 | ConsumerGroupMemberMetadataKey (group, member) | instance, rack, client, host, topics, regex, rebalance timeout, assignor |
//! | 6 | ConsumerGroupTargetAssignmentMetadataKey (group) | assignment epoch |
//! | 7 | ConsumerGroupTargetAssignmentMemberKey (group, member) | topic partitions |
//! | 8 | ConsumerGroupCurrentMemberAssignmentKey (group, member) | epochs, state, assigned, pending revocation |
//!
//! A null value is a tombstone. Decoding is bounded: every count and length
//! is checked against the bytes that remain.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::assignor::Assignment;
use super::group::{ConsumerRecord, MemberAssignmentState, MemberState, MemberSubscription};
use crate::coordinator::codec::{put_compact_str, put_str, put_uvarint, Reader, RecordFormatError};

pub const METADATA: i16 = 3;
pub const PARTITION_METADATA: i16 = 4;
pub const MEMBER_METADATA: i16 = 5;
pub const TARGET_ASSIGNMENT_METADATA: i16 = 6;
pub const TARGET_ASSIGNMENT_MEMBER: i16 = 7;
pub const CURRENT_MEMBER_ASSIGNMENT: i16 = 8;

/// A decoded consumer group record key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerKey {
    pub record_type: i16,
    pub group: String,
    pub member: Option<String>,
}

// ---- encoding ----

/// A key of `record_type` for `group` (and `member`).
pub fn key(record_type: i16, group: &str, member: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + group.len());
    out.extend_from_slice(&record_type.to_be_bytes());
    put_str(&mut out, group);
    if let Some(m) = member {
        put_str(&mut out, m);
    }
    out
}

fn topic_partitions(out: &mut Vec<u8>, a: &Assignment) {
    let entries: Vec<(&Uuid, &BTreeSet<i32>)> = a.iter().filter(|(_, p)| !p.is_empty()).collect();
    put_uvarint(out, entries.len() as u64 + 1);
    for (t, ps) in entries {
        out.extend_from_slice(t.as_bytes());
        put_uvarint(out, ps.len() as u64 + 1);
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
        put_uvarint(out, 0);
    }
}

/// The `(key, value)` records (value `None` = tombstone) of `rec`.
pub fn encode(group: &str, rec: &ConsumerRecord) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut v = 0i16.to_be_bytes().to_vec();
    match rec {
        ConsumerRecord::GroupMetadata {
            epoch,
            metadata_hash,
        } => {
            v.extend_from_slice(&epoch.to_be_bytes());
            // One tagged field: MetadataHash (tag 0, int64).
            put_uvarint(&mut v, 1);
            put_uvarint(&mut v, 0);
            put_uvarint(&mut v, 8);
            v.extend_from_slice(&metadata_hash.to_be_bytes());
            vec![(key(METADATA, group, None), Some(v))]
        }
        ConsumerRecord::Member {
            member_id,
            subscription: s,
        } => {
            put_compact_str(&mut v, s.instance_id.as_deref());
            put_compact_str(&mut v, s.rack_id.as_deref());
            put_compact_str(&mut v, Some(&s.client_id));
            put_compact_str(&mut v, Some(&s.client_host));
            put_uvarint(&mut v, s.subscribed_topic_names.len() as u64 + 1);
            for t in &s.subscribed_topic_names {
                put_compact_str(&mut v, Some(t));
            }
            put_compact_str(&mut v, s.subscribed_topic_regex.as_deref());
            v.extend_from_slice(&s.rebalance_timeout_ms.to_be_bytes());
            put_compact_str(&mut v, s.server_assignor.as_deref());
            put_uvarint(&mut v, 0);
            vec![(key(MEMBER_METADATA, group, Some(member_id)), Some(v))]
        }
        ConsumerRecord::MemberTombstone { member_id } => {
            vec![(key(MEMBER_METADATA, group, Some(member_id)), None)]
        }
        ConsumerRecord::TargetMember {
            member_id,
            assignment,
        } => {
            topic_partitions(&mut v, assignment);
            put_uvarint(&mut v, 0);
            vec![(
                key(TARGET_ASSIGNMENT_MEMBER, group, Some(member_id)),
                Some(v),
            )]
        }
        ConsumerRecord::TargetMemberTombstone { member_id } => {
            vec![(key(TARGET_ASSIGNMENT_MEMBER, group, Some(member_id)), None)]
        }
        ConsumerRecord::TargetEpoch { epoch } => {
            v.extend_from_slice(&epoch.to_be_bytes());
            put_uvarint(&mut v, 0);
            vec![(key(TARGET_ASSIGNMENT_METADATA, group, None), Some(v))]
        }
        ConsumerRecord::CurrentAssignment {
            member_id,
            assignment: a,
        } => {
            v.extend_from_slice(&a.member_epoch.to_be_bytes());
            v.extend_from_slice(&a.previous_member_epoch.to_be_bytes());
            v.push(a.state.value() as u8);
            topic_partitions(&mut v, &a.assigned);
            topic_partitions(&mut v, &a.pending_revocation);
            put_uvarint(&mut v, 0);
            vec![(
                key(CURRENT_MEMBER_ASSIGNMENT, group, Some(member_id)),
                Some(v),
            )]
        }
        ConsumerRecord::CurrentAssignmentTombstone { member_id } => {
            vec![(key(CURRENT_MEMBER_ASSIGNMENT, group, Some(member_id)), None)]
        }
        ConsumerRecord::GroupTombstone => vec![
            (key(TARGET_ASSIGNMENT_METADATA, group, None), None),
            (key(PARTITION_METADATA, group, None), None),
            (key(METADATA, group, None), None),
        ],
    }
}

// ---- decoding ----

/// Topic partitions as the assignment records store them.
fn read_topic_partitions(r: &mut Reader<'_>) -> Result<Assignment, RecordFormatError> {
    let n = r.count(18)?;
    let mut a = Assignment::new();
    for _ in 0..n {
        let mut id = [0u8; 16];
        id.copy_from_slice(r.take(16)?);
        let k = r.count(4)?;
        let mut ps = BTreeSet::new();
        for _ in 0..k {
            ps.insert(r.i32()?);
        }
        r.tags()?;
        if !ps.is_empty() {
            a.entry(Uuid::from_bytes(id)).or_default().extend(ps);
        }
    }
    Ok(a)
}

/// Decodes a consumer group key whose type (already read) is `record_type`;
/// `rest` is what follows the type. `None` if the type is not one of them.
pub fn decode_key(record_type: i16, rest: &[u8]) -> Result<Option<ConsumerKey>, RecordFormatError> {
    let mut r = Reader::new(rest);
    let with_member = match record_type {
        METADATA | PARTITION_METADATA | TARGET_ASSIGNMENT_METADATA => false,
        MEMBER_METADATA | TARGET_ASSIGNMENT_MEMBER | CURRENT_MEMBER_ASSIGNMENT => true,
        _ => return Ok(None),
    };
    let group = r.str()?;
    let member = if with_member { Some(r.str()?) } else { None };
    Ok(Some(ConsumerKey {
        record_type,
        group,
        member,
    }))
}

/// Decodes a consumer group record. `Ok(None)`: a record this broker does
/// not replay (ConsumerGroupPartitionMetadata, the target metadata
/// tombstone).
pub fn decode(
    key: &ConsumerKey,
    value: Option<&[u8]>,
) -> Result<Option<ConsumerRecord>, RecordFormatError> {
    let member = || key.member.clone().unwrap_or_default();
    let Some(value) = value else {
        return Ok(match key.record_type {
            METADATA => Some(ConsumerRecord::GroupTombstone),
            MEMBER_METADATA => Some(ConsumerRecord::MemberTombstone {
                member_id: member(),
            }),
            TARGET_ASSIGNMENT_MEMBER => Some(ConsumerRecord::TargetMemberTombstone {
                member_id: member(),
            }),
            CURRENT_MEMBER_ASSIGNMENT => Some(ConsumerRecord::CurrentAssignmentTombstone {
                member_id: member(),
            }),
            _ => None,
        });
    };
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordFormatError::UnsupportedVersion {
            what: "consumer group record value",
            version,
        });
    }
    Ok(match key.record_type {
        METADATA => {
            let epoch = r.i32()?;
            let mut metadata_hash = 0;
            for (tag, bytes) in r.tags()? {
                if tag == 0 && bytes.len() == 8 {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(bytes);
                    metadata_hash = i64::from_be_bytes(a);
                }
            }
            Some(ConsumerRecord::GroupMetadata {
                epoch,
                metadata_hash,
            })
        }
        MEMBER_METADATA => {
            let instance_id = r.compact_str()?;
            let rack_id = r.compact_str()?;
            let client_id = r.compact_str()?.unwrap_or_default();
            let client_host = r.compact_str()?.unwrap_or_default();
            let n = r.count(1)?;
            let mut names = Vec::new();
            for _ in 0..n {
                names.push(r.compact_str()?.unwrap_or_default());
            }
            let subscribed_topic_regex = r.compact_str()?;
            let rebalance_timeout_ms = r.i32()?;
            let server_assignor = r.compact_str()?;
            Some(ConsumerRecord::Member {
                member_id: member(),
                subscription: MemberSubscription {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names: names,
                    subscribed_topic_regex,
                    rebalance_timeout_ms,
                    server_assignor,
                },
            })
        }
        TARGET_ASSIGNMENT_MEMBER => Some(ConsumerRecord::TargetMember {
            member_id: member(),
            assignment: read_topic_partitions(&mut r)?,
        }),
        TARGET_ASSIGNMENT_METADATA => Some(ConsumerRecord::TargetEpoch { epoch: r.i32()? }),
        CURRENT_MEMBER_ASSIGNMENT => {
            let member_epoch = r.i32()?;
            let previous_member_epoch = r.i32()?;
            let state = MemberState::from_value(r.i8()?);
            let assigned = read_topic_partitions(&mut r)?;
            let pending_revocation = read_topic_partitions(&mut r)?;
            Some(ConsumerRecord::CurrentAssignment {
                member_id: member(),
                assignment: MemberAssignmentState {
                    member_epoch,
                    previous_member_epoch,
                    state,
                    assigned,
                    pending_revocation,
                },
            })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(group: &str, rec: &ConsumerRecord) -> Vec<Option<ConsumerRecord>> {
        encode(group, rec)
            .into_iter()
            .map(|(k, v)| {
                let t = i16::from_be_bytes([k[0], k[1]]);
                let key = decode_key(t, &k[2..]).unwrap().unwrap();
                assert_eq!(key.group, group);
                decode(&key, v.as_deref()).unwrap()
            })
            .collect()
    }

    #[test]
    fn target_epoch_layout_is_kafkas() {
        let recs = encode("g", &ConsumerRecord::TargetEpoch { epoch: 7 });
        assert_eq!(recs[0].0, [0, 6, 0, 1, b'g']);
        // version 0, int32 7, no tagged fields.
        assert_eq!(recs[0].1.as_deref(), Some(&[0, 0, 0, 0, 0, 7, 0][..]));
    }

    #[test]
    fn current_assignment_layout_is_kafkas() {
        let mut a = Assignment::new();
        a.insert(Uuid::from_u128(1), [3].into_iter().collect());
        let recs = encode(
            "g",
            &ConsumerRecord::CurrentAssignment {
                member_id: "m".into(),
                assignment: MemberAssignmentState {
                    member_epoch: 5,
                    previous_member_epoch: 4,
                    state: MemberState::UnrevokedPartitions,
                    assigned: a,
                    pending_revocation: Assignment::new(),
                },
            },
        );
        assert_eq!(recs[0].0, [0, 8, 0, 1, b'g', 0, 1, b'm']);
        let mut want = vec![0, 0, 0, 0, 0, 5, 0, 0, 0, 4, 1, 2];
        want.extend_from_slice(Uuid::from_u128(1).as_bytes());
        want.extend_from_slice(&[2, 0, 0, 0, 3, 0, 1, 0]);
        assert_eq!(recs[0].1.as_deref(), Some(&want[..]));
    }

    fn arb_assignment() -> impl Strategy<Value = Assignment> {
        proptest::collection::btree_map(
            (0u128..4).prop_map(Uuid::from_u128),
            proptest::collection::btree_set(0i32..100, 1..5),
            0..3,
        )
    }

    fn arb_opt() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-z0-9.*-]{0,12}")
    }

    proptest! {
        #[test]
        fn records_round_trip(member in "[a-z0-9-]{1,20}", epoch in any::<i32>(), prev in any::<i32>(),
                              hash in any::<i64>(), state in 0i8..3, a in arb_assignment(), b in arb_assignment(),
                              inst in arb_opt(), rack in arb_opt(), regex in arb_opt(), assignor in arb_opt(),
                              names in proptest::collection::vec("[a-z]{1,8}", 0..4), rt in any::<i32>()) {
            let recs = vec![
                ConsumerRecord::GroupMetadata { epoch, metadata_hash: hash },
                ConsumerRecord::TargetEpoch { epoch },
                ConsumerRecord::TargetMember { member_id: member.clone(), assignment: a.clone() },
                ConsumerRecord::CurrentAssignment { member_id: member.clone(), assignment: MemberAssignmentState {
                    member_epoch: epoch, previous_member_epoch: prev, state: MemberState::from_value(state),
                    assigned: a, pending_revocation: b } },
                ConsumerRecord::Member { member_id: member.clone(), subscription: MemberSubscription {
                    instance_id: inst, rack_id: rack, client_id: "c".into(), client_host: "/h".into(),
                    subscribed_topic_names: names, subscribed_topic_regex: regex, rebalance_timeout_ms: rt,
                    server_assignor: assignor } },
                ConsumerRecord::MemberTombstone { member_id: member.clone() },
                ConsumerRecord::TargetMemberTombstone { member_id: member.clone() },
                ConsumerRecord::CurrentAssignmentTombstone { member_id: member.clone() },
            ];
            for rec in recs {
                prop_assert_eq!(round_trip("grp", &rec), vec![Some(rec.clone())]);
            }
            prop_assert_eq!(round_trip("grp", &ConsumerRecord::GroupTombstone),
                            vec![None, None, Some(ConsumerRecord::GroupTombstone)]);
        }

        #[test]
        fn decoders_never_panic(t in 0i16..10, bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(Some(k)) = decode_key(t, &bytes) {
                let _ = decode(&k, Some(&bytes));
            }
            let k = ConsumerKey { record_type: t, group: "g".into(), member: Some("m".into()) };
            let _ = decode(&k, Some(&bytes));
        }
    }
}
