//! The Deployment controller and the kubelet in-process, with `sleep` as the image's binary (no
//! probes: a container is ready once it runs), on a time scale of 0.05: a Deployment's pods
//! come up, a template change rolls them one by one within maxSurge 1 / maxUnavailable 0 (never
//! fewer ready pods than replicas, never more than replicas + 1 pods) and stops the old
//! processes, scaling down removes pods, deleting the Deployment removes the rest, and
//! stopping the kubelet stops everything; containers whose ConfigMap is missing wait
//! (CreateContainerConfigError, ContainerCreating) and start once it exists. About 1 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use feedroll_localkube::FakeApi;
use feedroll_localkube::kubelet::{self, ImageRule, ImageTable, KubeletConfig, TimeScale};
use serde_json::{Value, json};

fn deployment(replicas: u32, version: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "sleeper:1", "args": ["30"],
                        "env": [{"name": "VERSION", "value": version}]}]}}}})
}

fn pods(api: &FakeApi) -> Vec<Value> {
    api.list("v1", "pods", "default")
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn pid(p: &Value) -> Option<u32> {
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()?
        .strip_prefix("localkube://")?
        .parse()
        .ok()
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Polls `f` every 20 ms, checking `invariant` on the way; fails after 15 s.
async fn wait_for(what: &str, mut f: impl FnMut() -> bool, invariant: impl Fn()) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        invariant();
        assert!(Instant::now() < deadline, "no {what} within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_is(api: &FakeApi, generation: i64, replicas: u32) -> bool {
    let Some(d) = api.get("apps/v1", "deployments", "default", "d") else {
        return false;
    };
    let s = &d["status"];
    s["observedGeneration"] == generation
        && [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
        .iter()
        .all(|k| s[*k] == replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_scale_and_go_with_their_processes() {
    let api = FakeApi::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = ImageRule::parse("sleeper:*=/bin/sleep").expect("rule");
    assert_eq!(rule.binary, PathBuf::from("/bin/sleep"));
    let mut config = KubeletConfig::new(dir.path(), ImageTable::new(vec![rule]));
    config.time_scale = TimeScale::new(0.05).expect("scale");
    let handle = kubelet::spawn(api.clone(), config).expect("kubelet");
    assert!(
        api.get("v1", "nodes", "", "localkube").is_some(),
        "the node is registered"
    );

    api.put("deployments", deployment(3, "1"));
    wait_for("3 ready pods", || status_is(&api, 1, 3), || {}).await;
    let first: Vec<u32> = pods(&api).iter().filter_map(pid).collect();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|p| running(*p)));
    let mut live = handle.pids();
    live.sort_unstable();
    let mut want = first.clone();
    want.sort_unstable();
    assert_eq!(live, want, "the handle knows the live processes");

    // A template change: one pod at a time (maxSurge 1, maxUnavailable 0 for 3 replicas).
    api.put("deployments", deployment(3, "2"));
    let invariant = || {
        let now = pods(&api);
        assert!(
            now.len() <= 4,
            "more than replicas + maxSurge pods: {}",
            now.len()
        );
        let up = now.iter().filter(|p| ready(p)).count();
        assert!(up >= 3, "fewer than 3 ready pods during the rollout: {up}");
    };
    wait_for(
        "the rollout to generation 2",
        || status_is(&api, 2, 3),
        invariant,
    )
    .await;
    let now = pods(&api);
    let hashes: std::collections::BTreeSet<&str> = now
        .iter()
        .filter_map(|p| p["metadata"]["labels"]["pod-template-hash"].as_str())
        .collect();
    assert_eq!(hashes.len(), 1, "only the new template's pods are left");
    let d = api
        .get("apps/v1", "deployments", "default", "d")
        .expect("deployment");
    let progressing = d["status"]["conditions"][1].clone();
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{d}");
    wait_for(
        "the old processes to stop",
        || first.iter().all(|p| !running(*p)),
        || {},
    )
    .await;

    // Scale down.
    api.update("apps/v1", "deployments", "default", "d", |d| {
        d["spec"]["replicas"] = json!(1);
    });
    wait_for(
        "1 pod",
        || status_is(&api, 3, 1) && pods(&api).len() == 1,
        || {},
    )
    .await;
    let last = pods(&api).iter().filter_map(pid).collect::<Vec<_>>();
    assert_eq!(last.len(), 1);

    // Deleting the Deployment collects its pods and stops their processes.
    api.remove("apps/v1", "deployments", "default", "d");
    assert!(
        pods(&api).is_empty(),
        "garbage collected with the Deployment"
    );
    wait_for("the last process to stop", || !running(last[0]), || {}).await;

    // Stopping the kubelet stops the processes of pods that are still there.
    api.put(
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "sleeper:1", "args": ["30"]}]}}),
    );
    let mut solo = None;
    wait_for(
        "the solo pod's process",
        || {
            solo = api
                .get("v1", "pods", "default", "solo")
                .as_ref()
                .and_then(pid);
            solo.is_some()
        },
        || {},
    )
    .await;
    handle.stop().await;
    let solo = solo.unwrap_or_default();
    assert!(!running(solo), "pid {solo} outlived the kubelet");
}

fn waiting_reason(api: &FakeApi, name: &str) -> (String, String) {
    let p = api.get("v1", "pods", "default", name).unwrap_or_default();
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_owned(),
        w["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A pod whose env refers to a missing ConfigMap key waits in CreateContainerConfigError, one
/// whose volume's ConfigMap is missing in ContainerCreating, each with the kubelet's message;
/// both start once the ConfigMap exists, with its value and file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_wait_for_missing_config_then_start() {
    let api = FakeApi::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = ImageRule::parse("sleeper:*=/bin/sleep").expect("rule");
    let mut config = KubeletConfig::new(dir.path(), ImageTable::new(vec![rule]));
    config.time_scale = TimeScale::new(0.05).expect("scale");
    config.deployments = false;
    let handle = kubelet::spawn(api.clone(), config).expect("kubelet");
    let pod = |name: &str, extra: Value| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "sleeper:1", "args": ["30"]}]}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            if k == "volumes" {
                p["spec"]["volumes"] = v.clone();
            } else {
                p["spec"]["containers"][0][k] = v.clone();
            }
        }
        api.put("pods", p);
    };
    pod(
        "env",
        json!({"env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}]}),
    );
    pod(
        "vol",
        json!({"volumeMounts": [{"name": "v", "mountPath": "/etc/cfg"}],
               "volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}),
    );
    wait_for(
        "both pods waiting",
        || {
            waiting_reason(&api, "env")
                == (
                    "CreateContainerConfigError".into(),
                    "configmap \"cfg\" not found".into(),
                )
                && waiting_reason(&api, "vol")
                    == (
                        "ContainerCreating".into(),
                        "MountVolume.SetUp failed for volume \"v\" : configmap \"cfg\" not found"
                            .into(),
                    )
        },
        || {},
    )
    .await;
    assert_eq!(
        api.get("v1", "pods", "default", "env").unwrap_or_default()["status"]["phase"],
        "Pending"
    );

    api.put(
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
               "data": {"mode": "fast"}}),
    );
    let mut pids = Vec::new();
    wait_for(
        "both pods running",
        || {
            pids = ["env", "vol"]
                .iter()
                .filter_map(|n| api.get("v1", "pods", "default", n).as_ref().and_then(pid))
                .collect();
            pids.len() == 2
        },
        || {},
    )
    .await;
    let environ = std::fs::read(format!("/proc/{}/environ", pids[0])).expect("environ");
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == b"MODE=fast"),
        "the ConfigMap's value"
    );
    let vol = api.get("v1", "pods", "default", "vol").unwrap_or_default();
    let uid = vol["metadata"]["uid"].as_str().unwrap_or_default();
    let file = dir.path().join(format!("default_vol_{uid}/volumes/v/mode"));
    assert_eq!(std::fs::read_to_string(file).expect("mounted"), "fast");
    handle.stop().await;
}
