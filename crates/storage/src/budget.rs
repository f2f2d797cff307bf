//! The broker-wide decompression budget (`sluice.decompression.memory.bytes`):
//! one pool of bytes that every decoding of records draws on before it
//! allocates — the decompressed records of a batch the append path must
//! read (keys on compacted topics, timestamps, re-encoding into a topic's
//! `compression.type`), the re-encoding buffers, codec windows, and the
//! log cleaner's decoding. A per-batch cap (256 MiB) alone lets many small
//! requests that expand a lot add up; this bounds their sum.
//!
//! A [`Reservation`] grows as a decoder's output grows (so a small batch
//! takes a few KiB and never waits on a big one) and gives everything back
//! when dropped. When the pool cannot grant a request:
//!
//! - the *oldest* holder (the reservation that first drew on the pool
//!   before every other one still holding) waits for bytes to come back,
//!   up to [`MAX_WAIT`];
//! - every other reservation is refused at once with
//!   [`RecordError::MemoryBudget`] (the broker answers a produce with the
//!   retriable THROTTLING_QUOTA_EXCEEDED and writes nothing; the cleaner
//!   tries again on its next run), and gives back what it held.
//!
//! Only one reservation ever waits while holding, so decoders cannot
//! deadlock each other, and the oldest always progresses: under a flood of
//! large batches one completes at a time instead of all failing together.
//! A request for more than the pool minus what the asker holds can never
//! be granted and is refused at once too.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use sluice_record::{Budget, RecordError};

/// Default budget: room for one batch at the per-batch decompression cap
/// (256 MiB) together with its re-encoding (three times its size).
pub const DEFAULT_DECOMPRESSION_MEMORY_BYTES: usize =
    4 * crate::cleaner::core::MAX_DECOMPRESSED_BATCH;

/// Longest the oldest holder waits for bytes before it is refused (Kafka
/// clients' default `request.timeout.ms`).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// One broker-wide pool of bytes for decoding records.
#[derive(Debug)]
pub struct DecompressionBudget {
    limit: usize,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    /// Tickets of the reservations holding bytes (or waiting), in the
    /// order they first drew on the pool.
    holders: BTreeSet<u64>,
    next_ticket: u64,
}

impl DecompressionBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(DecompressionBudget {
            limit,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        })
    }

    /// The pool's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes granted and not yet given back.
    pub fn in_use(&self) -> usize {
        self.state.lock().used
    }

    /// An empty reservation that grows on demand.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            pool: self.clone(),
            held: 0,
            ticket: None,
            max_wait: MAX_WAIT,
        }
    }
}

/// Bytes held from a [`DecompressionBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<DecompressionBudget>,
    held: usize,
    ticket: Option<u64>,
    max_wait: Duration,
}

impl Reservation {
    /// Bytes this reservation holds.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Gives back what this reservation holds beyond `bytes`, keeping its
    /// place in line.
    pub fn shrink_to(&mut self, bytes: usize) {
        if self.held <= bytes {
            return;
        }
        let mut st = self.pool.state.lock();
        st.used -= self.held - bytes;
        self.held = bytes;
        drop(st);
        self.pool.freed.notify_all();
    }

    /// Waits at most `max_wait` (instead of [`MAX_WAIT`]) when oldest.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

impl Budget for Reservation {
    fn grow(&mut self, bytes: usize) -> Result<(), RecordError> {
        let limit = self.pool.limit;
        let mut st = self.pool.state.lock();
        let ticket = *self.ticket.get_or_insert_with(|| {
            st.next_ticket += 1;
            st.next_ticket
        });
        st.holders.insert(ticket);
        let deadline = Instant::now() + self.max_wait;
        loop {
            if bytes <= limit.saturating_sub(st.used) {
                st.used += bytes;
                self.held += bytes;
                return Ok(());
            }
            let oldest = st.holders.first() == Some(&ticket);
            let could_fit = bytes <= limit.saturating_sub(self.held);
            if !oldest || !could_fit || self.pool.freed.wait_until(&mut st, deadline).timed_out() {
                return Err(RecordError::MemoryBudget {
                    requested: bytes,
                    held: self.held,
                });
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        let mut st = self.pool.state.lock();
        debug_assert!(st.used >= self.held, "the pool gave out what it counts");
        st.used -= self.held;
        st.holders.remove(&ticket);
        drop(st);
        // The oldest holder may have changed or bytes came back.
        self.pool.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_up_to_the_limit_refuses_younger_holders_and_gives_back_on_drop() {
        let pool = DecompressionBudget::new(100);
        let mut a = pool.reservation();
        a.grow(60).unwrap();
        let mut b = pool.reservation();
        b.grow(40).unwrap();
        // b is younger than a: refused at once, not made to wait.
        assert_eq!(
            b.grow(1),
            Err(RecordError::MemoryBudget {
                requested: 1,
                held: 40
            })
        );
        assert_eq!(pool.in_use(), 100);
        drop(a);
        assert_eq!(pool.in_use(), 40);
        b.grow(60).unwrap();
        assert_eq!(b.held(), 100);
        drop(b);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn the_oldest_holder_waits_for_bytes_younger_ones_give_back() {
        let pool = DecompressionBudget::new(100);
        let mut oldest = pool.reservation();
        oldest.grow(10).unwrap();
        let mut younger = pool.reservation();
        younger.grow(80).unwrap();
        let waiter = std::thread::spawn(move || oldest.grow(50).map(|()| oldest.held()));
        // Whether or not the oldest already waits, it gets its bytes once
        // the younger holder gives them back, and never before.
        drop(younger);
        assert_eq!(waiter.join().unwrap(), Ok(60));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn the_oldest_holder_is_refused_after_its_wait_and_when_it_could_never_fit() {
        let pool = DecompressionBudget::new(100);
        let mut oldest = pool.reservation().with_max_wait(Duration::from_millis(1));
        oldest.grow(10).unwrap();
        let mut younger = pool.reservation();
        younger.grow(80).unwrap();
        assert!(oldest.grow(50).is_err());
        drop(younger);
        assert!(oldest.grow(91).is_err(), "more than the pool minus its own");
        oldest.grow(50).unwrap();
        oldest.shrink_to(10);
        assert_eq!((oldest.held(), pool.in_use()), (10, 10));
        assert!(pool.reservation().grow(101).is_err());
        oldest.grow(90).unwrap();
    }
}
