//! The bootstrap of the metadata log (`__cluster_metadata-0`): on a fresh
//! data directory, the finalized `metadata.version`; on a data directory
//! of the single-node release (before the metadata log existed), the same
//! plus everything its files hold (`topics.meta`, `group_configs.meta`,
//! `broker_configs.meta`), written ONCE as the log's first batch. From
//! then on the log is the only truth: those files are never read or
//! written again (they stay in place, harmless; a downgrade would see the
//! state of the upgrade moment).
//!
//! The mapping (see `sluice_metadata`'s crate docs): a topic is a
//! `TopicRecord` plus one `PartitionRecord` per partition with this node
//! as the only replica, ISR member and leader, leader epoch 0 and
//! partition epoch 0 (what the single-node release stamped every batch
//! with), and a TOPIC `ConfigRecord` per override; a KIP-848 group
//! override is a GROUP `ConfigRecord`; the node itself is a
//! `RegisterBrokerRecord` with its advertised listeners.

use std::collections::BTreeMap;

use sluice_metadata::record::{
    BrokerEndpoint, ConfigRecord, FeatureLevelRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, TopicRecord,
};
use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResourceType, MetadataRecord, PartitionEpoch};
use sluice_record::LeaderEpoch;
use sluice_record::ProducerId;
use sluice_storage::producer_id::PRODUCER_ID_BLOCK_FILE;
use uuid::Uuid;

use super::files::{
    decode_group_configs, decode_topics, read_file, GROUP_CONFIGS_FILE, TOPICS_FILE,
};
use super::lifecycle::METADATA_VERSION_LEVEL;
use super::{MetadataError, TopicMetadata};
use crate::config::dynamic::{self, DynamicBrokerConfigs, DYNAMIC_CONFIGS_FILE};
use crate::config::BrokerConfig;

/// Kafka's `SecurityProtocol` id of a protocol.
fn protocol_id(protocol: sluice_auth::SecurityProtocol) -> i16 {
    use sluice_auth::SecurityProtocol as P;
    match protocol {
        P::Plaintext => 0,
        P::Ssl => 1,
        P::SaslPlaintext => 2,
        P::SaslSsl => 3,
    }
}

/// This node's advertised listeners as registration endpoints.
pub fn advertised_endpoints(config: &BrokerConfig) -> Vec<BrokerEndpoint> {
    config
        .advertised_listeners
        .iter()
        .map(|l| BrokerEndpoint {
            name: l.name.clone(),
            host: l.host.clone(),
            port: l.port,
            security_protocol: protocol_id(config.listener_security(&l.name).protocol),
        })
        .collect()
}

pub use sluice_metadata::features::supported_features;

/// `broker.rack`, when the node runs with `process.roles`.
pub fn rack(config: &BrokerConfig) -> Option<String> {
    config.kraft.as_ref().and_then(|k| k.rack.clone())
}

/// The log dir ids of a registration (none when the dir has no id).
pub fn log_dir_ids(directory_id: Uuid) -> Vec<Uuid> {
    if directory_id.is_nil() {
        Vec::new()
    } else {
        vec![directory_id]
    }
}

/// This node's registration: its advertised listeners, unfenced.
pub fn register_broker(config: &BrokerConfig, directory_id: Uuid) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: BrokerId(config.node_id),
        is_migrating_zk_broker: false,
        incarnation_id: sluice_runtime::random_uuid(),
        broker_epoch: BrokerEpoch(0),
        end_points: advertised_endpoints(config),
        features: supported_features(),
        rack: rack(config),
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: log_dir_ids(directory_id),
    })
}

/// One partition led by `node`, its only replica.
pub fn partition_record(topic_id: Uuid, partition: i32, node: BrokerId) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: partition,
        topic_id,
        replicas: vec![node],
        isr: vec![node],
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: node,
        leader_recovery_state: 0,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        directories: Vec::new(),
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

/// A new topic: its `TopicRecord`, partitions and config overrides.
pub fn create_topic(topic: &TopicMetadata, node: BrokerId) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::Topic(TopicRecord {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
    })];
    out.extend((0..topic.partitions).map(|p| partition_record(topic.topic_id, p, node)));
    out.extend(config_changes(
        ConfigResourceType::Topic,
        &topic.name,
        &BTreeMap::new(),
        &topic.configs,
    ));
    out
}

/// The BROKER config resource name of a dynamic level: "" for the
/// cluster-wide default, the node id for this broker.
pub fn broker_resource_name(config: &BrokerConfig, cluster_default: bool) -> String {
    if cluster_default {
        String::new()
    } else {
        config.node_id.to_string()
    }
}

/// BROKER config records turning dynamic configs `before` into `after`.
pub fn broker_config_changes(
    config: &BrokerConfig,
    before: &DynamicBrokerConfigs,
    after: &DynamicBrokerConfigs,
) -> Vec<MetadataRecord> {
    let mut out = config_changes(
        ConfigResourceType::Broker,
        &broker_resource_name(config, true),
        &before.cluster_default,
        &after.cluster_default,
    );
    out.extend(config_changes(
        ConfigResourceType::Broker,
        &broker_resource_name(config, false),
        &before.broker,
        &after.broker,
    ));
    out
}

/// The records that turn the overrides `before` of a resource into `after`:
/// one per key set or changed, one with no value per key removed.
pub fn config_changes(
    resource_type: ConfigResourceType,
    resource_name: &str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &str, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: resource_type.id(),
            resource_name: resource_name.to_string(),
            name: name.to_string(),
            value: value.cloned(),
        })
    };
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|k| record(k, None));
    let set = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| record(k, Some(v)));
    removed.chain(set).collect()
}

/// Everything the store's files hold, as the records that build the same
/// state from an empty image.
pub fn bootstrap_records(
    config: &BrokerConfig,
    directory_id: Uuid,
    topics: &BTreeMap<String, TopicMetadata>,
    group_configs: &BTreeMap<String, BTreeMap<String, String>>,
    broker_configs: &DynamicBrokerConfigs,
) -> Vec<MetadataRecord> {
    let node = BrokerId(config.node_id);
    let mut out = fresh_bootstrap_records();
    out.push(register_broker(config, directory_id));
    out.extend(broker_config_changes(
        config,
        &DynamicBrokerConfigs::default(),
        broker_configs,
    ));
    for t in topics.values() {
        out.extend(create_topic(t, node));
    }
    for (group, keys) in group_configs {
        out.extend(config_changes(
            ConfigResourceType::Group,
            group,
            &BTreeMap::new(),
            keys,
        ));
    }
    out
}

/// The first batch of a new cluster's metadata log: the finalized
/// feature levels (Kafka 4.x's `kafka-storage format` defaults).
pub fn fresh_bootstrap_records() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: METADATA_VERSION_LEVEL,
        }),
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: sluice_metadata::features::TRANSACTION_VERSION.into(),
            feature_level: sluice_metadata::features::TRANSACTION_VERSION_LEVEL,
        }),
    ]
}

/// What `sluice storage format` leaves in the metadata log dir for a new
/// cluster's first start to commit as its bootstrap batch, as Kafka's
/// `kafka-storage format` leaves `bootstrap.checkpoint`: the finalized
/// feature levels of `--release-version`/`--feature` (`metadata.version`
/// first) and the credentials of `--add-scram`. One framed record per
/// line, base64. Read only while the metadata log is empty.
pub const BOOTSTRAP_FILE: &str = "bootstrap.records";

/// Whether `record` may stand in a [`BOOTSTRAP_FILE`].
fn is_bootstrap_record(record: &MetadataRecord) -> bool {
    matches!(
        record,
        MetadataRecord::FeatureLevel(_) | MetadataRecord::UserScramCredential(_)
    )
}

/// The text of a [`BOOTSTRAP_FILE`] holding `records` (feature levels and
/// SCRAM credentials only).
pub fn encode_bootstrap_file(records: &[MetadataRecord]) -> Result<String, MetadataError> {
    use base64::Engine;
    let mut out = String::new();
    for r in records {
        if !is_bootstrap_record(r) {
            return Err(MetadataError::InvalidRequest(format!(
                "record type {} does not belong in {BOOTSTRAP_FILE}",
                r.api_key()
            )));
        }
        let bytes = r
            .to_bytes()
            .map_err(|e| MetadataError::InvalidRequest(e.to_string()))?;
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
        out.push('\n');
    }
    Ok(out)
}

/// The records of `dir`'s [`BOOTSTRAP_FILE`] (none without one). Anything
/// but feature levels and SCRAM credentials there is corruption.
pub fn read_bootstrap_file(
    fs: &dyn sluice_storage::Fs,
    dir: &std::path::Path,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    use base64::Engine;
    let path = dir.join(BOOTSTRAP_FILE);
    let Some(text) = read_file(fs, &path)? else {
        return Ok(Vec::new());
    };
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.clone(),
        reason,
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line.trim())
                .map_err(|e| corrupt(e.to_string()))?;
            match MetadataRecord::decode(&bytes).map_err(|e| corrupt(e.to_string()))? {
                r if is_bootstrap_record(&r) => Ok(r),
                other => Err(corrupt(format!(
                    "not a feature level or SCRAM credential record (api key {})",
                    other.api_key()
                ))),
            }
        })
        .collect()
}

/// `defaults` (a bootstrap batch) with a [`BOOTSTRAP_FILE`]'s `records`:
/// when the file names feature levels they are the complete set (a level
/// of 0 is written as no record, so the defaults' levels cannot be kept)
/// and lead the batch, `metadata.version` first; its credentials follow
/// the defaults' other records.
pub fn with_bootstrap_file(
    defaults: Vec<MetadataRecord>,
    records: Vec<MetadataRecord>,
) -> Vec<MetadataRecord> {
    let is_level = |r: &MetadataRecord| matches!(r, MetadataRecord::FeatureLevel(_));
    let (mut levels, others): (Vec<_>, Vec<_>) = records.into_iter().partition(is_level);
    if levels.is_empty() {
        return defaults.into_iter().chain(others).collect();
    }
    levels.sort_by_key(|r| match r {
        MetadataRecord::FeatureLevel(f) => f.name != sluice_metadata::features::METADATA_VERSION,
        _ => true,
    });
    levels
        .into_iter()
        .chain(defaults.into_iter().filter(|r| !is_level(r)))
        .chain(others)
        .collect()
}

/// The first batch of the metadata log in `dir` (the metadata log dir):
/// from the single-node release's files if any exists there, else the
/// fresh bootstrap. Reads only; never writes those files.
pub fn bootstrap_from_dir(
    config: &BrokerConfig,
    fs: &dyn sluice_storage::Fs,
    dir: &std::path::Path,
    directory_id: Uuid,
) -> Result<(Vec<MetadataRecord>, bool), MetadataError> {
    let legacy = [
        TOPICS_FILE,
        GROUP_CONFIGS_FILE,
        DYNAMIC_CONFIGS_FILE,
        PRODUCER_ID_BLOCK_FILE,
    ]
    .iter()
    .any(|f| fs.exists(&dir.join(f)));
    let file = read_bootstrap_file(fs, dir)?;
    if !legacy {
        return Ok((with_bootstrap_file(fresh_bootstrap_records(), file), false));
    }
    let topics_path = dir.join(TOPICS_FILE);
    let topics = match read_file(fs, &topics_path)? {
        Some(text) => decode_topics(&topics_path, &text)?.0,
        None => BTreeMap::new(),
    };
    let groups_path = dir.join(GROUP_CONFIGS_FILE);
    let group_configs = match read_file(fs, &groups_path)? {
        Some(text) => decode_group_configs(&groups_path, &text)?.0,
        None => BTreeMap::new(),
    };
    let (broker_configs, _) = dynamic::load(fs, dir)?;
    let mut records = bootstrap_records(
        config,
        directory_id,
        &topics,
        &group_configs,
        &broker_configs,
    );
    // Producer ids the old release handed out are never handed out again.
    if let Some(next) = old_producer_id_mark(fs, dir)? {
        records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: BrokerId(config.node_id),
            broker_epoch: BrokerEpoch(0),
            next_producer_id: ProducerId(next),
        }));
    }
    Ok((with_bootstrap_file(records, file), true))
}

/// The allocation high-water mark of the old release's producer ids
/// (`producer-id-block`: a magic line, then the mark twice), if any id
/// was allocated.
fn old_producer_id_mark(
    fs: &dyn sluice_storage::Fs,
    dir: &std::path::Path,
) -> Result<Option<i64>, MetadataError> {
    let path = dir.join(PRODUCER_ID_BLOCK_FILE);
    let Some(text) = read_file(fs, &path)? else {
        return Ok(None);
    };
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [_, a, b, ..] if a == b => a
            .trim()
            .parse::<i64>()
            .map(|n| (n > 0).then_some(n))
            .map_err(|_| MetadataError::Corrupt {
                path,
                reason: "bad producer id mark".into(),
            }),
        _ => Err(MetadataError::Corrupt {
            path,
            reason: "not a producer id block file".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::{ConfigResource, MetadataDelta, MetadataImage};
    use sluice_record::Offset;

    fn level(name: &str, feature_level: i16) -> MetadataRecord {
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: name.into(),
            feature_level,
        })
    }

    /// A bootstrap file's levels replace the defaults' (a level of 0 is no
    /// record, so a default left in would undo it), `metadata.version`
    /// first; a file of credentials alone keeps the defaults.
    #[test]
    fn a_bootstrap_file_replaces_the_default_levels() {
        let scram = MetadataRecord::UserScramCredential(
            sluice_metadata::record::UserScramCredentialRecord {
                name: "admin".into(),
                mechanism: 1,
                salt: vec![1; 16],
                stored_key: vec![2; 32],
                server_key: vec![3; 32],
                iterations: 4096,
            },
        );
        let file = vec![
            scram.clone(),
            level(sluice_metadata::features::TRANSACTION_VERSION, 1),
            level("metadata.version", 21),
        ];
        let merged = with_bootstrap_file(fresh_bootstrap_records(), file);
        assert_eq!(
            merged,
            vec![
                level("metadata.version", 21),
                level(sluice_metadata::features::TRANSACTION_VERSION, 1),
                scram.clone()
            ]
        );
        let merged = with_bootstrap_file(
            fresh_bootstrap_records(),
            vec![level("metadata.version", 21)],
        );
        assert_eq!(merged, vec![level("metadata.version", 21)]);
        let merged = with_bootstrap_file(fresh_bootstrap_records(), vec![scram.clone()]);
        assert_eq!(merged[..2], fresh_bootstrap_records()[..]);
        assert_eq!(merged[2], scram);
        assert!(encode_bootstrap_file(&merged).is_ok());
        assert!(encode_bootstrap_file(&[MetadataRecord::NoOp(Default::default())]).is_err());
    }

    #[test]
    fn bootstrap_records_rebuild_the_stores_state() {
        let config = BrokerConfig::with_overrides(&[("node.id", "3")]).unwrap();
        let id = Uuid::from_u128(7);
        let topics = BTreeMap::from([(
            "orders".to_string(),
            TopicMetadata {
                name: "orders".into(),
                topic_id: id,
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
        )]);
        let groups = BTreeMap::from([(
            "g".to_string(),
            BTreeMap::from([("consumer.session.timeout.ms".into(), "50000".into())]),
        )]);
        let dynamic = DynamicBrokerConfigs {
            broker: BTreeMap::from([("log.cleaner.backoff.ms".into(), "20000".into())]),
            cluster_default: BTreeMap::from([("log.retention.ms".into(), "1000".into())]),
        };
        let records = bootstrap_records(&config, Uuid::nil(), &topics, &groups, &dynamic);
        let mut delta = MetadataDelta::new(MetadataImage::empty());
        for (i, r) in records.iter().enumerate() {
            delta.replay(Offset(i as i64), LeaderEpoch(1), r).unwrap();
        }
        let (image, _) = delta.apply();
        let t = image.topic("orders").unwrap();
        assert_eq!((t.id(), t.partitions().len()), (id, 3));
        let p = t.partition(2).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (BrokerId(3), LeaderEpoch(0)));
        assert_eq!(p.replicas, vec![BrokerId(3)]);
        let res = |t, n: &str| ConfigResource {
            resource_type: t,
            name: n.into(),
        };
        assert_eq!(
            image.config(&res(ConfigResourceType::Topic, "orders"))["retention.ms"],
            "1000"
        );
        assert_eq!(image.config(&res(ConfigResourceType::Group, "g")).len(), 1);
        assert!(image.broker(BrokerId(3)).is_some());
        assert_eq!(
            image.config(&res(ConfigResourceType::Broker, ""))["log.retention.ms"],
            "1000"
        );
        assert_eq!(
            image.config(&res(ConfigResourceType::Broker, "3"))["log.cleaner.backoff.ms"],
            "20000"
        );
    }

    #[test]
    fn config_changes_set_and_remove_exactly_the_difference() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let records = config_changes(
            ConfigResourceType::Topic,
            "t",
            &m(&[("a", "1"), ("b", "2")]),
            &m(&[("b", "3"), ("c", "4")]),
        );
        let got: Vec<(String, Option<String>)> = records
            .into_iter()
            .map(|r| match r {
                MetadataRecord::Config(c) => (c.name, c.value),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), None),
                ("b".into(), Some("3".into())),
                ("c".into(), Some("4".into()))
            ]
        );
    }

    /// A data directory of the single-node release: its files bootstrap
    /// the metadata log once; after that they are neither read nor
    /// written, and a change made since survives a power cut.
    #[test]
    fn old_files_bootstrap_the_metadata_log_once() {
        use std::sync::Arc;

        use sluice_storage::{Fs, SimFs};

        use super::super::files::{encode_group_configs, encode_topics, write_durably};
        use super::super::testing::open_node;

        let fs = Arc::new(SimFs::new());
        let dir = std::path::Path::new("/sim/data");
        fs.create_dir_all(dir).unwrap();
        let id = Uuid::from_u128(0x1234_5678_9abc);
        let topics = BTreeMap::from([(
            "orders".to_string(),
            TopicMetadata {
                name: "orders".into(),
                topic_id: id,
                partitions: 2,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
        )]);
        let groups = BTreeMap::from([(
            "g".to_string(),
            BTreeMap::from([("consumer.session.timeout.ms".into(), "50000".into())]),
        )]);
        let dynamic = DynamicBrokerConfigs {
            broker: BTreeMap::new(),
            cluster_default: BTreeMap::from([("log.retention.ms".into(), "7000".into())]),
        };
        let topics_text = encode_topics(&topics, Offset(3));
        write_durably(&*fs, dir, "t.tmp", TOPICS_FILE, topics_text.as_bytes()).unwrap();
        let groups_text = encode_group_configs(&groups, Offset(4));
        write_durably(
            &*fs,
            dir,
            "g.tmp",
            GROUP_CONFIGS_FILE,
            groups_text.as_bytes(),
        )
        .unwrap();
        let dyn_text = dynamic::encode(&dynamic, Offset(5));
        write_durably(
            &*fs,
            dir,
            "d.tmp",
            DYNAMIC_CONFIGS_FILE,
            dyn_text.as_bytes(),
        )
        .unwrap();
        let config = || BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap();

        let node = open_node(config(), &fs).unwrap();
        let t = node.image.topic("orders").unwrap();
        assert_eq!((t.topic_id, t.partitions), (id, 2));
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(node.image.group_configs("g").len(), 1);
        assert_eq!(
            node.config.dynamic.read().cluster_default["log.retention.ms"],
            "7000"
        );
        // A change now lives in the metadata log only.
        node.block_on(node.controller.create_topic("later", 1, 1, BTreeMap::new()))
            .unwrap();
        drop(node);
        fs.crash(7);
        let read = |name: &str| read_file(&*fs, &dir.join(name)).unwrap().unwrap();
        assert_eq!(read(TOPICS_FILE), topics_text, "old file never rewritten");

        // The files are not read again: removing them changes nothing.
        fs.remove_file(&dir.join(TOPICS_FILE)).unwrap();
        let node = open_node(config(), &fs).unwrap();
        assert_eq!(node.image.topic("orders").unwrap().topic_id, id);
        assert!(
            node.image.topic("later").is_some(),
            "acknowledged, so durable"
        );
        assert_eq!(node.image.group_configs("g").len(), 1);
        assert_eq!(
            node.config.dynamic.read().cluster_default["log.retention.ms"],
            "7000"
        );
    }
}
