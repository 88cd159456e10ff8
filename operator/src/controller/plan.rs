//! The plan of one reconcile: what a FeedRollout's metadata and spec resolve to, computed once
//! ([`Plan::resolve`]) and handed to the stages after it (observe, the analysis target, the
//! status), so a reconcile hashes the revision and resolves the names, the traffic mode and
//! the selector once. (The brain and `desired` still resolve strategy and analysis themselves.)

use std::fmt;

use feedroll_crds::selector::selector_string;
use feedroll_crds::{FeedRollout, FeedRolloutSpec};

use crate::analysis::Target;
use crate::desired::{LABEL_ROLLOUT, Names};

/// The revision a spec asks for: the hash of its pod template and ranking profile (see
/// [`crate::brain::revision`]). Anything else in the spec changes without a new rollout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Revision(String);

impl Revision {
    /// The revision of `spec`.
    pub fn of(spec: &FeedRolloutSpec) -> Self {
        Self(crate::brain::revision(spec))
    }

    /// The 16 hex digits, as in `status.canaryRevision` and the `feedroll.dev/revision` label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a FeedRollout has no plan: it was not read from the API server.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No name or no namespace.
    #[error("the FeedRollout has no name or namespace")]
    Metadata,
}

/// What one reconcile of a FeedRollout works from.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The rollout's name, namespace and the names of its children.
    pub names: Names,
    /// The revision the spec asks for.
    pub revision: Revision,
    /// The analysis target: namespace, rollout and the traffic mode (replica ratio when the
    /// strategy does not resolve).
    pub target: Target,
    /// `status.selector`: the pod selector and the rollout label, serialized; `None` when the
    /// pods have no selector (their objects cannot be built either).
    pub selector: Option<String>,
}

impl Plan {
    /// Resolves `fr` once.
    pub fn resolve(fr: &FeedRollout) -> Result<Self, PlanError> {
        let names = Names::of(fr).map_err(|_| PlanError::Metadata)?;
        let spec = &fr.spec;
        let selector = spec
            .effective_selector()
            .ok()
            .map(|s| format!("{},{LABEL_ROLLOUT}={}", selector_string(&s), names.rollout));
        let target = Target {
            namespace: Some(names.namespace.clone()),
            rollout: names.rollout.clone(),
            traffic: spec.traffic_mode(),
        };
        Ok(Self {
            revision: Revision::of(spec),
            names,
            target,
            selector,
        })
    }
}

#[cfg(test)]
mod tests {
    use feedroll_crds::{FeedRolloutSpec, TrafficMode};

    use super::*;

    fn rollout(namespace: Option<&str>, spec: serde_json::Value) -> FeedRollout {
        let spec: FeedRolloutSpec = serde_json::from_value(spec).expect("a spec");
        let mut fr = FeedRollout::new("feed", spec);
        fr.metadata.namespace = namespace.map(str::to_owned);
        fr
    }

    #[test]
    fn a_plan_names_the_revision_target_and_selector_once() {
        let fr = rollout(
            Some("prod"),
            serde_json::json!({
                "template": {"metadata": {"labels": {"app": "feed"}},
                             "spec": {"containers": [{"name": "feed", "image": "feed:2"}]}},
                "strategy": {"steps": [{"setWeight": 10}],
                             "traffic": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}},
            }),
        );
        let plan = Plan::resolve(&fr).expect("resolves");
        assert_eq!(plan.revision.as_str(), crate::brain::revision(&fr.spec));
        assert_eq!(plan.names.namespace, "prod");
        assert_eq!(plan.target.namespace.as_deref(), Some("prod"));
        assert!(matches!(plan.target.traffic, TrafficMode::GatewayApi(_)));
        assert_eq!(
            plan.selector.as_deref(),
            Some("app=feed,feedroll.dev/rollout=feed")
        );
    }

    #[test]
    fn pods_without_labels_have_no_selector_and_no_namespace_no_plan() {
        let spec = serde_json::json!({
            "template": {"spec": {"containers": [{"name": "feed", "image": "feed:2"}]}},
        });
        let plan = Plan::resolve(&rollout(Some("prod"), spec.clone())).expect("resolves");
        assert_eq!(plan.selector, None);
        assert!(matches!(plan.target.traffic, TrafficMode::ReplicaRatio));
        assert!(matches!(
            Plan::resolve(&rollout(None, spec)),
            Err(PlanError::Metadata)
        ));
    }
}
