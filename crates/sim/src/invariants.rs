//! The invariants checked while a simulation runs, on the nodes' live
//! state (their `ReplicaManager`s and logs on the simulated disks):
//!
//! - **one leader per epoch**: no two nodes ever lead a partition in the
//!   same leader epoch;
//! - **high watermark within the log**: a replica's high watermark never
//!   passes its own log end;
//! - **committed batches never change**: below its high watermark, every
//!   replica holds the same batch at each offset as every other replica
//!   held there, now or earlier in the run (followers append the leader's
//!   batches byte for byte, so a batch is known by its offsets, leader
//!   epoch, size and CRC). Checked incrementally: each replica's log is
//!   read once from where the last check stopped (from its start again
//!   after the node restarts), so a run of any length costs the same per
//!   step. (Its reads warm the simulated page cache, as any reader's
//!   would, so the check's cadence is part of what a seed decides.)
//!
//! The workload's history is judged afterwards by `sluice_checker` (lost,
//! duplicated, inconsistent writes, ...), and [`converged`] checks that
//! after healing every replica holds the leader's committed log.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use sluice_broker::BrokerContext;
use sluice_storage::{Log, Offset};

use crate::node::NodeHandles;

/// A committed batch as every replica must hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchId {
    last_offset: i64,
    leader_epoch: i32,
    size: usize,
    crc: u32,
}

/// How far one replica's log has been checked.
struct Checked {
    /// The log object checked (a restart or re-creation makes a new one;
    /// a `Weak` keeps its address from being reused).
    log: Weak<Log>,
    /// Every batch below this offset was checked.
    next: Offset,
}

/// What the checks remember between steps.
#[derive(Default)]
pub struct Invariants {
    /// (partition, leader epoch) → the node that led it.
    leaders: BTreeMap<(String, i32), i32>,
    /// Partition → base offset → the committed batch there.
    committed: BTreeMap<String, BTreeMap<i64, (BatchId, i32)>>,
    /// (node, partition) → how far its replica was checked.
    checked: BTreeMap<(i32, String), Checked>,
}

/// The brokers running with every log directory online: one whose
/// directory failed serves nothing from it and halts at its next check
/// (`log_dir_failure`), so it counts as down, as a crashed one.
fn running(nodes: &[NodeHandles]) -> Vec<(i32, BrokerContext)> {
    nodes
        .iter()
        .filter_map(|n| Some((n.id, n.running.lock().as_ref()?.broker.clone()?)))
        .filter(|(_, ctx)| {
            ctx.logs
                .log_dirs()
                .iter()
                .all(|d| ctx.logs.offline_reason(d).is_none())
        })
        .collect()
}

/// The whole batches of `log` below `hw`, end to end.
pub fn committed_bytes(log: &Log, hw: Offset) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for_each_batch(log, log.log_start_offset(), hw, |_, bytes| {
        out.extend_from_slice(bytes)
    })?;
    Ok(out)
}

/// Every running replica of `tp`: high watermark, log end, leadership,
/// leader-epoch cache and the first batches' headers (for failures).
pub fn describe(nodes: &[NodeHandles], tp: &str) -> String {
    let mut out = String::new();
    for (id, ctx) in running(nodes) {
        for p in ctx.replicas.partitions() {
            if p.topic_partition().to_string() != tp {
                continue;
            }
            let log = p.log();
            out.push_str(&format!(
                "\n    n{id}: hw {} leo {} leader {} epoch {} epochs {:?}\n      batches:",
                p.high_watermark().0,
                log.log_end_offset().0,
                p.is_leader(),
                p.leader_epoch().0,
                log.epoch_entries()
                    .iter()
                    .map(|(e, o)| (e.0, o.0))
                    .collect::<Vec<_>>()
            ));
            let bytes = committed_bytes(log, log.log_end_offset()).unwrap_or_default();
            let mut shown = 0;
            // The last batches (where replicas differ, if they do).
            let mut starts = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let Ok(h) = sluice_record::BatchHeader::parse(&bytes[at..]) else {
                    break;
                };
                starts.push(at);
                at += h.size();
            }
            let skip = starts.len().saturating_sub(12);
            let mut pos = starts.get(skip).copied().unwrap_or(0);
            while pos < bytes.len() && shown < 12 {
                let Ok(h) = sluice_record::BatchHeader::parse(&bytes[pos..]) else {
                    break;
                };
                out.push_str(&format!(
                    " [{}..={} e{} p{} s{}]",
                    h.base_offset.0,
                    h.last_offset().0,
                    h.partition_leader_epoch.0,
                    h.producer_id.0,
                    h.base_sequence
                ));
                pos += h.size();
                shown += 1;
            }
        }
    }
    out
}

impl Invariants {
    /// The cheap checks, after every step.
    pub fn check_step(&mut self, nodes: &[NodeHandles]) -> Result<(), String> {
        for (id, ctx) in running(nodes) {
            for p in ctx.replicas.partitions() {
                let tp = p.topic_partition().to_string();
                let hw = p.high_watermark();
                let leo = p.log().log_end_offset();
                if hw > leo {
                    return Err(format!(
                        "n{id}: the high watermark {} of {tp} is past its log end {}",
                        hw.0, leo.0
                    ));
                }
                if p.is_leader() {
                    let epoch = p.leader_epoch().0;
                    let first = *self.leaders.entry((tp.clone(), epoch)).or_insert(id);
                    if first != id {
                        return Err(format!(
                            "two leaders of {tp} in leader epoch {epoch}: n{first} and n{id}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The committed-batch check: reads each replica's log from where the
    /// last check stopped up to its high watermark.
    pub fn check_committed(&mut self, nodes: &[NodeHandles]) -> Result<(), String> {
        for (id, ctx) in running(nodes) {
            for p in ctx.replicas.partitions() {
                let tp = p.topic_partition().to_string();
                let log = p.log().clone();
                let hw = p.high_watermark();
                let from = match self.checked.get(&(id, tp.clone())) {
                    Some(c) if std::ptr::eq(c.log.as_ptr(), Arc::as_ptr(&log)) => {
                        // Never truncated below what was committed; if so,
                        // what it holds there again is compared anew.
                        c.next.min(log.log_end_offset())
                    }
                    _ => log.log_start_offset(),
                };
                if from >= hw {
                    continue;
                }
                let seen = self.committed.entry(tp.clone()).or_default();
                let mut conflict = None;
                let next = for_each_batch(&log, from, hw, |h, _| {
                    let batch = BatchId {
                        last_offset: h.last_offset().0,
                        leader_epoch: h.partition_leader_epoch.0,
                        size: h.size(),
                        crc: h.crc,
                    };
                    match seen.get(&h.base_offset.0) {
                        Some((known, by)) if *known != batch && conflict.is_none() => {
                            conflict = Some(format!(
                                "the committed batch of {tp} at offset {} differs: n{by} held {known:?}, n{id} holds {batch:?}",
                                h.base_offset.0
                            ));
                        }
                        Some(_) => {}
                        None => {
                            seen.insert(h.base_offset.0, (batch, id));
                        }
                    }
                })?;
                if let Some(c) = conflict {
                    return Err(format!("{c}:{}", describe(nodes, &tp)));
                }
                self.checked.insert(
                    (id, tp),
                    Checked {
                        log: Arc::downgrade(&log),
                        next,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Calls `each` with the header and bytes of every whole batch of `log`
/// from `from` (a batch boundary) below `hw`, checking each one's CRC;
/// returns the offset after the last.
fn for_each_batch(
    log: &Log,
    from: Offset,
    hw: Offset,
    mut each: impl FnMut(&sluice_record::BatchHeader, &[u8]),
) -> Result<Offset, String> {
    let mut at = from;
    while at < hw {
        let Some(slice) = log
            .read(at, 1 << 20, Some(hw), true)
            .map_err(|e| format!("reading {} at {}: {e}", log.topic_partition(), at.0))?
        else {
            break;
        };
        let bytes = slice
            .read_to_vec()
            .map_err(|e| format!("reading {}: {e}", log.topic_partition()))?;
        let mut pos = 0;
        let mut next = at;
        while pos < bytes.len() {
            let header = sluice_record::BatchHeader::validate_stored(&bytes[pos..])
                .map_err(|e| format!("a stored batch of {}: {e}", log.topic_partition()))?;
            each(&header, &bytes[pos..pos + header.size()]);
            next = header.next_offset();
            pos += header.size();
        }
        if next <= at {
            return Err(format!(
                "{} made no progress reading at {}",
                log.topic_partition(),
                at.0
            ));
        }
        at = next;
    }
    Ok(at)
}

/// After healing: whether every node runs, and every broker with its log
/// directories online (one whose directory failed must have halted, and
/// restarted since).
pub fn all_up(nodes: &[NodeHandles]) -> Result<(), String> {
    for n in nodes {
        let r = n.running.lock();
        let Some(r) = r.as_ref() else {
            return Err(format!("n{} is not running", n.id));
        };
        if let Some(ctx) = &r.broker {
            for d in ctx.logs.log_dirs() {
                if let Some(why) = ctx.logs.offline_reason(&d) {
                    return Err(format!(
                        "n{}'s log directory {} is offline: {why}",
                        n.id,
                        d.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The partitions of `topic` without a leader in the active controller's
/// image (empty when no controller is active: nothing to judge by).
pub fn leaderless(nodes: &[NodeHandles], topic: &str) -> Vec<i32> {
    for n in nodes {
        let r = n.running.lock();
        let Some(c) = r.as_ref().and_then(|r| r.controller.as_ref()) else {
            continue;
        };
        if !c.is_active() {
            continue;
        }
        let image = c.image();
        let Some(t) = image.topic(topic) else {
            return Vec::new();
        };
        return t
            .partitions()
            .iter()
            .filter(|(_, reg)| !reg.has_leader())
            .map(|(p, _)| *p)
            .collect();
    }
    Vec::new()
}

/// After healing: whether every running replica of every partition has
/// the same high watermark and the same log up to it (`Err` names the
/// first difference).
pub fn converged(nodes: &[NodeHandles]) -> Result<(), String> {
    let mut by_tp: BTreeMap<String, Vec<(i32, Offset, Vec<u8>)>> = BTreeMap::new();
    for (id, ctx) in running(nodes) {
        for p in ctx.replicas.partitions() {
            let hw = p.high_watermark();
            let bytes = committed_bytes(p.log(), hw)?;
            by_tp
                .entry(p.topic_partition().to_string())
                .or_default()
                .push((id, hw, bytes));
        }
    }
    for (tp, replicas) in by_tp {
        let (first, hw, bytes) = &replicas[0];
        for (id, h, b) in &replicas[1..] {
            if h != hw || b != bytes {
                return Err(format!(
                    "{tp}: n{id} (high watermark {}, {} bytes) and n{first} ({}, {} bytes) differ:{}",
                    h.0,
                    b.len(),
                    hw.0,
                    bytes.len(),
                    describe(nodes, &tp)
                ));
            }
        }
    }
    Ok(())
}
