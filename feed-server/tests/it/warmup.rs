//! The predictive warm-up on a real Redis: a user expected back, whose own events dropped their
//! cached first page, is served it from the cache without having asked for it since; a user the
//! replica never served is not warmed; the CPU budget bounds the warm-up's rankings.

use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, Options, TestApp, catalog, ids, metric};
use serde_json::json;

const WARMUPS: &str = "feed_predictive_warmups_total";
const CACHE: &str = "feed_cache_requests_total";
const RANKINGS: &str = "feed_ranking_candidates_count";

/// A Redis-backed app whose warm-up runs on a compressed clock: a session is over after 200 ms
/// quiet, a user seen once is expected back within a second.
async fn app(budget_ms: u64) -> TestApp {
    let flags = [
        "--warmup-users=0".to_owned(),
        "--predictive-warmup=true".into(),
        "--predictive-warmup-quiet-ms=200".into(),
        "--predictive-warmup-first-gap-ms=1000".into(),
        "--predictive-warmup-horizon-ms=10000".into(),
        format!("--predictive-warmup-budget-ms={budget_ms}"),
    ];
    let app = TestApp::start_with(
        Backend::Redis,
        Options {
            flags: flags.into(),
            ..Options::default()
        },
    )
    .await;
    app.put_videos(&catalog(120, 12)).await;
    app
}

async fn counter(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&app.metrics().await, name, labels).unwrap_or(0.0)
}

async fn warmed(app: &TestApp) -> f64 {
    counter(app, WARMUPS, &[("result", "warmed")]).await
}

/// Cache hits (either tier) and misses of first-page and cursor lookups.
async fn cache_hits_and_misses(app: &TestApp) -> (f64, f64) {
    let text = app.metrics().await;
    let c =
        |tier, result| metric(&text, CACHE, &[("tier", tier), ("result", result)]).unwrap_or(0.0);
    (c("local", "hit") + c("store", "hit"), c("store", "miss"))
}

/// Waits (up to 5 s) until the warm-up has ranked `n` pages.
async fn until_warmed(app: &TestApp, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while warmed(app).await < n {
        assert!(Instant::now() < deadline, "no warm-up within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The user watches the first video of their page: its events drop their cached first page.
async fn watch_first(app: &TestApp, user: &str, video: &str) {
    app.events(vec![
        json!({"user_id": user, "video_id": video, "type": "impression"}),
        json!({"user_id": user, "video_id": video, "type": "view", "watch_ms": 30_000}),
        json!({"user_id": user, "video_id": video, "type": "complete", "watch_ms": 30_000}),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_expected_back_finds_their_first_page_ranked_ahead() {
    let app = app(250).await;
    let first = ids(&app.feed("back", "").await);
    let seen = first.first().expect("a first page").clone();
    watch_first(&app, "back", &seen).await;
    // A user this replica never served: their events are ignored by the warm-up.
    watch_first(&app, "stranger", &seen).await;
    until_warmed(&app, 1.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(warmed(&app).await, 1.0, "only the user expected back");

    let rankings = counter(&app, RANKINGS, &[]).await;
    let (hits, misses) = cache_hits_and_misses(&app).await;
    let again = ids(&app.feed("back", "").await);
    let (hits_after, misses_after) = cache_hits_and_misses(&app).await;
    assert_eq!(hits_after - hits, 1.0, "served from the cache");
    assert_eq!(misses_after, misses);
    assert_eq!(counter(&app, RANKINGS, &[]).await, rankings, "no ranking");
    // Ranked after the events: the watched video is not shown again.
    assert!(!again.contains(&seen), "{seen} in {again:?}");

    // The stranger's first page was dropped by their events and not warmed: a miss, ranked now.
    app.feed("stranger", "").await;
    let (_, misses_stranger) = cache_hits_and_misses(&app).await;
    assert_eq!(misses_stranger - misses_after, 1.0);
    assert_eq!(counter(&app, RANKINGS, &[]).await, rankings + 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_bounds_the_warm_ups_rankings() {
    // 1 ms of ranking per second: after a ranking of t ms the warm-up pauses 999 × t.
    let app = app(1).await;
    let users = ["b1", "b2", "b3", "b4", "b5"];
    for user in users {
        let page = ids(&app.feed(user, "").await);
        watch_first(&app, user, &page[0]).await;
    }
    until_warmed(&app, 1.0).await;
    let spent = counter(&app, "feed_predictive_warmup_seconds_total", &[]).await;
    assert!(spent > 0.0, "the ranking's time is counted");
    // The pause after it outlasts this wait as long as a ranking takes more than 0.5 ms (three
    // Redis round trips and the scoring do).
    let wait = Duration::from_millis(300);
    assert!(spent * 999.0 > 2.0 * wait.as_secs_f64(), "{spent} s");
    tokio::time::sleep(wait).await;
    assert_eq!(warmed(&app).await, 1.0, "one ranking, then the pause");
    let planned = counter(
        &app,
        "feed_predictive_warmup_users",
        &[("state", "planned")],
    )
    .await;
    assert_eq!(planned, 4.0, "the other users wait their turn");
}
