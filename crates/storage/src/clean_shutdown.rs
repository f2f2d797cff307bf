//! The clean-shutdown marker (`.kafka_cleanshutdown`) and the broker epoch
//! it carries, as Kafka's `CleanShutdownFileHandler` writes it:
//! `{"version":0,"brokerEpoch":N}`.
//!
//! Why the epoch: KIP-966. A broker registering again names the epoch it
//! had when it last shut down cleanly (`PreviousBrokerEpoch`); the
//! controller takes a broker whose previous epoch does not match, one that
//! crashed and may have lost unsynced acknowledged records, out of every
//! ISR and ELR, so it never leads from that data. A marker without an
//! epoch (an older release's empty file, or a shutdown before the broker
//! ever registered) still says the logs need no recovery.

/// Largest marker read (Kafka's is a few dozen bytes).
pub const MAX_MARKER_BYTES: u64 = 1024;

/// The marker's bytes for `broker_epoch` (`-1`: none).
pub fn encode(broker_epoch: Option<i64>) -> Vec<u8> {
    let epoch = broker_epoch.filter(|e| *e >= 0).unwrap_or(-1);
    format!("{{\"version\":0,\"brokerEpoch\":{epoch}}}").into_bytes()
}

/// The broker epoch a marker names, if any. Tolerant of whitespace and
/// field order; anything else (an empty file included) names none.
pub fn decode(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (_, rest) = text.split_once("\"brokerEpoch\"")?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse::<i64>().ok().filter(|e| *e >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_kafkas_marker_and_tolerates_the_rest() {
        assert_eq!(decode(br#"{"version":0,"brokerEpoch":42}"#), Some(42));
        assert_eq!(decode(br#"{ "brokerEpoch" : 7 , "version" : 0 }"#), Some(7));
        assert_eq!(decode(br#"{"version":0,"brokerEpoch":-1}"#), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"\xff\xfe"), None);
        assert_eq!(decode(br#"{"brokerEpoch":"x"}"#), None);
        assert_eq!(encode(None), br#"{"version":0,"brokerEpoch":-1}"#);
    }

    proptest! {
        #[test]
        fn an_epoch_round_trips(epoch in proptest::option::of(0i64..i64::MAX)) {
            prop_assert_eq!(decode(&encode(epoch)), epoch);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
