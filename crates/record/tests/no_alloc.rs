//! The producer's record walk over an uncompressed batch allocates nothing
//! (a counting allocator watches this thread while it runs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sluice_record::validate::check_batch_records;
use sluice_record::{BatchBuilder, BatchHeader, CompressionType, Timestamp, Unbounded};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn walking_an_uncompressed_batch_allocates_nothing() {
    let mut b = BatchBuilder::new(CompressionType::None);
    for i in 0..16u8 {
        let header = sluice_record::Header {
            key: b"trace",
            value: Some(&[i; 8]),
        };
        b.append(Timestamp(1), Some(&[i; 16]), Some(&[i; 1024]), &[header])
            .unwrap();
    }
    let batch = b.build().unwrap();
    let header = BatchHeader::validate(&batch).unwrap();
    let mut budget = Unbounded;
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..100 {
        check_batch_records(&batch, &header, 1 << 20, &mut budget).unwrap();
    }
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
    // The counter works: a compressed batch's walk allocates its decoder.
    let mut z = BatchBuilder::new(CompressionType::Gzip);
    z.append(Timestamp(1), None, Some(b"v"), &[]).unwrap();
    let z = z.build().unwrap();
    let zh = BatchHeader::validate(&z).unwrap();
    let before = ALLOCATIONS.with(Cell::get);
    check_batch_records(&z, &zh, 1 << 20, &mut budget).unwrap();
    assert!(ALLOCATIONS.with(Cell::get) > before);
}
