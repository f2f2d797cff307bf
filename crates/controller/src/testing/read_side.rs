//! The read side of the seam's conformance suite, for a node that follows
//! a log it cannot append to (an observer): run it with
//! [`run_read_side_conformance`] and a [`ReadSide`] giving a writer (the
//! leader) and the reader under test.
//!
//! What it checks:
//! - **refusal**: the reader's appends answer `NotLeader` at any epoch and
//!   write nothing;
//! - **same stream**: a reader's listener from the start delivers exactly
//!   the batches (offsets, epochs, records) a writer's listener delivers,
//!   and the leader changes in the same order;
//! - **leadership and high watermark**: the reader learns the writer's
//!   leader and epoch, and its high watermark reaches every committed
//!   append;
//! - **snapshots**: once the reader compacted, a new listener of the
//!   reader gets a snapshot first, and snapshot + tail give the image of
//!   the writer's full history;
//! - **shutdown**: the reader's listeners end and its appends answer
//!   `Shutdown`.

use std::sync::Arc;
use std::time::Duration;

use sluice_record::{LeaderEpoch, Offset};

use super::conformance::{collect_until, config_record, Seen};
use crate::log::*;

/// The writer and the reader under test.
pub trait ReadSide: Send {
    /// A log that leads (appends go there).
    fn writer(&mut self) -> BoxFuture<'_, Arc<dyn MetadataLog>>;
    /// The log under test.
    fn reader(&self) -> Arc<dyn MetadataLog>;
    /// Waits until the reader has compacted its log into a snapshot.
    fn settle_reader(&mut self) -> BoxFuture<'_, ()>;
    /// Records after which the reader compacts.
    fn compacts_after(&self) -> usize;
}

const PATIENCE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(v) => v,
        Err(_) => panic!("read-side conformance: {what} did not finish"),
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Runs every check; leaves the reader shut down.
pub async fn run_read_side_conformance(side: &mut dyn ReadSide) {
    let reader = side.reader();
    let writer = side.writer().await;
    assert_ne!(
        reader.node_id(),
        writer.node_id(),
        "the reader must not lead"
    );

    // Refusal.
    let hw = writer.quorum_info().high_watermark;
    for epoch in [
        writer.leader_and_epoch().epoch,
        reader.leader_and_epoch().epoch,
    ] {
        let r = within("append", reader.append(epoch, vec![config_record(0)])).await;
        assert!(matches!(r, Err(LogError::NotLeader(_))), "{r:?}");
    }
    assert_eq!(
        writer.quorum_info().high_watermark,
        hw,
        "a refused append took offsets"
    );

    // Same stream, leadership, high watermark.
    let mut last = Offset(-1);
    for i in 0..20 {
        let epoch = writer.leader_and_epoch().epoch;
        let recs = (i * 3..i * 3 + 1 + i % 3).map(config_record).collect();
        last = within("append", writer.append(epoch, recs))
            .await
            .expect("read-side conformance: append through the writer");
    }
    let mut wl = writer.listen();
    let mut rl = reader.listen();
    let w = collect_until(&mut *wl, last).await;
    let r = collect_until(&mut *rl, last).await;
    same_stream(&w, &r);
    let le = writer.leader_and_epoch();
    eventually("reader learns the leader", || {
        reader.leader_and_epoch() == le
    })
    .await;
    eventually("reader's high watermark", || {
        reader.quorum_info().high_watermark.0 > last.0
    })
    .await;
    assert!(
        r.snapshot.is_some() || r.leaders.contains(&le),
        "the reader's listener delivered the writer's leadership"
    );

    // Snapshots.
    let n = side.compacts_after();
    let mut history = w;
    let mut i = 0;
    while i < n * 2 {
        let epoch = writer.leader_and_epoch().epoch;
        last = within(
            "append",
            writer.append(epoch, (i..i + 10).map(config_record).collect()),
        )
        .await
        .expect("append");
        let s = collect_until(&mut *wl, last).await;
        if s.snapshot.is_some() {
            history = s;
        } else {
            history.batches.extend(s.batches);
        }
        i += 10;
    }
    within("settle", side.settle_reader()).await;
    let hw = |l: &Arc<dyn MetadataLog>| l.quorum_info().high_watermark.0;
    let caught_up = tokio::time::timeout(PATIENCE, async {
        while hw(&reader) <= last.0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "the reader's high watermark {} never passed {} (writer's: {})",
        hw(&reader),
        last.0,
        hw(&writer)
    );
    let mut fresh = reader.listen();
    let first = loop {
        match within("listener.next", fresh.next())
            .await
            .expect("listener")
        {
            LogEvent::LeaderChange(_) => continue,
            other => break other,
        }
    };
    let LogEvent::Snapshot(image) = first else {
        panic!("a reader's listener from the start after compaction gets a snapshot first");
    };
    // The snapshot may already hold the last append.
    let mut rest = if image.provenance().last_offset >= last {
        Seen::default()
    } else {
        collect_until(&mut *fresh, last).await
    };
    if rest.snapshot.is_none() {
        rest.snapshot = Some(image);
    }
    assert_eq!(
        rest.image().canonical_bytes().unwrap(),
        history.image().canonical_bytes().unwrap(),
        "reader's snapshot + tail != writer's history"
    );

    // Shutdown.
    within("shutdown", reader.shutdown()).await;
    let r = within(
        "append",
        reader.append(LeaderEpoch(le.epoch.0), vec![config_record(1)]),
    )
    .await;
    assert!(matches!(r, Err(LogError::Shutdown)), "{r:?}");
    let ended = within("listener end", async {
        loop {
            if let Err(e) = rl.next().await {
                break e;
            }
        }
    })
    .await;
    assert!(matches!(ended, LogError::Shutdown), "{ended:?}");
}

/// The reader delivered what the writer delivered: the same image, and
/// batch for batch after whichever snapshot either started from.
fn same_stream(w: &Seen, r: &Seen) {
    assert_eq!(
        r.image().canonical_bytes().unwrap(),
        w.image().canonical_bytes().unwrap(),
        "the reader's image differs"
    );
    let from = |s: &Seen| {
        s.snapshot
            .as_ref()
            .map_or(-1, |i| i.provenance().last_offset.0)
    };
    let start = from(w).max(from(r));
    let after = |s: &Seen| -> Vec<_> {
        s.batches
            .iter()
            .filter(|b| b.base_offset.0 > start)
            .map(|b| (b.base_offset, b.epoch, b.records.clone()))
            .collect()
    };
    assert_eq!(after(r), after(w), "the reader delivered other batches");
    if w.snapshot.is_none() && r.snapshot.is_none() {
        assert_eq!(w.leaders, r.leaders, "leader changes differ");
    }
}
