//! The request time a `request_percentage` quota measures. Kafka measures
//! the time a request handler thread spends on the request
//! (`requestThreadTimeNanos`), which leaves out the waits in its purgatories
//! (acks=all replication, long-poll fetches, controller round trips). A
//! Sluice handler is a future, and those waits are the times it is not
//! being polled; so the equivalent is the time spent inside `poll`, which
//! [`ThreadTimed`] adds up. Work a handler hands to the blocking pool (big
//! appends, fsyncs) is not counted, as Kafka leaves out its log flusher's.
//!
//! Kafka also charges each request's network-thread time (reading and
//! decoding it, encoding and writing its response, TLS) to the same quota
//! (`recordNetworkThreadTimeCallback`); the network layer measures that
//! with [`PollTimed`] (`network/net_time.rs`). Both measure only while the
//! image holds a client quota, so the normal path reads no clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A future and the time spent polling it so far. The future is pinned by
/// the caller (`std::pin::pin!`), so timing a request allocates nothing.
pub struct ThreadTimed<F> {
    inner: F,
    spent: Duration,
}

impl<F: Future + Unpin> ThreadTimed<F> {
    pub fn new(inner: F) -> Self {
        ThreadTimed {
            inner,
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future + Unpin> Future for ThreadTimed<F> {
    /// The inner output and the time spent in its polls.
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = Pin::new(&mut self.inner).poll(cx);
        self.spent += started.elapsed();
        polled.map(|out| (out, self.spent))
    }
}

/// A future whose poll time is added to `spent`, or not measured at all
/// when `spent` is `None` (no clock read).
pub struct PollTimed<'a, F> {
    inner: F,
    spent: Option<&'a mut Duration>,
}

impl<'a, F: Future + Unpin> PollTimed<'a, F> {
    pub fn new(inner: F, spent: Option<&'a mut Duration>) -> Self {
        PollTimed { inner, spent }
    }
}

impl<F: Future + Unpin> Future for PollTimed<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let Some(spent) = this.spent.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll(cx);
        };
        let started = Instant::now();
        let polled = Pin::new(&mut this.inner).poll(cx);
        *spent += started.elapsed();
        polled
    }
}

/// Kafka's `nanosToPercentage`: thread time as percent-seconds.
pub fn as_percentage(spent: Duration) -> f64 {
    spent.as_nanos() as f64 * 100.0 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_between_polls_are_not_counted() {
        let (out, spent) = ThreadTimed::new(std::pin::pin!(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            7
        }))
        .await;
        assert_eq!(out, 7);
        // Two cheap polls, no 500 ms sleep (a generous bound for a busy host).
        assert!(spent < Duration::from_millis(400), "{spent:?}");
        let (_, busy) = ThreadTimed::new(std::pin::pin!(async {
            std::thread::sleep(Duration::from_millis(30));
        }))
        .await;
        assert!(busy >= Duration::from_millis(30), "{busy:?}");
        let mut spent = Duration::ZERO;
        let slept = PollTimed::new(
            std::pin::pin!(async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                std::thread::sleep(Duration::from_millis(30));
                8
            }),
            Some(&mut spent),
        )
        .await;
        assert_eq!(slept, 8);
        assert!(spent >= Duration::from_millis(30), "{spent:?}");
        assert!(spent < Duration::from_millis(400), "{spent:?}");
        assert!((as_percentage(Duration::from_millis(10)) - 1.0).abs() < 1e-9);
    }
}
