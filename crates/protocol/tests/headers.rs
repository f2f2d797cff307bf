//! Request header parsing and the header-version mapping.

use bytes::{BufMut, BytesMut};
use sluice_protocol::kafka_protocol::messages::{ApiKey, RequestHeader};
use sluice_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::{
    parse_request_header, request_header_version, response_header_bytes, response_header_version,
    schema_request_versions, MalformedReason, ProtocolError,
};

#[test]
fn header_versions_agree_with_kafka_protocol() {
    // kafka-protocol derives these from the same specs independently; the two must agree
    // for every API and version both know.
    for (key, _, lo, hi) in schema_request_versions() {
        let Ok(api) = ApiKey::try_from(key) else {
            continue;
        };
        let kp = api.valid_versions();
        for v in lo.max(kp.min)..=hi.min(kp.max) {
            assert_eq!(
                request_header_version(api, v),
                api.request_header_version(v),
                "{api:?} v{v}"
            );
            assert_eq!(
                response_header_version(api, v),
                api.response_header_version(v),
                "{api:?} v{v}"
            );
        }
    }
}

#[test]
fn api_versions_always_answers_with_header_v0() {
    for v in 0..=10 {
        assert_eq!(response_header_version(ApiKey::ApiVersions, v), 0);
    }
    // A newer ApiVersions request than the broker knows still uses header v2.
    assert_eq!(request_header_version(ApiKey::ApiVersions, 9), 2);
    assert_eq!(request_header_version(ApiKey::ApiVersions, 2), 1);
    assert_eq!(response_header_version(ApiKey::Metadata, 9), 1);
    assert_eq!(response_header_version(ApiKey::Metadata, 8), 0);
    assert_eq!(&response_header_bytes(7, 0)[..], &[0, 0, 0, 7]);
    assert_eq!(&response_header_bytes(7, 1)[..], &[0, 0, 0, 7, 0]);
}

fn encoded_header(api: ApiKey, version: i16, client_id: Option<&str>) -> BytesMut {
    let h = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(0x0102_0304)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_string())));
    let mut buf = BytesMut::new();
    h.encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf
}

#[test]
fn parses_v1_and_v2_headers() {
    for (api, version, expect_len) in [
        (ApiKey::Produce, 8, 4 + 4 + 2 + 3),
        (ApiKey::Produce, 9, 4 + 4 + 2 + 3 + 1),
        (ApiKey::ApiVersions, 3, 4 + 4 + 2 + 3 + 1),
    ] {
        let mut buf = encoded_header(api, version, Some("cli"));
        buf.put_slice(b"body");
        let p = parse_request_header(&buf).unwrap();
        assert_eq!(p.api_key, api);
        assert_eq!(p.header_len, expect_len);
        assert_eq!(p.header.correlation_id, 0x0102_0304);
        assert_eq!(p.header.request_api_version, version);
        assert_eq!(p.header.client_id.as_deref(), Some("cli"));
        assert_eq!(&buf[p.header_len..], b"body");
    }
    let buf = encoded_header(ApiKey::Metadata, 12, None);
    let p = parse_request_header(&buf).unwrap();
    assert_eq!(p.header.client_id, None);
}

#[test]
fn unknown_api_key_keeps_the_correlation_id() {
    let frame = [0x7f, 0x00, 0, 0, 0, 0, 0, 42, 0xff, 0xff];
    let err = parse_request_header(&frame).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnknownApiKey {
            api_key: 0x7f00,
            correlation_id: 42
        }
    );
    assert_eq!(err.correlation_id(), Some(42));
}

#[test]
fn truncated_and_malformed_headers_are_errors() {
    assert_eq!(
        parse_request_header(&[0, 3, 0]).unwrap_err(),
        ProtocolError::HeaderTruncated { len: 3 }
    );
    // Client id claiming 32767 bytes with 2 present.
    let frame = [0, 3, 0, 1, 0, 0, 0, 9, 0x7f, 0xff, b'a', b'b'];
    let err = parse_request_header(&frame).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Malformed {
                field: "ClientId",
                reason: MalformedReason::Truncated { .. },
                correlation_id: Some(9),
                ..
            }
        ),
        "{err:?}"
    );
    // Header v2 whose tagged-field count is missing.
    let frame = [0, 3, 0, 12, 0, 0, 0, 9, 0xff, 0xff];
    assert!(matches!(
        parse_request_header(&frame),
        Err(ProtocolError::Malformed { .. })
    ));
}

#[test]
fn invalid_utf8_client_id_is_read_leniently() {
    let frame = [0, 3, 0, 1, 0, 0, 0, 9, 0, 2, 0xff, b'x'];
    let p = parse_request_header(&frame).unwrap();
    assert_eq!(p.header.client_id.as_deref(), Some("\u{fffd}x"));
}
