//! Kafka's sampled `Rate` (`SampledStat` + `Rate.windowSize`), the
//! measure every client quota is checked against, as pure code over
//! millisecond timestamps.
//!
//! Values are summed into at most `samples` samples; a sample covers
//! `window_ms` from the first value recorded after the previous one was
//! full, and a sample older than `samples × window_ms` no longer counts.
//! The rate is the sum of the live samples over the time since the oldest
//! one started, counted as at least `samples - 1` whole windows, so one
//! burst after a quiet period is not measured as a huge rate.

use std::collections::VecDeque;

/// One client's rate (bytes, or request-time percentage, per second).
#[derive(Clone, Debug)]
pub struct SampledRate {
    samples: usize,
    window_ms: i64,
    /// (start ms, sum), oldest first; never more than `samples`.
    live: VecDeque<(i64, f64)>,
}

impl SampledRate {
    /// `quota.window.num` samples of `quota.window.size.seconds` (in ms).
    pub fn new(samples: usize, window_ms: i64) -> SampledRate {
        SampledRate {
            samples: samples.max(1),
            window_ms: window_ms.max(1),
            live: VecDeque::new(),
        }
    }

    fn purge(&mut self, now_ms: i64) {
        let expire = self.samples as i64 * self.window_ms;
        self.live.retain(|&(start, _)| now_ms - start < expire);
    }

    /// Adds `value` at `now_ms` (negative to take back a recorded value,
    /// as Kafka's `unrecordQuotaSensor` does).
    pub fn record(&mut self, value: f64, now_ms: i64) {
        self.purge(now_ms);
        match self.live.back_mut() {
            Some((start, sum)) if now_ms - *start < self.window_ms => *sum += value,
            _ => {
                if self.live.len() == self.samples {
                    self.live.pop_front();
                }
                self.live.push_back((now_ms, value));
            }
        }
    }

    /// Kafka's `Rate.windowSize`: the measured span in ms, at least
    /// `samples - 1` windows and at least 1 ms.
    pub fn window_size_ms(&mut self, now_ms: i64) -> i64 {
        self.purge(now_ms);
        let oldest = self.live.front().map_or(now_ms, |&(start, _)| start);
        let mut elapsed = now_ms - oldest;
        let full = elapsed / self.window_ms;
        let min_full = self.samples as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window_ms;
        }
        elapsed.max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn rate(&mut self, now_ms: i64) -> f64 {
        let window = self.window_size_ms(now_ms);
        let total: f64 = self.live.iter().map(|&(_, v)| v).sum();
        total * 1000.0 / window as f64
    }

    /// Kafka's `QuotaUtils.throttleTime` after a violation: how long, in
    /// ms, until the rate falls back to `bound` if nothing more is
    /// recorded; 0 while the rate is within the bound.
    pub fn throttle_time_ms(&mut self, bound: f64, now_ms: i64) -> i64 {
        let rate = self.rate(now_ms);
        if rate <= bound || bound <= 0.0 {
            return 0;
        }
        let window = self.window_size_ms(now_ms) as f64;
        ((rate - bound) / bound * window).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn kafkas_worked_example() {
        // 11 windows of 1 s: 110 units at t=0 measure as 110 / 10 s.
        let mut r = SampledRate::new(11, 1000);
        r.record(110.0, 0);
        assert_eq!(r.window_size_ms(0), 10_000);
        assert!((r.rate(0) - 11.0).abs() < 1e-9);
        // A bound of 10/s: (11 - 10) / 10 * 10 s = 1 s of throttle.
        assert_eq!(r.throttle_time_ms(10.0, 0), 1000);
        // Within the bound: no throttle.
        assert_eq!(r.throttle_time_ms(11.0, 0), 0);
        // After 11 s every sample expired.
        assert_eq!(r.rate(11_000), 0.0);
    }

    #[test]
    fn unrecording_takes_a_value_back() {
        let mut r = SampledRate::new(11, 1000);
        r.record(500.0, 100);
        r.record(300.0, 200);
        r.record(-300.0, 200);
        // 500 over 100 ms elapsed plus 10 padded windows.
        assert!((r.rate(200) - 500.0 * 1000.0 / 10_100.0).abs() < 1e-9);
    }

    proptest! {
        /// Never more samples than configured, a rate that is never
        /// negative for positive values, a throttle exactly when the rate
        /// is above the bound, and a smaller throttle for a larger bound.
        #[test]
        fn throttle_follows_the_rate(
            values in proptest::collection::vec((1.0f64..1e6, 0i64..3000), 1..60),
            bound in 1.0f64..1e5,
        ) {
            let mut r = SampledRate::new(11, 1000);
            let mut now = 0;
            for (v, dt) in values {
                now += dt;
                r.record(v, now);
                prop_assert!(r.live.len() <= 11);
                prop_assert!(r.rate(now) >= 0.0);
            }
            let rate = r.rate(now);
            let t = r.throttle_time_ms(bound, now);
            if rate > bound * 1.01 {
                // At least 10 windows of 1 s: 1% over is 100 ms or more.
                prop_assert!(t >= 100);
            }
            if rate <= bound {
                prop_assert_eq!(t, 0);
            }
            prop_assert!(r.throttle_time_ms(bound * 2.0, now) <= t);
        }
    }
}
