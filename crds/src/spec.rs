//! The FeedRollout spec: workload, ranking profile and rollout strategy.

use feed_profile::RankingProfile;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::duration::DurationString;
use crate::status::FeedRolloutStatus;

/// A feed-server workload rolled out as a canary, in steps, under Prometheus analysis.
///
/// Only `template` is required: `replicas` defaults to 1, the strategy to the roadmap plan
/// (10% for 15m, 25% for 30m, 50% for 30m, then 100%) over replica-ratio traffic, and the
/// analysis to the roadmap policy table (crds/README.md lists both).
// Several `printcolumn(type_ = "string", ...)` entries are distinct columns, not duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "feedroll.dev",
    version = "v1alpha1",
    kind = "FeedRollout",
    plural = "feedrollouts",
    singular = "feedrollout",
    shortname = "fr",
    category = "feedroll",
    namespaced,
    status = "FeedRolloutStatus",
    derive = "PartialEq",
    doc = "A feed-server workload rolled out as a canary in steps (10% -> 25% -> 50% -> 100% by default), each step judged by Prometheus checks.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Rollout phase"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.weight",
        description = "Percent of traffic on the canary"
    ),
    printcolumn(
        name = "Actual",
        type_ = "integer",
        json_path = ".status.actualWeight",
        description = "Percent of traffic the canary really gets (ready pods, route or variant shares)"
    ),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStepIndex",
        description = "Index of the current step"
    ),
    printcolumn(
        name = "Canary",
        type_ = "string",
        json_path = ".status.canaryRevision",
        description = "Canary revision"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.analysis) || !has(self.analysis.checks) || (has(self.strategy) && has(self.strategy.traffic) && has(self.strategy.traffic.inApp)) || self.analysis.checks.all(c, !has(c.preset) || !(c.preset in ['completionRate', 'engagementRate']))",
        "message": "presets completionRate and engagementRate need strategy.traffic.inApp: with pod traffic an event is counted by the pod that receives it",
        "messageExpression": "'check ' + self.analysis.checks.filter(c, has(c.preset) && c.preset in ['completionRate', 'engagementRate'])[0].name + ': preset ' + self.analysis.checks.filter(c, has(c.preset) && c.preset in ['completionRate', 'engagementRate'])[0].preset + ' needs strategy.traffic.inApp: with pod traffic an event is counted by the pod that receives it, not by the profile that served the feed'",
        "fieldPath": ".analysis.checks"
    }
]))]
pub struct FeedRolloutSpec {
    /// Desired number of feed-server pods in total (stable + canary). Default 1. Exposed through
    /// the `scale` subresource, so a HorizontalPodAutoscaler can target the FeedRollout.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,

    /// Label selector of the pods; defaults to the template's labels. Must match them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Pod template of the feed-server. A change here starts a new rollout with new (canary) pods.
    pub template: PodTemplateSpec,

    /// Ranking profile served by the pods (the feed-server profile format). A change here alone
    /// starts a new rollout; with `strategy.traffic.inApp` it is rolled out without new pods, the
    /// feed-server splitting users between the stable and the canary profile by a stable hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking_profile: Option<RankingProfile>,

    /// Pause the rollout (level-triggered, works from Git): while true, no step advances.
    /// Roll-back-tier checks and crash-loop detection still act.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Steps and traffic mode. Omitted: the roadmap plan over replica-ratio traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,

    /// Prometheus checks and when they run. Omitted: the roadmap policy table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,

    /// How long a step may wait for its canary pods to become ready (default `10m`). The clock
    /// starts when a `setWeight` step asks for canary pods and stops when they are ready; past
    /// it, `onProgressDeadline` acts. Promotions and first deployments wait for the stable pods
    /// under the same clock and are flagged past it (nothing to roll back to). Image pull
    /// errors, bad container configs and unschedulable pods are reported at once (Event
    /// `CanaryNotReady`), whatever the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<DurationString>,

    /// What happens when the progress deadline passes: `rollback` (default) sends all traffic
    /// back to stable; `pause` waits for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_progress_deadline: Option<DeadlinePolicy>,
}

/// What a missed progress deadline does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeadlinePolicy {
    /// Roll the canary back (weight 0, canary pods removed).
    #[default]
    Rollback,
    /// Pause for a human, the canary left as it is.
    Pause,
}

fn default_replicas() -> i32 {
    1
}

/// How the canary moves: the list of steps and how traffic is split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.replayGate) || (has(self.traffic) && has(self.traffic.inApp))", "message": "strategy.replayGate needs strategy.traffic.inApp: the gate replays ranking profiles, which only an in-app rollout changes without new pods", "fieldPath": ".replayGate"}
]))]
pub struct Strategy {
    /// Steps run in order; after the last one the canary is promoted. Omitted: the roadmap plan
    /// `[setWeight 10, pause 15m, setWeight 25, pause 30m, setWeight 50, pause 30m, setWeight 100]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.size() > 0", "message": "strategy.steps needs at least one step (or omit it for the default plan)"},
        {"rule": "self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()", "message": "setWeight values must never decrease from one step to the next"}
    ]))]
    pub steps: Option<Vec<Step>>,

    /// How traffic is split between stable and canary. Omitted: `replicaRatio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,

    /// In-app rollouts only: before the first step, replay the logged exposures of `window`
    /// with both profiles on a stable pod and roll back, before any user sees the canary, when
    /// GAUC(finish) or NDCG@10(watch) drops by more than `maxDrop` with confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_gate: Option<crate::replay_gate::ReplayGate>,
}

/// One step: exactly one of `setWeight` or `pause`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.setWeight) != has(self.pause)", "message": "each step is exactly one of setWeight or pause"}
]))]
pub struct Step {
    /// Percent of traffic sent to the canary, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait: for `duration`, until the checks are confident (`untilConfident`, at most `max`),
    /// or without either until a human promotes or resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
}

impl Step {
    /// A `setWeight` step.
    pub fn set_weight(weight: i32) -> Self {
        Self {
            set_weight: Some(weight),
            pause: None,
        }
    }

    /// A `pause` step; `None` waits for a human.
    pub fn pause(duration: Option<&str>) -> Self {
        Self {
            set_weight: None,
            pause: Some(PauseStep {
                duration: duration.map(DurationString::from),
                ..PauseStep::default()
            }),
        }
    }
}

/// A pause between weight changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.untilConfident) && self.untilConfident) || (has(self.max) && !has(self.duration))", "message": "pause.untilConfident needs max (the longest the step waits for evidence) and no duration"},
    {"rule": "!has(self.max) || (has(self.untilConfident) && self.untilConfident)", "message": "pause.max applies only with untilConfident: true"}
]))]
pub struct PauseStep {
    /// How long to wait (e.g. `15m`); omitted, the rollout waits for a human to promote or resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationString>,
    /// End the step as soon as every non-advisory check has a confident `pass` (sequential
    /// checks judge the counts of the step so far). Needs `max` and at least one sequential
    /// check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_confident: Option<bool>,
    /// With `untilConfident`: the longest the step waits for confident passes (e.g. `2h`); then
    /// the checks still undecided follow their hold policy (`onNoData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<DurationString>,
}

/// Traffic mode: exactly one of the fields (none set means `replicaRatio`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.replicaRatio) ? 1 : 0) + (has(self.gatewayAPI) ? 1 : 0) + (has(self.inApp) ? 1 : 0) <= 1", "message": "choose one traffic mode: replicaRatio, gatewayAPI or inApp"}
]))]
pub struct Traffic {
    /// Stable and canary pods behind one Service, traffic split by replica counts (no mesh needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_ratio: Option<ReplicaRatio>,
    /// The operator owns an HTTPRoute and sets exact backend weights.
    #[serde(
        default,
        rename = "gatewayAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApi>,
    /// Ranking-profile rollouts without new pods: feed-server splits users between the stable and
    /// the canary profile by a stable hash; metrics carry the `variant` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<InApp>,
}

/// Replica-ratio traffic (no options yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRatio {}

/// Gateway API traffic: an HTTPRoute owned by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApi {
    /// Gateways (or other parents) the HTTPRoute attaches to.
    #[schemars(length(min = 1, max = 16))]
    pub parent_refs: Vec<ParentRef>,
    /// Hostnames the route serves; empty matches the parent's hostnames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<String>,
    /// Name of the HTTPRoute; default: the FeedRollout's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<String>,
    /// Service port the route sends to (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// A Gateway API `parentRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the parent (usually a Gateway).
    pub name: String,
    /// Namespace of the parent; default: the FeedRollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Listener name on the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// API group of the parent (default `gateway.networking.k8s.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent (default `Gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// In-app traffic: the feed-server assigns users to the stable or canary ranking profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InApp {
    /// Salt of the user assignment hash (default: the FeedRollout's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Variant name of the stable profile (default `stable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_variant: Option<String>,
    /// Variant name of the canary profile (default `canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_variant: Option<String>,
}

/// The traffic mode, resolved from [`Traffic`].
#[derive(Clone, Debug, PartialEq)]
pub enum TrafficMode {
    /// Split by replica counts.
    ReplicaRatio,
    /// Exact weights on an HTTPRoute.
    GatewayApi(GatewayApi),
    /// In-app split by user hash between two ranking-profile variants.
    InApp(InApp),
}

impl TrafficMode {
    /// Whether the canary is a set of pods (`false` for in-app: the split is inside feed-server).
    pub fn uses_canary_pods(&self) -> bool {
        !matches!(self, TrafficMode::InApp(_))
    }
}
