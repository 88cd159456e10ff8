//! Rate limits: token buckets (GCRA, the `governor` crate) per API key, per user of
//! `GET /v1/feed`, and one for all of open mode.
//!
//! A request over its limit is refused before any handler runs (nothing changes) with the time
//! until the bucket admits the next request, which the HTTP layer sends as `Retry-After`.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Deserialize;

/// Largest sustained rate a limit may name (requests/s).
pub const MAX_RATE: f64 = 1_000_000.0;
/// Smallest sustained rate a limit may name (requests/s): one request per 1000 s. Slower rates
/// are refused rather than handed to the limiter, whose time arithmetic overflows (and panics)
/// for periods of centuries.
pub const MIN_RATE: f64 = 0.001;
/// Longest time an empty bucket may take to fill up (`burst / requestsPerSecond`): a day. It
/// bounds the limiter's arithmetic and how long an idle user's bucket is kept.
pub const MAX_REFILL: Duration = Duration::from_secs(86_400);
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
    /// Not a finite rate within [`MIN_RATE`]..=[`MAX_RATE`].
    #[error("requestsPerSecond must be between {MIN_RATE} and {MAX_RATE}, got {0}")]
    Rate(f64),
    /// Not within 1..=[`MAX_BURST`].
    #[error("burst must be between 1 and {MAX_BURST}, got {0}")]
    Burst(u32),
    /// The bucket would take longer than [`MAX_REFILL`] to fill up.
    #[error(
        "burst / requestsPerSecond must be at most {} s (a day), got {burst} / {per_second}",
        MAX_REFILL.as_secs()
    )]
    Refill {
        /// The rate.
        per_second: f64,
        /// The burst.
        burst: u32,
    },
}

impl RateLimit {
    /// `per_second` requests per second sustained, up to `burst` at once. Refuses what the
    /// limiter cannot represent: a rate outside [`MIN_RATE`]..=[`MAX_RATE`], a burst outside
    /// 1..=[`MAX_BURST`], a refill time (`burst / per_second`) above [`MAX_REFILL`].
    pub fn new(per_second: f64, burst: u32) -> Result<Self, InvalidLimit> {
        if !(per_second.is_finite() && (MIN_RATE..=MAX_RATE).contains(&per_second)) {
            return Err(InvalidLimit::Rate(per_second));
        }
        let burst = NonZeroU32::new(burst)
            .filter(|b| b.get() <= MAX_BURST)
            .ok_or(InvalidLimit::Burst(burst))?;
        if f64::from(burst.get()) / per_second > MAX_REFILL.as_secs_f64() {
            return Err(InvalidLimit::Refill {
                per_second,
                burst: burst.get(),
            });
        }
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

    /// How long an idle bucket takes to fill up again (at least a second, at most
    /// [`MAX_REFILL`]): a bucket unused for this long is the same as a new one, so it may be
    /// forgotten.
    pub fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst.get()) / self.per_second)
            .max(Duration::from_secs(1))
    }

    fn quota(&self) -> Quota {
        // The rate is within [MIN_RATE, MAX_RATE]: the period is between a microsecond and
        // 1000 s, and period × burst at most a day, well within the limiter's nanosecond range.
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

/// One token bucket, on the monotonic clock (tests pass a fake clock to [`Bucket::with_clock`]).
pub struct Bucket<C: Clock = DefaultClock> {
    limit: RateLimit,
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl<C: Clock> fmt::Debug for Bucket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("limit", &self.limit)
            .finish()
    }
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_clock(limit, DefaultClock::default())
    }
}

impl<C: Clock> Bucket<C> {
    /// A full bucket reading the time from `clock`.
    pub fn with_clock(limit: RateLimit, clock: C) -> Self {
        Self {
            limit,
            limiter: RateLimiter::direct_with_clock(limit.quota(), clock),
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

    use governor::clock::FakeRelativeClock;

    #[test]
    fn limits_outside_their_bounds_are_refused() {
        for rate in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            MAX_RATE * 2.0,
            MIN_RATE / 2.0,
            1e-300,
            f64::MIN_POSITIVE,
        ] {
            assert!(
                matches!(RateLimit::new(rate, 1), Err(InvalidLimit::Rate(_))),
                "{rate}"
            );
        }
        for burst in [0, MAX_BURST + 1] {
            assert_eq!(RateLimit::new(1.0, burst), Err(InvalidLimit::Burst(burst)));
        }
        // Exactly a day to refill is the longest allowed; a request more is refused.
        assert!(RateLimit::new(1.0, 86_400).is_ok());
        assert!(RateLimit::new(MIN_RATE, 86).is_ok());
        for (rate, burst) in [(1.0, 86_401), (MIN_RATE, 87), (MIN_RATE, MAX_BURST)] {
            assert_eq!(
                RateLimit::new(rate, burst),
                Err(InvalidLimit::Refill {
                    per_second: rate,
                    burst
                })
            );
        }
        assert!(RateLimit::new(0.5, 1).is_ok());
        assert!(RateLimit::new(MAX_RATE, MAX_BURST).is_ok());
    }

    #[tokio::test]
    async fn every_limit_at_the_bounds_builds_a_bucket_and_a_user_cache_without_panicking() {
        // The corners of the valid range: governor and moka used to panic beyond them.
        for (rate, burst) in [
            (MIN_RATE, 1),
            (MIN_RATE, 86),
            (MAX_RATE, 1),
            (MAX_RATE, MAX_BURST),
            (1.0, 86_400),
            (12.0, MAX_BURST),
        ] {
            let limit = RateLimit::new(rate, burst).expect("valid");
            assert!(limit.refill_time() <= MAX_REFILL);
            let bucket = Bucket::new(limit);
            assert_eq!(bucket.check(), Ok(()), "{limit}");
            let per_user = PerUser::with_capacity(limit, 10);
            assert_eq!(per_user.check("u").await, Ok(()), "{limit}");
        }
        // The slowest limit: the second request waits its whole period, 1000 s.
        let bucket = Bucket::with_clock(
            RateLimit::new(MIN_RATE, 1).expect("valid"),
            FakeRelativeClock::default(),
        );
        assert_eq!(bucket.check(), Ok(()));
        assert_eq!(bucket.check(), Err(RetryAfter(1000)));
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_with_a_retry_after_from_the_rate() {
        // One request every 10 s: the 4th request of a burst of 3 waits 10 s, then 6 s once
        // 4 s have passed, and is admitted once the 10 s have.
        let clock = FakeRelativeClock::default();
        let bucket = Bucket::with_clock(RateLimit::new(0.1, 3).expect("limit"), clock.clone());
        for _ in 0..3 {
            assert_eq!(bucket.check(), Ok(()));
        }
        assert_eq!(bucket.check(), Err(RetryAfter(10)));
        clock.advance(Duration::from_secs(4));
        assert_eq!(bucket.check(), Err(RetryAfter(6)));
        clock.advance(Duration::from_secs(6));
        assert_eq!(bucket.check(), Ok(()));
        assert_eq!(bucket.check(), Err(RetryAfter(10)));
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
