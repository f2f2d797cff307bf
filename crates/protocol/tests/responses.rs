//! Response encoding: header versions, and ApiVersions answers that old librdkafka can read.

use bytes::Bytes;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataResponse, ResponseKind,
};
use sluice_protocol::kafka_protocol::protocol::Decodable;
use sluice_protocol::{
    api_versions_fallback_frame, api_versions_response, encode_response, SUPPORTED_APIS,
};

fn split(frame: &Bytes) -> (i32, Bytes) {
    let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
    assert_eq!(size as usize, frame.len() - 4, "size prefix");
    (
        i32::from_be_bytes(frame[4..8].try_into().unwrap()),
        frame.slice(8..),
    )
}

#[test]
fn api_versions_v3_writes_no_default_tagged_fields() {
    let body = api_versions_response(SUPPORTED_APIS, 0);
    let frame = encode_response(
        ApiKey::ApiVersions,
        99,
        3,
        &ResponseKind::ApiVersions(body.clone()),
    )
    .unwrap();
    let (cid, rest) = split(&frame);
    assert_eq!(cid, 99);
    // Header v0 (no tag byte), then: error_code, compact array of (key, min, max, tags),
    // throttle_time_ms, and a tagged-field section with zero entries.
    let n = SUPPORTED_APIS.len();
    assert!(n < 127);
    assert_eq!(rest.len(), 2 + 1 + n * 7 + 4 + 1);
    assert_eq!(&rest[..2], &[0, 0]);
    assert_eq!(rest[2] as usize, n + 1);
    assert_eq!(
        rest[rest.len() - 1],
        0,
        "tagged fields written at default values"
    );
    for (i, &(api, lo, hi)) in SUPPORTED_APIS.iter().enumerate() {
        let e = &rest[3 + i * 7..3 + (i + 1) * 7];
        assert_eq!(e[..2], (api as i16).to_be_bytes());
        assert_eq!(e[2..4], lo.to_be_bytes());
        assert_eq!(e[4..6], hi.to_be_bytes());
        assert_eq!(e[6], 0);
    }
    let decoded = ApiVersionsResponse::decode(&mut rest.clone(), 3).unwrap();
    assert_eq!(decoded, body);
}

#[test]
fn unsupported_api_versions_gets_a_v0_answer_with_unsupported_version() {
    let frame = api_versions_fallback_frame(SUPPORTED_APIS, 1234).unwrap();
    let (cid, mut rest) = split(&frame);
    assert_eq!(cid, 1234);
    assert_eq!(rest.len(), 2 + 4 + SUPPORTED_APIS.len() * 6);
    let decoded = ApiVersionsResponse::decode(&mut rest, 0).unwrap();
    assert_eq!(decoded.error_code, 35);
    assert_eq!(decoded.api_keys.len(), SUPPORTED_APIS.len());
    assert!(decoded
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16
            && k.min_version == 0
            && k.max_version == 4));
}

#[test]
fn flexible_responses_get_header_v1() {
    let body = ResponseKind::Metadata(MetadataResponse::default());
    let v12 = encode_response(ApiKey::Metadata, 5, 12, &body).unwrap();
    let v8 = encode_response(ApiKey::Metadata, 5, 8, &body).unwrap();
    // v12: correlation id then an empty tagged-field byte.
    assert_eq!(&v12[4..9], &[0, 0, 0, 5, 0]);
    let mut b = v12.slice(9..);
    assert_eq!(
        MetadataResponse::decode(&mut b, 12).unwrap(),
        MetadataResponse::default()
    );
    let mut b = v8.slice(8..);
    assert_eq!(
        MetadataResponse::decode(&mut b, 8).unwrap(),
        MetadataResponse::default()
    );
}

#[test]
fn fields_a_version_cannot_carry_are_encode_errors() {
    // Metadata carries cluster authorized operations only in v8-v10.
    let body = MetadataResponse::default().with_cluster_authorized_operations(0);
    let body = ResponseKind::Metadata(body);
    assert!(encode_response(ApiKey::Metadata, 1, 9, &body).is_ok());
    let err = encode_response(ApiKey::Metadata, 1, 12, &body).unwrap_err();
    assert!(
        matches!(
            err,
            sluice_protocol::ProtocolError::Encode {
                what: "Metadata",
                version: 12,
                ..
            }
        ),
        "{err:?}"
    );
}
