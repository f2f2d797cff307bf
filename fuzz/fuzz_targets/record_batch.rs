//! Untrusted RecordBatch bytes: batch framing and CRC (`Batches`), record
//! decoding, the producer's record walk (`validate::check_batch_records`,
//! in place and streamed, agreeing with whole decoding), and decompression
//! of every codec under a 1 MiB output limit.
//! The body lives in `sluice_record::fuzzing` so unit tests run it too.
//!
//! cargo +nightly fuzz run record_batch -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_record::fuzzing::record_batch(data);
});
