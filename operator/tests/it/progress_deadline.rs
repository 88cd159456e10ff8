//! The progress deadline and canary pod issues (issue 10): a canary that never becomes ready
//! is reported at once when the kubelet says why, and rolled back (or paused) at the deadline,
//! never before it.

use crate::support::brain as support;

use feedroll_crds::{Phase, PodIssue, PodIssueReason};
use feedroll_operator::brain::{Action, EventReason};
use support::*;

fn events(actions: &[Action]) -> Vec<(EventReason, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event {
                reason, message, ..
            } => Some((*reason, message.clone())),
            _ => None,
        })
        .collect()
}

fn has(actions: &[Action], reason: EventReason) -> bool {
    events(actions).iter().any(|(r, _)| *r == reason)
}

fn issue(pod: &str, reason: PodIssueReason) -> PodIssue {
    PodIssue {
        pod: pod.into(),
        container: (reason != PodIssueReason::Unschedulable).then(|| "feed".into()),
        reason,
        message: format!("{} for {pod}", reason.as_str()),
    }
}

/// A rollout at step 1 (setWeight 10) whose canary pods never become ready.
fn stuck(spec_yaml: &str) -> Sim {
    let mut sim = Sim::rolling(spec(spec_yaml));
    sim.canary.ready = false;
    let t = sim.tick(0);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Progressing, 10));
    assert_eq!(
        sim.status.canary_waiting_since.as_ref().map(|t| t.0),
        Some(at(0)),
        "the clock starts when the step asks for pods"
    );
    assert!(!has(&t.actions, EventReason::ProgressDeadlineExceeded));
    sim
}

#[test]
fn a_canary_that_never_becomes_ready_rolls_back_at_the_default_deadline() {
    let mut sim = stuck("replicas: 10");
    for _ in 0..59 {
        let t = sim.tick(10);
        assert_eq!(sim.phase(), Phase::Progressing, "acted before the deadline");
        assert!(!has(&t.actions, EventReason::ProgressDeadlineExceeded));
    }
    assert!(
        sim.status
            .message
            .as_deref()
            .unwrap()
            .contains("10s to the progress deadline"),
        "{:?}",
        sim.status.message
    );
    let t = sim.tick(10); // 600 s: the default 10m deadline.
    assert_eq!((sim.phase(), sim.status.weight), (Phase::RolledBack, 0));
    assert!(t.actions.contains(&Action::ScaleDownCanary));
    let (_, message) = events(&t.actions)
        .into_iter()
        .find(|(r, _)| *r == EventReason::ProgressDeadlineExceeded)
        .expect("a ProgressDeadlineExceeded event");
    assert!(
        message.contains("progress deadline 600s exceeded at step 1/7"),
        "{message}"
    );
    assert_eq!(sim.status.canary_waiting_since, None);
    // It stays rolled back: nothing is promoted later.
    sim.canary.ready = true;
    sim.all_pass(60);
    assert_eq!(sim.phase(), Phase::RolledBack);
}

#[test]
fn the_deadline_can_pause_for_a_human_instead_and_restarts_on_resume() {
    let mut sim = stuck("{replicas: 10, progressDeadline: 2m, onProgressDeadline: pause}");
    sim.canary.issues = vec![issue(
        "feed-canary-a",
        PodIssueReason::CreateContainerConfigError,
    )];
    sim.tick(119);
    assert_eq!(sim.phase(), Phase::Progressing);
    let t = sim.tick(1);
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("ProgressDeadlineExceeded")
    );
    assert_eq!(sim.status.weight, 10, "pause leaves the canary as it is");
    assert_eq!(
        sim.status.canary_pod_issues, sim.canary.issues,
        "the human asked to fix the pods sees why they are not ready"
    );
    assert_eq!(sim.status.canary_waiting_since, None);
    assert!(has(&t.actions, EventReason::ProgressDeadlineExceeded));
    let paused = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Paused")
        .unwrap();
    assert_eq!(
        (paused.status.as_str(), paused.reason.as_str()),
        ("True", "ProgressDeadlineExceeded")
    );
    // Nothing happens while a human looks.
    sim.tick(3600);
    assert_eq!(sim.phase(), Phase::Paused);
    // Resumed: a fresh deadline, counted from the resume.
    sim.command(feedroll_operator::brain::CommandKind::Resume);
    sim.tick(0);
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.tick(119);
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.tick(1);
    assert_eq!(sim.phase(), Phase::Paused);
}

#[test]
fn image_pull_errors_are_reported_at_once_and_once() {
    let mut sim = stuck("replicas: 10");
    sim.canary.issues = vec![issue("feed-canary-a", PodIssueReason::ErrImagePull)];
    let t = sim.tick(5);
    let (_, message) = events(&t.actions)
        .into_iter()
        .find(|(r, _)| *r == EventReason::CanaryNotReady)
        .expect("CanaryNotReady at once");
    assert!(
        message.contains("pod feed-canary-a container feed: ErrImagePull"),
        "{message}"
    );
    assert_eq!(sim.status.canary_pod_issues, sim.canary.issues);
    assert!(
        sim.status
            .message
            .as_deref()
            .unwrap()
            .contains("ErrImagePull")
    );
    // The kubelet backs off: same problem, no new event, status follows.
    sim.canary.issues = vec![issue("feed-canary-a", PodIssueReason::ImagePullBackOff)];
    let t = sim.tick(10);
    assert!(!has(&t.actions, EventReason::CanaryNotReady));
    assert_eq!(
        sim.status.canary_pod_issues[0].reason,
        PodIssueReason::ImagePullBackOff
    );
    sim.canary.issues = vec![issue("feed-canary-a", PodIssueReason::ErrImagePull)];
    assert!(!has(&sim.tick(10).actions, EventReason::CanaryNotReady));
    // A second pod that cannot be scheduled is news.
    sim.canary.issues = vec![
        issue("feed-canary-a", PodIssueReason::ErrImagePull),
        issue("feed-canary-b", PodIssueReason::Unschedulable),
    ];
    let t = sim.tick(10);
    assert!(has(&t.actions, EventReason::CanaryNotReady));
    // Reported is not acted upon: only the deadline rolls back.
    assert_eq!(sim.phase(), Phase::Progressing);
    let t = sim.tick(600);
    assert_eq!(sim.phase(), Phase::RolledBack);
    let (_, message) = events(&t.actions)
        .into_iter()
        .find(|(r, _)| *r == EventReason::ProgressDeadlineExceeded)
        .unwrap();
    assert!(message.contains("Unschedulable"), "{message}");
    assert!(sim.status.canary_pod_issues.is_empty());
}

#[test]
fn every_issue_reason_is_reported() {
    for reason in PodIssueReason::all() {
        let mut sim = stuck("replicas: 10");
        sim.canary.issues = vec![issue("p", reason)];
        let t = sim.tick(1);
        let found = events(&t.actions)
            .into_iter()
            .any(|(r, m)| r == EventReason::CanaryNotReady && m.contains(reason.as_str()));
        assert!(found, "{reason:?} not reported");
    }
}

#[test]
fn pods_ready_before_the_deadline_stop_the_clock_and_the_next_step_starts_a_new_one() {
    let mut sim = stuck("{replicas: 10, progressDeadline: 5m}");
    sim.tick(290);
    sim.canary.ready = true;
    sim.tick(5);
    assert_eq!(sim.status.canary_waiting_since, None);
    // Pause step (15m) with ready pods, then setWeight 25: its own 5 minutes.
    sim.all_pass(60);
    assert_eq!(sim.step(), 1);
    sim.tick(900);
    sim.all_pass(60);
    assert_eq!((sim.step(), sim.status.weight), (2, 25));
    let entered = sim.now;
    assert_eq!(
        sim.status.canary_waiting_since.as_ref().map(|t| t.0),
        Some(at(entered))
    );
    sim.canary.ready = false;
    sim.tick(299);
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.tick(1);
    assert_eq!(sim.phase(), Phase::RolledBack);
}

#[test]
fn the_next_reconcile_comes_at_the_deadline_at_the_latest() {
    let mut sim = stuck("{replicas: 10, progressDeadline: 3s, analysis: {defaultChecks: false}}");
    let t = sim.tick(1);
    assert_eq!(t.requeue_after, Some(std::time::Duration::from_secs(2)));
}

#[test]
fn in_app_and_weight_zero_steps_never_wait_for_pods() {
    let mut sim = Sim::rolling(spec(
        "{replicas: 10, progressDeadline: 1m, strategy: {traffic: {inApp: {}}, steps: [{setWeight: 25}, {pause: {duration: 1h}}, {setWeight: 100}]}}",
    ));
    sim.canary.ready = false;
    sim.tick(0);
    assert_eq!(sim.status.canary_waiting_since, None);
    sim.tick(600);
    assert_eq!(sim.phase(), Phase::Progressing);

    let mut sim = Sim::rolling(spec(
        "{replicas: 10, progressDeadline: 1m, analysis: {defaultChecks: false}, strategy: {steps: [{setWeight: 0}, {pause: {}}]}}",
    ));
    sim.canary.ready = false;
    sim.tick(0);
    assert_eq!(sim.status.canary_waiting_since, None);
    sim.tick(600);
    assert_eq!(
        (sim.phase(), sim.step()),
        (Phase::Paused, 1),
        "setWeight 0 needs no canary pods: the step is done at once"
    );
}

#[test]
fn a_zero_or_malformed_deadline_is_an_invalid_spec() {
    for (yaml, want) in [
        ("{progressDeadline: 0s}", "spec.progressDeadline"),
        ("{progressDeadline: soon}", "spec.progressDeadline"),
    ] {
        let mut sim = Sim::rolling(spec(yaml));
        let t = sim.tick(0);
        assert_eq!(sim.phase(), Phase::Failed, "{yaml}");
        assert!(has(&t.actions, EventReason::InvalidSpec));
        assert!(
            sim.status.message.as_deref().unwrap().contains(want),
            "{:?}",
            sim.status.message
        );
    }
}

#[test]
fn a_weight_the_replicas_cannot_express_is_a_warning() {
    // 10% of 4 replicas is 1 pod: 25%.
    let mut sim = Sim::rolling(spec("replicas: 4"));
    let t = sim.tick(0);
    let (_, message) = events(&t.actions)
        .into_iter()
        .find(|(r, _)| *r == EventReason::WeightSkew)
        .expect("WeightSkew");
    assert!(message.contains("setWeight 10 on 4 replicas"), "{message}");
    assert!(message.contains("about 25%"), "{message}");
    // 10% of 10 replicas is exact; Gateway API weights are always exact.
    for yaml in [
        "replicas: 10",
        "{replicas: 4, strategy: {traffic: {gatewayAPI: {parentRefs: [{name: gw}]}}}}",
        "{replicas: 4, strategy: {traffic: {inApp: {}}}}",
    ] {
        let mut sim = Sim::rolling(spec(yaml));
        assert!(
            !has(&sim.tick(0).actions, EventReason::WeightSkew),
            "{yaml}"
        );
    }
}

#[test]
fn engagement_presets_outside_in_app_are_an_invalid_spec_naming_the_check() {
    let mut sim = Sim::rolling(spec(
        "{analysis: {checks: [{name: finish, preset: completionRate, min: 0.2}]}}",
    ));
    sim.tick(0);
    assert_eq!(sim.phase(), Phase::Failed);
    let message = sim.status.message.clone().unwrap();
    assert!(
        message.contains("check finish: preset completionRate needs strategy.traffic.inApp"),
        "{message}"
    );
    let mut sim = Sim::rolling(spec(
        "{strategy: {traffic: {inApp: {}}}, analysis: {checks: [{name: finish, preset: completionRate, min: 0.2}]}}",
    ));
    sim.tick(0);
    assert_eq!(sim.phase(), Phase::Progressing);
}

fn progressing_condition(sim: &Sim) -> (String, String) {
    let c = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_first_deployment_whose_pods_never_start_is_reported_and_flagged_at_the_deadline() {
    // Nothing to roll back to: the first revision goes straight to stable.
    let mut sim = Sim::rolling(spec("{replicas: 4, progressDeadline: 5m}"));
    sim.status = Default::default();
    sim.stable_ready = false;
    sim.tick(0);
    assert_eq!(sim.phase(), Phase::Promoting);
    assert_eq!(
        sim.status.canary_waiting_since.as_ref().map(|t| t.0),
        Some(at(0))
    );
    sim.canary.issues = vec![issue("feed-stable-a", PodIssueReason::InvalidImageName)];
    let t = sim.tick(10);
    let (_, message) = events(&t.actions)
        .into_iter()
        .find(|(r, _)| *r == EventReason::CanaryNotReady)
        .expect("reported at once");
    assert!(
        message.contains("promotion of revision r1: stable pods cannot become ready: pod feed-stable-a container feed: InvalidImageName"),
        "{message}"
    );
    assert!(
        sim.status
            .message
            .as_deref()
            .unwrap()
            .contains("InvalidImageName")
    );
    assert_eq!(
        progressing_condition(&sim),
        ("True".into(), "Promoting".into())
    );
    sim.tick(289);
    assert!(!has(
        &sim.last.clone().unwrap().actions,
        EventReason::ProgressDeadlineExceeded
    ));
    let t = sim.tick(1);
    assert!(has(&t.actions, EventReason::ProgressDeadlineExceeded));
    assert_eq!(sim.phase(), Phase::Promoting, "nothing to roll back to");
    assert_eq!(
        progressing_condition(&sim),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    // Said once; the wait goes on, and the pods becoming ready still completes it.
    assert!(!has(
        &sim.tick(60).actions,
        EventReason::ProgressDeadlineExceeded
    ));
    sim.canary.issues.clear();
    sim.stable_ready = true;
    sim.tick(10);
    assert_eq!(sim.phase(), Phase::Succeeded);
    assert_eq!(sim.status.canary_waiting_since, None);
    assert!(sim.status.canary_pod_issues.is_empty());
    assert_eq!(progressing_condition(&sim).1, "RolloutComplete");
}

#[test]
fn a_promotion_that_stalls_is_flagged_and_left_to_a_human() {
    let mut sim = Sim::rolling(spec(
        "{replicas: 10, progressDeadline: 5m, analysis: {defaultChecks: false}, strategy: {steps: [{setWeight: 50}]}}",
    ));
    sim.tick(0);
    sim.tick(10);
    assert_eq!(sim.phase(), Phase::Promoting);
    sim.stable_ready = false;
    sim.tick(0);
    let promoted_at = sim.now;
    assert_eq!(
        sim.status.canary_waiting_since.as_ref().map(|t| t.0),
        Some(at(promoted_at))
    );
    let t = sim.tick(300);
    assert!(has(&t.actions, EventReason::ProgressDeadlineExceeded));
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Promoting, 100));
    // The canary keeps serving; a human aborts.
    sim.command(feedroll_operator::brain::CommandKind::Abort);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Aborted, 0));
    assert_eq!(sim.status.canary_waiting_since, None);
}
