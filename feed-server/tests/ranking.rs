//! Ranking behaviour a user notices, through the HTTP API: the completion prior learned per
//! duration bucket (both stores keep its counters), trending per region, the cold-start path,
//! explanations, and the bench world's freshness, follows and affinity at work.

mod common;

use std::net::SocketAddr;

use chrono::{Duration, Utc};
use common::*;
use feedroll_bench::client::{Conn, Req};
use feedroll_bench::world::{World, WorldSpec, user_id};
use serde_json::{Value, json};

fn clip(id: &str, duration_ms: u64, region: &str, hours_ago: i64) -> Value {
    let mut v = video(id, &format!("by-{id}"), &[], hours_ago);
    v["duration_ms"] = json!(duration_ms);
    v["region"] = json!(region);
    v
}

fn signal(item: &Value, name: &str) -> f64 {
    item["signals"][name].as_f64().unwrap_or(f64::NAN)
}

/// Impressions of every video by 20 users; `finished` of them complete it.
fn plays(videos: &[&str], finished: usize) -> Vec<Value> {
    let mut events = Vec::new();
    for v in videos {
        for u in 0..20 {
            let user = format!("viewer{u}");
            events.push(json!({"user_id": user, "video_id": v, "type": "impression"}));
            if u < finished {
                events.push(json!({"user_id": user, "video_id": v, "type": "complete"}));
            }
        }
    }
    events
}

async fn a_new_video_starts_at_its_duration_buckets_finish_rate(b: Backend) {
    let app = TestApp::start(b).await;
    let shorts: Vec<String> = (0..10).map(|i| format!("short{i}")).collect();
    let longs: Vec<String> = (0..10).map(|i| format!("long{i}")).collect();
    let mut videos: Vec<Value> = shorts.iter().map(|id| clip(id, 10_000, "US", 5)).collect();
    videos.extend(longs.iter().map(|id| clip(id, 300_000, "US", 5)));
    videos.push(clip("new-short", 12_000, "US", 1));
    videos.push(clip("new-long", 290_000, "US", 1));
    app.put_videos(&videos).await;
    let short_ids: Vec<&str> = shorts.iter().map(String::as_str).collect();
    let long_ids: Vec<&str> = longs.iter().map(String::as_str).collect();
    app.events(plays(&short_ids, 12)).await;
    app.events(plays(&long_ids, 1)).await;

    let (status, body) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "newcomer", "video_ids": ["new-long", "new-short", "short0"], "explain": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let find = |id: &str| items.iter().find(|i| i["video_id"] == id).cloned();
    let (Some(new_short), Some(new_long), Some(short0)) =
        (find("new-short"), find("new-long"), find("short0"))
    else {
        panic!("every candidate ranked: {body}");
    };
    // Priors: (12·10 completes + 0.15·100) / (200 + 100) = 0.45 and (10 + 15) / 300 ≈ 0.083.
    let (s, l) = (
        signal(&new_short, "completion"),
        signal(&new_long, "completion"),
    );
    assert!((s - 0.45).abs() < 1e-9, "short prior {s}");
    assert!((l - 25.0 / 300.0).abs() < 1e-9, "long prior {l}");
    // A played video moves from the prior to its own completes per impression (12 of 20).
    let own = signal(&short0, "completion");
    assert!((own - (12.0 + 0.45 * 20.0) / 40.0).abs() < 1e-9, "{own}");
    assert!(signal(&new_short, "brevity") > signal(&new_long, "brevity"));
    assert_eq!(items[0]["video_id"], "short0", "{body}");
    // Explanations: contributions add up to the score; no sources or diversity for /v1/rank.
    let w = feed_profile::SignalWeights::default();
    let completion_share = w.completion / w.total();
    for item in &items {
        let c = &item["explain"]["contributions"];
        let sum: f64 = [
            "freshness",
            "completion",
            "engagement",
            "affinity",
            "embedding",
            "brevity",
        ]
        .iter()
        .map(|k| c[k].as_f64().unwrap_or(f64::NAN))
        .sum();
        let lifted = item["explain"]["affinity_lift"]
            .as_f64()
            .unwrap_or(f64::NAN);
        assert!(
            (sum + lifted - item["score"].as_f64().unwrap_or(0.0)).abs() < 1e-9,
            "{item}"
        );
        // Nobody has affinity here: the default lift scales every score down, and that is
        // reported as its own term, not taken out of the signals' contributions.
        assert!(lifted < 0.0, "{item}");
        let completion = c["completion"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (completion - signal(item, "completion") * completion_share).abs() < 1e-9,
            "{item}"
        );
        assert_eq!(item["explain"]["sources"], json!([]), "{item}");
        assert!(item["explain"]["diversity"].is_null(), "{item}");
    }
}

/// A client that sends plays and completes but no impressions: the duration bucket's prior
/// divides by its plays, not by its (zero) impressions, so it is a rate, not completes over
/// nothing clamped to 1.
async fn a_bucket_without_impressions_learns_its_rate_from_plays(b: Backend) {
    let app = TestApp::start(b).await;
    let played: Vec<String> = (0..10).map(|i| format!("played{i}")).collect();
    let mut videos: Vec<Value> = played.iter().map(|id| clip(id, 10_000, "US", 5)).collect();
    videos.push(clip("new-short", 12_000, "US", 1));
    app.put_videos(&videos).await;
    let mut events = Vec::new();
    for v in &played {
        for u in 0..20 {
            let user = format!("viewer{u}");
            events.push(json!({"user_id": user, "video_id": v, "type": "view", "watch_ms": 3_000}));
            if u < 4 {
                events.push(
                    json!({"user_id": user, "video_id": v, "type": "complete", "watch_ms": 10_000}),
                );
            }
        }
    }
    app.events(events).await;
    let (status, body) = app
        .post(
            "/v1/rank",
            &json!({"user_id": "newcomer", "video_ids": ["new-short"], "explain": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // 200 plays, 40 completes: (40 + 0.15·100) / (200 + 100); without plays it would be
    // (min(40, 0) + 15) / 100 = 0.15, the bare priorMean.
    let prior = signal(&body["items"][0], "completion");
    assert!((prior - 55.0 / 300.0).abs() < 1e-9, "prior {prior}: {body}");
}

async fn trending_is_read_for_the_users_region(b: Backend) {
    // One trending video per list, no other source: what a user gets is what trends for them.
    let profile = "candidates: {trending: 1, fresh: 0, similar: 0, longTail: 0}\n\
                   diversity: {longTailShare: 0}\n";
    let app = TestApp::start_with(
        b,
        Options {
            profile: Some(profile.into()),
            ..Options::default()
        },
    )
    .await;
    app.put_videos(&[
        clip("fr-hit", 20_000, "FR", 2),
        clip("us-hit", 20_000, "US", 2),
    ])
    .await;
    let mut events = plays(&["us-hit"], 15);
    events.extend(plays(&["fr-hit"], 5));
    app.events(events).await;
    for (user, region) in [("pierre", "FR"), ("sam", "US")] {
        let (status, body) = app
            .put(
                &format!("/v1/users/{user}/profile"),
                &json!({"language": "en", "region": region}),
            )
            .await;
        assert!(status < 300, "{body}");
    }
    let pierre = app.feed("pierre", "&explain=true").await;
    let sam = app.feed("sam", "").await;
    let newcomer = app.feed("no-region", "").await;
    assert_eq!(
        ids(&pierre).iter().filter(|id| *id == "fr-hit").count(),
        1,
        "trending in the user's region: {pierre}"
    );
    assert!(ids(&pierre).contains(&"us-hit".to_owned()), "{pierre}");
    assert_eq!(ids(&sam), ["us-hit"], "{sam}");
    assert_eq!(ids(&newcomer), ["us-hit"], "{newcomer}");
    let fr = pierre["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["video_id"] == "fr-hit"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(fr["explain"]["sources"], json!(["trending"]), "{fr}");
    assert!(fr["explain"]["diversity"]["score_rank"].is_u64(), "{fr}");
}

async fn a_user_without_history_gets_a_full_explained_feed(b: Backend) {
    let app = TestApp::start(b).await;
    // One creator's six brand-new videos score best; thirty older ones by thirty creators follow.
    let mut videos: Vec<Value> = (0..6)
        .map(|i| video(&format!("solo{i}"), "solo", &[&format!("s{i}")], 0))
        .collect();
    videos
        .extend((0..30).map(|i| video(&format!("o{i}"), &format!("c{i}"), &[&format!("o{i}")], 6)));
    app.put_videos(&videos).await;
    let feed = app.feed("nobody", "&limit=20&explain=true").await;
    let items = feed["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 20, "{feed}");
    for (pos, item) in items.iter().enumerate() {
        assert_eq!(signal(item, "affinity"), 0.0, "no history, no affinity");
        let sources = item["explain"]["sources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!sources.is_empty(), "{item}");
        let d = &item["explain"]["diversity"];
        let (Some(rank), Some(moved)) = (d["score_rank"].as_i64(), d["moved"].as_i64()) else {
            panic!("diversity explained: {item}");
        };
        assert_eq!(rank - moved, pos as i64, "{item}");
    }
    // The creator cap (2 in any 10) holds the third "solo" video back: it is explained as capped
    // and moved down from its score rank.
    let solo: Vec<&Value> = items.iter().filter(|i| i["creator_id"] == "solo").collect();
    assert_eq!(solo[0]["explain"]["diversity"]["moved"], 0, "{feed}");
    let third = solo.get(2).copied().cloned().unwrap_or_default();
    assert_eq!(third["explain"]["diversity"]["capped"], true, "{third}");
    assert!(
        third["explain"]["diversity"]["moved"].as_i64() < Some(0),
        "{third}"
    );
}

async fn region_and_language_filters_keep_only_matching_videos(b: Backend) {
    let profile = "filters: {matchLanguage: true, matchRegion: true}\n";
    let app = TestApp::start_with(
        b,
        Options {
            profile: Some(profile.into()),
            ..Options::default()
        },
    )
    .await;
    let mut fr_en = clip("fr-en", 20_000, "FR", 1);
    fr_en["language"] = json!("en");
    let mut fr_fr = clip("fr-fr", 20_000, "FR", 1);
    fr_fr["language"] = json!("fr");
    let mut anywhere = clip("anywhere", 20_000, "", 1);
    anywhere["language"] = json!("");
    app.put_videos(&[fr_en, fr_fr, clip("us-en", 20_000, "US", 1), anywhere])
        .await;
    app.put(
        "/v1/users/amelie/profile",
        &json!({"language": "fr", "region": "FR"}),
    )
    .await;
    let mut got = ids(&app.feed("amelie", "").await);
    got.sort();
    assert_eq!(got, ["anywhere", "fr-fr"]);
    // A user without language or region sees everything.
    assert_eq!(ids(&app.feed("anyone", "").await).len(), 4);
}

both_stores!(
    a_new_video_starts_at_its_duration_buckets_finish_rate,
    a_bucket_without_impressions_learns_its_rate_from_plays,
    trending_is_read_for_the_users_region,
    a_user_without_history_gets_a_full_explained_feed,
    region_and_language_filters_keep_only_matching_videos,
);

/// The bench world (small): catalog, users and a two-day history, loaded through the API.
async fn bench_world(app: &TestApp) -> World {
    let world = World::generate(
        WorldSpec {
            videos: 4_000,
            users: 300,
            creators: 400,
            plays: 20_000,
            follows: 5,
            friends: 5,
            zipf_s: 1.0,
            seed: 11,
        },
        Utc::now(),
    );
    let addr: SocketAddr = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut conn = Conn::connect(addr).await.expect("connect");
    let requests: Vec<Req> = world
        .video_requests(2_000)
        .into_iter()
        .chain(world.user_requests())
        .chain(world.history_requests(1_000))
        .collect();
    for req in &requests {
        let reply = conn.send(req).await.expect("send");
        assert!(reply.status < 300, "{} {}", req.path, reply.status);
    }
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_world_shows_follows_and_engaged_topics() {
    let app = TestApp::start(Backend::Memory).await;
    let world = bench_world(&app).await;

    // A followed creator's new upload ranks high for a user with some history.
    let rank = 30;
    let user = user_id(rank);
    let creator = world
        .follows_of(rank)
        .into_iter()
        .next()
        .expect("the user follows");
    let mut upload = video("just-uploaded", &creator, &["t0"], 0);
    upload["published_at"] = json!((Utc::now() - Duration::minutes(10)).to_rfc3339());
    app.put_videos(&[upload]).await;
    let feed = app.feed(&user, "&limit=20").await;
    let at = ids(&feed).iter().position(|id| id == "just-uploaded");
    assert!(
        matches!(at, Some(p) if p < 5),
        "followed upload at {at:?}: {feed}"
    );

    // A newcomer completes and likes the dozen newest videos of one topic in a row: the topic's
    // older videos (more than two days old, while hours-old uploads exist) reach the first page.
    let topic = 7;
    let now = Utc::now();
    let mut topic_videos = world.topic_videos(topic);
    topic_videos.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
    let events: Vec<Value> = topic_videos
        .iter()
        .take(12)
        .flat_map(|(id, _)| {
            ["impression", "view", "complete", "like"].map(|kind| {
                json!({"user_id": "devotee", "video_id": id, "type": kind, "watch_ms": 60_000})
            })
        })
        .collect();
    app.events(events).await;
    let feed = app.feed("devotee", "&limit=20&explain=true").await;
    let older: Vec<&String> = topic_videos
        .iter()
        .filter(|(_, at)| now - *at > Duration::days(2))
        .map(|(id, _)| id)
        .collect();
    let shown = ids(&feed);

    let older_shown = shown.iter().filter(|id| older.contains(id)).count();
    assert!(
        older_shown >= 2,
        "{older_shown} older videos of the engaged topic in the first page: {feed}"
    );
}
