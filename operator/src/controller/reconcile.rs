//! One reconcile of one FeedRollout.

use std::sync::Arc;
use std::time::Duration;

use feedroll_crds::{ConditionStatus, FeedRollout, FeedRolloutStatus, Phase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube_runtime::controller::Action;
use kube_runtime::finalizer::{Event as FinalizerEvent, finalizer};

use super::apply::{
    apply_desired, apply_status, delete_one, http_route_resource, prune_http_routes,
};
use super::plan::Plan;
use super::{CONDITION_RECONCILED, Context, Error, FINALIZER};
use crate::brain::{self, EventReason, EventType, Observations, Transition};
use crate::desired::{self, LABEL_ROLLOUT, LABEL_TRACK, Names, Track, World};
use crate::{driver, observe};

/// Reconciles `fr`: adds the clean-up finalizer, then [`apply`]s it, or cleans up when it is
/// being deleted. Counted in `feedroll_reconciles_total`.
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

/// What was read from the cluster for one rollout.
struct Seen {
    stable: Option<Deployment>,
    canary: Option<Deployment>,
    canary_pods: Vec<Pod>,
    stable_pods: Vec<Pod>,
}

/// The rollout's Deployments and canary pods, and its stable pods while `promoting` (their
/// issues are the promotion's).
async fn read_world(ctx: &Context, names: &Names, promoting: bool) -> Result<Seen, Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let stable = deployments
        .get_opt(&names.deployment(Track::Stable))
        .await?;
    let canary = deployments
        .get_opt(&names.deployment(Track::Canary))
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let list = |track: Track| {
        let selector = format!(
            "{LABEL_ROLLOUT}={},{LABEL_TRACK}={}",
            names.rollout,
            track.as_str()
        );
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels(&selector))
                .await
                .map(|l| l.items)
        }
    };
    let canary_pods = list(Track::Canary).await?;
    let stable_pods = if promoting {
        list(Track::Stable).await?
    } else {
        Vec::new()
    };
    Ok(Seen {
        stable,
        canary,
        canary_pods,
        stable_pods,
    })
}

/// The observations of the world for the brain, given the status before this decision.
fn observations(
    fr: &FeedRollout,
    plan: &Plan,
    old: &FeedRolloutStatus,
    seen: &Seen,
    now: Timestamp,
) -> Observations {
    let canary_rev = old.canary_revision.as_deref();
    let ready = observe::canary_ready(seen.canary.as_ref(), canary_rev);
    let want = desired::split(fr.spec.replicas, old, &plan.target.traffic, ready).canary;
    let revision = plan.revision.as_str();
    // Readiness is judged at the canary the status knows; crash loops only on pods of the
    // revision being rolled out (pods of an earlier canary never roll a new one back).
    let mut canary =
        observe::canary_health(seen.canary.as_ref(), &seen.canary_pods, canary_rev, want);
    canary.crash_looping =
        observe::canary_health(None, &seen.canary_pods, Some(revision), 0).crash_looping;
    // The pods of the revision being rolled out: the canary's, and during a promotion the
    // stable track's (moving to that revision).
    canary.issues = if old.phase == Some(Phase::Promoting) {
        observe::track_issues(&seen.stable_pods, now)
    } else {
        observe::canary_issues(&seen.canary_pods, canary_rev, now)
    };
    Observations {
        revision: revision.to_owned(),
        generation: fr.metadata.generation,
        analysis: None,
        canary,
        stable_ready_revision: observe::stable_ready_revision(seen.stable.as_ref()),
        commands: Vec::new(),
        replay: None,
    }
}

/// One decision and its consequences for a live FeedRollout.
pub async fn apply(fr: &FeedRollout, ctx: &Context) -> Result<Action, Error> {
    let now = (ctx.clock)();
    let plan = Plan::resolve(fr)?;
    let (ns, name) = (plan.names.namespace.clone(), plan.names.rollout.clone());
    let spec = &fr.spec;
    let old = fr.status.clone().unwrap_or_default();
    let seen = read_world(ctx, &plan.names, old.phase == Some(Phase::Promoting)).await?;

    let mut obs = observations(fr, &plan, &old, &seen, now);
    let mut extra_events: Vec<(EventType, EventReason, String)> = Vec::new();
    let mut bad_command = None;
    match observe::command(fr.annotations()) {
        Ok(Some(c)) => obs.commands.push(c),
        Ok(None) => {}
        Err((id, message)) => {
            if old.last_command_id.as_deref() != Some(id.as_str()) {
                extra_events.push((EventType::Warning, EventReason::CommandIgnored, message));
                bad_command = Some(id);
            }
        }
    }
    let target = &plan.target;
    if let Some(ask) = brain::replay_due(spec, &old, now) {
        obs.replay = Some(
            super::replay::ask_stable_pod(
                &ctx.client,
                fr,
                &plan.names,
                seen.stable.as_ref(),
                &ask,
                now,
            )
            .await,
        );
    }
    let turn = driver::turn(ctx.analyzer.as_ref(), target, spec, &old, obs, now).await;
    if let Some(run) = &turn.observations.analysis
        && let Some(fault) = ctx.analyzer.fault(target)
        && super::analyzer::fault_is_news(&fault, old.analysis.as_ref(), run)
    {
        let reason = super::analyzer::fault_reason(&fault);
        extra_events.push((EventType::Warning, reason, fault.to_string()));
    }
    let (t, obs) = (turn.transition, turn.observations);
    let mut status = t.status.clone();
    if let Some(id) = bad_command {
        status.last_command_id = Some(id);
    }

    // The objects the new status asks for.
    let mut decided = fr.clone();
    decided.status = Some(status.clone());
    let world = World {
        recorded_stable: seen.stable.as_ref().and_then(observe::recorded_source),
        canary_ready: observe::canary_ready(
            seen.canary.as_ref(),
            status.canary_revision.as_deref(),
        ),
    };
    let reconciled = match desired::desired(&decided, &world) {
        Ok(d) => {
            // A Deployment that is missing or drifted from what was last applied is re-applied
            // now, not when the apply cache expires.
            for (want, live) in [(&d.stable, &seen.stable), (&d.canary, &seen.canary)] {
                if let Some(want) = want
                    && drifted(want, live.as_ref())
                {
                    let name = want.metadata.name.as_deref().unwrap_or_default();
                    ctx.cache.invalidate("Deployment", &ns, name);
                }
            }
            let applied = apply_desired(&ctx.client, &ctx.cache, &ns, &d).await;
            if applied.is_ok() && fr.metadata.generation != old.observed_generation {
                // The spec changed: a route it no longer asks for goes (mode or name change).
                let keep = d
                    .http_route
                    .as_ref()
                    .and_then(|r| r["metadata"]["name"].as_str());
                let uid = fr.metadata.uid.as_deref().unwrap_or_default();
                // Never blocks the rollout: a route left behind only sends traffic nowhere new,
                // and owner references delete it with the FeedRollout.
                match prune_http_routes(&ctx.client, &ctx.cache, &ns, &name, uid, keep).await {
                    Ok(0) => {}
                    Ok(pruned) => {
                        tracing::info!(namespace = %ns, rollout = %name, pruned, "deleted HTTPRoutes the spec no longer asks for");
                    }
                    Err(e) => {
                        tracing::warn!(namespace = %ns, rollout = %name, error = %e, "cannot delete HTTPRoutes the spec no longer asks for");
                    }
                }
            }
            match applied {
                Ok(()) => Ok(()),
                Err(kube::Error::Api(s)) if is_permanent(s.code) => Err((
                    EventReason::ApplyFailed,
                    format!("the API server rejected an object: {}", s.message),
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => Err((EventReason::InvalidSpec, e.to_string())),
    };
    match &reconciled {
        Ok(()) => set_condition(
            &mut status,
            ConditionStatus::True,
            "Reconciled",
            "",
            fr,
            now,
        ),
        Err((reason, message)) => {
            let previous = condition(&old, CONDITION_RECONCILED);
            if previous.is_none_or(|c| {
                c.status != ConditionStatus::False.as_str() || c.message != *message
            }) {
                extra_events.push((EventType::Warning, *reason, message.clone()));
            }
            tracing::warn!(namespace = %ns, rollout = %name, %reason, message, "cannot reconcile the rollout's objects");
            set_condition(
                &mut status,
                ConditionStatus::False,
                reason.as_str(),
                message,
                fr,
                now,
            );
        }
    }

    // Replica counts and selector for the status and the scale subresource.
    let (total, ready, stable_n, canary_n) =
        observe::replica_counts(seen.stable.as_ref(), seen.canary.as_ref());
    status.replicas = total;
    status.ready_replicas = ready;
    status.stable_replicas = stable_n;
    status.canary_replicas = canary_n;
    // The traffic mode the plan resolved.
    status.actual_weight = observe::actual_weight(
        &target.traffic,
        status.weight,
        observe::ready_replicas(seen.stable.as_ref()),
        world.canary_ready,
    );
    status.selector = plan.selector.clone();

    let api: Api<FeedRollout> = Api::namespaced(ctx.client.clone(), &ns);
    if status != old {
        apply_status(&api, &name, &status).await?;
    }
    record(fr, ctx, &old, &status, &obs, &t, extra_events, now).await;

    let mut requeue = t
        .requeue_after
        .unwrap_or(ctx.resync)
        .clamp(Duration::from_secs(1), ctx.resync);
    if turn.analysis_queued {
        // Come back for the run the analyzer's next tick makes.
        requeue = requeue.min(super::analyzer::ANALYSIS_POLL);
    }
    Ok(Action::requeue(requeue))
}

/// Events, metrics and logs of a decision that was written.
#[allow(clippy::too_many_arguments)]
async fn record(
    fr: &FeedRollout,
    ctx: &Context,
    old: &FeedRolloutStatus,
    status: &FeedRolloutStatus,
    obs: &Observations,
    t: &Transition,
    extra_events: Vec<(EventType, EventReason, String)>,
    now: Timestamp,
) {
    let ns = fr.namespace().unwrap_or_default();
    let name = fr.name_any();
    let brain_events = t.actions.iter().filter_map(|a| match a {
        brain::Action::Event {
            type_,
            reason,
            message,
        } => Some((*type_, *reason, message.clone())),
        _ => None,
    });
    for (type_, reason, message) in brain_events.chain(extra_events) {
        tracing::info!(namespace = %ns, rollout = %name, %reason, message, "decision");
        ctx.metrics.decision(&ns, &name, reason);
        if let Err(e) = ctx.events.publish(fr, type_, reason, &message).await {
            tracing::warn!(namespace = %ns, rollout = %name, %reason, error = %e, "cannot publish an Event");
        }
    }
    if let Some(run) = &obs.analysis {
        for r in &run.records {
            ctx.metrics.verdict(&ns, &name, &r.name, r.tier, r.verdict);
        }
    }
    let deadline_missed = t.actions.iter().any(|a| {
        matches!(
            a,
            brain::Action::Event {
                reason: brain::EventReason::ProgressDeadlineExceeded,
                ..
            }
        )
    });
    // A missed progress deadline is not an SLO breach: it has no breach-to-rollback time.
    if old.phase != Some(Phase::RolledBack)
        && status.phase == Some(Phase::RolledBack)
        && !deadline_missed
    {
        // The breach: the pod-health observation (now) or the analysis sample that breached.
        let breach = if obs.canary.crash_looping {
            now
        } else {
            obs.analysis
                .as_ref()
                .and_then(|r| r.at.as_ref())
                .map_or(now, |t| t.0)
        };
        let done = (ctx.clock)();
        let seconds = breach.duration_until(done).as_secs_f64();
        ctx.metrics.breach_to_rollback(seconds);
    }
    ctx.metrics.observe_status(&ns, &name, status);
}

/// Whether the live Deployment differs from the desired one where it matters (missing, other
/// replicas, other revision).
fn drifted(want: &Deployment, live: Option<&Deployment>) -> bool {
    let Some(live) = live else { return true };
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    replicas(want) != replicas(live) || observe::revision_of(want) != observe::revision_of(live)
}

/// 4xx answers that retrying will not fix (the object is wrong); 409/429 are retried.
fn is_permanent(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429
}

fn condition<'a>(status: &'a FeedRolloutStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Sets the [`CONDITION_RECONCILED`] condition; `lastTransitionTime` moves only on a flip.
fn set_condition(
    status: &mut FeedRolloutStatus,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    fr: &FeedRollout,
    now: Timestamp,
) {
    brain::set_condition(
        &mut status.conditions,
        CONDITION_RECONCILED,
        value,
        reason,
        message,
        fr.metadata.generation,
        now,
    );
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
