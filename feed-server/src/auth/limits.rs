//! Rate limits: token buckets (GCRA, the `governor` crate) per API key, per user of
//! `GET /v1/feed`, and one for all of open mode.
//!
//! A request over its limit is refused before any handler runs (nothing changes) with the time
//! until the bucket admits the next request, which the HTTP layer sends as `Retry-After`.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// Largest sustained rate a limit may name (requests/s).
pub const MAX_RATE: f64 = 1_000_000.0;
/// Largest burst a limit may name.
pub const MAX_BURST: u32 = 1_000_000;
/// Most users whose feed-request buckets are kept (~400 bytes each at most: only valid ids,
/// ≤ 128 bytes, are tracked; ~40 MB in all): beyond it the least recently and least often seen
/// are forgotten first, so memory stays bounded under a flood of distinct `user_id`s.
pub const MAX_TRACKED_USERS: u64 = 100_000;

/// A rate limit: a sustained rate and a burst (bucket size). Valid by construction.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawLimit")]
pub struct RateLimit {
    per_second: f64,
    burst: NonZeroU32,
}

/// A rate limit as written in a file, checked by [`RateLimit::new`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLimit {
    requests_per_second: f64,
    burst: u32,
}

impl TryFrom<RawLimit> for RateLimit {
    type Error = InvalidLimit;
    fn try_from(raw: RawLimit) -> Result<Self, InvalidLimit> {
        RateLimit::new(raw.requests_per_second, raw.burst)
    }
}

/// Why a rate limit is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidLimit {
    /// Not a positive finite rate within [`MAX_RATE`].
    #[error("requestsPerSecond must be above 0 and at most {MAX_RATE}, got {0}")]
    Rate(f64),
    /// Not within 1..=[`MAX_BURST`].
    #[error("burst must be between 1 and {MAX_BURST}, got {0}")]
    Burst(u32),
}

impl RateLimit {
    /// `per_second` requests per second sustained, up to `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, InvalidLimit> {
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= MAX_RATE) {
            return Err(InvalidLimit::Rate(per_second));
        }
        let burst = NonZeroU32::new(burst)
            .filter(|b| b.get() <= MAX_BURST)
            .ok_or(InvalidLimit::Burst(burst))?;
        Ok(Self { per_second, burst })
    }

    /// Sustained requests per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Bucket size.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// How long an idle bucket takes to fill up again (at least a second): a bucket unused for
    /// this long is the same as a new one, so it may be forgotten.
    pub fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst.get()) / self.per_second)
            .max(Duration::from_secs(1))
    }

    fn quota(&self) -> Quota {
        // The rate is within (0, MAX_RATE], so the period is at least a microsecond.
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.burst)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s, burst {}", self.per_second, self.burst)
    }
}

/// When to retry a refused request: whole seconds, at least 1 (the `Retry-After` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RetryAfter {
    fn from_wait(wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self(secs.max(1))
    }
}

/// One token bucket.
pub struct Bucket {
    limit: RateLimit,
    limiter: DefaultDirectRateLimiter,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("limit", &self.limit)
            .finish()
    }
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            limiter: RateLimiter::direct(limit.quota()),
        }
    }

    /// The limit it enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token, or says when one will be there.
    pub fn check(&self) -> Result<(), RetryAfter> {
        self.limiter.check().map_err(|not_until| {
            RetryAfter::from_wait(not_until.wait_time_from(self.limiter.clock().now()))
        })
    }
}

/// A bucket per user: at most [`MAX_TRACKED_USERS`] kept, a bucket idle for its refill time
/// forgotten (it would be full again anyway).
pub struct PerUser {
    limit: RateLimit,
    buckets: moka::future::Cache<String, Arc<Bucket>>,
}

impl PerUser {
    /// Limits each user to `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, MAX_TRACKED_USERS)
    }

    /// Limits each user to `limit`, keeping at most `users` buckets.
    pub fn with_capacity(limit: RateLimit, users: u64) -> Self {
        Self {
            limit,
            buckets: moka::future::Cache::builder()
                .max_capacity(users)
                .time_to_idle(limit.refill_time())
                .build(),
        }
    }

    /// Takes a token of `user`'s bucket.
    pub async fn check(&self, user: &str) -> Result<(), RetryAfter> {
        let limit = self.limit;
        let bucket = match self.buckets.get(user).await {
            Some(b) => b,
            None => {
                self.buckets
                    .get_with(user.to_owned(), async move { Arc::new(Bucket::new(limit)) })
                    .await
            }
        };
        bucket.check()
    }

    /// Buckets kept now (after pending evictions ran).
    pub async fn tracked(&self) -> u64 {
        self.buckets.run_pending_tasks().await;
        self.buckets.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_bounds_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_RATE * 2.0] {
            assert!(
                matches!(RateLimit::new(rate, 1), Err(InvalidLimit::Rate(_))),
                "{rate}"
            );
        }
        for burst in [0, MAX_BURST + 1] {
            assert_eq!(RateLimit::new(1.0, burst), Err(InvalidLimit::Burst(burst)));
        }
        assert!(RateLimit::new(0.5, 1).is_ok());
        assert!(RateLimit::new(MAX_RATE, MAX_BURST).is_ok());
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_with_a_retry_after_from_the_rate() {
        // One request every 10 s: the 4th request of a burst of 3 waits ~10 s.
        let bucket = Bucket::new(RateLimit::new(0.1, 3).expect("limit"));
        for _ in 0..3 {
            assert_eq!(bucket.check(), Ok(()));
        }
        let Err(RetryAfter(secs)) = bucket.check() else {
            panic!("the 4th request passed")
        };
        assert!((9..=10).contains(&secs), "{secs}");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(RetryAfter::from_wait(Duration::ZERO), RetryAfter(1));
        assert_eq!(
            RetryAfter::from_wait(Duration::from_millis(1)),
            RetryAfter(1)
        );
        assert_eq!(RetryAfter::from_wait(Duration::from_secs(2)), RetryAfter(2));
        assert_eq!(
            RetryAfter::from_wait(Duration::from_millis(2001)),
            RetryAfter(3)
        );
    }

    #[test]
    fn refill_time_is_burst_over_rate_and_at_least_a_second() {
        let l = RateLimit::new(2.0, 10).expect("limit");
        assert_eq!(l.refill_time(), Duration::from_secs(5));
        let l = RateLimit::new(100.0, 1).expect("limit");
        assert_eq!(l.refill_time(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn users_have_their_own_buckets_and_memory_stays_bounded() {
        let per_user = PerUser::with_capacity(RateLimit::new(0.1, 1).expect("limit"), 100);
        assert_eq!(per_user.check("a").await, Ok(()));
        assert!(per_user.check("a").await.is_err(), "a's second request");
        assert_eq!(per_user.check("b").await, Ok(()), "b is not a");
        for i in 0..1_000 {
            let _ = per_user.check(&format!("scraper-{i}")).await;
        }
        let tracked = per_user.tracked().await;
        assert!(tracked <= 100, "{tracked} buckets kept");
    }

    #[test]
    fn a_limit_reads_from_camel_case_fields_and_refuses_unknown_ones() {
        let l: RateLimit =
            serde_json::from_str(r#"{"requestsPerSecond":5,"burst":10}"#).expect("limit");
        assert_eq!((l.per_second(), l.burst()), (5.0, 10));
        assert!(serde_json::from_str::<RateLimit>(r#"{"requestsPerSecond":5,"burst":0}"#).is_err());
        assert!(
            serde_json::from_str::<RateLimit>(r#"{"rps":5,"requestsPerSecond":5,"burst":1}"#)
                .is_err()
        );
    }
}
