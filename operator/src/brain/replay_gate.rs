//! The replay gate's decision (`strategy.replayGate`, in-app rollouts): pure, no I/O. The
//! reconciler (or the e2e driver) asks a ready stable pod for `POST /v1/admin/replay` when
//! [`replay_due`] says so ([`crate::analysis::replay`] is the thin HTTP adapter) and hands the
//! [`ReplayOutcome`] to the brain in [`super::Observations::replay`]; [`judge`] turns it into a
//! verdict:
//!
//! - **Regression** when a gated figure (GAUC(finish), NDCG@10(watch)) dropped beyond its
//!   `maxDrop` *with confidence*: the upper bound of the interval of canary − stable is below
//!   `-maxDrop`. The rollout is rolled back before the first step (`ReplayRegression`): the
//!   canary weight never left 0.
//! - **Passed** when every gated figure is confidently within its `maxDrop`: the lower bound is
//!   at or above `-maxDrop`. The first step starts.
//! - **Inconclusive** otherwise: too few exposures, an interval straddling `-maxDrop`, a figure
//!   the window cannot define. **Error** when the pod could not be asked or refused. Both hold
//!   the rollout before its first step and ask again every `analysis.interval`; past
//!   `analysis.maxHold` from the first attempt the rollout pauses for a human
//!   (`pauseReason: ReplayGate`), who resumes to go on without the gate (`Waived`) or aborts.
//!   The gate is never skipped silently.
//!
//! Like-AUC is reported beside the two, not gated.

use std::time::Duration;

use feedroll_crds::{
    FeedRolloutSpec, FeedRolloutStatus, Phase, ReplayFigure, ReplayGateStatus, ReplayMetric,
    ReplayVerdict, ResolvedReplayGate,
};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{after, ts};

/// What asking the stable pod gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReplayOutcome {
    /// The pod answered the replay.
    Answered(ReplayAnswer),
    /// The pod answered that the window holds too few exposures (`too_few_exposures`).
    TooFewExposures(String),
    /// No ready stable pod, the pod could not be reached, or it refused (status and message).
    Failed(String),
}

/// The figures of a replay (canary − stable differences with their intervals).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayAnswer {
    /// Exposures ranked.
    pub exposures: i64,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// GAUC(finish), NDCG@10(watch) and like-AUC (`max_drop` unset).
    pub figures: Vec<ReplayFigure>,
}

/// What the gate concluded from one outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// The verdict (never `Pending` or `Waived`).
    pub verdict: ReplayVerdict,
    /// Why, with the decisive figures.
    pub reason: String,
    /// The figures with the `maxDrop` of the gated ones.
    pub figures: Vec<ReplayFigure>,
}

fn max_drop(gate: &ResolvedReplayGate, metric: Option<ReplayMetric>) -> Option<f64> {
    match metric? {
        ReplayMetric::GaucFinish => Some(gate.max_drop_gauc_finish),
        ReplayMetric::NdcgWatch => Some(gate.max_drop_ndcg_watch),
        ReplayMetric::LikeAuc => None,
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:+.4}"))
}

/// `gaucFinish -0.0312 [-0.0400, -0.0210] beyond maxDrop 0.005`.
fn describe(f: &ReplayFigure, how: &str) -> String {
    format!(
        "{} {} [{}, {}] {how} maxDrop {}",
        f.metric.map_or("?", ReplayMetric::as_str),
        num(f.difference),
        num(f.lower),
        num(f.upper),
        f.max_drop.unwrap_or_default()
    )
}

/// The verdict on one outcome; see the module docs.
pub fn judge(gate: &ResolvedReplayGate, outcome: &ReplayOutcome) -> Judgement {
    let answer = match outcome {
        ReplayOutcome::Answered(a) => a,
        ReplayOutcome::TooFewExposures(why) => {
            return Judgement {
                verdict: ReplayVerdict::Inconclusive,
                reason: format!("too few exposures: {why}"),
                figures: Vec::new(),
            };
        }
        ReplayOutcome::Failed(why) => {
            return Judgement {
                verdict: ReplayVerdict::Error,
                reason: why.clone(),
                figures: Vec::new(),
            };
        }
    };
    let figures: Vec<ReplayFigure> = answer
        .figures
        .iter()
        .map(|f| ReplayFigure {
            max_drop: max_drop(gate, f.metric),
            ..f.clone()
        })
        .collect();
    let mut regressions = Vec::new();
    let mut undecided = Vec::new();
    for metric in [ReplayMetric::GaucFinish, ReplayMetric::NdcgWatch] {
        let Some(f) = figures.iter().find(|f| f.metric == Some(metric)) else {
            undecided.push(format!("{} missing from the answer", metric.as_str()));
            continue;
        };
        let limit = -f.max_drop.unwrap_or_default();
        match (f.lower, f.upper) {
            (_, Some(upper)) if upper < limit => regressions.push(describe(f, "beyond")),
            (Some(lower), Some(_)) if lower >= limit => {}
            (Some(_), Some(_)) => undecided.push(describe(f, "straddles")),
            _ => undecided.push(format!("{} has no interval", metric.as_str())),
        }
    }
    let level = (answer.confidence * 100.0).round();
    let (verdict, reason) = if !regressions.is_empty() {
        (
            ReplayVerdict::Regression,
            format!(
                "canary worse with {level}% confidence on {} exposures: {}",
                answer.exposures,
                regressions.join("; ")
            ),
        )
    } else if !undecided.is_empty() {
        (
            ReplayVerdict::Inconclusive,
            format!(
                "not confident on {} exposures: {}",
                answer.exposures,
                undecided.join("; ")
            ),
        )
    } else {
        (
            ReplayVerdict::Passed,
            format!(
                "canary within maxDrop with {level}% confidence on {} exposures",
                answer.exposures
            ),
        )
    };
    Judgement {
        verdict,
        reason,
        figures,
    }
}

/// Whether the rollout waits for its replay gate: progressing, before its first step, with a
/// gate of the canary revision not yet decided (pending, inconclusive or failed).
pub fn awaiting(status: &FeedRolloutStatus) -> bool {
    matches!(status.phase, Some(Phase::Progressing | Phase::Paused))
        && status.current_step_index.is_none()
        && status.replay_gate.as_ref().is_some_and(|g| {
            Some(g.revision.as_str()) == status.canary_revision.as_deref()
                && !matches!(
                    g.verdict,
                    Some(ReplayVerdict::Passed | ReplayVerdict::Regression | ReplayVerdict::Waived)
                )
        })
}

/// What to ask the stable pod for.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayAsk {
    /// Look-back of the replay, ending now.
    pub window: Duration,
    /// The gate as resolved (admin key reference included).
    pub gate: ResolvedReplayGate,
}

/// Whether the replay should be asked for now: the rollout is progressing and waits for its
/// gate, and it has not been asked yet or `analysis.interval` passed since the last attempt.
pub fn replay_due(
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    now: Timestamp,
) -> Option<ReplayAsk> {
    if status.phase != Some(Phase::Progressing) || !awaiting(status) {
        return None;
    }
    let plan = spec.resolved_plan().ok()?;
    let gate = plan.strategy.replay_gate?;
    let last = status.replay_gate.as_ref().and_then(|g| g.at.as_ref());
    let window = gate.window;
    last.is_none_or(|t| now >= after(ts(t), plan.analysis.interval))
        .then_some(ReplayAsk { window, gate })
}

/// A new, pending gate for `revision`.
pub(crate) fn pending(revision: &str) -> ReplayGateStatus {
    ReplayGateStatus {
        revision: revision.to_owned(),
        verdict: Some(ReplayVerdict::Pending),
        reason: "asking a stable pod to replay the logged exposures with both profiles".into(),
        ..ReplayGateStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> ResolvedReplayGate {
        ResolvedReplayGate {
            window: Duration::from_secs(3600),
            max_drop_gauc_finish: 0.005,
            max_drop_ndcg_watch: 0.01,
            admin_key: None,
            max_hold: Duration::from_secs(600),
        }
    }

    fn fig(metric: ReplayMetric, lower: Option<f64>, upper: Option<f64>) -> ReplayFigure {
        ReplayFigure {
            metric: Some(metric),
            stable: Some(0.7),
            canary: Some(0.69),
            difference: lower.zip(upper).map(|(l, u)| (l + u) / 2.0),
            lower,
            upper,
            max_drop: None,
        }
    }

    fn answer(
        finish: (Option<f64>, Option<f64>),
        watch: (Option<f64>, Option<f64>),
    ) -> ReplayOutcome {
        ReplayOutcome::Answered(ReplayAnswer {
            exposures: 500,
            confidence: 0.95,
            figures: vec![
                fig(ReplayMetric::GaucFinish, finish.0, finish.1),
                fig(ReplayMetric::NdcgWatch, watch.0, watch.1),
                // Like-AUC far worse: reported, never gated.
                fig(ReplayMetric::LikeAuc, Some(-0.5), Some(-0.4)),
            ],
        })
    }

    fn verdict(o: &ReplayOutcome) -> ReplayVerdict {
        judge(&gate(), o).verdict
    }

    const FINE: (Option<f64>, Option<f64>) = (Some(-0.001), Some(0.02));

    #[test]
    fn every_interval_position_against_max_drop() {
        use ReplayVerdict::*;
        // GAUC(finish), maxDrop 0.005: the interval's position decides.
        for (finish, want) in [
            ((Some(-0.03), Some(-0.006)), Regression), // wholly beyond -0.005
            ((Some(-0.03), Some(-0.005)), Inconclusive), // touches the limit: not confidently beyond
            ((Some(-0.03), Some(0.01)), Inconclusive),   // straddles
            ((Some(-0.005), Some(0.01)), Passed),        // lower bound exactly at the limit
            ((Some(0.01), Some(0.02)), Passed),          // better
            ((None, None), Inconclusive),                // no interval
            ((None, Some(-0.2)), Regression),            // an upper bound alone can convict
        ] {
            assert_eq!(verdict(&answer(finish, FINE)), want, "{finish:?}");
        }
        // NDCG@10(watch) has its own maxDrop (0.01).
        assert_eq!(
            verdict(&answer(FINE, (Some(-0.02), Some(-0.008)))),
            Inconclusive
        );
        assert_eq!(
            verdict(&answer(FINE, (Some(-0.02), Some(-0.011)))),
            Regression
        );
        // A regression on one figure wins over an undecided other.
        assert_eq!(
            verdict(&answer((Some(-0.1), Some(-0.05)), (None, None))),
            Regression
        );
    }

    #[test]
    fn the_figures_carry_their_limits_and_the_reason_names_the_regression() {
        let j = judge(&gate(), &answer((Some(-0.04), Some(-0.02)), FINE));
        assert_eq!(j.verdict, ReplayVerdict::Regression);
        assert!(
            j.reason
                .contains("gaucFinish -0.0300 [-0.0400, -0.0200] beyond maxDrop 0.005"),
            "{}",
            j.reason
        );
        assert!(
            j.reason.contains("95% confidence on 500 exposures"),
            "{}",
            j.reason
        );
        let limits: Vec<Option<f64>> = j.figures.iter().map(|f| f.max_drop).collect();
        assert_eq!(limits, vec![Some(0.005), Some(0.01), None]);
    }

    #[test]
    fn missing_figures_few_exposures_and_failures_never_pass() {
        let empty = ReplayOutcome::Answered(ReplayAnswer::default());
        assert_eq!(verdict(&empty), ReplayVerdict::Inconclusive);
        let few = ReplayOutcome::TooFewExposures("holds 12, needs 100".into());
        assert_eq!(verdict(&few), ReplayVerdict::Inconclusive);
        let down = ReplayOutcome::Failed("connection refused".into());
        let j = judge(&gate(), &down);
        assert_eq!(
            (j.verdict, j.reason.as_str()),
            (ReplayVerdict::Error, "connection refused")
        );
    }
}
