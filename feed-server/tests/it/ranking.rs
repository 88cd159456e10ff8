//! Ranking behaviour a user notices, through the HTTP API: the completion prior learned per
//! duration bucket (both stores keep its counters), trending per region, the cold-start path,
//! explanations, and the bench world's freshness, follows and affinity at work.

use crate::common;

use std::collections::HashMap;
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

/// The content-health series of `variant`: items, long-tail items, pages, page creators, and
/// the age histogram's count and sum.
fn served(text: &str, variant: &str) -> [f64; 6] {
    let v = [("variant", variant)];
    [
        "feed_served_items_total",
        "feed_served_long_tail_items_total",
        "feed_served_pages_total",
        "feed_served_page_creators_total",
        "feed_served_item_age_seconds_count",
        "feed_served_item_age_seconds_sum",
    ]
    .map(|name| metric(text, name, &v).unwrap_or(f64::NAN))
}

/// Serves a page and returns it with the change of the content-health series of its variant
/// and the time window within which it was served.
async fn served_page(app: &TestApp, query: &str) -> (Value, [f64; 6], (f64, f64)) {
    let before_text = app.metrics().await;
    let t0 = Utc::now().timestamp_millis() as f64 / 1000.0;
    let page = app.feed("reader", query).await;
    let t1 = Utc::now().timestamp_millis() as f64 / 1000.0;
    let variant = page["variant"].as_str().unwrap_or("?").to_owned();
    let (before, after) = (
        served(&before_text, &variant),
        served(&app.metrics().await, &variant),
    );
    let delta = std::array::from_fn(|i| after[i] - before[i]);
    (page, delta, (t0, t1))
}

async fn served_pages_move_the_content_health_counters(b: Backend) {
    // A long-tail budget of 5 (the per-user offset into the least-shown videos is at most 15),
    // so that the long-tail source nominates some of the 30 videos.
    let app = TestApp::start_with(
        b,
        Options {
            profile: Some("version: 2\ncandidates: {longTail: 5}\n".into()),
            ..Options::default()
        },
    )
    .await;
    // 30 videos of 10 creators, 0 to 29 hours old.
    let videos: Vec<Value> = (0..30)
        .map(|i| {
            video(
                &format!("v{i}"),
                &format!("c{}", i % 10),
                &[&format!("t{i}")],
                i,
            )
        })
        .collect();
    app.put_videos(&videos).await;
    let published: HashMap<String, f64> = videos
        .iter()
        .filter_map(|v| {
            let at = chrono::DateTime::parse_from_rfc3339(v["published_at"].as_str()?).ok()?;
            Some((
                v["id"].as_str()?.to_owned(),
                at.timestamp_millis() as f64 / 1000.0,
            ))
        })
        .collect();
    let hits = |text: &str| {
        metric(
            text,
            "feed_cache_requests_total",
            &[("tier", "local"), ("result", "hit")],
        )
    };

    // Ranked now (explained, so that the test sees each item's sources), then the same first
    // page served from the cache as pre-encoded bytes, then the next page through the cursor.
    let (ranked, d1, w1) = served_page(&app, "&explain=true").await;
    let hits_before = hits(&app.metrics().await);
    let (cached, d2, w2) = served_page(&app, "").await;
    assert_eq!(ids(&cached), ids(&ranked), "the same cached page");
    assert!(
        hits(&app.metrics().await) > hits_before,
        "served from the cache"
    );
    let cursor = ranked["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (next, d3, w3) = served_page(&app, &format!("&cursor={cursor}&explain=true")).await;

    let long_tail = |page: &Value| {
        page["items"].as_array().map_or(f64::NAN, |a| {
            a.iter()
                .filter(|i| {
                    i["explain"]["sources"]
                        .as_array()
                        .is_some_and(|s| s.contains(&json!("long_tail")))
                })
                .count() as f64
        })
    };
    assert!(
        long_tail(&ranked) > 0.0,
        "some long-tail items on the page: {ranked}"
    );
    let creators = |page: &Value| {
        let mut c: Vec<String> = page["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["creator_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        c.sort();
        c.dedup();
        c.len() as f64
    };
    for (page, delta, (t0, t1)) in [(&ranked, d1, w1), (&cached, d2, w2), (&next, d3, w3)] {
        let shown = ids(page);
        let n = shown.len() as f64;
        assert_eq!(delta[0], n, "items: {delta:?}");
        assert_eq!(delta[2], 1.0, "pages: {delta:?}");
        assert_eq!(
            delta[3],
            creators(page),
            "distinct creators: {delta:?} {page}"
        );
        assert_eq!(delta[4], n, "one age per item: {delta:?}");
        let age_at = |t: f64| shown.iter().map(|id| t - published[id]).sum::<f64>();
        assert!(
            delta[5] >= age_at(t0) - 0.01 && delta[5] <= age_at(t1) + 0.01,
            "age sum {} not within [{}, {}]",
            delta[5],
            age_at(t0),
            age_at(t1)
        );
    }
    assert_eq!(ids(&ranked).len() + ids(&next).len(), 30);
    assert_eq!(
        [d1[1], d2[1], d3[1]],
        [long_tail(&ranked), long_tail(&ranked), long_tail(&next)],
        "long-tail items"
    );
}

/// The cached snapshots in Redis, as stored (`feed_server::stored_snapshot`).
fn stored_snapshots(redis: &RedisServer) -> Vec<Vec<u8>> {
    let cli = |args: &[&str]| {
        std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default()
    };
    let keys = String::from_utf8(cli(&["--scan", "--pattern", "*snap:*"])).unwrap_or_default();
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|k| {
            // redis-cli ends the raw value with a newline of its own.
            let mut v = cli(&["--raw", "GET", k]);
            v.pop();
            v
        })
        .collect()
}

/// A snapshot cached for a page without `explain` keeps no signals or explanations (less than
/// half the bytes); a later `explain` request still gets every item explained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_snapshots_keep_explanations_only_when_asked() {
    let app = TestApp::start(Backend::Redis).await;
    app.put_videos(&catalog(200, 50)).await;
    let Some(redis) = app.redis.as_ref() else {
        panic!("a Redis app has its server");
    };
    let plain = app.feed("reader", "").await;
    let stored = stored_snapshots(redis);
    assert_eq!(stored.len(), 1, "one snapshot cached");
    let plain_bytes = stored[0].len();
    let plain_stored = feed_server::stored_snapshot::decode(&stored[0])
        .unwrap_or_else(|e| panic!("the stored snapshot reads back: {e}"));
    assert!(
        !plain_stored.explained
            && plain_stored
                .items
                .iter()
                .all(|i| i.signals.is_none() && i.explain.is_none()),
        "no explanations cached for a plain page"
    );
    // The fresh head above has no explanations: an explain request ranks anew and gets them.
    let explained = app.feed("reader", "&explain=true").await;
    assert_eq!(ids(&explained), ids(&plain));
    let items = explained["items"].as_array().cloned().unwrap_or_default();
    assert!(
        !items.is_empty()
            && items
                .iter()
                .all(|i| i["explain"]["contributions"].is_object()),
        "{explained}"
    );
    let stored = stored_snapshots(redis);
    let explained_bytes = stored.iter().map(Vec::len).max().unwrap_or(0);
    let ranked = plain_stored.items.len();
    eprintln!(
        "snapshot of {ranked} ranked items: {plain_bytes} bytes without explanations, {explained_bytes} with"
    );
    assert!(
        plain_bytes * 2 < explained_bytes,
        "{plain_bytes} vs {explained_bytes} bytes"
    );
}

both_stores!(
    served_pages_move_the_content_health_counters,
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

/// Each video of the bench world with its publication time and tags, as uploaded.
fn catalog_of(world: &World) -> HashMap<String, (chrono::DateTime<Utc>, Vec<String>)> {
    world
        .video_requests(2_000)
        .iter()
        .filter_map(|req| serde_json::from_slice::<Vec<Value>>(&req.body).ok())
        .flatten()
        .filter_map(|v| {
            let at = chrono::DateTime::parse_from_rfc3339(v["published_at"].as_str()?).ok()?;
            let tags = v["tags"]
                .as_array()?
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            Some((v["id"].as_str()?.to_owned(), (at.with_timezone(&Utc), tags)))
        })
        .collect()
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
    // The topic's videos are those tagged with it: primary topic or secondary tag.
    let catalog = catalog_of(&world);
    let tag = format!("t{topic}");
    let older: Vec<&String> = catalog
        .iter()
        .filter(|(_, (at, tags))| now - *at > Duration::days(2) && tags.contains(&tag))
        .map(|(id, _)| id)
        .collect();
    let older_shown = ids(&feed).iter().filter(|id| older.contains(id)).count();
    // The negative control: a newcomer without that history, ranked from the same catalog, does
    // not get them — it is the history that brings them, not the catalog.
    let control = app.feed("bystander", "&limit=20&explain=true").await;
    let control_shown = ids(&control).iter().filter(|id| older.contains(id)).count();
    eprintln!(
        "older videos of the engaged topic: devotee {older_shown}, bystander {control_shown}"
    );
    assert!(
        older_shown >= 2,
        "{older_shown} older videos of the engaged topic in the first page: {feed}"
    );
    assert_eq!(
        control_shown, 0,
        "a user without the history gets none of them: {control}"
    );

    // Freshness still shapes a cold user's feed: uploads of the last day (1 in 14 of the
    // catalog, uploaded over two weeks) fill a large part of the first page.
    let recent = |id: &String| {
        catalog
            .get(id)
            .is_some_and(|(at, _)| now - *at < Duration::days(1))
    };
    let catalog_share =
        catalog.keys().filter(|id| recent(id)).count() as f64 / catalog.len() as f64;
    let page = ids(&control);
    let page_share = page.iter().filter(|id| recent(id)).count() as f64 / page.len() as f64;
    eprintln!(
        "uploads of the last day: {page_share:.2} of the page, {catalog_share:.2} of the catalog"
    );
    assert!(
        page_share >= 3.0 * catalog_share,
        "{page_share} of the page vs {catalog_share} of the catalog: {control}"
    );
    // Diversity still shapes it: at most two videos of a creator in any ten consecutive items.
    let creators: Vec<&str> = control["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["creator_id"].as_str()).collect())
        .unwrap_or_default();
    for window in creators.windows(10) {
        for c in window {
            assert!(window.iter().filter(|x| *x == c).count() <= 2, "{control}");
        }
    }
}
