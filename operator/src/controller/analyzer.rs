//! How the reconciler gets an analysis run: the [`Analyzer`] trait, so tests control verdicts,
//! and [`PrometheusAnalyzer`], the analysis engine with one client per Prometheus address.

use std::collections::HashMap;
use std::time::Duration;

use feedroll_crds::{AnalysisRun, CheckRecord, ResolvedAnalysis, Verdict};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Mutex;

use crate::analysis::{AnalysisEngine, Target};

/// Evaluates a rollout's checks now.
pub trait Analyzer: Send + Sync {
    /// Runs `analysis.checks` (only the roll-back tier when `fast`) for `target`, stamped `at`.
    /// Never fails: an unreachable Prometheus gives `error` records (the brain holds on them).
    fn analyze<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun>;
}

/// The analysis engine against each rollout's Prometheus (`spec.analysis.prometheus`), one
/// engine (HTTP client) per address and timeout.
#[derive(Default)]
pub struct PrometheusAnalyzer {
    engines: Mutex<HashMap<(String, Duration), AnalysisEngine>>,
}

impl PrometheusAnalyzer {
    /// An analyzer without engines yet.
    pub fn new() -> Self {
        Self::default()
    }

    async fn engine(&self, analysis: &ResolvedAnalysis) -> Result<AnalysisEngine, String> {
        let key = (analysis.prometheus.clone(), analysis.timeout);
        let mut engines = self.engines.lock().await;
        if let Some(e) = engines.get(&key) {
            return Ok(e.clone());
        }
        let engine = AnalysisEngine::for_analysis(analysis).map_err(|e| e.to_string())?;
        engines.insert(key, engine.clone());
        Ok(engine)
    }
}

impl Analyzer for PrometheusAnalyzer {
    fn analyze<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun> {
        Box::pin(async move {
            match self.engine(analysis).await {
                Ok(engine) => engine.evaluate(target, &analysis.checks, fast, at).await,
                Err(e) => error_run(analysis, fast, at, &e),
            }
        })
    }
}

/// A run in which every selected check has an `error` verdict with `reason`.
pub fn error_run(
    analysis: &ResolvedAnalysis,
    fast: bool,
    at: Timestamp,
    reason: &str,
) -> AnalysisRun {
    AnalysisRun {
        at: Some(Time(at)),
        fast,
        records: analysis
            .checks
            .iter()
            .filter(|c| !fast || c.is_fast())
            .map(|c| CheckRecord {
                name: c.name.clone(),
                tier: c.tier,
                at: Some(Time(at)),
                threshold: c.threshold_text(),
                verdict: Verdict::Error,
                reason: reason.to_owned(),
                ..CheckRecord::default()
            })
            .collect(),
    }
}
