//! Shared application state, built once at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cache::FeedCache;
use crate::experiments::LiveProfiles;
use crate::exposure::gate::TuneGate;
use crate::metrics::Metrics;
use crate::shed::{RankingLimiter, ShedLimits};
use crate::single_flight::KeyedLocks;
use crate::store::Store;
use crate::time::{Clock, SystemClock};
use crate::warmup::Warmup;

/// Tunables of the request path.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// Items kept per ranked snapshot (how deep a user can page).
    pub feed_depth: usize,
    /// How long readiness waits for the store's answer.
    pub ready_timeout: Duration,
    /// Bounds on concurrent and queued rankings (load shedding).
    pub shed: ShedLimits,
    /// Most exposure-log events one `POST /v1/admin/tune` reads (the newest).
    pub tune_max_events: usize,
}

/// Everything the handlers share.
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The two-tier feed cache.
    pub cache: FeedCache,
    /// The ranking configuration in force.
    pub profiles: Arc<LiveProfiles>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Tunables.
    pub settings: ServiceSettings,
    /// The bound on concurrent and queued rankings.
    pub rankings: RankingLimiter,
    /// Users whose first page is being ranked: one ranking per user at a time.
    pub first_pages: KeyedLocks,
    /// At most one tune at a time.
    pub tunes: TuneGate,
    /// Where "now" comes from: the system clock, or a test's [`crate::time::ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// The predictive warm-up: what the request path records of users' activity.
    pub warmup: Warmup,
    warmed: AtomicBool,
}

impl AppState {
    /// New state; not ready until [`AppState::mark_warm`].
    pub fn new(
        store: Arc<dyn Store>,
        cache: FeedCache,
        profiles: Arc<LiveProfiles>,
        metrics: Arc<Metrics>,
        settings: ServiceSettings,
    ) -> Self {
        let rankings = RankingLimiter::new(settings.shed, metrics.shedding.clone());
        Self {
            store,
            cache,
            profiles,
            metrics,
            settings,
            rankings,
            first_pages: KeyedLocks::default(),
            tunes: TuneGate::default(),
            clock: Arc::new(SystemClock),
            warmup: Warmup::disabled(),
            warmed: AtomicBool::new(false),
        }
    }

    /// The same state reading the time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same state with the predictive warm-up `warmup` (off by default).
    #[must_use]
    pub fn with_warmup(mut self, warmup: Warmup) -> Self {
        self.warmup = warmup;
        self
    }

    /// Warm-up finished.
    pub fn mark_warm(&self) {
        self.warmed.store(true, Ordering::Release);
    }

    /// Whether warm-up finished.
    pub fn is_warm(&self) -> bool {
        self.warmed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
impl AppState {
    /// A state over the embedded store for unit tests: the default experiment, an in-process
    /// tier of 100 items trusted for an hour, depth 100, one ranking at a time.
    pub(crate) fn for_tests() -> Result<Self, crate::metrics::MetricsError> {
        use feed_profile::Experiment;

        let store = Arc::new(crate::store::MemoryStore::new());
        let metrics = Arc::new(Metrics::new("r", "stable")?);
        let cache = FeedCache::new(
            store.clone(),
            metrics.clone(),
            100,
            100,
            Duration::from_secs(3600),
        );
        let profiles = Arc::new(LiveProfiles::new(Experiment::default(), metrics.clone()));
        let settings = ServiceSettings {
            feed_depth: 100,
            ready_timeout: Duration::from_secs(1),
            shed: ShedLimits::new(Some(1), Some(1), Duration::from_secs(1)),
            tune_max_events: 1,
        };
        Ok(Self::new(store, cache, profiles, metrics, settings))
    }
}

/// Shared handle passed to handlers.
pub type SharedState = Arc<AppState>;
