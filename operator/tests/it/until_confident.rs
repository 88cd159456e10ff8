//! Steps that end on evidence (`pause: {untilConfident, max}`): the step ends at the first
//! confident pass of every non-advisory check, a sequential check still gathering evidence
//! neither holds nor pauses before `max`, and past `max` it follows its hold policy.

use crate::support::brain as support;

use feedroll_crds::{Phase, SequentialEvidence, Verdict};
use support::{Sim, run, spec};

fn rollout(on_no_data: &str) -> Sim {
    Sim::rolling(spec(&format!(
        r#"
strategy:
  steps:
    - setWeight: 10
    - pause: {{untilConfident: true, max: 1h}}
    - setWeight: 100
analysis:
  defaultChecks: false
  interval: 1m
  checks:
    - {{name: errors, preset: errorRate, compare: {{mode: sequential, minEffect: 0.01}}, maxHold: 5m, onNoData: {on_no_data}}}
    - {{name: p95, preset: latencyQuantile, max: 0.5}}
"#
    )))
}

/// One analysis `secs` later: `errors` still gathering evidence (or `verdict`), `p95` passing.
fn look(sim: &mut Sim, secs: i64, verdict: Option<Verdict>) {
    sim.now += secs;
    let mut obs = sim.obs();
    let mut r = run(
        &sim.spec,
        sim.now,
        false,
        &[
            ("errors", verdict.unwrap_or(Verdict::NoData)),
            ("p95", Verdict::Pass),
        ],
    );
    if verdict.is_none() {
        // Judged counts, not yet confident: what the message reports.
        r.records[0].evidence = Some(SequentialEvidence {
            judged: true,
            trials_needed: Some(20_000),
            seconds_left: Some(1_200),
            ..SequentialEvidence::default()
        });
    }
    obs.analysis = Some(r);
    sim.observe(obs);
}

#[test]
fn the_step_ends_at_the_first_confident_pass_and_not_before() {
    let mut sim = rollout("hold");
    sim.tick(0);
    assert_eq!((sim.phase(), sim.step()), (Phase::Progressing, 0));
    // Gathering evidence does not block a setWeight step (the guardrail has not failed)...
    look(&mut sim, 60, None);
    assert_eq!(sim.step(), 1);
    // ...but the untilConfident step waits for a pass, without holding or pausing.
    for _ in 0..50 {
        look(&mut sim, 60, None);
        assert_eq!((sim.phase(), sim.step()), (Phase::Progressing, 1));
        assert!(sim.status.checks.iter().all(|c| c.holding_since.is_none()));
    }
    let analysis = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "AnalysisHealthy");
    assert_eq!(
        analysis.map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("Unknown", "GatheringEvidence"))
    );
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("gathering evidence: errors ~20000 more trials (~1200s)")
            && message.contains("s left of max 3600s"),
        "{message}"
    );
    look(&mut sim, 60, Some(Verdict::Pass));
    assert_eq!(sim.step(), 2, "{:?}", sim.status.message);
}

#[test]
fn undecided_at_max_holds_then_pauses_after_max_hold() {
    let mut sim = rollout("hold");
    sim.tick(0);
    look(&mut sim, 60, None);
    assert_eq!(sim.step(), 1);
    for _ in 0..60 {
        look(&mut sim, 60, None);
    }
    // Past max: the undecided check holds (maxHold 5m), then the rollout pauses for a human.
    assert_eq!(sim.phase(), Phase::Progressing);
    assert!(
        sim.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("max 3600s passed")),
        "{:?}",
        sim.status.message
    );
    assert!(sim.status.checks.iter().any(|c| c.holding_since.is_some()));
    for _ in 0..5 {
        look(&mut sim, 60, None);
    }
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("HoldExpired")
    );
    assert_eq!(sim.status.weight, 10);
}

#[test]
fn undecided_at_max_with_on_no_data_pause_pauses_at_once() {
    let mut sim = rollout("pause");
    sim.tick(0);
    look(&mut sim, 60, None);
    for _ in 0..59 {
        look(&mut sim, 60, None);
        assert_eq!(sim.phase(), Phase::Progressing, "{:?}", sim.status.message);
    }
    look(&mut sim, 60, None);
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status
            .pause_reason
            .map(feedroll_crds::PauseReason::as_str),
        Some("NoData")
    );
}

#[test]
fn a_sequential_fail_rolls_back_whatever_the_step() {
    let mut sim = rollout("hold");
    sim.tick(0);
    look(&mut sim, 60, None);
    assert_eq!(sim.step(), 1);
    for _ in 0..3 {
        look(&mut sim, 60, Some(Verdict::Fail));
    }
    assert_eq!(sim.phase(), Phase::RolledBack);
    assert_eq!(sim.status.weight, 0);
}

#[test]
fn the_step_requeues_exactly_at_its_max() {
    // An interval longer than what is left of max: the next look must not come later than max.
    let mut sim = Sim::rolling(spec(
        r#"
strategy:
  steps:
    - pause: {untilConfident: true, max: 90s}
    - setWeight: 100
analysis:
  defaultChecks: false
  interval: 1h
  fastInterval: 1h
  checks:
    - {name: errors, preset: errorRate, compare: {mode: sequential, minEffect: 0.01}}
    - {name: p95, preset: latencyQuantile, max: 0.5}
"#,
    ));
    sim.tick(0);
    assert_eq!((sim.phase(), sim.step()), (Phase::Progressing, 0));
    // Analyses ran (gathering evidence): the next one is an hour away, max is sooner.
    look(&mut sim, 30, None);
    let requeue = |sim: &Sim| sim.last.as_ref().and_then(|t| t.requeue_after);
    assert_eq!(requeue(&sim), Some(std::time::Duration::from_secs(60)));
    look(&mut sim, 59, None);
    assert_eq!(requeue(&sim), Some(std::time::Duration::from_secs(1)));
}
