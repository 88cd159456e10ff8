//! The FeedRollout status: where the rollout is, why, and the last analysis as evidence.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, EnumString, IntoStaticStr};

use crate::analysis::Tier;

/// Observed state of a FeedRollout. Everything the operator needs to resume after a restart or a
/// leader change lives here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedRolloutStatus {
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the rollout is (see [`Phase`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Human-readable explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Index of the current step in the (resolved) step list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// When the current step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Percent of traffic the canary should receive now (the step's `setWeight`).
    #[serde(default)]
    pub weight: i32,
    /// Percent of traffic the canary really gets: with replica-ratio traffic the share of ready
    /// canary pods among all ready pods (10% of 4 replicas is 25%), with Gateway API the route
    /// weight once a canary pod is ready (0 before), in-app the canary variant's share.
    #[serde(default)]
    pub actual_weight: i32,
    /// Revision (hash of pod template and ranking profile) the stable pods run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Revision being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Total pods (for the `scale` subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Ready pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods of the stable track.
    #[serde(default)]
    pub stable_replicas: i32,
    /// Pods of the canary track.
    #[serde(default)]
    pub canary_replicas: i32,
    /// Label selector of all pods, serialized (for the `scale` subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Standard conditions: `Progressing`, `Healthy`, `Paused`, `AnalysisHealthy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Failure counters and hold timers per check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckState>,
    /// The latest analysis run: the evidence of the last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRun>,
    /// When the last full-interval analysis ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis_at: Option<Time>,
    /// When the last fast-interval (roll-back-tier) analysis ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fast_analysis_at: Option<Time>,
    /// Id of the last human command applied (commands with this id are not applied again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command_id: Option<String>,
    /// Why the rollout is paused, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<PauseReason>,
    /// Since when the current step (or promotion) has waited for the new revision's pods to
    /// become ready (the progress deadline counts from here); absent when none is waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_waiting_since: Option<Time>,
    /// Why the new revision's pods (canary pods, or stable pods during a promotion) cannot
    /// become ready, as the kubelet and scheduler report it (image pulls, container config,
    /// scheduling), while a step or promotion waits for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_pod_issues: Vec<PodIssue>,
    /// When the canary was rolled back or aborted (also the end of breach-to-rollback time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_at: Option<Time>,
    /// The last decisions, oldest first, at most [`crate::history::HISTORY_LIMIT`]: what was
    /// decided, when, on which check's value or whose command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub history: Vec<crate::history::HistoryEntry>,
    /// The replay gate of the canary revision (`strategy.replayGate`): verdict, figures, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_gate: Option<crate::replay_gate::ReplayGateStatus>,
}

/// Phases of a rollout.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
)]
pub enum Phase {
    /// Stepping through the plan: weight set, waiting for a pause to end or analysis to pass.
    Progressing,
    /// Waiting for a human (indefinite pause step, pause-tier breach, hold past `maxHold`,
    /// `spec.paused` or a pause command).
    Paused,
    /// All steps done: the canary takes all traffic while the stable workload moves to its
    /// revision (also the first deployment of a FeedRollout).
    Promoting,
    /// Stable runs the latest revision; nothing to do.
    Succeeded,
    /// Analysis or pod health rolled the canary back to weight 0; stays until a new revision or
    /// a retry.
    RolledBack,
    /// A human aborted the rollout (weight 0); stays until a new revision or a retry.
    Aborted,
    /// The spec cannot be acted on (e.g. an unparsable duration slipped past validation).
    Failed,
}

impl Phase {
    /// The name used in YAML and in the printer column.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why the rollout is paused, when it is: a pause step, a command, `spec.paused`, a failed
/// pause-tier check, a hold past `maxHold`, no data under `onNoData: pause`, or the progress
/// deadline.
// The variant names are the strings this field held before it was typed: old objects parse.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
)]
pub enum PauseReason {
    /// A `pause` step without duration.
    PauseStep,
    /// A pause command.
    Command,
    /// `spec.paused: true`.
    SpecPaused,
    /// A pause-tier check failed.
    CheckFailed,
    /// No data or provider errors for longer than `maxHold`.
    HoldExpired,
    /// No data or a provider error on a check whose policy is `pause`.
    NoData,
    /// Canary pods were not ready within `progressDeadline` (`onProgressDeadline: pause`).
    ProgressDeadlineExceeded,
    /// The replay gate stayed inconclusive or unanswered for longer than `maxHold`; resume to
    /// go on without it.
    ReplayGate,
}

impl PauseReason {
    /// The value stored in `status.pauseReason`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The `status` of a standard Kubernetes condition (`metav1.Condition` keeps it as a string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Display, IntoStaticStr)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Cannot tell yet (e.g. analysis holding for data).
    Unknown,
}

impl ConditionStatus {
    /// `True`, `False` or `Unknown`, as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

/// A canary pod that cannot become ready, and why.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PodIssue {
    /// Pod name.
    pub pod: String,
    /// The container (absent for scheduling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// What the kubelet or scheduler reports.
    pub reason: PodIssueReason,
    /// The kubelet's or scheduler's message, as reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Why a pod cannot become ready without someone changing something: the container waiting
/// reasons and the scheduling condition that never resolve by waiting.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
    EnumString,
    EnumIter,
)]
pub enum PodIssueReason {
    /// The image cannot be pulled and the kubelet backs off.
    ImagePullBackOff,
    /// The last image pull failed.
    ErrImagePull,
    /// The image reference is malformed.
    InvalidImageName,
    /// A referenced Secret or ConfigMap (key) is missing.
    CreateContainerConfigError,
    /// The container runtime cannot create the container.
    CreateContainerError,
    /// No node can take the pod (`PodScheduled=False`, reason `Unschedulable`).
    Unschedulable,
}

impl PodIssueReason {
    /// Every reason.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// The name Kubernetes uses (a container waiting reason, or the condition reason).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The reason named `s`, if it is one of these.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl std::fmt::Display for PodIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod {}", self.pod)?;
        if let Some(c) = &self.container {
            write!(f, " container {c}")?;
        }
        write!(f, ": {}", self.reason.as_str())?;
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        Ok(())
    }
}

/// Counters the state machine keeps per check between analysis runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckState {
    /// Check name.
    pub name: String,
    /// Failures in a row (no-data and errors neither count nor reset).
    #[serde(default)]
    pub consecutive_failures: i32,
    /// Since when the check has had no data or no answer from Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_since: Option<Time>,
}

/// One analysis run: a record per check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRun {
    /// When the queries were evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// `true` when only the fast-interval (roll-back-tier) checks ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fast: bool,
    /// One record per check evaluated.
    #[serde(default)]
    pub records: Vec<CheckRecord>,
}

/// The evidence of one check in one run: what was asked, what came back, what it means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// Check name.
    pub name: String,
    /// Tier of the check.
    pub tier: Tier,
    /// When this check was evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// The rendered PromQL for the canary.
    pub query: String,
    /// The rendered PromQL for stable, when the check compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_query: Option<String>,
    /// The judged value (canary, or canary vs stable when comparing); absent without data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The canary's raw value, when comparing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_value: Option<f64>,
    /// The stable value, when comparing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_value: Option<f64>,
    /// Request volume in the window, when counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    /// The threshold, e.g. `<= 0.005` or `>= 0.99`.
    pub threshold: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in words.
    #[serde(default)]
    pub reason: String,
    /// Sequential checks: the counts of the step so far, the estimate and its confidence
    /// interval, and how much more traffic a decision needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<SequentialEvidence>,
}

impl CheckRecord {
    /// Whether this is a sequential check still gathering evidence: enough counts to judge, not
    /// yet confident either way (a `no-data` verdict that is not missing data).
    pub fn gathering_evidence(&self) -> bool {
        self.verdict == Verdict::NoData && self.evidence.as_ref().is_some_and(|e| e.judged)
    }
}

/// Events and trials of one side (e.g. 5xx responses and responses), over the step so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SideCounts {
    /// Events counted (the numerator).
    pub events: u64,
    /// Trials they were counted among (the denominator).
    pub trials: u64,
}

/// What a sequential check has seen so far and what it concluded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialEvidence {
    /// Canary counts.
    pub canary: SideCounts,
    /// Stable counts.
    pub stable: SideCounts,
    /// Whether both sides had the minimum counts, so the interval was judged.
    #[serde(default)]
    pub judged: bool,
    /// Canary share − stable share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// Lower end of the confidence interval of canary − stable (valid at every look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// Upper end of that interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// More trials (canary + stable) a decision needs, at the current estimate and split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_needed: Option<u64>,
    /// Seconds those trials take at the traffic of the step so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<u64>,
}

/// Outcome of one check.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
)]
#[serde(rename_all = "camelCase")]
#[strum(serialize_all = "kebab-case")]
pub enum Verdict {
    /// Within the threshold.
    Pass,
    /// Outside the threshold.
    Fail,
    /// Nothing to judge: no series, NaN/Inf, or fewer requests than `minRequests`.
    #[default]
    NoData,
    /// Prometheus unreachable, timed out or rejected the query.
    Error,
}

impl Verdict {
    /// The name shown by the CLI: `pass`, `fail`, `no-data`, `error`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
