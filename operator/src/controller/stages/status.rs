//! Stage `status`: completes the decided status with what the reconciler knows (the
//! `Reconciled` condition, replica counts, the actual weight, the selector of the scale
//! subresource) and writes it through the status subresource when it changed.

use feedroll_crds::{ConditionStatus, FeedRollout, FeedRolloutStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::super::apply::apply_status;
use super::super::plan::Plan;
use super::super::{CONDITION_RECONCILED, Context};
use super::observe::Seen;
use super::record::Note;
use crate::brain::{self, EventReason};
use crate::desired::World;
use crate::observe;

/// Why the status was not written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status subresource refused the write or could not be reached.
    #[error("writing the status: {0}")]
    Write(#[source] kube::Error),
}

/// Why the rollout's objects were not built or applied: the reason and message of the
/// `Reconciled=False` condition and its Warning Event.
pub type Unreconciled = (EventReason, String);

/// Sets the `Reconciled` condition from `outcome` (a Warning [`Note`] when it newly fails or
/// fails otherwise), the replica counts, the actual weight and the selector.
pub fn complete(
    status: &mut FeedRolloutStatus,
    outcome: Result<(), Unreconciled>,
    (fr, plan, old): (&FeedRollout, &Plan, &FeedRolloutStatus),
    (seen, world): (&Seen, &World),
    now: Timestamp,
) -> Option<Note> {
    let (ns, name) = (&plan.names.namespace, &plan.names.rollout);
    let mut note = None;
    match outcome {
        Ok(()) => set_condition(
            status,
            ConditionStatus::True,
            CONDITION_RECONCILED,
            "",
            fr,
            now,
        ),
        Err((reason, message)) => {
            let previous = condition(old, CONDITION_RECONCILED);
            if previous
                .is_none_or(|c| c.status != ConditionStatus::False.as_str() || c.message != message)
            {
                note = Some(Note::warning(reason, message.clone()));
            }
            tracing::warn!(namespace = %ns, rollout = %name, %reason, message, "cannot reconcile the rollout's objects");
            set_condition(
                status,
                ConditionStatus::False,
                reason.as_str(),
                &message,
                fr,
                now,
            );
        }
    }
    // Replica counts and selector for the status and the scale subresource.
    let (stable, canary) = (seen.stable.as_deref(), seen.canary.as_deref());
    let (total, ready, stable_n, canary_n) = observe::replica_counts(stable, canary);
    status.replicas = total;
    status.ready_replicas = ready;
    status.stable_replicas = stable_n;
    status.canary_replicas = canary_n;
    // The traffic mode the plan resolved.
    status.actual_weight = observe::actual_weight(
        &plan.target.traffic,
        status.weight,
        observe::ready_replicas(stable),
        world.canary_ready,
    );
    status.selector = plan.selector.clone();
    note
}

/// Writes `status` when it differs from `old`.
pub async fn write(
    ctx: &Context,
    plan: &Plan,
    old: &FeedRolloutStatus,
    status: &FeedRolloutStatus,
) -> Result<(), StatusError> {
    if status == old {
        return Ok(());
    }
    let api: Api<FeedRollout> = Api::namespaced(ctx.client.clone(), &plan.names.namespace);
    apply_status(&api, &plan.names.rollout, status)
        .await
        .map_err(StatusError::Write)
}

fn condition<'a>(status: &'a FeedRolloutStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Sets the [`CONDITION_RECONCILED`] condition; `lastTransitionTime` moves only on a flip.
fn set_condition(
    status: &mut FeedRolloutStatus,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    fr: &FeedRollout,
    now: Timestamp,
) {
    brain::set_condition(
        &mut status.conditions,
        CONDITION_RECONCILED,
        value,
        reason,
        message,
        fr.metadata.generation,
        now,
    );
}
