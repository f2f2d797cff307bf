//! Fuzzing bodies for the console's decoders of untrusted bytes (a broker's
//! answers): the `console` target in `fuzz/` calls them, and they also run
//! as unit tests.

use crate::kafka::{assignment, messages};

/// A member assignment from DescribeGroups.
pub fn assignment(data: &[u8]) {
    assignment::fuzz(data);
}

/// Fetched record bytes decoded into a message page: never more than the
/// limit, offsets inside the window and increasing, shown bytes bounded.
pub fn fetched_records(data: &[u8]) {
    let mut out = Vec::new();
    let _ = messages::decode_into(data, 0, i64::MAX, 50, 0, &mut out);
    assert!(out.len() <= 50);
    for w in out.windows(2) {
        assert!(w[0].offset < w[1].offset);
    }
    for m in &out {
        assert!(m.offset >= 0);
        assert!(m.value.as_ref().map_or(0, Vec::len) <= messages::MAX_SHOWN_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fetched_records_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
            super::fetched_records(&data);
            super::assignment(&data);
        }
    }
}
