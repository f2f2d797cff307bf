//! Records of the coordinators' internal topics (`__consumer_offsets`,
//! `__transaction_state`), read back from disk and from other replicas
//! when a coordinator loads: a damaged or hostile record must be refused
//! without panicking or allocating more than its bytes justify, and a
//! transaction value that decodes must encode back to a value that
//! decodes the same.
//!
//! cargo +nightly fuzz run coordinator_record -- -max_total_time=60 -malloc_limit_mb=256
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_broker::group::records;
use sluice_broker::txn::records as txn;

fuzz_target!(|data: &[u8]| {
    let _ = records::decode_key(data);
    let _ = records::decode_offset_value(data);
    let _ = records::decode_group_value(data);
    let _ = txn::decode_key(data);
    if let Ok(v) = txn::decode_value(data) {
        let version = i16::from_be_bytes([data[0], data[1]]);
        assert_eq!(txn::decode_value(&txn::encode_value(&v, version)).unwrap(), v);
    }
});
