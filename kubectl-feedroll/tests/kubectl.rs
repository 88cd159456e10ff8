//! `kubectl feedroll …` through real kubectl: the plugin binary on PATH, the local API server
//! (`feedroll-localkube`, HTTPS, in this process) as the cluster. The status the operator would
//! write is set directly in the store (as the operator does through the status subresource),
//! then every verb is run the way an on-call engineer or a CI job runs it, exit codes included.
//! kubectl is part of the machine image: without it this test fails, it does not skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use feedroll_crds::FeedRollout;
use feedroll_localkube::FakeApi;
use feedroll_localkube::rbac::Identity;
use feedroll_localkube::serve::{KubeconfigUser, serve_on_loopback};
use feedroll_operator::brain::revision;
use feedroll_operator::desired::{ANNOTATION_SOURCE, Source};
use serde_json::{Value, json};

const FR: &str = "feedroll.dev/v1alpha1";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs `kubectl feedroll ARGS` (or plain kubectl with `plugin: false`).
struct Kubectl {
    kubeconfig: PathBuf,
    path: String,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", &self.path)
            .env_remove("NO_COLOR")
            .output()
            .unwrap_or_else(|e| panic!("kubectl is required for this test and could not run: {e}"))
    }

    /// `kubectl feedroll ARGS`: exit code and stdout (stderr appended, for messages).
    fn feedroll(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["feedroll"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, text) = self.feedroll(args);
        assert_eq!(code, 0, "kubectl feedroll {args:?}: {text}");
        text
    }
}

fn rollout(api: &FakeApi) -> Value {
    api.get(FR, "feedrollouts", "feed", "feed")
        .expect("the FeedRollout")
}

/// The status the operator writes for a rollout paused by a failing check at step 2 of 7,
/// with a decision history.
fn paused_status(generation: i64, stable: &str) -> Value {
    json!({
        "observedGeneration": generation,
        "phase": "Paused",
        "pauseReason": "CheckFailed",
        "message": "paused for a human: latency failed (value 0.41 outside <= 0.3)",
        "currentStepIndex": 1,
        "weight": 10, "actualWeight": 10,
        "stableRevision": stable, "canaryRevision": "9f1a7b6c5d4e3f2a",
        "analysis": {"at": "2026-12-01T03:12:00Z", "records": [
            {"name": "latency", "tier": "pause", "query": "q", "value": 0.41, "threshold": "<= 0.3", "verdict": "fail", "reason": "above"}
        ]},
        "history": [
            {"at": "2026-12-01T03:00:00Z", "decision": "Started", "phase": "Progressing", "step": 0, "weight": 10, "reason": "step 1/7"},
            {"at": "2026-12-01T03:12:00Z", "decision": "Paused", "phase": "Paused", "step": 1, "weight": 10,
             "reason": "paused for a human: latency failed",
             "check": {"name": "latency", "value": 0.41, "threshold": "<= 0.3", "verdict": "fail"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_feedroll_lists_explains_commands_and_waits() {
    let api = FakeApi::cluster().expect("API server");
    api.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "feed"}}),
    );
    let server = serve_on_loopback(api.clone()).await.expect("serve HTTPS");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("kubeconfig");
    let user = KubeconfigUser {
        name: "alice".into(),
        token: api.issue_token(Identity::admin()),
        namespace: "feed".into(),
    };
    std::fs::write(&config, server.kubeconfig(&[user]).expect("kubeconfig"))
        .expect("write kubeconfig");
    // The plugin on PATH, under the name kubectl looks for.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-feedroll"),
        bin.join("kubectl-feedroll"),
    )
    .expect("symlink the plugin");
    let k = Kubectl {
        kubeconfig: config,
        path: format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    };
    let plugins = String::from_utf8_lossy(&k.run(&["plugin", "list"]).stdout).into_owned();
    assert!(plugins.contains("kubectl-feedroll"), "{plugins}");

    // Nothing yet, then a rollout without status.
    assert!(
        k.ok(&["list"])
            .contains("No FeedRollouts found in namespace feed")
    );
    let example = repo("examples/default-plan.yaml");
    let out = k.run(&["apply", "-f", example.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fr: FeedRollout = serde_json::from_value(rollout(&api)).expect("a FeedRollout");
    let stable = revision(&fr.spec);
    let generation = fr.metadata.generation.unwrap_or(1);

    // The operator's status: paused at step 2 of 7 by a failing check.
    api.update(FR, "feedrollouts", "feed", "feed", |o| {
        o["status"] = paused_status(generation, &stable);
    });
    let table = k.ok(&["list"]);
    let row = table.lines().nth(1).unwrap_or_default();
    for cell in ["feed", "Paused", "2/7", "10%", &stable[..8], "latency fail"] {
        assert!(row.contains(cell), "{cell:?} missing in:\n{table}");
    }
    assert!(!table.contains('\u{1b}'), "no colours in a pipe:\n{table}");
    assert!(
        k.ok(&["get", "-A"])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("feed ")
    );
    let listed: Value = serde_json::from_str(&k.ok(&["list", "-o", "json"])).expect("JSON");
    assert_eq!(listed["items"][0]["status"]["phase"], "Paused");

    let status = k.ok(&["status", "feed"]);
    assert!(
        status.contains("Phase:     Paused (CheckFailed)"),
        "{status}"
    );
    assert!(status.contains("2      current   pause 15m"), "{status}");
    let timeline = k.ok(&["timeline", "feed"]);
    assert!(timeline.contains("latency fail   0.41"), "{timeline}");
    let history: Value =
        serde_json::from_str(&k.ok(&["timeline", "feed", "-o", "json"])).expect("JSON");
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    let yaml = k.ok(&["status", "feed", "-o", "yaml"]);
    assert!(yaml.contains("kind: FeedRollout"), "{yaml}");

    // Commands: the annotation with a fresh nonce each time, and the kubeconfig user.
    let said = k.ok(&["promote", "feed"]);
    assert!(said.contains("promote requested"), "{said}");
    let annotations = || rollout(&api)["metadata"]["annotations"].clone();
    let first = annotations()["feedroll.dev/command"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(first.starts_with("promote/"), "{first}");
    assert_eq!(annotations()["feedroll.dev/command-author"], "alice");
    k.ok(&["promote", "feed", "--full"]);
    let second = annotations()["feedroll.dev/command"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        second.starts_with("promote-full/") && second != first,
        "{second}"
    );
    for verb in ["pause", "resume", "abort", "retry"] {
        k.ok(&[verb, "feed"]);
        let id = annotations()["feedroll.dev/command"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(id.starts_with(&format!("{verb}/")), "{id}");
    }
    // A rollout that does not exist: a clear error, exit 1, nothing written.
    let before = rollout(&api)["metadata"]["resourceVersion"].clone();
    let (code, text) = k.feedroll(&["abort", "nope"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("feedrollout \"nope\" not found in namespace \"feed\""),
        "{text}"
    );
    assert_eq!(rollout(&api)["metadata"]["resourceVersion"], before);

    // wait: reached, timed out, and ended in another terminal phase.
    assert_eq!(
        k.feedroll(&["wait", "feed", "--for", "paused", "--timeout", "5s"])
            .0,
        0
    );
    let (code, text) = k.feedroll(&["wait", "feed", "--for", "succeeded", "--timeout", "1s"]);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("timed out after 1s waiting for succeeded"),
        "{text}"
    );
    let mut waiting = Command::new("kubectl");
    waiting
        .args([
            "feedroll",
            "wait",
            "feed",
            "--for",
            "succeeded",
            "--timeout",
            "20s",
        ])
        .env("KUBECONFIG", &k.kubeconfig)
        .env("PATH", &k.path);
    let waiter = std::thread::spawn(move || waiting.output());
    // (the waiter is already watching, or starts after this change: it ends either way)
    std::thread::sleep(Duration::from_millis(300));
    api.update(FR, "feedrollouts", "feed", "feed", |o| {
        o["status"]["phase"] = json!("RolledBack");
    });
    let done = waiter.join().expect("waiter").expect("kubectl ran");
    assert_eq!(
        done.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    let (code, text) = k.feedroll(&["wait", "feed", "--for", "bogus"]);
    assert_eq!(code, 2, "{text}");

    // status -w: drawn at once, then again on every change.
    let mut watching = Command::new("kubectl")
        .args(["feedroll", "status", "feed", "-w"])
        .env("KUBECONFIG", &k.kubeconfig)
        .env("PATH", &k.path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl feedroll status -w");
    let stdout = watching.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let until = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(want) => return,
                Ok(_) => {}
                Err(e) => panic!("status -w never showed {want:?}: {e}"),
            }
        }
    };
    until("Phase:     RolledBack");
    api.update(FR, "feedrollouts", "feed", "feed", |o| {
        o["status"]["phase"] = json!("Aborted");
    });
    until("Phase:     Aborted");
    let _ = watching.kill();
    let _ = watching.wait();

    // set image, then undo back to what the stable Deployment records.
    let (code, text) = k.feedroll(&["set", "image", "feed", "sidecar=x:1"]);
    assert_eq!(
        (
            code,
            text.contains("has no container \"sidecar\" (it has: feed-server)")
        ),
        (1, true),
        "{text}"
    );
    k.ok(&[
        "set",
        "image",
        "feed",
        "feed-server=ghcr.io/feedroll/feed-server:0.2.0",
    ]);
    let image =
        |api: &FakeApi| rollout(api)["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    assert_eq!(image(&api), "ghcr.io/feedroll/feed-server:0.2.0");
    api.put(
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "feed-stable", "namespace": "feed",
                            "annotations": {ANNOTATION_SOURCE: Source::of(&fr.spec).to_annotation()}},
               "spec": {"selector": {"matchLabels": {"app": "x"}},
                        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    let said = k.ok(&["undo", "feed"]);
    assert!(said.contains(&stable), "{said}");
    assert_eq!(image(&api), "ghcr.io/feedroll/feed-server:0.1.0");
    assert!(k.ok(&["undo", "feed"]).contains("nothing changed"));

    // lint: a valid example passes; invalid ones fail with their reason, one per layer (schema,
    // CEL rule, the operator's resolution). Every example is linted by the same function in
    // operator/tests/it/examples.rs; this is the plugin's wiring (each file costs ~0.3 s in debug).
    let text = k.ok(&[
        "lint",
        repo("examples/default-plan.yaml").to_str().expect("utf-8"),
    ]);
    assert!(
        text.contains("default-plan.yaml: valid (FeedRollout feed/feed, 7 steps, 7 checks)"),
        "{text}"
    );
    let invalid = [
        "typo-in-field",
        "decreasing-weights",
        "engagement-preset-without-in-app",
    ]
    .map(|name| repo(&format!("examples/invalid/{name}.yaml")));
    let mut args = vec!["feedroll", "lint", "-o", "json"];
    args.extend(invalid.iter().map(|p| p.to_str().expect("utf-8")));
    let out = k.run(&args);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(results.len(), invalid.len());
    for (path, result) in invalid.iter().zip(&results) {
        let source = std::fs::read_to_string(path).expect("read");
        let expect = source
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no # expect:", path.display()))
            .trim();
        let problems: Vec<String> = result["problems"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        format!(
                            "{}: {}",
                            p["path"].as_str().unwrap_or_default(),
                            p["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let problems = problems.join("; ");
        assert!(
            problems.contains(expect),
            "{}: want {expect:?} in {problems}",
            path.display()
        );
    }
    let (code, text) = k.feedroll(&["lint", "/nonexistent.yaml"]);
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("cannot read the file"), "{text}");

    let completion = k.ok(&["completion", "bash"]);
    assert!(completion.contains("kubectl-feedroll"), "{completion}");
}
