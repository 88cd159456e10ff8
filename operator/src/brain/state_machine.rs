//! The transition function.

use std::time::Duration;

use feedroll_crds::{
    AnalysisRun, ApiError, CheckRecord, CheckState, ConditionStatus, DeadlinePolicy,
    FeedRolloutSpec, FeedRolloutStatus, HoldPolicy, PauseReason, Phase, PodIssue, PodIssueReason,
    ReplayVerdict, ResolvedAnalysis, ResolvedCheck, ResolvedPlan, ResolvedStep, ResolvedStrategy,
    Tier, TrafficMode, Verdict,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::actions::{Action, EventReason, EventType, Transition};
use super::conditions::{
    self, CONDITION_ANALYSIS, CONDITION_HEALTHY, CONDITION_PAUSED, CONDITION_PROGRESSING,
};
use super::observations::{CommandKind, Observations};
use super::replay_gate::{self, ReplayOutcome};
use super::{after, evidence, ts};

/// Decides what happens next. Pure: the same inputs always give the same output.
///
/// - A new revision (template or ranking profile changed) restarts from the first step; the very
///   first revision of a FeedRollout is deployed straight to stable (`Promoting`).
/// - Steps advance only when the current one is done (weight set and canary ready, or the pause
///   elapsed) *and* every non-advisory check has passed since the step started. No data and
///   provider errors never pass and never count as failures: the step holds, and pauses for a
///   human after `maxHold`.
/// - A roll-back-tier failure, blocking failures past `consecutiveFailuresAllowed` or a
///   crash-looping canary go to weight 0 (`RolledBack`) in this one transition.
/// - A `setWeight` step that asks for canary pods waits for them at most `progressDeadline`
///   (from `status.canaryWaitingSince`), then rolls back or pauses (`onProgressDeadline`); pod
///   issues that waiting cannot fix (image pulls, container config, scheduling) are reported at
///   once with a `CanaryNotReady` Event.
/// - `RolledBack` and `Aborted` stay until a new revision or a retry command.
pub fn decide(
    spec: &FeedRolloutSpec,
    status: &FeedRolloutStatus,
    obs: &Observations,
    now: Timestamp,
) -> Transition {
    let mut m = Machine {
        st: status.clone(),
        actions: Vec::new(),
        now,
        entered_step: false,
        promotion_overdue: false,
    };
    m.st.observed_generation = obs.generation.or(status.observed_generation);
    let ResolvedPlan { strategy, analysis } = match spec.resolved_plan() {
        Ok(r) => r,
        Err(e) => {
            m.fail(&e);
            return m.finish(None, None);
        }
    };
    let plan = Plan {
        strategy: &strategy,
        analysis: &analysis,
        replicas: spec.replicas,
    };
    m.run(spec, &plan, obs);
    m.finish(Some(&strategy), Some(&analysis))
}

struct Plan<'a> {
    strategy: &'a ResolvedStrategy,
    analysis: &'a ResolvedAnalysis,
    /// `spec.replicas`: how finely replica-ratio traffic can express a weight.
    replicas: i32,
}

struct Machine {
    st: FeedRolloutStatus,
    /// A step was entered in this transition: its completion is judged from the next one on
    /// (what was observed so far predates the step).
    entered_step: bool,
    /// A promotion's pods are not ready past the progress deadline.
    promotion_overdue: bool,
    actions: Vec<Action>,
    now: Timestamp,
}

/// Reason of the `Progressing` condition of a promotion past its progress deadline.
const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

impl Machine {
    fn event(&mut self, type_: EventType, reason: EventReason, message: impl Into<String>) {
        self.actions.push(Action::Event {
            type_,
            reason,
            message: message.into(),
        });
    }

    fn set_weight(&mut self, weight: i32) {
        if self.st.weight != weight {
            self.st.weight = weight;
            self.actions.push(Action::SetWeight { weight });
        }
    }

    fn phase(&self) -> Option<Phase> {
        self.st.phase
    }

    /// A canary exists that analysis and pod health judge.
    fn canary_active(&self) -> bool {
        super::schedule::canary_active(&self.st)
    }

    fn run(&mut self, spec: &FeedRolloutSpec, plan: &Plan<'_>, obs: &Observations) {
        if self.phase() == Some(Phase::Failed) {
            // The spec resolves again: start the revision over.
            self.st.canary_revision = None;
            self.st.phase = None;
        }
        self.handle_revision(plan, &obs.revision);
        self.handle_commands(plan, obs);
        if self.canary_active() && obs.canary.crash_looping {
            self.roll_back("canary pods are crash-looping".to_owned());
        }
        if let Some(run) = &obs.analysis {
            let newer = match (
                run.at.as_ref(),
                self.st.analysis.as_ref().and_then(|a| a.at.as_ref()),
            ) {
                (Some(new), Some(old)) => new > old,
                _ => true,
            };
            if newer && self.canary_active() {
                self.process_run(plan, run);
            }
        }
        if spec.paused && self.phase() == Some(Phase::Progressing) {
            self.pause(
                PauseReason::SpecPaused,
                "spec.paused is true; set it to false to continue".to_owned(),
            );
        } else if !spec.paused
            && self.phase() == Some(Phase::Paused)
            && self.st.pause_reason == Some(PauseReason::SpecPaused)
        {
            self.resume(plan, "spec.paused is false");
        }
        match self.phase() {
            Some(Phase::Progressing) if !self.entered_step && replay_gate::awaiting(&self.st) => {
                self.await_replay(plan, obs);
            }
            Some(Phase::Progressing) if !self.entered_step => self.progress(plan, obs),
            Some(Phase::Promoting)
                if obs.stable_ready_revision.is_some()
                    && obs.stable_ready_revision == self.st.canary_revision =>
            {
                self.succeed();
            }
            Some(Phase::Promoting) => self.wait_for_promotion(plan, &obs.canary.issues),
            _ => {}
        }
    }

    fn handle_revision(&mut self, plan: &Plan<'_>, rev: &str) {
        let same_canary = self.st.canary_revision.as_deref() == Some(rev);
        if self.st.stable_revision.is_none() {
            if !(same_canary && self.phase() == Some(Phase::Promoting)) {
                // First deployment: nothing to compare a canary with, deploy straight to stable.
                self.reset_for(rev);
                self.st.phase = Some(Phase::Promoting);
                self.st.current_step_index = None;
                self.st.step_started_at = None;
                // The progress deadline covers the first pods too.
                self.st.canary_waiting_since = Some(Time(self.now));
                self.st.message = Some(format!(
                    "first deployment: stable pods move to revision {rev}"
                ));
                self.actions.push(Action::PromoteStable {
                    revision: rev.to_owned(),
                });
                self.event(
                    EventType::Normal,
                    EventReason::RolloutStarted,
                    format!("first deployment of revision {rev}"),
                );
            }
            return;
        }
        if same_canary {
            return;
        }
        if self.st.stable_revision.as_deref() == Some(rev) {
            let was_canary = self.st.canary_revision.clone();
            self.reset_for(rev);
            self.st.phase = Some(Phase::Succeeded);
            self.st.current_step_index = None;
            self.st.step_started_at = None;
            self.set_weight(0);
            self.actions.push(Action::ScaleDownCanary);
            self.st.message = Some(format!("spec is back at the stable revision {rev}"));
            if was_canary.is_some() {
                self.event(
                    EventType::Normal,
                    EventReason::Reverted,
                    format!("spec went back to stable revision {rev}; canary removed"),
                );
            }
            return;
        }
        self.start(plan, rev, EventReason::RolloutStarted);
    }

    /// No step waits for canary pods any more.
    fn stop_waiting_for_pods(&mut self) {
        self.st.canary_waiting_since = None;
        self.st.canary_pod_issues.clear();
    }

    fn reset_for(&mut self, rev: &str) {
        self.stop_waiting_for_pods();
        self.st.canary_revision = Some(rev.to_owned());
        self.st.checks.clear();
        self.st.analysis = None;
        self.st.last_analysis_at = None;
        self.st.last_fast_analysis_at = None;
        self.st.pause_reason = None;
        self.st.rolled_back_at = None;
        self.st.replay_gate = None;
    }

    fn start(&mut self, plan: &Plan<'_>, rev: &str, reason: EventReason) {
        self.reset_for(rev);
        self.st.phase = Some(Phase::Progressing);
        self.set_weight(0);
        self.actions.push(Action::DeployCanary {
            revision: rev.to_owned(),
        });
        let from = self.st.stable_revision.clone().unwrap_or_default();
        self.event(
            EventType::Normal,
            reason,
            format!("rolling out revision {rev} over stable {from}"),
        );
        if let Some(gate) = &plan.strategy.replay_gate {
            // Before the first step: the replay gate decides whether any user sees the canary.
            self.st.current_step_index = None;
            self.st.step_started_at = None;
            self.st.replay_gate = Some(replay_gate::pending(rev));
            self.entered_step = true;
            self.st.message = Some(format!(
                "replay gate: a stable pod ranks the exposures of the last {}s with both profiles before the first step",
                gate.window.as_secs()
            ));
            return;
        }
        self.enter_step(plan, 0);
    }

    /// Before the first step, with the replay gate undecided: judge the pod's answer, if this
    /// turn brought one (see [`replay_gate`]).
    fn await_replay(&mut self, plan: &Plan<'_>, obs: &Observations) {
        let Some(gate) = &plan.strategy.replay_gate else {
            // The gate left the spec: nothing holds the first step any more.
            self.enter_step(plan, 0);
            return;
        };
        let Some(outcome) = &obs.replay else {
            return;
        };
        let judged = replay_gate::judge(gate, outcome);
        let now = Time(self.now);
        let rev = self.st.canary_revision.clone().unwrap_or_default();
        let g = self
            .st
            .replay_gate
            .get_or_insert_with(|| replay_gate::pending(&rev));
        let was = g.verdict;
        g.verdict = Some(judged.verdict);
        g.reason = judged.reason.clone();
        g.since.get_or_insert(now.clone());
        g.at = Some(now);
        // The figures are always those of this verdict (none when the pod gave none).
        let answer = match outcome {
            ReplayOutcome::Answered(a) => Some(a),
            _ => None,
        };
        g.exposures = answer.map(|a| a.exposures);
        g.confidence = answer.map(|a| a.confidence);
        g.figures = judged.figures;
        let since = g.since.as_ref().map_or(self.now, ts);
        match judged.verdict {
            ReplayVerdict::Regression => self.stop(
                Phase::RolledBack,
                EventReason::ReplayRegression,
                format!(
                    "rolled back before any user saw the canary: ReplayRegression: {}",
                    judged.reason
                ),
            ),
            ReplayVerdict::Passed => {
                self.event(
                    EventType::Normal,
                    EventReason::ReplayPassed,
                    format!("replay gate passed: {}", judged.reason),
                );
                self.enter_step(plan, 0);
            }
            verdict => {
                let what = format!("replay gate {}: {}", verdict.as_str(), judged.reason);
                if self.now >= after(since, gate.max_hold) {
                    self.pause(
                        PauseReason::ReplayGate,
                        format!(
                            "paused for a human before the first step: {what} for longer than maxHold {}s; resume to go on without the gate, or abort",
                            gate.max_hold.as_secs()
                        ),
                    );
                    return;
                }
                if was != Some(verdict) {
                    self.event(
                        EventType::Warning,
                        EventReason::Held,
                        format!("{what}; holding before the first step"),
                    );
                }
                self.st.message = Some(format!(
                    "holding before the first step: {what}; asking again every {}s, pausing after maxHold {}s",
                    plan.analysis.interval.as_secs(),
                    gate.max_hold.as_secs()
                ));
            }
        }
    }

    /// A human (or a promotion) moved on while the replay gate was undecided.
    fn waive_replay_gate(&mut self, why: &str) {
        if replay_gate::awaiting(&self.st)
            && let Some(g) = &mut self.st.replay_gate
        {
            g.verdict = Some(ReplayVerdict::Waived);
            g.reason = why.to_owned();
        }
    }

    fn handle_commands(&mut self, plan: &Plan<'_>, obs: &Observations) {
        let start = match &self.st.last_command_id {
            Some(last) => obs
                .commands
                .iter()
                .position(|c| &c.id == last)
                .map_or(0, |i| i + 1),
            None => 0,
        };
        for command in obs.commands.iter().skip(start) {
            self.st.last_command_id = Some(command.id.clone());
            self.apply_command(plan, command.kind);
        }
    }

    fn apply_command(&mut self, plan: &Plan<'_>, kind: CommandKind) {
        let phase = self.phase();
        let applied = match (kind, phase) {
            (CommandKind::PromoteStep, Some(Phase::Progressing | Phase::Paused)) => {
                self.st.phase = Some(Phase::Progressing);
                self.st.pause_reason = None;
                // Before the first step (replay gate): promoting starts the first step.
                let next = self.st.current_step_index.map_or(0, |i| i + 1);
                self.event(
                    EventType::Normal,
                    EventReason::StepAdvanced,
                    "promoted one step by a human",
                );
                self.enter_step(plan, next);
                true
            }
            (CommandKind::PromoteFull, Some(Phase::Progressing | Phase::Paused)) => {
                self.st.pause_reason = None;
                self.promote("promoted fully by a human");
                true
            }
            (CommandKind::Pause, Some(Phase::Progressing)) => {
                self.pause(
                    PauseReason::Command,
                    "paused by a human; resume or promote to continue".to_owned(),
                );
                true
            }
            (CommandKind::Resume, Some(Phase::Paused)) => {
                self.resume(plan, "resumed by a human");
                true
            }
            (CommandKind::Abort, Some(Phase::Progressing | Phase::Paused)) => {
                self.stop(
                    Phase::Aborted,
                    EventReason::Aborted,
                    "aborted by a human: all traffic back on stable".to_owned(),
                );
                true
            }
            (CommandKind::Abort, Some(Phase::Promoting)) if self.st.stable_revision.is_some() => {
                self.stop(
                    Phase::Aborted,
                    EventReason::Aborted,
                    "aborted by a human during promotion: all traffic back on stable".to_owned(),
                );
                true
            }
            (CommandKind::Retry, Some(Phase::RolledBack | Phase::Aborted)) => {
                if let Some(rev) = self.st.canary_revision.clone() {
                    self.start(plan, &rev, EventReason::Retried);
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !applied {
            let phase = phase.map_or("(none)", Phase::as_str);
            self.event(
                EventType::Warning,
                EventReason::CommandIgnored,
                format!("command {} does not apply in phase {phase}", kind.as_str()),
            );
        }
    }

    fn enter_step(&mut self, plan: &Plan<'_>, index: i32) {
        self.waive_replay_gate("moved on without the replay gate: a human promoted or resumed, or the gate left the spec");
        let steps = &plan.strategy.steps;
        self.entered_step = true;
        self.st.current_step_index = Some(index);
        self.st.step_started_at = Some(Time(self.now));
        let Some(step) = usize::try_from(index)
            .ok()
            .and_then(|i| steps.get(i))
            .copied()
        else {
            self.promote("all steps done");
            return;
        };
        let n = steps.len();
        self.stop_waiting_for_pods();
        match step {
            ResolvedStep::SetWeight(w) => {
                self.set_weight(w);
                if needs_canary_pods(&plan.strategy.traffic, w) {
                    // The progress deadline counts from the moment the step asks for pods.
                    self.st.canary_waiting_since = Some(Time(self.now));
                }
                self.warn_weight_skew(plan, w);
                self.st.message = Some(format!(
                    "step {}/{n}: weight {w}%, waiting for ready canary pods and passing analysis",
                    index + 1
                ));
                self.event(
                    EventType::Normal,
                    EventReason::StepAdvanced,
                    format!("step {}/{n}: setWeight {w}", index + 1),
                );
            }
            ResolvedStep::Pause(Some(d)) => {
                self.st.message = Some(format!(
                    "step {}/{n}: pause {}s at weight {}%",
                    index + 1,
                    d.as_secs(),
                    self.st.weight
                ));
                self.event(
                    EventType::Normal,
                    EventReason::StepAdvanced,
                    format!("step {}/{n}: pause {}s", index + 1, d.as_secs()),
                );
            }
            ResolvedStep::UntilConfident(max) => {
                self.st.message = Some(format!(
                    "step {}/{n}: gathering evidence at weight {}% (at most {}s)",
                    index + 1,
                    self.st.weight,
                    max.as_secs()
                ));
                self.event(
                    EventType::Normal,
                    EventReason::StepAdvanced,
                    format!(
                        "step {}/{n}: pause until every check is confident, at most {}s",
                        index + 1,
                        max.as_secs()
                    ),
                );
            }
            ResolvedStep::Pause(None) => {
                self.event(
                    EventType::Normal,
                    EventReason::StepAdvanced,
                    format!("step {}/{n}: pause until a human promotes", index + 1),
                );
                self.pause(
                    PauseReason::PauseStep,
                    format!(
                        "step {}/{n} waits for a human: promote or resume to continue",
                        index + 1
                    ),
                );
            }
        }
    }

    /// A `WeightSkew` warning when replica-ratio traffic cannot express `weight` within
    /// [`super::SKEW_TOLERANCE`] points with `spec.replicas` pods.
    fn warn_weight_skew(&mut self, plan: &Plan<'_>, weight: i32) {
        if plan.strategy.traffic != TrafficMode::ReplicaRatio {
            return;
        }
        let Some(real) = super::expressed_weight(plan.replicas, weight) else {
            return;
        };
        if (real - weight).abs() > super::SKEW_TOLERANCE {
            let canary = super::canary_replicas(plan.replicas, weight).min(plan.replicas);
            self.event(
                EventType::Warning,
                EventReason::WeightSkew,
                format!(
                    "setWeight {weight} on {} replicas is {canary} canary pod(s): the canary gets about {real}% of the traffic; use more replicas or Gateway API traffic for exact weights",
                    plan.replicas
                ),
            );
        }
    }

    fn promote(&mut self, why: &str) {
        self.waive_replay_gate("a human promoted without the replay gate");
        self.stop_waiting_for_pods();
        // The promotion asks for stable pods at the new revision: the progress deadline counts.
        self.st.canary_waiting_since = Some(Time(self.now));
        self.st.phase = Some(Phase::Promoting);
        self.set_weight(100);
        let rev = self.st.canary_revision.clone().unwrap_or_default();
        self.actions.push(Action::PromoteStable {
            revision: rev.clone(),
        });
        self.st.message = Some(format!("{why}: promoting revision {rev} to stable"));
        self.event(
            EventType::Normal,
            EventReason::Promoting,
            format!("{why}: promoting revision {rev} to stable"),
        );
    }

    fn succeed(&mut self) {
        self.stop_waiting_for_pods();
        let first = self.st.stable_revision.is_none();
        self.st.stable_revision = self.st.canary_revision.clone();
        self.st.phase = Some(Phase::Succeeded);
        self.st.pause_reason = None;
        self.set_weight(0);
        if !first {
            self.actions.push(Action::ScaleDownCanary);
        }
        let rev = self.st.stable_revision.clone().unwrap_or_default();
        self.st.message = Some(format!("stable runs revision {rev}"));
        self.event(
            EventType::Normal,
            EventReason::Promoted,
            format!("stable runs revision {rev}"),
        );
    }

    fn pause(&mut self, reason: PauseReason, message: String) {
        let event = match reason {
            PauseReason::ProgressDeadlineExceeded => EventReason::ProgressDeadlineExceeded,
            _ => EventReason::PausedForHuman,
        };
        // A human looks now: the progress deadline restarts when the rollout resumes. The pod
        // issues stay in the status for them to read.
        self.st.canary_waiting_since = None;
        self.st.phase = Some(Phase::Paused);
        self.st.pause_reason = Some(reason);
        let type_ = match reason {
            PauseReason::PauseStep | PauseReason::Command | PauseReason::SpecPaused => {
                EventType::Normal
            }
            _ => EventType::Warning,
        };
        self.event(type_, event, message.clone());
        self.st.message = Some(message);
    }

    fn resume(&mut self, plan: &Plan<'_>, why: &str) {
        let was_pause_step = self.st.pause_reason == Some(PauseReason::PauseStep);
        let pause_reason_was_gate = self.st.pause_reason == Some(PauseReason::ReplayGate);
        self.st.phase = Some(Phase::Progressing);
        self.st.pause_reason = None;
        for state in &mut self.st.checks {
            state.holding_since = None;
            if plan
                .analysis
                .checks
                .iter()
                .any(|c| c.name == state.name && c.tier == Tier::Pause)
            {
                state.consecutive_failures = 0;
            }
        }
        self.st.message = Some(why.to_owned());
        self.event(EventType::Normal, EventReason::Resumed, why);
        if replay_gate::awaiting(&self.st) {
            // Resuming a pause the gate asked for goes on without it; any other pause before
            // the first step goes back to asking.
            if pause_reason_was_gate {
                self.enter_step(plan, 0);
            }
            return;
        }
        let index = self.st.current_step_index.unwrap_or(0);
        let on_indefinite_pause = usize::try_from(index)
            .ok()
            .and_then(|i| plan.strategy.steps.get(i))
            .is_some_and(|s| *s == ResolvedStep::Pause(None));
        if was_pause_step || on_indefinite_pause {
            self.enter_step(plan, index + 1);
        }
    }

    fn roll_back(&mut self, why: String) {
        self.stop(
            Phase::RolledBack,
            EventReason::RolledBack,
            format!("rolled back: {why}"),
        );
    }

    fn stop(&mut self, phase: Phase, reason: EventReason, message: String) {
        self.stop_waiting_for_pods();
        self.st.phase = Some(phase);
        self.st.pause_reason = None;
        self.st.rolled_back_at = Some(Time(self.now));
        self.set_weight(0);
        self.actions.push(Action::ScaleDownCanary);
        self.event(EventType::Warning, reason, message.clone());
        self.st.message = Some(message);
    }

    fn fail(&mut self, e: &ApiError) {
        let message = format!("invalid spec: {e}");
        if self.st.phase != Some(Phase::Failed)
            || self.st.message.as_deref() != Some(message.as_str())
        {
            self.event(
                EventType::Warning,
                EventReason::InvalidSpec,
                message.clone(),
            );
        }
        self.st.phase = Some(Phase::Failed);
        self.st.message = Some(message);
    }

    fn state_mut(&mut self, name: &str) -> &mut CheckState {
        if let Some(i) = self.st.checks.iter().position(|c| c.name == name) {
            &mut self.st.checks[i]
        } else {
            self.st.checks.push(CheckState {
                name: name.to_owned(),
                ..CheckState::default()
            });
            let last = self.st.checks.len() - 1;
            &mut self.st.checks[last]
        }
    }

    fn process_run(&mut self, plan: &Plan<'_>, run: &AnalysisRun) {
        let at = run.at.clone().unwrap_or(Time(self.now));
        let paused = self.phase() == Some(Phase::Paused);
        let mut merged = self.st.analysis.take().unwrap_or_default();
        let was_passing =
            !merged.records.is_empty() && merged.records.iter().all(|r| r.verdict == Verdict::Pass);
        let mut failed = Vec::new();
        let mut newly_held = Vec::new();
        let overdue = self.evidence_overdue(plan);
        for record in &run.records {
            let Some(check) = plan.analysis.checks.iter().find(|c| c.name == record.name) else {
                continue;
            };
            let state = self.state_mut(&record.name);
            match record.verdict {
                Verdict::Pass => {
                    state.consecutive_failures = 0;
                    state.holding_since = None;
                }
                Verdict::Fail => {
                    state.holding_since = None;
                    // While a human looks at a paused rollout, only roll-back-tier failures count.
                    if !paused || check.tier == Tier::Rollback {
                        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                    }
                    // Advisory failures warn once per streak; the others every time (they count).
                    let already_failing = merged
                        .records
                        .iter()
                        .any(|r| r.name == record.name && r.verdict == Verdict::Fail);
                    if check.tier != Tier::Advisory || !already_failing {
                        failed.push(record);
                    }
                }
                // Evidence still coming in is not missing data (until an untilConfident
                // step's max).
                Verdict::NoData if record.gathering_evidence() && !overdue => {
                    state.holding_since = None;
                }
                Verdict::NoData | Verdict::Error => {
                    if state.holding_since.is_none() && check.tier != Tier::Advisory {
                        state.holding_since = Some(at.clone());
                        newly_held.push(record);
                    }
                }
            }
            let mut record = record.clone();
            if record.at.is_none() {
                record.at = Some(at.clone());
            }
            match merged.records.iter_mut().find(|r| r.name == record.name) {
                Some(slot) => *slot = record,
                None => merged.records.push(record),
            }
        }
        merged.at = Some(at.clone());
        merged.fast = run.fast;
        self.st.analysis = Some(merged);
        if run.fast {
            self.st.last_fast_analysis_at = Some(at);
        } else {
            self.st.last_analysis_at = Some(at);
        }

        for record in &failed {
            self.event(
                EventType::Warning,
                EventReason::AnalysisFailed,
                format!(
                    "{} ({}): {} — value {} outside {}",
                    record.name,
                    record.tier.as_str(),
                    record.reason,
                    fmt_value(record.value),
                    record.threshold
                ),
            );
        }
        for record in &newly_held {
            self.event(
                EventType::Warning,
                EventReason::Held,
                format!(
                    "{}: {} ({}); holding the step, never promoting on missing data",
                    record.name,
                    record.verdict.as_str(),
                    record.reason
                ),
            );
        }
        // Passing is news only after something else: one event per healthy streak.
        if !run.fast
            && !was_passing
            && failed.is_empty()
            && run.records.iter().all(|r| r.verdict == Verdict::Pass)
            && !run.records.is_empty()
        {
            self.event(
                EventType::Normal,
                EventReason::AnalysisPassed,
                format!("all {} checks passed", run.records.len()),
            );
        }

        // Roll back: roll-back tier, or blocking failures past the limit.
        let breaches: Vec<String> = plan
            .analysis
            .checks
            .iter()
            .filter(|c| matches!(c.tier, Tier::Rollback | Tier::Blocking))
            .filter(|c| self.failures(&c.name) > c.consecutive_failures_allowed)
            .map(|c| {
                format!(
                    "{} failed {} time(s) in a row ({} tier, {} allowed)",
                    c.name,
                    self.failures(&c.name),
                    c.tier.as_str(),
                    c.consecutive_failures_allowed
                )
            })
            .collect();
        if !breaches.is_empty() {
            self.roll_back(breaches.join("; "));
            return;
        }
        if self.phase() != Some(Phase::Progressing) {
            return;
        }
        let pause_failures: Vec<String> = plan
            .analysis
            .checks
            .iter()
            .filter(|c| {
                c.tier == Tier::Pause && self.failures(&c.name) > c.consecutive_failures_allowed
            })
            .map(|c| format!("{} failed ({})", c.name, self.record_summary(&c.name)))
            .collect();
        if !pause_failures.is_empty() {
            self.pause(
                PauseReason::CheckFailed,
                format!("paused for a human: {}", pause_failures.join("; ")),
            );
            return;
        }
        for check in plan
            .analysis
            .checks
            .iter()
            .filter(|c| c.tier != Tier::Advisory)
        {
            let Some(record) = run.records.iter().find(|r| r.name == check.name) else {
                continue;
            };
            let policy = match record.verdict {
                Verdict::NoData if record.gathering_evidence() && !overdue => continue,
                Verdict::NoData => check.on_no_data,
                Verdict::Error => check.on_provider_error,
                _ => continue,
            };
            if policy == HoldPolicy::Pause {
                self.pause(
                    PauseReason::NoData,
                    format!(
                        "paused for a human: {} has {} ({})",
                        check.name,
                        record.verdict.as_str(),
                        record.reason
                    ),
                );
                return;
            }
            if let Some(since) = self.holding_since(&check.name)
                && self.now >= after(since, check.max_hold)
            {
                self.pause(
                    PauseReason::HoldExpired,
                    format!(
                        "paused for a human: {} has had {} for longer than maxHold {}s ({})",
                        check.name,
                        record.verdict.as_str(),
                        check.max_hold.as_secs(),
                        record.reason
                    ),
                );
                return;
            }
        }
    }

    fn failures(&self, name: &str) -> i32 {
        self.st
            .checks
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.consecutive_failures)
    }

    fn holding_since(&self, name: &str) -> Option<Timestamp> {
        self.st
            .checks
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.holding_since.as_ref())
            .map(ts)
    }

    fn record(&self, name: &str) -> Option<&CheckRecord> {
        self.st
            .analysis
            .as_ref()?
            .records
            .iter()
            .find(|r| r.name == name)
    }

    fn record_summary(&self, name: &str) -> String {
        match self.record(name) {
            Some(r) => format!("value {} outside {}", fmt_value(r.value), r.threshold),
            None => "no record".to_owned(),
        }
    }

    /// The current step of the plan.
    fn current_step(&self, plan: &Plan<'_>) -> Option<ResolvedStep> {
        let index = usize::try_from(self.st.current_step_index?).ok()?;
        plan.strategy.steps.get(index).copied()
    }

    /// Whether the current step waits for confidence and its `max` has passed.
    fn evidence_overdue(&self, plan: &Plan<'_>) -> bool {
        let started = self.st.step_started_at.as_ref().map_or(self.now, ts);
        evidence::overdue(self.current_step(plan), started, self.now)
    }

    /// Whether every non-advisory check passed after `since` (see [`evidence::passes_gate`]
    /// for sequential checks); otherwise why not.
    fn gate(
        &self,
        analysis: &ResolvedAnalysis,
        step: Option<ResolvedStep>,
        since: Timestamp,
    ) -> Result<(), String> {
        let mut waiting = Vec::new();
        for check in analysis.checks.iter().filter(|c| c.tier != Tier::Advisory) {
            match self.record(&check.name) {
                Some(r)
                    if evidence::passes_gate(r, step)
                        && r.at.as_ref().is_some_and(|t| ts(t) > since) => {}
                Some(r) if r.at.as_ref().is_some_and(|t| ts(t) > since) => {
                    waiting.push(format!(
                        "{} is {} ({})",
                        check.name,
                        r.verdict.as_str(),
                        r.reason
                    ));
                }
                _ => waiting.push(format!(
                    "{} not evaluated since the step started",
                    check.name
                )),
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("; "))
        }
    }

    fn progress(&mut self, plan: &Plan<'_>, obs: &Observations) {
        let index = self.st.current_step_index.unwrap_or(0);
        let n = plan.strategy.steps.len();
        let Some(step) = usize::try_from(index)
            .ok()
            .and_then(|i| plan.strategy.steps.get(i))
            .copied()
        else {
            self.promote("all steps done");
            return;
        };
        let started = self.st.step_started_at.as_ref().map_or(self.now, ts);
        let holding = self.st.checks.iter().any(|c| c.holding_since.is_some());
        let step_done = match step {
            ResolvedStep::SetWeight(w) => {
                let ready = !needs_canary_pods(&plan.strategy.traffic, w) || obs.canary.ready;
                if ready {
                    self.stop_waiting_for_pods();
                } else if !self.wait_for_pods(plan, &obs.canary.issues, index, w) {
                    return;
                }
                ready
            }
            ResolvedStep::Pause(Some(d)) => {
                let end = after(started, d);
                if self.now < end {
                    let left = self.now.duration_until(end).as_secs();
                    self.st.message = Some(format!(
                        "step {}/{n}: pause at weight {}%, {left}s left",
                        index + 1,
                        self.st.weight
                    ));
                }
                self.now >= end
            }
            // Done when the gate says every check is confident.
            ResolvedStep::UntilConfident(_) => true,
            ResolvedStep::Pause(None) => {
                self.pause(
                    PauseReason::PauseStep,
                    format!(
                        "step {}/{n} waits for a human: promote or resume to continue",
                        index + 1
                    ),
                );
                return;
            }
        };
        if !step_done {
            return;
        }
        match self.gate(plan.analysis, Some(step), started) {
            Ok(()) => self.enter_step(plan, index + 1),
            Err(why) if evidence::confidence_max(Some(step)).is_some() => {
                self.await_confidence(plan, index, started, why);
            }
            Err(why) => {
                let verb = if holding {
                    "holding"
                } else {
                    "waiting for analysis"
                };
                self.st.message = Some(format!(
                    "step {}/{n} at weight {}%: {verb}: {why}",
                    index + 1,
                    self.st.weight
                ));
            }
        }
    }

    /// The message of an `untilConfident` step that has not ended yet: what the checks still
    /// need, and how long until `max` (or that it has passed and the hold policy applies).
    fn await_confidence(&mut self, plan: &Plan<'_>, index: i32, started: Timestamp, why: String) {
        let n = plan.strategy.steps.len();
        let Some(max) = evidence::confidence_max(self.current_step(plan)) else {
            return;
        };
        let end = after(started, max);
        let records = self.st.analysis.iter().flat_map(|a| a.records.iter());
        let needed = evidence::still_needed(records).unwrap_or(why);
        let clock = if self.now < end {
            format!(
                "{}s left of max {}s",
                self.now.duration_until(end).as_secs(),
                max.as_secs()
            )
        } else {
            format!(
                "max {}s passed, undecided checks follow their hold policy",
                max.as_secs()
            )
        };
        self.st.message = Some(format!(
            "step {}/{n} at weight {}%: gathering evidence: {needed}; {clock}",
            index + 1,
            self.st.weight
        ));
    }

    /// One look at canary pods a step waits for: report new issues, and act once the progress
    /// deadline has passed. `false` when the deadline acted (the step is over).
    fn wait_for_pods(&mut self, plan: &Plan<'_>, issues: &[PodIssue], index: i32, w: i32) -> bool {
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
    fn report_issues(&mut self, issues: &[PodIssue], whose: &str) {
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

    /// One look at a promotion (or first deployment) whose stable pods are not ready yet:
    /// report their issues, and once the progress deadline has passed say so — once — and keep
    /// waiting. Nothing is rolled back mid-promotion: the stable Deployment is already moving
    /// to the new revision (and the canary, after a rollout, keeps serving), so a human decides
    /// (fix the pods, or `abort`).
    fn wait_for_promotion(&mut self, plan: &Plan<'_>, issues: &[PodIssue]) {
        let rev = self.st.canary_revision.clone().unwrap_or_default();
        let since = ts(self.st.canary_waiting_since.get_or_insert(Time(self.now)));
        self.report_issues(issues, &format!("promotion of revision {rev}: stable pods"));
        let deadline = plan.strategy.progress_deadline;
        let why = if issues.is_empty() {
            "stable pods not ready".to_owned()
        } else {
            format!("stable pods not ready: {}", list_issues(issues))
        };
        if self.now < after(since, deadline) {
            if !issues.is_empty() {
                self.st.message = Some(format!("promoting revision {rev}: waiting: {why}"));
            }
            return;
        }
        self.promotion_overdue = true;
        let message = format!(
            "progress deadline {}s exceeded promoting revision {rev}: {why}; fix the pods, or abort",
            deadline.as_secs()
        );
        let said = self
            .st
            .conditions
            .iter()
            .any(|c| c.type_ == CONDITION_PROGRESSING && c.reason == DEADLINE_EXCEEDED);
        if !said {
            self.event(
                EventType::Warning,
                EventReason::ProgressDeadlineExceeded,
                message.clone(),
            );
        }
        self.st.message = Some(message);
    }

    fn finish(
        mut self,
        strategy: Option<&ResolvedStrategy>,
        analysis: Option<&ResolvedAnalysis>,
    ) -> Transition {
        let now = self.now;
        let generation = self.st.observed_generation;
        let phase = self.st.phase;
        let message = self.st.message.clone().unwrap_or_default();
        let (progressing, progressing_reason) = match phase {
            Some(Phase::Progressing) => (ConditionStatus::True, "StepProgressing"),
            // Like a Deployment's Progressing condition past progressDeadlineSeconds.
            Some(Phase::Promoting) if self.promotion_overdue => {
                (ConditionStatus::False, DEADLINE_EXCEEDED)
            }
            Some(Phase::Promoting) => (ConditionStatus::True, "Promoting"),
            Some(Phase::Paused) => (ConditionStatus::False, "Paused"),
            Some(Phase::Succeeded) => (ConditionStatus::False, "RolloutComplete"),
            Some(Phase::RolledBack) => (ConditionStatus::False, "RolledBack"),
            Some(Phase::Aborted) => (ConditionStatus::False, "Aborted"),
            Some(Phase::Failed) => (ConditionStatus::False, "InvalidSpec"),
            None => (ConditionStatus::Unknown, "NotStarted"),
        };
        let c = &mut self.st.conditions;
        conditions::set(
            c,
            CONDITION_PROGRESSING,
            progressing,
            progressing_reason,
            &message,
            generation,
            now,
        );
        let paused = phase == Some(Phase::Paused);
        let pause_reason = self
            .st
            .pause_reason
            .map_or("NotPaused", PauseReason::as_str);
        conditions::set(
            c,
            CONDITION_PAUSED,
            paused.into(),
            pause_reason,
            if paused { &message } else { "" },
            generation,
            now,
        );
        let healthy = !matches!(
            phase,
            Some(Phase::RolledBack | Phase::Aborted | Phase::Failed)
        );
        conditions::set(
            c,
            CONDITION_HEALTHY,
            healthy.into(),
            if healthy {
                "Healthy"
            } else {
                progressing_reason
            },
            if healthy { "" } else { &message },
            generation,
            now,
        );
        let (status, reason, text) = analysis_condition(self.st.analysis.as_ref(), analysis);
        conditions::set(
            &mut self.st.conditions,
            CONDITION_ANALYSIS,
            status,
            reason,
            &text,
            generation,
            now,
        );

        let requeue_after = match (strategy, analysis) {
            (Some(s), Some(a)) => self.requeue(s, a),
            _ => None,
        };
        Transition {
            status: self.st,
            actions: self.actions,
            requeue_after,
        }
    }

    fn requeue(
        &self,
        strategy: &ResolvedStrategy,
        analysis: &ResolvedAnalysis,
    ) -> Option<Duration> {
        let now = self.now;
        let active = self.canary_active() || self.phase() == Some(Phase::Promoting);
        if !active {
            return None;
        }
        // Pod health is looked at every fast interval.
        let mut next = after(now, analysis.fast_interval);
        if self.canary_active() && !analysis.checks.is_empty() {
            let full = self
                .st
                .last_analysis_at
                .as_ref()
                .map_or(now, |t| after(ts(t), analysis.interval));
            next = next.min(full);
        }
        if self.phase() == Some(Phase::Progressing)
            && let (Some(i), Some(started)) =
                (self.st.current_step_index, self.st.step_started_at.as_ref())
            && let Some(ResolvedStep::Pause(Some(d)) | ResolvedStep::UntilConfident(d)) =
                usize::try_from(i).ok().and_then(|i| strategy.steps.get(i))
        {
            // A timed pause ends at its duration; an untilConfident step's hold policy starts
            // exactly at its max.
            let end = after(ts(started), *d);
            if end > now {
                next = next.min(end);
            }
        }
        if matches!(self.phase(), Some(Phase::Progressing | Phase::Promoting))
            && let Some(since) = self.st.canary_waiting_since.as_ref()
        {
            let deadline = after(ts(since), strategy.progress_deadline);
            if deadline > now {
                next = next.min(deadline);
            }
        }
        if self.phase() == Some(Phase::Progressing) {
            for state in &self.st.checks {
                let (Some(since), Some(check)) = (
                    state.holding_since.as_ref(),
                    analysis.checks.iter().find(|c| c.name == state.name),
                ) else {
                    continue;
                };
                let expiry = after(ts(since), check.max_hold);
                if expiry > now {
                    next = next.min(expiry);
                }
            }
        }
        let wait = now.duration_until(next);
        Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
    }
}

/// Whether a `setWeight` step at `weight` waits for canary pods (not in-app, not at weight 0).
fn needs_canary_pods(traffic: &TrafficMode, weight: i32) -> bool {
    traffic.uses_canary_pods() && weight > 0
}

/// Whether two reports are the same problem (an image pull failing, then backing off, is one).
fn same_problem(a: &PodIssue, b: &PodIssue) -> bool {
    let image_pull = |i: &PodIssue| {
        matches!(
            i.reason,
            PodIssueReason::ErrImagePull | PodIssueReason::ImagePullBackOff
        )
    };
    a.reason == b.reason || (image_pull(a) && image_pull(b))
}

fn list_issues(issues: &[PodIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:.6}"))
}

fn analysis_condition(
    run: Option<&AnalysisRun>,
    analysis: Option<&ResolvedAnalysis>,
) -> (ConditionStatus, &'static str, String) {
    let Some(run) = run else {
        return (ConditionStatus::Unknown, "NotRun", String::new());
    };
    let mut judged: Vec<&CheckRecord> = run
        .records
        .iter()
        .filter(|r| r.tier != Tier::Advisory)
        .filter(|r| {
            analysis.is_none_or(|a| a.checks.iter().any(|c: &ResolvedCheck| c.name == r.name))
        })
        .collect();
    // Sequential checks still gathering evidence have data: they are not held.
    let gathering: Vec<&str> = judged
        .iter()
        .filter(|r| r.gathering_evidence())
        .map(|r| r.name.as_str())
        .collect();
    judged.retain(|r| !r.gathering_evidence());
    let names = |v: Verdict| {
        judged
            .iter()
            .filter(|r| r.verdict == v)
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if judged.iter().any(|r| r.verdict == Verdict::Fail) {
        (
            ConditionStatus::False,
            "CheckFailed",
            format!("failing: {}", names(Verdict::Fail)),
        )
    } else if judged
        .iter()
        .any(|r| matches!(r.verdict, Verdict::NoData | Verdict::Error))
    {
        let mut held = names(Verdict::NoData);
        let errors = names(Verdict::Error);
        if !errors.is_empty() {
            if !held.is_empty() {
                held.push_str(", ");
            }
            held.push_str(&errors);
        }
        (
            ConditionStatus::Unknown,
            "Held",
            format!("no data or provider error: {held}"),
        )
    } else if !gathering.is_empty() {
        (
            ConditionStatus::Unknown,
            "GatheringEvidence",
            format!("not yet confident: {}", gathering.join(", ")),
        )
    } else {
        (ConditionStatus::True, "Passed", String::new())
    }
}
