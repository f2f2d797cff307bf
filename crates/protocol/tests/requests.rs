//! decode_request end to end: frames encoded by kafka-protocol decode back to the same
//! request; hostile lengths are refused with the correlation id; versions outside the
//! advertised table are typed errors.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use sluice_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use sluice_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use sluice_protocol::kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, FetchRequest, MetadataRequest, ProduceRequest, ProducerId, RequestHeader, RequestKind,
    TopicName, WriteTxnMarkersRequest,
};
use sluice_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::{
    decode_request, decode_request_with, MalformedReason, ProtocolError, SUPPORTED_APIS,
};

fn header_bytes(api: ApiKey, version: i16, correlation_id: i32) -> BytesMut {
    let h = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test-client")));
    let mut buf = BytesMut::new();
    h.encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf
}

fn frame<T: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &T) -> Bytes {
    let mut buf = header_bytes(api, version, correlation_id);
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn raw_frame(api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = header_bytes(api, version, correlation_id);
    buf.extend_from_slice(body);
    buf.freeze()
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// `(topic name, [(partition index, records)])`.
type TopicRecords = Vec<(String, Vec<(i32, Option<Vec<u8>>)>)>;

fn produce(version: i16, topics: TopicRecords, acks: i16, txn: Option<String>) -> ProduceRequest {
    ProduceRequest::default()
        .with_transactional_id(txn.map(|t| StrBytes::from_string(t).into()))
        .with_acks(acks)
        .with_timeout_ms(1500)
        .with_topic_data(
            topics
                .into_iter()
                .enumerate()
                .map(|(i, (name, parts))| {
                    let t = TopicProduceData::default().with_partition_data(
                        parts
                            .into_iter()
                            .map(|(idx, rec)| {
                                PartitionProduceData::default()
                                    .with_index(idx)
                                    .with_records(rec.map(Bytes::from))
                            })
                            .collect(),
                    );
                    if version >= 13 {
                        t.with_topic_id(uuid::Uuid::from_u128(i as u128 + 1))
                    } else {
                        t.with_name(topic_name(&name))
                    }
                })
                .collect(),
        )
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,20}"
}

proptest! {
    #[test]
    fn produce_round_trips(
        version in 3i16..=11,
        acks in prop_oneof![Just(-1i16), Just(0), Just(1)],
        txn in proptest::option::of(name()),
        topics in proptest::collection::vec(
            (name(), proptest::collection::vec((0i32..100, proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))), 0..4)),
            0..4),
        correlation_id in any::<i32>(),
    ) {
        let req = produce(version, topics, acks, txn);
        let f = frame(ApiKey::Produce, version, correlation_id, &req);
        let d = decode_request(f.clone()).unwrap();
        prop_assert_eq!(d.api_key, ApiKey::Produce);
        prop_assert_eq!(d.correlation_id(), correlation_id);
        prop_assert_eq!(d.api_version(), version);
        prop_assert_eq!(d.header.client_id.as_deref(), Some("test-client"));
        let RequestKind::Produce(got) = d.body else { panic!("not produce") };
        // Record bytes are slices of the frame, not copies.
        for t in &got.topic_data {
            for p in &t.partition_data {
                if let Some(r) = &p.records {
                    if !r.is_empty() {
                        let base = f.as_ptr() as usize;
                        let at = r.as_ptr() as usize;
                        prop_assert!(at >= base && at + r.len() <= base + f.len());
                    }
                }
            }
        }
        prop_assert_eq!(got, req);
    }

    #[test]
    fn metadata_round_trips(
        version in 0i16..=12,
        names in proptest::option::of(proptest::collection::vec(name(), 0..5)),
        auto in any::<bool>(),
        ops in any::<bool>(),
    ) {
        // v0 has no null topic list; auto-creation exists from v4, authorized ops from v8.
        let names = if version == 0 { Some(names.unwrap_or_default()) } else { names };
        let mut req = MetadataRequest::default().with_topics(names.map(|ns| {
            ns.iter().map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect()
        }));
        if version >= 4 { req = req.with_allow_auto_topic_creation(auto); }
        if version >= 8 { req = req.with_include_topic_authorized_operations(ops); }
        let d = decode_request(frame(ApiKey::Metadata, version, 5, &req)).unwrap();
        prop_assert_eq!(d.body, RequestKind::Metadata(req));
    }

    #[test]
    fn fetch_round_trips(
        version in 4i16..=17,
        max_wait in 0i32..10_000,
        min_bytes in 0i32..1_000_000,
        isolation in 0i8..=1,
        parts in proptest::collection::vec((0i32..64, 0i64..1_000_000, 1i32..1_000_000), 0..6),
        session in (any::<i32>(), any::<i32>()),
        rack in name(),
    ) {
        let topic = FetchTopic::default().with_partitions(
            parts.iter().map(|&(p, off, max)| {
                let mut fp = FetchPartition::default().with_partition(p).with_fetch_offset(off).with_partition_max_bytes(max);
                if version >= 5 { fp = fp.with_log_start_offset(off / 2); }
                if version >= 9 { fp = fp.with_current_leader_epoch(3); }
                fp
            }).collect());
        let topic = if version >= 13 { topic.with_topic_id(uuid::Uuid::from_u128(99)) } else { topic.with_topic(topic_name("orders")) };
        let mut req = FetchRequest::default()
            .with_max_wait_ms(max_wait)
            .with_min_bytes(min_bytes)
            .with_max_bytes(52_428_800)
            .with_isolation_level(isolation)
            .with_topics(vec![topic]);
        if version <= 14 { req = req.with_replica_id((-1).into()); }
        if version >= 7 { req = req.with_session_id(session.0).with_session_epoch(session.1); }
        if version >= 11 { req = req.with_rack_id(StrBytes::from_string(rack)); }
        if version >= 12 { req = req.with_cluster_id(Some(StrBytes::from_static_str("cluster-1"))); }
        let d = decode_request(frame(ApiKey::Fetch, version, 6, &req)).unwrap();
        prop_assert_eq!(d.body, RequestKind::Fetch(req));
    }

    /// Any frame at all: decode_request returns, it never panics.
    #[test]
    fn arbitrary_frames_never_panic(
        key in 0usize..SUPPORTED_APIS.len(),
        version_delta in 0i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let (api, lo, _) = SUPPORTED_APIS[key];
        let f = raw_frame(api, lo + version_delta, 1, &body);
        let _ = decode_request(f);
    }
}

fn expect_malformed(api: ApiKey, version: i16, body: &[u8]) -> MalformedReason {
    match decode_request(raw_frame(api, version, 77, body)) {
        Err(ProtocolError::Malformed {
            reason,
            correlation_id,
            ..
        }) => {
            assert_eq!(correlation_id, Some(77));
            reason
        }
        other => panic!("{api:?} v{version}: expected Malformed, got {other:?}"),
    }
}

#[test]
fn metadata_v12_seven_byte_body_is_an_error_not_an_abort() {
    let reason = expect_malformed(
        ApiKey::Metadata,
        12,
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00],
    );
    assert!(
        matches!(
            reason,
            MalformedReason::ArrayTooLong {
                count: 0xffff_fffe,
                ..
            }
        ),
        "{reason:?}"
    );
}

const I32_MAX: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];

#[test]
fn int32_max_array_counts_are_rejected() {
    let cases: Vec<(ApiKey, i16, Vec<u8>)> = vec![
        // Produce v3: transactional_id null, acks, timeout, topic_data count.
        (
            ApiKey::Produce,
            3,
            [&[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30][..], &I32_MAX].concat(),
        ),
        // Metadata v1: topics count.
        (ApiKey::Metadata, 1, I32_MAX.to_vec()),
        // Fetch v4: replica, max_wait, min_bytes, max_bytes, isolation, topics count.
        (
            ApiKey::Fetch,
            4,
            [&[0xff; 4][..], &[0; 12], &[0], &I32_MAX].concat(),
        ),
        // ListOffsets v1: replica_id, topics count.
        (ApiKey::ListOffsets, 1, [&[0xff; 4][..], &I32_MAX].concat()),
        // CreateTopics v2: topics count.
        (ApiKey::CreateTopics, 2, I32_MAX.to_vec()),
        // DeleteTopics v1: topic names count.
        (ApiKey::DeleteTopics, 1, I32_MAX.to_vec()),
        // DescribeConfigs v1: resources count.
        (ApiKey::DescribeConfigs, 1, I32_MAX.to_vec()),
        // Produce v9 (flexible): compact count 2^32-2 as a 5-byte varint.
        (
            ApiKey::Produce,
            9,
            [
                &[0x00, 0, 1, 0, 0, 0x75, 0x30][..],
                &[0xff, 0xff, 0xff, 0xff, 0x0f],
            ]
            .concat(),
        ),
    ];
    for (api, version, body) in cases {
        let reason = expect_malformed(api, version, &body);
        assert!(
            matches!(reason, MalformedReason::ArrayTooLong { .. }),
            "{api:?} v{version}: {reason:?}"
        );
    }
}

#[test]
fn int32_max_string_and_bytes_lengths_are_rejected() {
    // Produce v3 records length INT32_MAX with nothing behind it.
    let body = [
        &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30][..],
        &[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0],
        &I32_MAX,
    ]
    .concat();
    let reason = expect_malformed(ApiKey::Produce, 3, &body);
    assert!(
        matches!(
            reason,
            MalformedReason::Truncated {
                needed: 0x7fff_ffff,
                ..
            }
        ),
        "{reason:?}"
    );
    // Metadata v4: a topic name claiming 32767 bytes, 1 present.
    let reason = expect_malformed(ApiKey::Metadata, 4, &[0, 0, 0, 1, 0x7f, 0xff, b'x']);
    assert!(
        matches!(reason, MalformedReason::Truncated { needed: 0x7fff, .. }),
        "{reason:?}"
    );
    // CreateTopics v5 (flexible): compact name length 2^31 (over Kafka's 32767 limit).
    let reason = expect_malformed(
        ApiKey::CreateTopics,
        5,
        &[0x02, 0x81, 0x80, 0x80, 0x80, 0x08],
    );
    assert!(
        matches!(reason, MalformedReason::StringTooLong(0x8000_0000)),
        "{reason:?}"
    );
    // ApiVersions v3: client software name INT32_MAX as a compact length.
    let reason = expect_malformed(ApiKey::ApiVersions, 3, &[0x80, 0x80, 0x80, 0x80, 0x08]);
    assert!(
        matches!(reason, MalformedReason::StringTooLong(_)),
        "{reason:?}"
    );
    // Negative classic lengths other than -1.
    let reason = expect_malformed(ApiKey::Metadata, 1, &[0xff, 0xff, 0xff, 0xfe]);
    assert_eq!(reason, MalformedReason::InvalidLength(-2));
}

#[test]
fn versions_outside_the_advertised_table_are_typed_errors() {
    // Produce v2 exists in Kafka (which still lists it, KAFKA-18659) but is
    // not advertised here.
    let err = decode_request(raw_frame(ApiKey::Produce, 2, 11, &[])).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            api_version: 2,
            correlation_id: 11
        }
    );
    // ApiVersions v5 (newer than Kafka 4.1 knows): header still readable.
    let err = decode_request(raw_frame(ApiKey::ApiVersions, 5, 12, &[0, 0, 0])).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            api_version: 5,
            correlation_id: 12
        }
    );
    // An API Kafka defines but the table does not list.
    let err = decode_request_with(
        raw_frame(ApiKey::JoinGroup, 5, 13, &[]),
        &[(ApiKey::Metadata, 0, 12)],
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnsupportedVersion {
            api_key: ApiKey::JoinGroup,
            api_version: 5,
            correlation_id: 13
        }
    );
    // A custom table allows what the default one does not list.
    let meta = MetadataRequest::default();
    let err = decode_request_with(
        frame(ApiKey::Metadata, 13, 11, &meta),
        &[(ApiKey::Metadata, 0, 13)],
    );
    assert!(err.is_ok(), "{err:?}");
    // Advertised (as Kafka 4 does for librdkafka's sake) but below Kafka's spec floor.
    let err = decode_request_with(
        raw_frame(ApiKey::Produce, 2, 16, &[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        &[(ApiKey::Produce, 0, 11)],
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            api_version: 2,
            correlation_id: 16
        }
    );
    // An api key nobody defines.
    let err = decode_request(Bytes::from_static(&[
        0x03, 0xe8, 0, 0, 0, 0, 0, 14, 0xff, 0xff,
    ]))
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnknownApiKey {
            api_key: 1000,
            correlation_id: 14
        }
    );
}

#[test]
fn non_utf8_strings_in_a_body_are_decode_errors() {
    // Metadata v1 with one topic named 0xff.
    let err = decode_request(raw_frame(
        ApiKey::Metadata,
        1,
        15,
        &[0, 0, 0, 1, 0, 1, 0xff],
    ))
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Decode {
                correlation_id: 15,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn every_advertised_version_has_a_schema_and_a_kafka_protocol_decoder() {
    let schema = sluice_protocol::schema_request_versions();
    for &(api, lo, hi) in SUPPORTED_APIS {
        assert!(lo <= hi, "{api:?}");
        let (_, _, slo, shi) = *schema.iter().find(|s| s.0 == api as i16).unwrap();
        assert!(
            slo <= lo && hi <= shi,
            "{api:?} {lo}-{hi} outside Kafka {slo}-{shi}"
        );
        let kp = api.valid_versions();
        assert!(
            kp.min <= lo && hi <= kp.max,
            "{api:?} {lo}-{hi} outside kafka-protocol {kp}"
        );
    }
}

#[test]
fn element_count_is_capped_per_request() {
    use sluice_protocol::{validate_request_body, MAX_REQUEST_ELEMENTS};
    // Metadata v1 with n empty topic names: 2 wire bytes each, 72 bytes decoded.
    let names = |n: u64| {
        let mut body = (n as i32).to_be_bytes().to_vec();
        body.resize(4 + 2 * n as usize, 0);
        body
    };
    validate_request_body(ApiKey::Metadata as i16, 1, &names(MAX_REQUEST_ELEMENTS)).unwrap();
    let err = validate_request_body(ApiKey::Metadata as i16, 1, &names(MAX_REQUEST_ELEMENTS + 1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Malformed {
                reason: MalformedReason::TooManyElements(_),
                ..
            }
        ),
        "{err:?}"
    );
    // The cap counts every array together: Produce v3 with 2 topics of 2^19 partitions
    // (null records) plus the 2 topics themselves.
    let half = MAX_REQUEST_ELEMENTS / 2;
    let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
    for _ in 0..2 {
        body.extend_from_slice(&[0, 1, b't']);
        body.extend_from_slice(&(half as i32).to_be_bytes());
        for p in 0..half as i32 {
            body.extend_from_slice(&p.to_be_bytes());
            body.extend_from_slice(&[0xff; 4]);
        }
    }
    let err = validate_request_body(ApiKey::Produce as i16, 3, &body).unwrap_err();
    assert!(
        matches!(err, ProtocolError::Malformed { reason: MalformedReason::TooManyElements(n), .. } if n == MAX_REQUEST_ELEMENTS + 2),
        "{err:?}"
    );
}

/// WriteTxnMarkers v1 (advertised as Kafka 4.1.2 does): a request decodes
/// back to itself; a marker count or a partition count larger than the
/// bytes that follow is refused before kafka-protocol allocates for it; v0
/// and v2 are not served.
#[test]
fn write_txn_markers_is_bounds_checked() {
    assert_eq!(
        sluice_protocol::supported_range(SUPPORTED_APIS, ApiKey::WriteTxnMarkers),
        Some((1, 1))
    );
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(42))
        .with_producer_epoch(3)
        .with_transaction_result(true)
        .with_coordinator_epoch(7)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name("orders"))
            .with_partition_indexes(vec![0, 2, 5])])]);
    let d = decode_request(frame(ApiKey::WriteTxnMarkers, 1, 9, &req)).unwrap();
    assert_eq!(d.body, RequestKind::WriteTxnMarkers(req));
    // Flexible v1: compact array of markers, count + 1 as an unsigned varint.
    // A claimed 2^28 markers in a 7-byte body.
    let reason = expect_malformed(
        ApiKey::WriteTxnMarkers,
        1,
        &[0x80, 0x80, 0x80, 0x80, 0x01, 0, 0],
    );
    assert!(
        matches!(reason, MalformedReason::ArrayTooLong { .. }),
        "{reason:?}"
    );
    // One marker whose partition list claims far more entries than remain.
    let mut body = vec![0x02]; // one marker
    body.extend(42i64.to_be_bytes()); // producer id
    body.extend(3i16.to_be_bytes()); // epoch
    body.push(1); // commit
    body.push(0x02); // one topic
    body.push(0x02); // name "o" (compact string)
    body.push(b'o');
    body.extend([0xff, 0xff, 0xff, 0x0f]); // partition count ~ 2^32
    let reason = expect_malformed(ApiKey::WriteTxnMarkers, 1, &body);
    assert!(
        matches!(reason, MalformedReason::ArrayTooLong { .. }),
        "{reason:?}"
    );
    for v in [0, 2] {
        assert!(decode_request(raw_frame(ApiKey::WriteTxnMarkers, v, 1, &[1, 0])).is_err());
    }
}
