//! The `acks=all` purgatory of one partition: produce answers waiting for
//! the high watermark to cover their batch (Kafka's `DelayedProduce`).
//!
//! No task per request: a waiter is an entry in an ordered map keyed by the
//! offset it needs, completed by whoever moves the high watermark
//! ([`Purgatory::complete_upto`], O(completed · log n)), by an ISR change
//! that leaves the partition under its min ISR or a loss of leadership
//! ([`Purgatory::fail_all`]), or removed by its own timeout.
//!
//! Invariants:
//! - The high watermark is published *before* `complete_upto` takes the
//!   lock, and a waiter reads it *under* the lock before it registers, so
//!   no move is missed between the check and the registration.
//! - At most [`MAX_WAITERS`] entries; a waiter beyond that is told so and
//!   waits on the high watermark's watch channel instead (correct, only
//!   less efficient).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use sluice_record::Offset;
use tokio::sync::oneshot;

/// The most `acks=all` answers one partition keeps in its map.
pub const MAX_WAITERS: usize = 16_384;

/// How a wait ended (timeouts are the waiter's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The high watermark covers the batch.
    Replicated,
    /// The ISR shrank below `min.insync.replicas` meanwhile.
    NotEnoughReplicasAfterAppend,
    /// This broker no longer leads the partition.
    NotLeader,
}

#[derive(Default)]
struct Inner {
    waiters: BTreeMap<(Offset, u64), oneshot::Sender<Completion>>,
    next_id: u64,
}

/// Waiting `acks=all` answers of one partition.
#[derive(Default)]
pub struct Purgatory {
    inner: Mutex<Inner>,
    /// `inner.waiters.len()`, readable without the lock (the append fast
    /// path skips the lock when nobody waits).
    len: AtomicUsize,
}

/// A registered wait: its key and the receiver of its completion.
pub struct Registration {
    pub key: (Offset, u64),
    pub rx: oneshot::Receiver<Completion>,
}

/// The outcome of [`Purgatory::register`].
pub enum Registered {
    /// Nothing to wait for: `high_watermark()` already covers `required`.
    Covered,
    Waiting(Registration),
    /// The map is full: wait on the high watermark directly.
    Full,
}

impl Purgatory {
    /// Registers a wait for `required` (the batch's last offset + 1) unless
    /// `high_watermark()`, read under the lock, covers it already.
    pub fn register(&self, required: Offset, high_watermark: impl Fn() -> Offset) -> Registered {
        let mut inner = self.inner.lock();
        if high_watermark() >= required {
            return Registered::Covered;
        }
        if inner.waiters.len() >= MAX_WAITERS {
            return Registered::Full;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert((required, id), tx);
        self.len.store(inner.waiters.len(), Ordering::Release);
        Registered::Waiting(Registration {
            key: (required, id),
            rx,
        })
    }

    /// Removes a wait that timed out (or whose request went away).
    pub fn remove(&self, key: (Offset, u64)) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        inner.waiters.remove(&key);
        self.len.store(inner.waiters.len(), Ordering::Release);
    }

    /// Completes every wait the high watermark `hw` covers.
    pub fn complete_upto(&self, hw: Offset) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        // Keys above (hw, u64::MAX) stay.
        let rest = inner.waiters.split_off(&(hw.plus(1), 0));
        let done = std::mem::replace(&mut inner.waiters, rest);
        self.len.store(inner.waiters.len(), Ordering::Release);
        drop(inner);
        for (_, tx) in done {
            let _ = tx.send(Completion::Replicated);
        }
    }

    /// Ends every wait with `why`.
    pub fn fail_all(&self, why: Completion) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        let done = std::mem::take(&mut inner.waiters);
        self.len.store(0, Ordering::Release);
        drop(inner);
        for (_, tx) in done {
            let _ = tx.send(why);
        }
    }

    /// Waits registered now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(r: Registered) -> Registration {
        match r {
            Registered::Waiting(w) => w,
            _ => panic!("expected a registered wait"),
        }
    }

    #[test]
    fn waits_complete_in_offset_order_as_the_high_watermark_moves() {
        let p = Purgatory::default();
        assert!(matches!(
            p.register(Offset(5), || Offset(5)),
            Registered::Covered
        ));
        let mut a = waiting(p.register(Offset(10), || Offset(5)));
        let mut b = waiting(p.register(Offset(20), || Offset(5)));
        assert_eq!(p.len(), 2);
        p.complete_upto(Offset(9));
        assert!(a.rx.try_recv().is_err(), "9 does not cover 10");
        p.complete_upto(Offset(10));
        assert_eq!(a.rx.try_recv(), Ok(Completion::Replicated));
        assert!(b.rx.try_recv().is_err());
        assert_eq!(p.len(), 1);
        p.fail_all(Completion::NotLeader);
        assert_eq!(b.rx.try_recv(), Ok(Completion::NotLeader));
        assert!(p.is_empty());
    }

    #[test]
    fn removed_waits_free_their_slot_and_the_map_is_bounded() {
        let p = Purgatory::default();
        let keys: Vec<_> = (0..MAX_WAITERS)
            .map(|i| waiting(p.register(Offset(i as i64 + 1), || Offset(0))).key)
            .collect();
        assert!(matches!(
            p.register(Offset(1), || Offset(0)),
            Registered::Full
        ));
        p.remove(keys[0]);
        assert!(matches!(
            p.register(Offset(1), || Offset(0)),
            Registered::Waiting(_)
        ));
    }
}
