//! The real `feedroll-operator run` binary against the local API server (`feedroll-localkube`,
//! served over HTTPS in this process), authenticated as the chart's ServiceAccount and
//! authorized by exactly the chart's RBAC objects (the rendered default release,
//! `charts/tests-rs/testdata/rendered/default.json`): a FeedRollout applied with real kubectl
//! gets its finalizer, its Deployments and Services, a status and Events `kubectl describe`
//! shows; every request the operator made was allowed; deleting the FeedRollout with kubectl removes every owned object.
//! kubectl is part of the machine image: without it this test fails, it does not skip.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use feedroll_localkube::FakeApi;
use feedroll_localkube::rbac::Identity;
use feedroll_localkube::serve::{KubeconfigUser, serve_on_loopback};
use serde_json::{Value, json};

const SA_NAMESPACE: &str = "feedroll-system";
const SA_NAME: &str = "feedroll";

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The chart's ServiceAccount and RBAC objects, stored as `helm install` would.
fn install_chart_rbac(api: &FakeApi) {
    let text = std::fs::read_to_string(repo("charts/tests-rs/testdata/rendered/default.json"))
        .expect("rendered chart");
    let objects: Vec<Value> = serde_json::from_str(&text).expect("rendered chart is JSON");
    let mut installed = 0;
    for o in objects {
        let plural = match o["kind"].as_str() {
            Some("ServiceAccount") => "serviceaccounts",
            Some("Role") => "roles",
            Some("RoleBinding") => "rolebindings",
            Some("ClusterRole") => "clusterroles",
            Some("ClusterRoleBinding") => "clusterrolebindings",
            _ => continue,
        };
        api.put(plural, o);
        installed += 1;
    }
    assert!(installed >= 5, "the rendered chart has its RBAC objects");
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required for this test and could not run: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_reconciles_a_feedrollout_applied_with_kubectl() {
    let api = FakeApi::cluster().expect("API server");
    for ns in [SA_NAMESPACE, "feed"] {
        api.put(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    install_chart_rbac(&api);
    let server = serve_on_loopback(api.clone()).await.expect("serve HTTPS");
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, user: KubeconfigUser| {
        let path = dir.path().join(name);
        let text = server.kubeconfig(&[user]).expect("kubeconfig");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    };
    let admin = write(
        "admin",
        KubeconfigUser {
            name: "admin".into(),
            token: api.issue_token(Identity::admin()),
            namespace: "default".into(),
        },
    );
    let operator = write(
        "operator",
        KubeconfigUser {
            name: "operator".into(),
            token: api.issue_token(Identity::service_account(SA_NAMESPACE, SA_NAME)),
            namespace: SA_NAMESPACE.into(),
        },
    );

    let example = repo("examples/default-plan.yaml");
    let example = example.to_str().expect("utf-8 path");
    kubectl(&admin, &["apply", "-f", example]);

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_feedroll-operator"))
        .arg("run")
        .env("KUBECONFIG", &operator)
        .env("FEEDROLL_LISTEN", "127.0.0.1:0")
        .env("FEEDROLL_LEADER_ELECTION", "true")
        .env("FEEDROLL_LEASE_NAMESPACE", SA_NAMESPACE)
        .env("POD_NAME", "feedroll-0")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start feedroll-operator run");

    let rollout = || api.get("feedroll.dev/v1alpha1", "feedrollouts", "feed", "feed");
    wait_for("the operator to write the FeedRollout's status", || {
        rollout().is_some_and(|r| r["status"]["phase"].is_string())
    })
    .await;
    wait_for("the stable and canary Deployments", || {
        ["feed-stable", "feed-canary"]
            .iter()
            .all(|d| api.get("apps/v1", "deployments", "feed", d).is_some())
    })
    .await;
    let fr = rollout().expect("FeedRollout");
    assert_eq!(
        fr["metadata"]["finalizers"],
        json!(["feedroll.dev/cleanup"])
    );
    let stable = api
        .get("apps/v1", "deployments", "feed", "feed-stable")
        .expect("stable Deployment");
    assert_eq!(
        stable["metadata"]["ownerReferences"][0]["uid"],
        fr["metadata"]["uid"]
    );
    assert!(api.get("v1", "services", "feed", "feed").is_some());
    let table = kubectl(&admin, &["-n", "feed", "get", "fr", "feed"]);
    assert!(
        table.contains(fr["status"]["phase"].as_str().unwrap_or("?")),
        "{table}"
    );

    // The operator's events.k8s.io Events show in `kubectl describe` (core/v1 events).
    wait_for("an Event from the operator", || {
        !api.list("events.k8s.io/v1", "events", "feed").is_empty()
    })
    .await;
    let events = api.list("events.k8s.io/v1", "events", "feed");
    let reason = events
        .first()
        .and_then(|e| e["reason"].as_str())
        .expect("the operator emitted an Event")
        .to_owned();
    let described = kubectl(&admin, &["-n", "feed", "describe", "fr", "feed"]);
    let shown = described.split("Events:").nth(1).unwrap_or_default();
    assert!(shown.contains(&reason), "{described}");

    kubectl(
        &admin,
        &["-n", "feed", "delete", "fr", "feed", "--wait=false"],
    );
    wait_for("the FeedRollout and its owned objects to go", || {
        rollout().is_none()
            && api.list("apps/v1", "deployments", "feed").is_empty()
            && api.list("v1", "services", "feed").is_empty()
    })
    .await;

    let _ = child.start_kill();
    let _ = child.wait().await;
    let user = format!("system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}");
    let made = api.requests().iter().filter(|r| r.user == user).count();
    assert!(made > 5, "the operator made {made} requests");
    let denied: Vec<String> = api
        .denied()
        .iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(denied.is_empty(), "the chart's RBAC refused: {denied:#?}");
}
