//! Client quotas set over the wire, as `kafka-configs` sets them.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::AlterClientQuotasRequest;

use super::{sb, RawClient};

/// Sets `key` = `value` for client id `client_id` with AlterClientQuotas v1.
pub fn set_client_quota(addr: &str, client_id: &str, key: &str, value: f64) {
    let mut c = RawClient::connect(addr);
    let resp = c.send(
        1,
        &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(sb("client-id"))
                .with_entity_name(Some(sb(client_id)))])
            .with_ops(vec![OpData::default().with_key(sb(key)).with_value(value)])]),
    );
    assert_eq!(resp.entries[0].error_code, 0, "{resp:?}");
}
