#![no_main]
//! Controller-listener frames: framing, header and body validation and
//! decoding as the controller RPC server does them, and the
//! `controller.quorum.voters` parser.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_transport::fuzzing::controller_frame(data);
    sluice_transport::fuzzing::parse_voters(data);
});
