//! The Deployment controller of localkube: each Deployment's pods (owned by the Deployment
//! through an ownerReference, so garbage collection removes them with it; named
//! `<deployment>-<pod-template-hash>-<random>` and labelled `pod-template-hash`), rolled per
//! its strategy on a template change, scaled on a replicas change, and its status
//! (`observedGeneration`, replica counts, `Available` and `Progressing` conditions) kept
//! current. The decisions are in [`plan`].
//!
//! There are no ReplicaSet objects: nothing in Feedroll reads them (the operator reads
//! Deployments and their pods), and they would double the objects and watch events on a small
//! machine. Conditions still name the ReplicaSet a cluster would have
//! (`ReplicaSet "feed-canary-5d7f9c" has successfully progressed.`). `spec.paused` stops the
//! pod changes; `revisionHistoryLimit` and rollbacks have no meaning without ReplicaSets.

pub mod plan;

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::FakeApi;
use crate::kubelet::TimeScale;
use crate::store::is_deleting;
use plan::{Observed, POD_TEMPLATE_HASH, PodInfo, Strategy};

/// How often the controller looks at the store (real time).
const TICK: Duration = Duration::from_millis(50);

/// The default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE_SECONDS: f64 = 600.0;

/// Runs the controller until `cancel`.
pub async fn run(api: FakeApi, scale: TimeScale, cancel: CancellationToken) {
    let mut tick = crate::kubelet::ticker(TICK);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        for d in api.list_all("apps/v1", "deployments") {
            if !is_deleting(&d) {
                reconcile(&api, &d, scale);
            }
        }
    }
}

/// Whether `pod` is controlled by the object with `uid`.
fn owned_by(pod: &Value, uid: &str) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

/// A new pod of `d`'s template.
fn new_pod(d: &Value, hash: &str) -> Value {
    let meta = &d["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let template = &d["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[POD_TEMPLATE_HASH] = json!(hash);
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{name}-{hash}-{}", crate::server::random_suffix()),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": meta["uid"], "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": template["spec"],
        "status": {"phase": "Pending"},
    });
    if template["metadata"]["annotations"].is_object() {
        pod["metadata"]["annotations"] = template["metadata"]["annotations"].clone();
    }
    pod
}

/// One pass over Deployment `d`: delete and create pods, then write its status.
fn reconcile(api: &FakeApi, d: &Value, scale: TimeScale) {
    let meta = &d["metadata"];
    let (ns, name, uid) = (
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default(),
        meta["uid"].as_str().unwrap_or_default(),
    );
    let spec = &d["spec"];
    let replicas = spec["replicas"]
        .as_u64()
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let strategy = Strategy::of(spec, replicas);
    let hash = plan::template_hash(&spec["template"]);
    let min_ready = scale.secs(spec["minReadySeconds"].as_f64().unwrap_or(0.0));
    let pods = |api: &FakeApi| -> Vec<PodInfo> {
        let now = chrono::Utc::now();
        api.list("v1", "pods", ns)
            .iter()
            .filter(|p| owned_by(p, uid) && !is_deleting(p))
            .map(|p| PodInfo::of(p, now, min_ready))
            .collect()
    };
    if spec["paused"] != true {
        let actions = plan::actions(replicas, strategy, &hash, &pods(api));
        for pod in &actions.delete {
            api.remove("v1", "pods", ns, pod);
        }
        // `d` may have been deleted since it was listed: its pods are then not created.
        for _ in 0..actions.create {
            api.put_owned("pods", new_pod(d, &hash));
        }
    }
    let now_pods = pods(api);
    let observed = Observed {
        name,
        generation: meta["generation"].as_i64().unwrap_or(1),
        replicas,
        strategy,
        hash: &hash,
        pods: &now_pods,
        progress_deadline: scale.secs(
            spec["progressDeadlineSeconds"]
                .as_f64()
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
        ),
        now: chrono::Utc::now(),
    };
    let status = plan::status(&d["status"], &observed);
    api.update("apps/v1", "deployments", ns, name, |obj| {
        if obj["metadata"]["uid"] == uid && obj["status"] != status {
            obj["status"] = status;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race behind leaked pods: the controller lists a Deployment, the Deployment is
    /// deleted (garbage collection takes its pods), then the controller's pass for the listed
    /// copy creates pods. They must not be created: nothing would ever delete them.
    #[test]
    fn a_pass_over_a_deployment_deleted_since_it_was_listed_creates_no_pods() {
        let api = FakeApi::new();
        api.put(
            "deployments",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "feed-server:1"}]},
                    },
                },
            }),
        );
        let listed = api.list_all("apps/v1", "deployments");
        assert_eq!(listed.len(), 1);
        reconcile(&api, &listed[0], TimeScale::REAL);
        assert_eq!(
            api.list("v1", "pods", "default").len(),
            2,
            "a live Deployment gets its pods"
        );

        api.remove("apps/v1", "deployments", "default", "web");
        assert!(
            api.list("v1", "pods", "default").is_empty(),
            "collected with their owner"
        );
        reconcile(&api, &listed[0], TimeScale::REAL);
        assert!(
            api.list("v1", "pods", "default").is_empty(),
            "a stale pass created pods for a deleted Deployment"
        );
    }
}
