//! A small model controller for tests: turns random operations into a
//! valid metadata log (records that replay without error), the way a
//! controller would write them, so that replay, snapshots and local
//! changes are tested on realistic histories.

use proptest::prelude::*;
use sluice_record::{LeaderEpoch, Offset, ProducerId};
use uuid::Uuid;

use crate::delta::MetadataDelta;
use crate::image::MetadataImage;
use crate::placement::{usable_brokers, ReplicaPlacer};
use crate::record::*;
use crate::types::{BrokerEpoch, BrokerId, ConfigResourceType};

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Register {
        broker: i32,
        rack: Option<u8>,
    },
    Fence(i32),
    Unfence(i32),
    ControlledShutdown(i32),
    Unregister(i32),
    CreateTopic {
        name: u8,
        partitions: i32,
        rf: i16,
        start: u64,
    },
    AddPartitions {
        topic: prop::sample::Index,
        count: i32,
    },
    ElectLeader {
        topic: prop::sample::Index,
        partition: prop::sample::Index,
        replica: prop::sample::Index,
    },
    ShrinkIsr {
        topic: prop::sample::Index,
        partition: prop::sample::Index,
    },
    Reassign {
        topic: prop::sample::Index,
        partition: prop::sample::Index,
        start: u64,
    },
    DeleteTopic(prop::sample::Index),
    Config {
        kind: u8,
        key: u8,
        value: Option<u8>,
    },
    ProducerIds,
    CreateAcl {
        name: u8,
        prefixed: bool,
        allow: bool,
    },
    RemoveAcl(prop::sample::Index),
    /// A client quota set (`Some`) or removed: entity shape, key, value.
    Quota {
        entity: u8,
        key: u8,
        value: Option<u16>,
    },
    Nothing,
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    let idx = any::<prop::sample::Index>;
    prop_oneof![
        3 => (0..5i32, proptest::option::of(0..3u8)).prop_map(|(broker, rack)| Op::Register { broker, rack }),
        1 => (0..5i32).prop_map(Op::Fence),
        2 => (0..5i32).prop_map(Op::Unfence),
        1 => (0..5i32).prop_map(Op::ControlledShutdown),
        1 => (0..5i32).prop_map(Op::Unregister),
        3 => (0..6u8, 1..4i32, 1..3i16, any::<u64>()).prop_map(|(name, partitions, rf, start)| Op::CreateTopic { name, partitions, rf, start }),
        1 => (idx(), 1..3i32).prop_map(|(topic, count)| Op::AddPartitions { topic, count }),
        2 => (idx(), idx(), idx()).prop_map(|(topic, partition, replica)| Op::ElectLeader { topic, partition, replica }),
        1 => (idx(), idx()).prop_map(|(topic, partition)| Op::ShrinkIsr { topic, partition }),
        1 => (idx(), idx(), any::<u64>()).prop_map(|(topic, partition, start)| Op::Reassign { topic, partition, start }),
        1 => idx().prop_map(Op::DeleteTopic),
        2 => (0..4u8, 0..3u8, proptest::option::of(0..3u8)).prop_map(|(kind, key, value)| Op::Config { kind, key, value }),
        1 => Just(Op::ProducerIds),
        1 => (0..4u8, any::<bool>(), any::<bool>()).prop_map(|(name, prefixed, allow)| Op::CreateAcl { name, prefixed, allow }),
        1 => idx().prop_map(Op::RemoveAcl),
        2 => (0..6u8, 0..3u8, proptest::option::of(any::<u16>())).prop_map(|(entity, key, value)| Op::Quota { entity, key, value }),
        1 => Just(Op::Nothing),
    ]
}

/// Runs `ops` through the model controller and returns the records it
/// wrote, each with its offset and epoch.
pub(crate) fn log(ops: &[Op]) -> Vec<(Offset, LeaderEpoch, MetadataRecord)> {
    let mut model = Model {
        image: MetadataImage::empty(),
        log: Vec::new(),
        next_id: 1,
    };
    model.write(vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: "metadata.version".into(),
        feature_level: 27,
    })]);
    for op in ops {
        let records = model.records_for(op);
        model.write(records);
    }
    model.log
}

/// An odd 128-bit constant: multiplying by it scatters small counters over
/// every byte of an id.
const SPREAD: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;

struct Model {
    image: MetadataImage,
    log: Vec<(Offset, LeaderEpoch, MetadataRecord)>,
    next_id: u128,
}

impl Model {
    fn write(&mut self, records: Vec<MetadataRecord>) {
        if records.is_empty() {
            return;
        }
        let mut delta = MetadataDelta::new(self.image.clone());
        for r in records {
            let offset = Offset(self.log.len() as i64);
            let epoch = LeaderEpoch(1 + self.log.len() as i32 / 50);
            delta
                .replay(offset, epoch, &r)
                .unwrap_or_else(|e| panic!("the model wrote an invalid record {r:?}: {e}"));
            self.log.push((offset, epoch, r));
        }
        self.image = delta.apply().0;
    }

    fn topic(&self, i: &prop::sample::Index) -> Option<(Uuid, Vec<i32>)> {
        let count = self.image.topic_count();
        if count == 0 {
            return None;
        }
        let t = self.image.topics().nth(i.index(count))?;
        Some((t.id(), t.partitions().keys().copied().collect()))
    }

    fn records_for(&mut self, op: &Op) -> Vec<MetadataRecord> {
        use MetadataRecord as M;
        let img = &self.image;
        let registered = |b: i32| img.broker(BrokerId(b)).map(|r| r.epoch);
        let change = |b: i32, fenced: i8, cs: i8| {
            registered(b).map(|epoch| {
                M::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                    broker_id: BrokerId(b),
                    broker_epoch: epoch,
                    fenced,
                    in_controlled_shutdown: cs,
                    log_dirs: Vec::new(),
                })
            })
        };
        match op {
            Op::Register { broker, rack } => vec![M::RegisterBroker(RegisterBrokerRecord {
                broker_id: BrokerId(*broker),
                is_migrating_zk_broker: false,
                incarnation_id: Uuid::from_u128(self.log.len() as u128),
                broker_epoch: BrokerEpoch(self.log.len() as i64),
                end_points: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9092 + *broker as u16,
                    security_protocol: 0,
                }],
                features: Vec::new(),
                rack: rack.map(|r| format!("rack-{r}")),
                fenced: true,
                in_controlled_shutdown: false,
                log_dirs: vec![Uuid::from_u128(1000 + *broker as u128)],
            })],
            Op::Fence(b) => change(*b, 1, 0).into_iter().collect(),
            Op::Unfence(b) => change(*b, -1, 0).into_iter().collect(),
            Op::ControlledShutdown(b) => change(*b, 0, 1).into_iter().collect(),
            Op::Unregister(b) => registered(*b)
                .map(|epoch| {
                    M::UnregisterBroker(UnregisterBrokerRecord {
                        broker_id: BrokerId(*b),
                        broker_epoch: epoch,
                    })
                })
                .into_iter()
                .collect(),
            Op::CreateTopic { .. }
            | Op::AddPartitions { .. }
            | Op::ElectLeader { .. }
            | Op::ShrinkIsr { .. }
            | Op::Reassign { .. }
            | Op::DeleteTopic(_) => self.topic_records_for(op),
            Op::Quota { entity, key, value } => {
                let (t, name) = match entity {
                    0 => ("user", Some("alice")),
                    1 => ("user", None),
                    2 => ("client-id", Some("app")),
                    3 => ("client-id", None),
                    _ => ("ip", Some("10.0.0.1")),
                };
                let mut data = vec![EntityData {
                    entity_type: t.into(),
                    entity_name: name.map(Into::into),
                }];
                if *entity == 5 {
                    data = vec![
                        EntityData {
                            entity_type: "user".into(),
                            entity_name: Some("bob".into()),
                        },
                        EntityData {
                            entity_type: "client-id".into(),
                            entity_name: None,
                        },
                    ];
                }
                vec![M::ClientQuota(ClientQuotaRecord {
                    entity: data,
                    key: [
                        "producer_byte_rate",
                        "consumer_byte_rate",
                        "request_percentage",
                    ][usize::from(*key)]
                    .into(),
                    value: value.map_or(0.0, f64::from),
                    remove: value.is_none(),
                })]
            }
            Op::Config { kind, key, value } => {
                let (resource_type, resource_name) = match kind {
                    0 => match img.topic_names().keys().next() {
                        Some(name) => (ConfigResourceType::Topic, name.clone()),
                        None => return Vec::new(),
                    },
                    1 => (ConfigResourceType::Broker, String::new()),
                    2 => (ConfigResourceType::Broker, "1".to_owned()),
                    _ => (ConfigResourceType::Group, "group-a".to_owned()),
                };
                vec![M::Config(ConfigRecord {
                    resource_type: resource_type.id(),
                    resource_name,
                    name: format!("key.{key}"),
                    value: value.map(|v| format!("value-{v}")),
                })]
            }
            Op::ProducerIds => vec![M::ProducerIds(ProducerIdsRecord {
                broker_id: BrokerId(1),
                broker_epoch: BrokerEpoch(1),
                next_producer_id: ProducerId(img.next_producer_id().0 + 1000),
            })],
            Op::CreateAcl {
                name,
                prefixed,
                allow,
            } => {
                self.next_id += 1;
                vec![M::AccessControlEntry(AccessControlEntryRecord {
                    id: Uuid::from_u128(self.next_id.wrapping_mul(SPREAD)),
                    resource_type: 2,
                    resource_name: format!("t{name}"),
                    pattern_type: if *prefixed { 4 } else { 3 },
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 3,
                    permission_type: if *allow { 3 } else { 2 },
                })]
            }
            Op::RemoveAcl(i) => {
                let ids = img.acls().by_id();
                if ids.is_empty() {
                    return Vec::new();
                }
                let id = *ids.keys().nth(i.index(ids.len())).expect("index in range");
                vec![M::RemoveAccessControlEntry(
                    RemoveAccessControlEntryRecord { id },
                )]
            }
            Op::Nothing => vec![M::NoOp(NoOpRecord)],
        }
    }

    fn topic_records_for(&mut self, op: &Op) -> Vec<MetadataRecord> {
        use MetadataRecord as M;
        let img = &self.image;
        match op {
            Op::CreateTopic {
                name,
                partitions,
                rf,
                start,
            } => {
                let name = format!("topic-{name}");
                if img.topic(&name).is_some() {
                    return Vec::new();
                }
                let placer = ReplicaPlacer::new(&usable_brokers(img));
                let Ok(placed) = placer.place(*start, *partitions, *rf) else {
                    return Vec::new();
                };
                // Spread over the id shards, as random (v4) ids are.
                let topic_id = Uuid::from_u128(self.next_id.wrapping_mul(SPREAD));
                self.next_id += 1;
                let mut out = vec![M::Topic(TopicRecord {
                    name: name.clone(),
                    topic_id,
                })];
                out.push(M::Config(ConfigRecord {
                    resource_type: ConfigResourceType::Topic.id(),
                    resource_name: name,
                    name: "cleanup.policy".into(),
                    value: Some("compact".into()),
                }));
                out.extend(
                    placed
                        .into_iter()
                        .enumerate()
                        .map(|(p, r)| M::Partition(new_partition(topic_id, p as i32, r))),
                );
                out
            }
            Op::AddPartitions { topic, count } => {
                let Some((id, parts)) = self.topic(topic) else {
                    return Vec::new();
                };
                let placer = ReplicaPlacer::new(&usable_brokers(img));
                let Ok(placed) = placer.place(parts.len() as u64, *count, 1) else {
                    return Vec::new();
                };
                let first = parts.last().map_or(0, |p| p + 1);
                placed
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| M::Partition(new_partition(id, first + i as i32, r)))
                    .collect()
            }
            Op::ElectLeader {
                topic,
                partition,
                replica,
            } => {
                let Some((id, parts)) = self.topic(topic) else {
                    return Vec::new();
                };
                let p = parts[partition.index(parts.len())];
                let reg = img.topic_by_id(id).unwrap().partition(p).unwrap();
                let leader = reg.replicas[replica.index(reg.replicas.len())];
                let mut c = PartitionChangeRecord::new(id, p);
                c.leader = leader;
                if !reg.isr.contains(&leader) {
                    let mut isr = reg.isr.clone();
                    isr.push(leader);
                    c.isr = Some(isr);
                }
                vec![M::PartitionChange(c)]
            }
            Op::ShrinkIsr { topic, partition } => {
                let Some((id, parts)) = self.topic(topic) else {
                    return Vec::new();
                };
                let p = parts[partition.index(parts.len())];
                let reg = img.topic_by_id(id).unwrap().partition(p).unwrap();
                let mut c = PartitionChangeRecord::new(id, p);
                c.isr = Some(
                    reg.isr
                        .iter()
                        .copied()
                        .filter(|&b| b == reg.leader)
                        .collect(),
                );
                vec![M::PartitionChange(c)]
            }
            Op::Reassign {
                topic,
                partition,
                start,
            } => {
                let Some((id, parts)) = self.topic(topic) else {
                    return Vec::new();
                };
                let p = parts[partition.index(parts.len())];
                let reg = img.topic_by_id(id).unwrap().partition(p).unwrap();
                let placer = ReplicaPlacer::new(&usable_brokers(img));
                let Ok(mut placed) = placer.place(*start, 1, reg.replicas.len() as i16) else {
                    return Vec::new();
                };
                let replicas = placed.remove(0);
                let mut c = PartitionChangeRecord::new(id, p);
                c.leader = replicas[0];
                c.isr = Some(replicas.clone());
                c.directories = Some(Vec::new());
                c.replicas = Some(replicas);
                vec![M::PartitionChange(c)]
            }
            Op::DeleteTopic(topic) => match self.topic(topic) {
                Some((topic_id, _)) => vec![M::RemoveTopic(RemoveTopicRecord { topic_id })],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

fn new_partition(topic_id: Uuid, partition_id: i32, replicas: Vec<BrokerId>) -> PartitionRecord {
    PartitionRecord {
        partition_id,
        topic_id,
        leader: replicas[0],
        isr: replicas.clone(),
        directories: replicas
            .iter()
            .map(|b| Uuid::from_u128(1000 + b.0 as u128))
            .collect(),
        replicas,
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader_recovery_state: 0,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: crate::types::PartitionEpoch(0),
        eligible_leader_replicas: None,
        last_known_elr: None,
    }
}
