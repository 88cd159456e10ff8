//! Standard Kubernetes conditions on the FeedRollout status.

use feedroll_crds::ConditionStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `True` while the rollout moves (Progressing, Promoting).
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// `True` while waiting for a human.
pub const CONDITION_PAUSED: &str = "Paused";
/// `False` after a rollback, an abort or an unusable spec.
pub const CONDITION_HEALTHY: &str = "Healthy";
/// `True` when every judged check passed, `False` on a failure, `Unknown` while holding.
pub const CONDITION_ANALYSIS: &str = "AnalysisHealthy";

/// Sets a condition; `lastTransitionTime` moves only when `status` flips.
pub(crate) fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status.as_str() {
            c.last_transition_time = Time(now);
        }
        c.status = status.as_str().to_owned();
        c.reason = reason.to_owned();
        c.message = message.to_owned();
        c.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time: Time(now),
        });
    }
}
