//! Load shedding (feature `fault-injection`, which can make rankings slow): with a tiny ranking
//! bound and a slow ranking, further rankings are refused at once with 503 `overloaded` and
//! `Retry-After`, the admitted ranking answers 200, pages cached in either tier are still
//! served, and a refused request changes nothing.

#![cfg(feature = "fault-injection")]

#[path = "it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// An app with a catalog of 30 videos and `flags`.
async fn start(backend: Backend, flags: &[&str]) -> TestApp {
    let options = Options {
        flags: flags.iter().map(ToString::to_string).collect(),
        ..Options::default()
    };
    let app = TestApp::start_with(backend, options).await;
    app.put_videos(&catalog(30, 6)).await;
    app
}

/// Polls `/metrics` until `name` reads `value` (the slow ranking has taken its slot).
async fn until_gauge(app: &TestApp, name: &str, value: f64) {
    for _ in 0..400 {
        if metric(&app.metrics().await, name, &[]) == Some(value) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{name} never reached {value}");
}

/// Status, `Retry-After` and JSON body of a request.
async fn call(req: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// `--local-cache-ttl-ms` of the first test: short, so that an in-process first page outlives its
/// trust while the slow ranking holds the only slot and is served after a recheck.
const LOCAL_TTL: Duration = Duration::from_millis(1_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ranking_bound_sheds_rankings_at_once_and_still_serves_cached_pages() {
    let local_ttl = LOCAL_TTL.as_millis().to_string();
    let flags = [
        "--max-rankings-in-flight",
        "1",
        "--max-queued-rankings",
        "0",
        "--local-cache-ttl-ms",
        &local_ttl,
        // The slow ranking (4 s) must not meet the request timeout on a loaded machine.
        "--request-timeout-ms",
        "20000",
    ];
    let mut app = start(Backend::Redis, &flags).await;
    // Another replica on the same Redis ranks the fan's first page: this one holds it in the
    // store tier only.
    let redis_url = app.redis.as_ref().expect("redis").url();
    let other = TestApp::start_with(
        Backend::Memory,
        Options {
            flags: vec!["--redis-url".into(), redis_url],
            ..Options::default()
        },
    )
    .await;
    let cached = other.feed("fan", "").await;
    let (status, _) = app
        .post("/debug/faults", &json!({"ranking_latency_ms": 4000}))
        .await;
    assert_eq!(status, 200);

    // One slow ranking takes the only slot.
    let first = tokio::spawn({
        let req = app.client.get(app.url("/v1/feed?user_id=first"));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    until_gauge(&app, "feed_rankings_in_flight", 1.0).await;
    // Writes are never shed.
    app.events(vec![
        json!({"user_id": "viewer", "video_id": "v1", "type": "like"}),
    ])
    .await;

    let mut shed = Vec::new();
    for user in ["s1", "s2", "s3"] {
        shed.push(app.client.get(app.url(&format!("/v1/feed?user_id={user}"))));
    }
    shed.push(app.client.get(app.url("/v1/feed?user_id=s4&limit=5")));
    shed.push(
        app.client
            .post(app.url("/v1/rank"))
            .json(&json!({"user_id": "s5", "video_ids": ["v1", "v2"]})),
    );
    let answers = futures::future::join_all(shed.into_iter().map(call)).await;
    for (status, retry_after, body) in &answers {
        assert_eq!(
            (*status, &body["error"]["code"]),
            (503, &json!("overloaded")),
            "{body}"
        );
        assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
    }

    // The fan's page is in the store tier only, and a full ranking queue must not refuse it (it
    // needs no ranking).
    let hits = |tier: &'static str| {
        let app = &app;
        async move {
            metric(
                &app.metrics().await,
                "feed_cache_requests_total",
                &[("tier", tier), ("result", "hit")],
            )
            .unwrap_or(0.0)
        }
    };
    let store_hits_before = hits("store").await;
    let (from_store, _, body) = call(app.client.get(app.url("/v1/feed?user_id=fan"))).await;
    let read_at = Instant::now();
    assert_eq!(from_store, 200, "a store-tier page while saturated: {body}");
    assert_eq!(body, cached, "the same cached page");
    assert_eq!(
        hits("store").await,
        store_hits_before + 1.0,
        "served by the store tier"
    );

    // That read put it in process: with the store frozen, it is still served.
    app.redis.as_ref().expect("redis").freeze(true);
    let (cached_status, _, cached_again) =
        call(app.client.get(app.url("/v1/feed?user_id=fan"))).await;
    app.redis.as_ref().expect("redis").freeze(false);
    assert_eq!(
        cached_status, 200,
        "an in-process page while saturated, store frozen"
    );
    assert_eq!(cached_again, cached, "the same cached page");

    // Past its trust (the local TTL) the in-process page is rechecked in the store, not read
    // back, and still served while saturated.
    tokio::time::sleep(
        (read_at + LOCAL_TTL + Duration::from_millis(200))
            .saturating_duration_since(Instant::now()),
    )
    .await;
    let (store_hits, local_hits) = (hits("store").await, hits("local").await);
    let (rechecked, _, body) = call(app.client.get(app.url("/v1/feed?user_id=fan"))).await;
    assert_eq!(rechecked, 200, "a rechecked page while saturated: {body}");
    assert_eq!(body, cached, "the same cached page");
    assert_eq!(hits("store").await, store_hits, "not read back");
    assert_eq!(hits("local").await, local_hits + 1.0, "served in process");
    assert_eq!(
        metric(&app.metrics().await, "feed_rankings_in_flight", &[]),
        Some(1.0),
        "the slow ranking held its slot throughout"
    );
    assert_eq!(
        first.await.expect("join").expect("first"),
        200,
        "the admitted ranking"
    );

    let m = app.metrics().await;
    let count = |name: &str, labels: &[(&str, &str)]| metric(&m, name, labels);
    assert_eq!(
        count("feed_shed_requests_total", &[("reason", "queue_full")]),
        Some(5.0),
        "{m}"
    );
    assert_eq!(
        count("feed_shed_requests_total", &[("reason", "queue_timeout")]),
        Some(0.0)
    );
    assert_eq!(
        count(
            "feed_http_requests_total",
            &[("route", "/v1/feed"), ("status", "503")]
        ),
        Some(4.0),
        "shed feeds are API requests answered 503"
    );
    assert_eq!(
        count(
            "feed_http_requests_total",
            &[("route", "/v1/rank"), ("status", "503")]
        ),
        Some(1.0)
    );
    assert_eq!(count("feed_rankings_in_flight", &[]), Some(0.0));
    assert_eq!(count("feed_rankings_queued", &[]), Some(0.0));
    assert_eq!(
        count("feed_rankings_limit", &[("kind", "in_flight")]),
        Some(1.0)
    );
    assert_eq!(
        count("feed_store_errors_total", &[("kind", "unavailable")]),
        None,
        "no store call timed out: {m}"
    );

    // A refused request left nothing behind: the same users rank normally afterwards.
    app.post("/debug/faults", &json!({})).await;
    let again = app.feed("s1", "").await;
    assert!(!ids(&again).is_empty(), "{again}");
    let (status, body) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "s5", "video_ids": ["v1", "v2"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.redis.take();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_ranking_is_shed_when_no_slot_frees_within_the_queue_wait() {
    let flags = [
        "--max-rankings-in-flight",
        "1",
        "--max-queued-rankings",
        "1",
        "--max-ranking-queue-wait-ms",
        "50",
    ];
    let app = start(Backend::Memory, &flags).await;
    app.post("/debug/faults", &json!({"ranking_latency_ms": 1500}))
        .await;
    let first = tokio::spawn({
        let req = app.client.get(app.url("/v1/feed?user_id=first"));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    until_gauge(&app, "feed_rankings_in_flight", 1.0).await;
    let (status, retry_after, body) =
        call(app.client.get(app.url("/v1/feed?user_id=second"))).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("overloaded"))
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(first.await.expect("join").expect("first"), 200);
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "feed_shed_requests_total",
            &[("reason", "queue_timeout")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "feed_rankings_queued", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_one_user_share_one_ranking_and_take_no_queue_place() {
    let flags = [
        "--max-rankings-in-flight",
        "1",
        "--max-queued-rankings",
        "0",
    ];
    let app = start(Backend::Redis, &flags).await;
    app.post("/debug/faults", &json!({"ranking_latency_ms": 500}))
        .await;
    // Four requests for one uncached user at once: one ranks, the others wait for its page
    // (before, each needed its own ranking and three were refused: one slot, no queue).
    let requests = (0..4).map(|_| call(app.client.get(app.url("/v1/feed?user_id=twice"))));
    let answers = futures::future::join_all(requests).await;
    let first = &answers[0].2;
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, first, "every request got the one ranked page");
    }
    assert!(!ids(first).is_empty(), "{first}");
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "feed_ranking_candidates_count", &[]),
        Some(1.0),
        "one ranking: {m}"
    );
    assert_eq!(
        metric(&m, "feed_shed_requests_total", &[("reason", "queue_full")]),
        Some(0.0)
    );
}
