//! The KIP-848 APIs over a socket to an in-process broker: what a client of
//! the consumer group protocol sees on the wire (advertised versions, error
//! codes, assignments by topic id, ConsumerGroupDescribe, and how the
//! classic-group APIs answer for a consumer group).

mod netkit;

use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DescribeGroupsRequest, GroupId, JoinGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{Client, TestBroker};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("wire-g")))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("orders"))]))
        .with_topic_partitions(Some(vec![]))
}

async fn heartbeat(
    c: &mut Client,
    version: i16,
    req: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    match c.call(ApiKey::ConsumerGroupHeartbeat, version, req).await {
        ResponseKind::ConsumerGroupHeartbeat(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn owned(r: &ConsumerGroupHeartbeatResponse) -> Vec<TopicPartitions> {
    r.assignment
        .as_ref()
        .map(|a| {
            a.topic_partitions
                .iter()
                .map(|tp| {
                    TopicPartitions::default()
                        .with_topic_id(tp.topic_id)
                        .with_partitions(tp.partitions.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_protocol_on_the_wire() {
    let b = TestBroker::start_default().await;
    let ctx = b.broker.context().clone();
    let topic = ctx
        .controller
        .create_topic("orders", 4, 1, BTreeMap::new())
        .await
        .unwrap();
    let mut c = b.client().await;

    // Both APIs are advertised.
    match c
        .call(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(s("wire-test"))
                .with_client_software_version(s("1.0")),
        )
        .await
    {
        ResponseKind::ApiVersions(r) => {
            for key in [
                ApiKey::ConsumerGroupHeartbeat,
                ApiKey::ConsumerGroupDescribe,
            ] {
                let v = r
                    .api_keys
                    .iter()
                    .find(|v| v.api_key == key as i16)
                    .unwrap_or_else(|| panic!("{key:?} not advertised"));
                assert_eq!((v.min_version, v.max_version), (0, 1));
            }
        }
        other => panic!("unexpected {other:?}"),
    }

    // v1 needs a client-generated member id; v0 gets one from the broker.
    let r = heartbeat(&mut c, 1, &join("")).await;
    assert_eq!(r.error_code, 42, "INVALID_REQUEST");
    // The first join may find `__consumer_offsets` still being created or
    // loaded on a busy machine: COORDINATOR_NOT_AVAILABLE (15) or
    // COORDINATOR_LOAD_IN_PROGRESS (14), which clients retry.
    let mut r = heartbeat(&mut c, 0, &join("")).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while matches!(r.error_code, 14 | 15) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        r = heartbeat(&mut c, 0, &join("")).await;
    }
    assert_eq!(r.error_code, 0, "{r:?}");
    let generated = r.member_id.clone().unwrap();
    assert!(!generated.is_empty());
    assert!(r.member_epoch > 0);
    assert_eq!(r.heartbeat_interval_ms, 5000);
    let a_epoch = r.member_epoch;
    let a_owned = owned(&r);
    assert_eq!(a_owned.len(), 1);
    assert_eq!(a_owned[0].topic_id, topic.topic_id);
    assert_eq!(a_owned[0].partitions.len(), 4);

    // An assignor the broker does not have.
    let r = heartbeat(
        &mut c,
        1,
        &join("b").with_server_assignor(Some(s("sticky"))),
    )
    .await;
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    // A second member joins: it must wait for the first to revoke.
    let r = heartbeat(&mut c, 1, &join("b").with_server_assignor(Some(s("range")))).await;
    assert_eq!(r.error_code, 0);
    assert!(owned(&r).iter().all(|tp| tp.partitions.is_empty()));
    let b_epoch = r.member_epoch;
    // A too-new epoch is fenced.
    let hb_a = |epoch: i32, tps: Vec<TopicPartitions>| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("wire-g")))
            .with_member_id(s(&generated))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1)
            .with_topic_partitions(Some(tps))
    };
    let r = heartbeat(&mut c, 1, &hb_a(a_epoch + 5, a_owned.clone())).await;
    assert_eq!(r.error_code, 110, "FENCED_MEMBER_EPOCH");
    // a is told to give up two partitions.
    let r = heartbeat(&mut c, 1, &hb_a(a_epoch, a_owned.clone())).await;
    assert_eq!(r.error_code, 0);
    let kept = owned(&r);
    assert_eq!(kept[0].partitions.len(), 2);

    // While a is revoking: ConsumerGroupDescribe shows the group reconciling.
    let req = ConsumerGroupDescribeRequest::default()
        .with_include_authorized_operations(true)
        .with_group_ids(vec![
            GroupId(s("wire-g")),
            GroupId(s("nope")),
            GroupId(s("")),
        ]);
    match c.call(ApiKey::ConsumerGroupDescribe, 1, &req).await {
        ResponseKind::ConsumerGroupDescribe(r) => {
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0);
            assert_eq!(g.group_state.as_str(), "Reconciling");
            assert_eq!(g.assignor_name.as_str(), "range");
            assert_eq!(g.members.len(), 2);
            let m = g.members.iter().find(|m| m.member_id == generated).unwrap();
            assert_eq!(m.client_host.as_str(), "/127.0.0.1");
            assert_eq!(m.member_type, 1);
            assert_eq!(
                m.assignment.topic_partitions[0].topic_name.0.as_str(),
                "orders"
            );
            assert_eq!(r.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");
            assert_eq!(r.groups[2].error_code, 24, "INVALID_GROUP_ID");
            assert_eq!(g.authorized_operations, 3400, "as Kafka 4.1.2 answers");
        }
        other => panic!("unexpected {other:?}"),
    }

    // a acknowledges; b then gets the released partitions.
    let r = heartbeat(&mut c, 1, &hb_a(a_epoch, kept.clone())).await;
    assert_eq!(r.error_code, 0);
    let hb_b = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("wire-g")))
        .with_member_id(s("b"))
        .with_member_epoch(b_epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(vec![]));
    let r = heartbeat(&mut c, 1, &hb_b).await;
    assert_eq!(r.error_code, 0);
    let b_owned = owned(&r);
    assert_eq!(b_owned[0].partitions.len(), 2);
    let mut all: Vec<i32> = b_owned[0]
        .partitions
        .iter()
        .chain(kept[0].partitions.iter())
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);

    // ListGroups v5 knows the type; the classic filter hides it.
    for (filter, expect) in [
        (vec![], 1),
        (vec![s("consumer")], 1),
        (vec![s("classic")], 0),
    ] {
        match c
            .call(
                ApiKey::ListGroups,
                5,
                &ListGroupsRequest::default().with_types_filter(filter),
            )
            .await
        {
            ResponseKind::ListGroups(r) => {
                let gs: Vec<_> = r
                    .groups
                    .iter()
                    .filter(|g| g.group_id.0.as_str() == "wire-g")
                    .collect();
                assert_eq!(gs.len(), expect);
                if let Some(g) = gs.first() {
                    assert_eq!(g.group_type.as_str(), "consumer");
                    assert_eq!(g.protocol_type.as_str(), "consumer");
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // DescribeGroups (classic) answers Dead for it, as Kafka does.
    match c
        .call(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("wire-g"))]),
        )
        .await
    {
        ResponseKind::DescribeGroups(r) => {
            assert_eq!(r.groups[0].group_state.as_str(), "Dead");
            assert!(r.groups[0].members.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    // A classic JoinGroup to the (non-empty) consumer group.
    let jr = JoinGroupRequest::default()
        .with_group_id(GroupId(s("wire-g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]);
    match c.call(ApiKey::JoinGroup, 5, &jr).await {
        ResponseKind::JoinGroup(r) => assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL"),
        other => panic!("unexpected {other:?}"),
    }
    // OffsetCommit v9 with a stale member epoch.
    let commit = |epoch: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("wire-g")))
            .with_member_id(s("b"))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("orders")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(b_owned[0].partitions[0])
                    .with_committed_offset(5)])])
    };
    let b_epoch_now = r.member_epoch;
    for (epoch, code) in [(b_epoch_now - 1, 113), (b_epoch_now, 0)] {
        match c.call(ApiKey::OffsetCommit, 9, &commit(epoch)).await {
            ResponseKind::OffsetCommit(r) => {
                assert_eq!(r.topics[0].partitions[0].error_code, code, "epoch {epoch}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Assignments carry topic ids; the Java client then asks Metadata by id
    // with the name left at "" (it must be ignored, as Kafka does).
    let req = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_topic_id(topic.topic_id)
            .with_name(Some(TopicName(s("")))),
    ]));
    match c.call(ApiKey::Metadata, 12, &req).await {
        ResponseKind::Metadata(r) => {
            assert_eq!(r.topics[0].error_code, 0);
            assert_eq!(
                r.topics[0].name.as_ref().map(|n| n.0.as_str()),
                Some("orders")
            );
            assert_eq!(r.topics[0].partitions.len(), 4);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A consumer-protocol member must commit with v9+.
    match c.call(ApiKey::OffsetCommit, 8, &commit(b_epoch_now)).await {
        ResponseKind::OffsetCommit(r) => {
            assert_eq!(
                r.topics[0].partitions[0].error_code, 35,
                "UNSUPPORTED_VERSION"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    b.broker.shutdown().await.unwrap();
}
