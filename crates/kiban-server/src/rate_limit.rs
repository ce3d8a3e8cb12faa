//! Per-provider request rate limit of the intake API: a token bucket per provider, in memory.
//!
//! Each provider's bucket holds up to `burst` requests and refills at `per_second` requests a
//! second; a request takes one token or is refused with the time until the next token. Buckets
//! live as long as the process (there are few providers).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate and burst of a [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second per provider.
    pub per_second: f64,
    /// Requests a provider may make at once after being idle.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 20 requests a second, bursts of 40.
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 40,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Token buckets keyed by provider id.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter with `limit` for every provider. A burst of 0 is taken as 1 and a rate that
    /// is not positive as one request an hour, so a misconfiguration never disables intake.
    pub fn new(limit: RateLimit) -> Self {
        let per_second = if limit.per_second.is_finite() && limit.per_second > 0.0 {
            limit.per_second
        } else {
            1.0 / 3600.0
        };
        RateLimiter {
            limit: RateLimit {
                per_second,
                burst: limit.burst.max(1),
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request of `provider` at `now`; `Err` holds how long until one is allowed.
    pub fn check_at(&self, provider: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst);
        // A poisoned lock only means another request panicked mid-update: the counts are
        // still numbers, so keep going.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(provider.to_owned()).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * self.limit.per_second).min(burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.limit.per_second;
            Err(Duration::from_secs_f64(wait.min(86_400.0)))
        }
    }

    /// Takes one request of `provider` now.
    pub fn check(&self, provider: &str) -> Result<(), Duration> {
        self.check_at(provider, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("prov-001", t0).is_ok());
        }
        let wait = limiter.check_at("prov-001", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        // Another provider has its own bucket.
        assert!(limiter.check_at("prov-002", t0).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check_at("prov-001", t1).is_ok());
        assert!(limiter.check_at("prov-001", t1).is_err());
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check_at("prov-001", t2).is_ok());
        }
        assert!(limiter.check_at("prov-001", t2).is_err());
    }

    #[test]
    fn a_bad_configuration_still_limits() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.0,
            burst: 0,
        });
        let t0 = Instant::now();
        assert!(limiter.check_at("prov-001", t0).is_ok());
        assert!(limiter.check_at("prov-001", t0).is_err());
    }
}
