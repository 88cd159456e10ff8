//! `Paused`: a human looks; resuming goes on from where the rollout stopped.

use feedroll_crds::{PauseReason, Phase, ResolvedStep, Tier};

use crate::brain::actions::{EventReason, EventType};
use crate::brain::replay_gate::{self};

use super::{Machine, Plan};

impl Machine {
    pub(super) fn pause(&mut self, reason: PauseReason, message: String) {
        let event = match reason {
            PauseReason::ProgressDeadlineExceeded => EventReason::ProgressDeadlineExceeded,
            _ => EventReason::PausedForHuman,
        };
        // A human looks now: the progress deadline restarts when the rollout resumes. The pod
        // issues stay in the status for them to read.
        self.st.canary_waiting_since = None;
        self.st.phase = Some(Phase::Paused);
        self.st.pause_reason = Some(reason);
        let type_ = match reason {
            PauseReason::PauseStep | PauseReason::Command | PauseReason::SpecPaused => {
                EventType::Normal
            }
            _ => EventType::Warning,
        };
        self.event(type_, event, message.clone());
        self.st.message = Some(message);
    }

    pub(super) fn resume(&mut self, plan: &Plan<'_>, why: &str) {
        let was_pause_step = self.st.pause_reason == Some(PauseReason::PauseStep);
        let pause_reason_was_gate = self.st.pause_reason == Some(PauseReason::ReplayGate);
        self.st.phase = Some(Phase::Progressing);
        self.st.pause_reason = None;
        for state in &mut self.st.checks {
            state.holding_since = None;
            if plan
                .analysis
                .checks
                .iter()
                .any(|c| c.name == state.name && c.tier == Tier::Pause)
            {
                state.consecutive_failures = 0;
            }
        }
        self.st.message = Some(why.to_owned());
        self.event(EventType::Normal, EventReason::Resumed, why);
        if replay_gate::awaiting(&self.st) {
            // Resuming a pause the gate asked for goes on without it; any other pause before
            // the first step goes back to asking.
            if pause_reason_was_gate {
                self.enter_step(plan, 0);
            }
            return;
        }
        let index = self.st.current_step_index.unwrap_or(0);
        let on_indefinite_pause = usize::try_from(index)
            .ok()
            .and_then(|i| plan.strategy.steps.get(i))
            .is_some_and(|s| *s == ResolvedStep::Pause(None));
        if was_pause_step || on_indefinite_pause {
            self.enter_step(plan, index + 1);
        }
    }
}
