//! Observations from the world (pure): canary pod health from Pods, the stable ready revision
//! from the stable Deployment, commands from the annotation.

use std::collections::BTreeMap;

use feedroll_operator::brain::{CommandKind, PodHealth};
use feedroll_operator::observe::{
    canary_health, canary_ready, command, crash_loop_reason, parse_command, replica_counts,
    stable_ready_revision,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).unwrap()
}

fn deployment(
    rev: &str,
    replicas: i32,
    generation: i64,
    observed: i64,
    ready: i32,
    updated: i32,
    total: i32,
) -> Deployment {
    yaml(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: feed-canary
  generation: {generation}
  annotations: {{feedroll.dev/revision: "{rev}"}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: feed}}}}
  template: {{metadata: {{labels: {{app: feed}}}}}}
status:
  observedGeneration: {observed}
  replicas: {total}
  updatedReplicas: {updated}
  readyReplicas: {ready}
  availableReplicas: {ready}
"#
    ))
}

fn pod(rev: &str, state: &str, restarts: i32, deleting: bool) -> Pod {
    let deletion = if deleting {
        "deletionTimestamp: \"2027-01-01T00:00:00Z\""
    } else {
        ""
    };
    yaml(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: feed-canary-abc
  labels: {{feedroll.dev/rollout: feed, feedroll.dev/track: canary, feedroll.dev/revision: "{rev}"}}
  {deletion}
status:
  containerStatuses:
    - name: feed-server
      image: feed:2
      imageID: ""
      ready: false
      restartCount: {restarts}
      state: {state}
"#
    ))
}

const RUNNING: &str = "{running: {startedAt: \"2027-01-01T00:00:00Z\"}}";
const CRASHING: &str = "{waiting: {reason: CrashLoopBackOff, message: back-off 40s}}";

#[test]
fn crash_loops_are_seen_on_live_canary_pods_of_the_current_revision() {
    let d = deployment("r2", 1, 2, 2, 0, 1, 1);
    let health = |pods: &[Pod]| canary_health(Some(&d), pods, Some("r2"), 1);
    assert_eq!(
        health(&[pod("r2", RUNNING, 0, false)]),
        PodHealth::default()
    );
    assert!(health(&[pod("r2", CRASHING, 2, false)]).crash_looping);
    // Restarts past the bound count even while running.
    assert!(health(&[pod("r2", RUNNING, 4, false)]).crash_looping);
    assert!(!health(&[pod("r2", RUNNING, 3, false)]).crash_looping);
    // Stale canary pods (another revision) and terminating pods are not judged.
    assert!(!health(&[pod("r1", CRASHING, 9, false)]).crash_looping);
    assert!(!health(&[pod("r2", CRASHING, 9, true)]).crash_looping);
    assert!(
        crash_loop_reason(&pod("r2", CRASHING, 0, false))
            .unwrap()
            .contains("CrashLoopBackOff")
    );
    // No canary revision: nothing to judge.
    assert!(!canary_health(Some(&d), &[pod("r2", CRASHING, 9, false)], None, 1).crash_looping);
}

#[test]
fn canary_is_ready_when_its_deployment_runs_the_revision_with_the_wanted_pods() {
    let ready = deployment("r2", 2, 3, 3, 2, 2, 2);
    assert!(canary_health(Some(&ready), &[], Some("r2"), 2).ready);
    // Wrong revision, stale generation, too few ready, wrong replica count, nothing wanted.
    assert!(!canary_health(Some(&ready), &[], Some("r3"), 2).ready);
    assert!(
        !canary_health(
            Some(&deployment("r2", 2, 4, 3, 2, 2, 2)),
            &[],
            Some("r2"),
            2
        )
        .ready
    );
    assert!(
        !canary_health(
            Some(&deployment("r2", 2, 3, 3, 1, 2, 2)),
            &[],
            Some("r2"),
            2
        )
        .ready
    );
    assert!(!canary_health(Some(&ready), &[], Some("r2"), 3).ready);
    assert!(!canary_health(Some(&ready), &[], Some("r2"), 0).ready);
    assert!(!canary_health(None, &[], Some("r2"), 1).ready);
    assert_eq!(canary_ready(Some(&ready), Some("r2")), 2);
    assert_eq!(canary_ready(Some(&ready), Some("r1")), 0);
    // Ready pods of an old template do not count.
    assert_eq!(
        canary_ready(Some(&deployment("r2", 2, 3, 3, 2, 1, 3)), Some("r2")),
        1
    );
}

#[test]
fn stable_is_ready_at_its_revision_only_when_fully_rolled_out() {
    assert_eq!(stable_ready_revision(None), None);
    assert_eq!(
        stable_ready_revision(Some(&deployment("r1", 3, 5, 5, 3, 3, 3))),
        Some("r1".to_owned())
    );
    // Rolling: old pods still there, or the controller has not seen the new generation.
    assert_eq!(
        stable_ready_revision(Some(&deployment("r1", 3, 5, 5, 3, 3, 4))),
        None
    );
    assert_eq!(
        stable_ready_revision(Some(&deployment("r1", 3, 6, 5, 3, 3, 3))),
        None
    );
    assert_eq!(
        stable_ready_revision(Some(&deployment("r1", 3, 5, 5, 2, 3, 3))),
        None
    );
    assert_eq!(
        replica_counts(
            Some(&deployment("r1", 3, 5, 5, 3, 3, 3)),
            Some(&deployment("r2", 1, 1, 1, 0, 1, 1))
        ),
        (4, 3, 3, 1)
    );
}

#[test]
fn commands_come_from_the_annotation_with_the_whole_value_as_id() {
    let c = parse_command("promote/1712345678").unwrap();
    assert_eq!(
        (c.id.as_str(), c.kind),
        ("promote/1712345678", CommandKind::PromoteStep)
    );
    for (v, k) in [
        ("promote", CommandKind::PromoteStep),
        ("promote-full/x", CommandKind::PromoteFull),
        ("pause", CommandKind::Pause),
        ("resume/2", CommandKind::Resume),
        ("abort", CommandKind::Abort),
        ("retry/abc", CommandKind::Retry),
    ] {
        assert_eq!(parse_command(v).unwrap().kind, k, "{v}");
    }
    assert!(
        parse_command("rollback/1")
            .unwrap_err()
            .contains("unknown command")
    );
    let mut a = BTreeMap::new();
    assert_eq!(command(&a), Ok(None));
    a.insert("feedroll.dev/command".to_owned(), "pause/7".to_owned());
    assert_eq!(command(&a).unwrap().unwrap().kind, CommandKind::Pause);
    a.insert("feedroll.dev/command".to_owned(), "explode".to_owned());
    assert_eq!(command(&a).unwrap_err().0, "explode");
}

fn waiting(reason: &str) -> String {
    format!("{{waiting: {{reason: {reason}, message: \"{reason} says why\"}}}}")
}

#[test]
fn pod_issues_are_the_waiting_reasons_that_waiting_cannot_fix() {
    use feedroll_crds::PodIssueReason;
    use feedroll_operator::observe::{canary_issues, pod_issues};
    let now = k8s_openapi::jiff::Timestamp::from_second(1_900_000_000).unwrap();
    let d = deployment("r2", 1, 2, 2, 0, 1, 1);
    for reason in PodIssueReason::all().filter(|r| *r != PodIssueReason::Unschedulable) {
        let pods = [pod("r2", &waiting(reason.as_str()), 0, false)];
        let health = canary_health(Some(&d), &pods, Some("r2"), 1);
        assert!(!health.ready && !health.crash_looping);
        let issues = canary_issues(&pods, Some("r2"), now);
        assert_eq!(issues.len(), 1, "{reason:?}");
        let issue = &issues[0];
        assert_eq!(
            (issue.pod.as_str(), issue.container.as_deref(), issue.reason),
            ("feed-canary-abc", Some("feed-server"), reason)
        );
        assert_eq!(issue.message, format!("{} says why", reason.as_str()));
    }
    // Starting up, running unready (a failing readiness probe) and crash loops are not issues:
    // the first two only the deadline catches, the last rolls back on its own.
    for state in [
        waiting("ContainerCreating"),
        waiting("PodInitializing"),
        RUNNING.to_owned(),
        CRASHING.to_owned(),
    ] {
        assert!(
            pod_issues(&pod("r2", &state, 0, false), now).is_empty(),
            "{state}"
        );
    }
    // Stale and terminating pods are not reported.
    let stale = pod("r1", &waiting("ErrImagePull"), 0, false);
    let leaving = pod("r2", &waiting("ErrImagePull"), 0, true);
    assert!(canary_issues(&[stale, leaving], Some("r2"), now).is_empty());
}

#[test]
fn unschedulable_pods_and_init_containers_are_issues() {
    use feedroll_crds::PodIssueReason;
    use feedroll_operator::observe::{UNSCHEDULABLE_GRACE, pod_issues, track_issues};
    let since = k8s_openapi::jiff::Timestamp::from_second(1_900_000_000).unwrap();
    let grace = UNSCHEDULABLE_GRACE.as_secs() as i64;
    let at = |secs: i64| {
        since
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    let now = at(grace);
    let pending: Pod = yaml(&format!(
        r#"
metadata: {{name: feed-canary-x, labels: {{feedroll.dev/revision: r2}}}}
status:
  phase: Pending
  conditions:
    - {{type: PodScheduled, status: "False", reason: Unschedulable, lastTransitionTime: "{since}", message: "0/3 nodes are available: 3 Insufficient cpu."}}
"#
    ));
    // A cluster autoscaler adding a node is not an issue yet.
    assert!(pod_issues(&pending, at(grace - 1)).is_empty());
    let issues = pod_issues(&pending, now);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].reason, PodIssueReason::Unschedulable);
    assert_eq!(issues[0].container, None);
    assert!(
        issues[0].to_string().contains("Insufficient cpu"),
        "{}",
        issues[0]
    );
    // Scheduled (or still being scheduled, no reason yet): nothing to report.
    let scheduling: Pod = yaml(
        "metadata: {name: p}\nstatus: {phase: Pending, conditions: [{type: PodScheduled, status: \"False\"}]}",
    );
    assert!(pod_issues(&scheduling, now).is_empty());
    let init: Pod = yaml(
        r#"
metadata: {name: feed-canary-y}
status:
  initContainerStatuses:
    - {name: warm, image: w:1, imageID: "", ready: false, restartCount: 0, state: {waiting: {reason: CreateContainerConfigError, message: "secret \"redis\" not found"}}}
"#,
    );
    let issues = pod_issues(&init, now);
    // Any track's live pods, during a promotion: both pods, sorted by name.
    let reasons: Vec<_> = track_issues(&[pending.clone(), init.clone()], now)
        .into_iter()
        .map(|i| (i.pod, i.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("feed-canary-x".to_owned(), PodIssueReason::Unschedulable),
            (
                "feed-canary-y".to_owned(),
                PodIssueReason::CreateContainerConfigError
            )
        ]
    );
    assert_eq!(
        (issues[0].container.as_deref(), issues[0].reason),
        (Some("warm"), PodIssueReason::CreateContainerConfigError)
    );
    assert_eq!(
        issues[0].to_string(),
        "pod feed-canary-y container warm: CreateContainerConfigError (secret \"redis\" not found)"
    );
}

#[test]
fn actual_weight_is_what_the_traffic_mode_really_sends() {
    use feedroll_crds::{GatewayApi, InApp, TrafficMode};
    use feedroll_operator::observe::actual_weight;
    let rr = TrafficMode::ReplicaRatio;
    // 10% on 4 replicas: 1 canary pod of 4 ready pods.
    assert_eq!(actual_weight(&rr, 10, 3, 1), 25);
    assert_eq!(actual_weight(&rr, 10, 9, 1), 10);
    assert_eq!(
        actual_weight(&rr, 10, 4, 0),
        0,
        "no ready canary pod gets nothing"
    );
    assert_eq!(actual_weight(&rr, 0, 0, 0), 0);
    let gw = TrafficMode::GatewayApi(GatewayApi::default());
    assert_eq!(actual_weight(&gw, 10, 3, 1), 10, "route weights are exact");
    assert_eq!(actual_weight(&gw, 10, 3, 0), 0);
    let app = TrafficMode::InApp(InApp::default());
    assert_eq!(actual_weight(&app, 10, 4, 0), 10, "the variant share");
}
