//! Untrusted connection bytes through the broker's frame reader, request
//! decoding and the data-path handlers (ApiVersions, Metadata, Produce,
//! Fetch, ListOffsets) of an in-process broker on the simulated disk:
//! nothing panics and every answer encodes. The body lives in
//! `sluice_broker::network::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run data_path -- -max_total_time=60 -malloc_limit_mb=512
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_broker::network::fuzzing::data_path(data);
});
