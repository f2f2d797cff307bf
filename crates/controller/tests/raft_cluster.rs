//! A 3-voter metadata quorum on loopback TCP in one process: elect,
//! append, kill the leader, elect again, restart it, and check that no
//! committed batch was lost and every node saw the same batches and built
//! a byte-identical image.

use std::time::Duration;

use sluice_controller::raft::local::{fold, LocalCluster};
use sluice_controller::raft::RaftConfig;
use sluice_controller::{LogError, LogEvent, MetadataLog};
use sluice_metadata::record::FeatureLevelRecord;
use sluice_metadata::{MetadataImage, MetadataRecord};

const PATIENCE: Duration = Duration::from_secs(60);

fn records(batch: usize, n: usize) -> Vec<MetadataRecord> {
    (0..n)
        .map(|i| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: format!("feature.{batch}.{i}"),
                feature_level: 1 + (i % 7) as i16,
            })
        })
        .collect()
}

fn small_snapshots(c: &mut RaftConfig) {
    c.snapshot_every_entries = 16;
}

fn batches(events: &[LogEvent]) -> Vec<(i64, i32, Vec<MetadataRecord>)> {
    events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Batch(b) => Some((b.base_offset.0, b.epoch.0, b.records.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_survive_the_loss_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(3, dir.path().to_path_buf(), small_snapshots)
        .await
        .unwrap();
    let (first, epoch) = c.wait_leader(None, PATIENCE).await.expect("a first leader");

    // Appends only on the leader at its epoch.
    let follower = c.nodes.keys().copied().find(|&id| id != first).unwrap();
    match c.nodes[&follower].log.append(epoch, records(0, 1)).await {
        // (The follower may not have heard from the new leader yet.)
        Err(LogError::NotLeader(le)) => assert!(le.leader.is_none() || le.leader == Some(first)),
        other => panic!("a follower appended: {other:?}"),
    }
    let stale = sluice_record::LeaderEpoch(epoch.0 - 1);
    assert!(matches!(
        c.nodes[&first].log.append(stale, records(0, 1)).await,
        Err(LogError::NotLeader(_))
    ));

    let mut acked = Vec::new();
    for b in 0..30 {
        let last = c.append(records(b, 1 + b % 4), PATIENCE).await.unwrap();
        acked.push((b, last.0));
    }
    c.kill(first).await;
    let (second, epoch2) = c
        .wait_leader(Some(first), PATIENCE)
        .await
        .expect("a new leader");
    assert_ne!(second, first);
    assert!(epoch2 > epoch);
    // The new leader stood only after its election timeout without
    // hearing the old one (the controller counts that time against the
    // brokers' fresh sessions); a follower hears the new leader.
    let silence = c.nodes[&second].log.since_leader_contact();
    assert!(
        silence.is_some_and(|d| d >= Duration::from_millis(300)),
        "{silence:?}"
    );
    for b in 30..60 {
        let last = c.append(records(b, 1 + b % 4), PATIENCE).await.unwrap();
        acked.push((b, last.0));
    }
    c.restart(first).await.unwrap();
    let last = acked.last().unwrap().1;
    assert!(c.wait_seen(last, PATIENCE).await, "every node catches up");

    // Nothing committed is lost: every acknowledged batch is in every
    // node's image, at the offsets its append returned.
    let images: Vec<_> = c
        .nodes
        .values()
        .map(|n| n.seen.lock().image.clone().unwrap())
        .collect();
    for (b, last) in &acked {
        let n = 1 + b % 4;
        for img in &images {
            for i in 0..n {
                let name = format!("feature.{b}.{i}");
                let level = img.features().get(&name).copied();
                assert_eq!(
                    level,
                    Some(1 + (i % 7) as i16),
                    "{name} (batch ending at {last})"
                );
            }
        }
    }
    let bytes: Vec<_> = images
        .iter()
        .map(|i| i.canonical_bytes().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] == w[1]), "images differ");

    // The two voters that ran throughout saw the same batches (the
    // restarted one may start from a snapshot).
    let runs: Vec<_> = c
        .nodes
        .iter()
        .filter(|(&id, _)| id != first)
        .map(|(_, n)| batches(&n.seen.lock().events))
        .collect();
    assert_eq!(runs[0], runs[1]);
    let offsets: Vec<i64> = runs[0].iter().map(|b| b.0).collect();
    let mut next = 0;
    for (base, _, recs) in &runs[0] {
        assert_eq!(*base, next, "offsets are consecutive");
        next += recs.len() as i64;
    }
    assert_eq!(next - 1, last, "offsets: {offsets:?}");

    // A fresh listener on the restarted node rebuilds the same image.
    let mut l = c.nodes[&first].log.listen();
    let mut image = MetadataImage::empty();
    while image.provenance().last_offset.0 < last {
        let ev = tokio::time::timeout(PATIENCE, l.next())
            .await
            .unwrap()
            .unwrap();
        image = fold(image, &ev);
    }
    assert_eq!(image.canonical_bytes().unwrap(), bytes[0]);

    // Listeners learned each leader in log order, before its batches.
    for (&id, n) in c.nodes.iter().filter(|(&id, _)| id != first) {
        let events = &n.seen.lock().events;
        let change = events.iter().position(|e| {
            matches!(e, LogEvent::LeaderChange(le) if le.leader == Some(second) && le.epoch == epoch2)
        });
        let change =
            change.unwrap_or_else(|| panic!("node {} missed the change to {second:?}", id.0));
        let first_batch = events
            .iter()
            .position(|e| matches!(e, LogEvent::Batch(b) if b.epoch == epoch2));
        assert!(first_batch.is_none_or(|b| b > change));
    }

    // The leader's view of the quorum: every voter caught up, heard from.
    let (leader, _) = c.leader().unwrap();
    let start = std::time::Instant::now();
    let info = loop {
        let info = c.nodes[&leader].log.quorum_info();
        let caught_up = info.voters.iter().all(|v| v.log_end_offset.0 == last + 1);
        if caught_up || start.elapsed() > PATIENCE {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(info.voters.len(), 3);
    assert_eq!(info.high_watermark.0, last + 1);
    for v in &info.voters {
        assert_eq!(v.log_end_offset.0, last + 1, "{info:?}");
        assert!(
            v.last_fetch_timestamp_ms > 0 && v.last_caught_up_timestamp_ms > 0,
            "{info:?}"
        );
    }
    let follower = c.nodes.keys().copied().find(|&id| id != leader).unwrap();
    assert!(c.nodes[&follower].log.quorum_info().voters.is_empty());
    c.shutdown().await;
}
