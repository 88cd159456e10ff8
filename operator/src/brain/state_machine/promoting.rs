//! `Promoting` and `Succeeded`: the canary revision moves to stable, and the promotion waits for
//! its stable pods.

use feedroll_crds::{Phase, PodIssue};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::brain::actions::{Action, EventReason, EventType};
use crate::brain::conditions::CONDITION_PROGRESSING;
use crate::brain::{after, ts};

use super::pods::list_issues;
use super::{DEADLINE_EXCEEDED, Machine, Plan};

impl Machine {
    pub(super) fn promote(&mut self, why: &str) {
        self.waive_replay_gate("a human promoted without the replay gate");
        self.stop_waiting_for_pods();
        // The promotion asks for stable pods at the new revision: the progress deadline counts.
        self.st.canary_waiting_since = Some(Time(self.now));
        self.st.phase = Some(Phase::Promoting);
        self.set_weight(100);
        let rev = self.st.canary_revision.clone().unwrap_or_default();
        self.actions.push(Action::PromoteStable {
            revision: rev.clone(),
        });
        self.st.message = Some(format!("{why}: promoting revision {rev} to stable"));
        self.event(
            EventType::Normal,
            EventReason::Promoting,
            format!("{why}: promoting revision {rev} to stable"),
        );
    }

    pub(super) fn succeed(&mut self) {
        self.stop_waiting_for_pods();
        let first = self.st.stable_revision.is_none();
        self.st.stable_revision = self.st.canary_revision.clone();
        self.st.phase = Some(Phase::Succeeded);
        self.st.pause_reason = None;
        self.set_weight(0);
        if !first {
            self.actions.push(Action::ScaleDownCanary);
        }
        let rev = self.st.stable_revision.clone().unwrap_or_default();
        self.st.message = Some(format!("stable runs revision {rev}"));
        self.event(
            EventType::Normal,
            EventReason::Promoted,
            format!("stable runs revision {rev}"),
        );
    }

    /// One look at a promotion (or first deployment) whose stable pods are not ready yet:
    /// report their issues, and once the progress deadline has passed say so — once — and keep
    /// waiting. Nothing is rolled back mid-promotion: the stable Deployment is already moving
    /// to the new revision (and the canary, after a rollout, keeps serving), so a human decides
    /// (fix the pods, or `abort`).
    pub(super) fn wait_for_promotion(&mut self, plan: &Plan<'_>, issues: &[PodIssue]) {
        let rev = self.st.canary_revision.clone().unwrap_or_default();
        let since = ts(self.st.canary_waiting_since.get_or_insert(Time(self.now)));
        self.report_issues(issues, &format!("promotion of revision {rev}: stable pods"));
        let deadline = plan.strategy.progress_deadline;
        let why = if issues.is_empty() {
            "stable pods not ready".to_owned()
        } else {
            format!("stable pods not ready: {}", list_issues(issues))
        };
        if self.now < after(since, deadline) {
            if !issues.is_empty() {
                self.st.message = Some(format!("promoting revision {rev}: waiting: {why}"));
            }
            return;
        }
        self.promotion_overdue = true;
        let message = format!(
            "progress deadline {}s exceeded promoting revision {rev}: {why}; fix the pods, or abort",
            deadline.as_secs()
        );
        let said = self
            .st
            .conditions
            .iter()
            .any(|c| c.type_ == CONDITION_PROGRESSING && c.reason == DEADLINE_EXCEEDED);
        if !said {
            self.event(
                EventType::Warning,
                EventReason::ProgressDeadlineExceeded,
                message.clone(),
            );
        }
        self.st.message = Some(message);
    }
}
