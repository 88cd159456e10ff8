//! The vocabulary of the operator's Kubernetes Events on a FeedRollout: their [`EventType`] and
//! every [`EventReason`] the operator emits (the brain's decisions and notices, and the
//! reconciler's own), one type for both so a reason has one name and one meaning everywhere
//! (Events, `feedroll_decisions_total{reason}`, logs). Which reasons are decisions kept in
//! `status.history` is [`crate::history::Decision::of`].

use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, IntoStaticStr};

/// Kubernetes Event type.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Display, IntoStaticStr,
)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something needs attention.
    Warning,
}

impl EventType {
    /// `Normal` or `Warning`, as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Reasons of the Events the operator records, one per kind of decision or notice. The name
/// of the variant is the Event's `reason`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    IntoStaticStr,
    EnumIter,
)]
pub enum EventReason {
    /// A new revision started rolling out.
    RolloutStarted,
    /// A step was completed and the next one entered.
    StepAdvanced,
    /// The traffic weight changed.
    WeightChanged,
    /// Every judged check passed.
    AnalysisPassed,
    /// A check failed (blocking: counted; advisory: warned).
    AnalysisFailed,
    /// No data or Prometheus errors: holding the current step.
    Held,
    /// Waiting for a human.
    PausedForHuman,
    /// Left a pause.
    Resumed,
    /// All steps done: promoting the canary to stable.
    Promoting,
    /// Stable runs the new revision.
    Promoted,
    /// Analysis or pod health rolled the canary back.
    RolledBack,
    /// A human aborted the rollout.
    Aborted,
    /// A human restarted a rolled-back or aborted rollout.
    Retried,
    /// The spec went back to the stable revision.
    Reverted,
    /// A human command did not apply: unknown verb, or not applicable in the current phase.
    /// Always a Warning: the human's intent had no effect and they need to notice.
    CommandIgnored,
    /// The spec cannot be acted on (unresolvable, or its objects cannot be built).
    InvalidSpec,
    /// The API server rejected one of the rollout's objects (a 4xx that retrying cannot fix).
    ApplyFailed,
    /// Canary pods cannot become ready (image pull, container config, scheduling).
    CanaryNotReady,
    /// Canary pods were not ready within `progressDeadline`: rolled back or paused.
    ProgressDeadlineExceeded,
    /// The replica count cannot express the step's weight within 5 points.
    WeightSkew,
    /// The Secrets, ConfigMaps or values `spec.analysis.prometheus` names cannot be used
    /// (missing, lacking the key, empty, a CA that is not PEM).
    PrometheusCredentialsInvalid,
    /// Prometheus answered 401 or 403.
    PrometheusAuthFailed,
    /// Prometheus cannot be reached: connection refused or TLS handshake failed.
    PrometheusUnreachable,
    /// The replay gate found the canary profile worse beyond `maxDrop` with confidence: rolled
    /// back before the first step.
    ReplayRegression,
    /// The replay gate found the canary profile within `maxDrop`: the first step starts.
    ReplayPassed,
}

impl EventReason {
    /// The reason string of the Kubernetes Event (the variant's name).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn reason_names_are_the_variant_names_and_serde_agrees() {
        for reason in EventReason::iter() {
            let json = serde_json::to_value(reason).expect("serializes");
            assert_eq!(json.as_str(), Some(reason.as_str()));
            assert_eq!(format!("{reason:?}"), reason.as_str());
        }
        assert_eq!(EventReason::ApplyFailed.as_str(), "ApplyFailed");
        assert_eq!(EventType::Warning.as_str(), "Warning");
    }
}
