//! Black-box HTTP tests of every endpoint, run on every store (embedded, one real Redis server,
//! a real Redis Cluster of 3 masters and 3 replicas).

use crate::common;

use std::collections::HashSet;

use common::*;
use serde_json::{Value, json};

fn item<'a>(feed: &'a Value, id: &str) -> Option<&'a Value> {
    feed["items"]
        .as_array()?
        .iter()
        .find(|i| i["video_id"] == id)
}

async fn paging_never_repeats_or_skips(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&catalog(90, 15)).await;
    let user = "pager";
    let mut seen = Vec::new();
    let first = app.feed(user, "&limit=7").await;
    seen.extend(ids(&first));
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(c) = cursor {
        // Events between pages must not disturb paging.
        if pages == 2 {
            app.events(vec![
                json!({"user_id": user, "video_id": seen[0], "type": "like"}),
            ])
            .await;
            app.events(vec![
                json!({"user_id": user, "video_id": "v50", "type": "view", "watch_ms": 30000}),
            ])
            .await;
        }
        let page = app.feed(user, &format!("&limit=7&cursor={c}")).await;
        assert!(ids(&page).len() <= 7);
        seen.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages < 50, "paging does not end");
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "an item repeated across pages");
    assert_eq!(
        seen.len(),
        90,
        "every video is reachable by paging, none skipped"
    );
}

async fn an_event_visibly_changes_the_next_feed(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&catalog(60, 12)).await;
    let user = "fan";
    let before = app.feed(user, "&limit=60&explain=true").await;
    // The creator whose best video ranks lowest: engaging with it must lift it to the top.
    let first_rank = |feed: &Value, creator: &str| {
        let items = feed["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .position(|i| i["creator_id"] == creator)
            .unwrap_or(usize::MAX)
    };
    let creators: Vec<String> = (0..12).map(|c| format!("c{c}")).collect();
    let target_creator = creators
        .iter()
        .max_by_key(|c| first_rank(&before, c))
        .cloned()
        .unwrap_or_default();
    let rank_of = |feed: &Value| first_rank(feed, &target_creator);
    assert!(rank_of(&before) > 0, "the target does not lead already");
    let watched_item = before["items"].as_array().and_then(|a| {
        a.iter()
            .find(|i| i["creator_id"] == target_creator.as_str())
    });
    let watched = watched_item
        .and_then(|i| i["video_id"].as_str())
        .unwrap_or("")
        .to_owned();
    let watched = watched.as_str();
    app.events(vec![
        json!({"user_id": user, "video_id": watched, "type": "view", "watch_ms": 30000}),
        json!({"user_id": user, "video_id": watched, "type": "complete", "watch_ms": 30000}),
        json!({"user_id": user, "video_id": watched, "type": "like"}),
        json!({"user_id": user, "video_id": watched, "type": "share"}),
    ])
    .await;
    let after = app.feed(user, "&limit=60&explain=true").await;
    assert!(
        item(&after, watched).is_none(),
        "a watched video is filtered as seen"
    );
    let other = ids(&after)
        .into_iter()
        .find(|id| item(&after, id).is_some_and(|i| i["creator_id"] == target_creator));
    let other = other.expect("another video of the creator is still in the feed");
    let aff_before = item(&before, &other).expect("in first feed")["signals"]["affinity"]
        .as_f64()
        .unwrap_or(0.0);
    let aff_after = item(&after, &other).expect("in second feed")["signals"]["affinity"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        aff_after > aff_before,
        "affinity to the creator rose: {aff_before} -> {aff_after}"
    );
    assert!(
        rank_of(&after) < rank_of(&before),
        "{target_creator} moved up: {} -> {}",
        rank_of(&before),
        rank_of(&after)
    );
    assert_eq!(rank_of(&after), 0, "the engaged creator now leads the feed");
}

async fn following_a_creator_lifts_that_creator(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&catalog(60, 12)).await;
    let user = "follower";
    let mean_rank = |feed: &Value| {
        let items = feed["items"].as_array().cloned().unwrap_or_default();
        let ranks: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| i["creator_id"] == "c3")
            .map(|(r, _)| r)
            .collect();
        ranks.iter().sum::<usize>() as f64 / ranks.len().max(1) as f64
    };
    let before = app.feed(user, "&limit=60").await;
    let (status, body) = app
        .put(
            "/v1/users/follower/follows",
            &json!({"creators": ["c3"], "friends": []}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let after = app.feed(user, "&limit=60&explain=true").await;
    assert!(
        mean_rank(&after) < mean_rank(&before),
        "c3 lifted: {} -> {}",
        mean_rank(&before),
        mean_rank(&after)
    );
    let first = &after["items"][0];
    assert_eq!(first["creator_id"], "c3");
    assert!(
        first["signals"]["affinity"].as_f64().unwrap_or(0.0) >= 0.3,
        "follow boost applied: {first}"
    );
}

async fn rank_orders_candidates_and_replays_at_a_past_time(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&[
        video("old", "a", &["x"], 96),
        video("new", "b", &["y"], 0),
        video("mid", "c", &["z"], 24),
    ])
    .await;
    let (status, body) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "r", "video_ids": ["old", "ghost", "new", "mid"], "explain": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body),
        ["new", "mid", "old"],
        "fresher first, unknown ids left out"
    );
    let scores: Vec<f64> = body["items"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .filter_map(|i| i["score"].as_f64())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "scores descend: {scores:?}"
    );
    assert!(body["next_cursor"].is_null());
    // As of 4 days ago, "old" was brand new and the others did not exist yet (age clamps to 0).
    let at = (chrono::Utc::now() - chrono::Duration::hours(96)).to_rfc3339();
    let (_, past) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "r", "video_ids": ["old", "new"], "at": at, "explain": true}),
        )
        .await;
    let fresh = item(&past, "old").expect("old ranked")["signals"]["freshness"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(fresh > 0.99, "freshness evaluated as of `at`: {fresh}");
}

async fn catalog_accepts_arrays_and_ndjson_and_deletes(b: Backend) {
    let app = TestApp::start(b).await;
    let ndjson = [video("n1", "a", &["x"], 1), video("n2", "a", &["x"], 1)]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let (status, body) = app
        .raw(
            reqwest::Method::PUT,
            "/v1/videos",
            "application/x-ndjson",
            ndjson.into_bytes(),
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(2)), "{body}");
    app.put_videos(&[video("a1", "b", &["y"], 1)]).await;
    let (_, ranked) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "u", "video_ids": ["n1", "n2", "a1"]}),
        )
        .await;
    assert_eq!(ids(&ranked).len(), 3);
    let r = app
        .client
        .delete(app.url("/v1/videos/n1"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let r = app
        .client
        .delete(app.url("/v1/videos/n1"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 404);
    let (_, ranked) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "u", "video_ids": ["n1", "n2", "a1"]}),
        )
        .await;
    assert!(
        !ids(&ranked).contains(&"n1".to_owned()),
        "deleted video is gone"
    );
    let feed = app.feed("someone", "&limit=50").await;
    assert!(!ids(&feed).contains(&"n1".to_owned()));
}

/// Asserts an error answer: the status, the code and a message.
fn expect_error((status, body): (u16, Value), want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn bad_requests_get_clear_errors_and_change_nothing(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&[video("ok", "a", &["x"], 1)]).await;
    let expect = expect_error;
    let json_ct = "application/json";
    expect(
        app.raw(
            reqwest::Method::POST,
            "/v1/events",
            json_ct,
            b"{not json".to_vec(),
        )
        .await,
        400,
        "invalid_json",
    );
    expect(
        app.post("/v1/events", &json!({"events": []})).await,
        400,
        "empty_batch",
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"user_id": "u", "video_id": "ok", "type": "like"}))
        .collect();
    expect(
        app.post("/v1/events", &json!({"events": many})).await,
        413,
        "batch_too_large",
    );
    expect(
        app.get("/v1/feed?user_id=u&limit=0").await,
        400,
        "invalid_limit",
    );
    expect(
        app.get("/v1/feed?user_id=u&limit=101").await,
        400,
        "invalid_limit",
    );
    expect(
        app.get("/v1/feed?user_id=u&limit=ten").await,
        400,
        "invalid_query",
    );
    expect(app.get("/v1/feed?limit=5").await, 400, "invalid_query");
    expect(
        app.get("/v1/feed?user_id=u&cursor=garbage").await,
        400,
        "invalid_cursor",
    );
    expect(app.get("/v1/nope").await, 404, "not_found");
    expect(
        app.post("/v1/rank", &json!({"user_id": "u", "video_ids": []}))
            .await,
        400,
        "empty_candidates",
    );
    expect(
        app.post(
            "/v1/rank",
            &json!({"user_id": "u", "video_ids": ["ok", "ok"]}),
        )
        .await,
        400,
        "duplicate_id",
    );

    // A batch with one bad video stores none of it.
    let mut bad = video("partial", "a", &["x"], 1);
    bad["duration_ms"] = json!(0);
    expect(
        app.put("/v1/videos", &json!([video("first", "a", &["x"], 1), bad]))
            .await,
        400,
        "invalid_duration",
    );
    // `*` names the trending list of every language in the stores: refused, for videos and users.
    for field in ["language", "region"] {
        let mut star = video("star", "a", &["x"], 1);
        star[field] = json!("*");
        expect(
            app.put("/v1/videos", &json!([star])).await,
            400,
            "invalid_locale",
        );
        let mut profile = json!({"language": "", "region": ""});
        profile[field] = json!("*");
        expect(
            app.put("/v1/users/u1/profile", &profile).await,
            400,
            "invalid_profile",
        );
    }
    let mut negative = video("neg", "a", &["x"], 1);
    negative["duration_ms"] = json!(-5);
    expect(
        app.put("/v1/videos", &json!([negative])).await,
        400,
        "invalid_json",
    );
    expect(
        app.put(
            "/v1/videos",
            &json!([video("d", "a", &[], 1), video("d", "a", &[], 1)]),
        )
        .await,
        400,
        "duplicate_id",
    );
    expect(app.put("/v1/videos", &json!([])).await, 400, "empty_batch");
    let mut nan = video("nan", "a", &["x"], 1);
    nan["embedding"] = json!([1.0, "NaN"]);
    expect(
        app.put("/v1/videos", &json!([nan])).await,
        400,
        "invalid_json",
    );
    expect(
        app.raw(
            reqwest::Method::PUT,
            "/v1/videos",
            "text/plain",
            b"[]".to_vec(),
        )
        .await,
        415,
        "unsupported_media_type",
    );
    let (_, ranked) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "u", "video_ids": ["first", "partial", "d", "ok"]}),
        )
        .await;
    assert_eq!(
        ids(&ranked),
        ["ok"],
        "nothing of the rejected batches was stored"
    );

    expect(
        app.put("/v1/users/u/follows", &json!({"creators": ["a", "a"]}))
            .await,
        400,
        "duplicate_id",
    );
    expect(
        app.put("/v1/users/u/follows", &json!({"creators": "a"}))
            .await,
        400,
        "invalid_json",
    );

    // Event batches: per-item rejections, the good ones stored.
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [
                {"user_id": "u", "video_id": "ok", "type": "like"},
                {"user_id": "u", "video_id": "ghost", "type": "like"},
                {"user_id": "u", "video_id": "ok", "type": "view", "watch_ms": -3},
                {"user_id": "u", "video_id": "ok", "type": "view"},
                {"user_id": "", "video_id": "ok", "type": "like"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    let codes: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["index"].as_u64().unwrap_or(99),
                        r["code"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        codes,
        [
            (1, "unknown_video"),
            (2, "invalid_watch_ms"),
            (3, "invalid_watch_ms"),
            (4, "invalid_id")
        ]
    );
    let metrics = app.metrics().await;
    let likes = [
        ("rollout", "test-rollout"),
        ("track", "canary"),
        ("type", "like"),
        ("variant", "default"),
    ];
    assert_eq!(
        metric(&metrics, "feed_events_total", &likes),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "feed_events_rejected_total",
            &[("code", "invalid_watch_ms")]
        ),
        Some(2.0),
        "{metrics}"
    );
}

async fn oversized_bodies_are_refused(b: Backend) {
    let app = TestApp::start_with(
        b,
        Options {
            flags: vec!["--max-body-bytes".into(), "1000".into()],
            ..Options::default()
        },
    )
    .await;
    let big: Vec<Value> = (0..50)
        .map(|i| video(&format!("big{i}"), "a", &["x"], 1))
        .collect();
    let (status, body) = app.put("/v1/videos", &Value::Array(big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let events: Vec<Value> = (0..50)
        .map(|_| json!({"user_id": "u", "video_id": "x", "type": "like"}))
        .collect();
    let (status, body) = app.post("/v1/events", &json!({"events": events})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!("payload_too_large")),
        "{body}"
    );
    // Every route that reads a body holds the limit, not only the two above.
    let padded = json!({"pad": "x".repeat(2_000)});
    for path in ["/v1/rank", "/v1/admin/tune", "/v1/admin/replay"] {
        let (status, body) = app.post(path, &padded).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (413, &json!("payload_too_large")),
            "POST {path}: {body}"
        );
    }
    for path in ["/v1/users/u/follows", "/v1/users/u/profile"] {
        let (status, body) = app.put(path, &padded).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (413, &json!("payload_too_large")),
            "PUT {path}: {body}"
        );
    }
}

async fn cache_serves_repeats_and_events_invalidate_it(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&catalog(30, 10)).await;
    let first = app.feed("cached", "&limit=5").await;
    let again = app.feed("cached", "&limit=5").await;
    assert_eq!(
        ids(&first),
        ids(&again),
        "a repeat is served from the cache"
    );
    let hits = metric(
        &app.metrics().await,
        "feed_cache_requests_total",
        &[("tier", "local"), ("result", "hit")],
    );
    assert!(hits >= Some(1.0), "local cache hit counted: {hits:?}");
    let top = ids(&first)[0].clone();
    app.events(vec![
        json!({"user_id": "cached", "video_id": top, "type": "impression"}),
    ])
    .await;
    let after = app.feed("cached", "&limit=5").await;
    assert!(
        !ids(&after).contains(&top),
        "the user's own event invalidated the cached page"
    );
}

async fn the_default_first_page_is_the_same_however_it_is_asked_for(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&catalog(60, 15)).await;
    let user = "firstpage";
    // Ranked by the first request; the next two are served from the cached snapshot (the
    // default page is encoded once per snapshot and reused).
    let explained = app.feed(user, "&limit=20&explain=true").await;
    let default = app.feed(user, "").await;
    let twenty = app.feed(user, "&limit=20").await;
    assert_eq!(default, twenty);
    assert_eq!(ids(&twenty).len(), 20);
    assert_eq!(ids(&twenty), ids(&explained));
    assert_eq!(twenty["next_cursor"], explained["next_cursor"]);
    assert_eq!(twenty["variant"], "default");
    assert_eq!(twenty["user_id"], user);
    assert!(explained["items"][0]["signals"].is_object(), "{explained}");
    assert!(twenty["items"][0]["signals"].is_null(), "{twenty}");
    let cursor = twenty["next_cursor"].as_str().expect("a second page");
    let next = app.feed(user, &format!("&limit=20&cursor={cursor}")).await;
    assert_eq!(ids(&next).len(), 20);
    assert!(ids(&next).iter().all(|id| !ids(&twenty).contains(id)));
}

async fn metrics_carry_rollout_track_and_variant(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&catalog(10, 5)).await;
    app.feed("m", "&limit=3").await;
    let m = app.metrics().await;
    let common = [("rollout", "test-rollout"), ("track", "canary")];
    let with = |extra: &[(&'static str, &'static str)]| [&common[..], extra].concat();
    let feed = [
        ("route", "/v1/feed"),
        ("method", "GET"),
        ("variant", "default"),
    ];
    assert_eq!(
        metric(
            &m,
            "feed_http_requests_total",
            &with(&[&feed[..], &[("status", "200")]].concat())
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "feed_http_request_duration_seconds_count", &with(&feed)),
        Some(1.0),
        "{m}"
    );
    let info = [
        ("profile", "default"),
        ("variant", "default"),
        ("generation", "1"),
    ];
    assert_eq!(
        metric(&m, "feed_ranking_profile_info", &with(&info)),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "feed_cache_requests_total",
            &with(&[("tier", "store"), ("result", "miss")])
        ),
        Some(1.0),
        "{m}"
    );
}

/// Lines of the exposition that are samples of a metric family (`name` or `name_*`).
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(family))
        .collect()
}

async fn probes_and_scrapes_are_not_api_traffic(b: Backend) {
    let app = TestApp::start(b).await;
    // Start-up already polled /readyz; add probes, scrapes, strays and a wrong method.
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(app.get("/readyz").await.0, 200);
        app.metrics().await;
        assert_eq!(app.get("/wp-login.php").await.0, 404);
    }
    let (status, _) = app.post("/healthz", &serde_json::json!({})).await;
    assert_eq!(status, 405);
    let m = app.metrics().await;
    assert!(samples(&m, "feed_http_requests_total").is_empty(), "{m}");
    assert!(
        samples(&m, "feed_http_request_duration_seconds").is_empty(),
        "{m}"
    );
    let op = "feed_http_operational_requests_total";
    let common = [("rollout", "test-rollout"), ("track", "canary")];
    let at = |route, status| {
        metric(
            &m,
            op,
            &[&common[..], &[("route", route), ("status", status)]].concat(),
        )
    };
    assert_eq!(at("/healthz", "200"), Some(3.0), "{m}");
    assert_eq!(at("/healthz", "405"), Some(1.0), "{m}");
    assert!(at("/readyz", "200") >= Some(3.0), "{m}");
    // The scrape being answered is counted after it renders: the two before it.
    assert_eq!(at("/metrics", "200"), Some(2.0), "{m}");
    assert_eq!(at("unmatched", "404"), Some(2.0), "{m}");
    // Operational series carry no method or variant: they are not API series in disguise.
    assert!(
        samples(&m, op)
            .iter()
            .all(|l| !l.contains("method=") && !l.contains("variant=")),
        "{m}"
    );

    // API traffic is counted where the rollout checks look, and only there.
    app.put_videos(&catalog(5, 2)).await;
    app.feed("p", "&limit=2").await;
    let m = app.metrics().await;
    let requests = samples(&m, "feed_http_requests_total");
    assert_eq!(requests.len(), 2, "{m}");
    assert!(requests.iter().all(|l| l.contains(r#"route="/v1/"#)), "{m}");
    assert_eq!(
        metric(
            &m,
            "feed_http_requests_total",
            &[("route", "/v1/feed"), ("status", "200")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, op, &[("route", "/v1/feed")]),
        None,
        "API requests are not operational: {m}"
    );
}

/// `(index, code)` of every rejected item of an events response.
fn rejections(body: &Value) -> Vec<(u64, String)> {
    body["rejected"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["index"].as_u64().unwrap_or(u64::MAX),
                        r["code"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The affinity the user has for each video, from `POST /v1/rank` with `explain`.
async fn affinities(app: &TestApp, user: &str, videos: &[&str]) -> Vec<(String, f64)> {
    let (status, ranked) = app
        .post(
            "/v1/rank",
            &json!({"user_id": user, "video_ids": videos, "explain": true}),
        )
        .await;
    assert_eq!(status, 200, "{ranked}");
    let mut out: Vec<(String, f64)> = ranked["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["video_id"].as_str().unwrap_or("").to_owned(),
                        i["signals"]["affinity"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn a_bad_event_is_rejected_alone_never_the_batch(b: Backend) {
    let app = TestApp::start(b).await;
    // One creator and one tag per video, so an event moves only its own video's affinity.
    let names = ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"];
    let videos: Vec<Value> = names
        .iter()
        .map(|v| video(v, &format!("c-{v}"), &[&format!("t-{v}")], 1))
        .collect();
    app.put_videos(&videos).await;
    let user = "ahead";
    let before = affinities(&app, user, &names).await;
    assert!(before.iter().all(|(_, a)| *a == 0.0), "{before:?}");

    // The issue's case: a client one version ahead sends a new type as the third event.
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [
                {"user_id": user, "video_id": "e0", "type": "like"},
                {"user_id": user, "video_id": "e1", "type": "share"},
                {"user_id": user, "video_id": "e2", "type": "teleport"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(rejections(&body), [(2, "unknown_type".to_owned())]);

    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [
                {"user_id": user, "video_id": "e3", "type": "like", "position": 4},
                {"user_id": user, "type": "like"},
                {"user_id": user, "video_id": "e4", "type": "view", "watch_ms": "9000"},
                {"user_id": user, "video_id": "e5", "type": "comment"},
                {"user_id": user, "video_id": "e6", "type": "like", "ts": "last tuesday"},
                "like e7",
                {"user_id": user, "video_id": "e7", "type": "view", "watch_ms": 30000,
                 "ts": null, "variant": null},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(
        rejections(&body),
        [
            (0, "unknown_field".to_owned()),
            (1, "missing_field".to_owned()),
            (2, "invalid_field".to_owned()),
            (4, "invalid_field".to_owned()),
            (5, "invalid_event".to_owned()),
        ],
        "{body}"
    );
    let messages: Vec<&str> = body["rejected"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["message"].as_str()).collect())
        .unwrap_or_default();
    for (message, field) in messages
        .iter()
        .zip(["position", "video_id", "watch_ms", "ts"])
    {
        assert!(message.contains(field), "{message:?} names {field}");
    }

    // The accepted events took effect, the rejected ones did not.
    let after = affinities(&app, user, &names).await;
    for (video, affinity) in &after {
        let accepted = ["e0", "e1", "e5", "e7"].contains(&video.as_str());
        assert_eq!(*affinity > 0.0, accepted, "{video}: {after:?}");
    }
    let metrics = app.metrics().await;
    for (code, n) in [
        ("unknown_type", 1.0),
        ("unknown_field", 1.0),
        ("missing_field", 1.0),
        ("invalid_field", 2.0),
        ("invalid_event", 1.0),
    ] {
        assert_eq!(
            metric(&metrics, "feed_events_rejected_total", &[("code", code)]),
            Some(n),
            "{code}: {metrics}"
        );
    }
    let counted = |kind: &str| {
        metric(
            &metrics,
            "feed_events_total",
            &[("type", kind), ("variant", "default")],
        )
    };
    assert_eq!(counted("like"), Some(1.0), "{metrics}");
    assert_eq!(counted("share"), Some(1.0), "{metrics}");
    assert_eq!(counted("comment"), Some(1.0), "{metrics}");
    assert_eq!(counted("view"), Some(1.0), "{metrics}");

    // A batch of only bad items is answered, not failed: nothing accepted, each one explained.
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": user, "video_id": "e2", "type": "teleport"}, null]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(
        rejections(&body),
        [
            (0, "unknown_type".to_owned()),
            (1, "invalid_event".to_owned())
        ]
    );
    let engaged = |a: &[(String, f64)]| -> Vec<String> {
        a.iter()
            .filter(|(_, x)| *x > 0.0)
            .map(|(v, _)| v.clone())
            .collect()
    };
    // (Affinities decay with time, so compare which videos have one, not the values.)
    assert_eq!(
        engaged(&affinities(&app, user, &names).await),
        engaged(&after)
    );
}

async fn a_body_that_is_not_an_event_batch_is_a_400_and_changes_nothing(b: Backend) {
    let app = TestApp::start(b).await;
    app.put_videos(&[video("ok", "a", &["x"], 1)]).await;
    let like = json!({"user_id": "u", "video_id": "ok", "type": "like"});
    let json_ct = "application/json";
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (b"".to_vec(), 400, "invalid_json"),
        // JSON's grammar allows it, no f64 holds it: the body cannot be read.
        (
            br#"{"events": [{"user_id": "u", "video_id": "ok", "type": "view", "watch_ms": 1e400}]}"#
                .to_vec(),
            400,
            "invalid_json",
        ),
        (br#"{"evts": []}"#.to_vec(), 400, "invalid_batch"),
        (br#"{"events": {}}"#.to_vec(), 400, "invalid_batch"),
        (br#"{"events": null}"#.to_vec(), 400, "invalid_batch"),
        (br#"{}"#.to_vec(), 400, "invalid_batch"),
        (json!([like]).to_string().into_bytes(), 400, "invalid_batch"),
        (
            format!(r#"{{"events": [{like}], "events": [{like}]}}"#).into_bytes(),
            400,
            "invalid_batch",
        ),
        (
            json!({"events": [like], "client": "ios"})
                .to_string()
                .into_bytes(),
            400,
            "invalid_batch",
        ),
        (br#"{"events": []}"#.to_vec(), 400, "empty_batch"),
        (
            json!({"events": vec![like.clone(); 1001]})
                .to_string()
                .into_bytes(),
            413,
            "batch_too_large",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let answer = app
            .raw(reqwest::Method::POST, "/v1/events", json_ct, body)
            .await;
        assert_eq!(answer.0, want_status, "{shown}: {}", answer.1);
        expect_error(answer, want_status, want_code);
    }
    expect_error(
        app.raw(
            reqwest::Method::POST,
            "/v1/events",
            "text/plain",
            json!({"events": [like]}).to_string().into_bytes(),
        )
        .await,
        415,
        "unsupported_media_type",
    );
    // None of the refused bodies stored its like.
    assert_eq!(
        affinities(&app, "u", &["ok"]).await,
        [("ok".to_owned(), 0.0)]
    );
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "feed_events_total", &[("type", "like")]),
        Some(0.0),
        "{metrics}"
    );
    // The same like in a well-formed batch is stored.
    app.events(vec![like]).await;
    assert!(affinities(&app, "u", &["ok"]).await[0].1 > 0.0);
}

async fn video_batches_stay_all_or_nothing(b: Backend) {
    let app = TestApp::start(b).await;
    let ndjson = |videos: &[Value]| {
        videos
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    let mut unknown_field = video("w3", "a", &["x"], 1);
    unknown_field["rating"] = json!(5);
    let mut mistyped = video("w3", "a", &["x"], 1);
    mistyped["duration_ms"] = json!("long");
    let mut missing = video("w3", "a", &["x"], 1);
    if let Some(o) = missing.as_object_mut() {
        o.remove("creator_id");
    }
    let good = [video("w1", "a", &["x"], 1), video("w2", "a", &["x"], 1)];
    for (bad, field) in [
        (unknown_field, "rating"),
        (mistyped, "\"long\""),
        (missing, "creator_id"),
    ] {
        let batch = [good[0].clone(), good[1].clone(), bad];
        let (status, body) = app
            .raw(
                reqwest::Method::PUT,
                "/v1/videos",
                "application/x-ndjson",
                ndjson(&batch),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        // serde names an unknown or missing field, and a mistyped one by its value and column.
        assert!(
            message.starts_with("line 3:") && message.contains(field),
            "{message}"
        );
        let (status, body) = app.put("/v1/videos", &json!(batch)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{body}"
        );
    }
    let (_, ranked) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "u", "video_ids": ["w1", "w2", "w3"]}),
        )
        .await;
    assert_eq!(
        ids(&ranked),
        Vec::<String>::new(),
        "no video of a refused batch was stored"
    );
    let (status, body) = app
        .raw(
            reqwest::Method::PUT,
            "/v1/videos",
            "application/x-ndjson",
            ndjson(&good),
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(2)), "{body}");
}

all_stores!(
    paging_never_repeats_or_skips,
    an_event_visibly_changes_the_next_feed,
    following_a_creator_lifts_that_creator,
    rank_orders_candidates_and_replays_at_a_past_time,
    catalog_accepts_arrays_and_ndjson_and_deletes,
    bad_requests_get_clear_errors_and_change_nothing,
    oversized_bodies_are_refused,
    cache_serves_repeats_and_events_invalidate_it,
    the_default_first_page_is_the_same_however_it_is_asked_for,
    metrics_carry_rollout_track_and_variant,
    probes_and_scrapes_are_not_api_traffic,
    a_bad_event_is_rejected_alone_never_the_batch,
    a_body_that_is_not_an_event_batch_is_a_400_and_changes_nothing,
    video_batches_stay_all_or_nothing,
);

#[tokio::test]
async fn healthz_answers() {
    let app = TestApp::start(Backend::Memory).await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body["store"].as_str()), (200, Some("memory")));
}
