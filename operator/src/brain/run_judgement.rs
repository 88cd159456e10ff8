//! What a new analysis run means for the rollout, once the run is recorded: roll back, pause
//! for a human, or go on. Pure: the state machine records the run (records, per-check
//! counters, events) and then asks [`judge_run`]; nothing here changes the status.
//!
//! Which failures count depends on the phase ([`failure_counts`]): while `Progressing` every
//! failure does; while `Paused` (a human looks) and `Promoting` (no step is left to block) only
//! the roll-back tier's. A blocking check blocks the next step, and once a human or the plan has
//! sent the canary past its last step there is nothing left for it to block.
//!
//! The rules, in order (the first that applies wins):
//! 1. A roll-back-tier check, or while `Progressing` a blocking one, failed more times in a row
//!    than it allows: [`RunDecision::RollBack`].
//! 2. Only while `Progressing`:
//!    - a pause-tier check failed more times in a row than it allows:
//!      [`RunDecision::Pause`] with [`PauseReason::CheckFailed`];
//!    - a non-advisory check of this run has no data or a provider error and its policy
//!      (`onNoData`, `onProviderError`) is `pause`: [`PauseReason::NoData`]; a sequential check
//!      still gathering evidence (before its `untilConfident` max) has no missing data;
//!    - such a check has been holding for longer than its `maxHold`: [`PauseReason::HoldExpired`].
//! 3. Otherwise [`RunDecision::Continue`]. Advisory checks never decide anything.

use feedroll_crds::{
    AnalysisRun, CheckRecord, CheckState, HoldPolicy, PauseReason, Phase, ResolvedCheck, Tier,
    Verdict,
};
use k8s_openapi::jiff::Timestamp;

use super::{after, ts};

/// What the judgement of a run looks at.
#[derive(Clone, Copy, Debug)]
pub struct RunFacts<'a> {
    /// The checks of the spec.
    pub checks: &'a [ResolvedCheck],
    /// The new run (only its records are judged for no data and provider errors).
    pub run: &'a AnalysisRun,
    /// `status.checks` with the run recorded: consecutive failures, holding since.
    pub states: &'a [CheckState],
    /// The latest record of every check with the run merged (`status.analysis.records`): what
    /// a pause message quotes.
    pub records: &'a [CheckRecord],
    /// The phase the run was recorded in.
    pub phase: Option<Phase>,
    /// The current step waits for confidence and its `max` has passed: evidence still being
    /// gathered counts as no data.
    pub evidence_overdue: bool,
    /// The time of the decision (holds expire against it).
    pub now: Timestamp,
}

/// The judgement of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunDecision {
    /// Nothing to act on: the step goes on (or holds, without pausing yet).
    Continue,
    /// Roll back; the text says which checks failed how often (`rolled back: ` is prefixed by
    /// the state machine).
    RollBack(String),
    /// Pause for a human, with the reason and the message for the status and the Event.
    Pause {
        /// Why (one of `CheckFailed`, `NoData`, `HoldExpired`).
        reason: PauseReason,
        /// What the human reads.
        message: String,
    },
}

/// Whether a failure of a check of `tier`, recorded in `phase`, counts toward the check's streak
/// of consecutive failures (and so toward a roll back or a pause): the roll-back tier's always,
/// the others' only while `Progressing`. The state machine counts with it and [`judge_run`]
/// judges with it, so the two never disagree.
pub fn failure_counts(tier: Tier, phase: Option<Phase>) -> bool {
    tier == Tier::Rollback || phase == Some(Phase::Progressing)
}

/// Judges a recorded run (see the module's rules).
pub fn judge_run(facts: &RunFacts<'_>) -> RunDecision {
    let failures = |name: &str| {
        facts
            .states
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.consecutive_failures)
    };
    let past_limit = |c: &ResolvedCheck| failures(&c.name) > c.consecutive_failures_allowed;
    let breaches: Vec<String> = facts
        .checks
        .iter()
        .filter(|c| {
            matches!(c.tier, Tier::Rollback | Tier::Blocking)
                && failure_counts(c.tier, facts.phase)
                && past_limit(c)
        })
        .map(|c| {
            format!(
                "{} failed {} time(s) in a row ({} tier, {} allowed)",
                c.name,
                failures(&c.name),
                c.tier.as_str(),
                c.consecutive_failures_allowed
            )
        })
        .collect();
    if !breaches.is_empty() {
        return RunDecision::RollBack(breaches.join("; "));
    }
    if facts.phase != Some(Phase::Progressing) {
        return RunDecision::Continue;
    }
    let pause_failures: Vec<String> = facts
        .checks
        .iter()
        .filter(|c| c.tier == Tier::Pause && past_limit(c))
        .map(|c| format!("{} failed ({})", c.name, summary(facts.records, &c.name)))
        .collect();
    if !pause_failures.is_empty() {
        return RunDecision::Pause {
            reason: PauseReason::CheckFailed,
            message: format!("paused for a human: {}", pause_failures.join("; ")),
        };
    }
    facts
        .checks
        .iter()
        .filter(|c| c.tier != Tier::Advisory)
        .find_map(|check| hold_decision(facts, check))
        .unwrap_or(RunDecision::Continue)
}

/// The pause a check of the run asks for by missing data or a provider error, if any.
fn hold_decision(facts: &RunFacts<'_>, check: &ResolvedCheck) -> Option<RunDecision> {
    let record = facts.run.records.iter().find(|r| r.name == check.name)?;
    let policy = match record.verdict {
        Verdict::NoData if record.gathering_evidence() && !facts.evidence_overdue => return None,
        Verdict::NoData => check.on_no_data,
        Verdict::Error => check.on_provider_error,
        Verdict::Pass | Verdict::Fail => return None,
    };
    if policy == HoldPolicy::Pause {
        return Some(RunDecision::Pause {
            reason: PauseReason::NoData,
            message: format!(
                "paused for a human: {} has {} ({})",
                check.name,
                record.verdict.as_str(),
                record.reason
            ),
        });
    }
    let since = facts
        .states
        .iter()
        .find(|c| c.name == check.name)
        .and_then(|c| c.holding_since.as_ref())
        .map(ts)?;
    (facts.now >= after(since, check.max_hold)).then(|| RunDecision::Pause {
        reason: PauseReason::HoldExpired,
        message: format!(
            "paused for a human: {} has had {} for longer than maxHold {}s ({})",
            check.name,
            record.verdict.as_str(),
            check.max_hold.as_secs(),
            record.reason
        ),
    })
}

/// `value V outside THRESHOLD` of a check's latest record, for a pause message.
fn summary(records: &[CheckRecord], name: &str) -> String {
    match records.iter().find(|r| r.name == name) {
        Some(r) => format!("value {} outside {}", fmt_value(r.value), r.threshold),
        None => "no record".to_owned(),
    }
}

/// A judged value in an event or message: six decimals, or `none`.
pub(crate) fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:.6}"))
}
