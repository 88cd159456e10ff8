//! `kubectl feedroll list`: one line per FeedRollout.

use feedroll_crds::{FeedRollout, FeedRolloutStatus, Tier, Verdict};
use k8s_openapi::jiff::Timestamp;

use super::{Palette, age, step_of, table};

/// Revisions in the table: the first 8 hex digits (`status` shows them whole).
const SHORT_REVISION: usize = 8;

/// The table of `items`, with a NAMESPACE column when `all_namespaces`.
pub fn list(items: &[FeedRollout], all_namespaces: bool, now: Timestamp, p: Palette) -> String {
    let mut header = vec![
        "NAME", "PHASE", "STEP", "WEIGHT", "ACTUAL", "STABLE", "CANARY", "AGE", "TROUBLE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for fr in items {
        let default = FeedRolloutStatus::default();
        let st = fr.status.as_ref().unwrap_or(&default);
        let steps = fr.spec.resolved_strategy().ok().map(|s| s.steps.len());
        let short = |r: &Option<String>| {
            r.as_deref()
                .map_or("-".to_owned(), |r| r.chars().take(SHORT_REVISION).collect())
        };
        let mut row = vec![
            fr.metadata.name.clone().unwrap_or_default(),
            p.phase(st.phase),
            step_of(st.current_step_index, steps),
            format!("{}%", st.weight),
            format!("{}%", st.actual_weight),
            short(&st.stable_revision),
            short(&st.canary_revision),
            fr.metadata
                .creation_timestamp
                .as_ref()
                .map_or("-".to_owned(), |t| age(t.0, now)),
            trouble(st, p),
        ];
        if all_namespaces {
            row.insert(0, fr.metadata.namespace.clone().unwrap_or_default());
        }
        rows.push(row);
    }
    table(&rows, "")
}

/// The first judged check that is not passing (`error-rate fail`), else the first pod issue
/// (`pods: ImagePullBackOff`), else `-`.
fn trouble(st: &FeedRolloutStatus, p: Palette) -> String {
    let check = st.analysis.as_ref().and_then(|a| {
        a.records
            .iter()
            .find(|r| r.tier != Tier::Advisory && r.verdict != Verdict::Pass)
    });
    if let Some(r) = check {
        return format!("{} {}", r.name, p.verdict(r.verdict));
    }
    match st.canary_pod_issues.first() {
        Some(issue) => format!("pods: {}", issue.reason.as_str()),
        None => "-".to_owned(),
    }
}
