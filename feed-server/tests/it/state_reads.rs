//! `feed_ranking_state_reads_total{state, from}` on a real Redis: where what a ranking read came
//! from. Once read, a ranking over the same catalog, creators and friend takes every item of
//! shared state from the replica's memory; with `--shared-cache-ms 0` the counters and every
//! list come from Redis every time (feed-server/README.md, "Cache" and "Metrics").

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::json;

const STATES: [&str; 5] = [
    "catalog_entry",
    "video_counters",
    "catalog_list",
    "shared_list",
    "friend_list",
];

/// Every series of the metric, by (state, from).
async fn reads(app: &TestApp) -> BTreeMap<(&'static str, &'static str), f64> {
    let text = app.metrics().await;
    let mut all = BTreeMap::new();
    for state in STATES {
        for from in ["memory", "redis"] {
            let value = metric(
                &text,
                "feed_ranking_state_reads_total",
                &[("state", state), ("from", from)],
            )
            .unwrap_or_else(|| panic!("no series for {state} from {from}"));
            all.insert((state, from), value);
        }
    }
    all
}

/// What each series added from `before` to `after`.
fn added(
    before: &BTreeMap<(&'static str, &'static str), f64>,
    after: &BTreeMap<(&'static str, &'static str), f64>,
) -> BTreeMap<(&'static str, &'static str), f64> {
    after.iter().map(|(k, v)| (*k, v - before[k])).collect()
}

/// Three users who read the same window of the long tail (a user's window is one of four, by
/// the user's id: `ranking::candidates`), so that their rankings read the same lists.
fn readers() -> Vec<String> {
    let window = |user: &str| feed_profile::bucket("long-tail", user) % 4;
    let users: Vec<String> = (0..)
        .map(|n| format!("reader{n}"))
        .filter(|u| window(u) == window("reader0"))
        .take(3)
        .collect();
    users
}

/// A replica on its own Redis with `flags`, a catalog, the [`readers`] following the same
/// creators and befriending the same user (who liked a video), the like applied (and polled
/// since, while the counter change feed is followed); returned once it hears the writes of
/// replicas (its own included).
async fn world(flags: &[&str]) -> TestApp {
    let app = TestApp::start_with(
        Backend::Redis,
        Options {
            profile: None,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        },
    )
    .await;
    app.wait_metric(
        "feed_peer_writes_listening",
        Duration::from_secs(2),
        "not listening",
        |v| v == Some(1.0),
    )
    .await;
    app.put_videos(&catalog(40, 4)).await;
    for user in readers() {
        let (status, body) = app
            .put(
                &format!("/v1/users/{user}/follows"),
                &json!({"creators": ["c0", "c1"], "friends": ["pal"]}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let like = json!({"events": [{"user_id": "pal", "video_id": "v7", "type": "like"}]});
    let (status, body) = app.post("/v1/events", &like).await;
    assert_eq!(status, 200, "{body}");
    // Applied (and, while the counter change feed is followed, polled since).
    if flags.windows(2).any(|f| f == ["--shared-cache-ms", "0"]) {
        app.wait_metric(
            "feed_event_backlog",
            Duration::from_secs(10),
            "not applied",
            |v| v == Some(0.0),
        )
        .await;
    } else {
        app.settle().await;
    }
    app
}

/// The [`readers`] ranked one after the other: the third takes
/// every item of shared state from the replica's memory. The second may still read lists the
/// first read but could not keep: a followed creator's list is kept under the creator's term,
/// which a replica learns from the creator's catalog entries (the first ranking read them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_read_the_shared_state_of_a_ranking_comes_from_memory() {
    // Lists events move are reused for `--shared-cache-ms` after a read: long enough here that
    // a slow test host cannot let the first ranking's lists expire before the third's.
    let app = world(&["--shared-cache-ms", "600000"]).await;
    let mut counts = vec![reads(&app).await];
    for user in readers() {
        app.feed(&user, "&limit=100").await;
        counts.push(reads(&app).await);
        // A kept catalog list is used once a poll of the counter change feed sent after its
        // read says the catalog did not change meanwhile (README, "Replicas").
        app.settle().await;
    }
    let first = added(&counts[0], &counts[1]);
    let third = added(&counts[2], &counts[3]);
    // What the default profile's plan reads: every video of the catalog; the two creators'
    // lists and the fresh list; today's and yesterday's trending and the long tail; the friend.
    let planned = [
        ("catalog_entry", 40.0),
        ("video_counters", 40.0),
        ("catalog_list", 3.0),
        ("shared_list", 3.0),
        ("friend_list", 1.0),
    ];
    for (state, want) in planned {
        let total = first[&(state, "memory")] + first[&(state, "redis")];
        assert_eq!(total, want, "the first ranking's {state}: {first:?}");
        assert_eq!(
            third[&(state, "memory")],
            total,
            "the third ranking reads what the first did, all of it from memory: {third:?}"
        );
        assert_eq!(third[&(state, "redis")], 0.0, "{state}: {third:?}");
    }
    // Entries, counters and lists were not held before the first ranking read them.
    for state in [
        "catalog_entry",
        "video_counters",
        "catalog_list",
        "friend_list",
    ] {
        assert!(first[&(state, "redis")] > 0.0, "{state}: {first:?}");
    }
}

/// `--shared-cache-ms 0` turns off the kept counters and every kept list: two rankings of the
/// same plan read all of them from Redis (catalog entries are still cached: the catalog cache
/// does not depend on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_shared_cache_counters_and_lists_are_read_from_redis_every_time() {
    let app = world(&["--shared-cache-ms", "0"]).await;
    let before = reads(&app).await;
    for user in &readers()[..2] {
        app.feed(user, "&limit=100").await;
    }
    let both = added(&before, &reads(&app).await);
    for state in [
        "video_counters",
        "catalog_list",
        "shared_list",
        "friend_list",
    ] {
        assert_eq!(both[&(state, "memory")], 0.0, "{state}: {both:?}");
        assert!(both[&(state, "redis")] > 0.0, "{state}: {both:?}");
    }
}
