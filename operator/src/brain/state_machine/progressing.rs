//! `Progressing`: entering a step, judging whether it is done, and the analysis gate before the
//! next one.

use feedroll_crds::{PauseReason, ResolvedAnalysis, ResolvedStep, Tier, TrafficMode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::brain::actions::{EventReason, EventType};
use crate::brain::observations::Observations;
use crate::brain::{after, evidence, ts};

use super::pods::needs_canary_pods;
use super::{Machine, Plan};

impl Machine {
    pub(super) fn enter_step(&mut self, plan: &Plan<'_>, index: i32) {
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
    /// [`crate::brain::SKEW_TOLERANCE`] points with `spec.replicas` pods.
    pub(super) fn warn_weight_skew(&mut self, plan: &Plan<'_>, weight: i32) {
        if plan.strategy.traffic != TrafficMode::ReplicaRatio {
            return;
        }
        let Some(real) = crate::brain::expressed_weight(plan.replicas, weight) else {
            return;
        };
        if (real - weight).abs() > crate::brain::SKEW_TOLERANCE {
            let canary = crate::brain::canary_replicas(plan.replicas, weight).min(plan.replicas);
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

    pub(super) fn progress(&mut self, plan: &Plan<'_>, obs: &Observations) {
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

    /// Whether every non-advisory check passed after `since` (see [`evidence::passes_gate`]
    /// for sequential checks); otherwise why not.
    pub(super) fn gate(
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

    /// The message of an `untilConfident` step that has not ended yet: what the checks still
    /// need, and how long until `max` (or that it has passed and the hold policy applies).
    pub(super) fn await_confidence(
        &mut self,
        plan: &Plan<'_>,
        index: i32,
        started: Timestamp,
        why: String,
    ) {
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
}
