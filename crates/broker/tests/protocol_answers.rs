//! Requests Kafka answers with an error code instead of closing the
//! connection: zstd batches on Produce before v7, and the APIs Sluice does
//! not implement (answered as Kafka answers when the feature is absent).

mod netkit;

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, MetadataRequest, ProduceRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use netkit::{now_ms, Client, TestBroker};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_by_metadata(c: &mut Client, topic: &str) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    c.call(ApiKey::Metadata, 12, &req).await;
}

fn batch_in(codec: CompressionType) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    for i in 0..10 {
        b.append(
            Timestamp(now_ms() + i),
            Some(b"key"),
            Some(b"a value that compresses, a value that compresses"),
            &[],
        )
        .unwrap();
    }
    b.build().unwrap()
}

/// `(error code, base offset)` of producing `records` to partition 0.
async fn produce(c: &mut Client, version: i16, topic: &str, records: Vec<u8>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    match c.call(ApiKey::Produce, version, &req).await {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// KIP-110: zstd needs Produce v7. Kafka answers an older Produce carrying a
/// zstd batch with UNSUPPORTED_COMPRESSION_TYPE (76) for that partition and
/// appends nothing; other codecs and v7+ are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_batches_need_produce_v7() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    create_by_metadata(&mut c, "z").await;
    for version in [3, 6] {
        let zstd = batch_in(CompressionType::Zstd);
        assert_eq!(
            produce(&mut c, version, "z", zstd).await,
            (76, -1),
            "Produce v{version} with zstd"
        );
    }
    // The connection stays usable, and nothing was appended.
    assert_eq!(
        produce(&mut c, 3, "z", batch_in(CompressionType::Lz4)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, 7, "z", batch_in(CompressionType::Zstd)).await,
        (0, 10)
    );
    b.broker.shutdown().await.unwrap();
}

/// Answers `body` must get: decoded from the response to `api` v`version`.
async fn answered<T: kafka_protocol::protocol::Encodable>(
    c: &mut Client,
    api: ApiKey,
    version: i16,
    body: &T,
) -> ResponseKind {
    c.call(api, version, body).await
}

/// APIs Sluice does not implement are answered as Kafka 4.1.2 answers them
/// on a PLAINTEXT listener without an authorizer (SASL, ACLs, delegation
/// tokens: its exact codes and messages) or with UNSUPPORTED_VERSION
/// (quotas, SCRAM, transactions, features), one result per item of the
/// request; the connection stays open. A version Kafka does not serve
/// either (CreateAcls v0) still closes it, as Kafka does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_apis_get_kafkas_error_answers() {
    use kafka_protocol::messages::*;
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    let s = |v: &'static str| StrBytes::from_static_str(v);

    for v in [0, 1] {
        match answered(
            &mut c,
            ApiKey::SaslHandshake,
            v,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .await
        {
            ResponseKind::SaslHandshake(r) => assert_eq!(r.error_code, 34),
            other => panic!("{other:?}"),
        }
    }
    for v in [0, 2] {
        match answered(
            &mut c,
            ApiKey::SaslAuthenticate,
            v,
            &SaslAuthenticateRequest::default(),
        )
        .await
        {
            ResponseKind::SaslAuthenticate(r) => assert_eq!(r.error_code, 34),
            other => panic!("{other:?}"),
        }
    }
    for v in [1, 3] {
        let creation = create_acls_request::AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let req = CreateAclsRequest::default().with_creations(vec![creation.clone(), creation]);
        match answered(&mut c, ApiKey::CreateAcls, v, &req).await {
            ResponseKind::CreateAcls(r) => {
                assert_eq!(r.results.len(), 2);
                for x in r.results {
                    assert_eq!(x.error_code, 54); // SECURITY_DISABLED
                    assert_eq!(
                        x.error_message.as_deref(),
                        Some("No Authorizer is configured.")
                    );
                }
            }
            other => panic!("{other:?}"),
        }
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        match answered(&mut c, ApiKey::DescribeAcls, v, &req).await {
            ResponseKind::DescribeAcls(r) => {
                assert_eq!(r.error_code, 54);
                assert!(r.resources.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let req = DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ]);
        match answered(&mut c, ApiKey::DeleteAcls, v, &req).await {
            ResponseKind::DeleteAcls(r) => {
                assert_eq!(r.filter_results.len(), 1);
                assert_eq!(r.filter_results[0].error_code, 54);
            }
            other => panic!("{other:?}"),
        }
    }
    match answered(
        &mut c,
        ApiKey::CreateDelegationToken,
        3,
        &CreateDelegationTokenRequest::default(),
    )
    .await
    {
        ResponseKind::CreateDelegationToken(r) => assert_eq!(r.error_code, 64),
        other => panic!("{other:?}"),
    }
    match answered(
        &mut c,
        ApiKey::DescribeDelegationToken,
        1,
        &DescribeDelegationTokenRequest::default(),
    )
    .await
    {
        ResponseKind::DescribeDelegationToken(r) => assert_eq!(r.error_code, 64),
        other => panic!("{other:?}"),
    }
    match answered(
        &mut c,
        ApiKey::RenewDelegationToken,
        2,
        &RenewDelegationTokenRequest::default(),
    )
    .await
    {
        ResponseKind::RenewDelegationToken(r) => assert_eq!(r.error_code, 64),
        other => panic!("{other:?}"),
    }
    match answered(
        &mut c,
        ApiKey::ExpireDelegationToken,
        1,
        &ExpireDelegationTokenRequest::default(),
    )
    .await
    {
        ResponseKind::ExpireDelegationToken(r) => assert_eq!(r.error_code, 64),
        other => panic!("{other:?}"),
    }

    for v in [0, 1] {
        let entity = alter_client_quotas_request::EntityData::default()
            .with_entity_type(s("user"))
            .with_entity_name(Some(s("alice")));
        let alter = |validate_only: bool, rate: f64| {
            AlterClientQuotasRequest::default()
                .with_validate_only(validate_only)
                .with_entries(vec![alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![entity.clone()])
                    .with_ops(vec![alter_client_quotas_request::OpData::default()
                        .with_key(s("producer_byte_rate"))
                        .with_value(rate)])])
        };
        let describe = DescribeClientQuotasRequest::default().with_components(vec![
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(s("user"))
                .with_match_type(0)
                .with_match(Some(s("alice"))),
        ]);
        // Validate-only: accepted, nothing stored; then stored and described.
        let rate = 1024.0 * f64::from(v + 1);
        let before = (v == 1).then_some(1024.0);
        for (validate_only, want) in [(true, before), (false, Some(rate))] {
            match answered(
                &mut c,
                ApiKey::AlterClientQuotas,
                v,
                &alter(validate_only, rate),
            )
            .await
            {
                ResponseKind::AlterClientQuotas(r) => {
                    assert_eq!(r.entries.len(), 1);
                    assert_eq!(r.entries[0].error_code, 0, "{r:?}");
                    assert_eq!(r.entries[0].entity[0].entity_name.as_deref(), Some("alice"));
                }
                other => panic!("{other:?}"),
            }
            match answered(&mut c, ApiKey::DescribeClientQuotas, v, &describe).await {
                ResponseKind::DescribeClientQuotas(r) => {
                    assert_eq!(r.error_code, 0);
                    let values: Vec<f64> = r
                        .entries
                        .iter()
                        .flatten()
                        .flat_map(|e| e.values.iter().map(|x| x.value))
                        .collect();
                    assert_eq!(values, want.into_iter().collect::<Vec<_>>());
                }
                other => panic!("{other:?}"),
            }
        }
        // An unknown key: INVALID_REQUEST with Kafka's message.
        let bad = AlterClientQuotasRequest::default().with_entries(vec![
            alter_client_quotas_request::EntryData::default()
                .with_entity(vec![entity.clone()])
                .with_ops(vec![alter_client_quotas_request::OpData::default()
                    .with_key(s("bogus"))
                    .with_value(1.0)]),
        ]);
        match answered(&mut c, ApiKey::AlterClientQuotas, v, &bad).await {
            ResponseKind::AlterClientQuotas(r) => {
                assert_eq!(r.entries[0].error_code, 42);
                assert_eq!(
                    r.entries[0].error_message.as_deref(),
                    Some("Invalid configuration key bogus")
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let upsert = |name: &'static str| {
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s(name))
            .with_mechanism(1)
            .with_iterations(4096)
    };
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![
            alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(s("alice"))
                .with_mechanism(1),
        ])
        .with_upsertions(vec![upsert("alice"), upsert("bob")]);
    // SCRAM credentials are served now (handlers/user_scram_credentials.rs):
    // deleting alice's missing credential is RESOURCE_NOT_FOUND (and, as in
    // Kafka's ScramControlManager, her upsertion is then skipped); bob is
    // created.
    match answered(&mut c, ApiKey::AlterUserScramCredentials, 0, &req).await {
        ResponseKind::AlterUserScramCredentials(r) => {
            let users: Vec<_> = r
                .results
                .iter()
                .map(|x| (x.user.to_string(), x.error_code))
                .collect();
            assert_eq!(users, [("alice".to_string(), 91), ("bob".to_string(), 0)]);
        }
        other => panic!("{other:?}"),
    }
    match answered(
        &mut c,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    )
    .await
    {
        ResponseKind::DescribeUserScramCredentials(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.results.len(), 1);
            assert_eq!(r.results[0].user.as_str(), "bob");
            assert_eq!(r.results[0].credential_infos[0].iterations, 4096);
        }
        other => panic!("{other:?}"),
    }
    // The transaction APIs are served now (by the transaction
    // coordinator); with no `__transaction_state` partition led here they
    // answer NOT_COORDINATOR, not UNSUPPORTED_VERSION.
    match answered(
        &mut c,
        ApiKey::EndTxn,
        4,
        &EndTxnRequest::default()
            .with_transactional_id(kafka_protocol::protocol::StrBytes::from_static_str("t").into()),
    )
    .await
    {
        ResponseKind::EndTxn(r) => assert_eq!(r.error_code, 16),
        other => panic!("{other:?}"),
    }
    // UpdateFeatures goes to the controller: a feature nobody supports is
    // INVALID_UPDATE_VERSION, as Kafka answers it.
    let update = update_features_request::FeatureUpdateKey::default()
        .with_feature(s("no.such.feature"))
        .with_max_version_level(1)
        .with_upgrade_type(1);
    match answered(
        &mut c,
        ApiKey::UpdateFeatures,
        1,
        &UpdateFeaturesRequest::default().with_feature_updates(vec![update]),
    )
    .await
    {
        ResponseKind::UpdateFeatures(r) => assert_eq!(r.error_code, 95),
        other => panic!("{other:?}"),
    }

    // Still the same connection, still served.
    create_by_metadata(&mut c, "after").await;

    // CreateAcls v0 is below what Kafka 4.1.2 serves (v1-v3): it closes the
    // connection, and so does Sluice.
    let mut old = b.client().await;
    // (kafka-protocol has no v0 encoder: header v1, then zero creations.)
    let mut raw = Vec::new();
    raw.extend_from_slice(&30i16.to_be_bytes());
    raw.extend_from_slice(&0i16.to_be_bytes());
    raw.extend_from_slice(&9i32.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw.extend_from_slice(&0i32.to_be_bytes());
    let mut frame = (raw.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&raw);
    old.send_raw(&frame).await.unwrap();
    assert!(old.is_closed_by_broker().await);
    b.broker.shutdown().await.unwrap();
}
