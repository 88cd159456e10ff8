//! Analysis runs: each new run is recorded in the status (records, per-check counters) and
//! judged (roll back, pause, hold).

use feedroll_crds::{AnalysisRun, CheckRecord, CheckState, Tier, Verdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::brain::actions::{EventReason, EventType};
use crate::brain::run_judgement::{RunDecision, RunFacts, failure_counts, fmt_value, judge_run};

use super::{Machine, Plan};

/// What recording a run found worth an Event.
struct News<'r> {
    /// The run's failures that get an `AnalysisFailed` Warning.
    failed: Vec<&'r CheckRecord>,
    /// The run's checks that start holding (no data, provider error).
    newly_held: Vec<&'r CheckRecord>,
    /// Every check passed before this run.
    was_passing: bool,
}

impl Machine {
    /// The counters of check `name`, added when it has none yet.
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

    /// A new run: record it, announce what is news, then act on its judgement
    /// ([`judge_run`]).
    pub(super) fn process_run(&mut self, plan: &Plan<'_>, run: &AnalysisRun) {
        let overdue = self.evidence_overdue(plan);
        let news = self.record_run(plan, run, overdue);
        self.announce(run, &news);
        let decision = judge_run(&RunFacts {
            checks: &plan.analysis.checks,
            run,
            states: &self.st.checks,
            records: self.st.analysis.as_ref().map_or(&[], |a| &a.records),
            phase: self.phase(),
            evidence_overdue: overdue,
            now: self.now,
        });
        match decision {
            RunDecision::Continue => {}
            RunDecision::RollBack(why) => self.roll_back(why),
            RunDecision::Pause { reason, message } => self.pause(reason, message),
        }
    }

    /// Bookkeeping of a run: the per-check counters (`status.checks`), the run merged into
    /// `status.analysis` (every record stamped) and the time of the last (fast) run. Returns
    /// what is news for the Events.
    fn record_run<'r>(&mut self, plan: &Plan<'_>, run: &'r AnalysisRun, overdue: bool) -> News<'r> {
        let at = run.at.clone().unwrap_or(Time(self.now));
        let phase = self.phase();
        let mut merged = self.st.analysis.take().unwrap_or_default();
        let mut news = News {
            was_passing: !merged.records.is_empty()
                && merged.records.iter().all(|r| r.verdict == Verdict::Pass),
            failed: Vec::new(),
            newly_held: Vec::new(),
        };
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
                    // While a human looks at a paused rollout, or a promotion is under way, only
                    // roll-back-tier failures count.
                    if failure_counts(check.tier, phase) {
                        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                    }
                    // Advisory failures warn once per streak; the others every time (they count).
                    let already_failing = merged
                        .records
                        .iter()
                        .any(|r| r.name == record.name && r.verdict == Verdict::Fail);
                    if check.tier != Tier::Advisory || !already_failing {
                        news.failed.push(record);
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
                        news.newly_held.push(record);
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
        news
    }

    /// The Events of a recorded run: each failure that counts (advisory ones once per streak),
    /// each check that starts holding, and a passing run after anything else.
    fn announce(&mut self, run: &AnalysisRun, news: &News<'_>) {
        for record in &news.failed {
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
        for record in &news.newly_held {
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
            && !news.was_passing
            && news.failed.is_empty()
            && run.records.iter().all(|r| r.verdict == Verdict::Pass)
            && !run.records.is_empty()
        {
            self.event(
                EventType::Normal,
                EventReason::AnalysisPassed,
                format!("all {} checks passed", run.records.len()),
            );
        }
    }

    /// The latest record of check `name` (`status.analysis`).
    pub(super) fn record(&self, name: &str) -> Option<&CheckRecord> {
        self.st
            .analysis
            .as_ref()?
            .records
            .iter()
            .find(|r| r.name == name)
    }
}
