//! The authorization matrix (issue 20): the same requests, sent by the
//! same principal (User:alice over SASL_PLAINTEXT PLAIN) under the same
//! ACLs, get the same error codes from Sluice as from Apache Kafka 4.1.2.
//!
//! Resources of each kind come in four states, set up by a super user with
//! CreateAcls before the probes: `*-none` (no ACL), `*-allow` (PREFIXED
//! ALLOW ALL), `*-deny` (PREFIXED ALLOW ALL and PREFIXED DENY ALL: DENY
//! wins) and `*-lit` (LITERAL ALLOW WRITE: DESCRIBE is implied, READ is
//! not), for topics (`m-`), groups (`g-`) and transactional ids (`t-`);
//! on the cluster alice may only IDEMPOTENT_WRITE. Each probe is one API on one
//! resource; the transcript holds its error codes.
//!
//! `more.rs` holds the probes of the APIs authorized later
//! (DescribeProducers, DescribeQuorum, ... and the acks=0 Produce).
//!
//! Kafka's transcript is recorded in `tests/fixtures/acl_matrix.txt`
//! (`SLUICE_RECORD_TRANSCRIPTS=1` rewrites it from a live Kafka;
//! `SLUICE_TEST_FULL=1` also checks that Kafka still gives it); Sluice's
//! must equal it.

mod common;
#[path = "acl_matrix/more.rs"]
mod more;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use sluice_record::{BatchBuilder, CompressionType, Timestamp};
use sluice_testkit::ReferenceKafka;

use common::acls::{JAAS_USERS, STANDARD_AUTHORIZER};
use common::sasl::Conn;
use common::sb;

const STATES: [&str; 4] = ["none", "allow", "deny", "lit"];

fn topic(n: &str) -> TopicName {
    TopicName(sb(n))
}

fn acl(rt: i8, name: &str, pattern: i8, op: i8, permission: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(sb(name))
        .with_resource_pattern_type(pattern)
        .with_principal(sb("User:alice"))
        .with_host(sb("*"))
        .with_operation(op)
        .with_permission_type(permission)
}

fn login(addr: &str, user: &str) -> Conn {
    let mut c = Conn::connect(addr);
    let (code, msg) = c.plain_login(user, &format!("{user}-secret"));
    assert_eq!(code, 0, "{user}: {msg:?}");
    c
}

/// The super user's set-up: the topics and the ACLs of every state.
fn set_up(addr: &str) {
    let mut admin = login(addr, "admin");
    let topics = STATES
        .iter()
        .map(|s| {
            CreatableTopic::default()
                .with_name(topic(&format!("m-{s}")))
                .with_num_partitions(1)
                .with_replication_factor(1)
        })
        .collect();
    let created = admin
        .send(
            7,
            &CreateTopicsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(30_000),
        )
        .unwrap();
    assert!(
        created.topics.iter().all(|t| t.error_code == 0),
        "{created:?}"
    );
    let mut creations = Vec::new();
    for (rt, prefix) in [(2, "m"), (3, "g"), (5, "t")] {
        // ALL = 2, WRITE = 4; ALLOW = 3, DENY = 2; LITERAL = 3, PREFIXED = 4.
        creations.push(acl(rt, &format!("{prefix}-allow"), 4, 2, 3));
        creations.push(acl(rt, &format!("{prefix}-deny"), 4, 2, 3));
        creations.push(acl(rt, &format!("{prefix}-deny"), 4, 2, 2));
        creations.push(acl(rt, &format!("{prefix}-lit"), 3, 4, 3));
    }
    // On the cluster only IDEMPOTENT_WRITE (12), which does not imply
    // DESCRIBE: the cluster's authorized operations are then 0.
    creations.push(acl(4, "kafka-cluster", 3, 12, 3));
    let resp = admin
        .send(3, &CreateAclsRequest::default().with_creations(creations))
        .unwrap();
    assert!(resp.results.iter().all(|r| r.error_code == 0), "{resp:?}");
    warm_up(&mut admin);
}

/// Retries `f` until it answers 0, for at most a minute.
fn until_ok(what: &str, mut f: impl FnMut() -> i16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let code = f();
        if code == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: still {code}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Makes both coordinators ready (Kafka creates and loads
/// `__consumer_offsets` and `__transaction_state` on first use), so that
/// the probes see authorization, not coordinator start-up.
fn warm_up(admin: &mut Conn) {
    until_ok("group coordinator", || {
        let f = admin
            .send(
                3,
                &FindCoordinatorRequest::default()
                    .with_key(sb("g-warm"))
                    .with_key_type(0),
            )
            .unwrap();
        if f.error_code != 0 {
            return f.error_code;
        }
        admin
            .send(
                7,
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(sb("g-warm")))
                    .with_topics(None),
            )
            .unwrap()
            .error_code
    });
    until_ok("transaction coordinator", || {
        let f = admin
            .send(
                3,
                &FindCoordinatorRequest::default()
                    .with_key(sb("t-warm"))
                    .with_key_type(1),
            )
            .unwrap();
        if f.error_code != 0 {
            return f.error_code;
        }
        admin
            .send(
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(sb("t-warm"))))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            )
            .unwrap()
            .error_code
    });
}

fn batch() -> Bytes {
    let mut b = BatchBuilder::new(CompressionType::None);
    b.append(Timestamp(0), None, Some(b"v"), &[]).unwrap();
    b.build().unwrap().into()
}

/// The probes on one state's resources: (probe, error codes) lines.
fn probes(c: &mut Conn, s: &str) -> Vec<String> {
    let t = format!("m-{s}");
    let g = format!("g-{s}");
    let x = format!("t-{s}");
    let mut out = Vec::new();
    let mut row = |probe: &str, codes: Vec<i16>| out.push(format!("{probe}\t{s}\t{codes:?}"));

    let m = c
        .send(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic(&t))),
                    MetadataRequestTopic::default().with_name(Some(topic(&format!("{t}-missing")))),
                ]))
                .with_allow_auto_topic_creation(false),
        )
        .unwrap();
    let mut codes: Vec<(String, i16)> = m
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect();
    codes.sort();
    row("Metadata", codes.into_iter().map(|(_, c)| c).collect());

    let p = c
        .send(
            9,
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic(&t))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch()))])]),
        )
        .unwrap();
    row(
        "Produce",
        p.responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect(),
    );

    let f = c
        .send(
            12,
            &FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic(&t))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20)
                        .with_log_start_offset(-1)])]),
        )
        .unwrap();
    row(
        "Fetch",
        f.responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
    );

    let l = c
        .send(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic(&t))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)])]),
        )
        .unwrap();
    row(
        "ListOffsets",
        l.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
    );

    let fc = c
        .send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(&g))
                .with_key_type(0),
        )
        .unwrap();
    row("FindCoordinator(group)", vec![fc.error_code]);
    let fc = c
        .send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(&x))
                .with_key_type(1),
        )
        .unwrap();
    row("FindCoordinator(txn)", vec![fc.error_code]);

    let oc = c
        .send(
            8,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(sb(&g)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(sb(""))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic(&t))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0)])]),
        )
        .unwrap();
    row(
        "OffsetCommit",
        oc.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
    );

    let of = c
        .send(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(sb(&g)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic(&t))
                    .with_partition_indexes(vec![0])])),
        )
        .unwrap();
    let mut codes = vec![of.error_code];
    codes.extend(
        of.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
    );
    row("OffsetFetch", codes);

    let hb = c
        .send(
            4,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(sb(&g)))
                .with_generation_id(1)
                .with_member_id(sb("nobody")),
        )
        .unwrap();
    row("Heartbeat", vec![hb.error_code]);

    let dg = c
        .send(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(&g))]),
        )
        .unwrap();
    row(
        "DescribeGroups",
        dg.groups.iter().map(|g| g.error_code).collect(),
    );

    let ip = c
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb(&x))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        )
        .unwrap();
    row("InitProducerId(txn)", vec![ip.error_code]);

    let dt = c
        .send(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(sb(&x))]),
        )
        .unwrap();
    row(
        "DescribeTransactions",
        dt.transaction_states.iter().map(|t| t.error_code).collect(),
    );

    let od = c
        .send(
            0,
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(sb(&g)))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic(&t))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        )
        .unwrap();
    let mut codes = vec![od.error_code];
    codes.extend(
        od.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
    );
    row("OffsetDelete", codes);

    let dc = c
        .send(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(sb(&t))
                    .with_configuration_keys(Some(vec![sb("retention.ms")])),
            ]),
        )
        .unwrap();
    row(
        "DescribeConfigs(topic)",
        dc.results.iter().map(|r| r.error_code).collect(),
    );

    let ia = c
        .send(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(sb(&t))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(sb("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(sb("86400000")))]),
            ]),
        )
        .unwrap();
    row(
        "IncrementalAlterConfigs(topic)",
        ia.responses.iter().map(|r| r.error_code).collect(),
    );

    let ct = c
        .send(
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic(&format!("{t}-new")))
                    .with_num_partitions(1)
                    .with_replication_factor(1)])
                .with_timeout_ms(30_000),
        )
        .unwrap();
    row(
        "CreateTopics",
        ct.topics.iter().map(|t| t.error_code).collect(),
    );

    let dtp = c
        .send(
            0,
            &DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default().with_name(topic(&t)),
                ])
                .with_response_partition_limit(2000),
        )
        .unwrap();
    row(
        "DescribeTopicPartitions",
        dtp.topics.iter().map(|t| t.error_code).collect(),
    );

    let dr = c
        .send(
            2,
            &DeleteRecordsRequest::default()
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(topic(&t))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(0),
                    ])])
                .with_timeout_ms(30_000),
        )
        .unwrap();
    row(
        "DeleteRecords",
        dr.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
    );

    let dt = c
        .send(
            6,
            &DeleteTopicsRequest::default()
                .with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(topic(&t)))
                ])
                .with_timeout_ms(30_000),
        )
        .unwrap();
    row(
        "DeleteTopics",
        dt.responses.iter().map(|t| t.error_code).collect(),
    );
    out
}

/// The cluster-level probes (alice may only IDEMPOTENT_WRITE the cluster).
fn cluster_probes(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    let ca = c
        .send(
            3,
            &CreateAclsRequest::default().with_creations(vec![acl(2, "x", 3, 3, 3)]),
        )
        .unwrap();
    out.push(format!(
        "CreateAcls\tcluster\t{:?}",
        ca.results.iter().map(|r| r.error_code).collect::<Vec<_>>()
    ));
    let da = c
        .send(
            3,
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1),
        )
        .unwrap();
    out.push(format!("DescribeAcls\tcluster\t[{}]", da.error_code));
    let ip = c
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        )
        .unwrap();
    out.push(format!(
        "InitProducerId(idempotent)\tcluster\t[{}]",
        ip.error_code
    ));
    let dc = c
        .send(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(sb("1"))
                    .with_configuration_keys(Some(vec![sb("log.retention.ms")])),
            ]),
        )
        .unwrap();
    out.push(format!(
        "DescribeConfigs(broker)\tcluster\t{:?}",
        dc.results.iter().map(|r| r.error_code).collect::<Vec<_>>()
    ));
    // Client quotas: ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster.
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    let aq = c
        .send(
            1,
            &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(sb("user"))
                    .with_entity_name(Some(sb("alice")))])
                .with_ops(vec![OpData::default()
                    .with_key(sb("producer_byte_rate"))
                    .with_value(1_048_576.0)])]),
        )
        .unwrap();
    out.push(format!(
        "AlterClientQuotas\tcluster\t{:?}",
        aq.entries.iter().map(|e| e.error_code).collect::<Vec<_>>()
    ));
    let dq = c.send(1, &DescribeClientQuotasRequest::default()).unwrap();
    out.push(format!(
        "DescribeClientQuotas\tcluster\t[{}]",
        dq.error_code
    ));
    out
}

fn scenario(addr: &str) -> String {
    set_up(addr);
    let mut alice = login(addr, "alice");
    let mut lines = Vec::new();
    for s in STATES {
        // The second set first: the first ends by deleting the topic.
        lines.extend(more::probes(addr, &mut alice, s));
        lines.extend(probes(&mut alice, s));
    }
    lines.extend(cluster_probes(&mut alice));
    lines.extend(more::cluster_probes(&mut alice));
    lines.join("\n") + "\n"
}

fn authorizer_keys() -> Vec<(&'static str, &'static str)> {
    vec![
        ("sasl.enabled.mechanisms", "PLAIN"),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            JAAS_USERS,
        ),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "User:admin;User:ANONYMOUS"),
        ("auto.create.topics.enable", "true"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]
}

fn kafka_transcript() -> String {
    let kafka = ReferenceKafka::start_with_listener("SASL_PLAINTEXT", &authorizer_keys())
        .expect("Kafka starts")
        .expect("the jars are here");
    let port = kafka.listener_port().expect("the SASL listener");
    scenario(&format!("127.0.0.1:{port}"))
}

#[test]
fn error_codes_equal_kafkas() {
    let mut keys = authorizer_keys();
    keys.retain(|(k, _)| *k != "sasl.enabled.mechanisms");
    let (_sluice, addr) = common::sasl::start_sasl(&keys);
    let ours = scenario(&addr);
    common::transcript::same_as_kafka("acl_matrix", &ours, kafka_transcript);
}
