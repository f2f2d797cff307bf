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
#[test]
fn seeds_that_found_bugs_pass() {
    if !deterministic() {
        return;
    }
    logs();
    let failed: Vec<String> = [20, 370]
        .into_iter()
        .filter_map(|seed| run_seed(seed, &SimConfig::default()).err())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
