//! Built-in queries over the feed-server metrics contract (PRODUCT.md §1).
//!
//! Every template selects one side with `{{selector}}` and aggregates with `sum(...)`, so it
//! returns one number (or nothing when the side has no series). Numerators fall back to 0 with
//! `or vector(0)` (a canary without a single 5xx has an error rate of 0, not "no data"); ratios
//! are empty without a denominator series and NaN when it did not move: both are no data.

use feedroll_crds::{CheckSource, Preset, ResolvedCheck};

/// Share of 5xx responses.
pub const ERROR_RATE: &str = r#"(sum(rate(feed_http_requests_total{{{selector}},status=~"5.."}[{{window}}])) or vector(0)) / sum(rate(feed_http_requests_total{{{selector}}}[{{window}}]))"#;
/// Share of non-5xx responses.
pub const AVAILABILITY: &str = r#"(sum(rate(feed_http_requests_total{{{selector}},status!~"5.."}[{{window}}])) or vector(0)) / sum(rate(feed_http_requests_total{{{selector}}}[{{window}}]))"#;
/// A latency quantile in seconds; `{{quantile}}` is filled from the check.
pub const LATENCY_QUANTILE: &str = r#"histogram_quantile({{quantile}}, sum by (le) (rate(feed_http_request_duration_seconds_bucket{{{selector}}}[{{window}}])))"#;
/// Cache hits (any tier) per lookup of the first tier (`local`): the share of requests served
/// from a cache.
pub const CACHE_HIT_RATIO: &str = r#"(sum(rate(feed_cache_requests_total{{{selector}},result="hit"}[{{window}}])) or vector(0)) / sum(rate(feed_cache_requests_total{{{selector}},tier="local"}[{{window}}]))"#;
/// `complete` events per `impression`.
pub const COMPLETION_RATE: &str = r#"(sum(rate(feed_events_total{{{selector}},type="complete"}[{{window}}])) or vector(0)) / sum(rate(feed_events_total{{{selector}},type="impression"}[{{window}}]))"#;
/// `like`, `share` and `comment` events per `impression`.
pub const ENGAGEMENT_RATE: &str = r#"(sum(rate(feed_events_total{{{selector}},type=~"like|share|comment"}[{{window}}])) or vector(0)) / sum(rate(feed_events_total{{{selector}},type="impression"}[{{window}}]))"#;

/// HTTP requests in the window.
pub const HTTP_VOLUME: &str =
    r#"sum(increase(feed_http_requests_total{{{selector}}}[{{window}}]))"#;
/// Cache lookups of the first tier in the window.
pub const CACHE_VOLUME: &str =
    r#"sum(increase(feed_cache_requests_total{{{selector}},tier="local"}[{{window}}]))"#;
/// Impressions in the window.
pub const EVENT_VOLUME: &str =
    r#"sum(increase(feed_events_total{{{selector}},type="impression"}[{{window}}]))"#;

/// The value template and the volume template of a preset.
pub fn templates(preset: Preset, quantile: f64) -> (String, &'static str) {
    match preset {
        Preset::ErrorRate => (ERROR_RATE.to_owned(), HTTP_VOLUME),
        Preset::Availability => (AVAILABILITY.to_owned(), HTTP_VOLUME),
        Preset::LatencyQuantile => (
            LATENCY_QUANTILE.replace("{{quantile}}", &quantile.to_string()),
            HTTP_VOLUME,
        ),
        Preset::CacheHitRatio => (CACHE_HIT_RATIO.to_owned(), CACHE_VOLUME),
        Preset::CompletionRate => (COMPLETION_RATE.to_owned(), EVENT_VOLUME),
        Preset::EngagementRate => (ENGAGEMENT_RATE.to_owned(), EVENT_VOLUME),
    }
}

/// The value template of a check and, when `minRequests > 0`, its volume template.
pub fn check_templates(check: &ResolvedCheck) -> (String, Option<String>) {
    let (value, volume) = match &check.source {
        CheckSource::Preset { preset, quantile } => {
            let (v, vol) = templates(*preset, *quantile);
            (
                v,
                check.volume_query.clone().unwrap_or_else(|| vol.to_owned()),
            )
        }
        CheckSource::Query(q) => (
            q.clone(),
            check
                .volume_query
                .clone()
                .unwrap_or_else(|| HTTP_VOLUME.to_owned()),
        ),
    };
    (value, (check.min_requests > 0).then_some(volume))
}
