//! Fuzz target bodies of the storage crate, here so unit tests run them
//! too (`fuzz/fuzz_targets/` calls them).

use std::path::PathBuf;
use std::sync::Arc;

use sluice_record::{LeaderEpoch, Offset};

use crate::epoch_cache::{self, LeaderEpochCache};
use crate::fs::{write_all_at, Fs, OpenOptions};
use crate::producer_state::{decode_snapshot, encode_snapshot};
use crate::sim::SimFs;
use crate::txn_index::{collect_overlapping, decode_entries, TxnIndex};

/// Producer state snapshot bytes as read on log load: never a panic;
/// whatever decodes re-encodes to a snapshot of the same state (byte for
/// byte when it was of the current version), and its open transactions
/// are those of its entries.
pub fn producer_snapshot(data: &[u8]) {
    let Ok(state) = decode_snapshot(data) else {
        return;
    };
    let bytes = encode_snapshot(&state);
    let again = decode_snapshot(&bytes).expect("an encoded snapshot decodes");
    assert_eq!(again, state);
    if data.get(4..6) == Some(&[0, 2][..]) {
        assert_eq!(bytes, data);
    }
    for (first, pid) in state.ongoing_txns() {
        let entry = state
            .last_entry(pid)
            .expect("an open transaction has its producer");
        assert_eq!(entry.current_txn_first_offset, Some(first));
    }
}

/// A `.txnindex` file (after a first byte giving the segment's base
/// offset) as read on load and by read_committed fetches: never a panic;
/// the pure decoder and the file reader (through `SimFs`) agree; whatever
/// decodes re-encodes to the same bytes; a search over it never panics.
pub fn txn_index(data: &[u8]) {
    let Some((base, file)) = data.split_first() else {
        return;
    };
    let base = Offset(i64::from(*base));
    let decoded = decode_entries(file, base);
    if let Ok(entries) = &decoded {
        let bytes: Vec<u8> = entries.iter().flat_map(|t| t.encode()).collect();
        assert_eq!(bytes, file);
        let mut out = Vec::new();
        let upper = Offset(i64::from(data.len() as u8));
        collect_overlapping(
            entries.iter().copied(),
            Offset(i64::from(*data.last().unwrap_or(&0))),
            upper,
            &mut out,
        );
        assert!(out.iter().all(|t| t.first_offset < upper));
    }
    let fs = Arc::new(SimFs::new());
    let path = PathBuf::from("/fuzz/00000000000000000000.txnindex");
    fs.create_dir_all(&PathBuf::from("/fuzz")).expect("sim dir");
    let f = fs
        .open(&path, &OpenOptions::create_truncate())
        .expect("sim file");
    write_all_at(&*f, file, 0).expect("sim write");
    drop(f);
    let index = TxnIndex::open(fs, path, base).expect("sim open");
    match (&decoded, index.validate()) {
        (Ok(entries), Ok(())) => assert_eq!(&index.entries().expect("validated"), entries),
        (Err(_), Err(_)) => {}
        (d, v) => panic!("decoder {d:?} and reader {v:?} disagree"),
    }
}

/// `leader-epoch-checkpoint` bytes as read on log load: never a panic;
/// whatever parses obeys the ordering rules and formats back to text that
/// parses to the same entries; the cache operations driven by the same
/// bytes keep the rules.
pub fn leader_epoch_checkpoint(data: &[u8]) {
    if let Some(entries) = epoch_cache::parse(data) {
        assert!(epoch_cache::well_formed(&entries));
        let text = epoch_cache::format(&entries);
        assert_eq!(epoch_cache::parse(text.as_bytes()), Some(entries));
    }
    let mut cache = LeaderEpochCache::new("/fuzz/t-0");
    for op in data.chunks_exact(5) {
        let n = i32::from_be_bytes([op[1], op[2], op[3], op[4]]);
        let (epoch, offset) = (LeaderEpoch(n >> 16), Offset(i64::from(n & 0xffff)));
        match op[0] % 5 {
            0 => {
                cache.assign(epoch, offset);
            }
            1 => {
                cache.truncate_from_end(offset);
            }
            2 => {
                cache.truncate_from_start(offset);
            }
            3 => {
                let _ = cache.end_offset_for(epoch, offset);
            }
            _ => {
                cache.clear();
            }
        }
        assert!(
            epoch_cache::well_formed(cache.entries()),
            "{:?}",
            cache.entries()
        );
    }
}
