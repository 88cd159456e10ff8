//! Stage `build` (pure): the objects the decided status asks for ([`crate::desired`]), what the
//! live stable and canary Deployments tell them, and which live Deployments drifted from them.

use feedroll_crds::{FeedRollout, FeedRolloutStatus};
use k8s_openapi::api::apps::v1::Deployment;

use super::observe::Seen;
use crate::desired::{self, Desired, DesiredError, World};
use crate::observe;

/// Why the objects cannot be built: the spec is invalid (a condition and an Event, not a
/// reconcile error).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The FeedRollout's objects cannot be built from its spec.
    #[error(transparent)]
    InvalidSpec(#[from] DesiredError),
}

/// What the build stage hands on.
pub struct Built {
    /// The objects to apply.
    pub desired: Desired,
    /// Names of the desired Deployments that are missing or drifted from the live ones (other
    /// replicas, other revision): re-applied now, not when the apply cache expires.
    pub drifted: Vec<String>,
}

/// What the live Deployments tell the desired objects, for the decided `status`.
pub fn world(status: &FeedRolloutStatus, seen: &Seen) -> World {
    World {
        recorded_stable: seen.stable.as_deref().and_then(observe::recorded_source),
        canary_ready: observe::canary_ready(
            seen.canary.as_deref(),
            status.canary_revision.as_deref(),
        ),
    }
}

/// The objects `fr` with the decided `status` asks for in `world`.
pub fn build(
    fr: &FeedRollout,
    status: &FeedRolloutStatus,
    world: &World,
    seen: &Seen,
) -> Result<Built, BuildError> {
    let mut decided = fr.clone();
    decided.status = Some(status.clone());
    let desired = desired::desired(&decided, world)?;
    let drifted = [
        (&desired.stable, seen.stable.as_deref()),
        (&desired.canary, seen.canary.as_deref()),
    ]
    .into_iter()
    .filter_map(|(want, live)| want.as_ref().filter(|w| drifted(w, live)))
    .filter_map(|want| want.metadata.name.clone())
    .collect();
    Ok(Built { desired, drifted })
}

/// Whether the live Deployment differs from the desired one where it matters (missing, other
/// replicas, other revision).
pub fn drifted(want: &Deployment, live: Option<&Deployment>) -> bool {
    let Some(live) = live else { return true };
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    replicas(want) != replicas(live) || observe::revision_of(want) != observe::revision_of(live)
}
