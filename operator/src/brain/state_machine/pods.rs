//! Waiting for pods: canary pods a step asks for, the progress deadline, and the pod issues
//! reported to humans.

use feedroll_crds::{DeadlinePolicy, PauseReason, Phase, PodIssue, PodIssueReason, TrafficMode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::brain::actions::{EventReason, EventType};
use crate::brain::{after, ts};

use super::{Machine, Plan};

impl Machine {
    /// One look at canary pods a step waits for: report new issues, and act once the progress
    /// deadline has passed. `false` when the deadline acted (the step is over).
    pub(super) fn wait_for_pods(
        &mut self,
        plan: &Plan<'_>,
        issues: &[PodIssue],
        index: i32,
        w: i32,
    ) -> bool {
        let n = plan.strategy.steps.len();
        let since = ts(self.st.canary_waiting_since.get_or_insert(Time(self.now)));
        self.report_issues(issues, &format!("step {}/{n}: canary pods", index + 1));
        let deadline = plan.strategy.progress_deadline;
        let why = if issues.is_empty() {
            "canary pods not ready".to_owned()
        } else {
            format!("canary pods not ready: {}", list_issues(issues))
        };
        let end = after(since, deadline);
        if self.now >= end {
            let message = format!(
                "progress deadline {}s exceeded at step {}/{n}: {why}",
                deadline.as_secs(),
                index + 1
            );
            match plan.strategy.on_progress_deadline {
                DeadlinePolicy::Rollback => self.stop(
                    Phase::RolledBack,
                    EventReason::ProgressDeadlineExceeded,
                    format!("rolled back: {message}"),
                ),
                DeadlinePolicy::Pause => self.pause(
                    PauseReason::ProgressDeadlineExceeded,
                    format!("paused for a human: {message}; fix the pods, then resume or abort"),
                ),
            }
            return false;
        }
        let left = self.now.duration_until(end).as_secs();
        self.st.message = Some(format!(
            "step {}/{n}: weight {w}%, waiting for canary pods to be ready ({left}s to the progress deadline): {why}",
            index + 1
        ));
        true
    }

    /// Keeps `status.canaryPodIssues` at `issues`, with a `CanaryNotReady` Warning when one is
    /// news (`whose` says which pods, e.g. `step 1/7: canary pods`).
    pub(super) fn report_issues(&mut self, issues: &[PodIssue], whose: &str) {
        if self.st.canary_pod_issues == issues {
            return;
        }
        // Kubelets alternate ErrImagePull and ImagePullBackOff while they retry: only a pod or
        // container with a new kind of problem is news.
        let known = |i: &PodIssue| {
            self.st
                .canary_pod_issues
                .iter()
                .any(|o| o.pod == i.pod && o.container == i.container && same_problem(o, i))
        };
        if issues.iter().any(|i| !known(i)) {
            self.event(
                EventType::Warning,
                EventReason::CanaryNotReady,
                format!("{whose} cannot become ready: {}", list_issues(issues)),
            );
        }
        self.st.canary_pod_issues = issues.to_vec();
    }
}

/// Whether a `setWeight` step at `weight` waits for canary pods (not in-app, not at weight 0).
pub(super) fn needs_canary_pods(traffic: &TrafficMode, weight: i32) -> bool {
    traffic.uses_canary_pods() && weight > 0
}

/// Whether two reports are the same problem (an image pull failing, then backing off, is one).
pub(super) fn same_problem(a: &PodIssue, b: &PodIssue) -> bool {
    let image_pull = |i: &PodIssue| {
        matches!(
            i.reason,
            PodIssueReason::ErrImagePull | PodIssueReason::ImagePullBackOff
        )
    };
    a.reason == b.reason || (image_pull(a) && image_pull(b))
}

pub(super) fn list_issues(issues: &[PodIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
