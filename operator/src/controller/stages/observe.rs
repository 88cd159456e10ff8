//! Stage `observe`: what the watch caches show of a rollout's world (its two Deployments, its
//! canary pods and, while promoting, its stable pods), as the brain's [`Observations`], and the
//! command annotation. Reads no API: the caches are fed by the Controller's watches.

use std::sync::Arc;

use feedroll_crds::{FeedRollout, FeedRolloutStatus, Phase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::super::caches::{CacheError, Caches};
use super::super::plan::Plan;
use crate::brain::Observations;
use crate::desired::{self, Names, Track};
use crate::observe;

/// Why the world cannot be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A cache has not listed its objects (yet).
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// What the caches hold of one rollout.
pub struct Seen {
    /// The stable Deployment.
    pub stable: Option<Arc<Deployment>>,
    /// The canary Deployment.
    pub canary: Option<Arc<Deployment>>,
    /// The canary track's pods.
    pub canary_pods: Vec<Pod>,
    /// The stable track's pods, read only while promoting (their issues are the promotion's).
    pub stable_pods: Vec<Pod>,
}

impl Seen {
    /// The rollout's Deployments and canary pods, and its stable pods while `promoting`.
    pub fn read(caches: &Caches, names: &Names, promoting: bool) -> Self {
        let pods = |track| -> Vec<Pod> {
            caches
                .pods(&names.namespace, &names.rollout, track)
                .into_iter()
                .map(Arc::unwrap_or_clone)
                .collect()
        };
        let deployment = |track| caches.deployment(&names.namespace, &names.deployment(track));
        Self {
            stable: deployment(Track::Stable),
            canary: deployment(Track::Canary),
            canary_pods: pods(Track::Canary),
            stable_pods: if promoting {
                pods(Track::Stable)
            } else {
                Vec::new()
            },
        }
    }
}

/// What the observe stage hands on.
pub struct Observed {
    /// The objects read.
    pub seen: Seen,
    /// The brain's observations (no analysis run yet: [`super::decide`] adds it).
    pub observations: Observations,
    /// A command annotation that is not a command and was not reported before: its value (the
    /// command id) and why it is ignored.
    pub bad_command: Option<(String, String)>,
}

/// Observes `fr`'s world at `now`, given the status before this decision.
pub async fn observe(
    caches: &Caches,
    fr: &FeedRollout,
    plan: &Plan,
    old: &FeedRolloutStatus,
    now: Timestamp,
) -> Result<Observed, ObserveError> {
    caches.ready().await?;
    let seen = Seen::read(caches, &plan.names, old.phase == Some(Phase::Promoting));
    let mut observations = observations(fr, plan, old, &seen, now);
    let bad_command = match observe::command(fr.annotations()) {
        Ok(command) => {
            observations.commands.extend(command);
            None
        }
        Err((id, message)) => {
            (old.last_command_id.as_deref() != Some(id.as_str())).then_some((id, message))
        }
    };
    Ok(Observed {
        seen,
        observations,
        bad_command,
    })
}

/// The observations of the world for the brain, given the status before this decision.
fn observations(
    fr: &FeedRollout,
    plan: &Plan,
    old: &FeedRolloutStatus,
    seen: &Seen,
    now: Timestamp,
) -> Observations {
    let canary_rev = old.canary_revision.as_deref();
    let ready = observe::canary_ready(seen.canary.as_deref(), canary_rev);
    let want = desired::split(fr.spec.replicas, old, &plan.target.traffic, ready).canary;
    let revision = plan.revision.as_str();
    // Readiness is judged at the canary the status knows; crash loops only on pods of the
    // revision being rolled out (pods of an earlier canary never roll a new one back).
    let mut canary =
        observe::canary_health(seen.canary.as_deref(), &seen.canary_pods, canary_rev, want);
    canary.crash_looping =
        observe::canary_health(None, &seen.canary_pods, Some(revision), 0).crash_looping;
    // The pods of the revision being rolled out: the canary's, and during a promotion the
    // stable track's (moving to that revision).
    canary.issues = if old.phase == Some(Phase::Promoting) {
        observe::track_issues(&seen.stable_pods, now)
    } else {
        observe::canary_issues(&seen.canary_pods, canary_rev, now)
    };
    Observations {
        revision: revision.to_owned(),
        generation: fr.metadata.generation,
        analysis: None,
        canary,
        stable_ready_revision: observe::stable_ready_revision(seen.stable.as_deref()),
        commands: Vec::new(),
        replay: None,
    }
}
