//! The end of every transition: the standard conditions and when to look again.

use std::time::Duration;

use feedroll_crds::{
    AnalysisRun, CheckRecord, ConditionStatus, PauseReason, Phase, ResolvedAnalysis, ResolvedCheck,
    ResolvedStep, ResolvedStrategy, Tier, Verdict,
};

use crate::brain::actions::Transition;
use crate::brain::conditions::{
    self, CONDITION_ANALYSIS, CONDITION_HEALTHY, CONDITION_PAUSED, CONDITION_PROGRESSING,
};
use crate::brain::{after, ts};

use super::{DEADLINE_EXCEEDED, Machine};

impl Machine {
    pub(super) fn finish(
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

    pub(super) fn requeue(
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

pub(super) fn analysis_condition(
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
