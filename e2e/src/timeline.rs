//! The per-scenario timeline: step, weight, phase, each check's value and verdict, decisions.

use std::fmt::Write as _;
use std::time::Duration;

use feedroll_crds::{CheckRecord, FeedRolloutStatus};

/// One decision of the driver.
#[derive(Clone, Debug)]
pub struct Row {
    /// Time since the scenario started.
    pub at: Duration,
    /// Phase after the decision.
    pub phase: String,
    /// Step index after the decision.
    pub step: Option<i32>,
    /// Canary weight after the decision.
    pub weight: Option<i32>,
    /// Checks evaluated for this decision, as recorded in the status.
    pub records: Vec<CheckRecord>,
    /// Events the brain emitted.
    pub events: Vec<String>,
}

impl Row {
    /// A row for `status` and the analysis records that fed the decision.
    pub fn new(at: Duration, status: &FeedRolloutStatus, records: Option<&[CheckRecord]>) -> Self {
        Self {
            at,
            phase: status
                .phase
                .map_or("-".to_owned(), |p| p.as_str().to_owned()),
            step: status.current_step_index,
            weight: Some(status.weight),
            records: records.unwrap_or_default().to_vec(),
            events: Vec::new(),
        }
    }

    fn interesting(&self) -> bool {
        !self.events.is_empty()
    }
}

/// Every decision of a scenario.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Rows in order.
    pub rows: Vec<Row>,
}

impl Timeline {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Time of the first row whose events mention `reason`.
    pub fn first(&self, reason: &str) -> Option<Duration> {
        self.rows
            .iter()
            .find(|r| r.events.iter().any(|e| e.starts_with(reason)))
            .map(|r| r.at)
    }

    /// Every record of the check called `name`, in order.
    pub fn records<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a CheckRecord> + 'a {
        self.rows
            .iter()
            .flat_map(|r| &r.records)
            .filter(move |c| c.name == name)
    }

    /// The rows with decisions, as a table.
    pub fn render(&self, title: &str) -> String {
        let mut out = format!(
            "── {title} ──\n{:>7}  {:<12} {:>4} {:>6}  checks / decisions\n",
            "t(s)", "phase", "step", "weight"
        );
        for r in self.rows.iter().filter(|r| r.interesting()) {
            let checks: Vec<String> = r
                .records
                .iter()
                .map(|c| {
                    let value = c.value.map_or("-".into(), |v| format!("{v:.4}"));
                    format!("{}={value}:{}", c.name, c.verdict.as_str())
                })
                .collect();
            let _ = writeln!(
                out,
                "{:>7.1}  {:<12} {:>4} {:>6}  {}",
                r.at.as_secs_f64(),
                r.phase,
                r.step.map_or("-".into(), |s| s.to_string()),
                r.weight.map_or("-".into(), |w| w.to_string()),
                checks.join(" ")
            );
            for e in &r.events {
                let _ = writeln!(out, "{:>7}  └ {e}", "");
            }
        }
        out
    }
}
