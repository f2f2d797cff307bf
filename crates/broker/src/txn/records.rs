//! The records of `__transaction_state`, byte-compatible with Kafka's
//! `TransactionLogKey` and `TransactionLogValue`, so the topic reads the
//! same to Kafka's tools and a coordinator can load what another wrote.
//!
//! - Key: INT16 record type 0, then the transactional id (INT16-length
//!   string).
//! - Value: INT16 version, then `TransactionLogValue` in that version. v0
//!   (non-flexible) is what Kafka writes while the `transaction.version`
//!   feature is below 2; v1 (flexible, KIP-890) adds tagged
//!   PreviousProducerId (tag 0), NextProducerId (tag 1) and
//!   ClientTransactionVersion (tag 2), written only when they differ from
//!   their defaults (-1, -1, 0), as Kafka's generated code does.
//! - A null value is a tombstone: the transactional id expired.
//!
//! An Empty transaction stores a null partition list (Kafka's writer), and
//! a reader ignores whatever list an Empty record carries.

use std::collections::{BTreeMap, BTreeSet};

use sluice_record::{ProducerEpoch, ProducerId};

use super::state::TransactionState;
use crate::coordinator::codec::{
    put_compact_count, put_compact_str, put_str, put_uvarint, Reader, RecordFormatError,
};

/// The key's record type (`CoordinatorRecordType.TRANSACTION_LOG`).
pub const KEY_TYPE: i16 = 0;
/// The highest value version read and written.
pub const MAX_VALUE_VERSION: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u64 = 0;
const TAG_NEXT_PRODUCER_ID: u64 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u64 = 2;

/// One transactional id's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: ProducerId,
    /// The producer id of the last committed transaction (-1: none; v1).
    pub previous_producer_id: ProducerId,
    /// The producer id last handed to the producer, when an epoch
    /// overflow moved it to a new one (-1: none; v1).
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    pub state: TransactionState,
    /// Topic → partitions in the transaction (empty when `Empty`).
    pub partitions: BTreeMap<String, BTreeSet<i32>>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// The client's transaction version (0: not known; v1).
    pub client_transaction_version: i16,
}

/// The key of `transactional_id`.
pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&KEY_TYPE.to_be_bytes());
    put_str(&mut out, transactional_id);
    out
}

/// The transactional id a key names.
pub fn decode_key(buf: &[u8]) -> Result<String, RecordFormatError> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        KEY_TYPE => r.str(),
        version => Err(RecordFormatError::UnsupportedVersion {
            what: "transaction log key",
            version,
        }),
    }
}

/// `v` as a value of `version` (0 or 1).
pub fn encode_value(v: &TransactionLogValue, version: i16) -> Vec<u8> {
    assert!(
        (0..=MAX_VALUE_VERSION).contains(&version),
        "transaction log value version {version}"
    );
    assert!(
        v.state != TransactionState::Empty || v.partitions.is_empty(),
        "an Empty transaction has no partitions"
    );
    let flexible = version >= 1;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&v.producer_id.0.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.0.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.state.id() as u8);
    let partitions = (v.state != TransactionState::Empty).then_some(&v.partitions);
    match (partitions, flexible) {
        (None, false) => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (None, true) => put_compact_count(&mut out, None),
        (Some(topics), false) => {
            out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
            for (topic, ids) in topics {
                put_str(&mut out, topic);
                out.extend_from_slice(&(ids.len() as i32).to_be_bytes());
                for id in ids {
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
        }
        (Some(topics), true) => {
            put_compact_count(&mut out, Some(topics.len()));
            for (topic, ids) in topics {
                put_compact_str(&mut out, Some(topic));
                put_compact_count(&mut out, Some(ids.len()));
                for id in ids {
                    out.extend_from_slice(&id.to_be_bytes());
                }
                put_uvarint(&mut out, 0);
            }
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    if flexible {
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if v.previous_producer_id.0 != -1 {
            let b = v.previous_producer_id.0.to_be_bytes().to_vec();
            tags.push((TAG_PREVIOUS_PRODUCER_ID, b));
        }
        if v.next_producer_id.0 != -1 {
            tags.push((
                TAG_NEXT_PRODUCER_ID,
                v.next_producer_id.0.to_be_bytes().to_vec(),
            ));
        }
        if v.client_transaction_version != 0 {
            let b = v.client_transaction_version.to_be_bytes().to_vec();
            tags.push((TAG_CLIENT_TRANSACTION_VERSION, b));
        }
        put_uvarint(&mut out, tags.len() as u64);
        for (tag, bytes) in tags {
            put_uvarint(&mut out, tag);
            put_uvarint(&mut out, bytes.len() as u64);
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// A stored value (tombstones, null values, are the caller's to tell).
pub fn decode_value(buf: &[u8]) -> Result<TransactionLogValue, RecordFormatError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if !(0..=MAX_VALUE_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion {
            what: "transaction log value",
            version,
        });
    }
    let flexible = version >= 1;
    let producer_id = ProducerId(r.i64()?);
    let producer_epoch = ProducerEpoch(r.i16()?);
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TransactionState::from_id(status).ok_or(RecordFormatError::Invalid {
        what: "transaction status",
        value: i64::from(status),
    })?;
    let mut partitions = BTreeMap::new();
    let topics = if flexible {
        r.compact_count(3)?
    } else {
        r.array_count(6)?
    };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible {
            r.compact_str()?
                .ok_or(RecordFormatError::NegativeLength(-1))?
        } else {
            r.str()?
        };
        let n = if flexible {
            r.compact_count(4)?
        } else {
            r.array_count(4)?
        };
        let ids: &mut BTreeSet<i32> = partitions.entry(topic).or_default();
        for _ in 0..n.unwrap_or(0) {
            ids.insert(r.i32()?);
        }
        if flexible {
            r.tags()?;
        }
    }
    if state == TransactionState::Empty {
        partitions.clear();
    }
    let mut v = TransactionLogValue {
        producer_id,
        previous_producer_id: ProducerId(-1),
        next_producer_id: ProducerId(-1),
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms: r.i64()?,
        start_ms: r.i64()?,
        client_transaction_version: 0,
    };
    if flexible {
        for (tag, bytes) in r.tags()? {
            let mut t = Reader::new(bytes);
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => v.previous_producer_id = ProducerId(t.i64()?),
                TAG_NEXT_PRODUCER_ID => v.next_producer_id = ProducerId(t.i64()?),
                TAG_CLIENT_TRANSACTION_VERSION => v.client_transaction_version = t.i16()?,
                // Unknown tags are skipped, as Kafka's readers do.
                _ => {}
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value(state: TransactionState) -> TransactionLogValue {
        TransactionLogValue {
            producer_id: ProducerId(1000),
            previous_producer_id: ProducerId(-1),
            next_producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(3),
            timeout_ms: 60_000,
            state,
            partitions: if state == TransactionState::Empty {
                BTreeMap::new()
            } else {
                BTreeMap::from([("t".to_string(), BTreeSet::from([0, 2]))])
            },
            last_update_ms: 7,
            start_ms: 5,
            client_transaction_version: 0,
        }
    }

    /// The bytes Kafka's generated code writes for these values, laid out
    /// field by field from the message schema.
    #[test]
    fn bytes_are_kafkas() {
        assert_eq!(key("tx"), [0, 0, 0, 2, b't', b'x']);
        let mut want = vec![0, 0]; // version 0
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&[0, 3]); // epoch
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1); // Ongoing
        want.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        assert_eq!(encode_value(&value(TransactionState::Ongoing), 0), want);

        let mut v = value(TransactionState::Empty);
        v.client_transaction_version = 2;
        let mut want = vec![0, 1];
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(0); // Empty
        want.push(0); // null partitions (compact)
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&[1, 2, 2, 0, 2]); // one tag: 2, 2 bytes, 2
        assert_eq!(encode_value(&v, 1), want);
    }

    fn any_value() -> impl Strategy<Value = TransactionLogValue> {
        (
            any::<i64>(),
            -1i64..1 << 40,
            -1i64..1 << 40,
            any::<i16>(),
            any::<i32>(),
            0usize..8,
            proptest::collection::btree_map(
                "[a-z._-]{1,20}",
                proptest::collection::btree_set(0i32..1000, 0..5),
                0..4,
            ),
            any::<i64>(),
            any::<i64>(),
            0i16..3,
        )
            .prop_map(
                |(pid, prev, next, epoch, timeout, s, parts, upd, start, tv)| {
                    let state = TransactionState::ALL[s];
                    TransactionLogValue {
                        producer_id: ProducerId(pid),
                        previous_producer_id: ProducerId(prev),
                        next_producer_id: ProducerId(next),
                        producer_epoch: ProducerEpoch(epoch),
                        timeout_ms: timeout,
                        state,
                        partitions: if state == TransactionState::Empty {
                            BTreeMap::new()
                        } else {
                            parts
                        },
                        last_update_ms: upd,
                        start_ms: start,
                        client_transaction_version: tv,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn values_round_trip_in_v1(v in any_value()) {
            prop_assert_eq!(decode_value(&encode_value(&v, 1)).unwrap(), v);
        }

        #[test]
        fn values_round_trip_in_v0_without_the_tagged_fields(v in any_value()) {
            let mut expect = v.clone();
            expect.previous_producer_id = ProducerId(-1);
            expect.next_producer_id = ProducerId(-1);
            expect.client_transaction_version = 0;
            prop_assert_eq!(decode_value(&encode_value(&v, 0)).unwrap(), expect);
        }

        #[test]
        fn keys_round_trip(id in ".{0,60}") {
            prop_assert_eq!(decode_key(&key(&id)).unwrap(), id);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = decode_key(&bytes);
            if let Ok(v) = decode_value(&bytes) {
                // Whatever decodes encodes again and decodes the same.
                let version = i16::from_be_bytes([bytes[0], bytes[1]]);
                prop_assert_eq!(decode_value(&encode_value(&v, version)).unwrap(), v);
            }
        }
    }

    #[test]
    fn damaged_values_are_refused() {
        let good = encode_value(&value(TransactionState::Ongoing), 1);
        for cut in 0..good.len() {
            assert!(decode_value(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[16] = 9; // the status byte
        assert_eq!(
            decode_value(&bad),
            Err(RecordFormatError::Invalid {
                what: "transaction status",
                value: 9
            })
        );
        assert!(matches!(
            decode_value(&[0, 2]),
            Err(RecordFormatError::UnsupportedVersion { version: 2, .. })
        ));
    }
}
