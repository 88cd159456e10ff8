//! `lint FILE…`: `feedroll-operator check` without Prometheus — the CRD's schema, its CEL rules
//! and the operator's resolution of defaults, presets and the ranking profile
//! (`feedroll_crds::validate`, the code the operator and the local API server use), each problem
//! with its line.

use std::fmt::Write as _;

use feedroll_crds::validate::{Problem, validate_text};
use serde::Serialize;

/// The verdict on one file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linted {
    /// The file, as given.
    pub file: String,
    /// `namespace/name` of the FeedRollout, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// Steps of the resolved plan, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Checks of the resolved analysis, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<usize>,
    /// What is wrong (empty when valid).
    pub problems: Vec<Problem>,
}

impl Linted {
    /// Whether the file passed.
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Lints the text of `file`.
pub fn lint(file: &str, text: &str) -> Linted {
    match validate_text(text) {
        Ok(fr) => Linted {
            file: file.to_owned(),
            rollout: Some(format!(
                "{}/{}",
                fr.metadata
                    .namespace
                    .as_deref()
                    .unwrap_or("(namespace of the context)"),
                fr.metadata.name.as_deref().unwrap_or_default()
            )),
            steps: fr.spec.resolved_strategy().ok().map(|s| s.steps.len()),
            checks: fr.spec.resolved_analysis().ok().map(|a| a.checks.len()),
            problems: Vec::new(),
        },
        Err(problems) => Linted {
            file: file.to_owned(),
            rollout: None,
            steps: None,
            checks: None,
            problems,
        },
    }
}

/// A file that cannot be read, as a lint result.
pub fn unreadable(file: &str, error: &std::io::Error) -> Linted {
    Linted {
        file: file.to_owned(),
        rollout: None,
        steps: None,
        checks: None,
        problems: vec![Problem {
            path: String::new(),
            line: None,
            message: format!("cannot read the file: {error}"),
        }],
    }
}

/// The human report: `FILE: valid (…)` or `FILE: invalid` and one line per problem.
pub fn report(results: &[Linted]) -> String {
    let mut out = String::new();
    for r in results {
        if r.valid() {
            let _ = writeln!(
                out,
                "{}: valid (FeedRollout {}, {} steps, {} checks)",
                r.file,
                r.rollout.as_deref().unwrap_or_default(),
                r.steps.unwrap_or_default(),
                r.checks.unwrap_or_default()
            );
        } else {
            let _ = writeln!(out, "{}: invalid", r.file);
            for p in &r.problems {
                let _ = writeln!(out, "  {p}");
            }
        }
    }
    out
}
