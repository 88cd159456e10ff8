//! The test-only fault injection (feature `fault-injection`): errors and latency show up in the
//! metrics the operator's checks read. Without the feature the route does not exist.

mod common;

use common::*;
use serde_json::json;

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_and_latency_reach_the_metrics() {
    let app = TestApp::start(Backend::Memory).await;
    app.put_videos(&catalog(10, 5)).await;
    let (status, body) = app
        .post(
            "/debug/faults",
            &json!({"error_rate": 1.0, "added_latency_ms": 300}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    let (status, body) = app.get("/v1/feed?user_id=u&limit=3").await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "latency added"
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &json!("injected_fault"))
    );
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200, "health endpoints are spared");
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "feed_http_requests_total",
            &[("route", "/v1/feed"), ("status", "500")]
        ),
        Some(1.0),
        "{m}"
    );
    let (status, _) = app.post("/debug/faults", &json!({"error_rate": 1.5})).await;
    assert_eq!(status, 400);
    app.post("/debug/faults", &json!({})).await;
    let (status, _) = app.get("/v1/feed?user_id=u&limit=3").await;
    assert_eq!(status, 200, "faults cleared");
}

#[cfg(not(feature = "fault-injection"))]
#[tokio::test]
async fn without_the_feature_there_is_no_fault_route() {
    let app = TestApp::start(Backend::Memory).await;
    let (status, _) = app.post("/debug/faults", &json!({"error_rate": 1.0})).await;
    assert_eq!(status, 404);
}
