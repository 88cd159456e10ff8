//! The reconciler: `feedroll-operator run` turns the brain's decisions into Kubernetes objects.
//!
//! One reconcile of a FeedRollout ([`reconcile::reconcile`]) runs the [`stages`] in order:
//! resolve the plan, observe the world from the watch [`caches`] (the two Deployments, the
//! rollout's pods, the command annotation; no API request), decide (the analysis that is due
//! from the [`analyzer::Analyzer`], which wakes the rollout when a queued run is ready, then the
//! brain), build the desired objects ([`crate::desired`]), apply them with server-side apply,
//! write the status when it changed, then emit an Event per decision and update the metrics.
//! Everything needed to resume lives in the status.
//!
//! - [`caches`]: reflector stores of Deployments and Pods, fed by the Controller's watches.
//! - [`stages`]: one module and error type per stage of a reconcile.
//! - [`analyzer`]: the analysis behind a trait (Prometheus in production, scripted in tests).
//! - [`credentials`]: the Secrets and ConfigMaps of `spec.analysis.prometheus`, read through a
//!   short cache.
//! - [`apply`]: server-side apply under the `feedroll-operator` field manager.
//! - [`events`]: Kubernetes Events with the brain's reasons.
//! - [`metrics`]: the operator metrics the chart's alerts use.
//! - [`plan`]: what one reconcile works from (names, revision, analysis target, selector),
//!   resolved once from the FeedRollout.
//! - [`run`]: the kube-runtime Controller, leader election and the health/metrics server.

pub mod analyzer;
pub mod apply;
pub mod caches;
pub mod credentials;
pub mod events;
pub mod metrics;
pub mod plan;
pub mod rbac;
pub mod reconcile;
pub mod replay;
pub mod run;
pub mod stages;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;

pub use analyzer::{Analyzer, PrometheusAnalyzer};
pub use apply::{ApplyCache, FIELD_MANAGER};
pub use caches::{Caches, Feeds};
pub use events::EventPublisher;
pub use metrics::Metrics;
pub use reconcile::{error_policy, reconcile};

/// Locks `m`, also after a panic elsewhere poisoned it (the guarded maps stay consistent: every
/// critical section is a single insert, remove or read).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `reportingController` of the Events.
pub const CONTROLLER_NAME: &str = "feedroll.dev/feedroll-operator";
/// The finalizer that deletes a FeedRollout's objects before it goes.
pub const FINALIZER: &str = "feedroll.dev/cleanup";
/// The reconciler's own condition: `False` when the FeedRollout's objects cannot be built or
/// applied (a malformed spec), with the reason and message.
pub const CONDITION_RECONCILED: &str = "Reconciled";
/// Requeue of rollouts at rest (a resync; changes of owned objects requeue at once).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);

/// An unchanged object is re-applied at most this often (repairs manual edits of Services and
/// ConfigMaps; Deployments are compared with the live ones on every reconcile).
pub const APPLY_TTL: Duration = Duration::from_secs(60);

/// The time source (tests move time by hand).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The watch caches the reconcile observes Deployments and pods from.
    pub caches: Caches,
    /// Where analysis runs come from.
    pub analyzer: Arc<dyn Analyzer>,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Event publisher.
    pub events: EventPublisher,
    /// Now.
    pub clock: Clock,
    /// Last applied objects (skips identical applies).
    pub cache: ApplyCache,
    /// Requeue of rollouts at rest.
    pub resync: Duration,
}

impl Context {
    /// A context reading `caches`, with the wall clock, a fresh apply cache and the default
    /// resync.
    pub fn new(
        client: Client,
        analyzer: Arc<dyn Analyzer>,
        metrics: Arc<Metrics>,
        instance: &str,
        caches: Caches,
    ) -> Self {
        Self {
            events: EventPublisher::new(client.clone(), instance),
            caches,
            client,
            analyzer,
            metrics,
            clock: Arc::new(Timestamp::now),
            cache: ApplyCache::new(APPLY_TTL),
            resync: DEFAULT_RESYNC,
        }
    }
}

impl Context {
    /// A context whose caches watch `namespace` (all namespaces when empty), and the watches
    /// that fill them, for [`run::controller`].
    pub fn watching(
        client: Client,
        analyzer: Arc<dyn Analyzer>,
        metrics: Arc<Metrics>,
        instance: &str,
        namespace: &str,
    ) -> (Self, Feeds) {
        let (caches, feeds) = Caches::watch(&client, namespace);
        (
            Self::new(client, analyzer, metrics, instance, caches),
            feeds,
        )
    }
}

/// Reconcile errors (all retried with backoff; a malformed FeedRollout is not an error but a
/// condition and an Event).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer, or the reconcile inside it, failed.
    #[error("{0}")]
    Finalizer(#[source] Box<kube_runtime::finalizer::Error<Error>>),
    /// The object lacks metadata the API server always sets.
    #[error("the FeedRollout has no {0}")]
    Metadata(&'static str),
    /// The FeedRollout cannot be planned (no name or namespace).
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The watch caches cannot be read.
    #[error(transparent)]
    Observe(#[from] stages::observe::ObserveError),
    /// The objects could not be applied for a reason a retry may fix.
    #[error(transparent)]
    Apply(#[from] stages::apply::ApplyError),
    /// The status could not be written.
    #[error(transparent)]
    Status(#[from] stages::status::StatusError),
}
