//! Analysis runs: each new run is recorded in the status (records, per-check counters) and
//! judged (roll back, pause, hold).

use feedroll_crds::{
    AnalysisRun, CheckRecord, CheckState, HoldPolicy, PauseReason, Phase, Tier, Verdict,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::brain::actions::{EventReason, EventType};
use crate::brain::{after, ts};

use super::{Machine, Plan};

impl Machine {
    pub(super) fn state_mut(&mut self, name: &str) -> &mut CheckState {
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

    pub(super) fn process_run(&mut self, plan: &Plan<'_>, run: &AnalysisRun) {
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

    pub(super) fn failures(&self, name: &str) -> i32 {
        self.st
            .checks
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.consecutive_failures)
    }

    pub(super) fn holding_since(&self, name: &str) -> Option<Timestamp> {
        self.st
            .checks
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.holding_since.as_ref())
            .map(ts)
    }

    pub(super) fn record(&self, name: &str) -> Option<&CheckRecord> {
        self.st
            .analysis
            .as_ref()?
            .records
            .iter()
            .find(|r| r.name == name)
    }

    pub(super) fn record_summary(&self, name: &str) -> String {
        match self.record(name) {
            Some(r) => format!("value {} outside {}", fmt_value(r.value), r.threshold),
            None => "no record".to_owned(),
        }
    }
}

pub(super) fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:.6}"))
}
