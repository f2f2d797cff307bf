//! The conformance suite of the [`MetadataLog`] seam: what every
//! implementation (the single-voter log, the openraft quorum, the
//! in-memory test log) must do. Run it with [`run_conformance`] and a
//! [`LogFactory`] that opens the implementation under test.
//!
//! What it checks:
//! - **ordering**: appends resolve with consecutive offsets; a listener
//!   from the start sees every batch, in order, with its records and epoch;
//! - **all-or-nothing**: a refused append (over the limit, empty, at a
//!   wrong epoch) writes nothing and takes no offset;
//! - **commit before resolve**: when an append resolves, the high
//!   watermark is past it, and a new listener gets it without any further
//!   append;
//! - **snapshots**: after compaction, a listener from the start gets a
//!   snapshot first, and snapshot + later batches give the same image as
//!   the full history;
//! - **epochs never go back**: in every listener's stream and across a
//!   restart (a new epoch, above the old one; committed data survives);
//! - **idle listeners do not block appends**;
//! - **shutdown**: an append racing it commits or fails (never hangs);
//!   later appends and listeners end with [`LogError::Shutdown`]; a second
//!   shutdown returns.
//!
//! Every wait is bounded by a generous timeout, so a broken
//! implementation fails the suite instead of hanging it; nothing asserts
//! on timing.

use std::sync::Arc;
use std::time::Duration;

use sluice_metadata::record::ConfigRecord;
use sluice_metadata::{ConfigResourceType, MetadataDelta, MetadataImage, MetadataRecord};
use sluice_record::{LeaderEpoch, Offset};

use crate::log::*;

/// Opens the implementation under test.
pub trait LogFactory: Send {
    /// Opens the log: the first time, empty; after a [`LogFactory::open`]
    /// whose log was shut down, the same storage again (a restart).
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn MetadataLog>>;
    /// Waits until background work (snapshotting) of the open log is done.
    fn settle(&mut self) -> BoxFuture<'_, ()>;
    /// The most records one append may hold.
    fn max_records_per_append(&self) -> usize;
    /// `Some(n)`: the log compacts into a snapshot once `n` records
    /// committed (the suite appends more and then expects one).
    fn compacts_after(&self) -> Option<usize>;
    /// Whether [`LogFactory::open`] can reopen the same storage.
    fn restartable(&self) -> bool;
}

/// How long any single wait may take before the suite fails.
const PATIENCE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(v) => v,
        Err(_) => panic!("conformance: {what} did not finish"),
    }
}

/// A record that always replays: a cluster-wide broker config key.
pub fn config_record(i: usize) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Broker.id(),
        resource_name: String::new(),
        name: format!("key.{}", i % 97),
        value: Some(i.to_string()),
    })
}

fn records(from: usize, n: usize) -> Vec<MetadataRecord> {
    (from..from + n).map(config_record).collect()
}

/// What a listener delivered up to some offset.
#[derive(Default)]
pub struct Seen {
    pub snapshot: Option<MetadataImage>,
    pub batches: Vec<CommittedBatch>,
    pub leaders: Vec<LeaderAndEpoch>,
}

impl Seen {
    /// The image all of it builds.
    pub fn image(&self) -> MetadataImage {
        let base = self.snapshot.clone().unwrap_or_default();
        let mut delta = MetadataDelta::new(base);
        for b in &self.batches {
            for (i, r) in b.records.iter().enumerate() {
                delta
                    .replay(Offset(b.base_offset.0 + i as i64), b.epoch, r)
                    .expect("conformance: delivered records replay");
            }
        }
        delta.apply().0
    }
}

/// Pulls events until the listener has delivered offset `last`, checking
/// the order rules on the way.
pub async fn collect_until(listener: &mut dyn LogListener, last: Offset) -> Seen {
    let mut seen = Seen::default();
    let mut next: Option<Offset> = None;
    let mut epoch = LeaderEpoch(-1);
    while next.is_none_or(|n| n <= last) {
        let event = within("listener.next", listener.next()).await;
        match event.expect("conformance: listener failed") {
            LogEvent::Snapshot(image) => {
                let p = image.provenance();
                assert!(
                    next.is_none_or(|n| p.last_offset.0 + 1 >= n.0),
                    "snapshot goes back"
                );
                next = Some(Offset(p.last_offset.0 + 1));
                epoch = epoch.max(p.last_epoch);
                seen.batches.clear();
                seen.snapshot = Some(image);
            }
            LogEvent::Batch(b) => {
                assert!(!b.records.is_empty(), "empty batch delivered");
                if let Some(n) = next {
                    assert_eq!(b.base_offset, n, "batches must be consecutive");
                }
                assert!(
                    b.epoch >= epoch,
                    "epoch went back: {:?} after {:?}",
                    b.epoch,
                    epoch
                );
                epoch = b.epoch;
                next = Some(Offset(b.last_offset().0 + 1));
                seen.batches.push(b);
            }
            LogEvent::LeaderChange(l) => {
                assert!(l.epoch >= epoch, "leader epoch went back");
                epoch = l.epoch;
                seen.leaders.push(l);
            }
        }
    }
    seen
}

async fn append_ok(log: &dyn MetadataLog, recs: Vec<MetadataRecord>) -> Offset {
    let epoch = log.leader_and_epoch().epoch;
    within("append", log.append(epoch, recs))
        .await
        .expect("conformance: append refused")
}

/// Runs every check. Each opens the log afresh through `factory` where it
/// needs a restart; the suite leaves the log shut down.
pub async fn run_conformance(factory: &mut dyn LogFactory) {
    let log = factory.open().await;
    let base = log.quorum_info().high_watermark;
    ordering_and_commit(&*log, base).await;
    refused_appends_write_nothing(&*log, factory.max_records_per_append()).await;
    idle_listeners_do_not_block(&*log).await;
    if let Some(n) = factory.compacts_after() {
        drop(log);
        snapshots(factory, n).await;
    } else {
        drop(log);
    }
    if factory.restartable() {
        restart_keeps_data_and_raises_epoch(factory).await;
    }
    let log = factory.open().await;
    shutdown_ends_everything(&*log).await;
}

async fn ordering_and_commit(log: &dyn MetadataLog, base: Offset) {
    let a = append_ok(log, records(0, 1)).await;
    assert_eq!(a, base, "first offset is the high watermark");
    assert!(
        log.quorum_info().high_watermark.0 > a.0,
        "resolved before commit"
    );
    let b = append_ok(log, records(1, 3)).await;
    let c = append_ok(log, records(4, 2)).await;
    assert_eq!(
        (b.0, c.0),
        (a.0 + 3, a.0 + 5),
        "offsets are consecutive per record"
    );
    assert!(log.quorum_info().high_watermark.0 > c.0);
    // A listener started after the appends gets them with no further append.
    let mut l = log.listen();
    let seen = collect_until(&mut *l, c).await;
    let tail: Vec<_> = seen.batches.iter().rev().take(3).rev().collect();
    assert_eq!(tail.len(), 3);
    assert_eq!(tail[0].records, records(0, 1));
    assert_eq!(tail[1].records, records(1, 3));
    assert_eq!(tail[2].records, records(4, 2));
    let epoch = log.leader_and_epoch().epoch;
    assert!(
        tail.iter().all(|b| b.epoch == epoch),
        "batches carry the appending epoch"
    );
    assert!(seen
        .leaders
        .iter()
        .any(|l| l.epoch == epoch && l.leader == Some(log.node_id())));
}

async fn refused_appends_write_nothing(log: &dyn MetadataLog, max_records: usize) {
    let before = log.quorum_info().high_watermark;
    let epoch = log.leader_and_epoch().epoch;
    let too_many = records(0, max_records + 1);
    let r = within("append", log.append(epoch, too_many)).await;
    assert!(matches!(r, Err(LogError::TooLarge { .. })), "{r:?}");
    assert!(within("append", log.append(epoch, Vec::new()))
        .await
        .is_err());
    let stale = LeaderEpoch(epoch.0 - 1);
    let r = within("append", log.append(stale, records(0, 1))).await;
    assert!(matches!(r, Err(LogError::NotLeader(_))), "{r:?}");
    assert_eq!(
        log.quorum_info().high_watermark,
        before,
        "a refused append took offsets"
    );
    let next = append_ok(log, records(0, 1)).await;
    assert_eq!(next, before);
    let mut l = log.listen();
    let seen = collect_until(&mut *l, next).await;
    let last = seen.batches.last().unwrap();
    assert_eq!((last.base_offset, last.records.len()), (next, 1));
}

async fn idle_listeners_do_not_block(log: &dyn MetadataLog) {
    let _idle = log.listen();
    let mut last = Offset(-1);
    for i in 0..200 {
        last = append_ok(log, records(i, 2)).await;
    }
    let mut l = log.listen();
    collect_until(&mut *l, last).await;
}

async fn snapshots(factory: &mut dyn LogFactory, n: usize) {
    let log = factory.open().await;
    let start = log.quorum_info().high_watermark;
    // A listener that keeps up with every append: the full history.
    let mut full = log.listen();
    let mut history = Seen::default();
    let per = factory.max_records_per_append().clamp(1, 50);
    let mut last = Offset(-1);
    let mut i = 0;
    while i < n + per * 3 {
        last = append_ok(&*log, records(i, per)).await;
        let s = collect_until(&mut *full, last).await;
        if s.snapshot.is_some() {
            history = s;
        } else {
            history.batches.extend(s.batches);
        }
        i += per;
    }
    within("settle", factory.settle()).await;
    let mut fresh = log.listen();
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
        panic!("a listener from the start after compaction gets a snapshot first");
    };
    assert!(
        image.provenance().last_offset >= start,
        "no snapshot was taken of the records appended here"
    );
    // The snapshot may already hold the last append.
    let mut rest = if image.provenance().last_offset >= last {
        Seen::default()
    } else {
        collect_until(&mut *fresh, last).await
    };
    if rest.snapshot.is_none() {
        rest.snapshot = Some(image);
    }
    let want = history.image().canonical_bytes().unwrap();
    assert_eq!(
        rest.image().canonical_bytes().unwrap(),
        want,
        "snapshot + tail != history"
    );
    within("shutdown", log.shutdown()).await;
}

async fn restart_keeps_data_and_raises_epoch(factory: &mut dyn LogFactory) {
    let log = factory.open().await;
    let e1 = log.leader_and_epoch().epoch;
    let last = append_ok(&*log, records(7, 3)).await;
    let mut l = log.listen();
    let before = collect_until(&mut *l, last).await.image();
    within("shutdown", log.shutdown()).await;
    drop(l);
    drop(log);
    let log = factory.open().await;
    let e2 = log.leader_and_epoch().epoch;
    assert!(e2 > e1, "epoch after a restart {e2:?} is not above {e1:?}");
    assert!(
        log.quorum_info().high_watermark.0 > last.0,
        "committed data lost"
    );
    let mut l = log.listen();
    let after = collect_until(&mut *l, last).await;
    assert_eq!(
        after.image().canonical_bytes().unwrap(),
        before.canonical_bytes().unwrap()
    );
    let next = append_ok(&*log, records(0, 1)).await;
    assert_eq!(next, Offset(last.0 + 1));
    let seen = collect_until(&mut *l, next).await;
    // The log may have compacted past the listener meanwhile: then the
    // append arrives inside a snapshot.
    let last_epoch = match (seen.batches.last(), &seen.snapshot) {
        (Some(b), _) => b.epoch,
        (None, Some(s)) => s.provenance().last_epoch,
        (None, None) => panic!("conformance: the append was not delivered"),
    };
    assert_eq!(last_epoch, e2);
    within("shutdown", log.shutdown()).await;
}

async fn shutdown_ends_everything(log: &dyn MetadataLog) {
    let last = append_ok(log, records(0, 1)).await;
    let mut l = log.listen();
    collect_until(&mut *l, last).await;
    // An append in flight when the log shuts down commits or fails; it
    // never hangs.
    let epoch = log.leader_and_epoch().epoch;
    let (racing, ()) = within("append racing shutdown", async {
        tokio::join!(log.append(epoch, records(1, 2)), log.shutdown())
    })
    .await;
    assert!(
        matches!(
            racing,
            Ok(_) | Err(LogError::Shutdown | LogError::Uncertain)
        ),
        "{racing:?}"
    );
    within("second shutdown", log.shutdown()).await;
    let r = within("append", log.append(epoch, records(0, 1))).await;
    assert!(matches!(r, Err(LogError::Shutdown)), "{r:?}");
    // The listener ends (possibly after events it had not yet delivered).
    let ended = within("listener end", async {
        loop {
            match l.next().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        }
    })
    .await;
    assert!(matches!(ended, LogError::Shutdown), "{ended:?}");
}
