//! Brokers that just left: a broker fenced (its session expired, or it
//! shut down under control) stays in Metadata's broker list for
//! [`DEPARTURE_LINGER_MS`] after this broker published the fence. It leads
//! nothing and is in no ISR by then; only the list keeps it a moment.
//!
//! Why, and where Sluice differs from Kafka: Kafka drops a fenced broker
//! from Metadata in the same image that moves its leaderships away, so a
//! client's first answer after the failover both names the new leaders and
//! leaves the old broker out. librdkafka (2.x) then decommissions the old
//! broker while its partitions are migrating off it, forgets the new
//! leader it has just learned ("Reverting ... to leader -1"), and finds it
//! again only at its next one-second scan of unavailable partitions: a
//! second on every leader failover, on Kafka as on Sluice (seen with
//! `SLUICE_BENCH_RDKAFKA_DEBUG`). Listing the departed broker a little
//! longer lets that first answer move the partitions; the broker leaves
//! the client's list at a later refresh, with nothing on it. Two seconds
//! cover librdkafka's one-second scan with a second to spare. DescribeCluster
//! and everything that decides (elections, ISR, placement) see the fence
//! at once: this is only what Metadata lists.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use sluice_metadata::{BrokerId, MetadataImage};

/// How long a fenced broker stays in Metadata's broker list.
pub const DEPARTURE_LINGER_MS: i64 = 2_000;

/// Bounds the table: one entry per broker the image knows, and never more
/// than this (a cluster fencing more brokers at once lists the newest).
const MAX_DEPARTURES: usize = 1_024;

/// When each recently fenced broker was seen fenced (ms, the broker's
/// clock).
#[derive(Debug, Default)]
pub struct Departures {
    fenced_at: Mutex<BTreeMap<BrokerId, i64>>,
}

impl Departures {
    /// Notes the brokers `next` fences that `previous` had unfenced (at
    /// `now_ms`), and forgets brokers unfenced again, gone from the image,
    /// or departed longer than the linger.
    pub fn note(&self, previous: &MetadataImage, next: &MetadataImage, now_ms: i64) {
        let mut fenced_at = self.fenced_at.lock();
        fenced_at.retain(|id, at| {
            next.broker(*id).is_some_and(|b| b.fenced)
                && now_ms.saturating_sub(*at) < DEPARTURE_LINGER_MS
        });
        for b in next.brokers().values().filter(|b| b.fenced) {
            let was_unfenced = previous.broker(b.id).is_some_and(|p| !p.fenced);
            if was_unfenced && fenced_at.len() < MAX_DEPARTURES {
                fenced_at.insert(b.id, now_ms);
            }
        }
    }

    /// Whether `broker`, fenced, still belongs in Metadata's list at
    /// `now_ms`.
    pub fn lingers(&self, broker: BrokerId, now_ms: i64) -> bool {
        self.fenced_at
            .lock()
            .get(&broker)
            .is_some_and(|&at| now_ms.saturating_sub(at) < DEPARTURE_LINGER_MS)
    }
}

#[cfg(test)]
mod tests {
    use sluice_metadata::record::RegisterBrokerRecord;
    use sluice_metadata::{BrokerEpoch, MetadataDelta, MetadataRecord};
    use sluice_record::{LeaderEpoch, Offset};
    use uuid::Uuid;

    use super::*;

    fn image(fenced: &[(i32, bool)]) -> MetadataImage {
        let mut delta = MetadataDelta::new(MetadataImage::empty());
        for (i, &(id, f)) in fenced.iter().enumerate() {
            let record = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: BrokerId(id),
                is_migrating_zk_broker: false,
                incarnation_id: Uuid::from_u128(id as u128),
                broker_epoch: BrokerEpoch(i as i64),
                end_points: Vec::new(),
                features: Vec::new(),
                rack: None,
                fenced: f,
                in_controlled_shutdown: false,
                log_dirs: Vec::new(),
            });
            delta
                .replay(Offset(i as i64), LeaderEpoch(1), &record)
                .unwrap();
        }
        delta.apply().0
    }

    #[test]
    fn a_fenced_broker_lingers_for_the_linger_only() {
        let d = Departures::default();
        let before = image(&[(1, false), (2, false)]);
        let after = image(&[(1, false), (2, true)]);
        d.note(&before, &after, 10_000);
        assert!(d.lingers(BrokerId(2), 10_000));
        assert!(d.lingers(BrokerId(2), 10_000 + DEPARTURE_LINGER_MS - 1));
        assert!(!d.lingers(BrokerId(2), 10_000 + DEPARTURE_LINGER_MS));
        assert!(!d.lingers(BrokerId(1), 10_000), "never fenced");
        // A later image that changes nothing about broker 2 keeps the
        // time of the fence, not of the later image.
        d.note(&after, &after, 11_000);
        assert!(!d.lingers(BrokerId(2), 10_000 + DEPARTURE_LINGER_MS));
    }

    #[test]
    fn only_a_fence_starts_a_linger_and_unfencing_ends_it() {
        let d = Departures::default();
        // Registered fenced (a start, not a departure).
        d.note(&image(&[]), &image(&[(3, true)]), 0);
        assert!(!d.lingers(BrokerId(3), 0));
        d.note(&image(&[(3, false)]), &image(&[(3, true)]), 0);
        assert!(d.lingers(BrokerId(3), 1));
        d.note(&image(&[(3, true)]), &image(&[(3, false)]), 2);
        assert!(!d.lingers(BrokerId(3), 3), "unfenced again");
        d.note(&image(&[(3, false)]), &image(&[(3, true)]), 4);
        d.note(&image(&[(3, true)]), &image(&[]), 5);
        assert!(!d.lingers(BrokerId(3), 6), "unregistered");
    }
}

/// Through the Metadata handler of an in-process broker (node 1) whose
/// image gains a broker 2 that is then fenced.
#[cfg(test)]
mod through_metadata {
    use std::sync::Arc;

    use kafka_protocol::messages::{MetadataRequest, RequestHeader};
    use sluice_metadata::record::{
        BrokerEndpoint, BrokerRegistrationChangeRecord, RegisterBrokerRecord,
    };
    use sluice_metadata::{BrokerEpoch, BrokerId, MetadataRecord};
    use sluice_protocol::kafka_protocol;
    use sluice_storage::{ManualClock, SimFs};

    use super::DEPARTURE_LINGER_MS;
    use crate::config::BrokerConfig;
    use crate::metadata::testing::{open_node_with_clock, Node};

    fn listed(node: &Node) -> Vec<i32> {
        let header = RequestHeader::default()
            .with_request_api_key(3)
            .with_request_api_version(12);
        let r = node.block_on(crate::handlers::metadata::handle(
            node,
            &header,
            MetadataRequest::default(),
        ));
        r.brokers.iter().map(|b| b.node_id.0).collect()
    }

    fn commit(node: &Node, records: Vec<MetadataRecord>) {
        node.block_on(async {
            let offset = node.append(records).await;
            node.image.wait_for(offset).await.unwrap();
        });
    }

    #[test]
    fn metadata_lists_a_fenced_broker_for_the_linger_and_describe_cluster_does_not() {
        // Broker 2 never heartbeats: a session longer than the test keeps
        // the controller from fencing it on its own.
        let config = BrokerConfig::with_overrides(&[
            ("log.dirs", "/sim/data"),
            ("broker.session.timeout.ms", "600000"),
        ])
        .unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let node = open_node_with_clock(config, &Arc::new(SimFs::new()), clock.clone()).unwrap();
        commit(
            &node,
            vec![MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: BrokerId(2),
                is_migrating_zk_broker: false,
                incarnation_id: uuid::Uuid::from_u128(2),
                broker_epoch: BrokerEpoch(100),
                end_points: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9002,
                    security_protocol: 0,
                }],
                features: Vec::new(),
                rack: None,
                fenced: false,
                in_controlled_shutdown: false,
                log_dirs: Vec::new(),
            })],
        );
        assert_eq!(listed(&node), [1, 2]);
        commit(
            &node,
            vec![MetadataRecord::BrokerRegistrationChange(
                BrokerRegistrationChangeRecord {
                    broker_id: BrokerId(2),
                    broker_epoch: BrokerEpoch(100),
                    fenced: BrokerRegistrationChangeRecord::FENCE,
                    in_controlled_shutdown: 0,
                    log_dirs: Vec::new(),
                },
            )],
        );
        assert_eq!(listed(&node), [1, 2], "just fenced: still listed");
        let described = node.block_on(crate::handlers::describe_cluster::handle(
            &node,
            &RequestHeader::default()
                .with_request_api_key(60)
                .with_request_api_version(0),
            Default::default(),
        ));
        let ids: Vec<i32> = described.brokers.iter().map(|b| b.broker_id.0).collect();
        assert_eq!(ids, [1], "DescribeCluster lists the unfenced only");
        clock.advance(DEPARTURE_LINGER_MS);
        assert_eq!(listed(&node), [1], "gone after the linger");
    }
}
