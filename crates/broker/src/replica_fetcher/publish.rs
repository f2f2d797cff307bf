//! What the partitions publisher asks of the fetchers on each metadata
//! change (Kafka's `ReplicaManager.applyDelta` for followers): partitions
//! this broker now leads, or no longer hosts, stop being fetched *before*
//! their role changes; partitions it follows are fetched from their leader's
//! inter-broker endpoint, at their log end offset, in the image's leader
//! epoch, *after* the role change. A partition without a leader (offline)
//! or whose leader has no such endpoint is not fetched.

use sluice_metadata::{BrokerId, LocalReplicaChanges, MetadataChanges, MetadataImage};
use sluice_record::Offset;
use sluice_storage::TopicPartition;

use super::manager::{InitialFetchState, LeaderEndpoint, ReplicaFetcherManager};

fn tp_of(p: &sluice_metadata::LocalPartition) -> TopicPartition {
    TopicPartition::new(p.topic.clone(), p.partition)
}

/// Before roles change: stop fetching what this broker leads or drops.
pub fn stop_fetchers(fetchers: &ReplicaFetcherManager, local: &LocalReplicaChanges) {
    let tps: Vec<TopicPartition> = local
        .leaders
        .iter()
        .chain(&local.deletes)
        .map(tp_of)
        .collect();
    if !tps.is_empty() {
        fetchers.remove_partitions(&tps);
    }
}

/// The endpoint of `broker` on the fetchers' listener, if registered.
pub fn endpoint(image: &MetadataImage, broker: BrokerId, listener: &str) -> Option<LeaderEndpoint> {
    let reg = image.broker(broker)?;
    let l = reg.listeners.iter().find(|l| l.name == listener)?;
    Some(LeaderEndpoint {
        id: broker,
        host: l.host.clone(),
        port: l.port,
    })
}

/// After roles change: follow what this broker follows; keep the broker
/// epoch and leader endpoints current. `log_end` gives a hosted partition's
/// log end offset (`None`: its log is not online, so it is not fetched).
pub fn start_fetchers(
    fetchers: &ReplicaFetcherManager,
    node: BrokerId,
    changes: &MetadataChanges,
    local: &LocalReplicaChanges,
    log_end: impl Fn(&TopicPartition) -> Option<Offset>,
) {
    let image = &changes.image;
    let listener = fetchers.config().listener_name.clone();
    if changes.brokers_changed.contains(&node) {
        if let Some(me) = image.broker(node) {
            fetchers.set_broker_epoch(me.epoch.0);
        }
    }
    for &b in &changes.brokers_changed {
        if b != node {
            if let Some(e) = endpoint(image, b, &listener) {
                fetchers.update_leader_endpoint(&e);
            }
        }
    }
    let mut unfetched = Vec::new();
    for p in &local.followers {
        let tp = tp_of(p);
        let reg = &p.registration;
        let leader = reg
            .has_leader()
            .then(|| endpoint(image, reg.leader, &listener))
            .flatten();
        let (Some(leader), Some(end)) = (leader, log_end(&tp)) else {
            if reg.has_leader() {
                tracing::warn!(partition = %tp, leader = reg.leader.0, %listener,
                    "cannot follow the partition: its leader has no endpoint on the inter-broker listener, or its log is offline");
            }
            unfetched.push(tp);
            continue;
        };
        fetchers.add_partitions(
            &leader,
            vec![InitialFetchState {
                tp,
                topic_id: p.topic_id,
                fetch_offset: end,
                leader_epoch: reg.leader_epoch,
            }],
        );
    }
    if !unfetched.is_empty() {
        fetchers.remove_partitions(&unfetched);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_metadata::record::{
        BrokerEndpoint, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, TopicRecord,
    };
    use sluice_metadata::{BrokerEpoch, MetadataDelta, MetadataRecord, PartitionEpoch};
    use sluice_record::LeaderEpoch;
    use uuid::Uuid;

    use super::*;
    use crate::replica_fetcher::{FollowerReplica, ReplicaFetcherConfig, ReplicaSource};

    const T: Uuid = Uuid::from_u128(0xabc);
    const ME: BrokerId = BrokerId(2);

    struct NoReplicas;
    impl ReplicaSource for NoReplicas {
        fn follower(&self, _: &TopicPartition) -> Option<Arc<dyn FollowerReplica>> {
            None
        }
    }

    fn register(id: i32, epoch: i64, port: u16) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: BrokerId(id),
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::from_u128(id as u128),
            broker_epoch: BrokerEpoch(epoch),
            end_points: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port,
                security_protocol: 0,
            }],
            features: Vec::new(),
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        })
    }

    fn partition(p: i32, leader: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            partition_id: p,
            topic_id: T,
            replicas: vec![BrokerId(1), BrokerId(2)],
            isr: vec![BrokerId(1), BrokerId(2)],
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader: BrokerId(leader),
            leader_recovery_state: 0,
            leader_epoch: LeaderEpoch(5),
            partition_epoch: PartitionEpoch(5),
            directories: Vec::new(),
            eligible_leader_replicas: None,
            last_known_elr: None,
        })
    }

    fn apply(base: &MetadataImage, records: &[MetadataRecord]) -> MetadataChanges {
        let mut delta = MetadataDelta::new(base.clone());
        let start = base.provenance().last_offset.0 + 1;
        for (i, r) in records.iter().enumerate() {
            delta
                .replay(Offset(start + i as i64), LeaderEpoch(1), r)
                .unwrap();
        }
        delta.apply().1
    }

    fn publish(m: &ReplicaFetcherManager, changes: &MetadataChanges) {
        let local = changes.local_changes(ME);
        stop_fetchers(m, &local);
        start_fetchers(m, ME, changes, &local, |_| Some(Offset(7)));
    }

    #[tokio::test]
    async fn followers_are_fetched_from_their_leader_and_leaders_are_not() {
        let m = ReplicaFetcherManager::new(
            ReplicaFetcherConfig {
                replica_id: ME.0,
                ..ReplicaFetcherConfig::default()
            },
            Arc::new(NoReplicas),
            Arc::new(sluice_transport::TcpConnector),
            tokio::runtime::Handle::current(),
        );
        let changes = apply(
            &MetadataImage::empty(),
            &[
                register(1, 10, 9001),
                register(2, 20, 9002),
                MetadataRecord::Topic(TopicRecord {
                    name: "t".into(),
                    topic_id: T,
                }),
                partition(0, 1),
                partition(1, 2),
                partition(2, -1),
            ],
        );
        publish(&m, &changes);
        let s = m
            .fetch_state(&TopicPartition::new("t", 0))
            .expect("followed");
        assert_eq!(
            (s.fetch_offset, s.leader_epoch, s.topic_id),
            (Offset(7), LeaderEpoch(5), T)
        );
        assert!(
            m.fetch_state(&TopicPartition::new("t", 1)).is_none(),
            "led here"
        );
        assert!(
            m.fetch_state(&TopicPartition::new("t", 2)).is_none(),
            "no leader"
        );
        assert_eq!(m.fetchers(), vec![(BrokerId(1), 0)]);

        // This broker is elected leader of t-0: it stops fetching it.
        let changes = apply(
            &changes.image,
            &[MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: 0,
                topic_id: T,
                isr: None,
                leader: ME,
                replicas: None,
                removing_replicas: None,
                adding_replicas: None,
                leader_recovery_state: -1,
                directories: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            })],
        );
        publish(&m, &changes);
        assert!(m.fetch_state(&TopicPartition::new("t", 0)).is_none());
        assert!(m.fetchers().is_empty());
        m.shutdown().await;
    }
}
