//! `feedroll-operator run`: the kube-runtime Controller over FeedRollouts, leader election on a
//! Lease (`kube-lease-manager`) and the axum server for `/healthz`, `/readyz` and `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use feedroll_crds::FeedRollout;
use futures::{FutureExt, StreamExt};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};

use kube::{Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use kube_runtime::reflector::ObjectRef;
use kube_runtime::{Controller, watcher};
use tokio::sync::watch;

use super::caches::{self, Feeds, api};
use super::{Context, Metrics, PrometheusAnalyzer, error_policy, reconcile};
use crate::desired::{LABEL_ROLLOUT, MANAGED_BY};

/// Default for reconciles running at once (bounds memory with thousands of rollouts; analysis
/// never holds a reconcile: it is queued and picked up on the next one).
pub const CONCURRENCY: u16 = 32;

/// How long reconciles still running at a stop signal (SIGTERM, a lost Lease) may take to finish
/// before they are abandoned. Reconciles are level-triggered, so the next leader redoes an
/// abandoned one; the bound keeps shutdown (and the Lease's release) well inside the Pod's
/// termination grace period. A Controller stopped a few milliseconds after it started has been
/// seen not to end at all (kube-runtime's graceful shutdown; cause not found): this bounds it too.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// Flags of `feedroll-operator run` (each also an environment variable).
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Address of the `/healthz`, `/readyz` and `/metrics` server.
    #[arg(long, env = "FEEDROLL_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Reconcile only while holding the Lease (for more than one replica).
    #[arg(
        long,
        env = "FEEDROLL_LEADER_ELECTION",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "FEEDROLL_LEASE_NAME", default_value = "feedroll-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the client's namespace).
    #[arg(long, env = "FEEDROLL_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Watch FeedRollouts in this namespace only (empty: all namespaces).
    #[arg(long, env = "FEEDROLL_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// Reconciles running at once (never two on one FeedRollout); at least 1.
    #[arg(
        long,
        env = "FEEDROLL_CONCURRENCY",
        default_value_t = CONCURRENCY,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub concurrency: u16,
    /// Log format.
    #[arg(long, env = "FEEDROLL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Errors that stop `run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable Kubernetes configuration or client.
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The health/metrics server cannot listen.
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// The Lease cannot be set up.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
}

/// The Lease holder identity: `POD_NAME`, else the host name.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "feedroll-operator".to_owned())
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    crate::tls::install_crypto_provider();
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| RunError::Listen(args.listen, e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(serve(
        listener,
        metrics.clone(),
        ready.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let objects =
        super::credentials::ObjectCache::new(client.clone(), super::credentials::OBJECT_TTL);
    let analyzer = Arc::new(PrometheusAnalyzer::with_objects(objects));
    tokio::spawn(analyzer.clone().run_ticks());
    let result = operate(
        client,
        &args,
        &identity(),
        analyzer,
        metrics,
        ready,
        stop_rx,
    )
    .await;
    let _ = server.await;
    result
}

/// The operator without its server and signals: leader election (when asked; `id` is the Lease
/// holder identity) and the Controller, until `stop` turns true. `ready` turns true once the API
/// server answered.
pub async fn operate(
    client: Client,
    args: &RunArgs,
    id: &str,
    analyzer: Arc<dyn super::Analyzer>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    // Each term (a Lease won) starts its own watches and caches, and a fresh apply cache.
    let term = || {
        let (ctx, feeds) = Context::watching(
            client.clone(),
            analyzer.clone(),
            metrics.clone(),
            id,
            &args.watch_namespace,
        );
        (Arc::new(ctx), feeds)
    };
    // Able to take over: the API server answered (the standby is ready too).
    client.apiserver_version().await?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %id, leader_election = args.leader_election, watch_namespace = %args.watch_namespace, "feedroll-operator running");

    let result = if args.leader_election {
        lead(client.clone(), args, id, term, metrics.clone(), stop).await
    } else {
        metrics.set_leader(true);
        let (ctx, feeds) = term();
        let run = controller(
            ctx,
            feeds,
            &args.watch_namespace,
            args.concurrency,
            stopped(stop.clone()),
        );
        bounded(run, stopped(stop)).await;
        Ok(())
    };
    metrics.set_leader(false);
    result
}

/// Runs `controller` to its end, but at most [`SHUTDOWN_GRACE`] past the moment its stop signal
/// (`signal`: SIGTERM or a lost Lease) resolves: then the reconciles still running are abandoned
/// (dropped).
async fn bounded(controller: impl Future<Output = ()>, signal: impl Future<Output = ()>) {
    bounded_by(controller, signal, SHUTDOWN_GRACE).await;
}

async fn bounded_by(
    controller: impl Future<Output = ()>,
    signal: impl Future<Output = ()>,
    grace: std::time::Duration,
) {
    let deadline = async move {
        signal.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = controller => {}
        () = deadline => tracing::warn!(
            grace = ?grace,
            "reconciles still running after the stop signal's grace: abandoning them"
        ),
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Leader election: reconcile while holding the Lease, stop (and drop the per-rollout metrics)
/// when it is lost, wait to take it again; release it on shutdown.
async fn lead(
    client: Client,
    args: &RunArgs,
    id: &str,
    term: impl Fn() -> (Arc<Context>, Feeds),
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let namespace = args
        .lease_namespace
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let manager = LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(namespace.clone())
        .with_identity(id)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(lease = %args.lease_name, namespace = %namespace, "waiting for the Lease");
    loop {
        metrics.set_leader(false);
        let mut stop_wait = stop.clone();
        tokio::select! {
            r = leading.wait_for(|l| *l) => if r.is_err() {
                tracing::error!("the Lease manager stopped");
                break;
            },
            _ = stop_wait.wait_for(|s| *s) => break,
        }
        tracing::info!(lease = %args.lease_name, "leading: reconciling");
        metrics.set_leader(true);
        let mut lost = leading.clone();
        let stop_now = stop.clone();
        let until = async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => tracing::warn!("lost the Lease: stopping"),
                _ = stopped(stop_now) => {}
            }
        };
        let until = until.boxed().shared();
        let (ctx, feeds) = term();
        bounded(
            controller(
                ctx,
                feeds,
                &args.watch_namespace,
                args.concurrency,
                until.clone(),
            ),
            until,
        )
        .await;
        metrics.set_leader(false);
        metrics.forget_all();
        if *stop.borrow() {
            break;
        }
    }
    // Closing the channel releases the Lease.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the Lease"),
        Err(e) => tracing::warn!(error = %e, "the Lease task failed"),
    }
    Ok(())
}

/// The Controller: FeedRollouts, the Deployments (`feeds.deployments`), Services and ConfigMaps
/// they own, and rollout Pods (`feeds.pods`: a crash loop triggers a reconcile at once), at most
/// `concurrency` reconciles at once (0: unbounded). The Deployment and Pod watches are the ones
/// that fill `ctx.caches` (one watch per kind); they list before the Controller starts. The
/// analyzer wakes a rollout whose queued run is ready ([`super::Analyzer::runs_ready`]). Runs
/// until `until` resolves.
pub async fn controller(
    ctx: Arc<Context>,
    feeds: Feeds,
    namespace: &str,
    concurrency: u16,
    until: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let managed = watcher::Config::default()
        .labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"))
        .any_semantic();
    let Feeds { deployments, pods } = feeds.until_ready(&ctx.caches).await;
    let (rollouts, rollout_feed) = caches::rollouts(&client, namespace);
    let mut controller = Controller::for_stream(rollout_feed, rollouts)
        .owns_stream(deployments)
        .owns(api::<Service>(&client, namespace), managed.clone())
        .owns(api::<ConfigMap>(&client, namespace), managed)
        .watches_stream(pods, |pod: Pod| {
            let ns = pod.namespace().unwrap_or_default();
            pod.labels()
                .get(LABEL_ROLLOUT)
                .map(|r| ObjectRef::<FeedRollout>::new(r).within(&ns))
        });
    if let Some(ready) = ctx.analyzer.runs_ready() {
        controller = controller.reconcile_on(ready.map(|r| {
            let rollout = ObjectRef::<FeedRollout>::new(&r.rollout);
            match &r.namespace {
                Some(ns) => rollout.within(ns),
                None => rollout,
            }
        }));
    }
    controller
        .with_config(kube_runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(until)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => tracing::debug!(rollout = %obj.name, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The health and metrics server.
pub fn router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ServerState { metrics, ready })
}

async fn readyz(State(s): State<ServerState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics_text(State(s): State<ServerState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) {
    let app = router(metrics, ready);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped(stop))
        .await
    {
        tracing::error!(error = %e, "health/metrics server");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::bounded_by;

    #[tokio::test]
    async fn a_controller_that_never_ends_is_abandoned_after_the_grace() {
        let ended = tokio::time::timeout(
            Duration::from_secs(5),
            bounded_by(std::future::pending(), async {}, Duration::from_millis(20)),
        )
        .await;
        assert!(ended.is_ok(), "still waiting for a stuck controller");
    }

    #[tokio::test]
    async fn a_controller_that_ends_is_not_held_by_a_signal_that_never_comes() {
        let ended = tokio::time::timeout(
            Duration::from_secs(5),
            bounded_by(async {}, std::future::pending(), Duration::from_secs(3600)),
        )
        .await;
        assert!(ended.is_ok());
    }

    #[tokio::test]
    async fn no_stop_signal_no_deadline() {
        let ended = tokio::time::timeout(
            Duration::from_millis(100),
            bounded_by(
                std::future::pending(),
                std::future::pending(),
                Duration::ZERO,
            ),
        )
        .await;
        assert!(ended.is_err(), "abandoned a controller nobody stopped");
    }
}
