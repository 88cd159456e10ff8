//! Revisions and their sources: what the stable and the canary pods run.

use feed_profile::RankingProfile;
use feedroll_crds::{FeedRolloutSpec, FeedRolloutStatus, Phase};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};

/// What a revision is made of: the pod template and the ranking profile, exactly as in the spec
/// (the operator's injections are added when the Deployment is built).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Pod template.
    pub template: PodTemplateSpec,
    /// Ranking profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking_profile: Option<RankingProfile>,
}

impl Source {
    /// The source the spec asks for.
    pub fn of(spec: &FeedRolloutSpec) -> Self {
        Self {
            template: spec.template.clone(),
            ranking_profile: spec.ranking_profile.clone(),
        }
    }

    /// Its revision, computed as [`crate::brain::revision`] computes the spec's.
    pub fn revision(&self) -> String {
        crate::brain::revision(&FeedRolloutSpec {
            replicas: 0,
            selector: None,
            template: self.template.clone(),
            ranking_profile: self.ranking_profile.clone(),
            paused: false,
            strategy: None,
            analysis: None,
            progress_deadline: None,
            on_progress_deadline: None,
        })
    }

    /// JSON for the [`super::ANNOTATION_SOURCE`] annotation.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the [`super::ANNOTATION_SOURCE`] annotation.
    pub fn from_annotation(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// The revision and source the stable workload runs, given the new status:
/// - the spec's, when stable is (or is moving to) the spec's revision: first deployment,
///   `Promoting`, or `stableRevision` equal to the spec's;
/// - otherwise the one recorded on the live stable Deployment, if it is `stableRevision`;
/// - otherwise unknown (`None`): the stable workload is left as it is.
pub fn stable_source(
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    recorded: Option<&(String, Source)>,
) -> Option<(String, Source)> {
    let rev = crate::brain::revision(spec);
    let to_spec = status.stable_revision.is_none()
        || status.stable_revision.as_deref() == Some(rev.as_str())
        || (status.phase == Some(Phase::Promoting)
            && status.canary_revision.as_deref() == Some(rev.as_str()));
    if to_spec {
        return Some((rev, Source::of(spec)));
    }
    recorded
        .filter(|(r, _)| status.stable_revision.as_deref() == Some(r.as_str()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> FeedRolloutSpec {
        serde_json::from_value(serde_json::json!({
            "template": {"metadata": {"labels": {"app": "feed"}},
                         "spec": {"containers": [{"name": "feed", "image": image}]}}
        }))
        .unwrap()
    }

    #[test]
    fn source_revision_is_the_brains_and_survives_the_annotation() {
        let s = spec("feed:2");
        let src = Source::of(&s);
        assert_eq!(src.revision(), crate::brain::revision(&s));
        let back = Source::from_annotation(&src.to_annotation()).unwrap();
        assert_eq!(back.revision(), src.revision());
        assert!(Source::from_annotation("{not json").is_none());
    }

    #[test]
    fn stable_runs_the_spec_only_when_it_is_or_becomes_the_stable_revision() {
        let old = spec("feed:1");
        let new = spec("feed:2");
        let (r1, r2) = (crate::brain::revision(&old), crate::brain::revision(&new));
        let recorded = (r1.clone(), Source::of(&old));
        let mut st = FeedRolloutStatus {
            phase: Some(Phase::Progressing),
            stable_revision: Some(r1.clone()),
            canary_revision: Some(r2.clone()),
            ..Default::default()
        };
        assert_eq!(
            stable_source(&new, &st, Some(&recorded)),
            Some(recorded.clone())
        );
        // A record of another revision is not trusted: stable is left alone.
        let stale = ("0000".to_owned(), Source::of(&old));
        assert_eq!(stable_source(&new, &st, Some(&stale)), None);
        assert_eq!(stable_source(&new, &st, None), None);
        st.phase = Some(Phase::Promoting);
        assert_eq!(
            stable_source(&new, &st, Some(&recorded)),
            Some((r2.clone(), Source::of(&new)))
        );
        st.phase = Some(Phase::RolledBack);
        assert_eq!(
            stable_source(&new, &st, Some(&recorded)),
            Some(recorded.clone())
        );
        st.stable_revision = None;
        assert_eq!(stable_source(&new, &st, None), Some((r2, Source::of(&new))));
    }
}
