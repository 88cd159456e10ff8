//! The test-only fault injection (feature `fault-injection`): errors and latency show up in the
//! metrics the operator's checks read. Without the feature the route does not exist.

#[path = "it/common/mod.rs"]
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

/// `FEED_FAULT_EXIT_AT_START=1`: the binary exits with status 70 before it listens (the
/// crash-looping canary of localkube's kubelet).
#[cfg(feature = "fault-injection")]
#[test]
fn exit_at_start_makes_the_binary_exit_before_listening() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let run = |value: &str| -> Option<(Option<i32>, String)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_feed-server"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
            .env("FEED_FAULT_EXIT_AT_START", value)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start feed-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let mut log = String::new();
                std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut log)
                    .expect("stdout");
                return Some((status.code(), log));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (code, log) = run("1").expect("exits within 10 s");
    assert_eq!(code, Some(70), "{log}");
    assert!(log.contains("FEED_FAULT_EXIT_AT_START"), "{log}");
    assert!(!log.contains("feed-server listening"), "{log}");
}
