//! Untrusted SASL tokens, read before a client has authenticated: SCRAM's
//! client-first and client-final parsers, PLAIN's message, whole exchanges
//! of every mechanism, and the JAAS parser.
//! The body lives in `sluice_auth::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run sasl -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_auth::fuzzing::sasl_messages(data);
});
