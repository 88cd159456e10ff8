//! The FeedRollout API (`feedroll.dev/v1alpha1`): Rust types, defaults and the generated CRD.
//!
//! - [`FeedRollout`] / [`FeedRolloutSpec`]: replicas, selector, pod template, ranking profile
//!   (the feed-server format from `feed-profile`, embedded, not duplicated), strategy and
//!   analysis ([`spec`], [`analysis`]).
//! - [`FeedRolloutStatus`]: phase, step, weight, revisions, replica counts, selector, standard
//!   conditions, `observedGeneration` and the last analysis records ([`status`]), and the last
//!   50 decisions ([`history`]).
//! - The typed vocabulary: [`PauseReason`], [`ConditionStatus`], [`EventReason`] /
//!   [`EventType`] (every Event the operator records), [`CommandKind`] (the command verbs) and
//!   the history's [`Decision`]; name tables are derived (serde, strum), never hand-written.
//! - [`defaults`]: the roadmap plan and policy table, applied in code by
//!   [`FeedRolloutSpec::resolved_strategy`] and [`FeedRolloutSpec::resolved_analysis`].
//! - [`crd()`]: the CustomResourceDefinition, schema cleaned for Kubernetes ([`schema`]);
//!   `feedroll-operator crd` prints it and `crds/feedroll.dev_feedrollouts.yaml` holds it.
//!
//! Validation lives in the schema (types, ranges, lengths, patterns) and in CEL rules
//! (`x-kubernetes-validations`, each with a message a platform engineer understands): weights
//! 0–100 and never decreasing, at least one step, one of setWeight/pause per step, one traffic
//! mode, one of preset/query per check, `min <= max`, durations parse, unique check names.
//! [`validate`] checks an object against that schema and those rules the way the API server
//! does (used by `feedroll-operator check` and by the local API server, `feedroll-localkube`).
pub mod analysis;
pub mod command;
pub mod defaults;
pub mod duration;
mod error;
pub mod events;
pub mod history;
pub mod replay_gate;
pub mod schema;
pub mod selector;
pub mod sequential;
pub mod spec;
pub mod status;
pub mod validate;

pub use analysis::{
    Analysis, Authorization, BasicAuth, CaBundle, Check, CompareMode, Comparison, ConfigMapKeyRef,
    CountQueries, Direction, HoldPolicy, HttpHeader, ObjectKeyRef, ObjectKind, Preset,
    PrometheusAccess, PrometheusSource, SecretKeyRef, Tier, TlsConfig,
};
pub use command::CommandKind;
pub use defaults::{
    CheckSource, ResolvedAnalysis, ResolvedCheck, ResolvedPlan, ResolvedStep, ResolvedStrategy,
};
pub use duration::DurationString;
pub use error::ApiError;
pub use events::{EventReason, EventType};
pub use history::{CommandRef, Decision, DecisiveCheck, HistoryEntry};
pub use replay_gate::{
    MaxDrop, ReplayFigure, ReplayGate, ReplayGateStatus, ReplayMetric, ReplayVerdict,
    ResolvedReplayGate,
};
pub use schema::crd;
pub use sequential::SequentialTest;
pub use spec::{
    DeadlinePolicy, FeedRollout, FeedRolloutSpec, GatewayApi, InApp, ParentRef, PauseStep,
    ReplicaRatio, Step, Strategy, Traffic, TrafficMode,
};
pub use status::{
    AnalysisRun, CheckRecord, CheckState, ConditionStatus, FeedRolloutStatus, PauseReason, Phase,
    PodIssue, PodIssueReason, SequentialEvidence, SideCounts, Verdict,
};

/// API group.
pub const GROUP: &str = "feedroll.dev";
/// API version.
pub const VERSION: &str = "v1alpha1";
/// Value of the `track` label on stable pods and their metrics.
pub const TRACK_STABLE: &str = "stable";
/// Value of the `track` label on canary pods and their metrics.
pub const TRACK_CANARY: &str = "canary";
/// Environment variable carrying the rollout name into feed-server (`rollout` metric label).
pub const ENV_ROLLOUT: &str = "FEED_ROLLOUT";
/// Environment variable carrying the track into feed-server (`track` metric label).
pub const ENV_TRACK: &str = "FEED_TRACK";
