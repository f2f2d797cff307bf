//! Seeds that found bugs, replayed on every test run (each fails on the
//! code before its fix).

mod common;

use common::{deterministic, logs};
use sluice_sim::{run_seed, SimConfig};

/// - 20: a new fetch session forgot the follower's LastFetchedEpoch, and a
///   follower kept a deposed leader's batch below the high watermark
///   (`handlers/fetch.rs`, the session's `with_fetcher`).
/// - 370: a heartbeat the quorum could not settle during a node's start
///   made `Broker::start` fail instead of retrying
///   (`metadata/lifecycle.rs`).
/// - 121: a power cut of one replica and a `kill -9` of the other lost
///   acknowledged records: the killed replica, whose writes all survived,
///   counted as unclean and left the ELR, and the emptied one was elected
///   (storage's running marker, `clean_shutdown.rs`).
/// - 938: with every ISR and ELR member back from `kill -9`, all counted
///   as unclean, the partition stayed leaderless (same fix).
#[test]
fn seeds_that_found_bugs_pass() {
    if !deterministic() {
        return;
    }
    logs();
    let failed: Vec<String> = [20, 370, 121, 938]
        .into_iter()
        .filter_map(|seed| run_seed(seed, &SimConfig::default()).err())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
