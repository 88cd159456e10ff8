//! Where analysis runs come from: the [`Analyzer`] trait (Prometheus in production, scripted
//! in tests). It lives with the engine, not the reconciler, so the driver (`crate::driver`)
//! and the e2e take their turns without depending on `crate::controller`, which implements it
//! with batching (`crate::controller::PrometheusAnalyzer`).

use feedroll_crds::{AnalysisRun, ResolvedAnalysis};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::jiff::Timestamp;

use super::{AnalysisEngine, PrometheusFault, Target};

/// A rollout whose queued analysis run is ready to be picked up ([`Analyzer::runs_ready`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunReady {
    /// The rollout's namespace.
    pub namespace: Option<String>,
    /// The rollout's name.
    pub rollout: String,
}

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
    /// queueing the request (the reconciler comes back for it). By default
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

    /// The rollouts whose queued run became ready, as they become ready, from now on: the
    /// reconciler wakes them (push, not poll). Each call is a new subscriber. `None` (the
    /// default) for analyzers whose [`Analyzer::poll`] answers at once and never queues.
    fn runs_ready(&self) -> Option<BoxStream<'static, RunReady>> {
        None
    }

    /// The connection fault (credentials, 401/403, TLS, unreachable) of the last run made for
    /// `target`, if it had one. None by default.
    fn fault(&self, _target: &Target) -> Option<PrometheusFault> {
        None
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
