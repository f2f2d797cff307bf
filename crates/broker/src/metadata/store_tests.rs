//! Tests of the metadata store: durability of the single-node files,
//! metadata offsets, and the whole metadata path on a simulated disk.

use super::super::names::new_kafka_uuid;
use super::*;
use proptest::prelude::*;
use std::path::Path;

#[test]
fn topic_names_follow_kafka_rules() {
    for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
        assert!(validate_topic_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "ü",
        "../x",
        &"x".repeat(250),
        "a\0",
    ] {
        let err = validate_topic_name(bad).unwrap_err();
        assert_eq!(err.kafka_error_code(), 17, "{bad:?}");
    }
}

#[test]
fn base64_ids_match_kafka_form() {
    // Kafka prints Uuid 0x...01 as "AAAAAAAAAAAAAAAAAAAAAQ".
    assert_eq!(uuid_to_base64(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
    assert_eq!(
        uuid_to_base64(Uuid::from_u128(u128::MAX)),
        "_____________________w"
    );
    for _ in 0..1000 {
        let s = uuid_to_base64(new_kafka_uuid());
        assert_eq!(s.len(), 22);
        assert!(!s.starts_with('-'));
    }
}

mod durability {
    use super::*;
    use crate::metadata::testing::Node;
    use sluice_storage::LogConfig;
    use sluice_storage::{FaultKind, SimFs};
    use std::path::Path;

    fn config() -> BrokerConfig {
        // small indexes keep the simulated file system small
        BrokerConfig::with_overrides(&[
            ("log.dirs", "/sim/data"),
            ("num.partitions", "2"),
            ("log.index.size.max.bytes", "4096"),
        ])
        .unwrap()
    }

    fn open(fs: &Arc<SimFs>) -> Result<Node, MetadataError> {
        crate::metadata::testing::open_node(config(), fs)
    }

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn acknowledged_changes_survive_a_power_cut() {
        for seed in 0..12u64 {
            let fs = Arc::new(SimFs::new());
            let ctx = open(&fs).unwrap();
            let cluster_id = ctx.metadata.cluster_id();
            let a = ctx
                .controller
                .create_topic("a", 3, 1, overrides(&[("retention.ms", "1000")]))
                .unwrap();
            let b = ctx.controller.auto_create_topic("b").unwrap();
            ctx.controller.create_partitions("b", 4).unwrap();
            ctx.controller
                .alter_topic_config("a", overrides(&[("retention.ms", "2000")]))
                .unwrap();
            ctx.controller
                .create_topic("gone", 1, 1, BTreeMap::new())
                .unwrap();
            ctx.controller.delete_topic("gone").unwrap();
            drop(ctx);
            fs.crash(seed);

            let ctx = open(&fs).unwrap();
            assert_eq!(ctx.metadata.cluster_id(), cluster_id, "seed {seed}");
            let a2 = ctx.image.topic("a").unwrap();
            assert_eq!(a2.topic_id, a.topic_id, "seed {seed}");
            assert_eq!(a2.partitions, 3);
            assert_eq!(a2.configs, overrides(&[("retention.ms", "2000")]));
            let b2 = ctx.image.topic("b").unwrap();
            assert_eq!((b2.topic_id, b2.partitions), (b.topic_id, 4), "seed {seed}");
            assert!(ctx.image.topic("gone").is_none(), "seed {seed}");
            // every partition is online again, with the topic's config
            for p in 0..4 {
                assert!(ctx
                    .replicas
                    .get_partition(&TopicPartition::new("b", p))
                    .is_some());
            }
            let pa = ctx
                .replicas
                .get_partition(&TopicPartition::new("a", 2))
                .unwrap();
            assert_eq!(pa.log().config().retention_ms, 2000);
            assert!(ctx
                .replicas
                .get_partition(&TopicPartition::new("gone", 0))
                .is_none());
            // re-creating a deleted name gives a new id
            let again = ctx
                .controller
                .create_topic("gone", 1, 1, BTreeMap::new())
                .unwrap();
            assert_ne!(again.topic_id, a.topic_id);
        }
    }

    /// One step of the metadata-offset state machine test.
    #[derive(Clone, Debug)]
    enum Op {
        CreateTopic(u8),
        DeleteTopic(u8),
        AddPartition(u8),
        AlterTopicConfig(u8, u16),
        SetGroupConfig(u8, u16),
        ValidateOnlyGroupConfig(u8),
        /// A change whose fsync fails: not acknowledged.
        FailedCreate(u8),
        Restart,
        Crash(u64),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4u8).prop_map(Op::CreateTopic),
            (0..4u8).prop_map(Op::DeleteTopic),
            (0..4u8).prop_map(Op::AddPartition),
            (0..4u8, 1..5000u16).prop_map(|(t, v)| Op::AlterTopicConfig(t, v)),
            (0..3u8, 1..5000u16).prop_map(|(g, v)| Op::SetGroupConfig(g, v)),
            (0..3u8).prop_map(Op::ValidateOnlyGroupConfig),
            (0..4u8).prop_map(Op::FailedCreate),
            Just(Op::Restart),
            any::<u64>().prop_map(Op::Crash),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The metadata offset (high watermark) advances by exactly one
        /// per acknowledged change, not at all for refused, failed or
        /// validate-only ones, and survives restarts and power cuts
        /// unchanged; the leader epoch grows by one per start.
        #[test]
        fn metadata_offset_counts_committed_changes_across_restarts(
            ops in proptest::collection::vec(arb_op(), 1..14)
        ) {
            let fs = Arc::new(SimFs::new());
            let mut ctx = open(&fs).unwrap();
            let mut expected = 0i64;
            let mut epoch = 1;
            prop_assert_eq!(ctx.metadata.high_watermark(), Offset(0));
            prop_assert_eq!(ctx.metadata.leader_epoch(), LeaderEpoch(1));
            for op in ops {
                let m = ctx.controller.clone();
                let committed = match &op {
                    Op::CreateTopic(t) => m
                        .create_topic(&format!("t{t}"), 1, 1, BTreeMap::new())
                        .is_ok(),
                    Op::DeleteTopic(t) => m.delete_topic(&format!("t{t}")).is_ok(),
                    Op::AddPartition(t) => {
                        let name = format!("t{t}");
                        match ctx.image.topic(&name) {
                            Some(topic) => m
                                .create_partitions(&name, topic.partitions + 1)
                                .is_ok(),
                            None => m.create_partitions(&name, 2).is_ok(),
                        }
                    }
                    Op::AlterTopicConfig(t, v) => m
                        .alter_topic_config(&format!("t{t}"),
                            overrides(&[("retention.ms", &v.to_string())]),
                        )
                        .is_ok(),
                    Op::SetGroupConfig(g, v) => m
                        .update_group_config(
                            &format!("g{g}"),
                            false,
                            |_| Ok(overrides(&[("k", &v.to_string())])),
                            |_| Ok(()),
                        )
                        .is_ok(),
                    Op::ValidateOnlyGroupConfig(g) => {
                        m.update_group_config(
                            &format!("g{g}"),
                            true,
                            |_| Ok(overrides(&[("k", "1")])),
                            |_| Ok(()),
                        )
                        .unwrap();
                        false
                    }
                    Op::FailedCreate(t) => {
                        fs.inject(sluice_storage::Fault::once(
                            TOPICS_TMP,
                            FaultKind::SyncError(libc::EIO),
                        ));
                        let name = format!("f{t}");
                        let r = m.create_topic(&name, 1, 1, BTreeMap::new());
                        let visible = ctx.image.topic(&name).is_some();
                        // refused when new; TopicAlreadyExists (no write) when not
                        prop_assert!(r.is_err());
                        prop_assert_eq!(visible, matches!(r, Err(MetadataError::TopicAlreadyExists(_))));
                        false
                    }
                    Op::Restart | Op::Crash(_) => {
                        ctx.logs.shutdown().unwrap();
                        drop(m);
                        drop(ctx);
                        if let Op::Crash(seed) = op {
                            fs.crash(seed);
                        }
                        ctx = open(&fs).unwrap();
                        epoch += 1;
                        false
                    }
                };
                if committed {
                    expected += 1;
                }
                prop_assert_eq!(ctx.metadata.high_watermark(), Offset(expected), "after {:?}", op);
                prop_assert_eq!(ctx.metadata.leader_epoch(), LeaderEpoch(epoch), "after {:?}", op);
            }
        }
    }

    #[test]
    fn external_changes_take_the_next_offset_only_when_they_commit() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        let m = &ctx.controller;
        m.create_topic("t", 1, 1, BTreeMap::new()).unwrap();
        let got = ctx
            .metadata
            .commit_external(Ok::<_, MetadataError>)
            .unwrap();
        assert_eq!(got, Offset(2), "the change after the topic's");
        assert_eq!(ctx.metadata.high_watermark(), Offset(2));
        let failed: Result<(), MetadataError> = ctx
            .metadata
            .commit_external(|_| Err(MetadataError::InvalidRequest("no".into())));
        assert!(failed.is_err());
        assert_eq!(
            ctx.metadata.high_watermark(),
            Offset(2),
            "a failed change takes no offset"
        );
        drop(ctx);
        // Restarted: the topics file holds 1; the external file (say) 2.
        let ctx = open(&fs).unwrap();
        assert_eq!(ctx.metadata.high_watermark(), Offset(1));
        ctx.metadata.recover_offset(Offset(2));
        ctx.metadata.recover_offset(Offset(0));
        assert_eq!(ctx.metadata.high_watermark(), Offset(2), "never lowered");
        ctx.controller.delete_topic("t").unwrap();
        assert_eq!(ctx.metadata.high_watermark(), Offset(3));
    }

    #[test]
    fn files_from_before_metadata_offsets_load_as_offset_zero() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        ctx.controller
            .create_topic("old", 2, 1, BTreeMap::new())
            .unwrap();
        assert_eq!(ctx.metadata.high_watermark(), Offset(1));
        drop(ctx);
        let path = Path::new("/sim/data").join(TOPICS_FILE);
        let text = String::from_utf8(fs.contents(&path).unwrap()).unwrap();
        let old = text.replace("version=2\noffset 1\n", "version=1\n");
        assert_ne!(old, text);
        fs.set_contents(&path, old.as_bytes());
        let ctx = open(&fs).unwrap();
        assert_eq!(ctx.image.topic("old").unwrap().partitions, 2);
        assert_eq!(ctx.metadata.high_watermark(), Offset(0));
        ctx.controller.delete_topic("old").unwrap();
        assert_eq!(ctx.metadata.high_watermark(), Offset(1));
    }

    #[test]
    fn directory_id_is_the_metadata_dirs_and_stays() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        let id = ctx.metadata.directory_id();
        assert_ne!(id, Uuid::nil());
        let props = String::from_utf8(
            fs.contents(&Path::new("/sim/data").join(META_PROPERTIES))
                .unwrap(),
        )
        .unwrap();
        assert!(
            props.contains(&format!("directory.id={}\n", uuid_to_base64(id))),
            "{props}"
        );
        drop(ctx);
        assert_eq!(open(&fs).unwrap().metadata.directory_id(), id);
    }

    #[test]
    fn a_failed_fsync_is_not_acknowledged_and_changes_nothing() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        ctx.controller
            .create_topic("kept", 1, 1, BTreeMap::new())
            .unwrap();
        fs.inject(sluice_storage::Fault::once(
            TOPICS_TMP,
            FaultKind::SyncError(libc::EIO),
        ));
        let err = ctx
            .controller
            .create_topic("lost", 1, 1, BTreeMap::new())
            .unwrap_err();
        assert_eq!(
            err.kafka_error_code(),
            ResponseError::KafkaStorageError.code()
        );
        assert!(ctx.image.topic("lost").is_none());
        assert!(ctx
            .replicas
            .get_partition(&TopicPartition::new("lost", 0))
            .is_none());
        drop(ctx);
        fs.crash(7);
        let ctx = open(&fs).unwrap();
        assert!(ctx.image.topic("kept").is_some());
        assert!(ctx.image.topic("lost").is_none());
    }

    #[test]
    fn a_full_disk_refuses_topics_but_starts_serves_and_deletes() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        ctx.controller
            .create_topic("big", 1, 1, BTreeMap::new())
            .unwrap();
        let big = TopicPartition::new("big", 0);
        let log = ctx.logs.get_log(&big).unwrap();
        let mut b = sluice_record::BatchBuilder::new(sluice_record::CompressionType::None);
        for _ in 0..200 {
            b.append(
                sluice_record::Timestamp(1),
                None,
                Some(&[5u8; 1000][..]),
                &[],
            )
            .unwrap();
        }
        let mut batch = b.build().unwrap();
        log.append_as_leader(&mut batch, LeaderEpoch(0)).unwrap();
        drop(log);
        let epoch = ctx.metadata.leader_epoch();
        fs.set_capacity(Some(fs.used_bytes()));

        let err = ctx
            .controller
            .create_topic("eight", 8, 1, BTreeMap::new())
            .unwrap_err();
        assert!(err.is_no_space(), "{err}");
        assert_eq!(
            err.kafka_error_code(),
            ResponseError::KafkaStorageError.code()
        );
        assert!(ctx.image.topic("eight").is_none());
        assert!(!fs
            .list_files()
            .iter()
            .any(|p| p.to_string_lossy().contains("eight-")));
        drop(ctx);

        // Restarts on the full disk (a new leader epoch) and serves reads.
        let ctx = open(&fs).unwrap();
        assert_eq!(ctx.metadata.leader_epoch(), LeaderEpoch(epoch.0 + 1));
        assert!(ctx.image.topic("eight").is_none());
        let got = ctx
            .logs
            .get_log(&big)
            .unwrap()
            .read_to_vec(Offset(0), 1 << 20);
        assert_eq!(got.unwrap().len(), batch.len());
        // Deleting a topic frees the room a new one needs.
        ctx.controller.delete_topic("big").unwrap();
        ctx.controller
            .create_topic("eight", 8, 1, BTreeMap::new())
            .unwrap();
        drop(ctx);
        let ctx = open(&fs).unwrap();
        assert!(ctx.image.topic("big").is_none());
        assert_eq!(ctx.image.topic("eight").unwrap().partitions, 8);
        assert_eq!(fs.stats().unbacked_map_writes, 0);
    }

    #[test]
    fn topic_errors_map_to_kafka_codes() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        let m = &ctx.controller;
        let code = |r: Result<TopicMetadata, MetadataError>| r.unwrap_err().kafka_error_code();
        m.create_topic("t", -1, -1, BTreeMap::new()).unwrap();
        assert_eq!(
            ctx.image.topic("t").unwrap().partitions,
            2,
            "num.partitions"
        );
        assert_eq!(code(m.create_topic("t", 1, 1, BTreeMap::new())), 36);
        assert_eq!(code(m.create_topic("u", 0, 1, BTreeMap::new())), 37);
        assert_eq!(code(m.create_topic("u", 1, 2, BTreeMap::new())), 38);
        assert_eq!(
            code(m.create_topic("u", 1, 1, overrides(&[("x", "1")]))),
            40
        );
        assert_eq!(code(m.create_topic("../u", 1, 1, BTreeMap::new())), 17);
        assert_eq!(code(m.create_partitions("t", 1)), 37);
        assert_eq!(code(m.create_partitions("nope", 5)), 3);
        assert_eq!(code(m.delete_topic("nope")), 3);
        assert_eq!(
            code(m.alter_topic_config("t", overrides(&[("retention.ms", "x")]))),
            40
        );
        // nothing of the failed calls was created
        assert_eq!(ctx.image.topics().len(), 1);
    }

    #[test]
    fn a_stored_override_this_build_rejects_does_not_prevent_start() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        ctx.controller
            .create_topic("t", 1, 1, overrides(&[("retention.ms", "1000")]))
            .unwrap();
        drop(ctx);
        // a topics file as a newer version might have written it
        let path = Path::new("/sim/data").join(TOPICS_FILE);
        let text = String::from_utf8(fs.contents(&path).unwrap()).unwrap();
        let text = text.replace(
            "config retention.ms 1000\n",
            "config retention.ms 1000\nconfig future.key 1\n",
        );
        assert!(text.contains("future.key"), "{text}");
        fs.set_contents(&path, text.as_bytes());
        let ctx = open(&fs).unwrap();
        let p = ctx
            .replicas
            .get_partition(&TopicPartition::new("t", 0))
            .unwrap();
        assert_eq!(
            p.log().config().retention_ms,
            1000,
            "valid overrides still apply"
        );
    }

    #[test]
    fn stray_partition_dirs_are_deleted_and_node_id_is_checked() {
        let fs = Arc::new(SimFs::new());
        let ctx = open(&fs).unwrap();
        ctx.controller
            .create_topic("t", 1, 1, BTreeMap::new())
            .unwrap();
        // a log the metadata does not know (e.g. its deletion was persisted but not done)
        ctx.logs
            .get_or_create_log(&TopicPartition::new("stray", 0), LogConfig::default())
            .unwrap();
        ctx.logs.shutdown().unwrap();
        drop(ctx);
        let ctx = open(&fs).unwrap();
        assert!(ctx
            .replicas
            .get_partition(&TopicPartition::new("stray", 0))
            .is_none());
        assert!(ctx
            .replicas
            .get_partition(&TopicPartition::new("t", 0))
            .is_some());
        assert!(
            !ctx.fs.exists(Path::new("/sim/data/stray-0")),
            "stray log removed from service"
        );
        drop(ctx);

        let other =
            BrokerConfig::with_overrides(&[("log.dirs", "/sim/data"), ("node.id", "2")]).unwrap();
        let fs_dyn: Arc<dyn Fs> = fs.clone();
        let err = MetadataStore::open(&other, fs_dyn).unwrap_err();
        assert!(matches!(
            err,
            MetadataError::NodeIdMismatch {
                found: 1,
                configured: 2,
                ..
            }
        ));
    }
}

fn arb_topic() -> impl Strategy<Value = TopicMetadata> {
    (
        "[a-zA-Z0-9._-]{1,40}",
        any::<u128>(),
        1..1000i32,
        proptest::collection::btree_map("[a-z.]{1,20}", "\\PC{0,30}", 0..4),
    )
        .prop_filter("not . or ..", |(n, ..)| n != "." && n != "..")
        .prop_map(|(name, id, partitions, configs)| TopicMetadata {
            name,
            topic_id: Uuid::from_u128(id),
            partitions,
            configs,
        })
}

proptest! {
    #[test]
    fn topics_file_round_trips(
        topics in proptest::collection::vec(arb_topic(), 0..8),
        offset in 0..i64::MAX,
    ) {
        let map: BTreeMap<String, TopicMetadata> =
            topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        let text = encode_topics(&map, Offset(offset));
        let back = decode_topics(Path::new("t"), &text).unwrap();
        prop_assert_eq!(back, (map, Offset(offset)));
    }

    #[test]
    fn truncated_topics_file_is_detected(topics in proptest::collection::vec(arb_topic(), 1..5), cut in 0.0f64..1.0) {
        let map: BTreeMap<String, TopicMetadata> =
            topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        let text = encode_topics(&map, Offset(12));
        let at = ((text.len() - 1) as f64 * cut) as usize;
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
        // a cut anywhere but after the final newline loses the end line
        prop_assert!(decode_topics(Path::new("t"), &text[..at]).is_err());
    }

    #[test]
    fn base64_ids_round_trip(id in any::<u128>()) {
        let id = Uuid::from_u128(id);
        prop_assert_eq!(uuid_from_base64(&uuid_to_base64(id)), Some(id));
    }

    #[test]
    fn decode_never_panics(s in "\\PC{0,200}") {
        let _ = uuid_from_base64(&s);
        let _ = decode_topics(Path::new("t"), &s);
        let _ = decode_group_configs(Path::new("g"), &s);
        let _ = decode_quorum_state(Path::new("q"), &s);
    }

    #[test]
    fn group_configs_file_round_trips(
        groups in proptest::collection::btree_map(
            "\\PC{0,20}",
            proptest::collection::btree_map("[a-z.]{1,20}", "\\PC{0,30}", 0..4),
            0..6,
        ),
        cut in 0.0f64..1.0,
        offset in 0..i64::MAX,
    ) {
        let text = encode_group_configs(&groups, Offset(offset));
        prop_assert_eq!(
            decode_group_configs(Path::new("g"), &text).unwrap(),
            (groups, Offset(offset))
        );
        let at = ((text.len() - 1) as f64 * cut) as usize;
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
        prop_assert!(decode_group_configs(Path::new("g"), &text[..at]).is_err());
    }
}
