//! The rollout scenarios of issue 11 on the local cluster: FeedRollouts applied with real
//! `kubectl`, reconciled by the real `feedroll-operator` binary (two replicas, leader election,
//! the chart's RBAC), pods running the fault-injection feed-server, Prometheus scraping them,
//! traffic through each rollout's HTTPRoute (exact per-request weights), and `kubectl feedroll`
//! (the plugin binary, found by kubectl on PATH) waiting, explaining and promoting.
//!
//! Two clusters, one per test (cargo-nextest runs them side by side): the first runs six
//! scenarios at once, one namespace each; the second the two disruptive ones (Prometheus killed,
//! then the leading operator killed) with a third rollout beside them, then the in-app profile
//! change (its kubelet delays ConfigMaps by 8 s). Each scenario asserts its final
//! phase, its Event reasons, and that the chart's RBAC refused none of the operator's requests;
//! each prints its timeline. On failure the operators', Prometheus' and pods' logs are printed.
//!
//! Needs `feedroll-operator` and `kubectl-feedroll` built beside this test (`make e2e` and
//! `make test` build them), the fault-injection feed-server (`FEEDROLL_FAULTY_FEED_SERVER`, else
//! built into target/e2e), kubectl, redis-server and prometheus (scripts/install-deps.sh).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use feedroll_crds::{Decision, FeedRolloutStatus, Phase, Step, Tier, Verdict};
use feedroll_e2e::driver::Timings;
use feedroll_e2e::local::manifest::{
    Fault, NEXT_IMAGE, Plan, Revision, SLOW_CANARY_MS, Split, UNPULLABLE_IMAGE, profile,
};
use feedroll_e2e::local::recorder::{Recorder, Recording};
use feedroll_e2e::local::{Harness, LocalError, Setup, wait_for};
use feedroll_localkube::kubelet::TimeScale;
use feedroll_operator::brain::{EventReason, PauseReason};

/// Durations of every scenario: analysis every 2 s (roll-back tier every second over 3 s),
/// other windows 4 s, timed pauses 2 s, at least 5 requests a window, holds of 60 s (a new
/// canary has no series until Prometheus scraped it a few times: tens of seconds on a busy
/// machine; a hold costs a passing scenario nothing).
fn timings() -> Timings {
    Timings {
        pause: "2s",
        interval: "2s",
        fast_interval: "1s",
        window: "4s",
        fast_window: "3s",
        max_hold: "60s",
        min_requests: 5,
    }
}

/// The kubelet at 1/20 of real time: 0.5 s probe periods and first back-off.
fn time_scale() -> TimeScale {
    TimeScale::new(0.05).unwrap_or(TimeScale::REAL)
}

fn ok<T>(r: Result<T, LocalError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A scenario: its plan and what its rollout did.
struct Scenario {
    title: &'static str,
    plan: Plan,
    rec: Recorder,
    /// Events before the revision under test (those of the first deployment).
    before: AtomicUsize,
}

impl Scenario {
    fn new(h: &Harness, title: &'static str, plan: Plan) -> Self {
        let rec = h.record(&plan);
        Self {
            title,
            plan,
            rec,
            before: AtomicUsize::new(0),
        }
    }

    /// Applies the revision under test (generation 2).
    async fn roll_out(&self, h: &Harness, revision: &Revision) {
        self.before
            .store(self.rec.recording().reasons.len(), Ordering::Relaxed);
        ok(h.apply(&self.plan, revision).await);
    }

    /// The reasons of the Events of the revision under test, in order.
    fn reasons(&self, rec: &Recording) -> Vec<String> {
        let before = self.before.load(Ordering::Relaxed).min(rec.reasons.len());
        rec.reasons[before..].to_vec()
    }

    fn ns(&self) -> &str {
        &self.plan.namespace
    }

    /// Prints the timeline (phase, step, weight, analysis, Events over time) when dropped: at
    /// the end of the scenario, whether it passed or failed.
    fn printed(&self) -> PrintTimeline<'_> {
        PrintTimeline(self)
    }

    /// Waits until the status of generation `generation` satisfies `done`; on timeout prints
    /// the timeline and fails naming `what`.
    async fn wait(
        &self,
        what: &str,
        generation: i64,
        seconds: u64,
        done: impl Fn(&FeedRolloutStatus) -> bool,
    ) -> FeedRolloutStatus {
        let waited = wait_for(&format!("{}: {what}", self.ns()), seconds, || {
            self.rec
                .status()
                .filter(|s| s.observed_generation >= Some(generation) && done(s))
        })
        .await;
        waited.unwrap_or_else(|e| panic!("{e}; last status: {:#?}", self.rec.status()))
    }

    async fn phase(&self, phase: Phase, generation: i64, seconds: u64) -> FeedRolloutStatus {
        self.wait(phase.as_str(), generation, seconds, |s| {
            s.phase == Some(phase)
        })
        .await
    }

    /// Applies revision 1 and waits for it to be the stable one (a first deployment is promoted
    /// straight away).
    async fn deploy_stable(&self, h: &Harness, revision: Revision) {
        ok(h.apply(&self.plan, &revision).await);
        self.phase(Phase::Succeeded, 1, 60).await;
    }

    /// Asserts the revision under test had Events with these reasons, in this order (waiting
    /// up to 10 s: the operator writes a decision's Events after its status).
    async fn assert_events(&self, reasons: &[EventReason]) {
        let in_order = |seen: &[String]| {
            let mut rest = seen.iter();
            reasons.iter().all(|r| rest.any(|s| s == r.as_str()))
        };
        let found = wait_for(&format!("{}: Events {reasons:?}", self.ns()), 10, || {
            in_order(&self.reasons(&self.rec.recording())).then_some(())
        })
        .await;
        if let Err(e) = found {
            panic!("{e}; got {:?}", self.reasons(&self.rec.recording()));
        }
    }
}

/// Prints a scenario's timeline when dropped.
struct PrintTimeline<'a>(&'a Scenario);

impl Drop for PrintTimeline<'_> {
    fn drop(&mut self) {
        let s = self.0;
        println!("{}", s.rec.recording().timeline.render(s.title));
    }
}

/// `kubectl feedroll ARGS -n NS`: exit code and output.
async fn feedroll(h: &Harness, ns: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["feedroll"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-n", ns]);
    let out = ok(h.kubectl(&all).await);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn assert_no_denied(h: &Harness) {
    let denied: Vec<String> = h
        .cluster()
        .denied()
        .iter()
        .map(|r| format!("{} {} {}", r.user, r.method, r.path))
        .collect();
    assert!(denied.is_empty(), "the chart's RBAC refused: {denied:#?}");
}

fn steps(weight: i32, pauses: usize) -> Vec<Step> {
    std::iter::once(Step::set_weight(weight))
        .chain((0..pauses).map(|_| Step::pause(Some(timings().pause))))
        .collect()
}

fn next(faults: Vec<Fault>) -> Revision {
    Revision {
        image: Some(NEXT_IMAGE),
        faults,
        profile: None,
    }
}

/// Healthy: through every step to Succeeded, with `kubectl feedroll wait` as a CI gate and
/// `timeline` showing the decisions; then `kubectl delete` removes every owned object.
async fn healthy(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    s.roll_out(h, &next(vec![])).await;
    let (code, out) = feedroll(
        h,
        s.ns(),
        &["wait", s.ns(), "--for", "succeeded", "--timeout", "180s"],
    )
    .await;
    assert_eq!(code, Some(0), "kubectl feedroll wait: {out}");
    let status = s.phase(Phase::Succeeded, 2, 5).await;
    assert_eq!(status.weight, 0);
    s.assert_events(&[
        EventReason::RolloutStarted,
        EventReason::StepAdvanced,
        EventReason::Promoting,
        EventReason::Promoted,
    ])
    .await;
    let (code, timeline) = feedroll(h, s.ns(), &["timeline", s.ns()]).await;
    assert_eq!(code, Some(0), "{timeline}");
    for cell in [
        "DECISION",
        "Started",
        "StepAdvanced",
        "2/2",
        "Promoting",
        "Promoted",
    ] {
        assert!(timeline.contains(cell), "{cell} missing in:\n{timeline}");
    }

    // Deleted: the operator's finalizer runs, garbage collection takes the rest.
    ok(h.kubectl_ok(&[
        "-n",
        s.ns(),
        "delete",
        "feedrollout",
        s.ns(),
        "--wait=false",
    ])
    .await);
    let kinds = [
        ("apps/v1", "deployments"),
        ("v1", "services"),
        ("v1", "configmaps"),
        ("v1", "pods"),
        ("gateway.networking.k8s.io/v1", "httproutes"),
    ];
    let left = wait_for("every object of the deleted FeedRollout gone", 30, || {
        let left: Vec<String> = kinds
            .iter()
            .flat_map(|(v, r)| h.owned(v, r, s.ns(), s.ns()))
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        let rollout =
            h.cluster()
                .api()
                .get("feedroll.dev/v1alpha1", "feedrollouts", s.ns(), s.ns());
        (left.is_empty() && rollout.is_none()).then_some(())
    })
    .await;
    ok(left);
}

/// 10% errors on the canary: the roll-back tier rolls it back; `kubectl feedroll wait --for
/// succeeded` exits with RolledBack's code.
async fn errors(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    s.roll_out(h, &next(vec![Fault::ErrorRate(0.1)])).await;
    let (code, out) = feedroll(
        h,
        s.ns(),
        &["wait", s.ns(), "--for", "succeeded", "--timeout", "180s"],
    )
    .await;
    let status = s.phase(Phase::RolledBack, 2, 5).await;
    let rec = s.rec.recording();
    assert_eq!(
        code,
        Some(11),
        "wait ends on RolledBack with exit 11: {out}"
    );
    assert_eq!(status.weight, 0);
    s.assert_events(&[EventReason::RolloutStarted, EventReason::RolledBack])
        .await;
    let decision = status
        .history
        .iter()
        .rev()
        .find(|e| e.decision == Decision::RolledBack)
        .and_then(|e| e.check.clone());
    let check = decision.unwrap_or_else(|| panic!("no decisive check: {:#?}", status.history));
    assert!(
        ["error-rate-critical", "availability"].contains(&check.name.as_str())
            && check.verdict == Verdict::Fail,
        "rolled back by the roll-back tier: {check:?}"
    );
    let fast_fail =
        rec.timeline.rows.iter().flat_map(|r| &r.records).any(|c| {
            c.name == check.name && c.tier == Tier::Rollback && c.verdict == Verdict::Fail
        });
    assert!(fast_fail, "the roll-back-tier record failed");
}

/// +4 s on the canary: the pause tier (P95 above 3.5 s here) waits for a human; `kubectl feedroll
/// status` explains it, `kubectl feedroll promote` sends it on to Succeeded.
async fn latency(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    s.roll_out(h, &next(vec![Fault::LatencyMs(SLOW_CANARY_MS)]))
        .await;
    let paused = s.phase(Phase::Paused, 2, 60).await;
    assert_eq!(
        paused.pause_reason,
        Some(PauseReason::CheckFailed),
        "{paused:#?}"
    );
    let (code, view) = feedroll(h, s.ns(), &["status", s.ns()]).await;
    assert_eq!(code, Some(0), "{view}");
    for cell in ["Paused", "latency-p95-critical", "fail"] {
        assert!(view.contains(cell), "{cell} missing in:\n{view}");
    }
    let (code, promoted) = feedroll(h, s.ns(), &["promote", s.ns()]).await;
    assert_eq!(code, Some(0), "{promoted}");
    let (code, out) = feedroll(
        h,
        s.ns(),
        &["wait", s.ns(), "--for", "succeeded", "--timeout", "120s"],
    )
    .await;
    assert_eq!(code, Some(0), "promoted by a human, then Succeeded: {out}");
    s.assert_events(&[
        EventReason::PausedForHuman,
        EventReason::StepAdvanced,
        EventReason::Promoted,
    ])
    .await;
    let status = s.phase(Phase::Succeeded, 2, 5).await;
    let by_human = status.history.iter().find_map(|e| e.command.clone());
    assert!(
        by_human.is_some_and(|c| c.id.starts_with("promote/") && c.author.is_some()),
        "the promotion is in the history with its command and author: {:#?}",
        status.history
    );
    let (_, timeline) = feedroll(h, s.ns(), &["timeline", s.ns()]).await;
    assert!(timeline.contains("(promote)"), "{timeline}");
}

/// A canary that exits at start: CrashLoopBackOff, rolled back without waiting for analysis.
async fn crash(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    s.roll_out(h, &next(vec![Fault::ExitAtStart])).await;
    let status = s.phase(Phase::RolledBack, 2, 60).await;
    assert_eq!(status.weight, 0);
    s.assert_events(&[EventReason::RolloutStarted, EventReason::RolledBack])
        .await;
    let entry = status
        .history
        .iter()
        .rev()
        .find(|e| e.decision == Decision::RolledBack);
    assert!(
        entry.is_some_and(|e| e.reason.contains("crash")),
        "rolled back for the crash loop: {:#?}",
        status.history
    );
}

/// An image nobody can pull: CanaryNotReady at once, RolledBack at the progress deadline.
async fn unpullable(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    let revision = Revision {
        image: Some(UNPULLABLE_IMAGE),
        ..Revision::default()
    };
    s.roll_out(h, &revision).await;
    let status = s.phase(Phase::RolledBack, 2, 60).await;
    s.assert_events(&[
        EventReason::CanaryNotReady,
        EventReason::ProgressDeadlineExceeded,
    ])
    .await;
    let rolled_back = status
        .history
        .iter()
        .rev()
        .find(|e| e.decision == Decision::RolledBack);
    assert!(
        rolled_back.is_some_and(|e| e.reason.contains("progress deadline")
            && (e.reason.contains("ImagePullBackOff") || e.reason.contains("ErrImagePull"))),
        "rolled back at the deadline, naming the pull failure: {:#?}",
        status.history
    );
    assert_eq!(status.weight, 0);
}

/// A canary without users (only the kubelet's probes and Prometheus' scrapes): every check is
/// no-data, the step holds, then pauses for a human at maxHold — never promoted, never failed.
async fn quiet(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    s.roll_out(h, &next(vec![])).await;
    let status = s.phase(Phase::Paused, 2, 60).await;
    let rec = s.rec.recording();
    assert_eq!(status.pause_reason, Some(PauseReason::HoldExpired));
    s.assert_events(&[EventReason::Held, EventReason::PausedForHuman])
        .await;
    let phases: Vec<Option<Phase>> = rec
        .statuses
        .iter()
        .filter(|s| s.status.observed_generation == Some(2))
        .map(|s| s.status.phase)
        .collect();
    assert!(
        !phases.contains(&Some(Phase::RolledBack)) && !phases.contains(&Some(Phase::Promoting)),
        "{phases:?}"
    );
    assert!(
        rec.statuses
            .iter()
            .filter(|s| s.status.observed_generation == Some(2))
            .all(|s| s.status.weight <= 50 && s.status.current_step_index == Some(0)),
        "never past the first step"
    );
    let verdicts: Vec<Verdict> = rec
        .timeline
        .rows
        .iter()
        .flat_map(|r| &r.records)
        .map(|r| r.verdict)
        .collect();
    assert!(verdicts.contains(&Verdict::NoData), "{verdicts:?}");
    assert!(
        !verdicts.contains(&Verdict::Fail) && !verdicts.contains(&Verdict::Pass),
        "probes and scrapes are never judged: {verdicts:?}"
    );
    assert!(
        h.cluster()
            .traffic()
            .is_some_and(|t| !t.counts().contains_key(&format!("{0}/{0}", s.ns()))),
        "the traffic generator left this rollout alone"
    );
}

/// The profile files the kubelet wrote into the pods of `ns` (`stable.yaml` of the profile
/// volume), with when each was written.
fn profile_files(h: &Harness, ns: &str) -> Vec<(SystemTime, String)> {
    let mut found = Vec::new();
    let Ok(pods) = std::fs::read_dir(h.pods_dir()) else {
        return found;
    };
    for pod in pods.flatten() {
        if !pod
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{ns}_"))
        {
            continue;
        }
        let Ok(volumes) = std::fs::read_dir(pod.path().join("volumes")) else {
            continue;
        };
        for v in volumes.flatten() {
            let file = v.path().join("stable.yaml");
            let written = std::fs::metadata(&file).and_then(|m| m.modified());
            if let (Ok(at), Ok(text)) = (written, std::fs::read_to_string(&file)) {
                found.push((at, text));
            }
        }
    }
    found
}

/// Unix seconds of `t`.
fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// In-app ranking-profile rollout with the ConfigMap reaching the pods late (the kubelet's sync
/// delay): no analysis run judges the canary variant before the pods have its profile; it is
/// judged once they serve it, and the rollout goes on.
async fn in_app(h: &Harness, s: &Scenario) {
    let _timeline = s.printed();
    let v2 = Revision {
        profile: Some(profile("v2", 0.3)),
        ..Revision::default()
    };
    let changed = SystemTime::now();
    s.roll_out(h, &v2).await;
    let delivered = wait_for("the experiment in every pod's profile file", 60, || {
        let files = profile_files(h, s.ns());
        let all = !files.is_empty() && files.iter().all(|(_, text)| text.contains("v2"));
        all.then(|| files.iter().map(|(at, _)| *at).max()).flatten()
    })
    .await;
    let delivered = ok(delivered);
    let late = delivered.duration_since(changed).unwrap_or_default();
    let status = s.phase(Phase::Succeeded, 2, 90).await;
    let rec = s.rec.recording();
    println!("in-app profile delivered {late:?} after the change");
    assert!(
        late >= Duration::from_secs(4),
        "the kubelet delivered the ConfigMap late ({late:?})"
    );
    // Runs evaluated before delivery (1 s of slack: status times are whole seconds).
    let runs: Vec<(i64, Vec<Verdict>)> = rec
        .statuses
        .iter()
        .filter(|s| s.status.observed_generation == Some(2))
        .filter_map(|s| {
            let a = s.status.analysis.as_ref()?;
            let at = a.at.as_ref()?.0.as_second();
            Some((at, a.records.iter().map(|r| r.verdict).collect()))
        })
        .collect();
    let before: Vec<&(i64, Vec<Verdict>)> = runs
        .iter()
        .filter(|(at, _)| *at < unix(delivered) - 1 && *at >= unix(changed))
        .collect();
    assert!(
        !before.is_empty(),
        "the analysis ran while the pods still served the old profile: {runs:?}"
    );
    assert!(
        before
            .iter()
            .flat_map(|(_, v)| v)
            .all(|v| !matches!(v, Verdict::Pass | Verdict::Fail)),
        "judged the canary variant before its pods served it: {before:?}"
    );
    assert!(
        runs.iter()
            .flat_map(|(_, v)| v)
            .any(|v| *v == Verdict::Pass),
        "judged once served: {runs:?}"
    );
    assert_eq!(status.weight, 0);
    s.assert_events(&[EventReason::Held, EventReason::Promoted])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_on_the_local_cluster_end_as_their_canaries_deserve() {
    let gw = |ns: &str, steps: Vec<Step>| Plan::new(ns, steps, timings());
    let plans = [
        (
            "1 healthy canary → Succeeded, then deleted",
            gw("healthy", steps(50, 1)),
        ),
        (
            "2 canary at 10% errors → RolledBack (roll-back tier)",
            gw("errors", steps(50, 4)),
        ),
        (
            "3 canary +4 s → Paused, kubectl feedroll promote → Succeeded",
            Plan {
                // Slow requests complete seconds late: a longer window holds enough of them.
                timings: Timings {
                    window: "8s",
                    ..timings()
                },
                ..gw("latency", steps(50, 0))
            },
        ),
        (
            "4 crash-looping canary → RolledBack",
            gw("crash", steps(50, 1)),
        ),
        (
            "5 unpullable image → CanaryNotReady, ProgressDeadlineExceeded",
            Plan {
                progress_deadline: "6s",
                ..gw("unpullable", steps(50, 1))
            },
        ),
        (
            "6 probes and scrapes only → held, Paused at maxHold",
            Plan {
                timings: Timings {
                    max_hold: "8s",
                    ..timings()
                },
                ..gw("quiet", steps(50, 1))
            },
        ),
    ];
    let setup = Setup {
        namespaces: plans.iter().map(|(_, p)| p.namespace.clone()).collect(),
        quiet: vec!["quiet".to_owned()],
        rate: 8.0,
        time_scale: time_scale(),
        sync_delay: Duration::from_secs(30),
    };
    let h = ok(Harness::start(&setup).await);
    let scenarios: Vec<Scenario> = plans
        .into_iter()
        .map(|(title, plan)| Scenario::new(&h, title, plan))
        .collect();
    futures::future::join_all(
        scenarios
            .iter()
            .map(|s| s.deploy_stable(&h, Revision::default())),
    )
    .await;
    println!("every rollout stable after {:?}", h.started().elapsed());

    let [s1, s2, s3, s4, s5, s6] = &scenarios[..] else {
        unreachable!("six scenarios")
    };
    futures::join!(
        healthy(&h, s1),
        errors(&h, s2),
        latency(&h, s3),
        crash(&h, s4),
        unpullable(&h, s5),
        quiet(&h, s6),
    );
    assert_no_denied(&h);
    println!("six scenarios in {:?}", h.started().elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_hold_then_resume_and_a_late_profile_is_not_judged_early() {
    let prom = Plan::new("promkill", steps(50, 1), timings());
    let lead = Plan::new("leader", steps(50, 4), timings());
    let inapp = Plan {
        replicas: 1,
        split: Split::InApp,
        ..Plan::new("inapp", steps(50, 0), timings())
    };
    let setup = Setup {
        namespaces: [&prom, &lead, &inapp]
            .iter()
            .map(|p| p.namespace.clone())
            .collect(),
        quiet: Vec::new(),
        rate: 8.0,
        time_scale: time_scale(),
        // 8 s at the time scale: the analysis runs several times before the pods get a change.
        sync_delay: Duration::from_secs(160),
    };
    let mut h = ok(Harness::start(&setup).await);
    let p = Scenario::new(
        &h,
        "8 Prometheus killed mid-step → held, then resumed",
        prom,
    );
    let l = Scenario::new(
        &h,
        "9 leading operator killed mid-rollout → the standby goes on",
        lead,
    );
    let i = Scenario::new(&h, "10 in-app profile, ConfigMap delivered late", inapp);
    let _timelines = (p.printed(), l.printed());
    let v1_profile = Revision {
        profile: Some(profile("v1", 0.25)),
        ..Revision::default()
    };
    futures::join!(
        p.deploy_stable(&h, Revision::default()),
        l.deploy_stable(&h, Revision::default()),
        i.deploy_stable(&h, v1_profile)
    );
    let v2 = next(vec![]);
    futures::join!(p.roll_out(&h, &v2), l.roll_out(&h, &v2));

    // Prometheus down while the canary takes 50%: the step holds.
    p.wait("canary serving at 50%", 2, 60, |s| {
        s.phase == Some(Phase::Progressing) && s.actual_weight == 50
    })
    .await;
    h.cluster_mut().kill_prometheus().await;
    let killed_at = h.started().elapsed();
    let held = p
        .wait("holding on Prometheus errors", 2, 30, |s| {
            s.message.as_deref().is_some_and(|m| m.contains("holding"))
                && s.analysis
                    .as_ref()
                    .is_some_and(|a| a.records.iter().any(|r| r.verdict == Verdict::Error))
        })
        .await;
    ok(h.cluster_mut()
        .restart_prometheus()
        .await
        .map_err(LocalError::from));
    let restarted_at = h.started().elapsed();
    println!("Prometheus down from {killed_at:?} to {restarted_at:?}");

    // The leader killed at the second step: the standby takes the Lease and goes on.
    l.wait("the second step", 2, 60, |s| {
        s.current_step_index >= Some(1)
    })
    .await;
    let killed = h.cluster_mut().kill_leader().await;
    let killed = killed.unwrap_or_else(|| panic!("no leader to kill"));
    println!(
        "killed the leading operator {killed} at {:?}",
        h.started().elapsed()
    );

    let (ps, ls) = futures::join!(
        p.phase(Phase::Succeeded, 2, 60),
        l.phase(Phase::Succeeded, 2, 90)
    );
    let prec = p.rec.recording();
    assert_eq!(held.weight, 50, "held at the step's weight: {held:#?}");
    p.assert_events(&[EventReason::Held, EventReason::Promoted])
        .await;
    let resumed = prec
        .statuses
        .iter()
        .find(|s| {
            s.status.observed_generation == Some(2) && s.status.phase == Some(Phase::Promoting)
        })
        .map(|s| s.at);
    assert!(
        resumed.is_some_and(|at| at > restarted_at),
        "went on after Prometheus came back ({resumed:?})"
    );
    assert!(
        !prec
            .statuses
            .iter()
            .any(|s| s.status.phase == Some(Phase::RolledBack)),
        "an outage never fails a rollout"
    );

    let leader = h.cluster().leader();
    assert!(
        leader.as_ref().is_some_and(|l| *l != killed),
        "the standby leads: {leader:?}"
    );
    let entered: Vec<i32> = ls
        .history
        .iter()
        .filter(|e| {
            e.phase == Some(Phase::Progressing)
                && matches!(e.decision, Decision::Started | Decision::StepAdvanced)
        })
        .filter_map(|e| e.step)
        .collect();
    let last_start = entered.iter().rposition(|s| *s == 0).unwrap_or(0);
    assert_eq!(
        entered[last_start..],
        [0, 1, 2, 3, 4],
        "every step entered once, in order: {:#?}",
        ls.history
    );
    l.assert_events(&[EventReason::StepAdvanced, EventReason::Promoted])
        .await;

    // Last, on the quiet cluster: the in-app profile change.
    in_app(&h, &i).await;
    assert_eq!(ps.weight, 0);
    assert_no_denied(&h);
    println!(
        "outages and in-app scenarios in {:?}",
        h.started().elapsed()
    );
}
