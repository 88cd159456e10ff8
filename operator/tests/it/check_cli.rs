//! `feedroll-operator check` and `crd` as a platform team's CI runs them.

use crate::support::prometheus;

use std::process::Output;
use std::time::{Duration, Instant};

use prometheus::{Harness, series};

const BIN: &str = env!("CARGO_BIN_EXE_feedroll-operator");

fn rollout(checks: &str) -> String {
    format!(
        "apiVersion: feedroll.dev/v1alpha1\nkind: FeedRollout\nmetadata: {{name: feed, namespace: test}}\nspec:\n  template: {{metadata: {{labels: {{app: feed}}}}, spec: {{containers: [{{name: feed, image: 'feed:2'}}]}}}}\n  analysis:\n    defaultChecks: false\n    checks:\n{checks}"
    )
}

async fn check(file: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("check").arg(file).args(args);
    cmd.output().await.expect("run feedroll-operator")
}

fn exported() -> Vec<prometheus::Series> {
    vec![
        series(
            "feed_http_requests_total",
            &[
                ("rollout", "feed"),
                ("track", "canary"),
                ("route", "/v1/feed"),
                ("status", "200"),
            ],
            97.0,
        ),
        series(
            "feed_http_requests_total",
            &[
                ("rollout", "feed"),
                ("track", "canary"),
                ("route", "/v1/feed"),
                ("status", "500"),
            ],
            3.0,
        ),
        series(
            "feed_http_requests_total",
            &[
                ("rollout", "feed"),
                ("track", "stable"),
                ("route", "/v1/feed"),
                ("status", "200"),
            ],
            99.0,
        ),
        series(
            "feed_http_requests_total",
            &[
                ("rollout", "feed"),
                ("track", "stable"),
                ("route", "/v1/feed"),
                ("status", "500"),
            ],
            1.0,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_check_and_exits_by_the_blocking_ones() {
    let harness = Harness::start(exported()).await;
    let dir = tempfile::tempdir().unwrap();
    let passing = dir.path().join("passing.yaml");
    std::fs::write(
        &passing,
        rollout("      - {name: error-rate, preset: errorRate, max: 0.05, window: 10s}\n      - {name: strict, preset: errorRate, max: 0.001, window: 10s, tier: advisory}\n"),
    )
    .unwrap();
    let failing = dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        rollout("      - {name: error-rate, preset: errorRate, max: 0.05, window: 10s}\n      - {name: vs-stable, preset: errorRate, max: 2, window: 10s, compare: {mode: ratio}}\n"),
    )
    .unwrap();

    // Wait until Prometheus has scraped enough for a verdict.
    let deadline = Instant::now() + Duration::from_secs(30);
    let json = loop {
        let out = check(
            &failing,
            &["--prometheus", &harness.url, "--output", "json"],
        )
        .await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        let settled = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["verdict"] != "noData");
        if settled || Instant::now() > deadline {
            assert_eq!(out.status.code(), Some(1), "{json:#}");
            break json;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(json["valid"], true);
    assert_eq!(json["failed"], serde_json::json!(["vs-stable"]));
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks[0]["name"], "error-rate");
    assert_eq!(checks[0]["verdict"], "pass");
    assert!(
        checks[0]["query"]
            .as_str()
            .unwrap()
            .contains(r#"namespace="test",rollout="feed",track="canary""#)
    );
    assert!((checks[1]["value"].as_f64().unwrap() - 3.0).abs() < 1e-3);
    assert_eq!(checks[1]["threshold"], "<= 2");

    // Advisory failures do not fail the check; the table names every check.
    let out = check(&passing, &["--prometheus", &harness.url]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table.contains("CHECK") && table.contains("error-rate") && table.contains("strict"),
        "{table}"
    );
    assert!(table.contains("advisory  fail"), "{table}");

    // Prometheus gone: error verdicts, reported, not a failure of the rollout's SLOs.
    let mut harness = harness;
    harness.stop_prometheus();
    let out = check(
        &passing,
        &["--prometheus", &harness.url, "--output", "json"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["checks"][0]["verdict"], "error");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test]
async fn invalid_files_are_reported_line_by_line() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/invalid/weight-over-100.yaml");
    let out = check(&file, &["--prometheus", "http://127.0.0.1:9"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("weight-over-100.yaml:12: spec.strategy.steps[0].setWeight: must be less than or equal to 100"), "{text}");
    let out = check(&file, &["--output", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["problems"][0]["line"], 12);
    let missing = check(std::path::Path::new("/nonexistent.yaml"), &[]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

#[tokio::test]
async fn crd_prints_the_checked_in_yaml_and_run_needs_a_cluster() {
    let out = tokio::process::Command::new(BIN)
        .arg("crd")
        .output()
        .await
        .unwrap();
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/feedroll.dev_feedrollouts.yaml"
    ))
    .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), checked_in);
    // Without a cluster `run` stops at once with a clear error (exit 2).
    let out = tokio::process::Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "text"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kubernetes client"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn run_rejects_a_concurrency_of_zero_before_touching_the_cluster() {
    let out = tokio::process::Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("FEEDROLL_CONCURRENCY", "0")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--concurrency"), "{stderr}");
    assert!(!stderr.contains("kubernetes client"), "{stderr}");
}
