//! Real `kubectl` against the `localkube` binary over HTTPS: the chart's CRD and the example
//! FeedRollouts applied (client- and server-side, with kubectl's default validation, which the
//! server's `/openapi/v3` hands to the server), get (table, `-o yaml`, `-w`), patch (merge,
//! JSON, status subresource), annotate, describe, an invalid FeedRollout refused with its
//! message, RBAC for the operator's context, delete. kubectl is part of the machine image
//! (scripts/install-deps.sh checks for it): without it this test fails, it does not skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A long-running command (`kubectl get -w`) whose output lines are read on a thread: waiting
/// for a line never blocks past a deadline, and the process is killed when this is dropped
/// (also when an assertion fails).
struct LineWatch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl LineWatch {
    fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The first line (from now) that satisfies `want`; fails after 10 s without one.
    fn find(&self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("no such line from the watch within 10 s ({e})"),
            }
        }
    }
}

impl Drop for LineWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .args([
            "--dir",
            dir.path().to_str().expect("utf-8 path"),
            "--namespace",
            "feed",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start localkube");
    let server = Server { child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.dir.path().join("kubeconfig").exists() {
        assert!(
            Instant::now() < deadline,
            "localkube wrote no kubeconfig within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

impl Server {
    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("kubectl is required for this test and could not run ({e}); install it (see scripts/install-deps.sh)")
            })
    }

    /// Runs kubectl, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts failure, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(!out.status.success(), "kubectl {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn kubectl_manages_feedrollouts_on_localkube() {
    let s = start();
    let crd = repo("charts/feedroll/crds/feedroll.dev_feedrollouts.yaml");
    let out = s.ok(&["apply", "-f", path_str(&crd)]);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/feedrollouts.feedroll.dev"),
        "{out}"
    );
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/feedrollouts.feedroll.dev",
        "--timeout=5s",
    ]);

    for example in [
        "default-plan",
        "gateway-api",
        "custom-promql",
        "prometheus-auth",
    ] {
        let file = repo(&format!("examples/{example}.yaml"));
        let out = s.ok(&["apply", "-f", path_str(&file)]);
        assert!(out.contains("feedrollout.feedroll.dev/"), "{out}");
    }
    // Server-side apply of another spec for `feed`: conflicts with the client-side applier's
    // fields, then taken over with --force-conflicts.
    let ranking = repo("examples/ranking-experiment.yaml");
    let err = s.fails(&["apply", "--server-side", "-f", path_str(&ranking)]);
    assert!(err.contains("conflict"), "{err}");
    let out = s.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path_str(&ranking),
    ]);
    assert!(out.contains("serverside-applied"), "{out}");

    let patch = |kind: &'static str, body: &'static str| {
        [
            "-n", "feed", "patch", "fr", "feed", "--type", kind, "-p", body,
        ]
    };
    let table = s.ok(&["-n", "feed", "get", "feedrollouts"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "WEIGHT", "ACTUAL", "STEP", "CANARY", "AGE"]
    );
    assert!(table.contains("feed-gw"), "{table}");
    let yaml = s.ok(&["-n", "feed", "get", "fr", "feed", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: FeedRollout") && yaml.contains("salt: more-affinity-2026"),
        "{yaml}"
    );

    // A watcher sees the status change the operator would write.
    let watch = LineWatch::start(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(s.dir.path().join("kubeconfig"))
            .args(["-n", "feed", "get", "fr", "feed", "-w"]),
    );
    let first = watch.find(|_| true);
    assert!(first.starts_with("NAME"), "{first}");
    s.ok(&[
        "-n",
        "feed",
        "patch",
        "fr",
        "feed",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Progressing","weight":25}}"#,
    ]);
    let seen = watch.find(|l| l.contains("Progressing"));
    drop(watch);
    assert!(
        seen.split_whitespace()
            .collect::<Vec<_>>()
            .starts_with(&["feed", "Progressing", "25"]),
        "{seen}"
    );

    s.ok(&patch("merge", r#"{"spec":{"paused":true}}"#));
    s.ok(&patch(
        "json",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ));
    s.ok(&[
        "-n",
        "feed",
        "annotate",
        "fr",
        "feed",
        "feedroll.dev/promote=true",
    ]);
    let fields = s.ok(&["-n", "feed", "get", "fr", "feed", "-o",
        "jsonpath={.spec.paused} {.spec.replicas} {.metadata.annotations.feedroll\\.dev/promote} {.status.phase}"]);
    assert_eq!(fields, "true 3 true Progressing");
    let described = s.ok(&["-n", "feed", "describe", "fr", "feed"]);
    assert!(described.contains("Name:         feed"), "{described}");

    // Invalid: the server answers 422 with the field and the CRD's message; nothing changes.
    let bad = repo("examples/invalid/decreasing-weights.yaml");
    let err = s.fails(&["apply", "-f", path_str(&bad)]);
    let typo = repo("examples/invalid/typo-in-field.yaml");
    let typo_err = s.fails(&["apply", "--validate=false", "-f", path_str(&typo)]);
    assert!(
        typo_err.contains(r#"spec.stratgy: unknown field "stratgy""#),
        "{typo_err}"
    );
    assert!(
        err.contains("is invalid")
            && err.contains("spec.strategy.steps")
            && err.contains("never decrease"),
        "{err}"
    );
    let err = s.fails(&patch("merge", r#"{"spec":{"replicas":"ten"}}"#));
    assert!(err.contains("spec.replicas"), "{err}");
    assert_eq!(
        s.ok(&[
            "-n",
            "feed",
            "get",
            "fr",
            "feed",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );

    // The operator's context is a ServiceAccount without RBAC yet: refused with the real message.
    let err = s.fails(&["--context", "operator", "-n", "feed", "get", "fr"]);
    assert!(
        err.contains("User \"system:serviceaccount:feedroll-system:feedroll\" cannot list resource \"feedrollouts\" in API group \"feedroll.dev\" in the namespace \"feed\""),
        "{err}"
    );

    let out = s.ok(&["-n", "feed", "delete", "fr", "feed-gw"]);
    assert!(out.contains("deleted"), "{out}");
    let err = s.fails(&["-n", "feed", "get", "fr", "feed-gw"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}
