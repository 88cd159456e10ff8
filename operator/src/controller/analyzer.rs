//! How the reconciler gets an analysis run: the [`Analyzer`] trait, so tests control verdicts,
//! and [`PrometheusAnalyzer`], the analysis engine with one client per Prometheus address and
//! the requests of all rollouts batched per tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use feedroll_crds::{AnalysisRun, CheckRecord, ResolvedAnalysis, ResolvedCheck, Verdict};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Mutex;

use super::lock;
use crate::analysis::{AnalysisEngine, Target};

/// Where analysis runs come from.
pub trait Analyzer: Send + Sync {
    /// Runs `analysis.checks` (only the roll-back tier when `fast`) for `target` now, stamped
    /// `at`. Never fails: an unreachable Prometheus gives `error` records (the brain holds).
    fn analyze<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun>;

    /// The reconciler's entry point: a run for `target` if one is ready, else `None` after
    /// queueing the request (the reconciler comes back within [`ANALYSIS_POLL`]). By default
    /// the run is made at once.
    fn poll<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, Option<AnalysisRun>> {
        Box::pin(async move { Some(self.analyze(target, analysis, fast, at).await) })
    }
}

/// How often [`PrometheusAnalyzer::run_ticks`] looks at the queue (four times per tick).
pub const TICK: Duration = Duration::from_secs(1);
/// How soon a reconcile whose analysis was queued comes back for the run.
pub const ANALYSIS_POLL: Duration = Duration::from_millis(1200);

/// A rollout's request: (namespace, name, fast).
type RunKey = (Option<String>, String, bool);

struct Request {
    target: Target,
    analysis: ResolvedAnalysis,
    queued_at: std::time::Instant,
}

/// A tick evaluates the queue once no request arrived for this long (the cohort of rollouts
/// due together has been queued) ...
pub const QUIET: Duration = Duration::from_millis(900);
/// ... or once its oldest request waited this long.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The analysis engine against each rollout's Prometheus (`spec.analysis.prometheus`), one
/// engine (HTTP client) per address and timeout.
///
/// The reconciler [`Analyzer::poll`]s: requests are queued, and once the queue is quiet for
/// [`QUIET`] (or its oldest request waited [`MAX_WAIT`]) all queued requests are evaluated
/// together, per (Prometheus, timeout, fast), with
/// [`AnalysisEngine::evaluate_many`] (each distinct preset query once, grouped by rollout); the
/// runs wait for their rollouts' next reconcile. Rollouts analysed in one tick share the run
/// time, so their next runs fall due in the same tick again: Prometheus load per interval grows
/// with the number of distinct checks, not with rollouts × checks, and no reconcile holds a
/// worker while it waits.
#[derive(Default)]
pub struct PrometheusAnalyzer {
    engines: Mutex<HashMap<(String, Duration), AnalysisEngine>>,
    queued: std::sync::Mutex<HashMap<RunKey, Request>>,
    last_queued: std::sync::Mutex<Option<std::time::Instant>>,
    ready: std::sync::Mutex<HashMap<RunKey, AnalysisRun>>,
    queries: AtomicU64,
    batches: AtomicU64,
}

impl PrometheusAnalyzer {
    /// An analyzer with no engines and nothing queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prometheus queries sent by ticks so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Batches (one per Prometheus, timeout and tier selection per tick) evaluated so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
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

    /// Evaluates every queued request, stamped `at`, and keeps the runs for their rollouts.
    pub async fn tick(&self, at: Timestamp) {
        let queued: Vec<(RunKey, Request)> = lock(&self.queued).drain().collect();
        let mut groups: HashMap<(String, Duration, bool), Vec<(RunKey, Request)>> = HashMap::new();
        for (key, req) in queued {
            let group = (req.analysis.prometheus.clone(), req.analysis.timeout, key.2);
            groups.entry(group).or_default().push((key, req));
        }
        for ((_, _, fast), batch) in groups {
            let Some((_, first)) = batch.first() else {
                continue;
            };
            let runs: Vec<AnalysisRun> = match self.engine(&first.analysis).await {
                Ok(engine) => {
                    let rollouts: Vec<(Target, Vec<ResolvedCheck>)> = batch
                        .iter()
                        .map(|(_, r)| (r.target.clone(), r.analysis.checks.clone()))
                        .collect();
                    let many = engine.evaluate_many(&rollouts, fast, at).await;
                    self.queries
                        .fetch_add(many.queries as u64, Ordering::Relaxed);
                    tracing::debug!(
                        rollouts = batch.len(),
                        queries = many.queries,
                        fast,
                        "analysis batch"
                    );
                    many.runs
                }
                Err(e) => batch
                    .iter()
                    .map(|(_, r)| error_run(&r.analysis, fast, at, &e))
                    .collect(),
            };
            self.batches.fetch_add(1, Ordering::Relaxed);
            let mut ready = lock(&self.ready);
            for ((key, _), run) in batch.into_iter().zip(runs) {
                ready.insert(key, run);
            }
        }
        // Runs nobody came for (the rollout went away) are dropped after a while.
        let horizon = at.as_second() - 600;
        lock(&self.ready).retain(|_, r| r.at.as_ref().is_some_and(|t| t.0.as_second() > horizon));
    }

    /// Whether the queue is due: quiet for [`QUIET`], or its oldest request waited
    /// [`MAX_WAIT`]. Rollouts due together are then evaluated together (and stamped alike, so
    /// they stay together), however long reconciling all of them takes.
    fn due(&self) -> bool {
        let oldest = lock(&self.queued).values().map(|r| r.queued_at).min();
        let Some(oldest) = oldest else {
            return false;
        };
        let quiet = lock(&self.last_queued).is_none_or(|t| t.elapsed() >= QUIET);
        quiet || oldest.elapsed() >= MAX_WAIT
    }

    /// Ticks every [`TICK`] with the wall clock, forever, evaluating the queue when it is due.
    pub async fn run_ticks(self: Arc<Self>) {
        let mut every = tokio::time::interval(TICK / 4);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if self.due() {
                self.tick(Timestamp::now()).await;
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
            match self.engine(analysis).await {
                Ok(engine) => engine.evaluate(target, &analysis.checks, fast, at).await,
                Err(e) => error_run(analysis, fast, at, &e),
            }
        })
    }

    fn poll<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        _at: Timestamp,
    ) -> BoxFuture<'a, Option<AnalysisRun>> {
        Box::pin(async move {
            let key: RunKey = (target.namespace.clone(), target.rollout.clone(), fast);
            if let Some(run) = lock(&self.ready).remove(&key) {
                return Some(run);
            }
            let mut queued = lock(&self.queued);
            if let std::collections::hash_map::Entry::Vacant(slot) = queued.entry(key) {
                // A rollout coming back for its run does not hold the queue up.
                *lock(&self.last_queued) = Some(std::time::Instant::now());
                slot.insert(Request {
                    target: target.clone(),
                    analysis: analysis.clone(),
                    queued_at: std::time::Instant::now(),
                });
            }
            None
        })
    }
}

/// One engine answers at once for its own Prometheus (whatever `analysis.prometheus` says): the
/// e2e driver and the tests, where one Prometheus serves one rollout.
impl Analyzer for AnalysisEngine {
    fn analyze<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun> {
        Box::pin(self.evaluate(target, &analysis.checks, fast, at))
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
