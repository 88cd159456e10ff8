//! One turn of the loop that the reconciler (issue 4) and the e2e driver (issue 5) share: get
//! the analysis run that is due from an [`Analyzer`], then let the brain decide.

use feedroll_crds::{FeedRolloutSpec, FeedRolloutStatus};
use k8s_openapi::jiff::Timestamp;

use crate::analysis::counts::over_the_step;
use crate::analysis::{Analyzer, Target};
use crate::brain::{AnalysisDue, Observations, Transition, analysis_due, decide};

/// What one turn decided.
#[derive(Debug)]
pub struct Turn {
    /// The brain's decision.
    pub transition: Transition,
    /// The observations it was made on (with the analysis run, if one was due and ready).
    pub observations: Observations,
    /// An analysis run was due but the analyzer queued it: come back for it when the analyzer
    /// says it is ready ([`Analyzer::runs_ready`]).
    pub analysis_queued: bool,
}

/// Polls `analyzer` for the due analysis (all checks, or only the roll-back tier on the fast
/// interval) of `target`, puts the run into `observations` and decides. The caller carries out
/// the actions, stores the status and comes back after `requeue_after` (or on a change).
pub async fn turn(
    analyzer: &dyn Analyzer,
    target: &Target,
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    mut observations: Observations,
    now: Timestamp,
) -> Turn {
    let mut analysis_queued = false;
    if observations.analysis.is_none()
        && let Some(due) = analysis_due(spec, status, now)
        && let Ok(mut analysis) = spec.resolved_analysis()
    {
        // Sequential checks judge the counts of the current step so far.
        let started = status.step_started_at.as_ref().map(|t| t.0);
        analysis.checks = over_the_step(&analysis.checks, started, now);
        let fast = due == AnalysisDue::Fast;
        match analyzer.poll(target, &analysis, fast, now).await {
            Some(run) => {
                tracing::debug!(rollout = %target.rollout, fast, records = run.records.len(), "analysis ran");
                observations.analysis = Some(run);
            }
            None => analysis_queued = true,
        }
    }
    Turn {
        transition: decide(spec, status, &observations, now),
        observations,
        analysis_queued,
    }
}
