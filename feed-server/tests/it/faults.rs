//! Redis going away mid-run: requests fail fast with 503, readiness drops, and service resumes
//! by itself with the data Redis kept.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Generous bound for "fails fast": far below the client's own timeout, far above the 300 ms
/// store timeout the harness configures.
const FAST: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_gives_503_then_recovers_with_its_data() {
    let mut app = TestApp::start(Backend::Redis).await;
    app.put_videos(&catalog(20, 5)).await;
    let (status, body) = app
        .put("/v1/users/u/follows", &json!({"creators": ["c2"]}))
        .await;
    assert_eq!(status, 204, "{body}");
    app.events(vec![
        json!({"user_id": "u", "video_id": "v7", "type": "like"}),
    ])
    .await;
    let before = app.feed("u", "&limit=20&explain=true").await;

    app.redis.as_mut().expect("redis").stop();
    let started = Instant::now();
    let (status, body) = app.get("/v1/feed?user_id=someone-new&limit=5").await;
    assert!(
        started.elapsed() < FAST,
        "feed did not fail fast: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("store_unavailable")),
        "{body}"
    );
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": "u", "video_id": "v1", "type": "like"}]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 503, "readyz turns unready while Redis is down");
    let m = app.metrics().await;
    assert!(
        metric(&m, "feed_store_errors_total", &[("kind", "unavailable")]) >= Some(2.0),
        "{m}"
    );

    app.redis.as_mut().expect("redis").restart();
    assert!(
        app.wait_ready(Duration::from_secs(15)).await,
        "ready again once Redis is back"
    );
    // Data Redis kept is still there: catalog, follows and the like's affinity.
    let after = app.feed("u", "&limit=20&explain=true").await;
    assert_eq!(ids(&after).len(), ids(&before).len(), "{after}");
    assert_eq!(
        after["items"][0]["creator_id"],
        before["items"][0]["creator_id"]
    );
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": "u", "video_id": "v1", "type": "like"}]}),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_instead_of_hanging() {
    let app = TestApp::start(Backend::Redis).await;
    app.put_videos(&catalog(10, 5)).await;
    let redis = app.redis.as_ref().expect("redis");
    redis.freeze(true);
    let started = Instant::now();
    let (status, body) = app.get("/v1/feed?user_id=x&limit=5").await;
    let took = started.elapsed();
    redis.freeze(false);
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("store_unavailable")),
        "{body}"
    );
    assert!(
        took < FAST,
        "a frozen Redis must not hang requests: {took:?}"
    );
    assert!(
        app.wait_ready(Duration::from_secs(15)).await,
        "recovers after thaw"
    );
    let feed = app.feed("x", "&limit=5").await;
    assert_eq!(ids(&feed).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_starts_unready_when_redis_is_down_and_becomes_ready_later() {
    let mut redis = RedisServer::start();
    redis.stop();
    let config = <feed_server::config::Config as clap::Parser>::try_parse_from([
        "feed-server",
        "--redis-url",
        &redis.url(),
        "--store-timeout-ms",
        "200",
    ])
    .expect("config");
    let app = feed_server::server::build(&config)
        .await
        .expect("builds without Redis");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .status();
    assert_eq!(status, 503);
    // The warm-up 503s are operational, never API errors an SLO query could see.
    let m = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metric(
            &m,
            "feed_http_operational_requests_total",
            &[("route", "/readyz"), ("status", "503")]
        ) >= Some(1.0),
        "{m}"
    );
    assert!(
        !m.lines().any(|l| l.starts_with("feed_http_requests_total")
            || l.starts_with("feed_http_request_duration")),
        "{m}"
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ready = false;
    while Instant::now() < deadline && !ready {
        ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(());
    assert!(ready, "became ready once Redis came up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_hit_the_request_timeout() {
    let flags = ["--request-timeout-ms", "150", "--store-timeout-ms", "5000"]
        .map(String::from)
        .to_vec();
    let app = TestApp::start_with(
        Backend::Redis,
        Options {
            flags,
            ..Options::default()
        },
    )
    .await;
    let redis = app.redis.as_ref().expect("redis");
    redis.freeze(true);
    let started = Instant::now();
    let (status, body) = app.get("/v1/feed?user_id=slow&limit=5").await;
    let took = started.elapsed();
    redis.freeze(false);
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("timeout")),
        "{body}"
    );
    assert!(
        took < FAST,
        "answered at the request timeout, not the store's: {took:?}"
    );
}
