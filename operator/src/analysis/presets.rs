//! Built-in queries over the feed-server metrics contract (PRODUCT.md §1).
//!
//! Every template selects one side with `{{selector}}` and aggregates with `sum`, so it returns
//! one number per side (or nothing when the side has no series). Numerators fall back to 0 when
//! the denominator exists (`A or B * 0`: a canary without a single 5xx has an error rate of 0,
//! not "no data"); ratios are empty without a denominator series and NaN when it did not move:
//! both are no data.
//!
//! Every query over `feed_http_*` counts API traffic only (`route=~"/v1/.+"`, [`API_ROUTES`]):
//! kubelet probes, Prometheus scrapes and the 503s `/readyz` answers during warm-up are no
//! user's request. The feed-server keeps them out of these series itself (it counts them in
//! `feed_http_operational_requests_total`); the filter also holds for older feed-servers that
//! recorded them, e.g. stable pods during an upgrade. Cache and event series are API-only by
//! construction (only `/v1/feed` looks the cache up, only `/v1/events` accepts events).
//!
//! A request the feed-server sheds (503 `overloaded`, its ranking bound full) is a 5xx like any
//! other, on purpose: a canary that sheds is failing its users (say, a slower ranking profile
//! halved its capacity) and must not be promoted on an error rate that hides it.
//!
//! Every preset but `latencyQuantile` is a ratio of two counters ([`CounterRatio`]); the
//! content-health presets (`longTailShare`, `creatorDiversity`, `servedFreshness`) read what
//! feed-server reports serving (`feed_served_*`). A sequential check needs the counts themselves,
//! not a ratio of rates: [`count_templates`] gives the `increase()` of both counters.
//!
//! The same templates come in a grouped form ([`Aggregation::By`]): `sum by (namespace, rollout,
//! track)` (or `variant` for in-app rollouts), so one query answers for every rollout.

use feed_metrics::contract;
use feedroll_crds::{CheckSource, Preset, ResolvedCheck};

/// How a query aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation<'a> {
    /// One number for the selected side of one rollout: `sum(...)`.
    One,
    /// One number per label set: `sum by (<labels>) (...)`.
    By(&'a str),
}

impl Aggregation<'_> {
    fn sum(self) -> String {
        match self {
            Aggregation::One => "sum".to_owned(),
            Aggregation::By(labels) => format!("sum by ({labels}) "),
        }
    }

    fn sum_le(self) -> String {
        match self {
            Aggregation::One => "sum by (le) ".to_owned(),
            Aggregation::By(labels) => format!("sum by (le, {labels}) "),
        }
    }
}

/// `metric{<selector><extra>}[<window>]`, with the placeholders left for [`super::render`].
fn range(metric: &str, extra: &str) -> String {
    format!("{metric}{{{{{{selector}}}}{extra}}}[{{{{window}}}}]")
}

/// One counter series: a metric and the matchers after the selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Series {
    metric: &'static str,
    extra: String,
}

fn series(metric: &'static str, extra: impl Into<String>) -> Series {
    Series {
        metric,
        extra: extra.into(),
    }
}

impl Series {
    fn range(&self) -> String {
        range(self.metric, &self.extra)
    }
}

/// A preset that is a ratio of two counters: events (numerator) per trials (denominator).
#[derive(Clone, Debug, PartialEq, Eq)]
struct CounterRatio {
    numerator: Series,
    denominator: Series,
}

impl CounterRatio {
    /// `(num or den * 0) / den` over rates in the window.
    fn value(&self, agg: Aggregation<'_>) -> String {
        let s = agg.sum();
        let num = format!("{s}(rate({}))", self.numerator.range());
        let den = format!("{s}(rate({}))", self.denominator.range());
        format!("({num} or {den} * 0) / {den}")
    }

    /// The denominator's increase in the window: the volume compared with `minRequests`.
    fn volume(&self, agg: Aggregation<'_>) -> String {
        format!("{}(increase({}))", agg.sum(), self.denominator.range())
    }

    /// Events and trials in the window, as counts (0 events when none were counted).
    fn counts(&self) -> CountTemplates {
        let s = Aggregation::One.sum();
        let trials = self.volume(Aggregation::One);
        CountTemplates {
            events: format!("{s}(increase({})) or {trials} * 0", self.numerator.range()),
            trials,
        }
    }
}

/// PromQL templates of the events and the trials of one side, for a sequential check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountTemplates {
    /// Events (numerator).
    pub events: String,
    /// Trials (denominator).
    pub trials: String,
}

const HTTP: &str = contract::HTTP_REQUESTS;
/// The matcher that keeps API routes only: every route under `/v1/`.
pub const API_ROUTES: &str = r#"route=~"/v1/.+""#;
const CACHE: &str = contract::CACHE_REQUESTS;
const EVENTS: &str = contract::EVENTS;
const LATENCY_BUCKET: &str = contract::HTTP_REQUEST_DURATION_BUCKET;
const SERVED_ITEMS: &str = contract::SERVED_ITEMS;
const SERVED_LONG_TAIL: &str = contract::SERVED_LONG_TAIL_ITEMS;
const SERVED_PAGES: &str = contract::SERVED_PAGES;
const SERVED_PAGE_CREATORS: &str = contract::SERVED_PAGE_CREATORS;
const SERVED_AGE_SUM: &str = contract::SERVED_ITEM_AGE_SUM;
const SERVED_AGE_COUNT: &str = contract::SERVED_ITEM_AGE_COUNT;

/// `,route=~"/v1/.+"` followed by `extra`: the matchers of an HTTP series.
fn api(extra: &str) -> String {
    format!(",{API_ROUTES}{extra}")
}

/// The two counters of a preset that is a ratio of counters (all but `latencyQuantile`).
fn counter_ratio(preset: Preset) -> Option<CounterRatio> {
    let ratio = |numerator, denominator| {
        Some(CounterRatio {
            numerator,
            denominator,
        })
    };
    match preset {
        // Share of 5xx responses.
        Preset::ErrorRate => ratio(
            series(HTTP, api(r#",status=~"5..""#)),
            series(HTTP, api("")),
        ),
        // Share of non-5xx responses.
        Preset::Availability => ratio(
            series(HTTP, api(r#",status!~"5..""#)),
            series(HTTP, api("")),
        ),
        Preset::LatencyQuantile => None,
        // Cache hits (any tier) per lookup of the first tier (`local`): requests served from a cache.
        Preset::CacheHitRatio => ratio(
            series(CACHE, r#",result="hit""#),
            series(CACHE, r#",tier="local""#),
        ),
        // `complete` events per impression.
        Preset::CompletionRate => ratio(
            series(EVENTS, r#",type="complete""#),
            series(EVENTS, r#",type="impression""#),
        ),
        // `like`, `share` and `comment` events per impression.
        Preset::EngagementRate => ratio(
            series(EVENTS, r#",type=~"like|share|comment""#),
            series(EVENTS, r#",type="impression""#),
        ),
        // Long-tail items per served item.
        Preset::LongTailShare => ratio(series(SERVED_LONG_TAIL, ""), series(SERVED_ITEMS, "")),
        // Distinct creators per served page.
        Preset::CreatorDiversity => {
            ratio(series(SERVED_PAGE_CREATORS, ""), series(SERVED_PAGES, ""))
        }
        // Mean age of served items, in seconds.
        Preset::ServedFreshness => ratio(series(SERVED_AGE_SUM, ""), series(SERVED_AGE_COUNT, "")),
    }
}

/// The value template and the request-volume template of a preset.
pub fn preset_templates(preset: Preset, quantile: f64, agg: Aggregation<'_>) -> (String, String) {
    match counter_ratio(preset) {
        Some(r) => (r.value(agg), r.volume(agg)),
        // A latency quantile, in seconds.
        None => (
            format!(
                "histogram_quantile({quantile}, {}(rate({})))",
                agg.sum_le(),
                range(LATENCY_BUCKET, &api(""))
            ),
            format!("{}(increase({}))", agg.sum(), range(HTTP, &api(""))),
        ),
    }
}

/// The count templates of a sequential check: a preset's two counters, or the check's own.
/// `None` for checks that are not ratios of counters.
pub fn count_templates(check: &ResolvedCheck) -> Option<CountTemplates> {
    match &check.source {
        CheckSource::Preset { preset, .. } => counter_ratio(*preset).map(|r| r.counts()),
        CheckSource::Counts {
            numerator,
            denominator,
        } => Some(CountTemplates {
            events: numerator.clone(),
            trials: denominator.clone(),
        }),
        CheckSource::Query(_) => None,
    }
}

/// API requests in the window: the default volume of custom queries.
pub fn http_volume() -> String {
    format!(
        "{}(increase({}))",
        Aggregation::One.sum(),
        range(HTTP, &api(""))
    )
}

/// The value template of a check and, when `minRequests > 0`, its volume template.
pub fn check_templates(check: &ResolvedCheck) -> (String, Option<String>) {
    let (value, volume) = match &check.source {
        CheckSource::Preset { preset, quantile } => {
            let (v, vol) = preset_templates(*preset, *quantile, Aggregation::One);
            (v, check.volume_query.clone().unwrap_or(vol))
        }
        CheckSource::Query(q) => (
            q.clone(),
            check.volume_query.clone().unwrap_or_else(http_volume),
        ),
        CheckSource::Counts {
            numerator,
            denominator,
        } => (numerator.clone(), denominator.clone()),
    };
    (value, (check.min_requests > 0).then_some(volume))
}

/// The grouped templates of a check (one query for every rollout), when it has them: presets
/// without a custom `volumeQuery`. Custom PromQL is run per rollout, and so are sequential
/// checks (their window is each rollout's own step).
pub fn grouped_templates(check: &ResolvedCheck, by: &str) -> Option<(String, Option<String>)> {
    if check.sequential.is_some() {
        return None;
    }
    match &check.source {
        CheckSource::Preset { preset, quantile } if check.volume_query.is_none() => {
            let (v, vol) = preset_templates(*preset, *quantile, Aggregation::By(by));
            Some((v, (check.min_requests > 0).then_some(vol)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `feed_http_*{...}` selector in `query`.
    fn http_selectors(query: &str) -> Vec<&str> {
        query
            .match_indices("feed_http_")
            .map(|(at, _)| {
                let rest = &query[at..];
                let open = rest.find('{').unwrap_or(rest.len());
                let close = rest.find("}[").unwrap_or(rest.len());
                &rest[open.min(close)..close]
            })
            .collect()
    }

    #[test]
    fn error_rate_template() {
        let (v, vol) = preset_templates(Preset::ErrorRate, 0.95, Aggregation::One);
        assert_eq!(
            v,
            r#"(sum(rate(feed_http_requests_total{{{selector}},route=~"/v1/.+",status=~"5.."}[{{window}}])) or sum(rate(feed_http_requests_total{{{selector}},route=~"/v1/.+"}[{{window}}])) * 0) / sum(rate(feed_http_requests_total{{{selector}},route=~"/v1/.+"}[{{window}}]))"#
        );
        assert_eq!(
            vol,
            r#"sum(increase(feed_http_requests_total{{{selector}},route=~"/v1/.+"}[{{window}}]))"#
        );
        let (q, _) = preset_templates(
            Preset::LatencyQuantile,
            0.99,
            Aggregation::By("namespace, rollout, track"),
        );
        assert_eq!(
            q,
            r#"histogram_quantile(0.99, sum by (le, namespace, rollout, track) (rate(feed_http_request_duration_seconds_bucket{{{selector}},route=~"/v1/.+"}[{{window}}])))"#
        );
    }

    #[test]
    fn availability_counts_non_5xx_api_responses() {
        let (v, _) = preset_templates(Preset::Availability, 0.95, Aggregation::One);
        assert!(
            v.starts_with(r#"(sum(rate(feed_http_requests_total{{{selector}},route=~"/v1/.+",status!~"5.."}[{{window}}]))"#),
            "{v}"
        );
    }

    #[test]
    fn every_http_selector_of_every_preset_counts_api_routes_only() {
        let aggs = [
            Aggregation::One,
            Aggregation::By("namespace, rollout, track"),
        ];
        let mut http_queries = 0;
        for preset in Preset::ALL {
            for agg in aggs {
                let (value, volume) = preset_templates(preset, 0.95, agg);
                for q in [value, volume] {
                    let selectors = http_selectors(&q);
                    http_queries += usize::from(!selectors.is_empty());
                    for sel in selectors {
                        assert!(sel.contains(API_ROUTES), "{preset:?}: {sel} in {q}");
                    }
                }
            }
        }
        // errorRate, availability, latencyQuantile: value and volume, two aggregations each.
        assert_eq!(http_queries, 3 * 2 * 2);
        let custom_volume = http_volume();
        assert_eq!(http_selectors(&custom_volume).len(), 1);
        assert!(custom_volume.contains(API_ROUTES), "{custom_volume}");
    }

    #[test]
    fn cache_and_event_presets_need_no_route_filter() {
        // Only API handlers write these series; a route matcher would select nothing.
        for preset in [
            Preset::CacheHitRatio,
            Preset::CompletionRate,
            Preset::EngagementRate,
        ] {
            let (value, volume) = preset_templates(preset, 0.95, Aggregation::One);
            assert!(
                !value.contains("route") && !volume.contains("route"),
                "{value}"
            );
            assert!(http_selectors(&value).is_empty(), "{value}");
        }
    }

    #[test]
    fn sequential_checks_count_events_and_trials_of_their_counters() {
        let spec: feedroll_crds::FeedRolloutSpec = serde_yaml::from_str(
            "template: {spec: {containers: [{name: feed, image: 'feed:1'}]}}\nanalysis:\n  defaultChecks: false\n  checks:\n    - {name: e, preset: errorRate, compare: {mode: sequential, minEffect: 0.01}}\n    - {name: c, counts: {numerator: 'sum(a)', denominator: 'sum(b)'}, compare: {mode: sequential, minEffect: 0.01, direction: higher-is-worse}}\n    - {name: p, preset: latencyQuantile, max: 1}\n",
        )
        .expect("spec");
        let checks = spec.resolved_analysis().expect("resolves").checks;
        let errors = count_templates(&checks[0]).expect("counts");
        assert_eq!(
            errors.trials,
            r#"sum(increase(feed_http_requests_total{{{selector}},route=~"/v1/.+"}[{{window}}]))"#
        );
        assert_eq!(
            errors.events,
            format!(
                r#"sum(increase(feed_http_requests_total{{{{{{selector}}}},route=~"/v1/.+",status=~"5.."}}[{{{{window}}}}])) or {} * 0"#,
                errors.trials
            )
        );
        assert_eq!(
            count_templates(&checks[1]),
            Some(CountTemplates {
                events: "sum(a)".into(),
                trials: "sum(b)".into()
            })
        );
        assert_eq!(count_templates(&checks[2]), None);
        // Sequential checks are per rollout: their window is the rollout's step.
        assert_eq!(grouped_templates(&checks[0], "rollout"), None);
    }

    #[test]
    fn content_health_presets_are_ratios_of_the_served_content_counters() {
        let (tail, tail_volume) = preset_templates(Preset::LongTailShare, 0.95, Aggregation::One);
        assert_eq!(
            tail,
            "(sum(rate(feed_served_long_tail_items_total{{{selector}}}[{{window}}])) or sum(rate(feed_served_items_total{{{selector}}}[{{window}}])) * 0) / sum(rate(feed_served_items_total{{{selector}}}[{{window}}]))"
        );
        assert!(tail_volume.contains("increase(feed_served_items_total"));
        let (creators, volume) = preset_templates(Preset::CreatorDiversity, 0.95, Aggregation::One);
        assert!(
            creators.starts_with("(sum(rate(feed_served_page_creators_total"),
            "{creators}"
        );
        assert!(volume.contains("feed_served_pages_total"), "{volume}");
        let (age, _) = preset_templates(Preset::ServedFreshness, 0.95, Aggregation::One);
        assert!(
            age.starts_with("(sum(rate(feed_served_item_age_seconds_sum")
                && age.ends_with(
                    "/ sum(rate(feed_served_item_age_seconds_count{{{selector}}}[{{window}}]))"
                ),
            "{age}"
        );
    }

    #[test]
    fn custom_queries_default_to_the_api_volume_and_keep_their_own() {
        let spec: feedroll_crds::FeedRolloutSpec = serde_yaml::from_str(
            "template: {spec: {containers: [{name: feed, image: 'feed:1'}]}}\nanalysis:\n  defaultChecks: false\n  checks:\n    - {name: a, query: 'vector(1)', max: 2, minRequests: 10}\n    - {name: b, query: 'vector(1)', max: 2, minRequests: 10, volumeQuery: 'vector(100)'}\n",
        )
        .expect("spec");
        let checks = spec.resolved_analysis().expect("resolves").checks;
        let (_, volume) = check_templates(&checks[0]);
        assert_eq!(volume, Some(http_volume()));
        let (_, volume) = check_templates(&checks[1]);
        assert_eq!(volume.as_deref(), Some("vector(100)"));
    }
}
