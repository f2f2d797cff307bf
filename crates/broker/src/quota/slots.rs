//! `max.connections`: the broker-wide count of client connections, as a
//! semaphore of slots that can be resized while connections hold some
//! (the key is a dynamic broker config in Kafka). Raising the limit adds
//! slots at once; lowering it takes free slots away at once and the rest
//! as held ones are given back (a debt paid before every new admission),
//! so no live connection is closed, as in Kafka.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

struct Sizes {
    limit: usize,
    /// Slots still to take away as held ones come back.
    debt: usize,
}

/// The connection slots of every listener.
pub struct ConnectionSlots {
    semaphore: Arc<Semaphore>,
    sizes: Mutex<Sizes>,
}

/// A limit the semaphore can hold (0 is one slot, as before).
fn bounded(limit: usize) -> usize {
    limit.clamp(1, Semaphore::MAX_PERMITS)
}

impl ConnectionSlots {
    pub fn new(limit: usize) -> ConnectionSlots {
        let limit = bounded(limit);
        ConnectionSlots {
            semaphore: Arc::new(Semaphore::new(limit)),
            sizes: Mutex::new(Sizes { limit, debt: 0 }),
        }
    }

    /// The limit in effect.
    pub fn limit(&self) -> usize {
        self.sizes.lock().limit
    }

    /// A slot for a new connection, if one is free under the current limit.
    pub fn try_acquire(&self) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        {
            let mut sizes = self.sizes.lock();
            if sizes.debt > 0 {
                sizes.debt -= self.semaphore.forget_permits(sizes.debt);
            }
        }
        self.semaphore.clone().try_acquire_owned()
    }

    /// Changes the limit; live connections keep their slots.
    pub fn set_limit(&self, limit: usize) {
        let limit = bounded(limit);
        let mut sizes = self.sizes.lock();
        if limit == sizes.limit {
            return;
        }
        if limit > sizes.limit {
            let mut more = limit - sizes.limit;
            let forgiven = more.min(sizes.debt);
            sizes.debt -= forgiven;
            more -= forgiven;
            self.semaphore.add_permits(more);
        } else {
            sizes.debt += sizes.limit - limit;
            sizes.debt -= self.semaphore.forget_permits(sizes.debt);
        }
        sizes.limit = limit;
        // Free slots + debt paid later = limit - held, whatever the order.
        debug_assert!(self.semaphore.available_permits() <= limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_limit_keeps_live_connections_and_admits_none_until_under_it() {
        let slots = ConnectionSlots::new(3);
        let held: Vec<_> = (0..3).map(|_| slots.try_acquire().unwrap()).collect();
        assert!(slots.try_acquire().is_err());
        slots.set_limit(1);
        let mut held = held.into_iter();
        drop(held.next());
        // 2 held, limit 1: still full.
        assert!(slots.try_acquire().is_err());
        drop(held.next());
        assert!(slots.try_acquire().is_err(), "1 held at a limit of 1");
        drop(held.next());
        let one = slots.try_acquire().expect("0 held at a limit of 1");
        assert!(slots.try_acquire().is_err());
        // Raised: two more at once.
        slots.set_limit(3);
        let more: Vec<_> = (0..2).map(|_| slots.try_acquire().unwrap()).collect();
        assert!(slots.try_acquire().is_err());
        drop((one, more));
        assert_eq!(slots.semaphore.available_permits(), 3);
    }

    #[test]
    fn raising_during_a_debt_forgives_it_first() {
        let slots = ConnectionSlots::new(4);
        let held: Vec<_> = (0..4).map(|_| slots.try_acquire().unwrap()).collect();
        slots.set_limit(1); // debt 3
        slots.set_limit(2); // debt 2
        drop(held);
        let two: Vec<_> = (0..2).map(|_| slots.try_acquire().unwrap()).collect();
        assert!(slots.try_acquire().is_err());
        drop(two);
        assert_eq!(slots.limit(), 2);
    }
}
