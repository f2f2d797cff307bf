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
