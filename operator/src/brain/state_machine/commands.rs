//! Human commands (`feedroll.dev/command` annotations): each applied once, in order, or
//! ignored with a Warning when it does not apply in the current phase.

use feedroll_crds::{PauseReason, Phase};

use crate::brain::actions::{EventReason, EventType};
use crate::brain::observations::{CommandKind, Observations};

use super::{Machine, Plan};

impl Machine {
    pub(super) fn handle_commands(&mut self, plan: &Plan<'_>, obs: &Observations) {
        let start = match &self.st.last_command_id {
            Some(last) => obs
                .commands
                .iter()
                .position(|c| &c.id == last)
                .map_or(0, |i| i + 1),
            None => 0,
        };
        for command in obs.commands.iter().skip(start) {
            self.st.last_command_id = Some(command.id.clone());
            self.apply_command(plan, command.kind);
        }
    }

    pub(super) fn apply_command(&mut self, plan: &Plan<'_>, kind: CommandKind) {
        let phase = self.phase();
        let applied = match (kind, phase) {
            (CommandKind::PromoteStep, Some(Phase::Progressing | Phase::Paused)) => {
                self.st.phase = Some(Phase::Progressing);
                self.st.pause_reason = None;
                // Before the first step (replay gate): promoting starts the first step.
                let next = self.st.current_step_index.map_or(0, |i| i + 1);
                self.event(
                    EventType::Normal,
                    EventReason::StepAdvanced,
                    "promoted one step by a human",
                );
                self.enter_step(plan, next);
                true
            }
            (CommandKind::PromoteFull, Some(Phase::Progressing | Phase::Paused)) => {
                self.st.pause_reason = None;
                self.promote("promoted fully by a human");
                true
            }
            (CommandKind::Pause, Some(Phase::Progressing)) => {
                self.pause(
                    PauseReason::Command,
                    "paused by a human; resume or promote to continue".to_owned(),
                );
                true
            }
            (CommandKind::Resume, Some(Phase::Paused)) => {
                self.resume(plan, "resumed by a human");
                true
            }
            (CommandKind::Abort, Some(Phase::Progressing | Phase::Paused)) => {
                self.stop(
                    Phase::Aborted,
                    EventReason::Aborted,
                    "aborted by a human: all traffic back on stable".to_owned(),
                );
                true
            }
            (CommandKind::Abort, Some(Phase::Promoting)) if self.st.stable_revision.is_some() => {
                self.stop(
                    Phase::Aborted,
                    EventReason::Aborted,
                    "aborted by a human during promotion: all traffic back on stable".to_owned(),
                );
                true
            }
            (CommandKind::Retry, Some(Phase::RolledBack | Phase::Aborted)) => {
                if let Some(rev) = self.st.canary_revision.clone() {
                    self.start(plan, &rev, EventReason::Retried);
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !applied {
            let phase = phase.map_or("(none)", Phase::as_str);
            self.event(
                EventType::Warning,
                EventReason::CommandIgnored,
                format!("command {} does not apply in phase {phase}", kind.as_str()),
            );
        }
    }
}
