//! The analysis engine: renders each check, asks Prometheus, classifies the answer.
//!
//! - [`render`]: PromQL templates and the label selector of each side (canary, stable).
//! - [`presets`]: the built-in queries over the feed-server metrics contract.
//! - [`classify`]: value / empty / NaN-Inf / error → pass / fail / no-data / error (pure).
//! - [`engine`]: runs the queries through `prometheus-http-query` with a timeout and returns a
//!   [`feedroll_crds::CheckRecord`] per check, which goes into the status as-is.
//!
//! Query load (issue 4): every query is rendered from a template whose only per-rollout part is
//! the label selector. [`render::grouped`] renders the same template with the rollout matcher
//! dropped and `by (namespace, rollout, track, variant)` aggregation, so one query per distinct
//! check can serve every rollout; the controller can adopt it without changing the checks.

pub mod classify;
pub mod engine;
pub mod presets;
pub mod render;

pub use classify::{Outcome, classify};
pub use engine::{AnalysisEngine, AnalysisError};
pub use render::{Side, Target};
