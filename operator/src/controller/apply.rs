//! Server-side apply of the desired objects and of the status, under the operator's own field
//! manager; an object identical to the last one applied (and recently) is not sent again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use feedroll_crds::{FeedRollout, FeedRolloutStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::lock;
use crate::desired::{Desired, LABEL_ROLLOUT, MANAGED_BY};

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "feedroll-operator";

/// Server-side apply parameters: the operator's field manager, taking over conflicting fields
/// (only on objects it owns; on the FeedRollout it applies nothing but status).
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The HTTPRoute resource (Gateway API v1).
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Remembers what was applied last, to skip identical applies for `ttl`.
#[derive(Debug)]
pub struct ApplyCache {
    ttl: Duration,
    last: Mutex<HashMap<String, (u64, Instant)>>,
}

impl ApplyCache {
    /// Re-applies an unchanged object at most every `ttl` (a resync against manual edits).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Mutex::default(),
        }
    }

    fn fresh(&self, key: &str, hash: u64) -> bool {
        lock(&self.last)
            .get(key)
            .is_some_and(|(h, at)| *h == hash && at.elapsed() < self.ttl)
    }

    fn record(&self, key: String, hash: u64) {
        lock(&self.last).insert(key, (hash, Instant::now()));
    }

    /// Forgets one object, so its next apply is sent (it is missing, drifted or deleted).
    pub fn invalidate(&self, kind: &str, namespace: &str, name: &str) {
        lock(&self.last).remove(&cache_key(kind, namespace, name));
    }
}

fn cache_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// Deletes one object the operator owns (gone already is fine) and forgets its last apply, so
/// that an identical object is sent again if it is ever wanted back.
pub async fn delete_one<K>(
    api: &Api<K>,
    cache: &ApplyCache,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    cache.invalidate(kind, namespace, name);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn apply_one<K>(
    api: &Api<K>,
    cache: &ApplyCache,
    kind: &str,
    namespace: &str,
    name: &str,
    object: &(impl Serialize + std::fmt::Debug),
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let text = serde_json::to_string(object).unwrap_or_default();
    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    let key = cache_key(kind, namespace, name);
    if cache.fresh(&key, hash) {
        return Ok(());
    }
    api.patch(name, &apply_params(), &Patch::Apply(object))
        .await?;
    cache.record(key, hash);
    Ok(())
}

fn name_of<K: Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

/// Applies every desired object of a rollout in `namespace`. Returns the first error after
/// trying all of them.
pub async fn apply_desired(
    client: &Client,
    cache: &ApplyCache,
    namespace: &str,
    desired: &Desired,
) -> Result<(), kube::Error> {
    let mut first_error = None;
    let mut note = |r: Result<(), kube::Error>| {
        if let Err(e) = r
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    };
    // The ConfigMap first: pods of a new template mount it.
    if let Some(cm) = &desired.config_map {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        note(apply_one(&api, cache, "ConfigMap", namespace, &name_of(cm), cm).await);
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for d in [&desired.canary, &desired.stable].into_iter().flatten() {
        note(apply_one(&deployments, cache, "Deployment", namespace, &name_of(d), d).await);
    }
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    for s in &desired.services {
        note(apply_one(&services, cache, "Service", namespace, &name_of(s), s).await);
    }
    if let Some(route) = &desired.http_route {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &http_route_resource());
        let name = route["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        note(apply_one(&api, cache, "HTTPRoute", namespace, &name, route).await);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Deletes the HTTPRoutes that the rollout with `owner_uid` applied and no longer wants (its
/// traffic mode left Gateway API, or `httpRoute` was renamed): every route labelled as the
/// rollout's and owned by it, except `keep`. A cluster without the Gateway API CRDs has none.
pub async fn prune_http_routes(
    client: &Client,
    cache: &ApplyCache,
    namespace: &str,
    rollout: &str,
    owner_uid: &str,
    keep: Option<&str>,
) -> Result<usize, kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &http_route_resource());
    let selector = format!("app.kubernetes.io/managed-by={MANAGED_BY},{LABEL_ROLLOUT}={rollout}");
    let routes = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for route in routes {
        let name = route.metadata.name.clone().unwrap_or_default();
        let owned = route
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == owner_uid);
        if !owned || Some(name.as_str()) == keep {
            continue;
        }
        delete_one(&api, cache, "HTTPRoute", namespace, &name).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Applies the status of `fr` through the status subresource (nothing else of the object).
pub async fn apply_status(
    api: &Api<FeedRollout>,
    name: &str,
    status: &FeedRolloutStatus,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": FeedRollout::api_version(&()),
        "kind": FeedRollout::kind(&()),
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&patch))
        .await
        .map(|_| ())
}
