//! Property test of the leader-epoch cache as replication uses it: a leader
//! log goes through random appends (epochs rising), truncations followed by
//! a new epoch (a leader change that replaced uncommitted data), log-start
//! moves and restarts (clean, or a power cut); a follower catches up after
//! each step the way a replica fetcher does (KIP-101/279: its latest epoch
//! sent to the leader's `end_offset_for_epoch`, truncation to the answer,
//! then `append_as_follower` of the leader's bytes, or a full truncation
//! when it fell below the leader's log start). Checked after every step:
//! - every batch of each log lies in the epoch its cache says its offset
//!   has (the cache describes the log);
//! - the follower holds exactly the leader's bytes from its own log start.

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use sluice_record::{BatchBuilder, Batches, CompressionType, LeaderEpoch, Offset, Timestamp};
use sluice_storage::{
    Log, LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs, TopicPartition,
};

const NOW: i64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Append {
        bump: bool,
        records: usize,
    },
    /// Truncate the leader to this fraction of its log (per mille).
    Truncate(u16),
    DeleteRecords(u16),
    Restart {
        crash: bool,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 1usize..6).prop_map(|(bump, records)| Op::Append { bump, records }),
        2 => (0u16..1000).prop_map(Op::Truncate),
        1 => (0u16..1000).prop_map(Op::DeleteRecords),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(crash, seed)| Op::Restart { crash, seed }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 128,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

fn manager(fs: &SimFs, clock: &Arc<ManualClock>, dir: &str) -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from(dir)],
            ..Default::default()
        },
        Arc::new(fs.clone()),
        clock.clone(),
    )
    .unwrap()
}

fn tp() -> TopicPartition {
    TopicPartition::new("p", 0)
}

/// `(base, last, epoch, bytes)` of every batch from the log start.
fn batches(log: &Log) -> Vec<(i64, i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_to_vec(at, 1 << 20).unwrap();
        assert!(!bytes.is_empty(), "no progress at {at}");
        for r in Batches::new(&bytes) {
            let (pos, h) = r.unwrap();
            out.push((
                h.base_offset.0,
                h.last_offset().0,
                h.partition_leader_epoch.0,
                bytes[pos..pos + h.size()].to_vec(),
            ));
            at = h.next_offset();
        }
    }
    out
}

/// Every batch's offsets lie in the epoch the cache gives them.
fn check_cache_describes_log(log: &Log, who: &str) -> Result<(), TestCaseError> {
    let entries = log.epoch_entries();
    let ls = log.log_start_offset().0;
    for (base, _, epoch, _) in batches(log) {
        let at = base.max(ls);
        let cached = entries
            .iter()
            .rev()
            .find(|(_, start)| start.0 <= at)
            .map(|(e, _)| e.0);
        prop_assert_eq!(
            cached,
            Some(epoch),
            "{} batch at {} entries {:?}",
            who,
            base,
            &entries
        );
    }
    Ok(())
}

/// One round of a replica fetcher against `leader`.
fn catch_up(leader: &Log, follower: &Log) {
    // Divergence (KIP-279): truncate to where the leader says our latest
    // epoch ends, until the epochs agree.
    while let Some(epoch) = follower.latest_epoch() {
        let leo = follower.log_end_offset();
        match leader.end_offset_for_epoch(epoch) {
            Some((e, end)) if e == epoch && end >= leo => break,
            Some((_, end)) if end < leo => follower.truncate_to(end).unwrap(),
            Some(_) => break,
            None => follower.truncate_to(Offset(0)).unwrap(),
        }
        if follower.log_end_offset() == leo {
            break;
        }
    }
    if follower.log_end_offset() < leader.log_start_offset()
        || follower.log_end_offset() > leader.log_end_offset()
    {
        follower
            .truncate_fully_and_start_at(leader.log_start_offset())
            .unwrap();
    }
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = leader
            .read_to_vec(follower.log_end_offset(), 1 << 20)
            .unwrap();
        let first = Batches::new(&bytes).next().unwrap().unwrap().1;
        if first.base_offset < follower.log_end_offset() {
            // The leader's log start lies inside this batch (Kafka's
            // UnexpectedAppendOffset handling): start there.
            follower
                .truncate_fully_and_start_at(first.base_offset)
                .unwrap();
        }
        follower.append_as_follower(&bytes).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn follower_tracks_leader_through_epochs(ops in proptest::collection::vec(op(), 1..40)) {
        // One file system per node: a power cut hits the leader only.
        let (fs, follower_fs) = (SimFs::new(), SimFs::new());
        let clock = Arc::new(ManualClock::new(NOW));
        let mut lm = manager(&fs, &clock, "/leader");
        let fm = manager(&follower_fs, &clock, "/follower");
        let mut leader = lm.get_or_create_log(&tp(), config()).unwrap();
        let follower = fm.get_or_create_log(&tp(), config()).unwrap();
        let mut epoch = 0;
        let mut seed = 0usize;
        let mut must_bump = false;
        for op in &ops {
            match *op {
                Op::Append { bump, records } => {
                    if bump || must_bump {
                        epoch += 1;
                        must_bump = false;
                        leader
                            .assign_epoch_start_offset(LeaderEpoch(epoch), leader.log_end_offset())
                            .unwrap();
                    }
                    let mut b = BatchBuilder::new(CompressionType::None);
                    for i in 0..records {
                        seed += 1;
                        let v = format!("record-{seed}-{i}");
                        b.append(Timestamp(NOW), None, Some(v.as_bytes()), &[]).unwrap();
                    }
                    leader.append_as_leader(&mut b.build().unwrap(), LeaderEpoch(epoch)).unwrap();
                }
                Op::Truncate(f) => {
                    let (ls, le) = (leader.log_start_offset().0, leader.log_end_offset().0);
                    leader.truncate_to(Offset(ls + (le - ls) * i64::from(f) / 1000)).unwrap();
                    must_bump = true;
                }
                Op::DeleteRecords(f) => {
                    let (ls, le) = (leader.log_start_offset().0, leader.log_end_offset().0);
                    leader.delete_records_before(Offset(ls + (le - ls) * i64::from(f) / 1000)).unwrap();
                }
                Op::Restart { crash, seed } => {
                    drop(leader);
                    if crash {
                        drop(lm);
                        fs.crash(seed);
                    } else {
                        lm.shutdown().unwrap();
                        drop(lm);
                    }
                    lm = manager(&fs, &clock, "/leader");
                    leader = lm.get_or_create_log(&tp(), config()).unwrap();
                    // A crash may have lost the tail: the next leader term
                    // has a new epoch, as after a real failover.
                    must_bump = true;
                }
            }
            check_cache_describes_log(&leader, "leader")?;
            catch_up(&leader, &follower);
            check_cache_describes_log(&follower, "follower")?;
            let common = leader.log_start_offset().max(follower.log_start_offset()).0;
            let from = |log: &Log| -> Vec<(i64, i64, i32, Vec<u8>)> {
                batches(log).into_iter().filter(|b| b.1 >= common).collect()
            };
            let (l, f) = (from(&leader), from(&follower));
            prop_assert_eq!(l.len(), f.len(), "batch count after {:?}", op);
            for (a, b) in l.iter().zip(&f) {
                prop_assert_eq!(a, b, "batch differs after {:?}", op);
            }
            prop_assert_eq!(leader.log_end_offset(), follower.log_end_offset());
        }
    }
}
