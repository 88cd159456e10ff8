//! `feedroll-operator run`: its flags (the chart's contract) and the `/healthz`, `/readyz`,
//! `/metrics` server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use clap::Parser;
use feedroll_crds::{EventReason, FeedRolloutStatus, Phase, Tier, Verdict};
use feedroll_operator::cli::{Cli, Command};
use feedroll_operator::controller::Metrics;
use feedroll_operator::controller::run::{LogFormat, RunArgs, router};
use http::{Request, StatusCode};
use tower::ServiceExt;

fn run_args(args: &[&str]) -> RunArgs {
    let mut argv = vec!["feedroll-operator", "run"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_flags_have_the_charts_defaults_and_forms() {
    let a = run_args(&[]);
    assert_eq!(a.listen.to_string(), "0.0.0.0:8080");
    assert!(!a.leader_election);
    assert_eq!(a.lease_name, "feedroll-operator");
    assert_eq!(a.watch_namespace, "");
    assert_eq!(a.log_format, LogFormat::Json);
    let a = run_args(&[
        "--listen",
        "127.0.0.1:9000",
        "--leader-election",
        "--lease-name",
        "l",
        "--lease-namespace",
        "ops",
        "--watch-namespace",
        "feed",
        "--log-format",
        "text",
    ]);
    assert!(a.leader_election);
    assert_eq!(
        (
            a.lease_namespace.as_deref(),
            a.watch_namespace.as_str(),
            a.log_format
        ),
        (Some("ops"), "feed", LogFormat::Text)
    );
    // The chart passes FEEDROLL_LEADER_ELECTION as "true"/"false".
    assert!(!run_args(&["--leader-election=false"]).leader_election);
    assert!(run_args(&["--leader-election=true"]).leader_election);
}

async fn get(app: axum::Router, path: &str) -> (StatusCode, String) {
    let res = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn health_readiness_and_the_metrics_contract() {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let app = router(metrics.clone(), ready.clone());
    assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(app.clone(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    ready.store(true, Ordering::Relaxed);
    assert_eq!(get(app.clone(), "/readyz").await.0, StatusCode::OK);

    metrics.set_leader(true);
    metrics.reconciled(true, std::time::Duration::from_millis(3));
    metrics.decision("prod", "feed", EventReason::RolledBack);
    metrics.verdict("prod", "feed", "error-rate", Tier::Rollback, Verdict::Fail);
    metrics.breach_to_rollback(3.5);
    let status = FeedRolloutStatus {
        phase: Some(Phase::Paused),
        weight: 25,
        ..Default::default()
    };
    metrics.observe_status("prod", "feed", &status);
    let (code, text) = get(app.clone(), "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    for series in [
        "feedroll_leader 1",
        "feedroll_reconciles_total{result=\"ok\"} 1",
        "feedroll_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
        "feedroll_reconcile_duration_seconds_bucket{le=\"0.0025\"} 0",
        "feedroll_reconciles_total{result=\"error\"} 0",
        "feedroll_decisions_total{namespace=\"prod\",reason=\"RolledBack\",rollout=\"feed\"} 1",
        "feedroll_check_verdicts_total{check=\"error-rate\",namespace=\"prod\",rollout=\"feed\",tier=\"rollback\",verdict=\"fail\"} 1",
        "feedroll_breach_to_rollback_seconds_count 1",
        "feedroll_rollout_phase{namespace=\"prod\",phase=\"Paused\",rollout=\"feed\"} 1",
        "feedroll_rollout_phase{namespace=\"prod\",phase=\"Progressing\",rollout=\"feed\"} 0",
        "feedroll_rollout_weight{namespace=\"prod\",rollout=\"feed\"} 25",
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "missing {series} in\n{text}"
        );
    }
    // A deleted rollout's series go away.
    metrics.forget("prod", "feed");
    let (_, text) = get(app, "/metrics").await;
    assert!(!text.contains("rollout=\"feed\""), "{text}");
}
