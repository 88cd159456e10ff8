//! `POST /v1/admin/replay` over HTTP, on both stores: a canary profile that ranks what users
//! finish lower is measured worse with an interval that excludes zero, the same profile twice is
//! measured equal, and bad requests are refused with clear codes while nothing changes.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::{Value, json};

const VIDEOS: usize = 30;

/// Even videos: 8-s clips, published long ago, mostly finished. Odd videos: 4-minute videos,
/// new, rarely finished. Brevity ranks the finished first; freshness the other way round.
fn world() -> Vec<Value> {
    (0..VIDEOS)
        .map(|i| {
            let short = i.is_multiple_of(2);
            let mut v = video(
                &format!("v{i}"),
                &format!("c{}", i % 5),
                &["t"],
                if short { 24 * 60 } else { 2 },
            );
            v["duration_ms"] = json!(if short { 8_000 } else { 240_000 });
            v
        })
        .collect()
}

/// 40 users × 5 impressions in the last hour, with plays and completes.
fn history(now: DateTime<Utc>) -> Vec<Value> {
    let mut events = Vec::new();
    for u in 0..40i64 {
        for k in 0..5i64 {
            let i = ((u * 7 + k * 3) % VIDEOS as i64) as usize;
            let at = now - Duration::minutes(50) + Duration::seconds(u * 30 + k * 5);
            let (user, vid) = (format!("u{u}"), format!("v{i}"));
            let ts = at.to_rfc3339();
            events.push(json!({"user_id": user, "video_id": vid, "type": "impression", "ts": ts}));
            let short = i.is_multiple_of(2);
            let finished = if short {
                (u + k) % 4 != 0
            } else {
                (u + k) % 9 == 0
            };
            let duration = if short { 8_000 } else { 240_000 };
            let watched = if finished { duration } else { duration / 6 };
            events.push(json!({"user_id": user, "video_id": vid, "type": "view", "watch_ms": watched, "ts": ts}));
            if finished {
                events.push(json!({"user_id": user, "video_id": vid, "type": "complete", "watch_ms": watched, "ts": ts}));
                if (u + k) % 3 == 0 {
                    events
                        .push(json!({"user_id": user, "video_id": vid, "type": "like", "ts": ts}));
                }
            }
        }
    }
    events
}

fn brevity() -> Value {
    json!({"name": "brevity", "weights": {"freshness": 0, "completion": 0, "engagement": 0, "affinity": 0, "embedding": 0, "brevity": 1}})
}

fn freshness() -> Value {
    json!({"name": "fresh", "weights": {"freshness": 1, "completion": 0, "engagement": 0, "affinity": 0, "embedding": 0, "brevity": 0}})
}

fn request(since: DateTime<Utc>, until: DateTime<Utc>, stable: Value, canary: Value) -> Value {
    json!({"since": since.to_rfc3339(), "until": until.to_rfc3339(), "stable": stable, "canary": canary})
}

fn patient() -> Options {
    Options {
        flags: vec!["--store-timeout-ms".into(), "5000".into()],
        ..Options::default()
    }
}

fn figure(body: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(body, |v, k| &v[*k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

async fn a_worse_profile_is_measured_worse_with_confidence(backend: Backend) {
    let app = TestApp::start_with(backend, patient()).await;
    app.put_videos(&world()).await;
    let now = Utc::now();
    app.events(history(now)).await;
    let before = app.metrics().await;
    let since = now - Duration::hours(1);
    let until = now + Duration::minutes(1);

    let (status, body) = app
        .post(
            "/v1/admin/replay",
            &request(since, until, brevity(), freshness()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exposures"], 200, "{body}");
    assert_eq!(body["users"], 40, "{body}");
    assert_eq!(body["bootstrap"]["resamples"], 1000, "{body}");
    let stable = figure(&body, &["stable", "gauc_finish"]);
    let canary = figure(&body, &["canary", "gauc_finish"]);
    assert!(stable > 0.7 && canary < 0.3, "{body}");
    let d = &body["differences"]["gauc_finish"];
    assert!(
        (figure(d, &["estimate"]) - (canary - stable)).abs() < 1e-9,
        "{body}"
    );
    assert!(figure(d, &["upper"]) < 0.0, "confidently worse: {body}");
    assert!(figure(d, &["lower"]) <= figure(d, &["estimate"]), "{body}");
    assert!(
        figure(&body, &["differences", "ndcg10_watch", "upper"]) < 0.0,
        "{body}"
    );
    assert!(
        body["differences"]["gauc_like"]["estimate"].is_number(),
        "{body}"
    );

    // The same profile on both sides: no difference at all.
    let (status, same) = app
        .post(
            "/v1/admin/replay",
            &request(since, until, brevity(), brevity()),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    for m in ["gauc_finish", "ndcg10_watch", "gauc_like"] {
        for k in ["estimate", "lower", "upper"] {
            assert_eq!(
                figure(&same, &["differences", m, k]),
                0.0,
                "{m}.{k}: {same}"
            );
        }
    }
    // Seeded: the same request gives the same answer.
    let (_, again) = app
        .post(
            "/v1/admin/replay",
            &request(since, until, brevity(), freshness()),
        )
        .await;
    assert_eq!(again["differences"], body["differences"]);
    // A replay never changes what is served.
    let info = |m: &str| {
        metric(
            m,
            "feed_ranking_profile_info",
            &[("profile", "default"), ("generation", "1")],
        )
    };
    assert_eq!(info(&before), Some(1.0));
    assert_eq!(info(&app.metrics().await), Some(1.0));
}

async fn bad_replays_are_refused_with_clear_codes(backend: Backend) {
    let app = TestApp::start_with(backend, patient()).await;
    app.put_videos(&world()).await;
    let now = Utc::now();
    let since = now - Duration::hours(1);
    let code = |body: &Value| body["error"]["code"].as_str().unwrap_or("").to_owned();

    // An empty log: how many exposures it holds and needs.
    let (status, body) = app
        .post(
            "/v1/admin/replay",
            &request(since, now, brevity(), freshness()),
        )
        .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (422, "too_few_exposures"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("holds 0 exposures") && message.contains("at least 100"),
        "{message}"
    );

    let negative = json!({"weights": {"brevity": -1}});
    let experiment = json!({"salt": "s", "variants": [{"name": "a", "share": 1.0, "profile": {}}]});
    for (req, status_code, expected, says) in [
        (
            request(now, now, brevity(), freshness()),
            400,
            "invalid_window",
            "before",
        ),
        (
            request(now, since, brevity(), freshness()),
            400,
            "invalid_window",
            "before",
        ),
        (
            request(since, now, negative.clone(), brevity()),
            400,
            "invalid_ranking_profile",
            "stable profile: invalid ranking profile: weights.brevity",
        ),
        (
            request(since, now, brevity(), negative),
            400,
            "invalid_ranking_profile",
            "canary profile: invalid ranking profile: weights.brevity",
        ),
        (
            request(since, now, brevity(), experiment),
            400,
            "invalid_ranking_profile",
            "not an experiment",
        ),
        (
            request(since, now, brevity(), json!({"wieghts": {}})),
            400,
            "invalid_ranking_profile",
            "canary profile",
        ),
        (
            json!({"since": since.to_rfc3339(), "until": now.to_rfc3339(), "stable": {}}),
            400,
            "invalid_json",
            "canary",
        ),
    ] {
        let (status, body) = app.post("/v1/admin/replay", &req).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (status_code, expected),
            "{req}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{req}: {message}");
    }
    // A window before the history holds nothing.
    app.events(history(now)).await;
    let (status, body) = app
        .post(
            "/v1/admin/replay",
            &request(since - Duration::days(2), since, brevity(), freshness()),
        )
        .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (422, "too_few_exposures"),
        "{body}"
    );
}

both_stores!(
    a_worse_profile_is_measured_worse_with_confidence,
    bad_replays_are_refused_with_clear_codes,
);
