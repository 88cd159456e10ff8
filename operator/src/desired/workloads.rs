//! The stable and canary Deployments, and how the replicas are split between them.

use std::collections::BTreeMap;

use feedroll_crds::{ENV_ROLLOUT, ENV_TRACK, FeedRolloutStatus, Phase, TrafficMode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EnvVar, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::{
    ANNOTATION_REVISION, ANNOTATION_SOURCE, ENV_PROFILE, LABEL_REVISION, LABEL_ROLLOUT,
    LABEL_TRACK, MANAGED_BY, Names, PROFILE_DIR, PROFILE_VOLUME, Source, Track,
};

/// Replicas of each track.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Stable pods.
    pub stable: i32,
    /// Canary pods.
    pub canary: i32,
}

/// Splits `total` (`spec.replicas`, which an HPA moves through the `scale` subresource) between
/// the tracks:
/// - no canary (weight 0, in-app mode, first deployment): everything on stable;
/// - `Promoting` after a canary: stable at `total` (rolling to the new revision) while the
///   canary keeps serving at `total` until stable is ready — users never lose serving pods;
/// - otherwise canary = ⌈total × weight / 100⌉, at least 1 while weight > 0, and stable gives up
///   only as many pods as the canary has *ready* (stable capacity is kept until the canary can
///   serve), so the sum never exceeds `total` once the canary is up: an HPA raising
///   `spec.replicas` is split by weight instead of over-scaling stable.
pub fn split(
    total: i32,
    status: &FeedRolloutStatus,
    mode: &TrafficMode,
    canary_ready: i32,
) -> Split {
    let total = total.max(0);
    let weight = status.weight.clamp(0, 100);
    if !mode.uses_canary_pods() || weight == 0 {
        return Split {
            stable: total,
            canary: 0,
        };
    }
    let canary = crate::brain::canary_replicas(total, weight);
    if status.phase == Some(Phase::Promoting) {
        return Split {
            stable: total,
            canary,
        };
    }
    let given_up = canary.min(canary_ready.max(0));
    Split {
        stable: (total - given_up).max(0),
        canary,
    }
}

/// Shared inputs of both Deployments.
pub(crate) struct Ctx<'a> {
    pub names: &'a Names,
    pub owner: &'a OwnerReference,
    pub selector: &'a LabelSelector,
    pub mode: &'a TrafficMode,
}

/// Labels of every object the operator creates for a rollout.
pub(crate) fn object_labels(names: &Names, track: Option<Track>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        (LABEL_ROLLOUT.to_owned(), names.rollout.clone()),
    ]);
    if let Some(t) = track {
        labels.insert(LABEL_TRACK.to_owned(), t.as_str().to_owned());
    }
    labels
}

/// The Deployment of `track` running `source` (revision `revision`) with `replicas` pods:
/// the template's labels plus rollout and track (and revision on canary pods), `FEED_ROLLOUT`
/// and `FEED_TRACK` (and `FEED_PROFILE` with the profile ConfigMap mounted when `mount_profile`)
/// in every container, the feed-server's port named `http` ([`super::ports`]), owned by the
/// FeedRollout.
pub(crate) fn deployment(
    ctx: &Ctx<'_>,
    track: Track,
    source: &Source,
    revision: &str,
    replicas: i32,
    mount_profile: bool,
) -> Deployment {
    let names = ctx.names;
    let mut selector = ctx.selector.clone();
    let mut match_labels = selector.match_labels.take().unwrap_or_default();
    match_labels.insert(LABEL_ROLLOUT.to_owned(), names.rollout.clone());
    match_labels.insert(LABEL_TRACK.to_owned(), track.as_str().to_owned());
    selector.match_labels = Some(match_labels);

    let mut template: PodTemplateSpec = source.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(LABEL_ROLLOUT.to_owned(), names.rollout.clone());
    labels.insert(LABEL_TRACK.to_owned(), track.as_str().to_owned());
    if track == Track::Canary {
        labels.insert(LABEL_REVISION.to_owned(), revision.to_owned());
    }
    let profile_file = format!("{PROFILE_DIR}/{}.yaml", profile_key_track(ctx.mode, track));
    if let Some(pod) = template.spec.as_mut() {
        let mut env = vec![
            env_var(ENV_ROLLOUT, &names.rollout),
            env_var(ENV_TRACK, track.as_str()),
        ];
        if mount_profile {
            env.push(env_var(ENV_PROFILE, &profile_file));
        }
        for c in &mut pod.containers {
            let vars = c.env.get_or_insert_with(Vec::new);
            vars.retain(|v| !env.iter().any(|e| e.name == v.name));
            vars.extend(env.iter().cloned());
            if mount_profile {
                let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
                mounts.retain(|m| m.name != PROFILE_VOLUME);
                mounts.push(VolumeMount {
                    name: PROFILE_VOLUME.to_owned(),
                    mount_path: PROFILE_DIR.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            }
        }
        super::ports::ensure_http_port(pod);
        if mount_profile {
            let volumes = pod.volumes.get_or_insert_with(Vec::new);
            volumes.retain(|v| v.name != PROFILE_VOLUME);
            volumes.push(Volume {
                name: PROFILE_VOLUME.to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names.config_map(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
    }

    Deployment {
        metadata: ObjectMeta {
            name: Some(names.deployment(track)),
            namespace: Some(names.namespace.clone()),
            labels: Some(object_labels(names, Some(track))),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_REVISION.to_owned(), revision.to_owned()),
                (ANNOTATION_SOURCE.to_owned(), source.to_annotation()),
            ])),
            owner_references: Some(vec![ctx.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector,
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Which profile file a track's pods read: in-app rollouts have only stable pods, reading the
/// experiment in `stable.yaml`.
fn profile_key_track(mode: &TrafficMode, track: Track) -> &'static str {
    match mode {
        TrafficMode::InApp(_) => Track::Stable.as_str(),
        _ => track.as_str(),
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedroll_crds::InApp;

    fn status(phase: Phase, weight: i32) -> FeedRolloutStatus {
        FeedRolloutStatus {
            phase: Some(phase),
            weight,
            stable_revision: Some("r1".into()),
            canary_revision: Some("r2".into()),
            ..Default::default()
        }
    }

    fn s(stable: i32, canary: i32) -> Split {
        Split { stable, canary }
    }

    #[test]
    fn weights_map_to_replicas_with_at_least_one_canary_and_stable_kept_until_ready() {
        let rr = TrafficMode::ReplicaRatio;
        let p = Phase::Progressing;
        assert_eq!(split(10, &status(p, 0), &rr, 0), s(10, 0));
        // 10% of 10 = 1 canary; stable keeps its 10 until the canary pod is ready.
        assert_eq!(split(10, &status(p, 10), &rr, 0), s(10, 1));
        assert_eq!(split(10, &status(p, 10), &rr, 1), s(9, 1));
        // At least one canary pod, rounded up.
        assert_eq!(split(3, &status(p, 10), &rr, 1), s(2, 1));
        assert_eq!(split(8, &status(p, 25), &rr, 2), s(6, 2));
        assert_eq!(split(8, &status(p, 30), &rr, 3), s(5, 3));
        assert_eq!(split(1, &status(p, 50), &rr, 1), s(0, 1));
        assert_eq!(split(0, &status(p, 50), &rr, 0), s(0, 1));
        assert_eq!(split(4, &status(p, 100), &rr, 4), s(0, 4));
        // Partly ready canary: stable gives up only what the canary can serve.
        assert_eq!(split(10, &status(p, 50), &rr, 2), s(8, 5));
        // An HPA raising spec.replicas mid-canary: the sum stays at the new total.
        assert_eq!(split(20, &status(p, 25), &rr, 5), s(15, 5));
        assert_eq!(split(20, &status(Phase::Paused, 25), &rr, 5), s(15, 5));
    }

    #[test]
    fn promotion_keeps_both_tracks_and_rest_phases_have_no_canary() {
        let rr = TrafficMode::ReplicaRatio;
        assert_eq!(split(6, &status(Phase::Promoting, 100), &rr, 6), s(6, 6));
        assert_eq!(split(6, &status(Phase::Succeeded, 0), &rr, 6), s(6, 0));
        assert_eq!(split(6, &status(Phase::RolledBack, 0), &rr, 3), s(6, 0));
        assert_eq!(split(6, &status(Phase::Aborted, 0), &rr, 3), s(6, 0));
        // First deployment: weight 0, everything on stable.
        assert_eq!(split(6, &status(Phase::Promoting, 0), &rr, 0), s(6, 0));
        // In-app: never canary pods.
        let inapp = TrafficMode::InApp(InApp::default());
        assert_eq!(
            split(6, &status(Phase::Progressing, 50), &inapp, 0),
            s(6, 0)
        );
        // Negative input never leaks out.
        assert_eq!(split(-3, &status(Phase::Progressing, 0), &rr, -1), s(0, 0));
    }
}
