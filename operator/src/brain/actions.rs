//! What the brain asks the world to do.

use std::time::Duration;

use feedroll_crds::FeedRolloutStatus;
pub use feedroll_crds::{EventReason, EventType};
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
