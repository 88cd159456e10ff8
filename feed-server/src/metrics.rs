//! Prometheus metrics, per the metrics contract (PRODUCT.md §1). Every series carries the
//! constant labels `rollout` and `track` (from `FEED_ROLLOUT`, `FEED_TRACK`), and `variant`
//! where a ranking experiment applies.

use feed_metrics::{contract, ops};
use std::sync::{Arc, Mutex};

use feed_profile::Experiment;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::EventType;
use crate::served::ServedMetrics;
use crate::shed::ShedMetrics;

/// Latency buckets (seconds): fine below 100 ms, reaching the 1 s pause threshold and beyond.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
];

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    /// `feed_http_requests_total{route,method,status,variant,key}` (`key`: the API key's name,
    /// empty in open mode and without a known key).
    pub http_requests: IntCounterVec,
    /// `feed_http_request_duration_seconds{route,method,variant,key}`.
    pub http_duration: HistogramVec,
    /// `feed_http_operational_requests_total{route,status}`: probes, scrapes and unmatched
    /// paths, kept out of the two series above (which count API routes only).
    pub http_operational: IntCounterVec,
    /// `feed_http_refused_total{route,reason,key}`: API requests refused by authentication or a
    /// rate limit (401 `unauthenticated`, 403 `forbidden`, 429 `rate_limited`), kept out of the
    /// request series so that a flood of cheap refusals cannot dilute a rollout's error rate or
    /// latency.
    pub http_refused: IntCounterVec,
    /// `feed_cache_requests_total{tier,result}`, by [`CacheTier`] then [`CacheResult`]: each
    /// series resolved once, since every feed request counts a lookup.
    cache_requests: [[IntCounter; 2]; 2],
    /// `feed_events_total{type,variant}`: accepted events.
    pub events: IntCounterVec,
    /// `feed_events_rejected_total{code}`.
    pub events_rejected: IntCounterVec,
    /// `feed_ranking_profile_info{profile,variant,generation}` = 1 for the configuration in force.
    pub profile_info: IntGaugeVec,
    /// `feed_ranking_profile_reload_errors_total`.
    pub profile_reload_errors: IntCounter,
    /// `feed_store_errors_total{kind}`.
    pub store_errors: IntCounterVec,
    /// `feed_ranking_candidates`: candidates scored per ranking.
    pub ranking_candidates: Histogram,
    /// Load shedding of rankings ([`crate::shed`]).
    pub shedding: ShedMetrics,
    /// Content health of served feed pages ([`crate::served`]).
    pub served: Arc<ServedMetrics>,
    profile_labels: Mutex<Vec<[String; 3]>>,
}

/// The `tier` label of `feed_cache_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum CacheTier {
    /// The in-process tier.
    Local = 0,
    /// The store tier (shared by the replicas).
    Store = 1,
}

/// The `result` label of `feed_cache_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum CacheResult {
    /// The lookup found a usable snapshot.
    Hit = 0,
    /// It did not.
    Miss = 1,
}

/// Could not build the registry (a programming error: duplicate or malformed metric).
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Builds the registry with constant labels `rollout` and `track`.
    pub fn new(rollout: &str, track: &str) -> Result<Self, MetricsError> {
        let labels = [
            ("rollout".to_owned(), rollout.to_owned()),
            ("track".to_owned(), track.to_owned()),
        ];
        let registry = Registry::new_custom(None, Some(labels.into_iter().collect()))?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                contract::HTTP_REQUESTS,
                "API requests (`/v1/` routes) by route, method, status, variant and API key name",
            ),
            &["route", "method", "status", "variant", "key"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                contract::HTTP_REQUEST_DURATION,
                "API request latency (`/v1/` routes)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "variant", "key"],
        )?;
        let http_operational = IntCounterVec::new(
            Opts::new(
                ops::HTTP_OPERATIONAL_REQUESTS,
                "Probe, scrape and unmatched requests by route and status (not API traffic)",
            ),
            &["route", "status"],
        )?;
        let http_refused = IntCounterVec::new(
            Opts::new(
                ops::HTTP_REFUSED,
                "API requests refused before any work (401, 403, 429) by route, reason (the error code) and API key name; not in feed_http_requests_total",
            ),
            &["route", "reason", "key"],
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                contract::CACHE_REQUESTS,
                "Feed cache lookups by tier (local, store) and result (hit, miss)",
            ),
            &["tier", "result"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                contract::EVENTS,
                "Accepted engagement events by type and variant",
            ),
            &["type", "variant"],
        )?;
        let events_rejected = IntCounterVec::new(
            Opts::new(ops::EVENTS_REJECTED, "Rejected engagement events by reason"),
            &["code"],
        )?;
        let profile_info = IntGaugeVec::new(
            Opts::new(
                contract::RANKING_PROFILE_INFO,
                "Ranking profile in force per variant (value 1)",
            ),
            &["profile", "variant", "generation"],
        )?;
        let profile_reload_errors = IntCounter::new(
            ops::RANKING_PROFILE_RELOAD_ERRORS,
            "Profile file changes rejected (the last good profile kept serving)",
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(ops::STORE_ERRORS, "Failed store calls by kind"),
            &["kind"],
        )?;
        let ranking_candidates = Histogram::with_opts(
            HistogramOpts::new(ops::RANKING_CANDIDATES, "Candidates scored per ranking")
                .buckets(vec![10.0, 50.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0]),
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_operational.clone()))?;
        registry.register(Box::new(http_refused.clone()))?;
        registry.register(Box::new(cache_requests.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(events_rejected.clone()))?;
        registry.register(Box::new(profile_info.clone()))?;
        registry.register(Box::new(profile_reload_errors.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(ranking_candidates.clone()))?;
        let shedding = ShedMetrics::register(&registry)?;
        let served = ServedMetrics::register(&registry)?;
        let cache_requests = [CacheTier::Local, CacheTier::Store].map(|tier| {
            [CacheResult::Hit, CacheResult::Miss].map(|result| {
                cache_requests.with_label_values(&[<&str>::from(tier), <&str>::from(result)])
            })
        });
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            http_operational,
            http_refused,
            cache_requests,
            events,
            events_rejected,
            profile_info,
            profile_reload_errors,
            store_errors,
            ranking_candidates,
            shedding,
            served,
            profile_labels: Mutex::new(Vec::new()),
        })
    }

    /// Registers a boxed collector (one built by a lower layer, e.g. the store's ingest metrics).
    pub fn register_boxed(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        Ok(self.registry.register(collector)?)
    }

    /// Registers a collector another module owns (its series get `rollout` and `track` too).
    pub fn register<C: prometheus::core::Collector + 'static>(
        &self,
        collector: C,
    ) -> Result<(), MetricsError> {
        Ok(self.registry.register(Box::new(collector))?)
    }

    /// Counts a cache lookup.
    pub fn cache(&self, tier: CacheTier, result: CacheResult) {
        self.cache_requests[tier as usize][result as usize].inc();
    }

    /// Counts accepted events.
    pub fn event(&self, kind: EventType, variant: &str) {
        self.events
            .with_label_values(&[kind.as_str(), variant])
            .inc();
    }

    /// Publishes the configuration in force (and removes the previous one's series).
    pub fn profile_loaded(&self, experiment: &Experiment, generation: u64) {
        let mut labels = self
            .profile_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in labels.drain(..) {
            let _ = self
                .profile_info
                .remove_label_values(&[&l[0], &l[1], &l[2]]);
        }
        for v in &experiment.variants {
            let l = [
                v.profile.name.clone(),
                v.name.clone(),
                generation.to_string(),
            ];
            self.profile_info
                .with_label_values(&[&l[0], &l[1], &l[2]])
                .set(1);
            labels.push(l);
        }
        // Pre-create the event and served-page series so rates start at 0 rather than missing.
        for v in &experiment.variants {
            for kind in EventType::ALL {
                self.events.with_label_values(&[kind.as_str(), &v.name]);
            }
            self.served.init_variant(&v.name);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}
