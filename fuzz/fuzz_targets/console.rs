#![no_main]
//! The web console's decoders of a broker's answers: a consumer's member
//! assignment, fetched record bytes decoded into a message page, and a
//! Sluice broker's metrics page.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_console::fuzzing::assignment(data);
    sluice_console::fuzzing::fetched_records(data);
    sluice_console::fuzzing::metrics_text(data);
});
