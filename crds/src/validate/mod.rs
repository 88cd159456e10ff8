//! Client-side validation of FeedRollout files: what the API server would reject, reported with
//! the line of the offending field.
//!
//! Layers, in the order the API server applies them: YAML syntax, the OpenAPI schema of the CRD
//! ([`schema`]), the CEL rules ([`cel`], evaluated by kube's client-side CEL engine), then the
//! checks the operator itself makes when it resolves defaults and the ranking profile.

pub mod cel;
pub mod locate;
pub mod schema;

use std::fmt;

use crate::{FeedRollout, GROUP, VERSION};
use serde::Serialize;
use serde_json::Value;

/// `path.key`, or `key` at the root: the dotted field paths of validation messages.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// One reason a file is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Path of the field, e.g. `spec.strategy.steps[1].setWeight` (empty for the whole file).
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (Some(line), false) => write!(f, "line {line}: {}: {}", self.path, self.message),
            (Some(line), true) => write!(f, "line {line}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// Validates the text of one FeedRollout (YAML or JSON) and returns it, or every problem found
/// in the first layer that has any.
pub fn validate_text(text: &str) -> Result<FeedRollout, Vec<Problem>> {
    let lines = locate::Locator::new(text);
    let locate = |mut problems: Vec<Problem>| {
        for p in &mut problems {
            if p.line.is_none() {
                p.line = lines.line_of(&p.path);
            }
        }
        problems
    };
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        vec![Problem {
            path: String::new(),
            line: e.location().map(|l| l.line()),
            message: format!("not valid YAML: {e}"),
        }]
    })?;
    let object: Value = serde_json::to_value(&yaml).map_err(|e| {
        vec![Problem {
            path: String::new(),
            line: None,
            message: format!("not representable as JSON: {e}"),
        }]
    })?;

    let mut problems = Vec::new();
    let want_api = format!("{GROUP}/{VERSION}");
    if object.get("apiVersion").and_then(Value::as_str) != Some(want_api.as_str()) {
        problems.push(Problem {
            path: "apiVersion".into(),
            line: None,
            message: format!("must be {want_api}"),
        });
    }
    if object.get("kind").and_then(Value::as_str) != Some("FeedRollout") {
        problems.push(Problem {
            path: "kind".into(),
            line: None,
            message: "must be FeedRollout".into(),
        });
    }
    if object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        problems.push(Problem {
            path: "metadata.name".into(),
            line: None,
            message: "is required".into(),
        });
    }
    let crd_schema = schema::crd_schema().map_err(|e| {
        vec![Problem {
            path: String::new(),
            line: None,
            message: e,
        }]
    })?;
    problems.extend(schema::validate(&crd_schema, &object));
    if !problems.is_empty() {
        return Err(locate(problems));
    }
    let cel_problems = cel::validate(&crd_schema, &object);
    if !cel_problems.is_empty() {
        return Err(locate(cel_problems));
    }
    let rollout: FeedRollout = serde_json::from_value(object).map_err(|e| {
        locate(vec![Problem {
            path: String::new(),
            line: None,
            message: format!("does not match the FeedRollout type: {e}"),
        }])
    })?;
    let mut problems = Vec::new();
    match (
        rollout.spec.resolved_strategy(),
        rollout.spec.resolved_analysis(),
    ) {
        (Ok(_), Ok(_)) => {
            // Each resolves: now whether they fit each other (checks vs traffic mode).
            if let Err(e) = rollout.spec.resolved_plan() {
                problems.push(api_problem(e));
            }
        }
        (strategy, analysis) => {
            problems.extend(strategy.err().map(api_problem));
            problems.extend(analysis.err().map(api_problem));
        }
    }
    if let Err(e) = rollout.spec.effective_selector() {
        problems.push(api_problem(e));
    }
    if let Some(profile) = &rollout.spec.ranking_profile
        && let Err(e) = profile.validate()
    {
        problems.push(match e {
            feed_profile::ProfileError::Invalid { field, message } => Problem {
                path: format!("spec.rankingProfile.{field}"),
                line: None,
                message,
            },
            other => Problem {
                path: "spec.rankingProfile".into(),
                line: None,
                message: other.to_string(),
            },
        });
    }
    if problems.is_empty() {
        Ok(rollout)
    } else {
        Err(locate(problems))
    }
}

fn api_problem(e: crate::ApiError) -> Problem {
    match e {
        crate::ApiError::Invalid { field, message } => Problem {
            path: field,
            line: None,
            message,
        },
        other => Problem {
            path: String::new(),
            line: None,
            message: other.to_string(),
        },
    }
}
