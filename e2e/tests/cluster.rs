//! Cluster end-to-end (issue 4): the operator reconciling real FeedRollouts on a real cluster
//! (kind or k3d): a full healthy rollout and a crash-loop rollback. Runs only when a kubeconfig
//! is present (`KUBECONFIG`, or `~/.kube/config`) and `kubectl` is on the PATH; otherwise it
//! prints a SKIPPED line and passes. Needs cluster-admin (it installs the CRD and a namespace)
//! and pulls `registry.k8s.io/pause` and `busybox` images.
//!
//! The operator runs in-process (`feedroll_operator::controller::run::run`, watching only the
//! test's namespace); no Prometheus is needed: the FeedRollout has no checks, so steps advance on
//! time and pod readiness, and the rollback comes from pod health.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use feedroll_operator::controller::run::{LogFormat, RunArgs, run};

fn kubeconfig() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".kube/config");
    p.exists().then_some(p)
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("kubectl: {e}"))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn rollout(ns: &str, container: &str) -> String {
    format!(
        r#"apiVersion: feedroll.dev/v1alpha1
kind: FeedRollout
metadata:
  name: feed
  namespace: {ns}
spec:
  replicas: 2
  template:
    metadata:
      labels: {{app.kubernetes.io/name: feed-e2e}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {container}
  strategy:
    steps:
      - setWeight: 50
      - pause: {{duration: 5s}}
  analysis:
    defaultChecks: false
"#
    )
}

fn field(ns: &str, path: &str) -> String {
    kubectl(
        &[
            "get",
            "feedrollout",
            "feed",
            "-n",
            ns,
            "-o",
            &format!("jsonpath={{{path}}}"),
        ],
        None,
    )
    .unwrap_or_default()
}

async fn wait_phase(ns: &str, phase: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let now = field(ns, ".status.phase");
        if now == phase {
            println!("[{:>5.1}s] phase {phase}", start.elapsed().as_secs_f64());
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {phase} (phase {now:?}, message {:?})",
            field(ns, ".status.message")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_healthy_rollout_and_crash_loop_rollback() {
    let Some(config) = kubeconfig() else {
        println!(
            "SKIPPED cluster e2e: no kubeconfig (set KUBECONFIG or create ~/.kube/config, e.g. `kind create cluster`)"
        );
        return;
    };
    if kubectl(&["version", "--client"], None).is_err() {
        println!("SKIPPED cluster e2e: kubectl is not on the PATH");
        return;
    }
    if let Err(e) = kubectl(&["get", "--raw", "/version"], None) {
        println!(
            "SKIPPED cluster e2e: the cluster in {} does not answer: {e}",
            config.display()
        );
        return;
    }
    feedroll_operator::tls::install_crypto_provider();
    let ns = format!("feedroll-e2e-{}", std::process::id());
    let crd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/feedroll.dev_feedrollouts.yaml"
    );
    kubectl(
        &["apply", "--server-side", "--force-conflicts", "-f", crd],
        None,
    )
    .unwrap();
    kubectl(
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd/feedrollouts.feedroll.dev",
        ],
        None,
    )
    .unwrap();
    kubectl(&["create", "namespace", &ns], None).unwrap();

    let operator = tokio::spawn(run(RunArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        leader_election: false,
        lease_name: "feedroll-operator".into(),
        lease_namespace: None,
        watch_namespace: ns.clone(),
        concurrency: feedroll_operator::controller::run::CONCURRENCY,
        log_format: LogFormat::Text,
    }));

    let result = tokio::spawn({
        let ns = ns.clone();
        async move {
            let pause =
                |tag: &str| format!("{{name: feed, image: \"registry.k8s.io/pause:{tag}\"}}");
            // First deployment: straight to stable.
            kubectl(&["apply", "-f", "-"], Some(&rollout(&ns, &pause("3.10")))).unwrap();
            wait_phase(&ns, "Succeeded", Duration::from_secs(240)).await;
            // A healthy rollout: 50% canary, a 5s pause, promotion.
            kubectl(&["apply", "-f", "-"], Some(&rollout(&ns, &pause("3.9")))).unwrap();
            wait_phase(&ns, "Progressing", Duration::from_secs(60)).await;
            wait_phase(&ns, "Succeeded", Duration::from_secs(300)).await;
            let image = kubectl(
                &[
                    "get",
                    "deployment",
                    "feed-stable",
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.spec.template.spec.containers[0].image}",
                ],
                None,
            )
            .unwrap();
            assert_eq!(image, "registry.k8s.io/pause:3.9");
            // A canary that crash-loops is rolled back by pod health.
            let crashing = "{name: feed, image: \"busybox:1.36\", command: [sh, -c, \"exit 1\"]}";
            kubectl(&["apply", "-f", "-"], Some(&rollout(&ns, crashing))).unwrap();
            wait_phase(&ns, "RolledBack", Duration::from_secs(300)).await;
            assert_eq!(field(&ns, ".status.weight"), "0");
            let events = kubectl(
                &[
                    "get",
                    "events.events.k8s.io",
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.items[*].reason}",
                ],
                None,
            )
            .unwrap();
            for reason in ["RolloutStarted", "StepAdvanced", "Promoted", "RolledBack"] {
                assert!(events.contains(reason), "no {reason} event in {events}");
            }
        }
    })
    .await;
    operator.abort();
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
