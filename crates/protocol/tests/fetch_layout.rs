//! The zero-copy Fetch layout produces exactly the bytes kafka-protocol encodes for the
//! same response with the records inlined, for every Fetch version v4–v18.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData, SnapshotId,
};
use sluice_protocol::kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind, TopicName};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::{encode_fetch_response, encode_response, FetchChunk, RecordsRef};

#[derive(Debug, Clone)]
struct Part {
    index: i32,
    error: i16,
    hw: i64,
    lso: i64,
    log_start: i64,
    aborted: Option<Vec<(i64, i64)>>,
    preferred: i32,
    tagged: bool,
    records: Option<Vec<u8>>,
}

fn part() -> impl Strategy<Value = Part> {
    (
        (
            0i32..1000,
            prop_oneof![Just(0i16), Just(1), Just(6)],
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        ),
        proptest::option::of(proptest::collection::vec(
            (any::<i64>(), any::<i64>()),
            0..3,
        )),
        -1i32..5,
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    )
        .prop_map(
            |((index, error, hw, lso, log_start), aborted, preferred, tagged, records)| Part {
                index,
                error,
                hw,
                lso,
                log_start,
                aborted,
                preferred,
                tagged,
                records,
            },
        )
}

fn build(
    version: i16,
    topics: &[(String, Vec<Part>)],
    inline: bool,
    session: i32,
    endpoints: bool,
) -> FetchResponse {
    let responses = topics
        .iter()
        .enumerate()
        .map(|(i, (name, parts))| {
            let t = FetchableTopicResponse::default().with_partitions(
                parts
                    .iter()
                    .map(|p| {
                        let mut d = PartitionData::default()
                            .with_partition_index(p.index)
                            .with_error_code(p.error)
                            .with_high_watermark(p.hw)
                            .with_last_stable_offset(p.lso)
                            .with_aborted_transactions(p.aborted.as_ref().map(|a| {
                                a.iter()
                                    .map(|&(pid, first)| {
                                        AbortedTransaction::default()
                                            .with_producer_id(pid.into())
                                            .with_first_offset(first)
                                    })
                                    .collect()
                            }));
                        if version >= 5 {
                            d = d.with_log_start_offset(p.log_start);
                        }
                        if version >= 11 {
                            d = d.with_preferred_read_replica(p.preferred.into());
                        }
                        if version >= 12 && p.tagged {
                            d = d
                                .with_diverging_epoch(
                                    EpochEndOffset::default()
                                        .with_epoch(3)
                                        .with_end_offset(p.hw / 2),
                                )
                                .with_current_leader(
                                    LeaderIdAndEpoch::default()
                                        .with_leader_id(1.into())
                                        .with_leader_epoch(7),
                                )
                                .with_snapshot_id(
                                    SnapshotId::default().with_end_offset(9).with_epoch(2),
                                );
                        }
                        if inline {
                            d = d.with_records(p.records.clone().map(Bytes::from));
                        } else {
                            // The layout must ignore whatever is here.
                            d = d.with_records(Some(Bytes::from_static(b"ignored")));
                        }
                        d
                    })
                    .collect(),
            );
            if version >= 13 {
                t.with_topic_id(uuid::Uuid::from_u128(i as u128 + 7))
            } else {
                t.with_topic(TopicName(StrBytes::from_string(name.clone())))
            }
        })
        .collect();
    let mut r = FetchResponse::default()
        .with_throttle_time_ms(3)
        .with_responses(responses);
    if version >= 7 {
        r = r.with_error_code(0).with_session_id(session);
    }
    if version >= 16 && endpoints {
        r = r.with_node_endpoints(vec![NodeEndpoint::default()
            .with_node_id(1.into())
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(9092)
            .with_rack(None)]);
    }
    r
}

proptest! {
    #[test]
    fn layout_matches_kafka_protocol_encoding(
        version in 4i16..=18,
        topics in proptest::collection::vec(("[a-z]{1,12}", proptest::collection::vec(part(), 0..5)), 0..4),
        correlation_id in any::<i32>(),
        session in any::<i32>(),
        endpoints in any::<bool>(),
    ) {
        let expected = encode_response(
            ApiKey::Fetch,
            correlation_id,
            version,
            &ResponseKind::Fetch(build(version, &topics, true, session, endpoints)),
        )
        .unwrap();

        let all: Vec<Option<Vec<u8>>> = topics.iter().flat_map(|(_, ps)| ps.iter().map(|p| p.records.clone())).collect();
        let refs = all
            .iter()
            .enumerate()
            .map(|(i, r)| r.as_ref().map(|r| RecordsRef { token: i, len: r.len() }))
            .collect();
        let layout = encode_fetch_response(correlation_id, version, build(version, &topics, false, session, endpoints), refs).unwrap();

        let mut got = Vec::new();
        let mut last_was_records = false;
        for c in &layout.chunks {
            match c {
                FetchChunk::Bytes(b) => {
                    prop_assert!(!b.is_empty());
                    got.extend_from_slice(b);
                    last_was_records = false;
                }
                FetchChunk::Records { token, len } => {
                    let r = all[*token].as_ref().unwrap();
                    prop_assert_eq!(*len, r.len());
                    prop_assert!(*len > 0);
                    prop_assert!(!last_was_records || got.is_empty());
                    got.extend_from_slice(r);
                    last_was_records = true;
                }
            }
        }
        prop_assert_eq!(layout.frame_size, expected.len() - 4);
        prop_assert_eq!(Bytes::from(got), expected);
    }
}

#[test]
fn records_count_must_match_partitions() {
    let topics = vec![("t".to_string(), vec![])];
    let r = build(12, &topics, false, 0, false);
    let err = encode_fetch_response(1, 12, r, vec![Some(RecordsRef { token: (), len: 1 })]);
    assert!(err.is_err());
    let r = build(12, &topics, false, 0, false);
    assert!(encode_fetch_response::<()>(1, 3, r, vec![]).is_err());
}

#[test]
fn large_records_are_never_materialised() {
    // A 1 GiB records region: the layout holds a token and a length, nothing more.
    let p = Part {
        index: 0,
        error: 0,
        hw: 1,
        lso: 1,
        log_start: 0,
        aborted: None,
        preferred: -1,
        tagged: false,
        records: None,
    };
    let r = build(12, &[("t".into(), vec![p])], false, 0, false);
    let layout = encode_fetch_response(
        9,
        12,
        r,
        vec![Some(RecordsRef {
            token: "segment",
            len: 1 << 30,
        })],
    )
    .unwrap();
    let bytes: usize = layout
        .chunks
        .iter()
        .map(|c| match c {
            FetchChunk::Bytes(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert!(bytes < 200, "{bytes}");
    assert_eq!(layout.frame_size, bytes - 4 + (1 << 30));
    assert!(
        matches!(layout.chunks[1], FetchChunk::Records { token: "segment", len } if len == 1 << 30)
    );
}
