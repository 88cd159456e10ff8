//! The replay gate of ranking-profile rollouts (`strategy.replayGate`, in-app only): before the
//! first step the operator asks a ready stable pod to rank the logged exposures of the last
//! `window` with the stable and the canary profile (`POST /v1/admin/replay`), and stops the
//! rollout before any user sees the canary when a figure drops by more than `maxDrop` *with
//! confidence* (the bootstrap interval's upper bound of canary − stable below `-maxDrop`). What
//! the gate found is kept in `status.replayGate` ([`ReplayGateStatus`]).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::SecretKeyRef;
use crate::duration::DurationString;

/// Default look-back of the replay.
pub const DEFAULT_WINDOW: &str = "24h";
/// Default largest tolerated drop of GAUC(finish) and of NDCG@10(watch).
pub const DEFAULT_MAX_DROP: f64 = 0.005;

/// `strategy.replayGate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayGate {
    /// How far back the replay looks (default `24h`): the exposures logged in the last
    /// `window` before the gate runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<DurationString>,
    /// Largest drop (canary − stable) tolerated per figure (default 0.005 each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drop: Option<MaxDrop>,
    /// A Secret key holding a feed-server API key with the `admin` scope, sent as a bearer
    /// token; omit it when the feed-server runs without API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<SecretKeyRef>,
}

/// `strategy.replayGate.maxDrop`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaxDrop {
    /// Largest drop of GAUC(finish) (default 0.005).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gauc_finish: Option<f64>,
    /// Largest drop of NDCG@10 of the watch ratio (default 0.005).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ndcg_watch: Option<f64>,
}

/// The gate, resolved: defaults applied, durations parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedReplayGate {
    /// Look-back of the replay.
    pub window: Duration,
    /// Largest tolerated drop of GAUC(finish).
    pub max_drop_gauc_finish: f64,
    /// Largest tolerated drop of NDCG@10(watch).
    pub max_drop_ndcg_watch: f64,
    /// The admin key's Secret, if any.
    pub admin_key: Option<SecretKeyRef>,
    /// How long an undecided gate holds before pausing for a human: `analysis.maxHold` (set by
    /// [`crate::FeedRolloutSpec::resolved_plan`]).
    pub max_hold: Duration,
}

/// A figure the gate judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReplayMetric {
    /// GAUC of finishing (per user-day AUC, averaged).
    GaucFinish,
    /// NDCG@10 with the watch ratio as gain.
    NdcgWatch,
    /// GAUC of liking (reported, not gated).
    LikeAuc,
}

impl ReplayMetric {
    /// The name as in `maxDrop` and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayMetric::GaucFinish => "gaucFinish",
            ReplayMetric::NdcgWatch => "ndcgWatch",
            ReplayMetric::LikeAuc => "likeAuc",
        }
    }
}

/// What the gate concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ReplayVerdict {
    /// Asked, no answer yet.
    Pending,
    /// No gated figure dropped beyond `maxDrop` with confidence: the first step may start.
    Passed,
    /// A gated figure dropped beyond `maxDrop` with confidence: rolled back (`ReplayRegression`).
    Regression,
    /// Too few exposures, or an interval that straddles `-maxDrop`: the hold policy applies.
    Inconclusive,
    /// The stable pod could not be asked (none ready, unreachable, refused): the hold policy
    /// applies.
    Error,
    /// A human went on without the gate (resume or promote while it held).
    Waived,
}

impl ReplayVerdict {
    /// The verdict as written in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayVerdict::Pending => "Pending",
            ReplayVerdict::Passed => "Passed",
            ReplayVerdict::Regression => "Regression",
            ReplayVerdict::Inconclusive => "Inconclusive",
            ReplayVerdict::Error => "Error",
            ReplayVerdict::Waived => "Waived",
        }
    }
}

/// One figure of a replay: both profiles' values and the difference with its interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayFigure {
    /// Which figure.
    pub metric: Option<ReplayMetric>,
    /// The stable profile's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<f64>,
    /// The canary profile's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<f64>,
    /// Canary − stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difference: Option<f64>,
    /// Lower bound of the difference's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// Upper bound of the difference's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// The tolerated drop (`None`: reported, not gated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drop: Option<f64>,
}

/// `status.replayGate`: the gate of the canary revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayGateStatus {
    /// The canary revision the gate judged.
    pub revision: String,
    /// What it concluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<ReplayVerdict>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the gate first asked (the hold policy's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// When it last asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// Exposures the replay ranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposures: Option<i64>,
    /// Confidence of the intervals (e.g. 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The figures: GAUC(finish), NDCG@10(watch), like-AUC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub figures: Vec<ReplayFigure>,
}

impl ReplayGateStatus {
    /// The gate's result in words, one line per figure after the headline: what
    /// `kubectl feedroll status` and `feedroll-operator check` print.
    pub fn summary_lines(&self) -> Vec<String> {
        let verdict = self.verdict.map_or("-", ReplayVerdict::as_str);
        let mut head = format!("{verdict} for revision {}", self.revision);
        if let Some(n) = self.exposures {
            head.push_str(&format!(", {n} exposures"));
        }
        if let Some(c) = self.confidence {
            head.push_str(&format!(", {}% intervals", (c * 100.0).round()));
        }
        if !self.reason.is_empty() {
            head.push_str(&format!(": {}", self.reason));
        }
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
        let mut lines = vec![head];
        for f in &self.figures {
            let limit = f
                .max_drop
                .map_or_else(|| "not gated".to_owned(), |d| format!("maxDrop {d}"));
            lines.push(format!(
                "{}: stable {} canary {} diff {} [{}, {}] {limit}",
                f.metric.map_or("?", ReplayMetric::as_str),
                num(f.stable),
                num(f.canary),
                num(f.difference),
                num(f.lower),
                num(f.upper),
            ));
        }
        lines
    }
}

/// `strategy.replayGate` resolved against the traffic mode (the same rules as the CEL rule and
/// the schema: in-app only, a window longer than 0s, drops in [0, 1]).
pub(crate) fn resolve(
    gate: &ReplayGate,
    traffic: &crate::TrafficMode,
) -> Result<ResolvedReplayGate, crate::ApiError> {
    const AT: &str = "spec.strategy.replayGate";
    if !matches!(traffic, crate::TrafficMode::InApp(_)) {
        return Err(crate::ApiError::invalid(
            AT,
            "strategy.replayGate needs strategy.traffic.inApp: the gate replays ranking profiles, which only an in-app rollout changes without new pods",
        ));
    }
    let default_window =
        crate::duration::parse_duration(DEFAULT_WINDOW).unwrap_or(Duration::from_secs(24 * 3600));
    let window = crate::defaults::duration_at(
        gate.window.as_ref(),
        default_window,
        &format!("{AT}.window"),
    )?;
    if window.is_zero() {
        return Err(crate::ApiError::invalid(
            format!("{AT}.window"),
            "must be longer than 0s",
        ));
    }
    let drop = |v: Option<f64>, name: &str| match v {
        None => Ok(DEFAULT_MAX_DROP),
        Some(d) if d.is_finite() && (0.0..=1.0).contains(&d) => Ok(d),
        Some(d) => Err(crate::ApiError::invalid(
            format!("{AT}.maxDrop.{name}"),
            format!("must be between 0 and 1, got {d}"),
        )),
    };
    let max_drop = gate.max_drop.clone().unwrap_or_default();
    Ok(ResolvedReplayGate {
        window,
        max_drop_gauc_finish: drop(max_drop.gauc_finish, "gaucFinish")?,
        max_drop_ndcg_watch: drop(max_drop.ndcg_watch, "ndcgWatch")?,
        admin_key: gate.admin_key.clone(),
        max_hold: crate::defaults::DEFAULT_MAX_HOLD,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InApp, TrafficMode};

    fn gate(window: Option<&str>, gauc: Option<f64>) -> ReplayGate {
        ReplayGate {
            window: window.map(DurationString::from),
            max_drop: Some(MaxDrop {
                gauc_finish: gauc,
                ndcg_watch: None,
            }),
            admin_key: None,
        }
    }

    #[test]
    fn defaults_apply_and_bad_values_name_their_field() {
        let in_app = TrafficMode::InApp(InApp::default());
        let g = resolve(&gate(None, None), &in_app).expect("defaults");
        assert_eq!(g.window, Duration::from_secs(86_400));
        assert_eq!(
            (g.max_drop_gauc_finish, g.max_drop_ndcg_watch),
            (0.005, 0.005)
        );
        let g = resolve(&gate(Some("90s"), Some(0.01)), &in_app).expect("set");
        assert_eq!(
            (g.window, g.max_drop_gauc_finish),
            (Duration::from_secs(90), 0.01)
        );
        for (bad, field) in [
            (gate(Some("0s"), None), "replayGate.window"),
            (gate(Some("soon"), None), "replayGate.window"),
            (gate(None, Some(-0.1)), "maxDrop.gaucFinish"),
            (gate(None, Some(f64::NAN)), "maxDrop.gaucFinish"),
        ] {
            let e = resolve(&bad, &in_app).expect_err("refused").to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn the_summary_names_the_verdict_and_every_figure() {
        let st = ReplayGateStatus {
            revision: "r2".into(),
            verdict: Some(ReplayVerdict::Regression),
            reason: "canary worse".into(),
            exposures: Some(1500),
            confidence: Some(0.95),
            figures: vec![ReplayFigure {
                metric: Some(ReplayMetric::GaucFinish),
                stable: Some(0.8),
                canary: Some(0.5),
                difference: Some(-0.3),
                lower: Some(-0.35),
                upper: Some(-0.25),
                max_drop: Some(0.005),
            }],
            ..ReplayGateStatus::default()
        };
        assert_eq!(
            st.summary_lines(),
            vec![
                "Regression for revision r2, 1500 exposures, 95% intervals: canary worse".to_owned(),
                "gaucFinish: stable 0.8000 canary 0.5000 diff -0.3000 [-0.3500, -0.2500] maxDrop 0.005".to_owned(),
            ]
        );
    }

    #[test]
    fn only_in_app_rollouts_take_a_replay_gate() {
        for mode in [
            TrafficMode::ReplicaRatio,
            TrafficMode::GatewayApi(crate::GatewayApi::default()),
        ] {
            let e = resolve(&gate(None, None), &mode).expect_err("pod traffic refused");
            assert!(
                e.to_string().contains("needs strategy.traffic.inApp"),
                "{e}"
            );
        }
    }
}
