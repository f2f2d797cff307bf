//! The committed metadata offset of a controller's answer, carried to a
//! remote broker in a tagged field Kafka does not define.
//!
//! A broker answers its own client only after its metadata loader has
//! published the change the controller committed (so a CreateTopics is
//! followed by a Metadata that shows the topic, on the same broker). The
//! in-process controller tells it the offset to wait for; Kafka's responses
//! have no field for it. So the controller listener adds one to every
//! answer of the thirteen APIs a broker's `ControllerClient` uses, as the
//! unknown tagged field [`COMMITTED_OFFSET_TAG`], and the remote client
//! reads it. Kafka's clients skip tagged fields they do not know, so the
//! answers stay valid Kafka for any reader. Tagged fields exist only in
//! flexible versions; every version the channel negotiates with a Sluice
//! controller of these APIs is flexible (CreateTopics v7, DeleteTopics v6,
//! CreatePartitions v3, IncrementalAlterConfigs v1, AlterConfigs v2,
//! ElectLeaders v2, AllocateProducerIds, BrokerRegistration,
//! BrokerHeartbeat, AlterPartition, AlterPartitionReassignments and
//! ListPartitionReassignments, AlterUserScramCredentials v0+, CreateAcls and
//! DeleteAcls v2+).
//! ListPartitionReassignments, AlterUserScramCredentials v0+, AlterClientQuotas v1).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;
use sluice_protocol::kafka_protocol;
use sluice_record::Offset;

/// The tag of the committed offset (an `int64`, big-endian, 8 bytes): the
/// metadata offset at which the answer is true (the controller's image
/// after the call). Far above the tags Kafka assigns (they count up from
/// 0 per message), so a future Kafka field cannot collide with it.
pub const COMMITTED_OFFSET_TAG: i32 = 10_000;

/// Adds `offset` to `body` if it answers one of the broker's controller
/// APIs (encoded only in flexible versions: kafka-protocol writes no
/// tagged field in the others). Returns whether it did.
pub fn attach(body: &mut ResponseKind, offset: Offset) -> bool {
    let fields = match body {
        ResponseKind::CreateTopics(r) => &mut r.unknown_tagged_fields,
        ResponseKind::DeleteTopics(r) => &mut r.unknown_tagged_fields,
        ResponseKind::CreatePartitions(r) => &mut r.unknown_tagged_fields,
        ResponseKind::IncrementalAlterConfigs(r) => &mut r.unknown_tagged_fields,
        ResponseKind::AlterConfigs(r) => &mut r.unknown_tagged_fields,
        ResponseKind::ElectLeaders(r) => &mut r.unknown_tagged_fields,
        ResponseKind::AllocateProducerIds(r) => &mut r.unknown_tagged_fields,
        ResponseKind::BrokerRegistration(r) => &mut r.unknown_tagged_fields,
        ResponseKind::BrokerHeartbeat(r) => &mut r.unknown_tagged_fields,
        ResponseKind::AlterPartition(r) => &mut r.unknown_tagged_fields,
        ResponseKind::AlterPartitionReassignments(r) => &mut r.unknown_tagged_fields,
        ResponseKind::ListPartitionReassignments(r) => &mut r.unknown_tagged_fields,
        ResponseKind::UpdateFeatures(r) => &mut r.unknown_tagged_fields,
        ResponseKind::AlterUserScramCredentials(r) => &mut r.unknown_tagged_fields,
        ResponseKind::CreateAcls(r) => &mut r.unknown_tagged_fields,
        ResponseKind::DeleteAcls(r) => &mut r.unknown_tagged_fields,
        ResponseKind::AlterClientQuotas(r) => &mut r.unknown_tagged_fields,
        _ => return false,
    };
    fields.insert(
        COMMITTED_OFFSET_TAG,
        Bytes::copy_from_slice(&offset.0.to_be_bytes()),
    );
    true
}

/// Why an answer's committed offset cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadOffset {
    /// The answer has no [`COMMITTED_OFFSET_TAG`] (not a Sluice controller,
    /// or a version without tagged fields).
    Missing,
    /// The field is not 8 bytes.
    Length(usize),
    /// Below -1 (the offset of an empty log): no offset a log can have.
    Negative(i64),
}

impl std::fmt::Display for BadOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadOffset::Missing => write!(
                f,
                "the controller's answer has no committed offset (tagged field {COMMITTED_OFFSET_TAG})"
            ),
            BadOffset::Length(n) => write!(
                f,
                "the committed offset (tagged field {COMMITTED_OFFSET_TAG}) has {n} bytes, not 8"
            ),
            BadOffset::Negative(o) => write!(f, "the committed offset {o} is below -1"),
        }
    }
}

/// The committed offset of an answer's tagged fields, checked.
pub fn read(fields: &BTreeMap<i32, Bytes>) -> Result<Offset, BadOffset> {
    let raw = fields
        .get(&COMMITTED_OFFSET_TAG)
        .ok_or(BadOffset::Missing)?;
    let bytes: [u8; 8] = raw[..]
        .try_into()
        .map_err(|_| BadOffset::Length(raw.len()))?;
    match i64::from_be_bytes(bytes) {
        o if o < -1 => Err(BadOffset::Negative(o)),
        o => Ok(Offset(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{BrokerHeartbeatResponse, DescribeClusterResponse};

    #[test]
    fn attached_offsets_read_back_and_bad_ones_are_refused() {
        let mut body = ResponseKind::BrokerHeartbeat(BrokerHeartbeatResponse::default());
        assert!(attach(&mut body, Offset(123)));
        let ResponseKind::BrokerHeartbeat(r) = &body else {
            unreachable!()
        };
        assert_eq!(read(&r.unknown_tagged_fields), Ok(Offset(123)));
        let mut other = ResponseKind::DescribeCluster(DescribeClusterResponse::default());
        assert!(!attach(&mut other, Offset(1)));

        let mut fields = BTreeMap::new();
        assert_eq!(read(&fields), Err(BadOffset::Missing));
        fields.insert(COMMITTED_OFFSET_TAG, Bytes::from_static(&[0, 0, 0, 7]));
        assert_eq!(read(&fields), Err(BadOffset::Length(4)));
        fields.insert(COMMITTED_OFFSET_TAG, Bytes::from(vec![0; 9]));
        assert_eq!(read(&fields), Err(BadOffset::Length(9)));
        fields.insert(
            COMMITTED_OFFSET_TAG,
            Bytes::from((-2i64).to_be_bytes().to_vec()),
        );
        assert_eq!(read(&fields), Err(BadOffset::Negative(-2)));
        fields.insert(
            COMMITTED_OFFSET_TAG,
            Bytes::from((-1i64).to_be_bytes().to_vec()),
        );
        assert_eq!(read(&fields), Ok(Offset(-1)));
    }
}
