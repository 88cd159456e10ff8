//! The analysis engine: renders each check, asks Prometheus, classifies the answer.
//!
//! - [`analyzer`]: the [`Analyzer`] trait, where the reconciler and the e2e driver get runs.
//! - [`render`]: PromQL templates and the label selector of each side (canary, stable).
//! - [`presets`]: the built-in queries over the feed-server metrics contract.
//! - [`mod@classify`]: value / empty / NaN-Inf / error → pass / fail / no-data / error (pure).
//! - [`counts`]: the four counts of a sequential check → verdict and evidence (pure).
//! - [`sequential`]: sequential verdicts on the counts of the step so far, an always-valid
//!   confidence sequence for canary − stable (pure).
//! - [`connection`]: address, timeout, credentials, headers and TLS of one Prometheus, resolved
//!   from the spec and its Secrets/ConfigMaps (pure), and the HTTP client built from them.
//! - [`fault`]: connection faults (credentials, 401/403, TLS, unreachable) behind failed queries.
//! - [`replay`]: the replay gate's HTTP adapter (`POST /v1/admin/replay` on a stable pod).
//! - [`engine`]: runs the queries through `prometheus-http-query` with a timeout and returns a
//!   [`feedroll_crds::CheckRecord`] per check, which goes into the status as-is. One request
//!   function sends a query and classifies its answer ([`Outcome`], or the series of a grouped
//!   query); one evaluation path, [`AnalysisEngine::evaluate_many`], of which
//!   [`AnalysisEngine::evaluate`] is the one-rollout case.
//!
//! Query load (issue 4): the only per-rollout part of a preset query is its label selector.
//! [`AnalysisEngine::evaluate_many`] runs each distinct preset query once for all rollouts in
//! grouped form (`sum by (namespace, rollout, track)`, [`presets::Aggregation::By`],
//! [`render::render_grouped`]) and picks every rollout's series from the answer, so Prometheus
//! load grows with the number of distinct checks, not rollouts × checks. Custom PromQL checks are
//! run per rollout (their text is the user's).

pub mod analyzer;
pub mod classify;
pub mod connection;
pub mod counts;
pub mod engine;
pub mod fault;
pub mod presets;
pub mod render;
pub mod replay;
pub mod sequential;

pub use analyzer::{Analyzer, RunReady};
pub use classify::{Outcome, classify};
pub use connection::{CredentialError, PrometheusConnection};
pub use engine::{AnalysisEngine, AnalysisError, ManyRuns};
pub use fault::{FaultKind, PrometheusFault};
pub use render::{Side, Target};
