//! One turn of the loop that the reconciler (issue 4) and the e2e driver (issue 5) share: run
//! the analysis that is due, then let the brain decide.

use feedroll_crds::{FeedRolloutSpec, FeedRolloutStatus};
use k8s_openapi::jiff::Timestamp;

use crate::analysis::{AnalysisEngine, Target};
use crate::brain::{AnalysisDue, Observations, Transition, analysis_due, decide};

/// Runs the due analysis (all checks, or only the roll-back tier on the fast interval) against
/// `engine` for `target`, puts the run into `observations` and decides. The caller carries out
/// the actions, stores the status and comes back after `requeue_after` (or on a change).
pub async fn turn(
    engine: &AnalysisEngine,
    target: &Target,
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    mut observations: Observations,
    now: Timestamp,
) -> Transition {
    if observations.analysis.is_none()
        && let Some(due) = analysis_due(spec, status, now)
        && let Ok(analysis) = spec.resolved_analysis()
    {
        let fast = due == AnalysisDue::Fast;
        let run = engine.evaluate(target, &analysis.checks, fast, now).await;
        tracing::debug!(fast, records = run.records.len(), "analysis ran");
        observations.analysis = Some(run);
    }
    decide(spec, status, &observations, now)
}
