//! Revisions: what decides that a new rollout starts.

use feedroll_crds::FeedRolloutSpec;

/// Hash of the pod template and the ranking profile (16 hex digits). Anything else in the spec
/// (replicas, strategy, analysis) changes without starting a new rollout.
pub fn revision(spec: &FeedRolloutSpec) -> String {
    // serde_json serializes struct fields in declaration order and maps sorted (BTreeMap), so
    // the text is canonical for equal values.
    let template = serde_json::to_string(&spec.template).unwrap_or_default();
    let profile = serde_json::to_string(&spec.ranking_profile).unwrap_or_default();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(template.as_bytes());
    h.update(&[0]);
    h.update(profile.as_bytes());
    format!("{:016x}", h.digest())
}
