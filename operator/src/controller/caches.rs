//! The watch caches a reconcile observes the world from: the Deployments the operator manages
//! and the pods of its rollouts, each a reflector [`Store`] fed by the one watch per kind that
//! also triggers the Controller ([`Feeds`], handed to `Controller::owns_stream` /
//! `watches_stream`). A reconcile reads them and sends no GET or LIST; writes stay server-side
//! apply.
//!
//! Cached objects keep only what the reconcile reads (as kube-rs' `controller-rs` and linkerd2's
//! policy controller do, to keep memory flat with thousands of rollouts): `managedFields`, the
//! `last-applied-configuration` annotation and the Deployments' pod template are dropped; of a
//! pod, its labels, deletion time, status and its containers' names and ports remain.
//!
//! A cache that has not listed its kind yet is never read: [`Caches::ready`] waits for the
//! first full list, at most [`READY_TIMEOUT`], then fails the reconcile (retried with backoff).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use feedroll_crds::FeedRollout;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec,
};
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};

use crate::desired::{LABEL_ROLLOUT, LABEL_TRACK, MANAGED_BY, Track};

/// How long a reconcile waits for a cache's first list before it fails (the watch is denied,
/// or the API server is unreachable).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The annotation `kubectl apply` leaves (a copy of the whole object; never read).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The kinds the reconcile reads from a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachedKind {
    /// The managed Deployments (`app.kubernetes.io/managed-by=feedroll-operator`).
    Deployments,
    /// The pods of rollouts (labelled with `feedroll.dev/rollout` and `feedroll.dev/track`).
    Pods,
}

impl fmt::Display for CachedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deployments => "Deployments",
            Self::Pods => "Pods",
        })
    }
}

/// Why a reconcile cannot read the caches.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The first list has not arrived in time.
    #[error(
        "the {0} cache has not listed its objects within {t:?} (is list/watch on {0} allowed?)",
        t = READY_TIMEOUT
    )]
    NotSynced(CachedKind),
    /// The watch feeding the cache is gone (its Controller stopped).
    #[error("the {0} cache's watch stopped")]
    Stopped(CachedKind),
}

/// Readers of the watch caches (cheap to clone).
#[derive(Clone)]
pub struct Caches {
    deployments: Store<Deployment>,
    pods: Store<Pod>,
}

/// A watch event stream of one kind: it fills its cache as it is polled, and yields the
/// objects it touched (applied or deleted) as triggers.
pub type Feed<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The watches that fill [`Caches`]: whoever polls them (the Controller, or [`Feeds::drive`])
/// keeps the caches current.
pub struct Feeds {
    /// Managed Deployments (the Controller's `owns` trigger).
    pub deployments: Feed<Deployment>,
    /// Rollout pods (the Controller's `watches` trigger, mapped to the rollout label).
    pub pods: Feed<Pod>,
}

impl Caches {
    /// The caches of `namespace` (all namespaces when empty) and the watches that fill them.
    pub fn watch(client: &Client, namespace: &str) -> (Self, Feeds) {
        let managed = watcher::Config::default()
            .labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"))
            .any_semantic();
        let rollout_pods = watcher::Config::default()
            .labels(&format!("{LABEL_ROLLOUT},{LABEL_TRACK}"))
            .any_semantic();
        let (deployments, deployment_writer) = reflector::store();
        let (pods, pod_writer) = reflector::store();
        let feeds = Feeds {
            deployments: feed(
                api(client, namespace),
                managed,
                strip_deployment,
                deployment_writer,
            ),
            pods: feed(api(client, namespace), rollout_pods, strip_pod, pod_writer),
        };
        (Self { deployments, pods }, feeds)
    }

    /// Waits until both caches hold their first full list (at once after that).
    pub async fn ready(&self) -> Result<(), CacheError> {
        wait(&self.deployments, CachedKind::Deployments).await?;
        wait(&self.pods, CachedKind::Pods).await
    }

    /// The cached Deployment `namespace/name`.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// The cached pods of `rollout`'s `track` in `namespace`.
    pub fn pods(&self, namespace: &str, rollout: &str, track: Track) -> Vec<Arc<Pod>> {
        self.pods.state_filter(|p| {
            p.namespace().as_deref() == Some(namespace)
                && p.labels().get(LABEL_ROLLOUT).map(String::as_str) == Some(rollout)
                && p.labels().get(LABEL_TRACK).map(String::as_str) == Some(track.as_str())
        })
    }
}

async fn wait<K>(store: &Store<K>, kind: CachedKind) -> Result<(), CacheError>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(READY_TIMEOUT, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(CacheError::Stopped(kind)),
        Err(_) => Err(CacheError::NotSynced(kind)),
    }
}

impl Feeds {
    /// Polls both watches until the caches hold their first full list, dropping the objects
    /// they yield meanwhile (the Controller reconciles every rollout once it starts anyway).
    /// Run before the Controller takes the feeds: a reconcile then never waits for a cache
    /// whose watch only the Controller's own scheduling would poll.
    pub async fn until_ready(mut self, caches: &Caches) -> Self {
        let ready = caches.ready();
        tokio::pin!(ready);
        loop {
            tokio::select! {
                r = &mut ready => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "starting without synced caches");
                    }
                    return self;
                }
                Some(_) = self.deployments.next() => {}
                Some(_) = self.pods.next() => {}
            }
        }
    }

    /// Polls both watches forever (the caches without a Controller: tests and tools that call
    /// the reconcile themselves).
    pub async fn drive(self) {
        let Self { deployments, pods } = self;
        futures::join!(
            deployments.for_each(|_| std::future::ready(())),
            pods.for_each(|_| std::future::ready(()))
        );
    }
}

pub(super) fn api<K>(client: &Client, namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    }
}

/// The FeedRollouts of `namespace` (all namespaces when empty): the Controller's own store and
/// the watch that fills it and triggers it (`Controller::for_stream`), stripped by
/// [`strip_rollout`].
pub fn rollouts(client: &Client, namespace: &str) -> (Store<FeedRollout>, Feed<FeedRollout>) {
    let (store, writer) = reflector::store();
    let feed = feed(
        api(client, namespace),
        watcher::Config::default().any_semantic(),
        strip_rollout,
        writer,
    );
    (store, feed)
}

/// What a reconcile never reads of a FeedRollout: its field managers (one entry per writer:
/// kubectl, Argo CD, the operator's status) and `kubectl`'s copy of the whole object.
pub fn strip_rollout(r: &mut FeedRollout) {
    r.managed_fields_mut().clear();
    r.annotations_mut().remove(LAST_APPLIED);
}

/// The watch of `api`: retried with backoff, stripped by `strip`, reflected into `writer`,
/// yielding every object it touched.
fn feed<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    writer: reflector::store::Writer<K>,
) -> Feed<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream: std::pin::Pin<Box<dyn Stream<Item = _> + Send>> = watcher(api, config)
        .default_backoff()
        .modify(strip)
        .reflect(writer)
        .touched_objects()
        .boxed();
    stream
}

/// What a reconcile never reads of a Deployment: its field managers, `kubectl`'s copy and the
/// pod template (the revision and source it records are annotations).
pub fn strip_deployment(d: &mut Deployment) {
    d.managed_fields_mut().clear();
    d.annotations_mut().remove(LAST_APPLIED);
    if let Some(spec) = d.spec.as_mut() {
        spec.template = PodTemplateSpec::default();
    }
}

/// What a reconcile never reads of a pod: field managers, annotations, owner references, the
/// pod spec beyond its containers' names and ports (the replay gate's address), and the status
/// beyond the phase, the pod IP, the `Ready` and `PodScheduled` conditions and each container's
/// readiness, restarts and waiting state (what pod issues, crash loops and the replay gate read).
pub fn strip_pod(p: &mut Pod) {
    if let Some(status) = p.status.take() {
        p.status = Some(PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            conditions: status.conditions.map(|cs| {
                cs.into_iter()
                    .filter(|c| matches!(c.type_.as_str(), "Ready" | "PodScheduled"))
                    .map(|c| PodCondition {
                        last_probe_time: None,
                        observed_generation: None,
                        ..c
                    })
                    .collect()
            }),
            container_statuses: status.container_statuses.map(strip_container_statuses),
            init_container_statuses: status.init_container_statuses.map(strip_container_statuses),
            ..PodStatus::default()
        });
    }
    p.managed_fields_mut().clear();
    p.metadata.annotations = None;
    p.metadata.owner_references = None;
    if let Some(spec) = p.spec.as_mut() {
        let containers = std::mem::take(&mut spec.containers)
            .into_iter()
            .map(|c| Container {
                name: c.name,
                ports: c.ports,
                ..Container::default()
            })
            .collect();
        *spec = PodSpec {
            containers,
            ..PodSpec::default()
        };
    }
}

/// A container's name, readiness, restarts and waiting state (reason and message).
fn strip_container_statuses(statuses: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
    statuses
        .into_iter()
        .map(|c| ContainerStatus {
            name: c.name,
            ready: c.ready,
            restart_count: c.restart_count,
            state: c.state.map(|s| ContainerState {
                waiting: s.waiting,
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_deployment_keeps_what_the_reconcile_reads() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "feed-stable", "namespace": "prod", "generation": 3,
                "labels": {"feedroll.dev/rollout": "feed"},
                "annotations": {"feedroll.dev/revision": "abc", LAST_APPLIED: "{\"huge\": true}"},
                "ownerReferences": [{"apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout",
                                     "name": "feed", "uid": "u1", "controller": true}],
                "managedFields": [{"manager": "feedroll-operator", "operation": "Apply"}]
            },
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "feed"}},
                     "template": {"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}}},
            "status": {"replicas": 4, "readyReplicas": 4, "observedGeneration": 3}
        }))
        .expect("a Deployment");
        strip_deployment(&mut d);
        assert!(d.metadata.managed_fields.as_ref().is_none_or(Vec::is_empty));
        let annotations = d.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("feedroll.dev/revision").map(String::as_str),
            Some("abc")
        );
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(d.metadata.owner_references.map(|o| o.len()), Some(1));
        assert_eq!(d.metadata.generation, Some(3));
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(4));
        assert_eq!(spec.template, PodTemplateSpec::default());
        assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(4));
    }

    #[test]
    fn a_cached_pod_keeps_labels_status_and_container_ports_only() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "feed-canary-x", "namespace": "prod",
                "labels": {"feedroll.dev/rollout": "feed", "feedroll.dev/track": "canary"},
                "annotations": {"big": "x"},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]
            },
            "spec": {"nodeName": "n1",
                     "containers": [{"name": "feed", "image": "feed:2",
                                     "env": [{"name": "A", "value": "b"}],
                                     "ports": [{"name": "http", "containerPort": 9000}]}]},
            "status": {"podIP": "10.0.0.1", "hostIP": "192.168.0.1", "qosClass": "Burstable",
                       "conditions": [
                           {"type": "Ready", "status": "False", "lastProbeTime": null},
                           {"type": "PodScheduled", "status": "True"},
                           {"type": "Initialized", "status": "True"}],
                       "containerStatuses": [{"name": "feed", "image": "feed:2", "imageID": "sha",
                                              "containerID": "c1", "ready": false, "restartCount": 5,
                                              "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                              "lastState": {"terminated": {"exitCode": 1}}}]}
        }))
        .expect("a Pod");
        strip_pod(&mut p);
        assert!(p.metadata.managed_fields.as_ref().is_none_or(Vec::is_empty));
        assert_eq!(p.metadata.annotations, None);
        assert_eq!(
            p.labels().get(LABEL_TRACK).map(String::as_str),
            Some("canary")
        );
        let spec = p.spec.expect("spec");
        assert_eq!(spec.node_name, None);
        let c = &spec.containers[0];
        assert_eq!(
            (c.name.as_str(), c.image.as_deref(), c.env.as_ref()),
            ("feed", None, None)
        );
        let ports = c.ports.as_ref().expect("ports");
        assert_eq!(ports[0].container_port, 9000);
        let status = p.status.expect("status");
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!((status.host_ip, status.qos_class), (None, None));
        let conditions: Vec<String> = status
            .conditions
            .expect("conditions")
            .into_iter()
            .map(|c| c.type_)
            .collect();
        assert_eq!(conditions, ["Ready", "PodScheduled"]);
        let c = &status.container_statuses.expect("statuses")[0];
        assert_eq!((c.restart_count, c.image.as_str()), (5, ""));
        assert_eq!(c.last_state, None);
        assert_eq!(
            crate::observe::crash_loop_reason(&p_with(c.clone())).as_deref(),
            Some("container feed is in CrashLoopBackOff"),
            "a stripped pod still reads as crash-looping"
        );
    }

    /// A pod with one container status.
    fn p_with(c: ContainerStatus) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![c]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_cached_rollout_drops_its_field_managers_and_kubectls_copy() {
        let mut r: FeedRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout",
            "metadata": {
                "name": "feed", "namespace": "prod",
                "annotations": {"feedroll.dev/command": "promote/c1",
                                LAST_APPLIED: "{\"huge\": true}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}}}
        }))
        .expect("a FeedRollout");
        strip_rollout(&mut r);
        assert!(r.metadata.managed_fields.as_ref().is_none_or(Vec::is_empty));
        let annotations = r.metadata.annotations.unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert!(
            annotations.contains_key("feedroll.dev/command"),
            "commands stay"
        );
        assert_eq!(r.spec.replicas, 4);
    }
}
