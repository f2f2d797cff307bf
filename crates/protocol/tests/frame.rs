//! Framing: size prefixes are checked before anything is buffered, frames come out whole
//! whatever way the bytes arrive, and buffers grow only with bytes that arrived.

use proptest::prelude::*;
use sluice_protocol::{parse_size_prefix, FrameReader, ProtocolError, READ_CHUNK};

fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as i32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

#[test]
fn negative_and_oversized_prefixes_are_rejected() {
    assert_eq!(
        parse_size_prefix((-1i32).to_be_bytes(), 1024),
        Err(ProtocolError::NegativeFrameSize(-1))
    );
    assert_eq!(
        parse_size_prefix(i32::MIN.to_be_bytes(), 1024),
        Err(ProtocolError::NegativeFrameSize(i32::MIN))
    );
    assert_eq!(
        parse_size_prefix(1025i32.to_be_bytes(), 1024),
        Err(ProtocolError::FrameTooLarge {
            size: 1025,
            max: 1024
        })
    );
    assert_eq!(parse_size_prefix(1024i32.to_be_bytes(), 1024), Ok(1024));
    assert_eq!(parse_size_prefix(0i32.to_be_bytes(), 1024), Ok(0));
}

#[test]
fn reader_reports_bad_prefix_as_soon_as_it_arrives() {
    let mut r = FrameReader::new(100 * 1024 * 1024);
    // 2 GiB - 1: refused with only the prefix buffered.
    r.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        r.next_frame(),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    let mut r = FrameReader::new(1024);
    r.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
    assert_eq!(r.next_frame(), Err(ProtocolError::NegativeFrameSize(-2)));
}

#[test]
fn a_large_prefix_does_not_reserve_its_size() {
    let mut r = FrameReader::new(100 * 1024 * 1024);
    r.extend_from_slice(&(100 * 1024 * 1024i32).to_be_bytes());
    assert_eq!(r.next_frame(), Ok(None));
    let cap = r.read_buf().capacity();
    assert!(
        cap <= 4 * READ_CHUNK,
        "reserved {cap} bytes for a frame of which 0 bytes arrived"
    );
    // Feeding 1 MiB grows the buffer with the bytes, not with the claimed 100 MiB.
    r.extend_from_slice(&vec![0u8; 1 << 20]);
    let cap = r.read_buf().capacity();
    assert!(
        cap <= 2 * ((1 << 20) + 4) + 4 * READ_CHUNK,
        "capacity {cap}"
    );
    assert_eq!(r.next_frame(), Ok(None));
}

#[test]
fn read_buf_offers_room_to_read_into() {
    let mut r = FrameReader::new(1 << 20);
    let buf = r.read_buf();
    assert!(buf.capacity() - buf.len() >= 4);
    buf.extend_from_slice(&framed(&[b"hello".to_vec()]));
    assert_eq!(r.next_frame().unwrap().unwrap(), &b"hello"[..]);
    assert_eq!(r.next_frame(), Ok(None));
    assert_eq!(r.buffered(), 0);
}

proptest! {
    /// However the stream is split into reads, the same frames come out in order,
    /// including empty frames and frames pipelined behind each other.
    #[test]
    fn frames_survive_any_split(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let stream = framed(&payloads);
        let mut r = FrameReader::new(1024);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - pos);
            i += 1;
            r.read_buf().extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            while let Some(f) = r.next_frame().unwrap() {
                out.push(f.to_vec());
            }
        }
        prop_assert_eq!(out, payloads);
        prop_assert_eq!(r.buffered(), 0);
    }
}
