//! [`DenseMap`]: a map from `u64` keys to small `Copy` entries for keys that
//! are mostly dense from zero (workload values, offsets). Keys below 2^32
//! live in lazily allocated pages of 4096 slots, so neighbouring keys share
//! cache lines and a lookup is two array indexings; other keys fall back to
//! a hash map. A slot equal to `V::default()` counts as absent.

use crate::hash::FastMap;

const PAGE_BITS: u32 = 12;
const PAGE: usize = 1 << PAGE_BITS;
/// Keys at or above this go to the sparse map (bounds the page table to 8 MiB).
const DENSE_LIMIT: u64 = 1 << 32;

pub(crate) trait Slot: Copy + Default + PartialEq {}
impl<T: Copy + Default + PartialEq> Slot for T {}

pub(crate) struct DenseMap<V> {
    pages: Vec<Option<Box<[V]>>>,
    sparse: FastMap<u64, V>,
}

impl<V> Default for DenseMap<V> {
    fn default() -> Self {
        DenseMap {
            pages: Vec::new(),
            sparse: FastMap::default(),
        }
    }
}

impl<V: Slot> DenseMap<V> {
    /// The entry for `key`, created empty (`V::default()`) if absent.
    #[inline]
    pub(crate) fn entry(&mut self, key: u64) -> &mut V {
        if key >= DENSE_LIMIT {
            return self.sparse.entry(key).or_default();
        }
        let page = (key >> PAGE_BITS) as usize;
        if page >= self.pages.len() {
            self.pages.resize_with(page + 1, || None);
        }
        let slots = self.pages[page].get_or_insert_with(|| vec![V::default(); PAGE].into());
        &mut slots[key as usize & (PAGE - 1)]
    }

    /// Every present entry in ascending key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        let empty = V::default();
        let dense = self
            .pages
            .iter()
            .enumerate()
            .filter_map(|(p, page)| page.as_ref().map(|slots| (p, slots)))
            .flat_map(|(p, slots)| {
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, v)| (((p << PAGE_BITS) | i) as u64, v))
            });
        let mut sparse: Vec<(u64, &V)> = self.sparse.iter().map(|(&k, v)| (k, v)).collect();
        sparse.sort_unstable_by_key(|&(k, _)| k);
        dense.chain(sparse).filter(move |(_, v)| **v != empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_keys_iterate_in_order() {
        let mut m: DenseMap<u32> = DenseMap::default();
        for k in [5u64, 70_000, u64::MAX, 1 << 40, 0, 4095, 4096] {
            *m.entry(k) = (k % 1000) as u32 + 1;
        }
        *m.entry(9) = 0; // touched but empty: absent
        let keys: Vec<u64> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [0, 5, 4095, 4096, 70_000, 1 << 40, u64::MAX]);
        assert_eq!(*m.entry(70_000), 1);
    }
}
