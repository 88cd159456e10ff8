//! The objects a FeedRollout should have in the cluster, as pure functions of the FeedRollout,
//! its (new) status and what little is read back from the world (the recorded stable source and
//! the canary's ready pods).
//!
//! - [`revision`]: the [`Source`] of a revision (pod template + ranking profile) and which source
//!   the stable workload runs.
//! - [`workloads`]: the stable and canary Deployments and the replica split by weight.
//! - [`services`]: one Service for all pods, one per track.
//! - [`ports`]: the feed-server's port named `http` in every pod (what Prometheus scrapes).
//! - [`configmap`]: the ranking profiles (and in-app shares) as feed-server profile files.
//! - [`traffic`]: the Gateway API HTTPRoute with exact backend weights.
//!
//! Nothing here does I/O; the reconciler applies the result with server-side apply.

pub mod configmap;
pub mod names;
pub mod ports;
pub mod revision;
pub mod services;
pub mod traffic;
pub mod workloads;

use feedroll_crds::{FeedRollout, Phase, TrafficMode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Resource;

pub use names::Names;
pub use revision::{Source, stable_source};
pub use workloads::{Split, split};

/// Label on every object and pod of a FeedRollout: its name.
pub const LABEL_ROLLOUT: &str = "feedroll.dev/rollout";
/// Label on pods and per-track objects: `stable` or `canary`.
pub const LABEL_TRACK: &str = "feedroll.dev/track";
/// Label on canary pods: the revision they run (so stale canary pods are not judged).
pub const LABEL_REVISION: &str = "feedroll.dev/revision";
/// `app.kubernetes.io/managed-by` value on every object the operator creates.
pub const MANAGED_BY: &str = "feedroll-operator";
/// Annotation on the Deployments: the revision their pods run.
pub const ANNOTATION_REVISION: &str = "feedroll.dev/revision";
/// Annotation on the Deployments: the [`Source`] (template and profile) of that revision, so
/// the stable workload can be re-applied unchanged while the spec already holds the canary.
pub const ANNOTATION_SOURCE: &str = "feedroll.dev/source";
/// Environment variable pointing feed-server at its profile file.
pub const ENV_PROFILE: &str = "FEED_PROFILE";
/// Where the ConfigMap with the profile files is mounted in feed-server containers.
pub const PROFILE_DIR: &str = "/etc/feedroll/profile";
/// Name of the volume holding the profile files.
pub const PROFILE_VOLUME: &str = "feedroll-profile";

/// What is read back from the world to build the desired objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    /// The source recorded on the live stable Deployment (its revision annotation and source).
    pub recorded_stable: Option<(String, Source)>,
    /// Ready pods of the canary Deployment at the canary revision.
    pub canary_ready: i32,
}

/// Everything the reconciler applies for one FeedRollout. `None` leaves that object alone
/// (e.g. the stable source is unknown, so the stable Deployment is not touched).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// The stable Deployment.
    pub stable: Option<Deployment>,
    /// The canary Deployment (0 replicas when no canary runs).
    pub canary: Option<Deployment>,
    /// Services: all pods, stable, canary.
    pub services: Vec<Service>,
    /// The ranking profiles (and in-app shares).
    pub config_map: Option<ConfigMap>,
    /// The HTTPRoute (Gateway API mode only), as JSON (k8s-openapi has no Gateway API types).
    pub http_route: Option<serde_json::Value>,
    /// The replica split applied.
    pub split: Split,
}

/// Errors building the desired objects: the FeedRollout cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The spec does not resolve (selector, strategy).
    #[error(transparent)]
    Spec(#[from] feedroll_crds::ApiError),
    /// The object has no name, namespace or uid (not read from the API server).
    #[error("the FeedRollout has no {0}")]
    Metadata(&'static str),
    /// A profile file cannot be written.
    #[error("cannot write the ranking profile file: {0}")]
    Profile(String),
}

/// The desired objects of `fr` at `fr.status` (the status the brain just decided).
/// In phase `Failed` (spec unusable) nothing is desired: traffic is left as it is.
pub fn desired(fr: &FeedRollout, world: &World) -> Result<Desired, DesiredError> {
    let status = fr.status.clone().unwrap_or_default();
    if status.phase == Some(Phase::Failed) {
        return Ok(Desired::default());
    }
    let spec = &fr.spec;
    let names = Names::of(fr)?;
    let selector = spec.effective_selector()?;
    let mode = spec.resolved_strategy()?.traffic;
    let canary_source = Source::of(spec);
    let canary_revision = crate::brain::revision(spec);
    let stable = stable_source(spec, &status, world.recorded_stable.as_ref());
    let split = split(spec.replicas, &status, &mode, world.canary_ready);
    let mut owner = fr
        .controller_owner_ref(&())
        .ok_or(DesiredError::Metadata("uid"))?;
    // Foreground deletion of the FeedRollout waits for its objects.
    owner.block_owner_deletion = Some(true);
    let ctx = workloads::Ctx {
        names: &names,
        owner: &owner,
        selector: &selector,
        mode: &mode,
    };
    let stable_mount = stable
        .as_ref()
        .is_some_and(|(_, src)| configmap::mounts_profile(&mode, Track::Stable, src));
    let canary_mount = configmap::mounts_profile(&mode, Track::Canary, &canary_source);
    let stable_deployment = stable.as_ref().map(|(rev, src)| {
        workloads::deployment(&ctx, Track::Stable, src, rev, split.stable, stable_mount)
    });
    let canary_deployment = Some(workloads::deployment(
        &ctx,
        Track::Canary,
        &canary_source,
        &canary_revision,
        split.canary,
        canary_mount,
    ));
    let config_map = match &stable {
        Some((_, src)) => {
            configmap::config_map(&names, &owner, &mode, src, &canary_source, status.weight)?
        }
        None => None,
    };
    let services = services::services(&names, &owner, &selector, &spec.template);
    let http_route = match &mode {
        TrafficMode::GatewayApi(g) => Some(traffic::http_route(
            &names,
            &owner,
            g,
            traffic::route_weight(status.weight, world.canary_ready),
        )),
        _ => None,
    };
    Ok(Desired {
        stable: stable_deployment,
        canary: canary_deployment,
        services,
        config_map,
        http_route,
        split,
    })
}

/// The two tracks of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// The current revision.
    Stable,
    /// The revision being rolled out.
    Canary,
}

impl Track {
    /// `stable` or `canary` (the `track` label of pods and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => feedroll_crds::TRACK_STABLE,
            Track::Canary => feedroll_crds::TRACK_CANARY,
        }
    }
}
