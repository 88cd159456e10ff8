//! Defaults and resolution: the spec as written → the plan the operator runs.
//!
//! Defaults are applied here, in code, rather than by the API server, so that a FeedRollout in
//! Git stays as short as its author wrote it and improved defaults reach existing objects.

use std::time::Duration;

use crate::ApiError;
use crate::analysis::{Check, CompareMode, HoldPolicy, Preset, PrometheusAccess, Tier};
use crate::duration::{DurationString, parse_duration};
use crate::sequential::{self, SequentialTest};
use crate::spec::{DeadlinePolicy, FeedRolloutSpec, InApp, Step, TrafficMode};

/// Blocking/advisory/pause checks run this often unless `analysis.interval` says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Roll-back-tier checks and pod health run this often unless `analysis.fastInterval` says so.
pub const DEFAULT_FAST_INTERVAL: Duration = Duration::from_secs(10);
/// How long no-data or an unreachable Prometheus is held before pausing for a human.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(600);
/// Default Prometheus address (the prometheus-operator's service in `monitoring`).
pub const DEFAULT_PROMETHEUS: &str = "http://prometheus-operated.monitoring.svc:9090";
/// Default timeout of one Prometheus query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default window of blocking, advisory and pause-tier checks.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Default window of roll-back-tier checks (short, so a breach is seen within a few fast intervals).
pub const DEFAULT_FAST_WINDOW: Duration = Duration::from_secs(60);
/// How long a step waits for ready canary pods before `onProgressDeadline` acts.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// Requests needed in the window before a preset is judged.
pub const DEFAULT_MIN_REQUESTS: i64 = 50;
/// Default quantile of the `latencyQuantile` preset.
pub const DEFAULT_QUANTILE: f64 = 0.95;
/// Default variant names of in-app rollouts.
pub const DEFAULT_STABLE_VARIANT: &str = "stable";
/// Default canary variant name of in-app rollouts.
pub const DEFAULT_CANARY_VARIANT: &str = "canary";

/// The roadmap plan: 10% for 15 min, 25% for 30 min, 50% for 30 min, then 100%.
pub fn default_steps() -> Vec<Step> {
    vec![
        Step::set_weight(10),
        Step::pause(Some("15m")),
        Step::set_weight(25),
        Step::pause(Some("30m")),
        Step::set_weight(50),
        Step::pause(Some("30m")),
        Step::set_weight(100),
    ]
}

fn check(name: &str, preset: Preset, tier: Tier) -> Check {
    Check {
        name: name.to_owned(),
        preset: Some(preset),
        tier: Some(tier),
        ..Check::default()
    }
}

/// The roadmap policy table (PRODUCT.md §2) as checks. Crash-looping canary pods roll back too,
/// but that is pod health, not a Prometheus check.
pub fn default_checks() -> Vec<Check> {
    vec![
        Check {
            max: Some(0.005),
            ..check("error-rate", Preset::ErrorRate, Tier::Blocking)
        },
        Check {
            max: Some(0.5),
            ..check("latency-p95", Preset::LatencyQuantile, Tier::Blocking)
        },
        Check {
            max: Some(0.3),
            ..check(
                "latency-p95-target",
                Preset::LatencyQuantile,
                Tier::Advisory,
            )
        },
        Check {
            min: Some(0.9),
            ..check("cache-hit-ratio", Preset::CacheHitRatio, Tier::Advisory)
        },
        Check {
            max: Some(0.05),
            ..check("error-rate-critical", Preset::ErrorRate, Tier::Rollback)
        },
        Check {
            min: Some(0.99),
            ..check("availability", Preset::Availability, Tier::Rollback)
        },
        Check {
            max: Some(1.0),
            ..check("latency-p95-critical", Preset::LatencyQuantile, Tier::Pause)
        },
    ]
}

/// What a check measures.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckSource {
    /// A built-in preset (with its quantile for `latencyQuantile`).
    Preset {
        /// The preset.
        preset: Preset,
        /// Quantile, for `latencyQuantile`.
        quantile: f64,
    },
    /// A PromQL template.
    Query(String),
    /// Two PromQL templates counting events and trials, for a sequential comparison.
    Counts {
        /// Events (e.g. failures).
        numerator: String,
        /// Trials.
        denominator: String,
    },
}

/// A check with every default filled in and every duration parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedCheck {
    /// Name.
    pub name: String,
    /// What it measures.
    pub source: CheckSource,
    /// PromQL template of the request volume (presets bring their own).
    pub volume_query: Option<String>,
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// Range of the rate computations.
    pub window: Duration,
    /// Tier.
    pub tier: Tier,
    /// Requests needed before judging.
    pub min_requests: i64,
    /// Policy for no data.
    pub on_no_data: HoldPolicy,
    /// Policy for provider errors.
    pub on_provider_error: HoldPolicy,
    /// Hold limit before pausing for a human.
    pub max_hold: Duration,
    /// Failures in a row tolerated before the tier acts.
    pub consecutive_failures_allowed: i32,
    /// Comparison with stable by a threshold (`difference` or `ratio`).
    pub compare: Option<CompareMode>,
    /// Comparison with stable by an always-valid test on the counts of the step so far.
    pub sequential: Option<SequentialTest>,
}

impl ResolvedCheck {
    /// Whether this check runs on the fast interval (roll-back tier).
    pub fn is_fast(&self) -> bool {
        self.tier == Tier::Rollback
    }

    /// The threshold in words: `<= 0.005`, `>= 0.9`, `in [0.1, 0.2]`, or for a sequential
    /// check `not worse by 0.01 (higher-is-worse, alpha 0.05)`.
    pub fn threshold_text(&self) -> String {
        if let Some(t) = &self.sequential {
            return format!(
                "not worse by {} ({}, alpha {})",
                t.min_effect,
                t.direction.as_str(),
                t.alpha
            );
        }
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("in [{min}, {max}]"),
            (Some(min), None) => format!(">= {min}"),
            (None, Some(max)) => format!("<= {max}"),
            (None, None) => "none".to_owned(),
        }
    }
}

/// The analysis with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedAnalysis {
    /// Interval of the blocking, advisory and pause-tier checks.
    pub interval: Duration,
    /// Interval of the roll-back-tier checks and pod health.
    pub fast_interval: Duration,
    /// Prometheus base URL.
    pub prometheus: String,
    /// Query timeout.
    pub timeout: Duration,
    /// Credentials, extra headers and TLS of the Prometheus (references, resolved by the
    /// operator in the FeedRollout's namespace).
    pub access: PrometheusAccess,
    /// The checks, default policy first (unless replaced by name), then the spec's own.
    pub checks: Vec<ResolvedCheck>,
}

/// The strategy with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedStrategy {
    /// The steps.
    pub steps: Vec<ResolvedStep>,
    /// Traffic mode.
    pub traffic: TrafficMode,
    /// How long a step may wait for ready canary pods.
    pub progress_deadline: Duration,
    /// What a missed progress deadline does.
    pub on_progress_deadline: DeadlinePolicy,
    /// The replay gate (in-app rollouts only).
    pub replay_gate: Option<crate::replay_gate::ResolvedReplayGate>,
}

/// Strategy and analysis of one spec, resolved together and checked against each other.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedPlan {
    /// Steps, traffic mode and progress deadline.
    pub strategy: ResolvedStrategy,
    /// Checks and their schedule.
    pub analysis: ResolvedAnalysis,
}

/// A step, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResolvedStep {
    /// Send this percent of traffic to the canary.
    SetWeight(i32),
    /// Wait this long, or for a human when `None`.
    Pause(Option<Duration>),
    /// Wait until every non-advisory check has a confident pass, at most this long (then the
    /// undecided checks follow their hold policy).
    UntilConfident(Duration),
}

pub(crate) fn duration_at(
    value: Option<&DurationString>,
    default: Duration,
    field: &str,
) -> Result<Duration, ApiError> {
    match value {
        None => Ok(default),
        Some(d) => parse_duration(&d.0).map_err(|_| {
            ApiError::invalid(
                field,
                format!("{:?}: {}", d.0, crate::duration::DURATION_MESSAGE),
            )
        }),
    }
}

impl FeedRolloutSpec {
    /// Steps and traffic mode with defaults, checked (weights 0–100 and never decreasing).
    pub fn resolved_strategy(&self) -> Result<ResolvedStrategy, ApiError> {
        let strategy = self.strategy.clone().unwrap_or_default();
        let steps = strategy.steps.unwrap_or_else(default_steps);
        if steps.is_empty() {
            return Err(ApiError::invalid(
                "spec.strategy.steps",
                "needs at least one step (or omit it for the default plan)",
            ));
        }
        let mut resolved = Vec::with_capacity(steps.len());
        let mut last_weight = 0;
        for (i, step) in steps.iter().enumerate() {
            let at = format!("spec.strategy.steps[{i}]");
            match (step.set_weight, &step.pause) {
                (Some(w), None) => {
                    if !(0..=100).contains(&w) {
                        return Err(ApiError::invalid(
                            format!("{at}.setWeight"),
                            format!("must be between 0 and 100, got {w}"),
                        ));
                    }
                    if w < last_weight {
                        return Err(ApiError::invalid(
                            format!("{at}.setWeight"),
                            "setWeight values must never decrease from one step to the next",
                        ));
                    }
                    last_weight = w;
                    resolved.push(ResolvedStep::SetWeight(w));
                }
                (None, Some(p)) if p.until_confident == Some(true) => {
                    let (Some(max), None) = (&p.max, &p.duration) else {
                        return Err(ApiError::invalid(
                            format!("{at}.pause"),
                            "pause.untilConfident needs max (the longest the step waits for evidence) and no duration",
                        ));
                    };
                    let max = duration_at(Some(max), Duration::ZERO, &format!("{at}.pause.max"))?;
                    if max.is_zero() {
                        return Err(ApiError::invalid(
                            format!("{at}.pause.max"),
                            "must be longer than 0s",
                        ));
                    }
                    resolved.push(ResolvedStep::UntilConfident(max));
                }
                (None, Some(p)) => {
                    if p.max.is_some() {
                        return Err(ApiError::invalid(
                            format!("{at}.pause.max"),
                            "pause.max applies only with untilConfident: true",
                        ));
                    }
                    let d = match &p.duration {
                        None => None,
                        Some(d) => Some(duration_at(
                            Some(d),
                            Duration::ZERO,
                            &format!("{at}.pause.duration"),
                        )?),
                    };
                    resolved.push(ResolvedStep::Pause(d));
                }
                _ => {
                    return Err(ApiError::invalid(
                        at,
                        "each step is exactly one of setWeight or pause",
                    ));
                }
            }
        }
        let traffic = strategy.traffic.unwrap_or_default();
        let modes = [
            traffic.replica_ratio.is_some(),
            traffic.gateway_api.is_some(),
            traffic.in_app.is_some(),
        ];
        if modes.iter().filter(|m| **m).count() > 1 {
            return Err(ApiError::invalid(
                "spec.strategy.traffic",
                "choose one traffic mode: replicaRatio, gatewayAPI or inApp",
            ));
        }
        let traffic = if let Some(g) = traffic.gateway_api {
            TrafficMode::GatewayApi(g)
        } else if let Some(a) = traffic.in_app {
            TrafficMode::InApp(a)
        } else {
            TrafficMode::ReplicaRatio
        };
        let progress_deadline = duration_at(
            self.progress_deadline.as_ref(),
            DEFAULT_PROGRESS_DEADLINE,
            "spec.progressDeadline",
        )?;
        if progress_deadline.is_zero() {
            return Err(ApiError::invalid(
                "spec.progressDeadline",
                "must be longer than 0s (pods need time to start)",
            ));
        }
        let replay_gate = match strategy.replay_gate {
            Some(gate) => Some(crate::replay_gate::resolve(&gate, &traffic)?),
            None => None,
        };
        Ok(ResolvedStrategy {
            steps: resolved,
            traffic,
            progress_deadline,
            on_progress_deadline: self.on_progress_deadline.unwrap_or_default(),
            replay_gate,
        })
    }

    /// Strategy and analysis resolved, and checked against each other: presets that count
    /// engagement events (`completionRate`, `engagementRate`) need in-app traffic, because with
    /// pod traffic an event is counted by the pod that receives it, not by the profile that
    /// served the feed.
    pub fn resolved_plan(&self) -> Result<ResolvedPlan, ApiError> {
        let mut strategy = self.resolved_strategy()?;
        let analysis = self.resolved_analysis()?;
        if let Some(gate) = &mut strategy.replay_gate {
            // An undecided gate follows the rollout's hold policy: `analysis.maxHold`.
            gate.max_hold = duration_at(
                self.analysis.as_ref().and_then(|a| a.max_hold.as_ref()),
                DEFAULT_MAX_HOLD,
                "spec.analysis.maxHold",
            )?;
        }
        if !matches!(strategy.traffic, TrafficMode::InApp(_)) {
            let own = self.analysis.as_ref().map_or(&[][..], |a| &a.checks[..]);
            for (i, c) in own.iter().enumerate() {
                if let Some(preset) = c.preset.filter(|p| p.counts_engagement_events()) {
                    return Err(ApiError::invalid(
                        format!("spec.analysis.checks[{i}].preset"),
                        format!(
                            "check {}: preset {} needs strategy.traffic.inApp: with pod traffic an event is counted by the pod that receives it, not by the profile that served the feed",
                            c.name,
                            preset.as_str()
                        ),
                    ));
                }
            }
        }
        if let Some(i) = strategy
            .steps
            .iter()
            .position(|s| matches!(s, ResolvedStep::UntilConfident(_)))
            && !analysis
                .checks
                .iter()
                .any(|c| c.sequential.is_some() && c.tier != Tier::Advisory)
        {
            return Err(ApiError::invalid(
                format!("spec.strategy.steps[{i}].pause.untilConfident"),
                "needs at least one non-advisory check with compare.mode sequential (threshold checks are never confident)",
            ));
        }
        Ok(ResolvedPlan { strategy, analysis })
    }

    /// The analysis with defaults, checked (thresholds consistent, durations parse).
    pub fn resolved_analysis(&self) -> Result<ResolvedAnalysis, ApiError> {
        let analysis = self.analysis.clone().unwrap_or_default();
        let interval = duration_at(
            analysis.interval.as_ref(),
            DEFAULT_INTERVAL,
            "spec.analysis.interval",
        )?;
        let fast_interval = duration_at(
            analysis.fast_interval.as_ref(),
            DEFAULT_FAST_INTERVAL,
            "spec.analysis.fastInterval",
        )?;
        let max_hold = duration_at(
            analysis.max_hold.as_ref(),
            DEFAULT_MAX_HOLD,
            "spec.analysis.maxHold",
        )?;
        let prometheus_source = analysis.prometheus.clone().unwrap_or_default();
        let prometheus = prometheus_source
            .address
            .clone()
            .unwrap_or_else(|| DEFAULT_PROMETHEUS.to_owned());
        let timeout = duration_at(
            prometheus_source.timeout.as_ref(),
            DEFAULT_QUERY_TIMEOUT,
            "spec.analysis.prometheus.timeout",
        )?;
        let access = prometheus_source.access();
        check_access(&access, &prometheus)?;

        let mut checks: Vec<(String, Check)> = Vec::new();
        if analysis.default_checks.unwrap_or(true) {
            for c in default_checks() {
                if !analysis.checks.iter().any(|own| own.name == c.name) {
                    checks.push(("default".to_owned(), c));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in analysis.checks.iter().enumerate() {
            if !seen.insert(c.name.as_str()) {
                return Err(ApiError::invalid(
                    format!("spec.analysis.checks[{i}].name"),
                    format!("duplicate check name {:?}", c.name),
                ));
            }
            checks.push((format!("spec.analysis.checks[{i}]"), c.clone()));
        }
        let checks = checks
            .into_iter()
            .map(|(at, c)| resolve_check(&at, c, max_hold))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResolvedAnalysis {
            interval,
            fast_interval,
            prometheus,
            timeout,
            access,
            checks,
        })
    }

    /// Traffic mode (replica ratio when unset).
    pub fn traffic_mode(&self) -> TrafficMode {
        self.resolved_strategy()
            .map_or(TrafficMode::ReplicaRatio, |s| s.traffic)
    }
}

/// The CEL rules of `spec.analysis.prometheus` again, in code (the operator never acts on a
/// spec an older CRD let through), plus header names unique regardless of case.
fn check_access(access: &PrometheusAccess, address: &str) -> Result<(), ApiError> {
    let at = "spec.analysis.prometheus";
    if access.authorization.is_some() && access.basic_auth.is_some() {
        return Err(ApiError::invalid(
            at,
            "choose one of authorization (bearer token) or basicAuth",
        ));
    }
    if let Some(a) = &access.authorization
        && a.type_
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
    {
        return Err(ApiError::invalid(
            format!("{at}.authorization.type"),
            "authorization.type cannot be Basic: use basicAuth",
        ));
    }
    let auth = access.authorization.is_some() || access.basic_auth.is_some();
    for (i, h) in access.headers.iter().enumerate() {
        let field = format!("{at}.headers[{i}]");
        if h.value.is_some() == h.secret.is_some() {
            return Err(ApiError::invalid(
                field,
                "a header needs exactly one of value or secret",
            ));
        }
        if auth && h.name.eq_ignore_ascii_case("authorization") {
            return Err(ApiError::invalid(
                format!("{field}.name"),
                "a header cannot set Authorization when authorization or basicAuth does",
            ));
        }
        if access.headers[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&h.name))
        {
            return Err(ApiError::invalid(
                format!("{field}.name"),
                format!("header {:?} is set twice", h.name),
            ));
        }
    }
    if let Some(tls) = &access.tls_config {
        if !address.starts_with("https://") {
            return Err(ApiError::invalid(
                format!("{at}.tlsConfig"),
                "tlsConfig needs an https:// address",
            ));
        }
        if let Some(ca) = &tls.ca {
            if ca.secret.is_some() == ca.config_map.is_some() {
                return Err(ApiError::invalid(
                    format!("{at}.tlsConfig.ca"),
                    "ca needs exactly one of secret or configMap",
                ));
            }
            if tls.insecure_skip_verify == Some(true) {
                return Err(ApiError::invalid(
                    format!("{at}.tlsConfig"),
                    "set either a ca or insecureSkipVerify: true, not both (a CA is not used when verification is skipped)",
                ));
            }
        }
    }
    Ok(())
}

fn resolve_check(at: &str, c: Check, max_hold: Duration) -> Result<ResolvedCheck, ApiError> {
    let source = match (c.preset, c.query.clone(), c.counts.clone()) {
        (Some(preset), None, None) => CheckSource::Preset {
            preset,
            quantile: c.quantile.unwrap_or(DEFAULT_QUANTILE),
        },
        (None, Some(q), None) => CheckSource::Query(q),
        (None, None, Some(counts)) => CheckSource::Counts {
            numerator: counts.numerator,
            denominator: counts.denominator,
        },
        _ => {
            return Err(ApiError::invalid(
                at,
                "a check needs exactly one of preset, query or counts",
            ));
        }
    };
    let tier = c.tier.unwrap_or_default();
    let sequential = sequential::resolve(at, &c, &source, tier)?;
    if let CheckSource::Preset { quantile, .. } = source
        && !(quantile > 0.0 && quantile < 1.0)
    {
        return Err(ApiError::invalid(
            format!("{at}.quantile"),
            "quantile must be between 0 and 1 (exclusive), e.g. 0.95",
        ));
    }
    for (field, v) in [("min", c.min), ("max", c.max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(ApiError::invalid(
                format!("{at}.{field}"),
                "must be a finite number",
            ));
        }
    }
    match (c.min, c.max) {
        (None, None) if sequential.is_none() => {
            return Err(ApiError::invalid(
                at,
                "a check needs a threshold: min, max or both",
            ));
        }
        (Some(min), Some(max)) if min > max => {
            return Err(ApiError::invalid(
                at,
                "min must be less than or equal to max",
            ));
        }
        _ => {}
    }
    let default_window = if tier == Tier::Rollback {
        DEFAULT_FAST_WINDOW
    } else {
        DEFAULT_WINDOW
    };
    let window = duration_at(c.window.as_ref(), default_window, &format!("{at}.window"))?;
    if window < Duration::from_secs(1) {
        return Err(ApiError::invalid(
            format!("{at}.window"),
            "must be at least 1s",
        ));
    }
    let default_min_requests = if matches!(source, CheckSource::Preset { .. }) {
        DEFAULT_MIN_REQUESTS
    } else {
        0
    };
    let default_allowed = if tier == Tier::Blocking { 2 } else { 0 };
    Ok(ResolvedCheck {
        name: c.name,
        source,
        volume_query: c.volume_query,
        min: c.min,
        max: c.max,
        window,
        tier,
        min_requests: c.min_requests.unwrap_or(default_min_requests).max(0),
        on_no_data: c.on_no_data.unwrap_or_default(),
        on_provider_error: c.on_provider_error.unwrap_or_default(),
        max_hold: duration_at(c.max_hold.as_ref(), max_hold, &format!("{at}.maxHold"))?,
        consecutive_failures_allowed: c
            .consecutive_failures_allowed
            .unwrap_or(default_allowed)
            .max(0),
        compare: c
            .compare
            .map(|cmp| cmp.mode)
            .filter(|m| *m != CompareMode::Sequential),
        sequential,
    })
}

impl InApp {
    /// Stable variant name (default `stable`).
    pub fn stable_variant(&self) -> &str {
        self.stable_variant
            .as_deref()
            .unwrap_or(DEFAULT_STABLE_VARIANT)
    }

    /// Canary variant name (default `canary`).
    pub fn canary_variant(&self) -> &str {
        self.canary_variant
            .as_deref()
            .unwrap_or(DEFAULT_CANARY_VARIANT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> FeedRolloutSpec {
        serde_json::from_value(serde_json::json!({"template": {"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}}})).unwrap()
    }

    #[test]
    fn minimal_spec_gets_the_roadmap_plan_and_policy() {
        let spec = minimal();
        assert_eq!(spec.replicas, 1);
        let s = spec.resolved_strategy().unwrap();
        assert_eq!(s.traffic, TrafficMode::ReplicaRatio);
        assert_eq!(
            s.steps,
            vec![
                ResolvedStep::SetWeight(10),
                ResolvedStep::Pause(Some(Duration::from_secs(900))),
                ResolvedStep::SetWeight(25),
                ResolvedStep::Pause(Some(Duration::from_secs(1800))),
                ResolvedStep::SetWeight(50),
                ResolvedStep::Pause(Some(Duration::from_secs(1800))),
                ResolvedStep::SetWeight(100),
            ]
        );
        let a = spec.resolved_analysis().unwrap();
        assert_eq!(
            (a.interval, a.fast_interval),
            (DEFAULT_INTERVAL, DEFAULT_FAST_INTERVAL)
        );
        let table: Vec<_> = a
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.tier, c.threshold_text()))
            .collect();
        assert_eq!(
            table,
            vec![
                ("error-rate", Tier::Blocking, "<= 0.005".to_owned()),
                ("latency-p95", Tier::Blocking, "<= 0.5".to_owned()),
                ("latency-p95-target", Tier::Advisory, "<= 0.3".to_owned()),
                ("cache-hit-ratio", Tier::Advisory, ">= 0.9".to_owned()),
                ("error-rate-critical", Tier::Rollback, "<= 0.05".to_owned()),
                ("availability", Tier::Rollback, ">= 0.99".to_owned()),
                ("latency-p95-critical", Tier::Pause, "<= 1".to_owned()),
            ]
        );
        assert!(
            a.checks
                .iter()
                .all(|c| c.on_no_data == HoldPolicy::Hold && c.max_hold == DEFAULT_MAX_HOLD)
        );
        assert_eq!(a.checks[0].consecutive_failures_allowed, 2);
        assert_eq!(a.checks[4].consecutive_failures_allowed, 0);
        assert_eq!(a.checks[4].window, DEFAULT_FAST_WINDOW);
    }

    #[test]
    fn own_check_replaces_default_by_name_and_adds_others() {
        let mut spec = minimal();
        spec.analysis = Some(serde_json::from_value(serde_json::json!({
            "checks": [
                {"name": "error-rate", "preset": "errorRate", "max": 0.01},
                {"name": "p99", "query": "histogram_quantile(0.99, x{ {{selector}} })", "max": 2}
            ]
        })).unwrap());
        let a = spec.resolved_analysis().unwrap();
        assert_eq!(a.checks.len(), 8);
        let own = a.checks.iter().find(|c| c.name == "error-rate").unwrap();
        assert_eq!(own.max, Some(0.01));
        assert_eq!(a.checks.last().unwrap().min_requests, 0);
    }

    #[test]
    fn inconsistent_specs_name_the_field() {
        let mut spec = minimal();
        spec.strategy = Some(
            serde_json::from_value(
                serde_json::json!({"steps": [{"setWeight": 50}, {"setWeight": 20}]}),
            )
            .unwrap(),
        );
        assert!(
            matches!(spec.resolved_strategy(), Err(ApiError::Invalid { field, .. }) if field == "spec.strategy.steps[1].setWeight")
        );
        spec.strategy = Some(
            serde_json::from_value(serde_json::json!({"steps": [{"pause": {"duration": "soon"}}]}))
                .unwrap(),
        );
        assert!(
            matches!(spec.resolved_strategy(), Err(ApiError::Invalid { field, .. }) if field == "spec.strategy.steps[0].pause.duration")
        );
        spec.analysis = Some(serde_json::from_value(serde_json::json!({"checks": [{"name": "x", "preset": "errorRate", "min": 2, "max": 1}]})).unwrap());
        assert!(
            matches!(spec.resolved_analysis(), Err(ApiError::Invalid { field, .. }) if field == "spec.analysis.checks[0]")
        );
    }

    #[test]
    fn prometheus_access_is_resolved_and_checked_like_the_cel_rules() {
        let mut spec = minimal();
        let with = |spec: &mut FeedRolloutSpec, p: serde_json::Value| {
            spec.analysis =
                Some(serde_json::from_value(serde_json::json!({"prometheus": p})).unwrap());
            spec.resolved_analysis()
        };
        let secret = serde_json::json!({"name": "prom", "key": "k"});
        let basic = serde_json::json!({"username": secret, "password": secret});
        let ok = with(
            &mut spec,
            serde_json::json!({"address": "https://p", "basicAuth": basic,
                "headers": [{"name": "X-Scope-OrgID", "value": "t"}],
                "tlsConfig": {"ca": {"configMap": {"name": "ca", "key": "ca.crt"}}}}),
        )
        .unwrap();
        assert_eq!(ok.prometheus, "https://p");
        let refs: Vec<(crate::ObjectKind, String, String)> = ok
            .access
            .references()
            .into_iter()
            .map(|r| (r.kind, r.name, r.field))
            .collect();
        assert_eq!(
            refs,
            vec![
                (
                    crate::ObjectKind::Secret,
                    "prom".to_owned(),
                    "spec.analysis.prometheus.basicAuth.username".to_owned()
                ),
                (
                    crate::ObjectKind::ConfigMap,
                    "ca".to_owned(),
                    "spec.analysis.prometheus.tlsConfig.ca.configMap".to_owned()
                ),
            ]
        );
        assert!(minimal().resolved_analysis().unwrap().access.is_empty());
        let cases = [
            (
                serde_json::json!({"authorization": {"credentials": secret}, "basicAuth": basic}),
                "spec.analysis.prometheus",
                "choose one of",
            ),
            (
                serde_json::json!({"authorization": {"type": "BASIC", "credentials": secret}}),
                "spec.analysis.prometheus.authorization.type",
                "use basicAuth",
            ),
            (
                serde_json::json!({"basicAuth": basic, "headers": [{"name": "AUTHORIZATION", "value": "x"}]}),
                "spec.analysis.prometheus.headers[0].name",
                "cannot set Authorization",
            ),
            (
                serde_json::json!({"headers": [{"name": "x-a", "value": "1"}, {"name": "X-A", "value": "2"}]}),
                "spec.analysis.prometheus.headers[1].name",
                "set twice",
            ),
            (
                serde_json::json!({"headers": [{"name": "x-a"}]}),
                "spec.analysis.prometheus.headers[0]",
                "exactly one of value or secret",
            ),
            (
                serde_json::json!({"tlsConfig": {"insecureSkipVerify": true}}),
                "spec.analysis.prometheus.tlsConfig",
                "https://",
            ),
            (
                serde_json::json!({"address": "https://p", "tlsConfig": {"ca": {}}}),
                "spec.analysis.prometheus.tlsConfig.ca",
                "exactly one of secret or configMap",
            ),
            (
                serde_json::json!({"address": "https://p", "tlsConfig": {"ca": {"secret": secret}, "insecureSkipVerify": true}}),
                "spec.analysis.prometheus.tlsConfig",
                "not both",
            ),
        ];
        for (p, want_field, want) in cases {
            match with(&mut spec, p.clone()) {
                Err(ApiError::Invalid { field, message }) => {
                    assert_eq!(field, want_field, "{p}");
                    assert!(message.contains(want), "{p}: {message}");
                }
                other => panic!("{p}: {other:?}"),
            }
        }
    }
}
