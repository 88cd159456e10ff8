//! Load shedding of rankings: a bound on rankings running at once and on rankings waiting for
//! a slot; beyond it a request is refused at once (503 `overloaded`, `Retry-After`) instead of
//! joining an unbounded queue that makes every client wait seconds.
//!
//! **Where the bound sits.** An uncached ranking costs ~2 ms of feed-server CPU, ~0.7 ms of Redis
//! CPU and three store round trips; a cached page costs ~15 µs (BENCHMARKS.md). The bound
//! therefore wraps the ranking only — in [`crate::feed::head`] after both cache tiers missed,
//! and in `POST /v1/rank` — never the route: cached first pages and cursor pages are
//! served while every ranking slot is busy. A request takes its place in the queue *after* the
//! store-tier cache lookup missed, so a page cached in either tier is never refused; a shed
//! request costs that one store read. (Until issue 16 the place was taken before the lookup, to
//! spare refused requests the read: hot users whose in-process entries expired together were
//! then refused pages the store held — 0.07% of the bench's cached requests.)
//!
//! **How.** Two tokio [`Semaphore`]s: `admission` (running + queued places) is taken with
//! `try_acquire`, so a full queue refuses without waiting (`queue_full`); `slots` (running
//! rankings) is awaited at most [`ShedLimits::max_queue_wait`] (`queue_timeout`, for when
//! rankings slow down, e.g. a slow store). tower's `ConcurrencyLimit`/`LoadShed` would bound the
//! whole route, cached pages included, which is why they are not used here.

use feed_metrics::ops;
use std::num::NonZeroUsize;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::{Semaphore, SemaphorePermit};

/// What a refused client is told to wait before retrying (`Retry-After`, whole seconds). A
/// ranking takes milliseconds, so a second lets the queue drain many times over; clients should
/// add jitter (or retry on another replica) so refused requests do not return in lock-step.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Default ranking slots per CPU core. A ranking waits on three store round trips between its
/// bursts of CPU, so a second slot per core fills those waits; more slots did not rank faster
/// and cost more CPU per ranking (BENCHMARKS.md, "Sizing the ranking bound").
pub const IN_FLIGHT_PER_CORE: usize = 2;

/// Default queue places per ranking slot: a queued ranking waits about three ranking times, and
/// a client keeping up to 4 × the slots requests open (16 on 2 cores) is never refused.
pub const QUEUED_PER_SLOT: usize = 3;

/// The bounds of the ranking limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShedLimits {
    /// Rankings running at once (at least 1).
    pub max_in_flight: usize,
    /// Rankings waiting for a slot (0 = refuse whenever every slot is busy).
    pub max_queued: usize,
    /// Longest a queued ranking waits for a slot before it is refused.
    pub max_queue_wait: Duration,
}

impl ShedLimits {
    /// Default ranking slots: [`IN_FLIGHT_PER_CORE`] × the CPUs this process may use.
    pub fn default_in_flight() -> usize {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        cores * IN_FLIGHT_PER_CORE
    }

    /// The limits of the flags; `None` picks the defaults ([`ShedLimits::default_in_flight`],
    /// [`QUEUED_PER_SLOT`] × the slots).
    pub fn new(
        max_in_flight: Option<usize>,
        max_queued: Option<usize>,
        max_queue_wait: Duration,
    ) -> Self {
        let max_in_flight = max_in_flight.unwrap_or_else(Self::default_in_flight).max(1);
        Self {
            max_in_flight,
            max_queued: max_queued.unwrap_or(max_in_flight * QUEUED_PER_SLOT),
            max_queue_wait,
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// Every slot busy and every queue place taken: refused without waiting.
    QueueFull,
    /// Queued, but no slot freed within the longest queue wait.
    QueueTimeout,
}

impl ShedReason {
    /// Every reason (metric initialisation).
    pub const ALL: [ShedReason; 2] = [Self::QueueFull, Self::QueueTimeout];

    /// The `reason` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::QueueTimeout => "queue_timeout",
        }
    }
}

/// A ranking refused by the limiter (answered 503 `overloaded` with `Retry-After`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many rankings in progress ({}); retry later", .reason.as_str())]
pub struct Overloaded {
    /// Why.
    pub reason: ShedReason,
}

/// `feed_shed_requests_total{reason}`, `feed_rankings_in_flight`, `feed_rankings_queued` and
/// `feed_rankings_limit{kind}`: operational series, apart from the API request metrics.
#[derive(Clone)]
pub struct ShedMetrics {
    shed: IntCounterVec,
    in_flight: IntGauge,
    queued: IntGauge,
    limit: IntGaugeVec,
}

impl ShedMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let shed = IntCounterVec::new(
            Opts::new(
                ops::SHED_REQUESTS,
                "Rankings refused with 503 overloaded, by reason (queue_full, queue_timeout)",
            ),
            &["reason"],
        )?;
        let in_flight = IntGauge::new(ops::RANKINGS_IN_FLIGHT, "Rankings running now")?;
        let queued = IntGauge::new(
            ops::RANKINGS_QUEUED,
            "Requests holding a ranking queue place (waiting for a slot)",
        )?;
        let limit = IntGaugeVec::new(
            Opts::new(
                ops::RANKINGS_LIMIT,
                "Ranking bounds in force: kind=in_flight (slots) or queued (queue places)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(limit.clone()))?;
        for reason in ShedReason::ALL {
            shed.with_label_values(&[reason.as_str()]);
        }
        Ok(Self {
            shed,
            in_flight,
            queued,
            limit,
        })
    }
}

/// Increments a gauge for as long as it lives.
struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The bound on concurrent and queued rankings of this replica.
pub struct RankingLimiter {
    admission: Semaphore,
    slots: Semaphore,
    limits: ShedLimits,
    metrics: ShedMetrics,
    /// Test-only ranking latency (fault injection), milliseconds.
    #[cfg(feature = "fault-injection")]
    added_latency_ms: std::sync::atomic::AtomicU64,
}

impl RankingLimiter {
    /// A limiter with `limits`, publishing to `metrics`.
    pub fn new(limits: ShedLimits, metrics: ShedMetrics) -> Self {
        let in_flight = limits.max_in_flight.max(1);
        let places = in_flight.saturating_add(limits.max_queued);
        metrics
            .limit
            .with_label_values(&["in_flight"])
            .set(gauge_value(in_flight));
        metrics
            .limit
            .with_label_values(&["queued"])
            .set(gauge_value(limits.max_queued));
        Self {
            admission: Semaphore::new(places.min(Semaphore::MAX_PERMITS)),
            slots: Semaphore::new(in_flight.min(Semaphore::MAX_PERMITS)),
            limits,
            metrics,
            #[cfg(feature = "fault-injection")]
            added_latency_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> ShedLimits {
        self.limits
    }

    fn refuse(&self, reason: ShedReason) -> Overloaded {
        self.metrics
            .shed
            .with_label_values(&[reason.as_str()])
            .inc();
        Overloaded { reason }
    }

    /// Takes a queue place without waiting, or refuses (`queue_full`) when every slot and every
    /// place is taken. Cheap and synchronous: call it once a ranking is needed (every cache tier
    /// missed), before the store work of the ranking.
    pub fn reserve(&self) -> Result<Reservation<'_>, Overloaded> {
        match self.admission.try_acquire() {
            Ok(place) => Ok(Reservation {
                limiter: self,
                place,
                _queued: GaugeGuard::new(&self.metrics.queued),
            }),
            Err(_) => Err(self.refuse(ShedReason::QueueFull)),
        }
    }

    /// Whether a queue place is free now: a hint (another request may take it first) for work
    /// worth doing ahead of a ranking only when one may run.
    pub fn has_place(&self) -> bool {
        self.admission.available_permits() > 0
    }

    /// A slot for a ranking outside the bound's queue (the start-up warm-up, which ranks one
    /// user at a time before the replica takes traffic): waits for a slot without limit.
    pub async fn slot_unbounded(&self) -> Option<RankingPermit<'_>> {
        let slot = self.slots.acquire().await.ok()?;
        Some(self.running(slot, None).await)
    }

    async fn running<'a>(
        &'a self,
        slot: SemaphorePermit<'a>,
        place: Option<SemaphorePermit<'a>>,
    ) -> RankingPermit<'a> {
        let permit = RankingPermit {
            _slot: slot,
            _place: place,
            _running: GaugeGuard::new(&self.metrics.in_flight),
        };
        #[cfg(feature = "fault-injection")]
        {
            let ms = self
                .added_latency_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        permit
    }

    /// Test-only: every ranking holds its slot this much longer (fault injection).
    #[cfg(feature = "fault-injection")]
    pub fn set_added_latency_ms(&self, ms: u64) {
        self.added_latency_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The test-only added ranking latency in force.
    #[cfg(feature = "fault-injection")]
    pub fn added_latency_ms(&self) -> u64 {
        self.added_latency_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A queue place: the request ranks once it has a slot ([`Reservation::slot`]; both cache tiers
/// missed before it was taken).
pub struct Reservation<'a> {
    limiter: &'a RankingLimiter,
    place: SemaphorePermit<'a>,
    _queued: GaugeGuard,
}

impl<'a> Reservation<'a> {
    /// Waits for a ranking slot, at most the longest queue wait (`queue_timeout` after it).
    pub async fn slot(self) -> Result<RankingPermit<'a>, Overloaded> {
        let limiter = self.limiter;
        let wait = limiter.limits.max_queue_wait;
        match tokio::time::timeout(wait, limiter.slots.acquire()).await {
            Ok(Ok(slot)) => {
                let Reservation { place, _queued, .. } = self;
                drop(_queued);
                Ok(limiter.running(slot, Some(place)).await)
            }
            // The semaphore is never closed; a closed one refuses like a full wait would.
            Ok(Err(_)) | Err(_) => Err(limiter.refuse(ShedReason::QueueTimeout)),
        }
    }
}

/// A running ranking's slot; dropping it lets the next queued ranking run.
pub struct RankingPermit<'a> {
    _slot: SemaphorePermit<'a>,
    _place: Option<SemaphorePermit<'a>>,
    _running: GaugeGuard,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(in_flight: usize, queued: usize, wait_ms: u64) -> (RankingLimiter, ShedMetrics) {
        let metrics = ShedMetrics::register(&Registry::new()).expect("metrics");
        let limits = ShedLimits::new(
            Some(in_flight),
            Some(queued),
            Duration::from_millis(wait_ms),
        );
        (RankingLimiter::new(limits, metrics.clone()), metrics)
    }

    fn shed(m: &ShedMetrics, reason: ShedReason) -> u64 {
        m.shed.with_label_values(&[reason.as_str()]).get()
    }

    #[test]
    fn defaults_scale_with_the_cores_and_zero_slots_means_one() {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let d = ShedLimits::new(None, None, Duration::from_millis(500));
        assert_eq!(d.max_in_flight, cores * IN_FLIGHT_PER_CORE);
        assert_eq!(d.max_queued, d.max_in_flight * QUEUED_PER_SLOT);
        let tiny = ShedLimits::new(Some(0), Some(0), Duration::ZERO);
        assert_eq!((tiny.max_in_flight, tiny.max_queued), (1, 0));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_slot_admits_again() {
        let (l, m) = limiter(1, 1, 10_000);
        assert!(l.has_place());
        let running = l.reserve().expect("place").slot().await.expect("slot");
        assert_eq!((m.in_flight.get(), m.queued.get()), (1, 0));
        assert!(l.has_place(), "the queue place");
        let waiting = l.reserve().expect("the one queue place");
        assert_eq!(m.queued.get(), 1);
        assert!(!l.has_place(), "a request now would be refused");
        let refused = l.reserve().err();
        assert_eq!(
            refused,
            Some(Overloaded {
                reason: ShedReason::QueueFull
            })
        );
        assert_eq!(shed(&m, ShedReason::QueueFull), 1);
        drop(running);
        assert!(l.has_place(), "the running ranking's place is free again");
        let next = waiting.slot().await.expect("the freed slot");
        assert_eq!((m.in_flight.get(), m.queued.get()), (1, 0));
        drop(next);
        assert_eq!((m.in_flight.get(), m.queued.get()), (0, 0));
        assert_eq!(shed(&m, ShedReason::QueueTimeout), 0);
    }

    #[tokio::test]
    async fn a_queued_ranking_is_refused_when_no_slot_frees_in_time() {
        let (l, m) = limiter(1, 4, 20);
        let _running = l.reserve().expect("place").slot().await.expect("slot");
        let refused = l.reserve().expect("place").slot().await.err();
        assert_eq!(
            refused,
            Some(Overloaded {
                reason: ShedReason::QueueTimeout
            })
        );
        assert_eq!(shed(&m, ShedReason::QueueTimeout), 1);
        // The refused request gave its place back.
        assert_eq!((m.in_flight.get(), m.queued.get()), (1, 0));
    }

    #[tokio::test]
    async fn a_dropped_reservation_gives_its_place_back() {
        let (l, m) = limiter(1, 0, 10);
        let place = l.reserve().expect("place");
        assert!(l.reserve().is_err(), "one place only");
        drop(place); // a request that ends before its ranking (an error, a timeout)
        assert_eq!(m.queued.get(), 0);
        assert!(l.reserve().is_ok());
    }

    #[tokio::test]
    async fn the_warm_up_slot_counts_against_the_slots() {
        let (l, m) = limiter(1, 1, 10);
        let warm = l.slot_unbounded().await.expect("slot");
        assert_eq!(m.in_flight.get(), 1);
        let refused = l.reserve().expect("place").slot().await.err();
        assert_eq!(refused.map(|o| o.reason), Some(ShedReason::QueueTimeout));
        drop(warm);
        assert!(l.reserve().expect("place").slot().await.is_ok());
    }

    #[test]
    fn bad_bounds_are_clear_start_up_errors() {
        use crate::config::Config;
        use clap::Parser;
        let err = Config::try_parse_from(["feed-server", "--max-rankings-in-flight", "0"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--max-rankings-in-flight"), "{err}");
        let err = Config::try_parse_from(["feed-server", "--max-queued-rankings", "many"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--max-queued-rankings"), "{err}");
        let ok = Config::try_parse_from(["feed-server", "--max-queued-rankings", "0"])
            .map(|c| c.shed_limits().max_queued)
            .ok();
        assert_eq!(
            ok,
            Some(0),
            "0 queue places: refuse whenever every slot is busy"
        );
    }
}
