//! The request time a `request_percentage` quota measures. Kafka measures
//! the time a request handler thread spends on the request
//! (`requestThreadTimeNanos`), which leaves out the waits in its purgatories
//! (acks=all replication, long-poll fetches, controller round trips). A
//! Sluice handler is a future, and those waits are the times it is not
//! being polled; so the equivalent is the time spent inside `poll`, which
//! [`ThreadTimed`] adds up. Work a handler hands to the blocking pool (big
//! appends, fsyncs) is not counted, as Kafka leaves out its log flusher's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A future and the time spent polling it so far.
pub struct ThreadTimed<F> {
    inner: Pin<Box<F>>,
    spent: Duration,
}

impl<F: Future> ThreadTimed<F> {
    pub fn new(inner: F) -> Self {
        ThreadTimed {
            inner: Box::pin(inner),
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for ThreadTimed<F> {
    /// The inner output and the time spent in its polls.
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.spent += started.elapsed();
        polled.map(|out| (out, self.spent))
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
        let (out, spent) = ThreadTimed::new(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            7
        })
        .await;
        assert_eq!(out, 7);
        // Two cheap polls, no 500 ms sleep (a generous bound for a busy host).
        assert!(spent < Duration::from_millis(400), "{spent:?}");
        let (_, busy) = ThreadTimed::new(async {
            std::thread::sleep(Duration::from_millis(30));
        })
        .await;
        assert!(busy >= Duration::from_millis(30), "{busy:?}");
        assert!((as_percentage(Duration::from_millis(10)) - 1.0).abs() < 1e-9);
    }
}
