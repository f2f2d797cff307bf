//! The matrix's second set of probes: the APIs whose authorization came
//! later (DescribeProducers, ConsumerGroupHeartbeat's subscription,
//! DescribeTransactions' and ConsumerGroupDescribe's topics, a denied
//! `acks=0` Produce, and the cluster operations DescribeQuorum,
//! AlterReplicaLogDirs and ListConfigResources). Some need state that only
//! a super user can make (an open transaction, a consumer group with an
//! assignment); `admin` makes it, alice probes it.

use kafka_protocol::messages::*;

use super::common::sasl::Conn;
use super::common::sb;
use super::{batch, login, topic};

/// The probes of one state `s` of the topics (`m-{s}`).
pub fn probes(addr: &str, alice: &mut Conn, s: &str) -> Vec<String> {
    let t = format!("m-{s}");
    let mut out = Vec::new();
    let mut row = |probe: &str, codes: Vec<i16>| out.push(format!("{probe}\t{s}\t{codes:?}"));

    let dp = alice
        .send(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(topic(&t))
                    .with_partition_indexes(vec![0]),
            ]),
        )
        .unwrap();
    row(
        "DescribeProducers",
        dp.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
    );

    // A heartbeat that subscribes to the topic, in a group alice may read;
    // a member that got in leaves again.
    let group = format!("g-allow-hb-{s}");
    let hb = heartbeat(alice, &group, &t);
    row("ConsumerGroupHeartbeat(subscribe)", vec![hb.error_code]);
    if hb.error_code == 0 {
        leave(alice, &group, &hb);
    }

    let mut admin = login(addr, "admin");
    // ConsumerGroupDescribe: a group of admin's, assigned the topic.
    let group = format!("g-allow-cgd-{s}");
    let joined = heartbeat(&mut admin, &group, &t);
    assert_eq!(joined.error_code, 0, "admin joins {group}: {joined:?}");
    let dg = alice
        .send(
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(&group))]),
        )
        .unwrap();
    row(
        "ConsumerGroupDescribe(topics)",
        dg.groups
            .iter()
            .flat_map(|g| [g.error_code, g.members.len() as i16])
            .collect(),
    );
    leave(&mut admin, &group, &joined);

    // DescribeTransactions: an open transaction of admin's on the topic,
    // under a transactional id alice may describe; the code and how many
    // topics alice sees.
    let txn = format!("t-allow-open-{s}");
    let producer = open_transaction(&mut admin, &txn, &t);
    let dt = alice
        .send(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(sb(&txn))]),
        )
        .unwrap();
    row(
        "DescribeTransactions(topics)",
        dt.transaction_states
            .iter()
            .flat_map(|t| [t.error_code, t.topics.len() as i16])
            .collect(),
    );
    let ended = admin
        .send(
            3,
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(sb(&txn)))
                .with_producer_id(producer.0)
                .with_producer_epoch(producer.1)
                .with_committed(false),
        )
        .unwrap();
    assert_eq!(ended.error_code, 0, "abort {txn}: {ended:?}");

    // acks=0: a denied Produce gets no answer; Kafka closes the connection.
    // 1: the next request is answered; 0: the connection was closed.
    let mut c = login(addr, "alice");
    c.write_request(
        9,
        &ProduceRequest::default()
            .with_acks(0)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(topic(&t))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch())),
                ])]),
    );
    let open = c.send(3, &ApiVersionsRequest::default()).is_some();
    row("Produce(acks=0)", vec![open as i16]);
    out
}

/// A first ConsumerGroupHeartbeat (v0: the broker names the member)
/// subscribing to `topic`.
fn heartbeat(c: &mut Conn, group: &str, topic_name: &str) -> ConsumerGroupHeartbeatResponse {
    c.send(
        0,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(""))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic(topic_name)]))
            .with_topic_partitions(Some(vec![])),
    )
    .unwrap()
}

fn leave(c: &mut Conn, group: &str, joined: &ConsumerGroupHeartbeatResponse) {
    let left = c
        .send(
            0,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_member_id(joined.member_id.clone().unwrap_or_default())
                .with_member_epoch(-1),
        )
        .unwrap();
    assert_eq!(left.error_code, 0, "leave {group}: {left:?}");
}

/// InitProducerId and AddPartitionsToTxn v3 (a client's) of partition 0.
/// Returns the producer id and epoch.
fn open_transaction(admin: &mut Conn, txn: &str, topic_name: &str) -> (ProducerId, i16) {
    let ip = admin
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb(txn))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        )
        .unwrap();
    assert_eq!(ip.error_code, 0, "{ip:?}");
    let add = admin
        .send(
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(sb(txn)))
                .with_v3_and_below_producer_id(ip.producer_id)
                .with_v3_and_below_producer_epoch(ip.producer_epoch)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic(topic_name))
                        .with_partitions(vec![0]),
                ]),
        )
        .unwrap();
    let codes: Vec<i16> = add
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect();
    assert_eq!(codes, vec![0], "{add:?}");
    (ip.producer_id, ip.producer_epoch)
}

/// The cluster operations alice has no ACL for, and the cluster's
/// authorized operations she sees.
pub fn cluster_probes(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    let dq = c
        .send(
            2,
            &DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(topic("__cluster_metadata"))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0)
                    ]),
            ]),
        )
        .unwrap();
    out.push(format!("DescribeQuorum\tcluster\t[{}]", dq.error_code));
    let ar = c
        .send(
            2,
            &AlterReplicaLogDirsRequest::default().with_dirs(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                    .with_path(sb("/tmp/sluice-acl-matrix-elsewhere"))
                    .with_topics(vec![
                        alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                            .with_name(topic("m-allow"))
                            .with_partitions(vec![0]),
                    ]),
            ]),
        )
        .unwrap();
    out.push(format!(
        "AlterReplicaLogDirs\tcluster\t{:?}",
        ar.results
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect::<Vec<_>>()
    ));
    let lc = c.send(1, &ListConfigResourcesRequest::default()).unwrap();
    out.push(format!("ListConfigResources\tcluster\t[{}]", lc.error_code));
    // The cluster's authorized operations: 0 without DESCRIBE on it.
    let dc = c
        .send(
            1,
            &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )
        .unwrap();
    out.push(format!(
        "DescribeCluster(operations)\tcluster\t[{}, {}]",
        dc.error_code, dc.cluster_authorized_operations
    ));
    let m = c
        .send(
            10,
            &MetadataRequest::default()
                .with_topics(Some(vec![]))
                .with_include_cluster_authorized_operations(true),
        )
        .unwrap();
    out.push(format!(
        "Metadata(cluster operations)\tcluster\t[{}]",
        m.cluster_authorized_operations
    ));
    out
}
