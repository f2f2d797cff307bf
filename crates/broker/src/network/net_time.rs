//! The network side of a client's requests, charged to its
//! `request_percentage` quota as Kafka charges a network thread's time
//! (`RequestChannel.Request.recordNetworkThreadTimeCallback`): reading and
//! decoding requests, encoding and writing responses, TLS work inside
//! those reads and writes, the TLS handshake and SASL authentication
//! before the first request.
//!
//! Without it a flood of cheap requests (Metadata for one topic: a few µs
//! in its handler, several times that in the socket and codec) stays far
//! under any quota while it loads the cores. The time is measured as poll
//! time, like the handler's (`quota::thread_time`): waits for the socket
//! are not counted. It is added to the connection's [`ConnectionThrottle`]
//! and charged with the connection's next measured request
//! (`handlers/request_quota.rs`, `handlers/throttled.rs`).
//!
//! Only while the image holds a client quota: otherwise each poll costs one
//! atomic load and reads no clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::metadata::image_cache::ImageCache;
use crate::request::ConnectionThrottle;

/// Whether network time is measured now (the image holds a client quota).
#[derive(Clone)]
pub struct NetTimeSwitch(Arc<ImageCache>);

impl NetTimeSwitch {
    pub fn new(image: Arc<ImageCache>) -> Self {
        NetTimeSwitch(image)
    }

    /// Whether to measure: one atomic load.
    pub fn on(&self) -> bool {
        self.0.has_client_quotas()
    }

    /// A clock reading when measuring, for [`NetTimeSwitch::charge_since`].
    pub fn start(&self) -> Option<Instant> {
        self.on().then(Instant::now)
    }

    /// Charges the time since `started` (if measuring) to `throttle`.
    pub fn charge_since(started: Option<Instant>, throttle: &ConnectionThrottle) {
        if let Some(t) = started {
            throttle.charge_network_time(t.elapsed());
        }
    }
}

/// A future all of whose poll time is network time of one connection (its
/// reader task, its TLS handshake, its SASL exchange).
pub struct Charged<F> {
    inner: Pin<Box<F>>,
    switch: NetTimeSwitch,
    throttle: ConnectionThrottle,
}

impl<F: Future> Charged<F> {
    pub fn new(inner: F, switch: NetTimeSwitch, throttle: ConnectionThrottle) -> Self {
        Charged {
            inner: Box::pin(inner),
            switch,
            throttle,
        }
    }
}

impl<F: Future> Future for Charged<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = self.switch.start();
        let polled = self.inner.as_mut().poll(cx);
        NetTimeSwitch::charge_since(started, &self.throttle);
        polled
    }
}

/// Network time gathered by a connection's processor for one request.
#[derive(Default)]
pub struct Tally {
    spent: Duration,
    on: bool,
}

impl Tally {
    pub fn new(switch: &NetTimeSwitch) -> Self {
        Tally {
            spent: Duration::ZERO,
            on: switch.on(),
        }
    }

    /// Where [`crate::quota::thread_time::PollTimed`] adds poll time
    /// (`None`: not measuring).
    pub fn sink(&mut self) -> Option<&mut Duration> {
        self.on.then_some(&mut self.spent)
    }

    /// Charges what was gathered to `throttle`.
    pub fn charge(self, throttle: &ConnectionThrottle) {
        if self.on {
            throttle.charge_network_time(self.spent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::thread_time::PollTimed;

    #[tokio::test]
    async fn a_tally_off_charges_nothing_and_on_charges_poll_time() {
        let throttle = ConnectionThrottle::default();
        let mut off = Tally::default();
        PollTimed::new(
            std::pin::pin!(async { std::thread::sleep(Duration::from_millis(5)) }),
            off.sink(),
        )
        .await;
        off.charge(&throttle);
        assert_eq!(throttle.take_network_time(), Duration::ZERO);
        let mut on = Tally {
            spent: Duration::ZERO,
            on: true,
        };
        PollTimed::new(
            std::pin::pin!(async { std::thread::sleep(Duration::from_millis(5)) }),
            on.sink(),
        )
        .await;
        on.charge(&throttle);
        assert!(throttle.take_network_time() >= Duration::from_millis(5));
        assert_eq!(throttle.take_network_time(), Duration::ZERO);
    }
}
