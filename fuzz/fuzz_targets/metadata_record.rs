//! Untrusted cluster-metadata records: one record's framing and fields, and
//! a log of length-prefixed records replayed onto an image (replay errors
//! must change nothing; the image must survive its own snapshot).
//! The body lives in `sluice_metadata::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run metadata_record -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_metadata::fuzzing::metadata_record(data);
});
