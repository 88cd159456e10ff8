//! The reconciler's Prometheus analyzer batches concurrent requests: Prometheus load grows with
//! the number of distinct checks, not with rollouts × checks (a fake Prometheus counts queries).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::any;
use feedroll_crds::{FeedRolloutSpec, TrafficMode, Verdict};
use feedroll_operator::analysis::Target;
use feedroll_operator::controller::{Analyzer, PrometheusAnalyzer};
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;

/// A Prometheus answering every instant query with an empty vector, counting them.
async fn fake_prometheus() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = Router::new().route(
        "/api/v1/query",
        any(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                axum::Json(serde_json::json!({
                    "status": "success",
                    "data": {"resultType": "vector", "result": []}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), count)
}

async fn analyze_many(n: usize, address: &str) -> (u64, u64, usize) {
    let analyzer = PrometheusAnalyzer::new();
    let spec: FeedRolloutSpec = serde_json::from_value(serde_json::json!({
        "template": {"metadata": {"labels": {"app": "feed"}}},
        "analysis": {"prometheus": {"address": address, "timeout": "2s"}}
    }))
    .unwrap();
    let analysis = spec.resolved_analysis().unwrap();
    let targets: Vec<Target> = (0..n)
        .map(|i| Target {
            namespace: Some("prod".into()),
            rollout: format!("feed-{i}"),
            traffic: TrafficMode::ReplicaRatio,
        })
        .collect();
    let at = Timestamp::now();
    let mut woken = analyzer.runs_ready().expect("the analyzer wakes rollouts");
    // Reconciles poll: the requests are queued...
    for t in &targets {
        assert!(analyzer.poll(t, &analysis, false, at).await.is_none());
    }
    assert!(woken.next().now_or_never().is_none(), "woken before a run");
    // ...one tick evaluates them all and wakes each rollout once...
    analyzer.tick(at).await;
    let mut ready = Vec::new();
    while let Some(Some(r)) = woken.next().now_or_never() {
        ready.push(r.rollout);
    }
    ready.sort();
    let mut names: Vec<String> = targets.iter().map(|t| t.rollout.clone()).collect();
    names.sort();
    assert_eq!(ready, names);
    // ...and each reconcile picks its run up once.
    let mut runs = Vec::new();
    for t in &targets {
        runs.push(analyzer.poll(t, &analysis, false, at).await.expect("a run"));
    }
    for run in &runs {
        assert_eq!(run.records.len(), analysis.checks.len());
        // No series: no data, never a pass or a fail.
        assert!(
            run.records.iter().all(|r| r.verdict == Verdict::NoData),
            "{run:?}"
        );
    }
    (analyzer.queries(), analyzer.batches(), runs.len())
}

#[tokio::test]
async fn concurrent_rollouts_share_one_batch_and_one_query_per_distinct_check() {
    let (address, sent) = fake_prometheus().await;
    let (q3, b3, _) = analyze_many(3, &address).await;
    let after3 = sent.load(Ordering::Relaxed);
    let (q40, b40, n) = analyze_many(40, &address).await;
    let after40 = sent.load(Ordering::Relaxed) - after3;
    assert_eq!((b3, b40, n), (1, 1, 40));
    // The same number of queries for 3 or 40 rollouts: one per distinct (grouped) query.
    assert_eq!(q3, q40);
    assert_eq!(after3 as u64, q3);
    assert_eq!(after40 as u64, q40);
    // Fewer than the default policy's 7 checks × 2 (value and volume) for even one rollout.
    assert!(q40 <= 14, "{q40} queries");
}

#[tokio::test]
async fn an_unusable_prometheus_address_gives_error_records() {
    let analyzer = PrometheusAnalyzer::new();
    let spec: FeedRolloutSpec = serde_json::from_value(serde_json::json!({
        "template": {"metadata": {"labels": {"app": "feed"}}},
        "analysis": {"prometheus": {"address": "not a url"}}
    }))
    .unwrap();
    let analysis = spec.resolved_analysis().unwrap();
    let target = Target {
        namespace: None,
        rollout: "feed".into(),
        traffic: TrafficMode::ReplicaRatio,
    };
    let run = analyzer
        .analyze(&target, &analysis, true, Timestamp::now())
        .await;
    assert!(!run.records.is_empty());
    assert!(
        run.records
            .iter()
            .all(|r| r.verdict == Verdict::Error && r.tier.as_str() == "rollback")
    );
}
