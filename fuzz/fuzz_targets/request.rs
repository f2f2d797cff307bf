//! Untrusted request bytes: framing, request header, the schema-driven validation pass
//! and kafka-protocol decoding, over every advertised request API × version (and the
//! validation pass alone over every API × version of Kafka's specs). The body lives in
//! `sluice_protocol::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run request -- -max_total_time=60 -malloc_limit_mb=256
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_protocol::fuzzing::request(data);
});
