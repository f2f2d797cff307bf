//! No untrusted length sizes an allocation: a counting global allocator records the
//! largest single allocation made while decode_request runs, and it must stay within a
//! small multiple of the frame's size, whatever the frame claims. (Without the
//! validation pass, the 7-byte Metadata v12 body asks for ~300 GB and aborts.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::kafka_protocol::messages::{ApiKey, RequestHeader};
use sluice_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::{decode_request, SUPPORTED_APIS};

struct Counting;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = WATCH.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Largest single allocation made by `decode_request(frame)`.
fn largest_allocation(frame: Bytes) -> usize {
    LARGEST.with(|l| l.set(0));
    WATCH.with(|w| w.set(true));
    let r = decode_request(frame);
    WATCH.with(|w| w.set(false));
    drop(r);
    LARGEST.with(|l| l.get())
}

/// What a decoded request may legitimately take: each element costs at least one wire
/// byte, and no kafka-protocol request element is larger than 256 bytes in memory.
fn bound(frame_len: usize) -> usize {
    256 * frame_len + 4096
}

fn frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let h = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("c")));
    let mut buf = BytesMut::new();
    h.encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf.extend_from_slice(body);
    buf.freeze()
}

#[test]
fn hostile_counts_allocate_nothing_large() {
    let cases = [
        (
            ApiKey::Metadata,
            12,
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00],
        ),
        (ApiKey::Metadata, 1, vec![0x7f, 0xff, 0xff, 0xff]),
        (ApiKey::CreateTopics, 2, vec![0x7f, 0xff, 0xff, 0xff]),
        (
            ApiKey::Produce,
            3,
            vec![0xff, 0xff, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff],
        ),
        (
            ApiKey::Produce,
            3,
            vec![
                0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0, 0x7f,
                0xff, 0xff, 0xff,
            ],
        ),
    ];
    for (api, version, body) in cases {
        let f = frame(api, version, &body);
        let len = f.len();
        let largest = largest_allocation(f);
        assert!(
            largest <= bound(len),
            "{api:?} v{version}: allocated {largest} bytes for a {len}-byte frame"
        );
    }
}

#[test]
fn the_counter_sees_decoding_allocations() {
    // 200 topics decode into a Vec of 200 structs: the hook must notice it, or the
    // bound checks above would pass vacuously.
    let mut body = vec![0, 0, 0, 200];
    for i in 0..200u8 {
        body.extend_from_slice(&[0, 1, b'a' + i % 26]);
    }
    let largest = largest_allocation(frame(ApiKey::Metadata, 1, &body));
    assert!(largest >= 200 * 16, "largest allocation {largest}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    /// Random bodies for every advertised API and version, biased towards large
    /// counts and lengths, never make decode_request allocate beyond the bound.
    #[test]
    fn random_bodies_stay_within_the_bound(
        key in 0usize..SUPPORTED_APIS.len(),
        v in any::<u16>(),
        body in proptest::collection::vec(prop_oneof![Just(0xffu8), Just(0x7f), Just(0x00), Just(0x01), Just(0x80), any::<u8>()], 0..200),
    ) {
        let (api, lo, hi) = SUPPORTED_APIS[key];
        let version = lo + (v % (hi - lo + 1) as u16) as i16;
        let f = frame(api, version, &body);
        let len = f.len();
        let largest = largest_allocation(f);
        prop_assert!(largest <= bound(len), "{:?} v{}: allocated {} bytes for a {}-byte frame", api, version, largest, len);
    }
}
