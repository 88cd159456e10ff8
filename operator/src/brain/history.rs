//! The decision history: one [`HistoryEntry`] per decision, appended to `status.history`
//! (bounded by [`feedroll_crds::history::HISTORY_LIMIT`]) in the same transition, so the
//! reconciler writes it in the same status patch. Pure, like the rest of the brain.
//!
//! A transition is a decision when it asks for an Event that changes where the rollout is (a
//! start, a step, a pause, a resume, a promotion, a rollback, an abort, a retry, a revert, an
//! invalid spec) or tells a human their command did not apply. Notices that change nothing
//! (an analysis failure still under the limit, a hold, a weight skew, pods not ready yet) are
//! not: they stay Events and metrics.

use feedroll_crds::history::{self, CommandRef, Decision, DecisiveCheck, HistoryEntry};
use feedroll_crds::{CheckRecord, FeedRolloutStatus, Phase, Tier, Verdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::actions::{Action, EventReason, Transition};
use super::observations::Observations;

/// `t` with its decision, if it made one, appended to `t.status.history`.
pub(crate) fn record(
    old: &FeedRolloutStatus,
    obs: &Observations,
    mut t: Transition,
    now: Timestamp,
) -> Transition {
    let phase = t.status.phase;
    let Some(decision) = t
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { reason, .. } => decision_of(*reason, phase),
            _ => None,
        })
        .max_by_key(|d| rank(*d))
    else {
        return t;
    };
    let applied = t
        .status
        .last_command_id
        .as_ref()
        .filter(|id| old.last_command_id.as_ref() != Some(*id));
    let command = applied.map(|id| CommandRef {
        id: id.clone(),
        author: obs
            .commands
            .iter()
            .find(|c| &c.id == id)
            .and_then(|c| c.author.clone()),
    });
    let analysed = t.status.analysis.as_ref().and_then(|a| a.at.as_ref())
        != old.analysis.as_ref().and_then(|a| a.at.as_ref());
    let check = match &obs.analysis {
        Some(run) if analysed && command.is_none() => decisive(decision, &run.records),
        _ => None,
    };
    let entry = HistoryEntry {
        at: Time(now),
        decision,
        phase,
        step: t.status.current_step_index,
        weight: t.status.weight,
        reason: t.status.message.clone().unwrap_or_default(),
        check,
        command,
    };
    history::append(&mut t.status.history, entry);
    t
}

/// The decision an Event stands for (`None`: a notice, not a decision).
fn decision_of(reason: EventReason, phase: Option<Phase>) -> Option<Decision> {
    Some(match reason {
        EventReason::RolloutStarted => Decision::Started,
        EventReason::StepAdvanced => Decision::StepAdvanced,
        EventReason::PausedForHuman => Decision::Paused,
        EventReason::Resumed => Decision::Resumed,
        EventReason::Promoting => Decision::Promoting,
        EventReason::Promoted => Decision::Promoted,
        EventReason::RolledBack | EventReason::ReplayRegression => Decision::RolledBack,
        EventReason::Aborted => Decision::Aborted,
        EventReason::Retried => Decision::Retried,
        EventReason::Reverted => Decision::Reverted,
        EventReason::InvalidSpec => Decision::Failed,
        EventReason::CommandIgnored => Decision::CommandIgnored,
        // The deadline rolls back or pauses a step; during a promotion it is only a warning.
        EventReason::ProgressDeadlineExceeded => match phase {
            Some(Phase::RolledBack) => Decision::RolledBack,
            Some(Phase::Paused) => Decision::Paused,
            _ => return None,
        },
        EventReason::WeightChanged
        | EventReason::AnalysisPassed
        | EventReason::AnalysisFailed
        | EventReason::Held
        | EventReason::CanaryNotReady
        | EventReason::WeightSkew
        | EventReason::PrometheusCredentialsInvalid
        | EventReason::PrometheusAuthFailed
        | EventReason::PrometheusUnreachable
        | EventReason::ReplayPassed => return None,
    })
}

/// Which decision names a transition that made several (a retry also enters step 1; a
/// promote command past the last step also starts the promotion): the one that says most
/// about where the rollout ended up.
fn rank(d: Decision) -> u8 {
    match d {
        Decision::CommandIgnored => 0,
        Decision::StepAdvanced => 1,
        Decision::Resumed => 2,
        Decision::Paused => 3,
        Decision::Promoting => 4,
        Decision::Promoted => 5,
        Decision::Started | Decision::Retried | Decision::Reverted => 6,
        Decision::RolledBack | Decision::Aborted | Decision::Failed => 7,
    }
}

/// The check of this run behind `decision`, among the judged (non-advisory) records: for a
/// rollback or a pause the worst non-passing one (failures before errors before no data,
/// roll-back tier before blocking before pause); for a step or a promotion the gate's worst.
/// `None` for other decisions.
fn decisive(decision: Decision, records: &[CheckRecord]) -> Option<DecisiveCheck> {
    // Advisory checks never decide: they only warn.
    let judged = records.iter().filter(|r| r.tier != Tier::Advisory);
    let worst = judged.max_by_key(|r| {
        (
            verdict_rank(r.verdict),
            tier_rank(r.tier),
            // Deterministic among equals: the first name in alphabetical order.
            std::cmp::Reverse(r.name.clone()),
        )
    })?;
    let fits = match decision {
        Decision::RolledBack | Decision::Paused => worst.verdict != Verdict::Pass,
        Decision::StepAdvanced | Decision::Promoting => true,
        _ => false,
    };
    fits.then(|| DecisiveCheck {
        name: worst.name.clone(),
        value: worst.value,
        threshold: worst.threshold.clone(),
        verdict: worst.verdict,
    })
}

fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Pass => 0,
        Verdict::NoData => 1,
        Verdict::Error => 2,
        Verdict::Fail => 3,
    }
}

fn tier_rank(t: Tier) -> u8 {
    match t {
        Tier::Advisory | Tier::Pause => 1,
        Tier::Blocking => 2,
        Tier::Rollback => 3,
    }
}
