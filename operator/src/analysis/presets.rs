//! Built-in queries over the feed-server metrics contract (PRODUCT.md §1).
//!
//! Every template selects one side with `{{selector}}` and aggregates with `sum`, so it returns
//! one number per side (or nothing when the side has no series). Numerators fall back to 0 when
//! the denominator exists (`A or B * 0`: a canary without a single 5xx has an error rate of 0,
//! not "no data"); ratios are empty without a denominator series and NaN when it did not move:
//! both are no data.
//!
//! The same templates come in a grouped form ([`Aggregation::By`]): `sum by (namespace, rollout,
//! track)` (or `variant` for in-app rollouts), so one query answers for every rollout.

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

fn ratio(metric: &str, numerator: &str, denominator: &str, agg: Aggregation<'_>) -> String {
    let s = agg.sum();
    let num = format!("{s}(rate({}))", range(metric, numerator));
    let den = format!("{s}(rate({}))", range(metric, denominator));
    format!("({num} or {den} * 0) / {den}")
}

fn volume(metric: &str, extra: &str, agg: Aggregation<'_>) -> String {
    format!("{}(increase({}))", agg.sum(), range(metric, extra))
}

const HTTP: &str = "feed_http_requests_total";
const CACHE: &str = "feed_cache_requests_total";
const EVENTS: &str = "feed_events_total";
const LATENCY_BUCKET: &str = "feed_http_request_duration_seconds_bucket";

/// The value template and the request-volume template of a preset.
pub fn preset_templates(preset: Preset, quantile: f64, agg: Aggregation<'_>) -> (String, String) {
    match preset {
        // Share of 5xx responses.
        Preset::ErrorRate => (
            ratio(HTTP, r#",status=~"5..""#, "", agg),
            volume(HTTP, "", agg),
        ),
        // Share of non-5xx responses.
        Preset::Availability => (
            ratio(HTTP, r#",status!~"5..""#, "", agg),
            volume(HTTP, "", agg),
        ),
        // A latency quantile, in seconds.
        Preset::LatencyQuantile => (
            format!(
                "histogram_quantile({quantile}, {}(rate({})))",
                agg.sum_le(),
                range(LATENCY_BUCKET, "")
            ),
            volume(HTTP, "", agg),
        ),
        // Cache hits (any tier) per lookup of the first tier (`local`): requests served from a cache.
        Preset::CacheHitRatio => (
            ratio(CACHE, r#",result="hit""#, r#",tier="local""#, agg),
            volume(CACHE, r#",tier="local""#, agg),
        ),
        // `complete` events per impression.
        Preset::CompletionRate => (
            ratio(EVENTS, r#",type="complete""#, r#",type="impression""#, agg),
            volume(EVENTS, r#",type="impression""#, agg),
        ),
        // `like`, `share` and `comment` events per impression.
        Preset::EngagementRate => (
            ratio(
                EVENTS,
                r#",type=~"like|share|comment""#,
                r#",type="impression""#,
                agg,
            ),
            volume(EVENTS, r#",type="impression""#, agg),
        ),
    }
}

/// HTTP requests in the window: the default volume of custom queries.
pub fn http_volume() -> String {
    volume(HTTP, "", Aggregation::One)
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
    };
    (value, (check.min_requests > 0).then_some(volume))
}

/// The grouped templates of a check (one query for every rollout), when it has them: presets
/// without a custom `volumeQuery`. Custom PromQL is run per rollout.
pub fn grouped_templates(check: &ResolvedCheck, by: &str) -> Option<(String, Option<String>)> {
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

    #[test]
    fn error_rate_template() {
        let (v, vol) = preset_templates(Preset::ErrorRate, 0.95, Aggregation::One);
        assert_eq!(
            v,
            r#"(sum(rate(feed_http_requests_total{{{selector}},status=~"5.."}[{{window}}])) or sum(rate(feed_http_requests_total{{{selector}}}[{{window}}])) * 0) / sum(rate(feed_http_requests_total{{{selector}}}[{{window}}]))"#
        );
        assert_eq!(
            vol,
            r#"sum(increase(feed_http_requests_total{{{selector}}}[{{window}}]))"#
        );
        let (q, _) = preset_templates(
            Preset::LatencyQuantile,
            0.99,
            Aggregation::By("namespace, rollout, track"),
        );
        assert_eq!(
            q,
            r#"histogram_quantile(0.99, sum by (le, namespace, rollout, track) (rate(feed_http_request_duration_seconds_bucket{{{selector}}}[{{window}}])))"#
        );
    }
}
