//! Transaction metrics (issue 19), named after Kafka's where it has one:
//!
//! | Sluice | Kafka |
//! |---|---|
//! | `sluice_last_stable_offset_lag{topic,partition}` | `Partition` `LastStableOffsetLag` |
//! | `sluice_open_transactions{topic,partition}` | — (the ongoing transactions of the partition's producer state) |
//! | `sluice_transactional_ids{state}` | — (the coordinator's ids, by state) |
//! | `sluice_transaction_verifications_total{outcome}` | — (KIP-890 questions asked or skipped; Kafka times them: `AddPartitionsToTxnManager` `VerificationTimeMs`) |
//!
//! The partition figures are of the partitions this broker leads: the
//! high watermark minus the last stable offset (what read_committed
//! consumers wait on), and the transactions open in the log. A partition
//! whose lag stays up while nothing is open is waiting for markers to
//! replicate; one with a transaction open for long may be hanging (see
//! `sluice transactions find-hanging`). The coordinator figure counts the
//! transactional ids of the `__transaction_state` partitions loaded here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::context::BrokerContext;

use super::label;

/// Appends the transaction metrics.
pub fn render(ctx: &BrokerContext, s: &mut String) {
    let mut led: Vec<(String, i32, i64, usize)> = ctx
        .replicas
        .partitions()
        .into_iter()
        .filter(|p| p.is_leader())
        .map(|p| {
            let tp = p.topic_partition();
            let lag = p.high_watermark().value() - p.last_stable_offset().value();
            (
                tp.topic.to_string(),
                tp.partition,
                lag.max(0),
                p.log().open_transactions(),
            )
        })
        .collect();
    led.sort();
    s.push_str("# HELP sluice_last_stable_offset_lag High watermark minus last stable offset of a partition led here (records read_committed consumers cannot read yet).\n# TYPE sluice_last_stable_offset_lag gauge\n");
    for (topic, partition, lag, _) in &led {
        let _ = writeln!(
            s,
            "sluice_last_stable_offset_lag{{topic=\"{}\",partition=\"{partition}\"}} {lag}",
            label(topic)
        );
    }
    s.push_str("# HELP sluice_open_transactions Transactions open in the log of a partition led here.\n# TYPE sluice_open_transactions gauge\n");
    for (topic, partition, _, open) in &led {
        let _ = writeln!(
            s,
            "sluice_open_transactions{{topic=\"{}\",partition=\"{partition}\"}} {open}",
            label(topic)
        );
    }
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    for p in ctx.txns.state().current() {
        for txn in p.all() {
            *by_state
                .entry(format!("{:?}", txn.lock().state))
                .or_default() += 1;
        }
    }
    let (asked, skipped) = ctx.txns.verification_counts();
    s.push_str("# HELP sluice_transaction_verifications_total Partitions this broker's leaders and group coordinator put to a transaction coordinator before a transactional write (KIP-890: verify or add), and those skipped because the producer's transaction was open in the partition already.\n# TYPE sluice_transaction_verifications_total counter\n");
    let _ = writeln!(
        s,
        "sluice_transaction_verifications_total{{outcome=\"asked\"}} {asked}"
    );
    let _ = writeln!(
        s,
        "sluice_transaction_verifications_total{{outcome=\"skipped\"}} {skipped}"
    );
    s.push_str("# HELP sluice_transactional_ids Transactional ids of the __transaction_state partitions loaded here, by state.\n# TYPE sluice_transactional_ids gauge\n");
    for (state, n) in &by_state {
        let _ = writeln!(s, "sluice_transactional_ids{{state=\"{state}\"}} {n}");
    }
}
