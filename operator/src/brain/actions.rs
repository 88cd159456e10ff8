//! What the brain asks the world to do.

use std::time::Duration;

use feedroll_crds::FeedRolloutStatus;
use serde::{Deserialize, Serialize};

/// The result of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The new status (write it if it differs from the old one).
    pub status: FeedRolloutStatus,
    /// Things to do, in order. The status also holds the desired state (weight, revisions), so a
    /// level-triggered reconciler can ignore the traffic actions and converge on the status.
    pub actions: Vec<Action>,
    /// Call [`crate::brain::decide`] again after this long at the latest (`None`: only when
    /// something changes, the phase is at rest).
    pub requeue_after: Option<Duration>,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Make sure canary pods (or the in-app canary profile) at `revision` exist.
    DeployCanary {
        /// Revision to run.
        revision: String,
    },
    /// Send `weight` percent of traffic to the canary (replica ratio, HTTPRoute weights or
    /// in-app shares; the e2e driver moves its traffic generator).
    SetWeight {
        /// Percent, 0–100.
        weight: i32,
    },
    /// Move the stable workload (or stable profile) to `revision`: promotion, or the first
    /// deployment of a FeedRollout.
    PromoteStable {
        /// Revision to run on stable.
        revision: String,
    },
    /// Remove the canary pods (after promotion, rollback or abort).
    ScaleDownCanary,
    /// Record a Kubernetes Event on the FeedRollout.
    Event {
        /// Normal or Warning.
        #[serde(rename = "type")]
        type_: EventType,
        /// Distinct reason per decision.
        reason: EventReason,
        /// Details (which check, which value).
        message: String,
    },
}

/// Kubernetes Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something needs attention.
    Warning,
}

/// Reasons of the Events the brain asks for, one per kind of decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A command did not apply in the current phase.
    CommandIgnored,
    /// The spec cannot be acted on.
    InvalidSpec,
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
    /// The reason string of the Kubernetes Event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::RolloutStarted => "RolloutStarted",
            EventReason::StepAdvanced => "StepAdvanced",
            EventReason::WeightChanged => "WeightChanged",
            EventReason::AnalysisPassed => "AnalysisPassed",
            EventReason::AnalysisFailed => "AnalysisFailed",
            EventReason::Held => "Held",
            EventReason::PausedForHuman => "PausedForHuman",
            EventReason::Resumed => "Resumed",
            EventReason::Promoting => "Promoting",
            EventReason::Promoted => "Promoted",
            EventReason::RolledBack => "RolledBack",
            EventReason::Aborted => "Aborted",
            EventReason::Retried => "Retried",
            EventReason::Reverted => "Reverted",
            EventReason::CommandIgnored => "CommandIgnored",
            EventReason::InvalidSpec => "InvalidSpec",
            EventReason::CanaryNotReady => "CanaryNotReady",
            EventReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            EventReason::WeightSkew => "WeightSkew",
            EventReason::PrometheusCredentialsInvalid => "PrometheusCredentialsInvalid",
            EventReason::PrometheusAuthFailed => "PrometheusAuthFailed",
            EventReason::PrometheusUnreachable => "PrometheusUnreachable",
            EventReason::ReplayRegression => "ReplayRegression",
            EventReason::ReplayPassed => "ReplayPassed",
        }
    }
}
