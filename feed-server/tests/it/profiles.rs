//! Ranking profiles and experiments over HTTP: validation at start, hot reload, variants.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::json;

const TWO_VARIANTS: &str = "salt: exp-1\nvariants:\n  - {name: control, share: 0.7}\n  - {name: treatment, share: 0.3, profile: {name: fresh-first, weights: {freshness: 1.0}}}\n";

/// An app serving `TWO_VARIANTS` with one video in the catalog.
async fn two_variant_app() -> TestApp {
    let options = Options {
        profile: Some(TWO_VARIANTS.into()),
        ..Options::default()
    };
    let app = TestApp::start_with(Backend::Memory, options).await;
    app.put_videos(&[video("v", "a", &["x"], 1)]).await;
    app
}

#[tokio::test]
async fn a_bad_profile_file_stops_start_up_with_a_clear_error() {
    for (text, needle) in [
        ("weights: {affinity: -1}", "weights.affinity"),
        (
            "weights: {freshness: 0, completion: 0, engagement: 0, affinity: 0, embedding: 0, brevity: 0}",
            "at least one weight",
        ),
        ("weights: {brevity: -0.1}", "weights.brevity"),
        ("brevity: {halfLifeSeconds: 0}", "brevity.halfLifeSeconds"),
        ("affinity: {lift: -1}", "affinity.lift"),
        (
            "completion: {bucketPriorWeight: 0}",
            "completion.bucketPriorWeight",
        ),
        ("weigths: {}", "unknown field"),
        ("", "empty"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).expect("write");
        let config = <feed_server::config::Config as clap::Parser>::try_parse_from([
            "feed-server",
            "--profile",
            &path.display().to_string(),
        ])
        .expect("config");
        let err = feed_server::server::build(&config)
            .await
            .err()
            .expect("must refuse to start")
            .to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
}

/// Replaces the file atomically (write aside, rename), as a ConfigMap update does.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn wait_for_generation(app: &TestApp, generation: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let m = app.metrics().await;
        if metric(
            &m,
            "feed_ranking_profile_info",
            &[("generation", generation)],
        )
        .is_some()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_hot_reload_applies_good_files_and_keeps_serving_on_bad_ones() {
    let app = TestApp::start_with(
        Backend::Memory,
        Options {
            profile: Some("name: first\n".into()),
            ..Options::default()
        },
    )
    .await;
    app.put_videos(&[video("old", "a", &["x"], 200), video("new", "b", &["y"], 0)])
        .await;
    let path = app.profile_path.clone().expect("profile path");

    replace_file(&path, TWO_VARIANTS);
    assert!(
        wait_for_generation(&app, "2").await,
        "good file loaded as generation 2"
    );
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "feed_ranking_profile_info",
            &[("variant", "treatment"), ("profile", "fresh-first")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "feed_ranking_profile_info", &[("generation", "1")]),
        None,
        "old generation's series removed"
    );

    replace_file(&path, "variants: [{name: a, share: 0.5}]");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "feed_ranking_profile_reload_errors_total", &[]),
        Some(1.0),
        "bad file counted"
    );
    assert!(
        metric(&m, "feed_ranking_profile_info", &[("generation", "2")]).is_some(),
        "last good profile still serving"
    );
    let (status, body) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "anyone", "video_ids": ["old", "new"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        ["control", "treatment"].contains(&body["variant"].as_str().unwrap_or("")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_are_stable_per_user_and_match_shares_over_ten_thousand_users() {
    let app = two_variant_app().await;
    let app = &app;
    let assigned: Vec<(String, String)> = futures::stream::iter(0..10_000)
        .map(|i| async move {
            let user = format!("user-{i}");
            let (_, body) = app
                .post("/v1/rank", &json!({"user_id": user, "video_ids": ["v"]}))
                .await;
            (user, body["variant"].as_str().unwrap_or("").to_owned())
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, v) in &assigned {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let share = |v: &str| counts.get(v).copied().unwrap_or(0) as f64 / 10_000.0;
    assert!(
        (share("treatment") - 0.3).abs() <= 0.02,
        "treatment share {}",
        share("treatment")
    );
    assert!(
        (share("control") - 0.7).abs() <= 0.02,
        "control share {}",
        share("control")
    );
    // Stable: the feed of the same users reports the same variant as the rank calls did.
    for (user, variant) in assigned.iter().take(200) {
        let feed = app.feed(user, "&limit=1").await;
        assert_eq!(
            feed["variant"],
            variant.as_str(),
            "user {user} switched variant"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_counted_under_the_variant_that_served_them() {
    let app = two_variant_app().await;
    let feed = app.feed("someone", "&limit=1").await;
    let variant = feed["variant"].as_str().unwrap_or("").to_owned();
    let other = if variant == "control" {
        "treatment"
    } else {
        "control"
    };
    app.events(vec![
        json!({"user_id": "someone", "video_id": "v", "type": "complete", "watch_ms": 30000}),
        json!({"user_id": "someone", "video_id": "v", "type": "like", "variant": other}),
        json!({"user_id": "someone", "video_id": "v", "type": "share", "variant": "retired-variant"}),
    ])
    .await;
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "feed_events_total",
            &[("type", "complete"), ("variant", &variant)]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "feed_events_total",
            &[("type", "like"), ("variant", other)]
        ),
        Some(1.0),
        "explicit variant kept"
    );
    assert_eq!(
        metric(
            &m,
            "feed_events_total",
            &[("type", "share"), ("variant", &variant)]
        ),
        Some(1.0),
        "unknown variant falls back to assignment"
    );
}
