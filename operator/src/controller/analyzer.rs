//! How the reconciler gets an analysis run: the [`Analyzer`] trait, so tests control verdicts,
//! and [`PrometheusAnalyzer`], the analysis engine with one client per Prometheus address.

use std::collections::HashMap;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use feedroll_crds::{AnalysisRun, CheckRecord, ResolvedAnalysis, ResolvedCheck, Verdict};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{Mutex, oneshot};

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
/// engine (HTTP client) per address and timeout, with requests **batched**: the first request
/// for a (Prometheus, timeout, fast) key waits `window`, then every request that arrived
/// meanwhile is evaluated at once with [`AnalysisEngine::evaluate_many`] (each distinct preset
/// query once, grouped by rollout). Rollouts analysed in one batch share the run time, so their
/// next runs fall due together again: Prometheus load per interval grows with the number of
/// distinct checks, not with rollouts × checks.
pub struct PrometheusAnalyzer {
    engines: Mutex<HashMap<(String, Duration), AnalysisEngine>>,
    window: Duration,
    batches: std::sync::Mutex<HashMap<BatchKey, Vec<Pending>>>,
    queries: AtomicU64,
    batches_run: AtomicU64,
}

/// Requests evaluated together: same Prometheus, same timeout, same tier selection.
type BatchKey = (String, Duration, bool);

struct Pending {
    target: Target,
    checks: Vec<ResolvedCheck>,
    at: Timestamp,
    tx: oneshot::Sender<AnalysisRun>,
}

/// Default batching window.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(200);

impl Default for PrometheusAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusAnalyzer {
    /// An analyzer batching requests for [`DEFAULT_BATCH_WINDOW`].
    pub fn new() -> Self {
        Self::with_window(DEFAULT_BATCH_WINDOW)
    }

    /// An analyzer batching requests for `window` (zero: still batches concurrent requests).
    pub fn with_window(window: Duration) -> Self {
        Self {
            engines: Mutex::default(),
            window,
            batches: std::sync::Mutex::default(),
            queries: AtomicU64::new(0),
            batches_run: AtomicU64::new(0),
        }
    }

    /// Prometheus queries sent so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Batches evaluated so far.
    pub fn batches(&self) -> u64 {
        self.batches_run.load(Ordering::Relaxed)
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

    fn batches_lock(&self) -> std::sync::MutexGuard<'_, HashMap<BatchKey, Vec<Pending>>> {
        self.batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Evaluates a batch and hands each request its run.
    async fn flush(&self, analysis: &ResolvedAnalysis, fast: bool, batch: Vec<Pending>) {
        let Some(at) = batch.iter().map(|p| p.at).max() else {
            return;
        };
        match self.engine(analysis).await {
            Ok(engine) => {
                let rollouts: Vec<(Target, Vec<ResolvedCheck>)> = batch
                    .iter()
                    .map(|p| (p.target.clone(), p.checks.clone()))
                    .collect();
                let many = engine.evaluate_many(&rollouts, fast, at).await;
                self.queries
                    .fetch_add(many.queries as u64, Ordering::Relaxed);
                self.batches_run.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    rollouts = batch.len(),
                    queries = many.queries,
                    fast,
                    "analysis batch"
                );
                for (p, run) in batch.into_iter().zip(many.runs) {
                    let _ = p.tx.send(run);
                }
            }
            Err(e) => {
                for p in batch {
                    let run = error_run_checks(&p.checks, fast, p.at, &e);
                    let _ = p.tx.send(run);
                }
            }
        }
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
            let key: BatchKey = (analysis.prometheus.clone(), analysis.timeout, fast);
            let (tx, rx) = oneshot::channel();
            let leader = {
                let mut batches = self.batches_lock();
                let queue = batches.entry(key.clone()).or_default();
                queue.push(Pending {
                    target: target.clone(),
                    checks: analysis.checks.clone(),
                    at,
                    tx,
                });
                queue.len() == 1
            };
            if leader {
                tokio::time::sleep(self.window).await;
                let batch = self.batches_lock().remove(&key).unwrap_or_default();
                self.flush(analysis, fast, batch).await;
            }
            match rx.await {
                Ok(run) => run,
                // The batch's leader was cancelled: evaluate alone.
                Err(_) => match self.engine(analysis).await {
                    Ok(engine) => engine.evaluate(target, &analysis.checks, fast, at).await,
                    Err(e) => error_run(analysis, fast, at, &e),
                },
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
    error_run_checks(&analysis.checks, fast, at, reason)
}

fn error_run_checks(
    checks: &[ResolvedCheck],
    fast: bool,
    at: Timestamp,
    reason: &str,
) -> AnalysisRun {
    AnalysisRun {
        at: Some(Time(at)),
        fast,
        records: checks
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
