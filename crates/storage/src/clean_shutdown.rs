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
//!
//! Where Sluice differs from Kafka: the running marker (`.broker_running`,
//! `{"version":0,"brokerEpoch":N,"bootId":"…"}`), written once the broker
//! holds a broker epoch. Kafka counts every crash as unclean. But a crash
//! of the process alone (`kill -9`, the OOM killer, a panic) loses nothing
//! it wrote: the bytes are in the kernel's page cache, which outlives the
//! process. Only a reboot or power cut can lose unsynced writes, and those
//! change the machine's boot id. So a start that finds no clean-shutdown
//! marker but a running marker of the same boot names that marker's epoch
//! as its previous one, and the broker keeps its place among the eligible
//! leader replicas, as after a clean shutdown; the logs are still
//! recovered (a torn last batch was never acknowledged). Without it, a
//! power cut of one replica and a `kill -9` of another left only the
//! emptied replica to elect, and acknowledged records were lost (found by
//! the cluster simulation). What this cannot see: an I/O error in
//! writeback that the process never learned of before it died.
//!
//! The running marker is never synced: after a power cut it is either
//! gone or names an older boot, and both mean "unclean".

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

/// The running marker's file name.
pub const RUNNING_FILE: &str = ".broker_running";

/// The running marker's bytes: the broker epoch this process holds on the
/// machine boot `boot_id`.
pub fn encode_running(broker_epoch: i64, boot_id: &str) -> Vec<u8> {
    debug_assert!(
        broker_epoch >= 0,
        "a running marker names a registered epoch"
    );
    debug_assert!(!boot_id.contains(['"', '\\']), "a boot id is a plain token");
    format!("{{\"version\":0,\"brokerEpoch\":{broker_epoch},\"bootId\":\"{boot_id}\"}}")
        .into_bytes()
}

/// The broker epoch a running marker names, if it was written on the boot
/// `boot_id` (the current one). Anything else names none.
pub fn decode_running(bytes: &[u8], boot_id: &str) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (_, rest) = text.split_once("\"bootId\"")?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let (written_on, _) = rest.split_once('"')?;
    if boot_id.is_empty() || written_on != boot_id {
        return None;
    }
    decode(bytes)
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

    #[test]
    fn a_running_marker_counts_only_on_the_boot_that_wrote_it() {
        let m = encode_running(9, "b1");
        assert_eq!(m, br#"{"version":0,"brokerEpoch":9,"bootId":"b1"}"#);
        assert_eq!(decode_running(&m, "b1"), Some(9));
        assert_eq!(decode_running(&m, "b2"), None, "a reboot since");
        assert_eq!(decode_running(&m, ""), None, "an unknown boot");
        assert_eq!(decode_running(&m[..m.len() - 3], "b1"), None, "torn");
        assert_eq!(
            decode_running(br#"{"version":0,"brokerEpoch":9}"#, "b1"),
            None
        );
    }

    proptest! {
        #[test]
        fn an_epoch_round_trips(epoch in proptest::option::of(0i64..i64::MAX)) {
            prop_assert_eq!(decode(&encode(epoch)), epoch);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let _ = decode_running(&bytes, "b");
        }

        #[test]
        fn a_running_marker_round_trips(epoch in 0i64..i64::MAX, boot in "[0-9a-f-]{1,40}") {
            prop_assert_eq!(decode_running(&encode_running(epoch, &boot), &boot), Some(epoch));
        }
    }
}
