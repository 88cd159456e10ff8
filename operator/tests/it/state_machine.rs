//! Table tests: one per roadmap rule (PRODUCT.md §2 policy table and rollout plan).

use crate::support::brain as support;

use feedroll_crds::{FeedRolloutStatus, Phase, Verdict};
use feedroll_operator::brain::{Action, CommandKind, EventReason, Observations, decide};
use support::*;

const MINIMAL: &str = "replicas: 4";

fn weights(actions: &[Action]) -> Vec<i32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetWeight { weight } => Some(*weight),
            _ => None,
        })
        .collect()
}

fn reasons(actions: &[Action]) -> Vec<EventReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn first_deployment_goes_straight_to_stable() {
    let spec = spec(MINIMAL);
    let obs = Observations {
        revision: "r1".into(),
        ..Default::default()
    };
    let t = decide(&spec, &FeedRolloutStatus::default(), &obs, at(0));
    assert_eq!(t.status.phase, Some(Phase::Promoting));
    assert!(t.actions.contains(&Action::PromoteStable {
        revision: "r1".into()
    }));
    assert_eq!(t.status.weight, 0);
    let obs = Observations {
        stable_ready_revision: Some("r1".into()),
        ..obs
    };
    let t = decide(&spec, &t.status, &obs, at(5));
    assert_eq!(t.status.phase, Some(Phase::Succeeded));
    assert_eq!(t.status.stable_revision.as_deref(), Some("r1"));
    assert_eq!(t.requeue_after, None, "a finished rollout rests");
}

#[test]
fn healthy_canary_walks_the_roadmap_plan_and_is_promoted() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    let t = sim.tick(0);
    assert_eq!(sim.phase(), Phase::Progressing);
    assert!(t.actions.contains(&Action::DeployCanary {
        revision: "r1".into()
    }));
    assert_eq!(weights(&t.actions), vec![10]);
    let mut seen = vec![sim.status.weight];
    let mut guard = 0;
    while sim.phase() != Phase::Promoting {
        sim.all_pass(60);
        if *seen.last().unwrap() != sim.status.weight {
            seen.push(sim.status.weight);
        }
        guard += 1;
        assert!(guard < 200, "stuck at {:?}", sim.status);
    }
    assert_eq!(seen, vec![10, 25, 50, 100]);
    // 15m + 30m + 30m of pauses at least.
    assert!(sim.now >= 75 * 60, "promoted after {}s", sim.now);
    let rollout_time = sim.now;
    assert!(
        rollout_time <= 80 * 60,
        "took {rollout_time}s with analysis passing every minute"
    );
    let t = sim.tick(5);
    let t_actions = t.actions.clone();
    assert_eq!(sim.phase(), Phase::Succeeded);
    assert_eq!(sim.status.stable_revision.as_deref(), Some("r1"));
    assert_eq!(sim.status.weight, 0);
    assert!(t_actions.contains(&Action::ScaleDownCanary));
}

#[test]
fn timed_pause_is_not_cut_short_by_passing_analysis() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.all_pass(60); // step 0 done -> pause 15m
    assert_eq!(sim.step(), 1);
    for _ in 0..13 {
        sim.all_pass(60);
        assert_eq!(sim.step(), 1);
    }
    sim.all_pass(120);
    assert_eq!(sim.step(), 2);
    assert_eq!(sim.status.weight, 25);
}

#[test]
fn error_rate_over_5_percent_rolls_back_in_one_transition() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    let t = sim.analyse(
        10,
        true,
        &[
            ("error-rate-critical", Verdict::Fail),
            ("availability", Verdict::Pass),
        ],
    );
    assert_eq!(t.status.phase, Some(Phase::RolledBack));
    assert_eq!(t.status.weight, 0);
    assert_eq!(weights(&t.actions), vec![0]);
    assert!(t.actions.contains(&Action::ScaleDownCanary));
    assert!(reasons(&t.actions).contains(&EventReason::RolledBack));
    assert!(
        t.status
            .message
            .as_deref()
            .unwrap()
            .contains("error-rate-critical")
    );
}

#[test]
fn availability_under_99_percent_rolls_back() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.analyse(10, true, &[("availability", Verdict::Fail)]);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::RolledBack, 0));
}

#[test]
fn crash_looping_canary_rolls_back_at_once() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.all_pass(60);
    sim.canary.crash_looping = true;
    let t = sim.tick(1);
    assert_eq!(
        (t.status.phase, t.status.weight),
        (Some(Phase::RolledBack), 0)
    );
    assert!(t.status.message.as_deref().unwrap().contains("crash"));
}

#[test]
fn blocking_failures_hold_then_roll_back_past_the_limit() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    for i in 1..=2 {
        sim.analyse(60, false, &[("error-rate", Verdict::Fail)]);
        assert_eq!(
            sim.phase(),
            Phase::Progressing,
            "failure {i} is within the limit"
        );
        assert_eq!(sim.step(), 0, "never promotes while a blocking check fails");
    }
    sim.analyse(60, false, &[("error-rate", Verdict::Fail)]);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::RolledBack, 0));
}

#[test]
fn a_pass_resets_the_consecutive_failure_count() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.analyse(60, false, &[("latency-p95", Verdict::Fail)]);
    sim.analyse(60, false, &[("latency-p95", Verdict::Fail)]);
    sim.analyse(60, false, &[("latency-p95", Verdict::Pass)]);
    sim.analyse(60, false, &[("latency-p95", Verdict::Fail)]);
    sim.analyse(60, false, &[("latency-p95", Verdict::Fail)]);
    assert_eq!(sim.phase(), Phase::Progressing);
}

#[test]
fn advisory_failures_warn_but_do_not_block() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    let names = [
        "error-rate",
        "latency-p95",
        "error-rate-critical",
        "availability",
        "latency-p95-critical",
    ];
    let mut verdicts: Vec<(&str, Verdict)> = names.iter().map(|n| (*n, Verdict::Pass)).collect();
    verdicts.push(("latency-p95-target", Verdict::Fail));
    verdicts.push(("cache-hit-ratio", Verdict::Fail));
    let t = sim.analyse(60, false, &verdicts);
    assert!(reasons(&t.actions).contains(&EventReason::AnalysisFailed));
    assert_eq!(sim.step(), 1, "advanced despite advisory failures");
}

#[test]
fn latency_over_one_second_pauses_for_a_human_who_can_resume_or_abort() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.analyse(
        60,
        false,
        &[
            ("latency-p95-critical", Verdict::Fail),
            ("latency-p95", Verdict::Fail),
        ],
    );
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("CheckFailed")
    );
    assert_eq!(sim.status.weight, 10, "pausing keeps the weight");
    // A paused rollout waits for the human: blocking failures do not escalate meanwhile.
    for _ in 0..5 {
        sim.analyse(
            60,
            false,
            &[
                ("latency-p95-critical", Verdict::Fail),
                ("latency-p95", Verdict::Fail),
            ],
        );
        assert_eq!(sim.phase(), Phase::Paused);
    }
    // A human resumes or aborts.
    let mut resumed = Sim::rolling(sim.spec.clone());
    resumed.status = sim.status.clone();
    resumed.now = sim.now;
    resumed.command(CommandKind::Resume);
    assert_eq!(resumed.phase(), Phase::Progressing);
    sim.command(CommandKind::Abort);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Aborted, 0));
    // A roll-back-tier failure still rolls back while paused.
    let mut paused = Sim::rolling(sim.spec.clone());
    paused.tick(0);
    paused.command(CommandKind::Pause);
    assert_eq!(paused.phase(), Phase::Paused);
    paused.analyse(10, true, &[("error-rate-critical", Verdict::Fail)]);
    assert_eq!(paused.phase(), Phase::RolledBack);
}

#[test]
fn no_data_holds_never_fails_never_promotes_then_pauses_after_max_hold() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    let t = sim.analyse(
        60,
        false,
        &[
            ("error-rate", Verdict::NoData),
            ("latency-p95", Verdict::Error),
        ],
    );
    assert!(reasons(&t.actions).contains(&EventReason::Held));
    for _ in 0..9 {
        sim.analyse(
            60,
            false,
            &[
                ("error-rate", Verdict::NoData),
                ("latency-p95", Verdict::Error),
            ],
        );
        assert_eq!(sim.phase(), Phase::Progressing);
        assert_eq!(sim.step(), 0);
        assert!(
            sim.status
                .checks
                .iter()
                .all(|c| c.consecutive_failures == 0)
        );
        assert!(
            sim.status.message.as_deref().unwrap().contains("holding"),
            "{:?}",
            sim.status.message
        );
    }
    sim.analyse(
        60,
        false,
        &[
            ("error-rate", Verdict::NoData),
            ("latency-p95", Verdict::Error),
        ],
    );
    assert_eq!(
        sim.phase(),
        Phase::Paused,
        "after maxHold (10m) a human is asked"
    );
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("HoldExpired")
    );
    // Data is back and a human resumes: the rollout goes on.
    sim.command(CommandKind::Resume);
    sim.all_pass(60);
    assert_eq!(sim.step(), 1);
}

#[test]
fn on_no_data_pause_pauses_at_once() {
    let mut sim = Sim::rolling(spec(
        "analysis: {defaultChecks: false, checks: [{name: p99, preset: latencyQuantile, quantile: 0.99, max: 1, onNoData: pause}]}",
    ));
    sim.tick(0);
    sim.analyse(60, false, &[("p99", Verdict::NoData)]);
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("NoData")
    );
}

#[test]
fn rollback_is_sticky_until_retry_or_new_revision() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.analyse(10, true, &[("error-rate-critical", Verdict::Fail)]);
    for _ in 0..5 {
        sim.all_pass(60);
        assert_eq!((sim.phase(), sim.status.weight), (Phase::RolledBack, 0));
    }
    sim.command(CommandKind::Resume);
    assert_eq!(
        sim.phase(),
        Phase::RolledBack,
        "resume does not undo a rollback"
    );
    let t = sim.command(CommandKind::Retry);
    assert_eq!(weights(&t.actions), vec![10]);
    assert_eq!((sim.phase(), sim.step()), (Phase::Progressing, 0));
    sim.analyse(10, true, &[("error-rate-critical", Verdict::Fail)]);
    assert_eq!(sim.phase(), Phase::RolledBack);
    sim.revision = "r2".into();
    let t = sim.tick(1);
    assert!(t.actions.contains(&Action::DeployCanary {
        revision: "r2".into()
    }));
    assert_eq!(
        (sim.phase(), sim.step(), sim.status.weight),
        (Phase::Progressing, 0, 10)
    );
}

#[test]
fn a_command_is_applied_once() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    let mut obs = sim.obs();
    obs.commands = vec![feedroll_operator::brain::Command {
        id: "a".into(),
        kind: CommandKind::PromoteStep,
        author: None,
    }];
    sim.observe(obs.clone());
    assert_eq!(sim.step(), 1);
    sim.now += 1;
    sim.observe(obs);
    assert_eq!(sim.step(), 1, "the same command id is not applied twice");
}

#[test]
fn new_revision_mid_rollout_restarts_from_the_first_step() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.command(CommandKind::PromoteStep);
    sim.command(CommandKind::PromoteStep);
    assert_eq!(sim.status.weight, 25);
    sim.revision = "r2".into();
    let t = sim.tick(1);
    assert_eq!(weights(&t.actions), vec![0, 10]);
    assert_eq!(
        (sim.step(), sim.status.canary_revision.as_deref()),
        (0, Some("r2"))
    );
    assert!(
        sim.status.checks.is_empty() && sim.status.analysis.is_none(),
        "old evidence is dropped"
    );
}

#[test]
fn going_back_to_the_stable_revision_ends_the_rollout() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.revision = "r0".into();
    let t = sim.tick(1);
    assert!(t.actions.contains(&Action::ScaleDownCanary));
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Succeeded, 0));
}

#[test]
fn indefinite_pause_step_waits_for_promote_or_resume() {
    let mut sim = Sim::rolling(spec(
        "strategy: {steps: [{setWeight: 20}, {pause: {}}, {setWeight: 60}]}\nanalysis: {defaultChecks: false}",
    ));
    sim.tick(0);
    sim.tick(1);
    assert_eq!((sim.phase(), sim.step()), (Phase::Paused, 1));
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("PauseStep")
    );
    for _ in 0..10 {
        sim.tick(3600);
        assert_eq!(sim.phase(), Phase::Paused);
    }
    sim.command(CommandKind::Resume);
    assert_eq!(
        (sim.phase(), sim.step(), sim.status.weight),
        (Phase::Progressing, 2, 60)
    );
    sim.tick(1);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Promoting, 100));
}

#[test]
fn spec_paused_holds_until_unset() {
    let mut sim = Sim::rolling(spec("paused: true"));
    sim.tick(0);
    assert_eq!(sim.phase(), Phase::Paused);
    sim.all_pass(3600);
    assert_eq!((sim.phase(), sim.step()), (Phase::Paused, 0));
    sim.spec.paused = false;
    sim.all_pass(60);
    assert_eq!(sim.phase(), Phase::Progressing);
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    let t = sim.command(CommandKind::PromoteFull);
    assert!(t.actions.contains(&Action::PromoteStable {
        revision: "r1".into()
    }));
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Promoting, 100));
}

/// A human promotes a canary whose latency they accept: the blocking latency check goes on
/// failing during the promotion, and the promotion still finishes (nothing is left for a
/// blocking check to block); the roll-back tier still rolls back a promotion.
#[test]
fn a_promotion_counts_only_roll_back_tier_failures() {
    let slow = [
        ("latency-p95-critical", Verdict::Fail),
        ("latency-p95", Verdict::Fail),
    ];
    let mut sim = Sim::rolling(spec(MINIMAL));
    // The stable pods take a while to roll to the promoted revision.
    sim.stable_ready = false;
    sim.tick(0);
    sim.analyse(60, false, &slow);
    assert_eq!(sim.phase(), Phase::Paused);
    sim.command(CommandKind::PromoteFull);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Promoting, 100));
    let mut bad_roll_back = Sim::rolling(sim.spec.clone());
    bad_roll_back.status = sim.status.clone();
    bad_roll_back.now = sim.now;
    for i in 1..=5 {
        let t = sim.analyse(60, false, &slow);
        assert_eq!(
            sim.phase(),
            Phase::Promoting,
            "blocking failure {i} of a promotion"
        );
        assert!(
            reasons(&t.actions).contains(&EventReason::AnalysisFailed),
            "each failure is still reported"
        );
    }
    let latency = sim.status.checks.iter().find(|c| c.name == "latency-p95");
    assert_eq!(
        latency.map(|c| c.consecutive_failures),
        Some(1),
        "only the failure before the promotion counts"
    );
    sim.stable_ready = true;
    sim.tick(1);
    assert_eq!((sim.phase(), sim.status.weight), (Phase::Succeeded, 0));
    bad_roll_back.analyse(10, true, &[("error-rate-critical", Verdict::Fail)]);
    assert_eq!(
        (bad_roll_back.phase(), bad_roll_back.status.weight),
        (Phase::RolledBack, 0)
    );
}

#[test]
fn canary_not_ready_keeps_the_step() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.canary.ready = false;
    sim.tick(0);
    sim.all_pass(60);
    assert_eq!(sim.step(), 0);
    assert!(sim.status.message.as_deref().unwrap().contains("ready"));
    sim.canary.ready = true;
    sim.all_pass(60);
    assert_eq!(sim.step(), 1);
}

#[test]
fn in_app_rollouts_need_no_canary_pods() {
    let mut sim = Sim::rolling(spec(
        "strategy: {traffic: {inApp: {}}, steps: [{setWeight: 25}, {setWeight: 100}]}",
    ));
    sim.canary.ready = false;
    sim.tick(0);
    sim.all_pass(60);
    assert_eq!(sim.step(), 1);
}

#[test]
fn invalid_spec_fails_visibly_and_recovers() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    sim.spec.strategy = Some(
        serde_json::from_value(
            serde_json::json!({"steps": [{"setWeight": 50}, {"setWeight": 10}]}),
        )
        .unwrap(),
    );
    let t = sim.tick(1);
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert!(reasons(&t.actions).contains(&EventReason::InvalidSpec));
    assert_eq!(sim.status.weight, 10, "an unusable spec moves no traffic");
    sim.spec.strategy = None;
    sim.tick(1);
    assert_eq!((sim.phase(), sim.step()), (Phase::Progressing, 0));
}

#[test]
fn conditions_follow_the_phase_and_only_flip_on_change() {
    let mut sim = Sim::rolling(spec(MINIMAL));
    sim.tick(0);
    let cond = |s: &FeedRolloutStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap()
    };
    let first = cond(&sim.status, "Progressing");
    assert_eq!(first.status, "True");
    sim.tick(30);
    assert_eq!(
        cond(&sim.status, "Progressing").last_transition_time,
        first.last_transition_time
    );
    sim.analyse(10, true, &[("availability", Verdict::Fail)]);
    assert_eq!(cond(&sim.status, "Healthy").status, "False");
    assert_eq!(cond(&sim.status, "Progressing").status, "False");
    assert_ne!(
        cond(&sim.status, "Progressing").last_transition_time,
        first.last_transition_time
    );
    assert_eq!(sim.status.observed_generation, Some(1));
}

#[test]
fn requeue_is_due_at_the_next_check_or_pause_end() {
    let mut sim = Sim::rolling(spec(
        "strategy: {steps: [{pause: {duration: 5s}}, {setWeight: 100}]}\nanalysis: {defaultChecks: false}",
    ));
    let t = sim.tick(0);
    // The pause ends in 5 s, before any pod-health check (fast interval 10 s): exactly then.
    assert_eq!(t.requeue_after, Some(std::time::Duration::from_secs(5)));
}

#[test]
fn passing_and_advisory_events_are_not_repeated_every_run() {
    let mut sim = Sim::rolling(spec("strategy: {steps: [{setWeight: 10}, {pause: {}}]}"));
    sim.tick(0);
    let names = [
        "error-rate",
        "latency-p95",
        "error-rate-critical",
        "availability",
        "latency-p95-critical",
        "latency-p95-target",
        "cache-hit-ratio",
    ];
    let mut verdicts: Vec<(&str, Verdict)> = names.iter().map(|n| (*n, Verdict::Pass)).collect();
    verdicts[6].1 = Verdict::Fail;
    let count = |t: &feedroll_operator::brain::Transition, r: EventReason| {
        reasons(&t.actions).iter().filter(|x| **x == r).count()
    };
    // The cache check is advisory and fails throughout: warned once.
    let first = sim.analyse(60, false, &verdicts);
    assert_eq!(count(&first, EventReason::AnalysisFailed), 1);
    let second = sim.analyse(60, false, &verdicts);
    assert_eq!(count(&second, EventReason::AnalysisFailed), 0);
    verdicts[6].1 = Verdict::Pass;
    let healthy = sim.analyse(60, false, &verdicts);
    assert_eq!(count(&healthy, EventReason::AnalysisPassed), 1);
    let again = sim.analyse(60, false, &verdicts);
    assert_eq!(count(&again, EventReason::AnalysisPassed), 0);
}
