//! What the world reports to the brain.

pub use feedroll_crds::CommandKind;
use feedroll_crds::{AnalysisRun, PodIssue};
use serde::{Deserialize, Serialize};

/// Inputs of one decision besides spec, status and time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Revision the spec asks for ([`crate::brain::revision`] of template and ranking profile).
    pub revision: String,
    /// `metadata.generation` of the object, copied to `status.observedGeneration`.
    pub generation: Option<i64>,
    /// A new analysis run, when one was due and ran (see [`crate::brain::analysis_due`]).
    /// A run not newer than `status.analysis.at` is ignored.
    pub analysis: Option<AnalysisRun>,
    /// Health of the canary pods.
    pub canary: PodHealth,
    /// Revision the stable pods run and are ready at (`None` while rolling or absent).
    pub stable_ready_revision: Option<String>,
    /// Human commands, oldest first; each is applied once (by `id`).
    pub commands: Vec<Command>,
    /// The stable pod's replay, when [`crate::brain::replay_due`] asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<super::replay_gate::ReplayOutcome>,
}

/// Canary pod health as the reconciler sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodHealth {
    /// The canary pods for the current weight exist and are ready.
    pub ready: bool,
    /// A canary pod is in CrashLoopBackOff or its restarts grow past a small bound.
    pub crash_looping: bool,
    /// Canary pods that cannot become ready without a change (image pulls, container config,
    /// scheduling), sorted; reported at once while a step waits for the pods.
    pub issues: Vec<PodIssue>,
}

/// A human command with an id, so a command still present on the object is applied only once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id (e.g. the annotation value or a timestamp).
    pub id: String,
    /// What to do.
    pub kind: CommandKind,
    /// Who sent it, as the sender declared it (kept in `status.history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}
