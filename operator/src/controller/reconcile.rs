//! One reconcile of one FeedRollout: the finalizer around [`apply`], which runs the stages of
//! [`super::stages`] in order, and [`cleanup`].

use std::sync::Arc;
use std::time::Duration;

use feedroll_crds::FeedRollout;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube_runtime::controller::Action;
use kube_runtime::finalizer::{Event as FinalizerEvent, finalizer};

use super::analyzer::ANALYSIS_BACKSTOP;
use super::apply::{delete_one, http_route_resource};
use super::plan::Plan;
use super::stages::apply::ApplyError;
use super::stages::build::BuildError;
use super::stages::decide::Decided;
use super::stages::record::Record;
use super::stages::{apply as applying, build, decide, observe, record, status};
use super::{Context, Error, FINALIZER};
use crate::brain::EventReason;
use crate::desired::{self, Names, Track};

/// Reconciles `fr`: adds the clean-up finalizer, then [`apply`]s it, or cleans up when it is
/// being deleted. Counted in `feedroll_reconciles_total` and timed in
/// `feedroll_reconcile_duration_seconds`.
pub async fn reconcile(fr: Arc<FeedRollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let ns = fr.namespace().ok_or(Error::Metadata("namespace"))?;
    let api: Api<FeedRollout> = Api::namespaced(ctx.client.clone(), &ns);
    let ctx_ref = &ctx;
    let result = finalizer(&api, FINALIZER, fr, move |event| async move {
        match event {
            FinalizerEvent::Apply(fr) => apply(&fr, ctx_ref).await,
            FinalizerEvent::Cleanup(fr) => cleanup(&fr, ctx_ref).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    if let Err(e) = &result {
        tracing::warn!(namespace = %ns, error = %e, "reconcile failed");
    }
    result
}

/// Retries a failed reconcile after a short backoff.
pub fn error_policy(_fr: Arc<FeedRollout>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(5))
}

/// One decision and its consequences for a live FeedRollout: resolve → observe → decide →
/// build → apply → status → record (see [`super::stages`]).
pub async fn apply(fr: &FeedRollout, ctx: &Context) -> Result<Action, Error> {
    let now = (ctx.clock)();
    let plan = Plan::resolve(fr)?;
    let old = fr.status.clone().unwrap_or_default();
    let observed = observe::observe(&ctx.caches, fr, &plan, &old, now).await?;
    let Decided {
        seen,
        transition,
        observations,
        mut status,
        mut notes,
        analysis_queued,
    } = decide::decide(ctx, fr, &plan, &old, observed, now).await;
    let world = build::world(&status, &seen);
    let outcome = match build::build(fr, &status, &world, &seen) {
        Ok(built) => {
            let spec_changed = fr.metadata.generation != old.observed_generation;
            match applying::apply(ctx, fr, &plan, &built, spec_changed).await {
                Ok(()) => Ok(()),
                Err(ApplyError::Rejected(message)) => Err((
                    EventReason::ApplyFailed,
                    ApplyError::Rejected(message).to_string(),
                )),
                Err(e @ ApplyError::Api(_)) => return Err(e.into()),
            }
        }
        Err(e @ BuildError::InvalidSpec(_)) => Err((EventReason::InvalidSpec, e.to_string())),
    };
    let context = (fr, &plan, &old);
    notes.extend(status::complete(
        &mut status,
        outcome,
        context,
        (&seen, &world),
        now,
    ));
    status::write(ctx, &plan, &old, &status).await?;
    let done = Record {
        fr,
        old: &old,
        status: &status,
        observations: &observations,
        transition: &transition,
        notes,
    };
    record::record(ctx, done, now).await;
    Ok(Action::requeue(requeue(
        ctx,
        transition.requeue_after,
        analysis_queued,
    )))
}

/// When to come back: when the brain asks (at least 1 s, at most the resync). With an analysis
/// run queued, the analyzer wakes the rollout when the run is ready (within seconds; the brain
/// would ask for "now" while the run is due): [`ANALYSIS_BACKSTOP`] only bounds the wait should
/// that wake be lost.
fn requeue(ctx: &Context, asked: Option<Duration>, analysis_queued: bool) -> Duration {
    if analysis_queued {
        return ANALYSIS_BACKSTOP;
    }
    asked
        .unwrap_or(ctx.resync)
        .clamp(Duration::from_secs(1), ctx.resync)
}

/// Deletes the rollout's objects (owner references would too, but the finalizer makes it
/// explicit and ordered) and forgets its metrics.
pub async fn cleanup(fr: &FeedRollout, ctx: &Context) -> Result<Action, Error> {
    let names = Names::of(fr).map_err(|_| Error::Metadata("name"))?;
    let ns = names.namespace.clone();
    let (client, cache) = (&ctx.client, &ctx.cache);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for track in [Track::Canary, Track::Stable] {
        let name = names.deployment(track);
        delete_one(&deployments, cache, "Deployment", &ns, &name).await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for name in [
        names.main_service(),
        names.service(Track::Stable),
        names.service(Track::Canary),
    ] {
        delete_one(&services, cache, "Service", &ns, &name).await?;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    delete_one(&config_maps, cache, "ConfigMap", &ns, &names.config_map()).await?;
    if let feedroll_crds::TrafficMode::GatewayApi(g) = fr.spec.traffic_mode() {
        let routes: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &http_route_resource());
        let name = desired::traffic::route_name(&names, &g);
        delete_one(&routes, cache, "HTTPRoute", &ns, &name).await?;
    }
    ctx.metrics.forget(&ns, &names.rollout);
    tracing::info!(namespace = %ns, rollout = %names.rollout, "deleted the rollout's objects");
    Ok(Action::await_change())
}
