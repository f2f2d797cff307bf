//! Replication metrics (issue 17), named after Kafka's:
//!
//! | Sluice | Kafka |
//! |---|---|
//! | `sluice_under_replicated_partitions` | `ReplicaManager` `UnderReplicatedPartitions` |
//! | `sluice_under_min_isr_partitions` | `ReplicaManager` `UnderMinIsrPartitionCount` |
//! | `sluice_at_min_isr_partitions` | `ReplicaManager` `AtMinIsrPartitionCount` |
//! | `sluice_isr_shrinks_total`, `sluice_isr_expands_total` | `ReplicaManager` `IsrShrinksPerSec`, `IsrExpandsPerSec` |
//! | `sluice_replica_fetcher_lag{topic,partition}` | `FetcherLagMetrics` `ConsumerLag` |
//! | `sluice_replica_fetcher_max_lag` | `ReplicaFetcherManager` `MaxLag` |
//! | `sluice_active_controller` | `KafkaController` `ActiveControllerCount` |
//! | `sluice_offline_partitions` | `KafkaController` `OfflinePartitionsCount` |
//! | `sluice_preferred_replica_imbalance` | `KafkaController` `PreferredReplicaImbalanceCount` |
//!
//! The partition counts are of the partitions this broker leads, from the
//! leader's own replication state (the committed ISR), as Kafka's
//! `Partition.isUnderReplicated`/`isUnderMinIsr`/`isAtMinIsr`; minimum ISR
//! is the topic's `min.insync.replicas` capped at the replication factor.
//! The ISR counters count changes the controller committed for partitions
//! led here (a change that adds and removes members counts as both).
//! Follower lag is the leader's high watermark minus the next offset this
//! broker fetches, as of the last answer (Kafka's rule). The controller
//! figures come from the committed metadata image and are non-zero only
//! on the active controller, as Kafka reports them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_metadata::BrokerId;

use crate::context::BrokerContext;

static ISR_SHRINKS: AtomicU64 = AtomicU64::new(0);
static ISR_EXPANDS: AtomicU64 = AtomicU64::new(0);

/// A partition led here committed the ISR change from `before` to `after`.
pub fn isr_updated(before: &[BrokerId], after: impl IntoIterator<Item = BrokerId>) {
    let after: Vec<BrokerId> = after.into_iter().collect();
    let (shrunk, expanded) = isr_change(before, &after);
    if expanded {
        ISR_EXPANDS.fetch_add(1, Ordering::Relaxed);
    }
    if shrunk {
        ISR_SHRINKS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether going from `before` to `after` removed members, added members.
fn isr_change(before: &[BrokerId], after: &[BrokerId]) -> (bool, bool) {
    (
        before.iter().any(|b| !after.contains(b)),
        after.iter().any(|b| !before.contains(b)),
    )
}

/// The leader-side partition counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct LeaderCounts {
    under_replicated: u64,
    under_min_isr: u64,
    at_min_isr: u64,
}

fn leader_counts(ctx: &BrokerContext) -> LeaderCounts {
    let mut c = LeaderCounts::default();
    for p in ctx.replicas.partitions() {
        if !p.is_leader() {
            continue;
        }
        let Some(st) = p.leader_state() else {
            continue;
        };
        let isr = st.isr().len();
        if isr < st.replicas().len() {
            c.under_replicated += 1;
        }
        let min = st.effective_min_isr();
        if isr < min {
            c.under_min_isr += 1;
        } else if isr == min {
            c.at_min_isr += 1;
        }
    }
    c
}

fn gauge(s: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        s,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Appends the replication metrics.
pub fn render(ctx: &BrokerContext, s: &mut String) {
    let c = leader_counts(ctx);
    gauge(s, "sluice_under_replicated_partitions",
        "Partitions led by this broker whose ISR is smaller than their replica set (Kafka's UnderReplicatedPartitions).",
        "gauge", c.under_replicated);
    gauge(s, "sluice_under_min_isr_partitions",
        "Partitions led by this broker whose ISR is smaller than min.insync.replicas capped at the replication factor (Kafka's UnderMinIsrPartitionCount).",
        "gauge", c.under_min_isr);
    gauge(s, "sluice_at_min_isr_partitions",
        "Partitions led by this broker whose ISR is exactly min.insync.replicas capped at the replication factor (Kafka's AtMinIsrPartitionCount).",
        "gauge", c.at_min_isr);
    gauge(s, "sluice_isr_shrinks_total",
        "ISR changes committed for partitions led by this broker that removed members (Kafka's IsrShrinksPerSec).",
        "counter", ISR_SHRINKS.load(Ordering::Relaxed));
    gauge(s, "sluice_isr_expands_total",
        "ISR changes committed for partitions led by this broker that added members (Kafka's IsrExpandsPerSec).",
        "counter", ISR_EXPANDS.load(Ordering::Relaxed));
    let mut lags = ctx.fetchers.lags();
    lags.sort_by(|a, b| (&a.0.topic, a.0.partition).cmp(&(&b.0.topic, b.0.partition)));
    s.push_str("# HELP sluice_replica_fetcher_lag Records between the leader's high watermark and the next offset this broker fetches, per followed partition, as of the last fetch answer (Kafka's FetcherLagMetrics ConsumerLag).\n# TYPE sluice_replica_fetcher_lag gauge\n");
    for (tp, leader, lag) in &lags {
        let _ = writeln!(
            s,
            "sluice_replica_fetcher_lag{{topic=\"{}\",partition=\"{}\",leader=\"{}\"}} {lag}",
            super::label(&tp.topic),
            tp.partition,
            leader.0
        );
    }
    let max = lags.iter().map(|l| l.2).max().unwrap_or(0);
    gauge(s, "sluice_replica_fetcher_max_lag",
        "The largest sluice_replica_fetcher_lag of this broker's replica fetchers (Kafka's ReplicaFetcherManager MaxLag).",
        "gauge", max);
    render_controller(ctx, s);
}

/// The active controller's figures from the committed image.
fn render_controller(ctx: &BrokerContext, s: &mut String) {
    let node = ctx.image.node();
    let active = ctx.metadata.quorum_info().leader.leader == Some(node);
    let (mut offline, mut imbalanced) = (0u64, 0u64);
    if active {
        let image = ctx.image.image();
        for t in image.topics() {
            for reg in t.partitions().values() {
                if !reg.has_leader() {
                    offline += 1;
                }
                if reg.replicas.first() != Some(&reg.leader) {
                    imbalanced += 1;
                }
            }
        }
    }
    gauge(s, "sluice_active_controller",
        "1 on the active controller of the metadata quorum, else 0 (Kafka's ActiveControllerCount).",
        "gauge", u8::from(active));
    gauge(s, "sluice_offline_partitions",
        "Partitions without a leader, counted by the active controller (0 elsewhere; Kafka's OfflinePartitionsCount).",
        "gauge", offline);
    gauge(s, "sluice_preferred_replica_imbalance",
        "Partitions not led by their preferred replica, counted by the active controller (0 elsewhere; Kafka's PreferredReplicaImbalanceCount).",
        "gauge", imbalanced);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().map(|&i| BrokerId(i)).collect()
    }

    #[test]
    fn isr_changes_count_as_shrinks_and_expands() {
        assert_eq!(isr_change(&b(&[1, 2, 3]), &b(&[1, 3])), (true, false));
        assert_eq!(isr_change(&b(&[1, 3]), &b(&[1, 3, 2])), (false, true));
        assert_eq!(isr_change(&b(&[1, 3]), &b(&[1, 2])), (true, true));
        assert_eq!(isr_change(&b(&[1, 2]), &b(&[2, 1])), (false, false));
    }
}
