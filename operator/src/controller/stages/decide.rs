//! Stage `decide`: the replay the gate asks for (from a ready stable pod), the analysis run that
//! is due ([`crate::driver::turn`]: queued with the analyzer, which wakes the rollout when the
//! run is ready) and the brain's transition. Never fails: an unreachable Prometheus or pod is an
//! observation the brain judges.

use feedroll_crds::{FeedRollout, FeedRolloutStatus};
use k8s_openapi::jiff::Timestamp;

use super::super::Context;
use super::super::analyzer::{fault_is_news, fault_reason};
use super::super::plan::Plan;
use super::super::replay::ask_stable_pod;
use super::observe::{Observed, Seen};
use super::record::Note;
use crate::brain::{self, EventReason, Observations, Transition};
use crate::driver;

/// What the decide stage hands on.
pub struct Decided {
    /// What the observe stage read (handed on to build and status).
    pub seen: Seen,
    /// The brain's transition.
    pub transition: Transition,
    /// The observations it was made on (with the analysis run, if one was due and ready).
    pub observations: Observations,
    /// The decided status (the transition's, with an ignored command's id).
    pub status: FeedRolloutStatus,
    /// The reconciler's own Events so far.
    pub notes: Vec<Note>,
    /// An analysis run was due and is queued: the analyzer wakes the rollout when it is ready.
    pub analysis_queued: bool,
}

/// Decides on `fr` at `now` from what [`super::observe`] saw.
pub async fn decide(
    ctx: &Context,
    fr: &FeedRollout,
    plan: &Plan,
    old: &FeedRolloutStatus,
    observed: Observed,
    now: Timestamp,
) -> Decided {
    let Observed {
        seen,
        mut observations,
        bad_command,
    } = observed;
    let mut notes = Vec::new();
    if let Some((_, message)) = &bad_command {
        notes.push(Note::warning(EventReason::CommandIgnored, message.clone()));
    }
    if let Some(ask) = brain::replay_due(&fr.spec, old, now) {
        let stable = seen.stable.as_deref();
        let outcome = ask_stable_pod(&ctx.client, &ctx.caches, fr, &plan.names, stable, &ask, now);
        observations.replay = Some(outcome.await);
    }
    let target = &plan.target;
    let turn = driver::turn(
        ctx.analyzer.as_ref(),
        target,
        &fr.spec,
        old,
        observations,
        now,
    )
    .await;
    if let Some(run) = &turn.observations.analysis
        && let Some(fault) = ctx.analyzer.fault(target)
        && fault_is_news(&fault, old.analysis.as_ref(), run)
    {
        notes.push(Note::warning(fault_reason(&fault), fault.to_string()));
    }
    let mut status = turn.transition.status.clone();
    if let Some((id, _)) = bad_command {
        status.last_command_id = Some(id);
    }
    Decided {
        seen,
        transition: turn.transition,
        observations: turn.observations,
        status,
        notes,
        analysis_queued: turn.analysis_queued,
    }
}
