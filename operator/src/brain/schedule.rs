//! When analysis is due.

use feedroll_crds::{FeedRolloutSpec, FeedRolloutStatus, Phase};
use k8s_openapi::jiff::Timestamp;

use super::{after, ts};

/// Which checks to run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisDue {
    /// Every check (`analysis.interval` elapsed); the run has `fast: false`.
    Full,
    /// Only the roll-back-tier checks (`analysis.fastInterval` elapsed); the run has `fast: true`.
    Fast,
}

/// Whether a canary exists that analysis and pod health judge.
pub(crate) fn canary_active(status: &FeedRolloutStatus) -> bool {
    match status.phase {
        Some(Phase::Progressing) | Some(Phase::Paused) => true,
        Some(Phase::Promoting) => status.stable_revision.is_some(),
        _ => false,
    }
}

/// Whether an analysis run is due now, and which. `None` outside active phases (no canary to
/// judge), when the spec has no checks, or when nothing is due yet.
pub fn analysis_due(
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    now: Timestamp,
) -> Option<AnalysisDue> {
    // Before the first step the canary serves no one: nothing to measure until the replay gate
    // lets the first step start.
    if !canary_active(status) || super::replay_gate::awaiting(status) {
        return None;
    }
    let analysis = spec.resolved_analysis().ok()?;
    if analysis.checks.is_empty() {
        return None;
    }
    let full_due = status
        .last_analysis_at
        .as_ref()
        .is_none_or(|t| now >= after(ts(t), analysis.interval));
    if full_due {
        return Some(AnalysisDue::Full);
    }
    let has_fast = analysis
        .checks
        .iter()
        .any(feedroll_crds::ResolvedCheck::is_fast);
    let last_fast = [
        status.last_fast_analysis_at.as_ref(),
        status.last_analysis_at.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(ts)
    .max();
    let fast_due = last_fast.is_none_or(|t| now >= after(t, analysis.fast_interval));
    (has_fast && fast_due).then_some(AnalysisDue::Fast)
}
