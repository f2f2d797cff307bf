//! Producer state snapshot files (`<offset>.snapshot`, versions 1 and 2)
//! read back on log load: a damaged or hostile file must be rejected
//! without panicking or allocating more than its own size justifies, and
//! whatever decodes must re-encode to a snapshot of the same state (the
//! same bytes for the current version). The body lives in
//! `sluice_storage::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run producer_snapshot -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_storage::fuzzing::producer_snapshot(data);
});
