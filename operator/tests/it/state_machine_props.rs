//! Property tests of the brain over random plans and random sequences of observations and time.

use crate::support::brain as support;
use crate::support::generators;

use feedroll_crds::{
    AnalysisRun, CheckRecord, FeedRolloutSpec, FeedRolloutStatus, Phase, ResolvedStep,
    SequentialEvidence, Tier, Verdict,
};
use feedroll_operator::brain::{Action, Command, EventReason, Observations, PodHealth, decide};
use generators::{Event, Mix};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use support::at;

#[derive(Clone, Debug)]
enum StepGen {
    Weight(i32),
    Pause(Option<u32>),
    /// `pause: {untilConfident: true, max: <seconds>}`.
    UntilConfident(u32),
}

const TIERS: [Tier; 4] = [Tier::Blocking, Tier::Advisory, Tier::Rollback, Tier::Pause];

/// The progress deadline of a generated plan: seconds, and whether it pauses (else rolls back).
type Deadline = (u32, bool);

fn plan() -> impl Strategy<Value = (Vec<StepGen>, Vec<usize>, Deadline)> {
    let steps = prop::collection::vec(
        prop_oneof![
            3 => (0..=100i32).prop_map(StepGen::Weight),
            2 => prop::option::weighted(0.8, 0..300u32).prop_map(StepGen::Pause),
            1 => (1..900u32).prop_map(StepGen::UntilConfident),
        ],
        1..7,
    );
    let tiers = prop::collection::vec(0..TIERS.len(), 0..5);
    (steps, tiers, (1..900u32, any::<bool>()))
}

fn events(checks: usize) -> impl Strategy<Value = Vec<Event>> {
    let mix = Mix {
        advance: 0..240,
        pass: 4,
        fail: 2,
        ready: 0.85,
        crash: 0.03,
        command: 0.12,
        new_revision: 0.03,
    };
    prop::collection::vec(generators::event(mix, checks), 1..60)
}

fn build_spec(steps: &[StepGen], tiers: &[usize], (deadline, pause): Deadline) -> FeedRolloutSpec {
    // Weights sorted so the plan is valid.
    let mut weights: Vec<i32> = steps
        .iter()
        .filter_map(|s| match s {
            StepGen::Weight(w) => Some(*w),
            _ => None,
        })
        .collect();
    weights.sort();
    let mut w = weights.into_iter();
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| match s {
            StepGen::Weight(_) => serde_json::json!({"setWeight": w.next()}),
            StepGen::Pause(Some(d)) => serde_json::json!({"pause": {"duration": format!("{d}s")}}),
            StepGen::Pause(None) => serde_json::json!({"pause": {}}),
            StepGen::UntilConfident(max) => {
                serde_json::json!({"pause": {"untilConfident": true, "max": format!("{max}s")}})
            }
        })
        .collect();
    let mut checks: Vec<serde_json::Value> = tiers
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"name": format!("c{i}"), "preset": "errorRate", "max": 0.01, "tier": TIERS[*t].as_str(), "maxHold": "5m"}))
        .collect();
    // A sequential check (untilConfident steps need one).
    checks.push(serde_json::json!({"name": "seq", "preset": "errorRate", "compare": {"mode": "sequential", "minEffect": 0.01}, "maxHold": "5m"}));
    serde_json::from_value(serde_json::json!({
        "template": {"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}},
        "strategy": {"steps": steps},
        "analysis": {"defaultChecks": false, "interval": "30s", "fastInterval": "10s", "checks": checks},
        "progressDeadline": format!("{deadline}s"),
        "onProgressDeadline": if pause { "pause" } else { "rollback" },
    }))
    .unwrap()
}

/// Highest setWeight among the steps up to `index`.
fn cap(steps: &[ResolvedStep], index: i32) -> i32 {
    steps
        .iter()
        .take(usize::try_from(index).unwrap_or(0) + 1)
        .filter_map(|s| match s {
            ResolvedStep::SetWeight(w) => Some(*w),
            ResolvedStep::Pause(_) | ResolvedStep::UntilConfident(_) => None,
        })
        .max()
        .unwrap_or(0)
}

fn active(s: &FeedRolloutStatus) -> bool {
    match s.phase {
        Some(Phase::Progressing | Phase::Paused) => true,
        Some(Phase::Promoting) => s.stable_revision.is_some(),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn brain_properties((steps, tiers, deadline) in plan(), seed_events in events(6), fresh_start in prop::bool::weighted(0.15)) {
        let spec = build_spec(&steps, &tiers, deadline);
        let resolved = spec.resolved_strategy().unwrap();
        let checks = spec.resolved_analysis().unwrap().checks;
        let mut status = if fresh_start {
            FeedRolloutStatus::default()
        } else {
            FeedRolloutStatus { phase: Some(Phase::Succeeded), stable_revision: Some("r0".into()), canary_revision: Some("r0".into()), ..Default::default() }
        };
        let mut now = 0i64;
        let mut revision = "r1".to_owned();
        let mut command_id = 0;
        for event in seed_events {
            now += event.advance;
            if let Some(r) = event.new_revision {
                revision = format!("r{r}");
            }
            let analysis = event.verdicts.as_ref().map(|(fast, verdicts)| AnalysisRun {
                at: Some(Time(at(now))),
                fast: *fast,
                records: checks
                    .iter()
                    .zip(verdicts)
                    .filter(|(c, _)| !*fast || c.tier == Tier::Rollback)
                    .map(|(c, v)| CheckRecord {
                        name: c.name.clone(),
                        tier: c.tier,
                        at: Some(Time(at(now))),
                        query: "q".into(),
                        threshold: c.threshold_text(),
                        verdict: *v,
                        reason: v.as_str().into(),
                        evidence: (c.sequential.is_some() && *v == Verdict::NoData && event.gathering)
                            .then(|| SequentialEvidence { judged: true, trials_needed: Some(1_000), ..Default::default() }),
                        ..Default::default()
                    })
                    .collect(),
            });
            let commands: Vec<Command> = event.command.iter().map(|(kind, _)| {
                command_id += 1;
                Command { id: format!("c{command_id}"), kind: *kind, author: None }
            }).collect();
            let stable_ready_revision = if event.stable_ready && status.phase == Some(Phase::Promoting) {
                status.canary_revision.clone()
            } else {
                status.stable_revision.clone()
            };
            let obs = Observations {
                revision: revision.clone(),
                generation: Some(1),
                analysis,
                canary: PodHealth { ready: event.ready, crash_looping: event.crash, ..PodHealth::default() },
                stable_ready_revision,
                commands,
                replay: None,
            };
            let t = decide(&spec, &status, &obs, at(now));

            // Same inputs, same outputs.
            prop_assert_eq!(&t, &decide(&spec, &status, &obs, at(now)));

            let new = &t.status;
            let same_revision = status.canary_revision.as_deref() == Some(revision.as_str()) && status.stable_revision.is_some();

            // The weight never exceeds the current step's weight.
            match new.phase {
                Some(Phase::Progressing | Phase::Paused) => {
                    let idx = new.current_step_index.unwrap_or(0);
                    prop_assert!(new.weight <= cap(&resolved.steps, idx), "weight {} over step {} cap", new.weight, idx);
                }
                Some(Phase::Promoting) => prop_assert!(new.weight == 100 || new.stable_revision.is_none()),
                Some(Phase::RolledBack | Phase::Aborted | Phase::Succeeded) => prop_assert_eq!(new.weight, 0),
                Some(Phase::Failed) | None => {}
            }

            // Never promotes while a non-advisory check fails or has no data (humans excepted).
            let human = event.command.is_some();
            let advanced = same_revision
                && matches!(status.phase, Some(Phase::Progressing))
                && !human
                && (new.phase == Some(Phase::Promoting) || new.current_step_index > status.current_step_index);
            // On an untilConfident step every one needs a (confident) pass; elsewhere a sequential
            // check may still be gathering evidence (it blocks on fail and on missing data).
            if advanced {
                let since = status.step_started_at.as_ref().map(|t| t.0).unwrap();
                let left = status.current_step_index.and_then(|i| resolved.steps.get(usize::try_from(i).ok()?)).copied();
                let confident_step = matches!(left, Some(ResolvedStep::UntilConfident(_)));
                for c in checks.iter().filter(|c| c.tier != Tier::Advisory) {
                    let record = new.analysis.as_ref().and_then(|a| a.records.iter().find(|r| r.name == c.name));
                    let passed = |r: &CheckRecord| {
                        r.verdict == Verdict::Pass || (!confident_step && c.sequential.is_some() && r.gathering_evidence())
                    };
                    prop_assert!(
                        record.is_some_and(|r| passed(r) && r.at.as_ref().is_some_and(|t| t.0 > since)),
                        "advanced past a step while {} was {:?}", c.name, record.map(|r| r.verdict)
                    );
                }
            }

            // An untilConfident step never pauses or holds on evidence still being gathered
            // before its max.
            if same_revision && !human && status.phase == Some(Phase::Progressing)
                && new.current_step_index == status.current_step_index
                && let Some(i) = new.current_step_index
                && let Some(ResolvedStep::UntilConfident(max)) = resolved.steps.get(usize::try_from(i).unwrap_or(usize::MAX)).copied()
                && let Some(started) = new.step_started_at.as_ref()
                && at(now) < support::after(started.0, max)
                && let Some(run) = &obs.analysis
                && let Some(seq) = run.records.iter().find(|r| r.name == "seq" && r.gathering_evidence())
                && status.checks.iter().find(|c| c.name == "seq").is_none_or(|c| c.holding_since.is_none())
            {
                let state = new.checks.iter().find(|c| c.name == seq.name);
                prop_assert!(state.is_none_or(|c| c.holding_since.is_none()), "held on evidence being gathered");
                // Another check holding since earlier may expire its own hold now: that pause is
                // not the sequential check's.
                let other_holding = status.checks.iter().any(|c| c.name != "seq" && c.holding_since.is_some());
                prop_assert!(
                    new.pause_reason.map(feedroll_crds::PauseReason::as_str) != Some("HoldExpired")
                        || status.phase == Some(Phase::Paused)
                        || other_holding,
                    "paused on an expired hold while only the sequential check was gathering evidence"
                );
            }

            // A roll-back-tier failure or a crash loop goes to weight 0 in one transition.
            let rollback_failure = obs.analysis.as_ref().is_some_and(|run| {
                let newer = status.analysis.as_ref().and_then(|a| a.at.as_ref()).is_none_or(|old| run.at.as_ref().is_some_and(|n| n > old));
                newer && run.records.iter().any(|r| r.tier == Tier::Rollback && r.verdict == Verdict::Fail)
            });
            if same_revision && active(&status) && !human && (event.crash || rollback_failure) {
                prop_assert_eq!(new.phase, Some(Phase::RolledBack));
                prop_assert_eq!(new.weight, 0);
            }

            // Once a human looks (Paused) or the canary is being promoted, only the roll-back
            // tier and a crash loop roll back: a blocking check has no step left to block.
            if same_revision && !human && !event.crash && !rollback_failure
                && matches!(status.phase, Some(Phase::Paused | Phase::Promoting))
            {
                prop_assert_ne!(new.phase, Some(Phase::RolledBack), "rolled back while {:?}", status.phase);
            }

            // No data and provider errors never count as failures.
            if same_revision && !human && let Some(run) = &obs.analysis {
                for r in run.records.iter().filter(|r| matches!(r.verdict, Verdict::NoData | Verdict::Error)) {
                    let before = status.checks.iter().find(|c| c.name == r.name).map_or(0, |c| c.consecutive_failures);
                    let after = new.checks.iter().find(|c| c.name == r.name).map_or(0, |c| c.consecutive_failures);
                    prop_assert!(after <= before, "{} counted no-data as a failure", r.name);
                }
            }

            // Progress deadline: never stuck past it, never acting before it, and observing
            // unready pods never restarts the clock.
            let deadline_end = |t: &Time| support::after(t.0, resolved.progress_deadline);
            if new.phase == Some(Phase::Progressing)
                && let Some(since) = &new.canary_waiting_since
            {
                prop_assert!(at(now) < deadline_end(since), "still waiting for pods past the deadline");
            }
            let deadline_acted = t.actions.iter().any(|a| matches!(a, Action::Event { reason: EventReason::ProgressDeadlineExceeded, .. }));
            if deadline_acted {
                prop_assert!(
                    status.canary_waiting_since.as_ref().is_some_and(|s| at(now) >= deadline_end(s)),
                    "acted before the deadline"
                );
                // A step rolls back or pauses; a promotion is only flagged (nothing to roll back).
                prop_assert!(matches!(new.phase, Some(Phase::RolledBack | Phase::Paused | Phase::Promoting)));
                if status.phase == Some(Phase::Promoting) && new.phase == Some(Phase::Promoting) {
                    let progressing = new.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
                    prop_assert_eq!(progressing.reason.as_str(), "ProgressDeadlineExceeded");
                }
            }
            if same_revision && !human && !event.ready
                && status.phase == Some(Phase::Progressing)
                && new.phase == Some(Phase::Progressing)
                && new.current_step_index == status.current_step_index
                && status.canary_waiting_since.is_some()
            {
                prop_assert_eq!(&new.canary_waiting_since, &status.canary_waiting_since);
            }

            // Every phase has a way out, with a human-visible reason.
            prop_assert!(new.phase.is_some());
            prop_assert!(new.message.as_deref().is_some_and(|m| !m.is_empty()), "no message in {:?}", new.phase);
            match new.phase {
                Some(Phase::Paused) => {
                    prop_assert!(new.pause_reason.is_some());
                    prop_assert!(t.requeue_after.is_some());
                }
                Some(Phase::Progressing | Phase::Promoting) => prop_assert!(t.requeue_after.is_some()),
                _ => {}
            }
            status = t.status;
        }
    }
}
