//! `kubectl feedroll status`: one rollout in detail — where it is and why, its steps, each
//! check against its threshold, pod issues, and the last decisions.

use std::fmt::Write as _;

use feedroll_crds::{FeedRollout, FeedRolloutStatus, Phase, ResolvedStep};
use k8s_openapi::jiff::Timestamp;

use super::timeline::entries;
use super::{Palette, age, duration, step_of, table, value};

/// How many decisions the status view ends with (`timeline` shows all).
pub const RECENT_DECISIONS: usize = 5;

/// Where a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepState {
    Done,
    Current,
    /// The step the rollout was rolled back or aborted at.
    Stopped,
    Next,
}

impl StepState {
    fn as_str(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Current => "current",
            StepState::Stopped => "stopped",
            StepState::Next => "next",
        }
    }
}

/// The status view of `fr` at `now`.
pub fn status(fr: &FeedRollout, now: Timestamp, p: Palette) -> String {
    let default = FeedRolloutStatus::default();
    let st = fr.status.as_ref().unwrap_or(&default);
    let strategy = fr.spec.resolved_strategy().ok();
    let steps = strategy.as_ref().map(|s| s.steps.len());
    let mut out = String::new();
    let mut line = |label: &str, text: String| {
        let _ = writeln!(out, "{label:<11}{text}");
    };
    line("Name:", fr.metadata.name.clone().unwrap_or_default());
    line(
        "Namespace:",
        fr.metadata.namespace.clone().unwrap_or_default(),
    );
    let pause = st
        .pause_reason
        .filter(|_| st.phase == Some(Phase::Paused))
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    line("Phase:", format!("{}{pause}", p.phase(st.phase)));
    line(
        "Message:",
        st.message.clone().unwrap_or_else(|| "-".to_owned()),
    );
    let since = st
        .step_started_at
        .as_ref()
        .map(|t| format!(", for {}", age(t.0, now)))
        .unwrap_or_default();
    line(
        "Step:",
        format!("{}{since}", step_of(st.current_step_index, steps)),
    );
    line(
        "Weight:",
        format!("{}% desired, {}% actual", st.weight, st.actual_weight),
    );
    let rev = |r: &Option<String>| r.clone().unwrap_or_else(|| "-".to_owned());
    line(
        "Revisions:",
        format!(
            "stable {}, canary {}",
            rev(&st.stable_revision),
            rev(&st.canary_revision)
        ),
    );
    line(
        "Replicas:",
        format!(
            "{} ({} stable, {} canary), {} ready",
            st.replicas, st.stable_replicas, st.canary_replicas, st.ready_replicas
        ),
    );
    if let Some(id) = &st.last_command_id {
        line("Command:", format!("last applied {id}"));
    }
    if fr.spec.paused {
        line("Paused:", "spec.paused is true".to_owned());
    }

    if let Some(strategy) = &strategy {
        let _ = writeln!(out, "\nSteps:");
        let mut rows = vec![["STEP", "STATE", "ACTION"].map(str::to_owned).to_vec()];
        for (i, step) in strategy.steps.iter().enumerate() {
            let state = step_state(st, i);
            let action = match step {
                ResolvedStep::SetWeight(w) => format!("setWeight {w}"),
                ResolvedStep::Pause(Some(d)) => format!("pause {}", duration(*d)),
                ResolvedStep::Pause(None) => "pause until a human promotes".to_owned(),
                ResolvedStep::UntilConfident(max) => {
                    format!(
                        "pause until every check is confident, at most {}",
                        duration(*max)
                    )
                }
            };
            rows.push(vec![(i + 1).to_string(), state.as_str().to_owned(), action]);
        }
        out.push_str(&table(&rows, "  "));
    }

    let records = st
        .analysis
        .as_ref()
        .map(|a| a.records.as_slice())
        .unwrap_or_default();
    if !records.is_empty() {
        let at = st
            .analysis
            .as_ref()
            .and_then(|a| a.at.as_ref())
            .map(|t| format!(" ({} ago)", age(t.0, now)))
            .unwrap_or_default();
        let _ = writeln!(out, "\nChecks{at}:");
        let mut rows = vec![
            [
                "CHECK",
                "TIER",
                "VERDICT",
                "VALUE",
                "THRESHOLD",
                "FAILURES",
                "REASON",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for r in records {
            let state = st.checks.iter().find(|c| c.name == r.name);
            let failures = state.map_or(0, |c| c.consecutive_failures);
            let held = state
                .and_then(|c| c.holding_since.as_ref())
                .map(|t| format!("held for {}; ", age(t.0, now)))
                .unwrap_or_default();
            rows.push(vec![
                r.name.clone(),
                r.tier.as_str().to_owned(),
                p.verdict(r.verdict),
                value(r.value),
                r.threshold.clone(),
                failures.to_string(),
                format!("{held}{}", r.reason),
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }

    if let Some(gate) = &st.replay_gate {
        let _ = writeln!(out, "\nReplay gate:");
        for l in gate.summary_lines() {
            let _ = writeln!(out, "  {l}");
        }
    }

    if !st.canary_pod_issues.is_empty() {
        let _ = writeln!(out, "\nPod issues:");
        for issue in &st.canary_pod_issues {
            let _ = writeln!(out, "  {issue}");
        }
    }

    if !st.history.is_empty() {
        let shown = st.history.len().min(RECENT_DECISIONS);
        let _ = writeln!(
            out,
            "\nLast decisions ({shown} of {}; `kubectl feedroll timeline {}` shows all):",
            st.history.len(),
            fr.metadata.name.as_deref().unwrap_or_default()
        );
        out.push_str(&entries(
            fr,
            &st.history[st.history.len() - shown..],
            p,
            "  ",
        ));
    }
    out
}

fn step_state(st: &FeedRolloutStatus, index: usize) -> StepState {
    let current = st.current_step_index.and_then(|i| usize::try_from(i).ok());
    match (st.phase, current) {
        (Some(Phase::Succeeded | Phase::Promoting), _) => StepState::Done,
        (_, Some(c)) if index < c => StepState::Done,
        (Some(Phase::Progressing | Phase::Paused), Some(c)) if index == c => StepState::Current,
        (Some(Phase::RolledBack | Phase::Aborted), Some(c)) if index == c => StepState::Stopped,
        _ => StepState::Next,
    }
}
