//! Starting a revision: the first deployment, a new revision over stable, a retry, and the
//! replay gate that may hold the first step.

use feedroll_crds::{PauseReason, Phase, ReplayVerdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::brain::actions::{Action, EventReason, EventType};
use crate::brain::observations::Observations;
use crate::brain::replay_gate::{self, ReplayOutcome};
use crate::brain::{after, ts};

use super::{Machine, Plan};

impl Machine {
    pub(super) fn handle_revision(&mut self, plan: &Plan<'_>, rev: &str) {
        let same_canary = self.st.canary_revision.as_deref() == Some(rev);
        if self.st.stable_revision.is_none() {
            if !(same_canary && self.phase() == Some(Phase::Promoting)) {
                // First deployment: nothing to compare a canary with, deploy straight to stable.
                self.reset_for(rev);
                self.st.phase = Some(Phase::Promoting);
                self.st.current_step_index = None;
                self.st.step_started_at = None;
                // The progress deadline covers the first pods too.
                self.st.canary_waiting_since = Some(Time(self.now));
                self.st.message = Some(format!(
                    "first deployment: stable pods move to revision {rev}"
                ));
                self.actions.push(Action::PromoteStable {
                    revision: rev.to_owned(),
                });
                self.event(
                    EventType::Normal,
                    EventReason::RolloutStarted,
                    format!("first deployment of revision {rev}"),
                );
            }
            return;
        }
        if same_canary {
            return;
        }
        if self.st.stable_revision.as_deref() == Some(rev) {
            let was_canary = self.st.canary_revision.clone();
            self.reset_for(rev);
            self.st.phase = Some(Phase::Succeeded);
            self.st.current_step_index = None;
            self.st.step_started_at = None;
            self.set_weight(0);
            self.actions.push(Action::ScaleDownCanary);
            self.st.message = Some(format!("spec is back at the stable revision {rev}"));
            if was_canary.is_some() {
                self.event(
                    EventType::Normal,
                    EventReason::Reverted,
                    format!("spec went back to stable revision {rev}; canary removed"),
                );
            }
            return;
        }
        self.start(plan, rev, EventReason::RolloutStarted);
    }

    pub(super) fn start(&mut self, plan: &Plan<'_>, rev: &str, reason: EventReason) {
        self.reset_for(rev);
        self.st.phase = Some(Phase::Progressing);
        self.set_weight(0);
        self.actions.push(Action::DeployCanary {
            revision: rev.to_owned(),
        });
        let from = self.st.stable_revision.clone().unwrap_or_default();
        self.event(
            EventType::Normal,
            reason,
            format!("rolling out revision {rev} over stable {from}"),
        );
        if let Some(gate) = &plan.strategy.replay_gate {
            // Before the first step: the replay gate decides whether any user sees the canary.
            self.st.current_step_index = None;
            self.st.step_started_at = None;
            self.st.replay_gate = Some(replay_gate::pending(rev));
            self.entered_step = true;
            self.st.message = Some(format!(
                "replay gate: a stable pod ranks the exposures of the last {}s with both profiles before the first step",
                gate.window.as_secs()
            ));
            return;
        }
        self.enter_step(plan, 0);
    }

    /// Before the first step, with the replay gate undecided: judge the pod's answer, if this
    /// turn brought one (see [`replay_gate`]).
    pub(super) fn await_replay(&mut self, plan: &Plan<'_>, obs: &Observations) {
        let Some(gate) = &plan.strategy.replay_gate else {
            // The gate left the spec: nothing holds the first step any more.
            self.enter_step(plan, 0);
            return;
        };
        let Some(outcome) = &obs.replay else {
            return;
        };
        let judged = replay_gate::judge(gate, outcome);
        let now = Time(self.now);
        let rev = self.st.canary_revision.clone().unwrap_or_default();
        let g = self
            .st
            .replay_gate
            .get_or_insert_with(|| replay_gate::pending(&rev));
        let was = g.verdict;
        g.verdict = Some(judged.verdict);
        g.reason = judged.reason.clone();
        g.since.get_or_insert(now.clone());
        g.at = Some(now);
        // The figures are always those of this verdict (none when the pod gave none).
        let answer = match outcome {
            ReplayOutcome::Answered(a) => Some(a),
            _ => None,
        };
        g.exposures = answer.map(|a| a.exposures);
        g.confidence = answer.map(|a| a.confidence);
        g.figures = judged.figures;
        let since = g.since.as_ref().map_or(self.now, ts);
        match judged.verdict {
            ReplayVerdict::Regression => self.stop(
                Phase::RolledBack,
                EventReason::ReplayRegression,
                format!(
                    "rolled back before any user saw the canary: ReplayRegression: {}",
                    judged.reason
                ),
            ),
            ReplayVerdict::Passed => {
                self.event(
                    EventType::Normal,
                    EventReason::ReplayPassed,
                    format!("replay gate passed: {}", judged.reason),
                );
                self.enter_step(plan, 0);
            }
            verdict => {
                let what = format!("replay gate {}: {}", verdict.as_str(), judged.reason);
                if self.now >= after(since, gate.max_hold) {
                    self.pause(
                        PauseReason::ReplayGate,
                        format!(
                            "paused for a human before the first step: {what} for longer than maxHold {}s; resume to go on without the gate, or abort",
                            gate.max_hold.as_secs()
                        ),
                    );
                    return;
                }
                if was != Some(verdict) {
                    self.event(
                        EventType::Warning,
                        EventReason::Held,
                        format!("{what}; holding before the first step"),
                    );
                }
                self.st.message = Some(format!(
                    "holding before the first step: {what}; asking again every {}s, pausing after maxHold {}s",
                    plan.analysis.interval.as_secs(),
                    gate.max_hold.as_secs()
                ));
            }
        }
    }

    /// A human (or a promotion) moved on while the replay gate was undecided.
    pub(super) fn waive_replay_gate(&mut self, why: &str) {
        if replay_gate::awaiting(&self.st)
            && let Some(g) = &mut self.st.replay_gate
        {
            g.verdict = Some(ReplayVerdict::Waived);
            g.reason = why.to_owned();
        }
    }
}
