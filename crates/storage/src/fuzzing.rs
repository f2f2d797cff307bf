//! Fuzz target bodies of the storage crate, here so unit tests run them
//! too (`fuzz/fuzz_targets/` calls them).

use sluice_record::{LeaderEpoch, Offset};

use crate::epoch_cache::{self, LeaderEpochCache};

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
