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
///
/// These were found before stalls and full disks were simulated, so they
/// replay without them. With them (`slow_nodes`):
/// - 9: a controller whose metadata log halted on a full disk answered a
///   restarting broker's registration with UNKNOWN_SERVER_ERROR, and the
///   broker gave up its start instead of retrying
///   (`metadata/lifecycle.rs`).
///
/// With failing fsyncs (`io_errors`, consumers in a group off):
/// - 3: a broker whose one log directory went offline on a failed fsync
///   kept running (and leading) without it, every partition there
///   answering KAFKA_STORAGE_ERROR until a restart; it now halts, as
///   Kafka's does when the metadata log's directory fails
///   (`broker/src/log_dir_failure.rs`).
///
/// With everything on (the defaults: failing I/O, consumers in a group):
/// - 380: the group coordinator of a broker that had lost the leadership
///   of the group's `__consumer_offsets` partition kept answering from its
///   stale memory: an OffsetFetch there returned no offsets although a
///   commit had been acknowledged by the new leader (LostCommit). It now
///   answers NOT_COORDINATOR (`group/coordinator/partitions.rs`, `loaded_partition`).
/// - 381: a follower whose append failed with EIO (undone: the directory
///   stayed online) stopped fetching the partition for good; it now
///   retries (`replica_fetcher/apply.rs`, `stop_or_retry`).
/// - 1517: a broker's heartbeat was stuck for 28 s in the channel to the
///   controller: three requests refused together with NOT_CONTROLLER each
///   moved the channel on by one voter, back to the refusing one, every
///   round (`transport/src/channel/mod.rs`, `move_on`); and nothing bounded
///   the heartbeat (now half the session, `metadata/lifecycle.rs`). The
///   broker stayed fenced and its partition leaderless long after healing.
/// - 570: a group coordinator cut off from its followers answered an
///   offset commit it had just lost: it became a follower, its batch was
///   truncated, and the high watermark it then followed (the new
///   leader's, over other records) passed the commit's offset
///   (`group/append.rs`, `committed`: LostCommit).
/// - 7223 (slow disks off, found before they were simulated): a follower
///   added by a reassignment while its disk was full could not create the
///   partition's log and kept it offline after the disk had room again (no
///   later metadata change touched the partition), so the reassignment
///   never completed and the reader never saw a full ISR; partitions
///   offline on a full disk are now tried again every second
///   (`metadata/publishers.rs`, `retry_full_disk`).
///
/// With slow disks (a simulation bug, not Sluice's):
/// - 7175 (3 nodes) and 51160 (5 nodes, split roles): a node restarted
///   while its disk was slow recovered its logs in one metadata publish
///   whose fsyncs were all charged at the slow speed (595 and 780 ms each)
///   as the publish ran inline, so the metadata loader went on paying
///   them long after the disk was fast again (at 7175 it still had not
///   finished 32 s later) and the broker stayed fenced: its registration
///   waits for the loader. Each write or fsync now costs the disk's speed
///   when its turn comes (`sluice_runtime::disk`, `charge_op`).
/// - 8009 (the slow-disk trial with a metadata write: n3's disk at 1.4 s
///   per fsync while a topic was created): a broker's next heartbeat
///   waited until the previous answer's records were published on the
///   broker, which created the new topic's log on the slow disk, so the
///   broker went silent for longer than its session and the controller
///   fenced it although both were up. Heartbeats no longer wait for the
///   broker's publishing (`metadata/lifecycle.rs`, `heartbeat`), as
///   Kafka's `BrokerLifecycleManager` does not.
///
/// With the held-commit trial (the followers' disks at more than a
/// session per fsync while the active controller keeps leading), seeds
/// that fail when the fix they guard is reverted:
/// - 2 and 26 (3 nodes), 50001 (5 nodes, split roles: broker n5 timed
///   out by the controller on n1): with the fencing check planned ahead of
///   the requests queued
///   when its timer fired (`controller/run.rs`:
///   `timer.into_iter().chain(request)`), the active controller fenced
///   brokers whose heartbeats were queued behind a commit of more than a
///   session (at seed 2, n3 fenced all three at 18.79 s, after a 1.8 s
///   commit), and those heartbeats unfenced them in the same batch: no
///   committed image shows it, the controller's count of session expiries
///   (`QuorumController::session_expiries`) does.
#[test]
fn seeds_that_found_bugs_pass() {
    if !deterministic() {
        return;
    }
    logs();
    let before = SimConfig {
        slow_nodes: false,
        reassignments: false,
        io_errors: false,
        consumer_groups: false,
        slow_disks: false,
        ..SimConfig::default()
    };
    let with_slow_nodes = SimConfig {
        reassignments: false,
        io_errors: false,
        consumer_groups: false,
        slow_disks: false,
        ..SimConfig::default()
    };
    // (Slow disks came after these seeds: off, they replay the schedules
    // that found the bugs.)
    let with_io_errors = SimConfig {
        consumer_groups: false,
        slow_disks: false,
        ..SimConfig::default()
    };
    let everything = SimConfig::default();
    let split = SimConfig {
        nodes: 5,
        split_roles: true,
        ..SimConfig::default()
    };
    let all_but_slow_disks = SimConfig {
        slow_disks: false,
        ..SimConfig::default()
    };
    let failed: Vec<String> = [
        (20, &before),
        (370, &before),
        (121, &before),
        (938, &before),
    ]
    .into_iter()
    .chain([(9, &with_slow_nodes), (3, &with_io_errors)])
    .chain([
        (380, &everything),
        (381, &everything),
        (1517, &everything),
        (570, &everything),
        (7223, &all_but_slow_disks),
        (7175, &everything),
        (8009, &everything),
        (2, &everything),
        (26, &everything),
    ])
    .chain([(51160, &split), (50001, &split)])
    .filter_map(|(seed, config)| run_seed(seed, config).err())
    .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
