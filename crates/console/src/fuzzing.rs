//! Fuzzing bodies for the console's decoders of untrusted bytes (a broker's
//! answers): the `console` target in `fuzz/` calls them, and they also run
//! as unit tests.

use crate::kafka::{assignment, filter, messages, prometheus};

/// A member assignment from DescribeGroups.
pub fn assignment(data: &[u8]) {
    assignment::fuzz(data);
}

/// A broker's metrics page: only the names asked for come back, each with
/// a number.
pub fn metrics_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for l in prometheus::parse(
        &text,
        &["sluice_topic_bytes_in_total", "sluice_broker_info"],
    ) {
        assert!(l.name == "sluice_topic_bytes_in_total" || l.name == "sluice_broker_info");
        assert!(l.labels.len() <= text.len());
    }
}

/// Fetched record bytes decoded into a message page: never more than the
/// limit, offsets inside the window and increasing, shown bytes bounded.
pub fn fetched_records(data: &[u8]) {
    let mut out = Vec::new();
    let _ = messages::decode_into(data, 0, i64::MAX, 50, 0, None, &mut out);
    assert!(out.len() <= 50);
    for w in out.windows(2) {
        assert!(w[0].offset < w[1].offset);
    }
    for m in &out {
        assert!(m.offset >= 0);
        assert!(m.value.as_ref().map_or(0, Vec::len) <= messages::MAX_SHOWN_BYTES);
    }
    // Filtered: a subset of the same records, each holding the text.
    let f = filter::Filter::new("a").unwrap().expect("not blank");
    let mut hits = Vec::new();
    let _ = messages::decode_into(data, 0, i64::MAX, 50, 0, Some(&f), &mut hits);
    assert!(hits.len() <= 50);
    for m in hits.iter().filter(|m| {
        m.key_size <= messages::MAX_SHOWN_BYTES && m.value_size <= messages::MAX_SHOWN_BYTES
    }) {
        let has = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .is_some_and(|b| b.iter().any(|c| c.eq_ignore_ascii_case(&b'a')))
        };
        assert!(
            has(&m.key)
                || has(&m.value)
                || m.headers
                    .iter()
                    .any(|(k, v)| k.contains(['a', 'A']) || has(v)),
            "offset {} does not hold the filter text",
            m.offset
        );
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
            super::metrics_text(&data);
        }
    }
}
