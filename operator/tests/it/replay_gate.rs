//! The replay gate in the brain (`strategy.replayGate`): before the first step of an in-app
//! rollout nothing reaches users until the stable pod's replay decides; a confident regression
//! rolls back with the figures in status and history, a pass starts the first step, and an
//! inconclusive or failed replay holds (asking again every interval), then pauses for a human
//! after maxHold — never skipped silently.

use crate::support::brain as support;

use std::time::Duration;

use feedroll_crds::{Phase, ReplayFigure, ReplayMetric, ReplayVerdict, history::Decision};
use feedroll_operator::brain::{
    Action, CommandKind, EventReason, ReplayAnswer, ReplayOutcome, analysis_due, replay_due,
};
use support::{Sim, at, spec};

fn rollout() -> Sim {
    Sim::rolling(spec(
        r#"
rankingProfile: {name: canary}
strategy:
  traffic: {inApp: {}}
  replayGate: {window: 2h, maxDrop: {gaucFinish: 0.005, ndcgWatch: 0.01}}
  steps:
    - setWeight: 10
    - pause: {duration: 10m}
    - setWeight: 100
analysis:
  interval: 1m
  maxHold: 5m
"#,
    ))
}

fn figure(metric: ReplayMetric, lower: f64, upper: f64) -> ReplayFigure {
    ReplayFigure {
        metric: Some(metric),
        stable: Some(0.7),
        canary: Some(0.7 + (lower + upper) / 2.0),
        difference: Some((lower + upper) / 2.0),
        lower: Some(lower),
        upper: Some(upper),
        max_drop: None,
    }
}

fn answered(finish: (f64, f64)) -> ReplayOutcome {
    ReplayOutcome::Answered(ReplayAnswer {
        exposures: 4_000,
        confidence: 0.95,
        figures: vec![
            figure(ReplayMetric::GaucFinish, finish.0, finish.1),
            figure(ReplayMetric::NdcgWatch, -0.002, 0.004),
            figure(ReplayMetric::LikeAuc, -0.01, 0.01),
        ],
    })
}

/// `secs` later, the reconciler's turn: a replay outcome only when the brain says one is due.
fn turn(sim: &mut Sim, secs: i64, outcome: &ReplayOutcome) -> bool {
    sim.now += secs;
    let mut obs = sim.obs();
    let due = replay_due(&sim.spec, &sim.status, at(sim.now));
    if let Some(ask) = &due {
        assert_eq!(ask.window, Duration::from_secs(7200));
        obs.replay = Some(outcome.clone());
    }
    sim.observe(obs);
    due.is_some()
}

fn gate_verdict(sim: &Sim) -> Option<ReplayVerdict> {
    sim.status.replay_gate.as_ref().and_then(|g| g.verdict)
}

fn weights(sim: &Sim) -> Vec<i32> {
    sim.last
        .iter()
        .flat_map(|t| &t.actions)
        .filter_map(|a| match a {
            Action::SetWeight { weight } => Some(*weight),
            _ => None,
        })
        .collect()
}

#[test]
fn a_confident_regression_rolls_back_before_any_user_sees_the_canary() {
    let mut sim = rollout();
    sim.tick(0);
    assert_eq!(
        (sim.phase(), sim.step(), sim.status.weight),
        (Phase::Progressing, -1, 0)
    );
    assert_eq!(gate_verdict(&sim), Some(ReplayVerdict::Pending));
    // No analysis while the canary serves no one.
    assert_eq!(analysis_due(&sim.spec, &sim.status, at(sim.now)), None);
    assert!(turn(&mut sim, 1, &answered((-0.04, -0.02))));
    assert_eq!(sim.phase(), Phase::RolledBack);
    assert_eq!(sim.status.weight, 0);
    assert!(weights(&sim).iter().all(|w| *w == 0));
    let events: Vec<EventReason> = sim
        .last
        .iter()
        .flat_map(|t| &t.actions)
        .filter_map(|a| match a {
            Action::Event { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert!(
        events.contains(&EventReason::ReplayRegression),
        "{events:?}"
    );
    let gate = sim.status.replay_gate.clone().expect("gate status");
    assert_eq!(gate.verdict, Some(ReplayVerdict::Regression));
    assert_eq!(gate.exposures, Some(4_000));
    assert_eq!(gate.figures.len(), 3);
    assert_eq!(gate.figures[0].max_drop, Some(0.005));
    assert_eq!(gate.figures[0].upper, Some(-0.02));
    let last = sim.status.history.last().expect("history");
    assert_eq!(last.decision, Decision::RolledBack);
    assert!(
        last.reason.contains("ReplayRegression") && last.reason.contains("gaucFinish -0.0300"),
        "{}",
        last.reason
    );
    // Resting: nothing more is asked.
    assert!(!turn(&mut sim, 600, &answered((-0.04, -0.02))));
}

#[test]
fn a_pass_starts_the_first_step() {
    let mut sim = rollout();
    sim.tick(0);
    assert!(turn(&mut sim, 1, &answered((-0.004, 0.01))));
    assert_eq!(
        (sim.phase(), sim.step(), sim.status.weight),
        (Phase::Progressing, 0, 10)
    );
    assert_eq!(gate_verdict(&sim), Some(ReplayVerdict::Passed));
    assert!(replay_due(&sim.spec, &sim.status, at(sim.now + 3600)).is_none());
}

#[test]
fn undecided_replays_hold_ask_again_then_pause_and_a_resume_waives_the_gate() {
    for outcome in [
        answered((-0.03, 0.01)), // straddles -maxDrop
        ReplayOutcome::TooFewExposures("holds 12 exposures; needs 100".into()),
        ReplayOutcome::Failed("connection refused".into()),
    ] {
        let mut sim = rollout();
        sim.tick(0);
        assert!(turn(&mut sim, 1, &outcome));
        assert_eq!(
            (sim.phase(), sim.step(), sim.status.weight),
            (Phase::Progressing, -1, 0)
        );
        assert!(matches!(
            gate_verdict(&sim),
            Some(ReplayVerdict::Inconclusive | ReplayVerdict::Error)
        ));
        let message = sim.status.message.clone().unwrap_or_default();
        assert!(
            message.contains("holding before the first step"),
            "{message}"
        );
        // Asked again each interval (not before), never moving on by itself.
        assert!(!turn(&mut sim, 30, &outcome));
        let mut asked = 0;
        while sim.phase() == Phase::Progressing && sim.now < 600 {
            asked += usize::from(turn(&mut sim, 30, &outcome));
            assert_eq!(sim.status.weight, 0);
        }
        assert!(asked >= 3, "{outcome:?}: asked {asked} times");
        assert_eq!(sim.phase(), Phase::Paused, "{outcome:?}");
        assert_eq!(
            sim.status
                .pause_reason
                .map(feedroll_crds::PauseReason::as_str),
            Some("ReplayGate")
        );
        assert!(sim.now >= 301, "paused only after maxHold");
        assert!(!turn(&mut sim, 60, &outcome), "paused: not asked");
        sim.command(CommandKind::Resume);
        assert_eq!(
            (sim.phase(), sim.step(), sim.status.weight),
            (Phase::Progressing, 0, 10)
        );
        assert_eq!(gate_verdict(&sim), Some(ReplayVerdict::Waived));
    }
}

#[test]
fn a_gate_without_an_answer_holds_forever_and_a_promote_waives_it() {
    let mut sim = rollout();
    sim.tick(0);
    for _ in 0..100 {
        sim.tick(60);
        assert_eq!(
            (sim.phase(), sim.step(), sim.status.weight),
            (Phase::Progressing, -1, 0)
        );
    }
    sim.command(CommandKind::PromoteStep);
    assert_eq!((sim.step(), sim.status.weight), (0, 10));
    assert_eq!(gate_verdict(&sim), Some(ReplayVerdict::Waived));
}

#[test]
fn a_retry_after_a_regression_asks_again() {
    let mut sim = rollout();
    sim.tick(0);
    turn(&mut sim, 1, &answered((-0.04, -0.02)));
    assert_eq!(sim.phase(), Phase::RolledBack);
    sim.command(CommandKind::Retry);
    assert_eq!((sim.phase(), sim.step()), (Phase::Progressing, -1));
    assert_eq!(gate_verdict(&sim), Some(ReplayVerdict::Pending));
    assert!(turn(&mut sim, 1, &answered((0.0, 0.01))));
    assert_eq!(sim.step(), 0);
}

#[test]
fn a_gate_removed_from_the_spec_while_pending_lets_the_first_step_start() {
    let mut sim = rollout();
    sim.tick(0);
    assert_eq!(sim.step(), -1);
    if let Some(s) = sim.spec.strategy.as_mut() {
        s.replay_gate = None;
    }
    sim.tick(1);
    assert_eq!(
        (sim.phase(), sim.step(), sim.status.weight),
        (Phase::Progressing, 0, 10)
    );
}
