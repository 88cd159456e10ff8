//! Stage `record`: the Events, metrics and logs of a decision that was written. Never fails: an
//! Event that cannot be published is logged (the status already holds the decision).

use feedroll_crds::{FeedRollout, FeedRolloutStatus, Phase};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::super::Context;
use crate::brain::{self, EventReason, EventType, Observations, Transition};

/// An Event the reconciler raises itself (beside the brain's): an ignored command, a
/// Prometheus connection fault, objects that cannot be built or applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// The Event reason.
    pub reason: EventReason,
    /// The Event note.
    pub message: String,
}

impl Note {
    /// A Warning Event.
    pub fn warning(reason: EventReason, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}

/// What one decision did, for [`record`].
pub struct Record<'a> {
    /// The rollout.
    pub fr: &'a FeedRollout,
    /// The status before the decision.
    pub old: &'a FeedRolloutStatus,
    /// The status written.
    pub status: &'a FeedRolloutStatus,
    /// The observations the decision was made on.
    pub observations: &'a Observations,
    /// The brain's transition.
    pub transition: &'a Transition,
    /// The reconciler's own Events, after the brain's.
    pub notes: Vec<Note>,
}

/// Publishes the Events (the brain's, then the reconciler's), counts the decisions and
/// verdicts, observes the breach-to-rollback time of a roll-back and the status gauges.
pub async fn record(ctx: &Context, r: Record<'_>, now: Timestamp) {
    let (fr, old, status, obs, t) = (r.fr, r.old, r.status, r.observations, r.transition);
    let ns = fr.namespace().unwrap_or_default();
    let name = fr.name_any();
    let brain_events = t.actions.iter().filter_map(|a| match a {
        brain::Action::Event {
            type_,
            reason,
            message,
        } => Some(Note {
            type_: *type_,
            reason: *reason,
            message: message.clone(),
        }),
        _ => None,
    });
    for Note {
        type_,
        reason,
        message,
    } in brain_events.chain(r.notes)
    {
        tracing::info!(namespace = %ns, rollout = %name, %reason, message, "decision");
        ctx.metrics.decision(&ns, &name, reason);
        if let Err(e) = ctx.events.publish(fr, type_, reason, &message).await {
            tracing::warn!(namespace = %ns, rollout = %name, %reason, error = %e, "cannot publish an Event");
        }
    }
    if let Some(run) = &obs.analysis {
        for c in &run.records {
            ctx.metrics.verdict(&ns, &name, &c.name, c.tier, c.verdict);
        }
    }
    let deadline_missed = t.actions.iter().any(|a| {
        matches!(
            a,
            brain::Action::Event {
                reason: EventReason::ProgressDeadlineExceeded,
                ..
            }
        )
    });
    // A missed progress deadline is not an SLO breach: it has no breach-to-rollback time.
    if old.phase != Some(Phase::RolledBack)
        && status.phase == Some(Phase::RolledBack)
        && !deadline_missed
    {
        // The breach: the pod-health observation (now) or the analysis sample that breached.
        let breach = if obs.canary.crash_looping {
            now
        } else {
            obs.analysis
                .as_ref()
                .and_then(|run| run.at.as_ref())
                .map_or(now, |at| at.0)
        };
        let done = (ctx.clock)();
        ctx.metrics
            .breach_to_rollback(breach.duration_until(done).as_secs_f64());
    }
    ctx.metrics.observe_status(&ns, &name, status);
}
