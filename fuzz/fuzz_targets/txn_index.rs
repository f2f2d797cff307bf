//! A segment's `.txnindex` (after one byte giving the segment's base
//! offset) as read on log load and by read_committed fetches: a damaged or
//! hostile file must be refused (the log then rebuilds it) without
//! panicking, the pure decoder and the file reader must agree, and what
//! decodes must re-encode to the same bytes. The body lives in
//! `sluice_storage::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run txn_index -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_storage::fuzzing::txn_index(data);
});
