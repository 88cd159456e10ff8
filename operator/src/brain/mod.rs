//! The rollout brain: a pure state machine `(spec, status, observations, now) → (status, actions)`.
//!
//! Nothing here does I/O. The reconciler (issue 4) gathers [`Observations`] (a new analysis run
//! from [`crate::analysis`], canary pod health, the stable workload's ready revision, human
//! commands), calls [`decide`], writes the returned status and carries out the [`Action`]s; the
//! e2e driver (issue 5) does the same with a traffic generator instead of Kubernetes objects.
//!
//! Phases and transitions (see `operator/README.md` for the full table):
//!
//! ```text
//! A rollout with a replay gate (`strategy.replayGate`) waits in `Progressing` before its first
//! step until the gate decides ([`replay_gate`]'s rules).
//!
//!            new revision (no stable yet)           stable ready at revision
//! (none) ─────────────────────────────▶ Promoting ─────────────────────────▶ Succeeded
//!                                          ▲                                   │ new revision
//!       all steps done / promote full      │                                   ▼
//!     ┌────────────────────────────────────┴───────────────────────────── Progressing ◀──┐
//!     │  pause step without duration, pause-tier failure, hold past maxHold,  │   ▲      │ retry /
//!     │  spec.paused, pause command                                           ▼   │resume│ new revision
//!     │                                                                     Paused ─┘    │
//!     │  rollback-tier failure, blocking failures past the limit, crash loop ──▶ RolledBack
//!     └─ abort command ───────────────────────────────────────────────────────▶ Aborted
//! ```

mod actions;
mod conditions;
mod evidence;
mod history;
mod observations;
mod replay_gate;
mod revision;
mod run_judgement;
mod schedule;
mod state_machine;
mod weights;

pub use actions::{Action, EventReason, EventType, Transition};
pub(crate) use conditions::set as set_condition;
pub use conditions::{
    CONDITION_ANALYSIS, CONDITION_HEALTHY, CONDITION_PAUSED, CONDITION_PROGRESSING,
};
pub use feedroll_crds::PauseReason;
pub use observations::{Command, CommandKind, Observations, PodHealth};
pub use replay_gate::{
    Judgement, ReplayAnswer, ReplayAsk, ReplayOutcome, awaiting as awaiting_replay, judge,
    replay_due,
};
pub use revision::revision;
pub use run_judgement::{RunDecision, RunFacts, failure_counts, judge_run};
pub use schedule::{AnalysisDue, analysis_due};
pub use state_machine::decide;
pub use weights::{SKEW_TOLERANCE, canary_replicas, expressed_weight, share};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// `t + d`, saturating instead of overflowing.
pub(crate) fn after(t: Timestamp, d: std::time::Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// The timestamp inside a Kubernetes `Time`.
pub(crate) fn ts(t: &Time) -> Timestamp {
    t.0
}
