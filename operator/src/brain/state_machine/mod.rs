//! The transition function: [`decide`] builds a [`Machine`] over a copy of the status, lets it
//! react to what was observed ([`Machine::run`]) and ends with the conditions and the requeue.
//! The rules live with the phase they belong to:
//!
//! - [`starting`]: first deployment, a new revision, a retry; the replay gate before step 1.
//! - [`progressing`]: entering a step, whether it is done, the analysis gate before the next.
//! - [`pods`]: canary pods a step waits for, the progress deadline, pod issues.
//! - [`promoting`]: promotion, its stable pods, `Succeeded`.
//! - [`paused`]: pausing for a human and resuming.
//! - [`stopped`]: rolling back, `Aborted`, `Failed` (invalid spec).
//! - [`commands`]: human commands, applied once each in order.
//! - [`analysis`]: recording a new analysis run and acting on its judgement.
//! - [`finish`]: the standard conditions and when to look again.

use feedroll_crds::{
    FeedRolloutSpec, FeedRolloutStatus, PauseReason, Phase, ResolvedAnalysis, ResolvedPlan,
    ResolvedStep, ResolvedStrategy,
};
use k8s_openapi::jiff::Timestamp;

use super::actions::{Action, EventReason, EventType, Transition};
use super::observations::Observations;
use super::replay_gate;
use super::{evidence, history, ts};

mod analysis;
mod commands;
mod finish;
mod paused;
mod pods;
mod progressing;
mod promoting;
mod starting;
mod stopped;

/// Decides what happens next and appends the decision, if the transition made one, to
/// `status.history` (the last 50 kept). Pure: the same inputs always give the same output.
///
/// - A new revision (template or ranking profile changed) restarts from the first step; the very
///   first revision of a FeedRollout is deployed straight to stable (`Promoting`).
/// - Steps advance only when the current one is done (weight set and canary ready, or the pause
///   elapsed) *and* every non-advisory check has passed since the step started. No data and
///   provider errors never pass and never count as failures: the step holds, and pauses for a
///   human after `maxHold`.
/// - A roll-back-tier failure, blocking failures past `consecutiveFailuresAllowed` or a
///   crash-looping canary go to weight 0 (`RolledBack`) in this one transition.
/// - A `setWeight` step that asks for canary pods waits for them at most `progressDeadline`
///   (from `status.canaryWaitingSince`), then rolls back or pauses (`onProgressDeadline`); pod
///   issues that waiting cannot fix (image pulls, container config, scheduling) are reported at
///   once with a `CanaryNotReady` Event.
/// - `RolledBack` and `Aborted` stay until a new revision or a retry command.
///
/// The full table of rules is in `operator/README.md` (*The state machine*).
pub fn decide(
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    obs: &Observations,
    now: Timestamp,
) -> Transition {
    let mut m = Machine {
        st: status.clone(),
        actions: Vec::new(),
        now,
        entered_step: false,
        promotion_overdue: false,
    };
    m.st.observed_generation = obs.generation.or(status.observed_generation);
    let t = match spec.resolved_plan() {
        Ok(ResolvedPlan { strategy, analysis }) => {
            let plan = Plan {
                strategy: &strategy,
                analysis: &analysis,
                replicas: spec.replicas,
            };
            m.run(spec, &plan, obs);
            m.finish(Some(&strategy), Some(&analysis))
        }
        Err(e) => {
            m.fail(&e);
            m.finish(None, None)
        }
    };
    history::record(status, obs, t, now)
}

/// The resolved spec one transition works with.
struct Plan<'a> {
    strategy: &'a ResolvedStrategy,
    analysis: &'a ResolvedAnalysis,
    /// `spec.replicas`: how finely replica-ratio traffic can express a weight.
    replicas: i32,
}

/// One transition in the making: the status being changed and the actions collected so far.
struct Machine {
    /// The new status (starts as a copy of the old one).
    st: FeedRolloutStatus,
    /// A step was entered in this transition: its completion is judged from the next one on
    /// (what was observed so far predates the step).
    entered_step: bool,
    /// A promotion's pods are not ready past the progress deadline.
    promotion_overdue: bool,
    actions: Vec<Action>,
    now: Timestamp,
}

/// Reason of the `Progressing` condition of a promotion past its progress deadline.
const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

impl Machine {
    fn event(&mut self, type_: EventType, reason: EventReason, message: impl Into<String>) {
        self.actions.push(Action::Event {
            type_,
            reason,
            message: message.into(),
        });
    }

    fn set_weight(&mut self, weight: i32) {
        if self.st.weight != weight {
            self.st.weight = weight;
            self.actions.push(Action::SetWeight { weight });
        }
    }

    fn phase(&self) -> Option<Phase> {
        self.st.phase
    }

    /// A canary exists that analysis and pod health judge.
    fn canary_active(&self) -> bool {
        super::schedule::canary_active(&self.st)
    }

    fn run(&mut self, spec: &FeedRolloutSpec, plan: &Plan<'_>, obs: &Observations) {
        if self.phase() == Some(Phase::Failed) {
            // The spec resolves again: start the revision over.
            self.st.canary_revision = None;
            self.st.phase = None;
        }
        self.handle_revision(plan, &obs.revision);
        self.handle_commands(plan, obs);
        if self.canary_active() && obs.canary.crash_looping {
            self.roll_back("canary pods are crash-looping".to_owned());
        }
        if let Some(run) = &obs.analysis {
            let newer = match (
                run.at.as_ref(),
                self.st.analysis.as_ref().and_then(|a| a.at.as_ref()),
            ) {
                (Some(new), Some(old)) => new > old,
                _ => true,
            };
            if newer && self.canary_active() {
                self.process_run(plan, run);
            }
        }
        if spec.paused && self.phase() == Some(Phase::Progressing) {
            self.pause(
                PauseReason::SpecPaused,
                "spec.paused is true; set it to false to continue".to_owned(),
            );
        } else if !spec.paused
            && self.phase() == Some(Phase::Paused)
            && self.st.pause_reason == Some(PauseReason::SpecPaused)
        {
            self.resume(plan, "spec.paused is false");
        }
        match self.phase() {
            Some(Phase::Progressing) if !self.entered_step && replay_gate::awaiting(&self.st) => {
                self.await_replay(plan, obs);
            }
            Some(Phase::Progressing) if !self.entered_step => self.progress(plan, obs),
            Some(Phase::Promoting)
                if obs.stable_ready_revision.is_some()
                    && obs.stable_ready_revision == self.st.canary_revision =>
            {
                self.succeed();
            }
            Some(Phase::Promoting) => self.wait_for_promotion(plan, &obs.canary.issues),
            _ => {}
        }
    }

    /// No step waits for canary pods any more.
    fn stop_waiting_for_pods(&mut self) {
        self.st.canary_waiting_since = None;
        self.st.canary_pod_issues.clear();
    }

    fn reset_for(&mut self, rev: &str) {
        self.stop_waiting_for_pods();
        self.st.canary_revision = Some(rev.to_owned());
        self.st.checks.clear();
        self.st.analysis = None;
        self.st.last_analysis_at = None;
        self.st.last_fast_analysis_at = None;
        self.st.pause_reason = None;
        self.st.rolled_back_at = None;
        self.st.replay_gate = None;
    }

    /// The current step of the plan.
    fn current_step(&self, plan: &Plan<'_>) -> Option<ResolvedStep> {
        let index = usize::try_from(self.st.current_step_index?).ok()?;
        plan.strategy.steps.get(index).copied()
    }

    /// Whether the current step waits for confidence and its `max` has passed.
    fn evidence_overdue(&self, plan: &Plan<'_>) -> bool {
        let started = self.st.step_started_at.as_ref().map_or(self.now, ts);
        evidence::overdue(self.current_step(plan), started, self.now)
    }
}
