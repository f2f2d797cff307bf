//! Whom a forwarded CreateTopics, CreatePartitions or DeleteTopics is for,
//! carried to the active controller in a tagged field Kafka does not
//! define.
//!
//! Kafka's broker forwards these requests in an `Envelope` whose fields
//! carry the client's principal and whose inner header carries the client
//! id and the request's version; its controller builds the controller
//! mutation quota (KIP-599) from them, so one bucket per quota group
//! serves the whole cluster. A Sluice broker turns each request into the
//! controller's domain call, so it sends the same three facts as the
//! unknown tagged field [`FORWARDED_REQUESTER_TAG`] of the request it
//! sends (every version the channel negotiates with a Sluice controller
//! of these APIs is flexible). The controller trusts the field only from a
//! sender allowed `CLUSTER_ACTION` on the cluster when it authorizes (as
//! Kafka's Envelope check); otherwise, and without the field, the request
//! is charged to its own connection's principal and header.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sluice_controller::MutationRequester;

/// The tag of the requester: the client's request version (`int16`), then
/// its principal name and client id, each an `int32` byte length and
/// UTF-8. Beside [`COMMITTED_OFFSET_TAG`](crate::committed::COMMITTED_OFFSET_TAG),
/// far above Kafka's tags.
pub const FORWARDED_REQUESTER_TAG: i32 = 10_001;

/// Adds `requester` to a request's tagged fields.
pub fn attach(fields: &mut BTreeMap<i32, Bytes>, requester: &MutationRequester) {
    let mut b = BytesMut::with_capacity(10 + requester.user.len() + requester.client_id.len());
    b.put_i16(requester.api_version);
    for s in [&requester.user, &requester.client_id] {
        b.put_i32(s.len() as i32);
        b.put_slice(s.as_bytes());
    }
    fields.insert(FORWARDED_REQUESTER_TAG, b.freeze());
}

/// The requester a request's tagged fields name: `None` without the
/// field, or when it is malformed.
pub fn read(fields: &BTreeMap<i32, Bytes>) -> Option<MutationRequester> {
    let mut b = fields.get(&FORWARDED_REQUESTER_TAG)?.clone();
    if b.remaining() < 2 {
        return None;
    }
    let api_version = b.get_i16();
    let mut text = || {
        if b.remaining() < 4 {
            return None;
        }
        let n = usize::try_from(b.get_i32()).ok()?;
        if b.remaining() < n {
            return None;
        }
        String::from_utf8(b.split_to(n).to_vec()).ok()
    };
    let user = text()?;
    let client_id = text()?;
    Some(MutationRequester {
        user,
        client_id,
        api_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requester_reads_back_and_a_damaged_one_is_not_trusted() {
        let r = MutationRequester {
            user: "alice".into(),
            client_id: "app-é".into(),
            api_version: 7,
        };
        let mut fields = BTreeMap::new();
        assert_eq!(read(&fields), None);
        attach(&mut fields, &r);
        assert_eq!(read(&fields), Some(r));
        let whole = fields[&FORWARDED_REQUESTER_TAG].clone();
        for cut in 0..whole.len() {
            fields.insert(FORWARDED_REQUESTER_TAG, whole.slice(..cut));
            assert_eq!(read(&fields), None, "cut at {cut}");
        }
        let mut negative = BytesMut::new();
        negative.put_i16(7);
        negative.put_i32(-1);
        fields.insert(FORWARDED_REQUESTER_TAG, negative.freeze());
        assert_eq!(read(&fields), None);
    }
}
