//! Fuzz-target bodies (the repo's `fuzz/` crate calls them): each takes
//! arbitrary bytes and must never panic, abort or allocate from an
//! unchecked length.

use bytes::Bytes;

/// A controller-listener frame: framing, header and body validation, and
/// decoding exactly as the server does before any handler runs.
pub fn controller_frame(data: &[u8]) {
    let mut reader = sluice_protocol::FrameReader::new(1 << 20);
    reader.extend_from_slice(data);
    while let Ok(Some(frame)) = reader.next_frame() {
        let _ = sluice_protocol::decode_request_with(frame, crate::server::CONTROLLER_APIS);
    }
    let _ = sluice_protocol::decode_request_with(
        Bytes::copy_from_slice(data),
        crate::server::CONTROLLER_APIS,
    );
}

/// A `controller.quorum.voters` value.
pub fn parse_voters(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(v) = crate::voters::QuorumVoters::parse(s) {
            let again = crate::voters::QuorumVoters::parse(&v.to_string());
            assert_eq!(
                again.ok().as_ref(),
                Some(&v),
                "printed voters must parse back"
            );
        }
    }
}
