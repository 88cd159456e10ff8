//! Analysis: the Prometheus checks that judge a canary and the policy applied to each verdict.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationString;

/// When and against what the checks run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// How often blocking, advisory and pause-tier checks run (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationString>,
    /// How often roll-back-tier checks and pod health run (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_interval: Option<DurationString>,
    /// Where Prometheus is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
    /// Include the roadmap policy table (default true). A check in `checks` with the same name
    /// as a default check replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_checks: Option<bool>,
    /// How long a check may have no data (or Prometheus be unreachable) before the rollout
    /// pauses for a human (default `10m`); a check's own `maxHold` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hold: Option<DurationString>,
    /// Checks, in addition to (or replacing by name) the default policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(c, self.exists_one(d, d.name == c.name))", "message": "check names must be unique"}
    ]))]
    pub checks: Vec<Check>,
}

/// The Prometheus HTTP API the checks query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL, e.g. `http://prometheus-operated.monitoring.svc:9090` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.startsWith('http://') || self.startsWith('https://')", "message": "prometheus.address must be an http:// or https:// URL"}
    ]))]
    pub address: Option<String>,
    /// Timeout of one query (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationString>,
}

/// One check: a preset over the metrics contract or a PromQL template, a threshold and a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.preset) != has(self.query)", "message": "a check needs exactly one of preset or query"},
    {"rule": "has(self.min) || has(self.max)", "message": "a check needs a threshold: min, max or both"},
    {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "min must be less than or equal to max"},
    {"rule": "!has(self.quantile) || (self.quantile > 0.0 && self.quantile < 1.0)", "message": "quantile must be between 0 and 1 (exclusive), e.g. 0.95"},
    {"rule": "!has(self.quantile) || (has(self.preset) && self.preset == 'latencyQuantile')", "message": "quantile applies only to the latencyQuantile preset"}
]))]
pub struct Check {
    /// Name of the check, unique in the rollout; used in status, events and metrics.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A built-in query over the feed-server metrics contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// A PromQL template returning one number. Placeholders: `{{namespace}}`, `{{rollout}}`,
    /// `{{track}}` (stable|canary), `{{variant}}`, `{{window}}`, and `{{selector}}` (the label
    /// matchers of the judged side, e.g. `namespace="prod",rollout="feed",track="canary"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub query: Option<String>,
    /// PromQL template returning the request volume in the window, compared with `minRequests`.
    /// Presets bring their own; custom queries default to the feed-server HTTP request count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub volume_query: Option<String>,
    /// Quantile of the `latencyQuantile` preset (default 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// The value passes when it is at least `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The value passes when it is at most `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Range of the rate/quantile computations (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<DurationString>,
    /// What a failure does (default `blocking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Requests needed in the window before the value is judged; fewer is no-data (default 50
    /// for presets, 0 for custom queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_requests: Option<i64>,
    /// What to do when the query returns no data (default `hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<HoldPolicy>,
    /// What to do when Prometheus is unreachable or the query errors (default `hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_provider_error: Option<HoldPolicy>,
    /// How long to hold before pausing for a human (default: `analysis.maxHold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hold: Option<DurationString>,
    /// Consecutive failures tolerated before the tier's action (default 2 for blocking, 0 for
    /// rollback and pause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub consecutive_failures_allowed: Option<i32>,
    /// Judge the canary relative to stable in the same window instead of its raw value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
}

/// Built-in queries over the feed-server metrics contract (PRODUCT.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Preset {
    /// Share of HTTP responses with a 5xx status.
    ErrorRate,
    /// Share of HTTP responses without a 5xx status.
    Availability,
    /// A quantile (`quantile`, default 0.95) of the HTTP request duration, in seconds.
    LatencyQuantile,
    /// Share of cache lookups that hit (all tiers).
    CacheHitRatio,
    /// `complete` events per `impression` event (per variant with in-app traffic).
    CompletionRate,
    /// `like`, `share` and `comment` events per `impression` event.
    EngagementRate,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 6] = [
        Preset::ErrorRate,
        Preset::Availability,
        Preset::LatencyQuantile,
        Preset::CacheHitRatio,
        Preset::CompletionRate,
        Preset::EngagementRate,
    ];

    /// Whether the preset counts engagement events (`feed_events_total`), which only the
    /// in-app traffic mode attributes to the profile that served the feed.
    pub fn counts_engagement_events(self) -> bool {
        matches!(self, Preset::CompletionRate | Preset::EngagementRate)
    }

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::ErrorRate => "errorRate",
            Preset::Availability => "availability",
            Preset::LatencyQuantile => "latencyQuantile",
            Preset::CacheHitRatio => "cacheHitRatio",
            Preset::CompletionRate => "completionRate",
            Preset::EngagementRate => "engagementRate",
        }
    }
}

/// What a failing check does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    /// Blocks promotion; past `consecutiveFailuresAllowed` failures in a row, rolls back.
    #[default]
    Blocking,
    /// Recorded and warned about; never blocks.
    Advisory,
    /// Rolls back at once (checked on the fast interval).
    Rollback,
    /// Pauses the rollout for a human.
    Pause,
}

impl Tier {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Blocking => "blocking",
            Tier::Advisory => "advisory",
            Tier::Rollback => "rollback",
            Tier::Pause => "pause",
        }
    }
}

/// What missing data or an unreachable Prometheus does. Neither ever promotes nor counts as a
/// failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HoldPolicy {
    /// Hold the current step; after `maxHold`, pause for a human.
    #[default]
    Hold,
    /// Pause for a human at once.
    Pause,
}

/// Canary relative to stable, measured by the same query in the same window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// `difference` (canary − stable) or `ratio` (canary ÷ stable); the check's min/max apply to it.
    pub mode: CompareMode,
}

/// How canary and stable values are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CompareMode {
    /// canary − stable.
    #[default]
    Difference,
    /// canary ÷ stable.
    Ratio,
}
