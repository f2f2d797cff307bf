//! `leader-epoch-checkpoint` files read back on log load: a damaged or
//! hostile file must be refused (the log then rebuilds the cache from its
//! batch headers) without panicking or allocating more than the file
//! justifies. The body lives in `sluice_storage::fuzzing` so unit tests
//! run it too.
//!
//! cargo +nightly fuzz run leader_epoch_checkpoint -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_storage::fuzzing::leader_epoch_checkpoint(data);
});
