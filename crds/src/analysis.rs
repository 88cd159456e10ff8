//! Analysis: the Prometheus checks that judge a canary and the policy applied to each verdict.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{Display, IntoStaticStr};

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
    /// Where Prometheus is, and how to authenticate to it and verify it.
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

/// The Prometheus HTTP API the checks query, and how to authenticate to it and verify it
/// (the shape of prometheus-operator's `SafeAuthorization`, `BasicAuth` and `SafeTLSConfig`,
/// Secrets and ConfigMaps in the FeedRollout's namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.authorization) && has(self.basicAuth))", "message": "choose one of authorization (bearer token) or basicAuth"},
    {"rule": "!(has(self.authorization) || has(self.basicAuth)) || !has(self.headers) || self.headers.all(h, !h.name.matches('^[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]$'))", "message": "a header cannot set Authorization when authorization or basicAuth does"},
    {"rule": "!has(self.tlsConfig) || (has(self.address) && self.address.startsWith('https://'))", "message": "tlsConfig needs an https:// address"}
]))]
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
    /// `Authorization: <type> <credentials>` on every request, the credentials read from a
    /// Secret key (a bearer token by default). Exclusive with `basicAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// HTTP basic auth, username and password each read from a Secret key. Exclusive with
    /// `authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Extra headers on every request (e.g. `X-Scope-OrgID` for a multi-tenant Mimir/Cortex),
    /// each a literal value or read from a Secret key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(h, self.exists_one(o, o.name.lowerAscii() == h.name.lowerAscii()))", "message": "header names must be unique (case does not matter in HTTP)"}
    ]))]
    pub headers: Vec<HttpHeader>,
    /// TLS of an `https://` address: the CA bundle that signs Prometheus' certificate, or
    /// `insecureSkipVerify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

impl PrometheusSource {
    /// The credentials and TLS settings (references to Secrets and ConfigMaps, not values).
    pub fn access(&self) -> PrometheusAccess {
        PrometheusAccess {
            authorization: self.authorization.clone(),
            basic_auth: self.basic_auth.clone(),
            headers: self.headers.clone(),
            tls_config: self.tls_config.clone(),
        }
    }
}

/// How the operator authenticates to Prometheus and verifies it: the part of
/// [`PrometheusSource`] beside address and timeout. Secret and ConfigMap references are
/// resolved in the FeedRollout's namespace by the operator when it builds the client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PrometheusAccess {
    /// Bearer (or other scheme) credentials.
    pub authorization: Option<Authorization>,
    /// Basic auth.
    pub basic_auth: Option<BasicAuth>,
    /// Extra headers.
    pub headers: Vec<HttpHeader>,
    /// CA bundle and verification.
    pub tls_config: Option<TlsConfig>,
}

impl PrometheusAccess {
    /// Whether every setting is the default (plain requests, system roots).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The Secrets and ConfigMaps to read, each with the field that names it (deduplicated by
    /// kind and name, in field order).
    pub fn references(&self) -> Vec<ObjectKeyRef> {
        let mut out: Vec<ObjectKeyRef> = Vec::new();
        let at = "spec.analysis.prometheus";
        let mut add = |r: ObjectKeyRef| {
            if !out.iter().any(|o| o.kind == r.kind && o.name == r.name) {
                out.push(r);
            }
        };
        if let Some(a) = &self.authorization {
            add(a.credentials.at(
                ObjectKind::Secret,
                format!("{at}.authorization.credentials"),
            ));
        }
        if let Some(b) = &self.basic_auth {
            add(b
                .username
                .at(ObjectKind::Secret, format!("{at}.basicAuth.username")));
            add(b
                .password
                .at(ObjectKind::Secret, format!("{at}.basicAuth.password")));
        }
        for (i, h) in self.headers.iter().enumerate() {
            if let Some(s) = &h.secret {
                add(s.at(ObjectKind::Secret, format!("{at}.headers[{i}].secret")));
            }
        }
        if let Some(ca) = self.ca_reference() {
            add(ca);
        }
        out
    }

    /// The Secret or ConfigMap key of the CA bundle, if one is set (the Secret when, against
    /// the CEL rules, both are).
    pub fn ca_reference(&self) -> Option<ObjectKeyRef> {
        let at = "spec.analysis.prometheus.tlsConfig.ca";
        let ca = self.tls_config.as_ref()?.ca.as_ref()?;
        match (&ca.secret, &ca.config_map) {
            (Some(s), _) => Some(s.at(ObjectKind::Secret, format!("{at}.secret"))),
            (None, Some(c)) => Some(c.at(ObjectKind::ConfigMap, format!("{at}.configMap"))),
            (None, None) => None,
        }
    }
}

/// Kinds of object a [`PrometheusAccess`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Display, IntoStaticStr)]
pub enum ObjectKind {
    /// A core/v1 Secret (`data`, base64).
    Secret,
    /// A core/v1 ConfigMap (`data`, text).
    ConfigMap,
}

impl ObjectKind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A key of a Secret or ConfigMap and the field that refers to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKeyRef {
    /// Secret or ConfigMap.
    pub kind: ObjectKind,
    /// Object name (in the FeedRollout's namespace).
    pub name: String,
    /// Key in its `data`.
    pub key: String,
    /// Path of the referring field, e.g. `spec.analysis.prometheus.basicAuth.password`.
    pub field: String,
}

/// A key of a Secret or ConfigMap in the FeedRollout's namespace (prometheus-operator's
/// `SecretKeySelector` without `optional`: a missing object or key is always an error).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the object.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key in the object's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A key of a Secret.
pub type SecretKeyRef = KeyRef;
/// A key of a ConfigMap.
pub type ConfigMapKeyRef = KeyRef;

impl KeyRef {
    /// This key of the `kind` object, named by `field`.
    pub fn at(&self, kind: ObjectKind, field: String) -> ObjectKeyRef {
        ObjectKeyRef {
            kind,
            name: self.name.clone(),
            key: self.key.clone(),
            field,
        }
    }
}

/// `Authorization` header credentials (prometheus-operator's `SafeAuthorization`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.type) || !self.type.matches('^[Bb][Aa][Ss][Ii][Cc]$')", "message": "authorization.type cannot be Basic: use basicAuth"}
]))]
pub struct Authorization {
    /// The scheme (default `Bearer`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][-A-Za-z0-9._~+]*$")
    )]
    pub type_: Option<String>,
    /// The Secret key holding the credentials (e.g. the token).
    pub credentials: SecretKeyRef,
}

/// HTTP basic auth (prometheus-operator's `BasicAuth`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret key holding the username.
    pub username: SecretKeyRef,
    /// The Secret key holding the password.
    pub password: SecretKeyRef,
}

/// One extra request header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.secret)", "message": "a header needs exactly one of value or secret"}
]))]
pub struct HttpHeader {
    /// Header name (an HTTP token, e.g. `X-Scope-OrgID`).
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[-A-Za-z0-9!#$%&'*+.^_`|~]+$")
    )]
    pub name: String,
    /// Literal value (visible in the FeedRollout: put secrets in `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), regex(pattern = r"^[^\r\n]*$"))]
    pub value: Option<String>,
    /// The Secret key holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeyRef>,
}

/// TLS settings of an `https://` Prometheus (prometheus-operator's `SafeTLSConfig`, without
/// client certificates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.ca) && has(self.insecureSkipVerify) && self.insecureSkipVerify)", "message": "set either a ca or insecureSkipVerify: true, not both (a CA is not used when verification is skipped)"}
]))]
pub struct TlsConfig {
    /// PEM bundle of the CAs that sign Prometheus' certificate; it replaces the system roots
    /// (as Prometheus' own `ca_file` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaBundle>,
    /// Accept any certificate (default false). For tests only: anyone on the path can then
    /// read the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Where a CA bundle is: a Secret key or a ConfigMap key (exactly one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secret) != has(self.configMap)", "message": "ca needs exactly one of secret or configMap"}
]))]
pub struct CaBundle {
    /// The Secret key holding the PEM bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeyRef>,
    /// The ConfigMap key holding the PEM bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKeyRef>,
}

/// One check: a preset over the metrics contract or a PromQL template, a threshold and a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.preset) ? 1 : 0) + (has(self.query) ? 1 : 0) + (has(self.counts) ? 1 : 0) == 1", "message": "a check needs exactly one of preset, query or counts"},
    {"rule": "has(self.min) || has(self.max) || (has(self.compare) && self.compare.mode == 'sequential')", "message": "a check needs a threshold: min, max or both (or compare.mode sequential)"},
    {"rule": "!(has(self.compare) && self.compare.mode == 'sequential') || (!has(self.min) && !has(self.max))", "message": "a sequential check is judged by compare.minEffect: remove min and max"},
    {"rule": "!(has(self.compare) && self.compare.mode == 'sequential') || has(self.counts) || (has(self.preset) && self.preset in ['errorRate', 'availability', 'completionRate', 'engagementRate', 'longTailShare'])", "message": "compare.mode sequential needs counts of events per trial: presets errorRate, availability, completionRate, engagementRate, longTailShare, or a check with counts (numerator and denominator)"},
    {"rule": "!has(self.counts) || (has(self.compare) && self.compare.mode == 'sequential' && has(self.compare.direction))", "message": "a check with counts needs compare: {mode: sequential, minEffect, direction}"},
    {"rule": "!(has(self.compare) && self.compare.mode == 'sequential') || !has(self.tier) || self.tier != 'rollback'", "message": "a sequential check cannot be on the rollback tier: it judges the counts of the whole step, not a short window"},
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
    /// A custom ratio of counters for a sequential check: PromQL templates of the events
    /// (numerator) and the trials (denominator) of one side, e.g.
    /// `sum(increase(signups_total{{{selector}}}[{{window}}]))`. `{{window}}` is the step's
    /// elapsed time. Needs `compare: {mode: sequential, minEffect, direction}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountQueries>,
}

/// The two counters of a custom sequential check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountQueries {
    /// PromQL template of the events counted (e.g. failed signups): one number per side.
    #[schemars(length(min = 1, max = 4096))]
    pub numerator: String,
    /// PromQL template of the trials they are counted among (e.g. signups attempted); each
    /// trial has at most one event.
    #[schemars(length(min = 1, max = 4096))]
    pub denominator: String,
}

/// Built-in queries over the feed-server metrics contract (PRODUCT.md §1).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
)]
#[serde(rename_all = "camelCase")]
#[strum(serialize_all = "camelCase")]
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
    /// Share of served items that are long-tail items (`feed_served_long_tail_items_total` per
    /// `feed_served_items_total`); lower is worse.
    LongTailShare,
    /// Distinct creators per served page (`feed_served_page_creators_total` per
    /// `feed_served_pages_total`); lower is worse.
    CreatorDiversity,
    /// Mean age of served items in seconds (`feed_served_item_age_seconds` `_sum` per
    /// `_count`); higher is worse.
    ServedFreshness,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 9] = [
        Preset::ErrorRate,
        Preset::Availability,
        Preset::LatencyQuantile,
        Preset::CacheHitRatio,
        Preset::CompletionRate,
        Preset::EngagementRate,
        Preset::LongTailShare,
        Preset::CreatorDiversity,
        Preset::ServedFreshness,
    ];

    /// The direction in which the preset gets worse when it is a share of trials that a
    /// sequential comparison can judge (events per trial, at most one event per trial), `None`
    /// for the others (a latency, a hit ratio over tiers, creators per page, an age).
    pub fn sequential_direction(self) -> Option<Direction> {
        match self {
            Preset::ErrorRate => Some(Direction::HigherIsWorse),
            Preset::Availability
            | Preset::CompletionRate
            | Preset::EngagementRate
            | Preset::LongTailShare => Some(Direction::LowerIsWorse),
            Preset::LatencyQuantile
            | Preset::CacheHitRatio
            | Preset::CreatorDiversity
            | Preset::ServedFreshness => None,
        }
    }

    /// Whether the preset counts engagement events (`feed_events_total`), which only the
    /// in-app traffic mode attributes to the profile that served the feed.
    pub fn counts_engagement_events(self) -> bool {
        matches!(self, Preset::CompletionRate | Preset::EngagementRate)
    }

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a failing check does.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
)]
#[serde(rename_all = "camelCase")]
#[strum(serialize_all = "camelCase")]
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
        self.into()
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

/// Canary relative to stable, measured by the same query in the same window, or (mode
/// `sequential`) by the counts of the whole step with an always-valid test.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode == 'sequential' || (!has(self.alpha) && !has(self.minEffect) && !has(self.direction))", "message": "alpha, minEffect and direction apply only to mode sequential"},
    {"rule": "self.mode != 'sequential' || has(self.minEffect)", "message": "mode sequential needs minEffect: the smallest worsening (canary - stable, in the metric's units) that matters"},
    {"rule": "!has(self.alpha) || (self.alpha > 0.0 && self.alpha <= 0.5)", "message": "alpha must be in (0, 0.5], e.g. 0.05"},
    {"rule": "!has(self.minEffect) || (self.minEffect > 0.0 && self.minEffect < 1.0)", "message": "minEffect must be in (0, 1): a difference of two shares, e.g. 0.01 for one point"}
]))]
pub struct Comparison {
    /// `difference` (canary − stable) or `ratio` (canary ÷ stable), to which the check's
    /// min/max apply; or `sequential`: canary and stable counts over the step so far tested
    /// with a confidence sequence (see `operator/README.md`).
    pub mode: CompareMode,
    /// Sequential only: the chance, over the whole step, of failing a canary that is no worse
    /// than stable, and of passing one worse by `minEffect` (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Sequential only: the smallest worsening that matters, as a difference of shares (0.01 is
    /// one percentage point). The canary passes once it is shown not worse by this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_effect: Option<f64>,
    /// Sequential only: which way is worse (presets know; checks with `counts` must say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
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
    /// Counts over the step so far, judged by an always-valid confidence sequence.
    Sequential,
}

/// Which way a share of trials gets worse.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Direction {
    /// A lower share is worse (availability, completion, engagement, long-tail share).
    LowerIsWorse,
    /// A higher share is worse (error rate).
    HigherIsWorse,
}

impl Direction {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
