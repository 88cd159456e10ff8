//! `kubectl feedroll timeline`: the decision history, oldest first.

use feedroll_crds::FeedRollout;
use feedroll_crds::history::HistoryEntry;

use super::{Palette, clock, step_of, table, value};

/// The history of `fr` as a table (the last `limit` entries when given), or a line saying
/// there is none yet.
pub fn timeline(fr: &FeedRollout, limit: Option<usize>, p: Palette) -> String {
    let history = fr
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    if history.is_empty() {
        return "No decisions recorded yet.\n".to_owned();
    }
    let skip = limit.map_or(0, |l| history.len().saturating_sub(l));
    entries(fr, &history[skip..], p, "")
}

/// The rows of `entries` under a header, each line starting with `indent`.
pub(super) fn entries(
    fr: &FeedRollout,
    entries: &[HistoryEntry],
    p: Palette,
    indent: &str,
) -> String {
    let steps = fr.spec.resolved_strategy().ok().map(|s| s.steps.len());
    let mut rows = vec![
        [
            "TIME (UTC)",
            "DECISION",
            "PHASE",
            "STEP",
            "WEIGHT",
            "CHECK",
            "VALUE",
            "THRESHOLD",
            "BY",
            "REASON",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for e in entries {
        let (check, val, threshold) = match &e.check {
            Some(c) => (
                format!("{} {}", c.name, p.verdict(c.verdict)),
                value(c.value),
                c.threshold.clone(),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let by = match &e.command {
            Some(c) => format!(
                "{} ({})",
                c.author.as_deref().unwrap_or("unknown"),
                c.id.split_once('/').map_or(c.id.as_str(), |(verb, _)| verb)
            ),
            None => "operator".to_owned(),
        };
        rows.push(vec![
            clock(e.at.0),
            p.decision(e.decision),
            p.phase(e.phase),
            step_of(e.step, steps),
            format!("{}%", e.weight),
            check,
            val,
            threshold,
            by,
            e.reason.clone(),
        ]);
    }
    table(&rows, indent)
}
