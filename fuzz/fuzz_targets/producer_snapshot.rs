//! Producer state snapshot files (`<offset>.snapshot`) read back on log
//! load: a damaged or hostile file must be rejected without panicking or
//! allocating more than its own size justifies, and whatever decodes must
//! re-encode to the same bytes.
//!
//! cargo +nightly fuzz run producer_snapshot -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::producer_state::{decode_snapshot, encode_snapshot};

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = decode_snapshot(data) {
        assert_eq!(encode_snapshot(&state), data);
    }
});
