//! The request rate limit (`--rate`, `--put-rate`): one limiter shared by all clients of
//! a run, so the rate is the total over clients, as in etcd's tool.
//!
//! It is the generic cell rate algorithm: a theoretical arrival time (TAT) moves forward
//! one interval per request; a request may go at `TAT - (burst - 1) * interval`. With a
//! burst of 1 requests are spaced evenly; sleeping late does not lose slots, so the
//! average rate holds even with a coarse timer.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Spaces requests to at most `rate` per second, allowing bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter for `rate` requests per second (at least 1) with bursts of `burst`
    /// (at least 1).
    pub fn new(rate: u64, burst: u64) -> Self {
        let rate = rate.max(1);
        let interval = Duration::from_nanos((1_000_000_000 / rate).max(1));
        let tolerance =
            interval.saturating_mul(u32::try_from(burst.max(1) - 1).unwrap_or(u32::MAX));
        RateLimiter {
            interval,
            tolerance,
            tat: Mutex::new(None),
        }
    }

    /// Reserves the next slot for a request that wants to go at `now`; returns when it
    /// may go (`now` or later).
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut tat = self.tat.lock();
        let current = tat.map_or(now, |t| t.max(now));
        let allowed = current
            .checked_sub(self.tolerance)
            .map_or(now, |a| a.max(now));
        *tat = Some(current + self.interval);
        allowed
    }

    /// Waits for the next slot.
    pub async fn wait(&self) {
        let at = self.reserve(Instant::now());
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_of_one_spaces_requests_evenly() {
        let limiter = RateLimiter::new(10, 1);
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..4).map(|_| limiter.reserve(t0) - t0).collect();
        let ms = Duration::from_millis;
        assert_eq!(slots, vec![ms(0), ms(100), ms(200), ms(300)]);
    }

    #[test]
    fn idle_time_does_not_build_up_credit_beyond_the_burst() {
        let limiter = RateLimiter::new(10, 1);
        let t0 = Instant::now();
        limiter.reserve(t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(limiter.reserve(later), later);
        assert_eq!(limiter.reserve(later), later + Duration::from_millis(100));
    }

    #[test]
    fn burst_lets_that_many_requests_go_at_once() {
        let limiter = RateLimiter::new(100, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.reserve(t0), t0);
        }
        assert_eq!(limiter.reserve(t0), t0 + Duration::from_millis(10));
    }

    #[test]
    fn huge_rates_and_zero_do_not_panic() {
        let t0 = Instant::now();
        assert_eq!(RateLimiter::new(u64::MAX, u64::MAX).reserve(t0), t0);
        assert_eq!(RateLimiter::new(0, 0).reserve(t0), t0);
    }
}
