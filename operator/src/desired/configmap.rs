//! The ConfigMap with the feed-server profile files: `stable.yaml` and `canary.yaml` (pod modes,
//! one profile each) or, in-app, `stable.yaml` holding the experiment that splits users between
//! the stable and the canary profile with the current weight as the canary's share.

use std::collections::BTreeMap;

use feed_profile::{Experiment, Variant};
use feedroll_crds::TrafficMode;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::workloads::object_labels;
use super::{DesiredError, Names, Source, Track};

/// Whether the pods of `track` read a profile file from the ConfigMap: always in-app (stable
/// pods serve both variants), else when that track's source has a ranking profile.
pub fn mounts_profile(mode: &TrafficMode, track: Track, source: &Source) -> bool {
    match mode {
        TrafficMode::InApp(_) => track == Track::Stable,
        _ => source.ranking_profile.is_some(),
    }
}

/// The profile files, or `None` when no pod reads one.
pub fn config_map(
    names: &Names,
    owner: &OwnerReference,
    mode: &TrafficMode,
    stable: &Source,
    canary: &Source,
    weight: i32,
) -> Result<Option<ConfigMap>, DesiredError> {
    let mut data = BTreeMap::new();
    match mode {
        TrafficMode::InApp(in_app) => {
            let experiment = in_app_experiment(
                in_app.salt.as_deref().unwrap_or(&names.rollout),
                in_app.stable_variant(),
                in_app.canary_variant(),
                stable,
                canary,
                weight,
            );
            data.insert(key(Track::Stable), to_yaml(&experiment)?);
        }
        _ => {
            for (track, source) in [(Track::Stable, stable), (Track::Canary, canary)] {
                if let Some(p) = &source.ranking_profile {
                    data.insert(key(track), to_yaml(&Experiment::single(p.clone()))?);
                }
            }
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    Ok(Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(names.config_map()),
            namespace: Some(names.namespace.clone()),
            labels: Some(object_labels(names, None)),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }))
}

/// The file name of a track's profile: `stable.yaml`, `canary.yaml`.
pub fn key(track: Track) -> String {
    format!("{}.yaml", track.as_str())
}

/// The in-app experiment: the stable variant with share `(100 - weight) / 100`, the canary with
/// `weight / 100` (only the stable variant at weight 0).
pub fn in_app_experiment(
    salt: &str,
    stable_variant: &str,
    canary_variant: &str,
    stable: &Source,
    canary: &Source,
    weight: i32,
) -> Experiment {
    let weight = weight.clamp(0, 100);
    let mut variants = vec![Variant {
        name: stable_variant.to_owned(),
        share: f64::from(100 - weight) / 100.0,
        profile: stable.ranking_profile.clone().unwrap_or_default(),
    }];
    if weight > 0 {
        variants.push(Variant {
            name: canary_variant.to_owned(),
            share: f64::from(weight) / 100.0,
            profile: canary.ranking_profile.clone().unwrap_or_default(),
        });
    }
    Experiment {
        salt: salt.to_owned(),
        variants,
    }
}

fn to_yaml(experiment: &Experiment) -> Result<String, DesiredError> {
    experiment
        .validate()
        .map_err(|e| DesiredError::Profile(e.to_string()))?;
    serde_yaml::to_string(experiment).map_err(|e| DesiredError::Profile(e.to_string()))
}
