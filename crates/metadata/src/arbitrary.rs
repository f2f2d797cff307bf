//! Proptest strategies for every record type (tests only).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sluice_record::{LeaderEpoch, ProducerId};
use uuid::Uuid;

use crate::record::*;
use crate::types::{BrokerEpoch, BrokerId, PartitionEpoch};

pub(crate) fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn broker() -> impl Strategy<Value = BrokerId> {
    any::<i32>().prop_map(BrokerId)
}

fn brokers() -> impl Strategy<Value = Vec<BrokerId>> {
    vec(broker(), 0..5)
}

fn text() -> impl Strategy<Value = String> {
    // Multi-byte characters too: lengths are in bytes.
    "[a-zA-Z0-9._\\-é€]{0,12}"
}

fn register_broker() -> impl Strategy<Value = RegisterBrokerRecord> {
    let endpoint =
        (text(), text(), any::<u16>(), any::<i16>()).prop_map(|(name, host, port, sp)| {
            BrokerEndpoint {
                name,
                host,
                port,
                security_protocol: sp,
            }
        });
    let feature = (text(), any::<i16>(), any::<i16>()).prop_map(|(name, min, max)| BrokerFeature {
        name,
        min_supported_version: min,
        max_supported_version: max,
    });
    (
        (broker(), any::<bool>(), uuid(), any::<i64>()),
        (vec(endpoint, 0..3), vec(feature, 0..3), option::of(text())),
        (any::<bool>(), any::<bool>(), vec(uuid(), 0..3)),
    )
        .prop_map(
            |((id, zk, inc, epoch), (end_points, features, rack), (f, cs, dirs))| {
                RegisterBrokerRecord {
                    broker_id: id,
                    is_migrating_zk_broker: zk,
                    incarnation_id: inc,
                    broker_epoch: BrokerEpoch(epoch),
                    end_points,
                    features,
                    rack,
                    fenced: f,
                    in_controlled_shutdown: cs,
                    log_dirs: dirs,
                }
            },
        )
}

fn partition() -> impl Strategy<Value = PartitionRecord> {
    (
        (
            any::<i32>(),
            uuid(),
            brokers(),
            brokers(),
            brokers(),
            brokers(),
        ),
        (broker(), any::<i8>(), any::<i32>(), any::<i32>()),
        (
            vec(uuid(), 0..3),
            option::of(brokers()),
            option::of(brokers()),
        ),
    )
        .prop_map(
            |((p, t, replicas, isr, removing, adding), (leader, lrs, le, pe), (dirs, elr, lke))| {
                PartitionRecord {
                    partition_id: p,
                    topic_id: t,
                    replicas,
                    isr,
                    removing_replicas: removing,
                    adding_replicas: adding,
                    leader,
                    leader_recovery_state: lrs,
                    leader_epoch: LeaderEpoch(le),
                    partition_epoch: PartitionEpoch(pe),
                    directories: dirs,
                    eligible_leader_replicas: elr,
                    last_known_elr: lke,
                }
            },
        )
}

fn partition_change() -> impl Strategy<Value = PartitionChangeRecord> {
    (
        (any::<i32>(), uuid(), option::of(brokers()), broker()),
        (
            option::of(brokers()),
            option::of(brokers()),
            option::of(brokers()),
        ),
        (any::<i8>(), option::of(vec(uuid(), 0..3))),
        (option::of(brokers()), option::of(brokers())),
    )
        .prop_map(
            |((p, t, isr, leader), (r, rm, add), (lrs, dirs), (elr, lke))| PartitionChangeRecord {
                partition_id: p,
                topic_id: t,
                isr,
                leader,
                replicas: r,
                removing_replicas: rm,
                adding_replicas: add,
                leader_recovery_state: lrs,
                directories: dirs,
                eligible_leader_replicas: elr,
                last_known_elr: lke,
            },
        )
}

/// Any record of any type, with any field values.
pub(crate) fn record() -> impl Strategy<Value = MetadataRecord> {
    use MetadataRecord as M;
    prop_oneof![
        register_broker().prop_map(M::RegisterBroker),
        (broker(), any::<i64>()).prop_map(|(b, e)| M::UnregisterBroker(UnregisterBrokerRecord {
            broker_id: b,
            broker_epoch: BrokerEpoch(e),
        })),
        (text(), uuid()).prop_map(|(name, topic_id)| M::Topic(TopicRecord { name, topic_id })),
        partition().prop_map(M::Partition),
        (any::<i8>(), text(), text(), option::of(text())).prop_map(|(t, rn, n, v)| M::Config(
            ConfigRecord {
                resource_type: t,
                resource_name: rn,
                name: n,
                value: v,
            }
        )),
        partition_change().prop_map(M::PartitionChange),
        uuid().prop_map(|topic_id| M::RemoveTopic(RemoveTopicRecord { topic_id })),
        (text(), any::<i16>()).prop_map(|(name, feature_level)| M::FeatureLevel(
            FeatureLevelRecord {
                name,
                feature_level
            }
        )),
        (broker(), any::<i64>(), any::<i64>()).prop_map(|(b, e, n)| M::ProducerIds(
            ProducerIdsRecord {
                broker_id: b,
                broker_epoch: BrokerEpoch(e),
                next_producer_id: ProducerId(n),
            }
        )),
        (
            broker(),
            any::<i64>(),
            any::<i8>(),
            any::<i8>(),
            vec(uuid(), 0..3)
        )
            .prop_map(|(b, e, f, cs, dirs)| M::BrokerRegistrationChange(
                BrokerRegistrationChangeRecord {
                    broker_id: b,
                    broker_epoch: BrokerEpoch(e),
                    fenced: f,
                    in_controlled_shutdown: cs,
                    log_dirs: dirs,
                }
            )),
        Just(M::NoOp(NoOpRecord)),
        (
            text(),
            any::<i8>(),
            vec(any::<u8>(), 0..70),
            vec(any::<u8>(), 0..70),
            vec(any::<u8>(), 0..70),
            any::<i32>()
        )
            .prop_map(
                |(name, mechanism, salt, stored_key, server_key, iterations)| {
                    M::UserScramCredential(UserScramCredentialRecord {
                        name,
                        mechanism,
                        salt,
                        stored_key,
                        server_key,
                        iterations,
                    })
                }
            ),
        (text(), any::<i8>()).prop_map(|(name, mechanism)| M::RemoveUserScramCredential(
            RemoveUserScramCredentialRecord { name, mechanism }
        )),
        (
            uuid(),
            (any::<i8>(), any::<i8>(), any::<i8>(), any::<i8>()),
            text(),
            text(),
            text()
        )
            .prop_map(|(id, (rt, pt, op, perm), resource_name, principal, host)| {
                M::AccessControlEntry(AccessControlEntryRecord {
                    id,
                    resource_type: rt,
                    resource_name,
                    pattern_type: pt,
                    principal,
                    host,
                    operation: op,
                    permission_type: perm,
                })
            }),
        uuid().prop_map(|id| M::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id })),
        (
            vec((text(), option::of(text())), 0..4),
            text(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(entity, key, bits, remove)| M::ClientQuota(ClientQuotaRecord {
                    entity: entity
                        .into_iter()
                        .map(|(entity_type, entity_name)| EntityData {
                            entity_type,
                            entity_name
                        })
                        .collect(),
                    key,
                    // Every bit pattern, NaNs included.
                    value: f64::from_bits(bits),
                    remove,
                })
            ),
    ]
}
