//! Measures what the `Arc<BTreeMap>` image costs at a given topic count:
//! replaying the creation log, applying a one-record delta, cloning an
//! image and encoding its canonical snapshot.
//!
//! cargo run --release -p sluice-metadata --example apply_cost -- 10000 3
//! (topics, partitions per topic)

use std::time::Instant;

use sluice_metadata::record::*;
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataDelta, MetadataImage, PartitionEpoch};
use sluice_record::{LeaderEpoch, Offset};
use uuid::Uuid;

/// Topic ids spread like random (v4) ones.
fn id(t: u128) -> Uuid {
    Uuid::from_u128((t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn main() {
    let topics: u128 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let per_topic: i32 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let mut log = Vec::new();
    for b in 0..3 {
        log.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: BrokerId(b),
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::from_u128(b as u128),
            broker_epoch: BrokerEpoch(b as i64),
            end_points: Vec::new(),
            features: Vec::new(),
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        }));
    }
    for t in 0..topics {
        let topic_id = id(t);
        log.push(MetadataRecord::Topic(TopicRecord {
            name: format!("topic-{t}"),
            topic_id,
        }));
        for p in 0..per_topic {
            let replicas: Vec<BrokerId> = (0..3).map(|i| BrokerId((p + i) % 3)).collect();
            log.push(MetadataRecord::Partition(PartitionRecord {
                partition_id: p,
                topic_id,
                isr: replicas.clone(),
                leader: replicas[0],
                replicas,
                removing_replicas: Vec::new(),
                adding_replicas: Vec::new(),
                leader_recovery_state: 0,
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                directories: Vec::new(),
                eligible_leader_replicas: None,
                last_known_elr: None,
            }));
        }
    }
    let encoded: Vec<Vec<u8>> = log.iter().map(|r| r.to_bytes().unwrap()).collect();
    let bytes: usize = encoded.iter().map(Vec::len).sum();

    let t0 = Instant::now();
    let mut delta = MetadataDelta::new(MetadataImage::empty());
    for (i, b) in encoded.iter().enumerate() {
        let r = MetadataRecord::decode(b).unwrap();
        delta.replay(Offset(i as i64), LeaderEpoch(1), &r).unwrap();
    }
    let image = delta.apply().0;
    let replay = t0.elapsed();

    let n = 1000;
    let t0 = Instant::now();
    let mut img = image.clone();
    for i in 0..n {
        let mut change = PartitionChangeRecord::new(id(i as u128 % topics), 0);
        change.isr = Some(vec![BrokerId(0), BrokerId(1)]);
        let mut d = MetadataDelta::new(img.clone());
        let offset = img.provenance().last_offset.plus(1);
        d.replay(
            offset,
            LeaderEpoch(1),
            &MetadataRecord::PartitionChange(change),
        )
        .unwrap();
        img = d.apply().0;
    }
    let apply_one = t0.elapsed() / n;

    let t0 = Instant::now();
    for _ in 0..n {
        std::hint::black_box(image.clone());
    }
    let clone = t0.elapsed() / n;

    let t0 = Instant::now();
    let canonical = image.canonical_bytes().unwrap();
    let snapshot = t0.elapsed();

    println!(
        "{topics} topics x {per_topic} partitions: log {} records / {bytes} bytes; replay+apply {:?}; \
         one-record delta apply {:?}; image clone {:?}; canonical bytes {} in {:?}",
        encoded.len(),
        replay,
        apply_one,
        clone,
        canonical.len(),
        snapshot
    );
}
