//! How the reconciler gets an analysis run: the [`Analyzer`] trait, so tests control verdicts,
//! and [`PrometheusAnalyzer`], the analysis engine with one client per Prometheus connection
//! (address, timeout, credentials, headers, TLS) and the requests of all rollouts batched per
//! tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use feedroll_crds::{AnalysisRun, CheckRecord, ResolvedAnalysis, ResolvedCheck, Verdict};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Mutex;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::credentials::ObjectCache;
use super::lock;
use crate::analysis::connection::{ConnectionKey, Fetched, FetchedObject, resolve};
use crate::analysis::{AnalysisEngine, FaultKind, PrometheusConnection, PrometheusFault, Target};
pub use crate::analysis::{Analyzer, RunReady};
use crate::brain::EventReason;

/// Whether `fault`, met by `run`, is news: the previous analysis in the status does not carry
/// it already (one Event per change of fault, not one per run).
pub fn fault_is_news(
    fault: &PrometheusFault,
    previous: Option<&AnalysisRun>,
    run: &AnalysisRun,
) -> bool {
    let message = fault.to_string();
    let carries = |r: &AnalysisRun| r.records.iter().any(|c| c.reason.contains(&message));
    carries(run) && !previous.is_some_and(carries)
}

/// The Warning Event reason of a connection fault.
pub fn fault_reason(fault: &PrometheusFault) -> EventReason {
    match fault.kind() {
        FaultKind::Credentials => EventReason::PrometheusCredentialsInvalid,
        FaultKind::Rejected => EventReason::PrometheusAuthFailed,
        FaultKind::Tls | FaultKind::Unreachable => EventReason::PrometheusUnreachable,
    }
}

/// How often [`PrometheusAnalyzer::run_ticks`] looks at the queue (four times per tick).
pub const TICK: Duration = Duration::from_secs(1);
/// How soon a reconcile whose analysis was queued comes back for the run if no wake
/// ([`Analyzer::runs_ready`]) brought it back first: a bound, not a poll (the wake comes one
/// tick after the queue is due, within [`MAX_WAIT`] plus the evaluation).
pub const ANALYSIS_BACKSTOP: Duration = Duration::from_secs(30);

/// A rollout's request: (namespace, name, fast).
type RunKey = (Option<String>, String, bool);

/// A rollout: (namespace, name).
type RolloutKey = (Option<String>, String);

/// An engine not used for this long is dropped (its connection changed or went away).
pub const ENGINE_IDLE: Duration = Duration::from_secs(600);

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
/// engine (HTTP client) per connection: address, timeout and the resolved credentials, headers
/// and TLS, told apart by [`PrometheusConnection::key`] (a hash; a rotated Secret gives a new
/// engine, and the old one is dropped after [`ENGINE_IDLE`]). The Secrets and ConfigMaps named
/// by `spec.analysis.prometheus` are read through an [`ObjectCache`] in the rollout's
/// namespace; when they cannot be resolved, or Prometheus refuses the credentials or the TLS
/// handshake fails, every check of the run is `error` with the reason and [`Analyzer::fault`]
/// reports the fault.
///
/// The reconciler [`Analyzer::poll`]s: requests are queued, and once the queue is quiet for
/// [`QUIET`] (or its oldest request waited [`MAX_WAIT`]) all queued requests are evaluated
/// together, per (connection, fast), with
/// [`AnalysisEngine::evaluate_many`] (each distinct preset query once, grouped by rollout); each
/// run waits for its rollout, which [`Analyzer::runs_ready`] wakes. Rollouts analysed in one tick share the run
/// time, so their next runs fall due in the same tick again: Prometheus load per interval grows
/// with the number of distinct checks, not with rollouts × checks, and no reconcile holds a
/// worker while it waits.
#[derive(Default)]
pub struct PrometheusAnalyzer {
    engines: Mutex<HashMap<ConnectionKey, (AnalysisEngine, std::time::Instant)>>,
    objects: Option<ObjectCache>,
    faults: std::sync::Mutex<HashMap<RolloutKey, PrometheusFault>>,
    queued: std::sync::Mutex<HashMap<RunKey, Request>>,
    last_queued: std::sync::Mutex<Option<std::time::Instant>>,
    ready: std::sync::Mutex<HashMap<RunKey, AnalysisRun>>,
    /// One sender per [`Analyzer::runs_ready`] subscriber (dropped when it goes away).
    wakes: std::sync::Mutex<Vec<UnboundedSender<RunReady>>>,
    queries: AtomicU64,
    batches: AtomicU64,
}

impl PrometheusAnalyzer {
    /// An analyzer with no engines and nothing queued, and no Kubernetes access: a rollout
    /// whose `spec.analysis.prometheus` names a Secret or ConfigMap gets a credentials error.
    pub fn new() -> Self {
        Self::default()
    }

    /// An analyzer reading the Secrets and ConfigMaps of `spec.analysis.prometheus` through
    /// `objects`.
    pub fn with_objects(objects: ObjectCache) -> Self {
        Self {
            objects: Some(objects),
            ..Self::default()
        }
    }

    /// The connection of a rollout in `namespace`: its Secrets and ConfigMaps read (cached)
    /// and resolved.
    async fn connection(
        &self,
        namespace: Option<&str>,
        analysis: &ResolvedAnalysis,
    ) -> Result<PrometheusConnection, PrometheusFault> {
        let refs = analysis.access.references();
        let fetched: Fetched = match (&self.objects, namespace) {
            _ if refs.is_empty() => Fetched::new(),
            (Some(objects), Some(ns)) => objects.fetch(ns, &refs).await,
            _ => refs
                .iter()
                .map(|r| {
                    let why = "the operator has no Kubernetes client here".to_owned();
                    ((r.kind, r.name.clone()), FetchedObject::Unreadable(why))
                })
                .collect(),
        };
        Ok(resolve(
            &analysis.prometheus,
            analysis.timeout,
            &analysis.access,
            &fetched,
        )?)
    }

    /// The engine of a rollout in `namespace`, and its connection key.
    async fn engine_for(
        &self,
        namespace: Option<&str>,
        analysis: &ResolvedAnalysis,
    ) -> Result<(ConnectionKey, AnalysisEngine), PrometheusFault> {
        let connection = self.connection(namespace, analysis).await?;
        let key = connection.key();
        let mut engines = self.engines.lock().await;
        let now = std::time::Instant::now();
        if let Some((e, used)) = engines.get_mut(&key) {
            *used = now;
            return Ok((key, e.clone()));
        }
        let engine = AnalysisEngine::connect(&connection).map_err(|e| match e {
            crate::analysis::AnalysisError::Client(c) => PrometheusFault::Credentials(c),
            other => PrometheusFault::Unreachable(other.to_string()),
        })?;
        tracing::info!(prometheus = %connection.summary(), "new Prometheus client");
        engines.insert(key, (engine.clone(), now));
        Ok((key, engine))
    }

    fn set_fault(&self, rollout: RolloutKey, fault: Option<PrometheusFault>) {
        let mut faults = lock(&self.faults);
        match fault {
            Some(f) => {
                faults.insert(rollout, f);
            }
            None => {
                faults.remove(&rollout);
            }
        }
    }

    /// Keeps `run` for its rollout's next poll and wakes the rollout.
    fn deliver(&self, key: RunKey, run: AnalysisRun) {
        let ready = RunReady {
            namespace: key.0.clone(),
            rollout: key.1.clone(),
        };
        lock(&self.ready).insert(key, run);
        lock(&self.wakes).retain(|tx| tx.send(ready.clone()).is_ok());
    }

    /// Prometheus queries sent by ticks so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Batches (one per Prometheus, timeout and tier selection per tick) evaluated so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Evaluates every queued request, stamped `at`, and keeps the runs for their rollouts.
    pub async fn tick(&self, at: Timestamp) {
        let queued: Vec<(RunKey, Request)> = lock(&self.queued).drain().collect();
        type Batch = (AnalysisEngine, Vec<(RunKey, Request)>);
        let mut groups: HashMap<(ConnectionKey, bool), Batch> = HashMap::new();
        for (key, req) in queued {
            match self.engine_for(key.0.as_deref(), &req.analysis).await {
                Ok((connection, engine)) => groups
                    .entry((connection, key.2))
                    .or_insert_with(|| (engine, Vec::new()))
                    .1
                    .push((key, req)),
                Err(fault) => {
                    let run = error_run(&req.analysis, key.2, at, &fault.to_string());
                    self.set_fault((key.0.clone(), key.1.clone()), Some(fault));
                    self.deliver(key, run);
                }
            }
        }
        for ((_, fast), (engine, batch)) in groups {
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
            self.batches.fetch_add(1, Ordering::Relaxed);
            for ((key, _), run) in batch.into_iter().zip(many.runs) {
                self.set_fault((key.0.clone(), key.1.clone()), many.fault.clone());
                self.deliver(key, run);
            }
        }
        self.engines
            .lock()
            .await
            .retain(|_, (_, used)| used.elapsed() < ENGINE_IDLE);
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
            let rollout = (target.namespace.clone(), target.rollout.clone());
            match self.engine_for(target.namespace.as_deref(), analysis).await {
                Ok((_, engine)) => {
                    let one = [(target.clone(), analysis.checks.clone())];
                    let many = engine.evaluate_many(&one, fast, at).await;
                    self.set_fault(rollout, many.fault);
                    many.runs
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| error_run(analysis, fast, at, "internal: no run"))
                }
                Err(fault) => {
                    let run = error_run(analysis, fast, at, &fault.to_string());
                    self.set_fault(rollout, Some(fault));
                    run
                }
            }
        })
    }

    fn runs_ready(&self) -> Option<BoxStream<'static, RunReady>> {
        let (tx, rx) = unbounded_channel();
        lock(&self.wakes).push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|ready| (ready, rx))
        });
        Some(Box::pin(stream))
    }

    fn fault(&self, target: &Target) -> Option<PrometheusFault> {
        lock(&self.faults)
            .get(&(target.namespace.clone(), target.rollout.clone()))
            .cloned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(reasons: &[&str]) -> AnalysisRun {
        AnalysisRun {
            records: reasons
                .iter()
                .map(|r| CheckRecord {
                    reason: (*r).to_owned(),
                    ..CheckRecord::default()
                })
                .collect(),
            ..AnalysisRun::default()
        }
    }

    #[test]
    fn a_fault_is_news_once_per_change() {
        let rejected = PrometheusFault::Rejected { status: 401 };
        let tls = PrometheusFault::Tls("invalid peer certificate: UnknownIssuer".into());
        let with = |f: &PrometheusFault| run_with(&[&format!("canary value: {f}"), "ok"]);
        // New: nothing before, or something else before.
        assert!(fault_is_news(&rejected, None, &with(&rejected)));
        assert!(fault_is_news(
            &rejected,
            Some(&run_with(&["0.1 <= 0.5"])),
            &with(&rejected)
        ));
        assert!(fault_is_news(
            &rejected,
            Some(&with(&tls)),
            &with(&rejected)
        ));
        // Not news: the status already carries it.
        assert!(!fault_is_news(
            &rejected,
            Some(&with(&rejected)),
            &with(&rejected)
        ));
        // A fault the run does not carry (a stale one) is never reported.
        assert!(!fault_is_news(&rejected, None, &run_with(&["ok"])));
    }

    #[test]
    fn each_fault_kind_has_its_event_reason() {
        let cases = [
            (
                PrometheusFault::Credentials(crate::analysis::CredentialError::HeaderName {
                    name: "a b".into(),
                }),
                "PrometheusCredentialsInvalid",
            ),
            (
                PrometheusFault::Rejected { status: 403 },
                "PrometheusAuthFailed",
            ),
            (PrometheusFault::Tls("x".into()), "PrometheusUnreachable"),
            (
                PrometheusFault::Unreachable("x".into()),
                "PrometheusUnreachable",
            ),
        ];
        for (fault, reason) in cases {
            assert_eq!(fault_reason(&fault).as_str(), reason);
        }
    }
}
