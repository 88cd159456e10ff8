//! Rolling back and the terminal phases: `RolledBack`, `Aborted` and `Failed` (invalid spec).

use feedroll_crds::{ApiError, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::brain::actions::{Action, EventReason, EventType};

use super::Machine;

impl Machine {
    pub(super) fn roll_back(&mut self, why: String) {
        self.stop(
            Phase::RolledBack,
            EventReason::RolledBack,
            format!("rolled back: {why}"),
        );
    }

    pub(super) fn stop(&mut self, phase: Phase, reason: EventReason, message: String) {
        self.stop_waiting_for_pods();
        self.st.phase = Some(phase);
        self.st.pause_reason = None;
        self.st.rolled_back_at = Some(Time(self.now));
        self.set_weight(0);
        self.actions.push(Action::ScaleDownCanary);
        self.event(EventType::Warning, reason, message.clone());
        self.st.message = Some(message);
    }

    pub(super) fn fail(&mut self, e: &ApiError) {
        let message = format!("invalid spec: {e}");
        if self.st.phase != Some(Phase::Failed)
            || self.st.message.as_deref() != Some(message.as_str())
        {
            self.event(
                EventType::Warning,
                EventReason::InvalidSpec,
                message.clone(),
            );
        }
        self.st.phase = Some(Phase::Failed);
        self.st.message = Some(message);
    }
}
