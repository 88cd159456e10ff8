//! Property tests of the decision history (`status.history`) the brain keeps: over random plans
//! and random sequences of analysis runs, pod health, human commands, new revisions and time,
//! the history stays bounded, each decision appends at most one entry and never rewrites an
//! earlier one, every change of phase or step is in it, and the same inputs give the same
//! history.

use crate::support::brain as support;
use crate::support::generators;

use feedroll_crds::history::{Decision, HISTORY_LIMIT, HistoryEntry};
use feedroll_crds::{FeedRolloutSpec, FeedRolloutStatus, Phase, Verdict};
use feedroll_operator::brain::{Command, Observations, PodHealth, decide};
use generators::{Event, Mix};
use proptest::prelude::*;
use support::{at, run};

const CHECKS: [&str; 3] = ["rb", "blk", "ps"];

fn spec(pause_step: bool) -> FeedRolloutSpec {
    let mut steps = vec![
        serde_json::json!({"setWeight": 10}),
        serde_json::json!({"pause": {"duration": "60s"}}),
    ];
    if pause_step {
        steps.push(serde_json::json!({"pause": {}}));
    }
    steps.push(serde_json::json!({"setWeight": 50}));
    serde_json::from_value(serde_json::json!({
        "template": {"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}},
        "strategy": {"steps": steps},
        "progressDeadline": "300s",
        "analysis": {"defaultChecks": false, "interval": "30s", "fastInterval": "10s", "checks": [
            {"name": "rb", "preset": "errorRate", "max": 0.01, "tier": "rollback", "maxHold": "5m"},
            {"name": "blk", "preset": "errorRate", "max": 0.01, "tier": "blocking", "maxHold": "5m"},
            {"name": "ps", "preset": "errorRate", "max": 0.01, "tier": "pause", "maxHold": "5m"},
        ]},
    }))
    .expect("a valid spec")
}

fn event() -> impl Strategy<Value = Event> {
    generators::event(
        Mix {
            advance: 0..120,
            pass: 6,
            fail: 1,
            ready: 0.9,
            crash: 0.02,
            command: 0.15,
            new_revision: 0.04,
        },
        CHECKS.len(),
    )
}

/// The observations of `e` at second `now`, given the status so far.
fn observations(
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    e: &Event,
    now: i64,
    revision: &str,
    id: usize,
) -> Observations {
    Observations {
        revision: revision.to_owned(),
        generation: Some(1),
        analysis: e.verdicts.as_ref().map(|(fast, verdicts)| {
            let named: Vec<(&str, Verdict)> =
                CHECKS.iter().copied().zip(verdicts.clone()).collect();
            run(spec, now, *fast, &named)
        }),
        canary: PodHealth {
            ready: e.ready,
            crash_looping: e.crash,
            ..PodHealth::default()
        },
        stable_ready_revision: if status.phase == Some(Phase::Promoting) {
            status.canary_revision.clone()
        } else {
            status.stable_revision.clone()
        },
        commands: e
            .command
            .iter()
            .map(|(kind, signed)| Command {
                id: format!("{}/{id}", kind.as_str()),
                kind: *kind,
                author: signed.then(|| format!("user-{id}")),
            })
            .collect(),
        replay: None,
    }
}

/// Drives one rollout through `events`; returns every status, the first one included.
fn drive(spec: &FeedRolloutSpec, events: &[Event]) -> Vec<FeedRolloutStatus> {
    let mut status = FeedRolloutStatus {
        phase: Some(Phase::Succeeded),
        stable_revision: Some("r0".into()),
        canary_revision: Some("r0".into()),
        ..Default::default()
    };
    let mut statuses = vec![status.clone()];
    let (mut now, mut revision) = (0, "r1".to_owned());
    for (i, e) in events.iter().enumerate() {
        now += e.advance;
        if let Some(r) = e.new_revision {
            revision = format!("r{r}");
        }
        let obs = observations(spec, &status, e, now, &revision, i);
        status = decide(spec, &status, &obs, at(now)).status;
        statuses.push(status.clone());
    }
    statuses
}

/// How many entries `new` added after `old`, if `new` is `old` with its oldest entries dropped
/// and at most one appended; `None` when an earlier entry was changed or more were added.
fn appended(old: &[HistoryEntry], new: &[HistoryEntry]) -> Option<usize> {
    (0..=1).find(|&added| {
        new.len() >= added
            && old.ends_with(&new[..new.len() - added])
            && new.len() == (old.len() + added).min(HISTORY_LIMIT)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn history_is_bounded_append_only_complete_and_deterministic(
        pause_step in any::<bool>(),
        events in prop::collection::vec(event(), 1..120),
    ) {
        let spec = spec(pause_step);
        let statuses = drive(&spec, &events);
        for (i, pair) in statuses.windows(2).enumerate() {
            let (old, new) = (&pair[0], &pair[1]);
            prop_assert!(new.history.len() <= HISTORY_LIMIT, "{} entries", new.history.len());
            let added = appended(&old.history, &new.history);
            prop_assert!(added.is_some(), "decision {i} rewrote the history:\n{:?}\n{:?}", old.history, new.history);
            let added = added.unwrap_or_default();
            let moved = new.phase != old.phase || new.current_step_index != old.current_step_index;
            if moved && new.phase.is_some() {
                prop_assert_eq!(added, 1, "decision {} moved {:?}/{:?} to {:?}/{:?} without an entry", i, old.phase, old.current_step_index, new.phase, new.current_step_index);
            }
            if added == 1 {
                let entry = &new.history[new.history.len() - 1];
                prop_assert_eq!(entry.phase, new.phase);
                prop_assert_eq!(entry.step, new.current_step_index);
                prop_assert_eq!(entry.weight, new.weight);
                prop_assert_eq!(&entry.at.0, &at(clock_at(&events, i)));
                // A command applied in this decision is named, with its author.
                if new.last_command_id != old.last_command_id {
                    let command = entry.command.as_ref();
                    prop_assert_eq!(command.map(|c| c.id.as_str()), new.last_command_id.as_deref());
                    let signed = events[i].command.is_some_and(|(_, signed)| signed);
                    prop_assert_eq!(command.and_then(|c| c.author.clone()).is_some(), signed);
                } else {
                    prop_assert!(entry.command.is_none());
                }
                if entry.decision == Decision::RolledBack && let Some(check) = &entry.check {
                    prop_assert_ne!(check.verdict, Verdict::Pass);
                }
            }
        }
        // Deterministic: the same inputs give the same history.
        prop_assert_eq!(drive(&spec, &events), statuses);
    }
}

/// The clock of decision `i`.
fn clock_at(events: &[Event], i: usize) -> i64 {
    events[..=i].iter().map(|e| e.advance).sum()
}

#[test]
fn a_rollback_names_the_check_and_its_value() {
    let spec = spec(false);
    let events = [
        Event {
            advance: 1,
            verdicts: None,
            ready: true,
            crash: false,
            command: None,
            new_revision: None,
            stable_ready: false,
            gathering: false,
        },
        Event {
            advance: 10,
            verdicts: Some((true, vec![Verdict::Fail, Verdict::Pass, Verdict::Pass])),
            ready: true,
            crash: false,
            command: None,
            new_revision: None,
            stable_ready: false,
            gathering: false,
        },
    ];
    let statuses = drive(&spec, &events);
    let last = statuses.last().and_then(|s| s.history.last()).cloned();
    let entry = last.expect("an entry");
    assert_eq!(entry.decision, Decision::RolledBack);
    assert_eq!(entry.phase, Some(Phase::RolledBack));
    let check = entry.check.expect("the decisive check");
    assert_eq!(
        (check.name.as_str(), check.verdict, check.value),
        ("rb", Verdict::Fail, Some(1.0))
    );
    assert_eq!(check.threshold, "<= 0.01");
    let decisions: Vec<Decision> = statuses[2].history.iter().map(|e| e.decision).collect();
    assert_eq!(decisions, [Decision::Started, Decision::RolledBack]);
}
