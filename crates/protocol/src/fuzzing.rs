//! The body of the `request` fuzz target (fuzz/fuzz_targets/request.rs), kept here so
//! unit tests run it too.
//!
//! The first input byte picks a mode:
//! - high bit set: the rest is a raw byte stream, fed to [`FrameReader`] in pieces of
//!   `(byte & 0x3f) + 1` bytes, and every frame that comes out goes to
//!   [`decode_request`];
//! - 0x40 set: the next two bytes pick any request API and version of the spec table
//!   and the rest is a body for [`validate_request_body`]; a body that passes is decoded
//!   by kafka-protocol when it knows that version;
//! - otherwise: the next two bytes pick an advertised API and version, a well-formed
//!   header is prepended, and the frame goes through framing, header parsing,
//!   validation and decoding. A decoded request is re-encoded by kafka-protocol and that
//!   encoding must validate too.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};

use crate::{
    decode_request, request_header_version, schema_request_versions, validate_request_body,
    FrameReader, ProtocolError, SUPPORTED_APIS,
};

/// Run one fuzz input. Panics only when an invariant is broken.
pub fn request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        raw_stream(usize::from(mode & 0x3f) + 1, rest);
    } else if mode & 0x40 != 0 {
        any_schema_api(rest);
    } else {
        advertised(rest);
    }
}

fn raw_stream(piece: usize, stream: &[u8]) {
    let mut reader = FrameReader::new(1 << 20);
    for chunk in stream.chunks(piece) {
        reader.read_buf().extend_from_slice(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    let _ = decode_request(frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fn any_schema_api(rest: &[u8]) {
    let [a, v, body @ ..] = rest else { return };
    let apis = schema_request_versions();
    let (key, _, lo, hi) = apis[usize::from(*a) % apis.len()];
    let version = lo + (i16::from(*v) % (hi - lo + 1));
    if validate_request_body(key, version, body).is_err() {
        return;
    }
    if let Ok(api) = ApiKey::try_from(key) {
        let kp = api.valid_versions();
        if kp.min <= version && version <= kp.max {
            let _ = RequestKind::decode(api, &mut Bytes::copy_from_slice(body), version);
        }
    }
}

/// Returns whether the request decoded.
fn advertised(rest: &[u8]) -> bool {
    let [a, v, body @ ..] = rest else {
        return false;
    };
    let (api, lo, hi) = SUPPORTED_APIS[usize::from(*a) % SUPPORTED_APIS.len()];
    let version = lo + (i16::from(*v) % (hi - lo + 1));
    let mut frame = Vec::with_capacity(16 + body.len());
    frame.extend_from_slice(&(api as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&4i16.to_be_bytes());
    frame.extend_from_slice(b"fuzz");
    if request_header_version(api, version) == 2 {
        frame.push(0);
    }
    let header_len = frame.len();
    frame.extend_from_slice(body);

    let mut reader = FrameReader::new(1 << 20);
    reader.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    reader.extend_from_slice(&frame);
    let Ok(Some(f)) = reader.next_frame() else {
        panic!("a complete frame was not returned");
    };
    assert_eq!(&f[..], &frame[..]);
    let valid = validate_request_body(api as i16, version, &f[header_len..]).is_ok();
    match decode_request(f) {
        Ok(d) => {
            assert!(valid, "decoded a body the validator rejected");
            assert_eq!(d.api_key, api);
            assert_eq!(d.api_version(), version);
            assert_eq!(d.correlation_id(), 7);
            let mut again = BytesMut::new();
            if d.body.encode(&mut again, version).is_ok() {
                if let Err(e) = validate_request_body(api as i16, version, &again) {
                    panic!("kafka-protocol's encoding of a decoded {api:?} v{version} fails validation: {e}");
                }
            }
            true
        }
        Err(ProtocolError::Malformed { correlation_id, .. }) => {
            assert!(!valid);
            assert_eq!(correlation_id, Some(7));
            false
        }
        Err(ProtocolError::Decode { correlation_id, .. }) => {
            assert!(valid);
            assert_eq!(correlation_id, 7);
            false
        }
        Err(e) => panic!("unexpected error for an advertised version: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]
        #[test]
        fn fuzz_body_holds_its_invariants(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            super::request(&data);
        }
    }

    #[test]
    fn fuzz_body_decodes_a_real_request() {
        // Advertised mode, Metadata (index 3 in the table) v1, one topic "t".
        let api = crate::SUPPORTED_APIS
            .iter()
            .position(|e| e.0 == kafka_protocol::messages::ApiKey::Metadata)
            .unwrap() as u8;
        assert!(super::advertised(&[api, 1, 0, 0, 0, 1, 0, 1, b't']));
        assert!(!super::advertised(&[api, 1, 0x7f, 0xff, 0xff, 0xff]));
    }

    #[test]
    fn fuzz_regressions() {
        // A tag number above i32::MAX that kafka-protocol re-encoded inconsistently.
        super::request(&[
            0x07, 0xfd, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0c, 0x00, 0x00, 0x00, 0x27,
            0x00, 0x00,
        ]);
    }
}
