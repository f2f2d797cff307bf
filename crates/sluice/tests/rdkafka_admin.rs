//! librdkafka's admin API against the real `sluice` binary: DescribeConfigs
//! (topic and broker), AlterConfigs, CreatePartitions, DeleteRecords — what a
//! real client sees of the admin handlers.

mod common;

use std::time::Duration;

use common::start;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_admin_apis() {
    let sluice = start(&[("log.retention.hours", "3")]);
    let bootstrap = sluice.bootstrap().to_string();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));

    let res = admin
        .create_topics(
            &[NewTopic::new("adm", 1, TopicReplication::Fixed(1)).set("segment.bytes", "2097152")],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(res[0], Ok("adm".to_string()));
    // an invalid config and a bad partition count, as librdkafka reports them
    let res = admin
        .create_topics(
            &[
                NewTopic::new("bad1", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
                NewTopic::new("bad2", 1, TopicReplication::Fixed(3)),
            ],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        res[0],
        Err(("bad1".to_string(), RDKafkaErrorCode::InvalidConfig))
    );
    assert_eq!(
        res[1],
        Err((
            "bad2".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))
    );

    // DescribeConfigs: topic override, broker-derived default, hard default
    let described = admin
        .describe_configs(
            &[
                ResourceSpecifier::Topic("adm"),
                ResourceSpecifier::Broker(1),
            ],
            &opts,
        )
        .await
        .unwrap();
    let topic = described[0].as_ref().expect("topic described");
    let seg = topic.get("segment.bytes").unwrap();
    assert_eq!(
        (seg.value.as_deref(), &seg.source, seg.is_default),
        (Some("2097152"), &ConfigSource::DynamicTopic, false)
    );
    // The static log.retention.hours gives the value; Kafka 4.1.2 reports its
    // source as DEFAULT_CONFIG (retention.ms' synonyms start at
    // log.retention.ms, set nowhere, so it lists none).
    let ret = topic.get("retention.ms").unwrap();
    assert_eq!(
        (ret.value.as_deref(), &ret.source),
        (Some("10800000"), &ConfigSource::Default)
    );
    let max = topic.get("max.message.bytes").unwrap();
    assert_eq!(
        (&max.source, max.is_default),
        (&ConfigSource::Default, true)
    );
    let broker = described[1].as_ref().expect("broker described");
    let hours = broker.get("log.retention.hours").unwrap();
    assert_eq!(
        (hours.value.as_deref(), hours.is_read_only),
        (Some("3"), true)
    );

    // AlterConfigs (legacy, what librdkafka's alter_configs sends): replaces the overrides
    let res = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "5000")],
            &opts,
        )
        .await
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let topic = described[0].as_ref().unwrap();
    assert_eq!(
        topic.get("retention.ms").unwrap().value.as_deref(),
        Some("5000")
    );
    assert_eq!(
        topic.get("segment.bytes").unwrap().source,
        ConfigSource::Default
    );
    // an invalid value is rejected and changes nothing (the rdkafka crate does
    // not surface per-resource AlterConfigs errors, so look at the result)
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "-9")],
            &opts,
        )
        .await
        .unwrap();
    let after = admin
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    assert_eq!(
        after[0]
            .as_ref()
            .unwrap()
            .get("retention.ms")
            .unwrap()
            .value
            .as_deref(),
        Some("5000")
    );

    // CreatePartitions
    let res = admin
        .create_partitions(&[NewPartitions::new("adm", 3)], &opts)
        .await
        .unwrap();
    assert_eq!(res[0], Ok("adm".to_string()));
    let res = admin
        .create_partitions(&[NewPartitions::new("adm", 2)], &opts)
        .await
        .unwrap();
    assert_eq!(
        res[0],
        Err(("adm".to_string(), RDKafkaErrorCode::InvalidPartitions))
    );

    // DeleteRecords on partition 1 after producing 6 records to it
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "false")
        .create()
        .unwrap();
    for i in 0..6 {
        producer
            .send(
                FutureRecord::<(), _>::to("adm")
                    .partition(1)
                    .payload(&format!("v{i}")),
                TIMEOUT,
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("{e}"));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("adm", 1, Offset::Offset(4))
        .unwrap();
    let done = admin.delete_records(&tpl, &opts).await.unwrap();
    let p = done.find_partition("adm", 1).unwrap();
    assert_eq!(p.offset(), Offset::Offset(4), "new low watermark");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "adm")
        .create()
        .unwrap();
    assert_eq!(
        consumer.fetch_watermarks("adm", 1, TIMEOUT).unwrap(),
        (4, 6)
    );
}
