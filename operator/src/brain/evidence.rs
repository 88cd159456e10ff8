//! Steps that end on evidence (`pause: {untilConfident, max}`) and sequential checks still
//! gathering evidence. Pure helpers of the state machine.
//!
//! - A sequential record that is `no-data` only because the evidence is not yet conclusive
//!   ([`CheckRecord::gathering_evidence`]) is not missing data: it neither holds nor pauses,
//!   except past the `max` of an `untilConfident` step, where it follows the check's hold policy
//!   (`onNoData: pause` pauses at once; `hold` holds, then pauses after `maxHold`).
//! - On other steps a sequential check blocks on `fail` (and on real no-data) and lets the plan's
//!   time decide otherwise: there it acts as a guardrail. On an `untilConfident` step every
//!   non-advisory check needs a `pass`: the step ends on evidence.

use std::time::Duration;

use feedroll_crds::{CheckRecord, ResolvedStep};
use k8s_openapi::jiff::Timestamp;

use super::after;

/// The `max` of the current step when it is `untilConfident`.
pub(crate) fn confidence_max(step: Option<ResolvedStep>) -> Option<Duration> {
    match step {
        Some(ResolvedStep::UntilConfident(max)) => Some(max),
        _ => None,
    }
}

/// Whether a record counts as a pass for the gate of the current step: a pass, or on steps
/// that do not wait for confidence, a sequential check still gathering evidence.
pub(crate) fn passes_gate(record: &CheckRecord, step: Option<ResolvedStep>) -> bool {
    record.verdict == feedroll_crds::Verdict::Pass
        || (record.gathering_evidence() && confidence_max(step).is_none())
}

/// Whether undecided evidence now follows the hold policy: the current step waits for
/// confidence and its `max` (from `started`) has passed.
pub(crate) fn overdue(step: Option<ResolvedStep>, started: Timestamp, now: Timestamp) -> bool {
    confidence_max(step).is_some_and(|max| now >= after(started, max))
}

/// What the sequential checks still gathering evidence need, e.g.
/// `error-rate ~1200 more trials (~300s)`, joined; the longest time left first.
pub(crate) fn still_needed<'a>(records: impl Iterator<Item = &'a CheckRecord>) -> Option<String> {
    let mut needs: Vec<(Option<u64>, String)> = records
        .filter(|r| r.gathering_evidence())
        .filter_map(|r| r.evidence.as_ref().map(|e| (r, e)))
        .map(|(r, e)| {
            let text = match (e.trials_needed, e.seconds_left) {
                (Some(n), Some(s)) => format!("{} ~{n} more trials (~{s}s)", r.name),
                (Some(n), None) => format!("{} ~{n} more trials", r.name),
                (None, _) => format!("{} undecided", r.name),
            };
            (e.seconds_left, text)
        })
        .collect();
    if needs.is_empty() {
        return None;
    }
    needs.sort_by_key(|n| std::cmp::Reverse(n.0));
    Some(
        needs
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(", "),
    )
}
