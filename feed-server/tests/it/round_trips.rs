//! A feed request makes the same small number of store round trips however many candidates it
//! scores (every store call is one pipelined Redis round trip).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::RedisServer;
use feed_profile::RankingProfile;
use feed_server::learning::Deltas;
use feed_server::model::{Follows, UserProfile, Video};
use feed_server::ranking::{Detail, rank_feed};
use feed_server::store::redis_conn::RedisTarget;
use feed_server::store::redis_store::RedisSettings;
use feed_server::store::{
    CacheEntry, CandidateData, CandidateLists, CandidateQuery, CandidateRef, RedisStore, SeenCount,
    SeenOf, SeenRead, StateRead, Store, StoreError, UserState, UserVersion,
};

/// Counts calls to the wrapped store.
struct Counting {
    inner: RedisStore,
    calls: AtomicUsize,
}

impl Counting {
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.hit();
        self.inner.ping().await
    }
    async fn put_videos(&self, v: &[Video]) -> Result<(), StoreError> {
        self.inner.put_videos(v).await
    }
    async fn delete_video(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_video(id).await
    }
    async fn get_videos(&self, ids: &[String]) -> Result<Vec<Option<Video>>, StoreError> {
        self.hit();
        self.inner.get_videos(ids).await
    }
    async fn apply(&self, d: &Deltas) -> Result<(), StoreError> {
        self.inner.apply(d).await
    }
    async fn set_follows(&self, u: &str, f: &Follows) -> Result<(), StoreError> {
        self.inner.set_follows(u, f).await
    }
    async fn set_profile(&self, u: &str, p: &UserProfile) -> Result<(), StoreError> {
        self.inner.set_profile(u, p).await
    }
    async fn user_state(&self, u: &str, now: f64) -> Result<UserState, StoreError> {
        self.hit();
        self.inner.user_state(u, now).await
    }
    async fn candidate_lists(&self, q: &CandidateQuery) -> Result<CandidateLists, StoreError> {
        self.hit();
        self.inner.candidate_lists(q).await
    }
    async fn candidates(
        &self,
        u: &str,
        seen: &SeenRead,
        ids: &[CandidateRef<'_>],
    ) -> Result<Vec<Option<CandidateData>>, StoreError> {
        self.hit();
        self.inner.candidates(u, seen, ids).await
    }
    async fn active_users(&self, n: usize) -> Result<Vec<String>, StoreError> {
        self.hit();
        self.inner.active_users(n).await
    }
    async fn cache_get_for_user(
        &self,
        k: &str,
        u: &str,
    ) -> Result<(Option<Vec<u8>>, UserVersion), StoreError> {
        self.hit();
        self.inner.cache_get_for_user(k, u).await
    }
    async fn cache_get_with_user_state(
        &self,
        k: &str,
        u: &str,
        now: f64,
    ) -> Result<(Option<Vec<u8>>, StateRead), StoreError> {
        self.hit();
        self.inner.cache_get_with_user_state(k, u, now).await
    }
    async fn cache_get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.hit();
        self.inner.cache_get(k).await
    }
    async fn cache_put(&self, e: &[CacheEntry]) -> Result<(), StoreError> {
        self.hit();
        self.inner.cache_put(e).await
    }
    async fn read_log(
        &self,
        max: usize,
    ) -> Result<Vec<feed_server::exposure::LoggedEvent>, StoreError> {
        self.hit();
        self.inner.read_log(max).await
    }
}

async fn round_trips_for(catalog_size: usize, redis: &RedisServer) -> (usize, usize) {
    let settings = RedisSettings {
        target: RedisTarget::Single(redis.url().into()),
        prefix: format!("rt{catalog_size}:"),
        timeout: Duration::from_secs(2),
        shared_cache: Duration::from_secs(1),
    };
    let store = Arc::new(Counting {
        inner: RedisStore::connect(&settings).expect("connect"),
        calls: AtomicUsize::new(0),
    });
    let videos: Vec<Video> = common::catalog(catalog_size, 40)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    for chunk in videos.chunks(1000) {
        store.put_videos(chunk).await.expect("put");
    }
    let follows = Follows {
        creators: (0..20).map(|c| format!("c{c}")).collect(),
        friends: vec![],
    };
    store.set_follows("u", &follows).await.expect("follows");
    store.calls.store(0, Ordering::SeqCst);
    let mut profile = RankingProfile::default();
    profile.candidates.max_candidates = 5_000;
    let now = chrono::Utc::now().timestamp() as f64;
    let ranked = rank_feed(store.as_ref(), &profile, "u", now, 1_000, Detail::Plain)
        .await
        .expect("rank");
    (store.calls.load(Ordering::SeqCst), ranked.items.len())
}

#[tokio::test]
async fn round_trips_do_not_grow_with_candidates() {
    let redis = RedisServer::start();
    let (small_calls, small_items) = round_trips_for(60, &redis).await;
    let (large_calls, large_items) = round_trips_for(3_000, &redis).await;
    assert!(
        large_items >= 5 * small_items,
        "the large catalog scores many more candidates: {small_items} vs {large_items}"
    );
    assert_eq!(small_calls, 3, "user state, source lists, candidate data");
    assert_eq!(
        large_calls, small_calls,
        "round trips independent of the candidate count"
    );
}

/// A first page that is in neither cache tier costs four round trips: the store tier's head
/// read together with the user's state, the source lists, the candidates' data, the new head's
/// write; the next one none, and another replica's one (the stored head, of whose state only
/// the version is decoded).
#[tokio::test]
async fn an_uncached_first_page_reads_the_users_state_with_the_head() {
    let redis = RedisServer::start();
    let store = Arc::new(Counting {
        inner: replica(&redis, "hs:", Duration::from_secs(1)),
        calls: AtomicUsize::new(0),
    });
    let videos: Vec<Video> = common::catalog(60, 6)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    store.put_videos(&videos).await.expect("put");
    let follows = Follows {
        creators: vec!["c1".into(), "c2".into()],
        friends: vec!["f1".into()],
    };
    store.set_follows("u", &follows).await.expect("follows");
    let profile = UserProfile {
        language: "en".into(),
        region: String::new(),
    };
    store.set_profile("u", &profile).await.expect("profile");

    // The merged read answers what the two calls it replaces answer.
    let now = chrono::Utc::now().timestamp() as f64;
    let (blob, state) = store
        .inner
        .cache_get_with_user_state("head:u", "u", now)
        .await
        .expect("head and state");
    assert_eq!(blob, None);
    let state = state.decode().expect("state decodes");
    assert_eq!(
        state,
        store.inner.user_state("u", now).await.expect("state")
    );
    assert_eq!(state.profile, profile);
    assert_eq!(state.friends, ["f1"]);

    let app = app_on(store.clone());
    let (first, calls) = first_page_counted(&app, &store).await;
    assert!(!first.items.is_empty());
    assert_eq!(first.user_version, state.version);
    assert_eq!(
        calls, 4,
        "head and user state, source lists, candidates, the head's write"
    );
    let (again, calls) = first_page_counted(&app, &store).await;
    assert_eq!(again.id, first.id);
    assert_eq!(calls, 0, "served in process");

    // Another replica (nothing in process) serves the head from the store tier in one round
    // trip, and decodes no more of the user's state than the version: a friend id that is not
    // UTF-8, written behind the store's back, does not stop the page (it would stop a ranking).
    let _: i64 = redis::cmd("SADD")
        .arg("hs:{u:u}:fr")
        .arg(b"\xff\xfe".as_slice())
        .query(&mut redis.connection())
        .expect("sadd");
    assert!(
        store.inner.user_state("u", now).await.is_err(),
        "the state no longer decodes"
    );
    let (stored, calls) = first_page_counted(&app_on(store.clone()), &store).await;
    assert_eq!(stored.id, first.id);
    assert_eq!(calls, 1, "head and version");
}

/// User `u`'s first page from `app`, and the store calls it made.
async fn first_page_counted(
    app: &feed_server::state::AppState,
    store: &Counting,
) -> (Arc<feed_server::cache::Snapshot>, usize) {
    store.calls.store(0, Ordering::SeqCst);
    let page = feed_server::feed::head(app, "u", 20, false, app.clock.now())
        .await
        .expect("first page");
    (page, store.calls.load(Ordering::SeqCst))
}

/// A feed-server's state over `store`, with an empty in-process tier.
fn app_on(store: Arc<Counting>) -> feed_server::state::AppState {
    use feed_server::cache::FeedCache;
    use feed_server::experiments::LiveProfiles;
    use feed_server::metrics::Metrics;
    use feed_server::shed::ShedLimits;
    use feed_server::state::{AppState, ServiceSettings};

    let metrics = Arc::new(Metrics::new("r", "stable").expect("metrics"));
    let cache = FeedCache::new(
        store.clone(),
        metrics.clone(),
        10_000,
        100,
        Duration::from_secs(60),
    );
    let profiles = Arc::new(LiveProfiles::new(
        feed_profile::Experiment::default(),
        metrics.clone(),
    ));
    let settings = ServiceSettings {
        feed_depth: 100,
        ready_timeout: Duration::from_secs(1),
        shed: ShedLimits::new(Some(1), Some(1), Duration::from_secs(1)),
        tune_max_events: 1,
    };
    AppState::new(store, cache, profiles, metrics, settings)
}

fn replica(redis: &RedisServer, prefix: &str, shared_cache: Duration) -> RedisStore {
    RedisStore::connect(&RedisSettings {
        target: RedisTarget::Single(redis.url().into()),
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(2),
        shared_cache,
    })
    .expect("connect")
}

async fn views(store: &RedisStore, id: &str) -> f64 {
    let data = store
        .candidates("u", &SeenRead::default(), &[id.into()])
        .await
        .expect("candidates");
    data[0].as_ref().expect("video exists").stats.views
}

/// Accepts one play on `store` and waits until a consumer applied it to the counters.
async fn play(store: &RedisStore, redis: &RedisServer, id: &str) {
    let mut d = Deltas::default();
    d.video_stats.insert(
        id.to_owned(),
        feed_server::learning::VideoStats {
            views: 1.0,
            ..Default::default()
        },
    );
    store.apply(&d).await.expect("apply");
    let mut conn = redis.connection();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while redis::cmd("XLEN")
        .arg("sc:{shared}:ev")
        .query::<i64>(&mut conn)
        .expect("xlen")
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "play not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Adds `n` views to `id`'s counters behind the counter change feed's back (no entry), as no
/// feed-server ever does: what a replica then answers shows whether it read Redis.
fn add_views_unannounced(redis: &RedisServer, id: &str, n: f64) {
    let mut conn = redis.connection();
    let _: f64 = redis::cmd("HINCRBYFLOAT")
        .arg(format!("sc:{{shared}}:vs:{id}"))
        .arg("views")
        .arg(n)
        .query(&mut conn)
        .expect("hincrbyfloat");
}

/// Reads `id`'s views from `store` until they are `want`, at most `bound`.
async fn views_within(store: &RedisStore, id: &str, want: f64, bound: Duration) {
    let started = std::time::Instant::now();
    loop {
        let got = views(store, id).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < bound,
            "{id}: {got} views, not {want}, after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_counters_follow_the_counter_change_feed() {
    let redis = RedisServer::start();
    let on = Duration::from_millis(600);
    let a = Arc::new(replica(&redis, "sc:", on));
    let b = replica(&redis, "sc:", on);
    let uncached = Arc::new(replica(&redis, "sc:", Duration::ZERO));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(feed_server::store::run_event_consumer(
        uncached.clone(),
        stop.clone(),
    ));
    let following = stop.child_token();
    tokio::spawn(feed_server::store::follow_counter_changes(
        a.clone(),
        following.clone(),
    ));
    let videos: Vec<Video> = common::catalog(2, 1)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    a.put_videos(&videos).await.expect("put");
    let (x, y) = (&*videos[0].id, &*videos[1].id);
    tokio::time::sleep(Duration::from_millis(200)).await; // the follower's first polls

    // A keeps what it read: a write no entry announces is not seen ...
    assert_eq!(views(&a, x).await, 0.0);
    assert_eq!(views(&a, y).await, 0.0);
    add_views_unannounced(&redis, x, 5.0);
    add_views_unannounced(&redis, y, 5.0);
    assert_eq!(views(&a, x).await, 0.0, "kept in A's process");
    assert_eq!(views(&uncached, x).await, 5.0);
    // ... a play applied through the ingest stream is: B accepts it, a consumer applies it and
    // announces it, A drops what it kept of that video (and only of it).
    play(&b, &redis, x).await;
    views_within(&a, x, 6.0, Duration::from_secs(1)).await;
    assert_eq!(views(&a, y).await, 0.0, "y did not change through the feed");

    // A gap in the feed (its entries gone before A read them): A drops everything it kept.
    let mut conn = redis.connection();
    let _: i64 = redis::cmd("DEL")
        .arg("sc:{shared}:vsc")
        .query(&mut conn)
        .expect("del");
    tokio::time::sleep(Duration::from_millis(10)).await;
    play(&b, &redis, x).await;
    views_within(&a, y, 5.0, Duration::from_secs(1)).await;
    views_within(&a, x, 7.0, Duration::from_secs(1)).await;

    // A follower that stops: what A kept is unused once the feed was not read for 1 s.
    following.cancel();
    assert_eq!(views(&a, y).await, 5.0);
    add_views_unannounced(&redis, y, 1.0);
    tokio::time::sleep(feed_server::store::COUNTERS_FOLLOWED_WITHIN).await;
    assert_eq!(views(&a, y).await, 6.0, "read from Redis, not kept");
    stop.cancel();
}

/// With the kept counters off (`--shared-cache-ms 0`) nothing follows the feed: the follower
/// returns at once instead of polling Redis 50 times a second for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_counters_kept_no_feed_followed() {
    let redis = RedisServer::start();
    let off = Arc::new(replica(&redis, "nf:", Duration::ZERO));
    let on = Arc::new(replica(&redis, "nf:", Duration::from_millis(600)));
    let stop = tokio_util::sync::CancellationToken::new();
    let within = Duration::from_secs(2);
    let follow = |store| feed_server::store::follow_counter_changes(store, stop.clone());
    assert!(
        tokio::time::timeout(within, follow(off)).await.is_ok(),
        "a replica keeping no counters still follows the feed"
    );
    assert!(
        tokio::time::timeout(within, follow(on)).await.is_err(),
        "a replica keeping counters stopped following the feed"
    );
}

async fn fresh_ids(store: &RedisStore) -> Vec<String> {
    let q = CandidateQuery {
        fresh: vec!["*".to_owned()],
        per_fresh: 10,
        ..Default::default()
    };
    let lists = store.candidate_lists(&q).await.expect("lists");
    lists.fresh.iter().map(|(id, _)| id.to_owned()).collect()
}

/// The long-tail list (least-exposed videos first): a list events move, kept for the shared
/// cache's bound.
async fn long_tail_ids(store: &RedisStore) -> Vec<String> {
    let q = CandidateQuery {
        long_tail: (0, 10),
        ..Default::default()
    };
    let lists = store.candidate_lists(&q).await.expect("lists");
    lists
        .long_tail
        .iter()
        .map(|(id, _)| id.to_owned())
        .collect()
}

#[tokio::test]
async fn shared_lists_follow_the_same_bound_and_own_uploads_show_at_once() {
    let redis = RedisServer::start();
    let ttl = Duration::from_millis(600);
    let a = replica(&redis, "sl:", ttl);
    let b = replica(&redis, "sl:", ttl);
    let mut videos: Vec<Video> = common::catalog(3, 1)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    let (third, second) = (videos.pop().expect("3"), videos.pop().expect("2"));
    a.put_videos(&videos).await.expect("put");
    assert_eq!(long_tail_ids(&a).await, [videos[0].id.to_string()]);
    // Another replica's upload reaches A's long-tail list within the bound ...
    b.put_videos(std::slice::from_ref(&second))
        .await
        .expect("put");
    assert!(
        !long_tail_ids(&a).await.contains(&second.id.to_string()),
        "served from A's cache"
    );
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(long_tail_ids(&a).await.contains(&second.id.to_string()));
    // ... and A's own upload at once.
    a.put_videos(std::slice::from_ref(&third))
        .await
        .expect("put");
    assert!(long_tail_ids(&a).await.contains(&third.id.to_string()));
}

/// Adds `id` to the fresh list of every language behind the catalog's back (the version does not
/// move), as no feed-server ever does: whether a replica then lists it shows whether it read
/// Redis.
fn list_fresh_unannounced(redis: &RedisServer, prefix: &str, id: &str) {
    let mut conn = redis.connection();
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{prefix}{{shared}}:fresh:*"))
        .arg(i64::MAX / 2)
        .arg(id)
        .query(&mut conn)
        .expect("zadd");
}

/// Reads A's fresh list until it names `id`, at most `bound`.
async fn fresh_within(store: &RedisStore, id: &str, bound: Duration) {
    let started = std::time::Instant::now();
    while !fresh_ids(store).await.iter().any(|f| f == id) {
        assert!(
            started.elapsed() < bound,
            "{id} not in the fresh list after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_lists_are_kept_while_the_catalog_version_holds() {
    let redis = RedisServer::start();
    // A shared-cache bound far above the time the test takes: what A lists late comes from the
    // catalog version, not from the bound.
    let ttl = Duration::from_secs(30);
    let a = Arc::new(replica(&redis, "cl:", ttl));
    let b = replica(&redis, "cl:", ttl);
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(feed_server::store::follow_counter_changes(
        a.clone(),
        stop.clone(),
    ));
    let mut videos: Vec<Video> = common::catalog(4, 1)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    let (own, other) = (videos.pop().expect("4"), videos.pop().expect("3"));
    a.put_videos(&videos).await.expect("put");
    let first = videos[0].id.clone();
    fresh_within(&a, &first, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // polls see the version

    // Kept: a list change that no catalog write announces is not seen ...
    let listed = fresh_ids(&a).await;
    list_fresh_unannounced(&redis, "cl:", "ghost");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fresh_ids(&a).await, listed, "kept in A's process");
    // ... another replica's upload moves the version: A lists it within a poll or so (the
    // documented bound is one poll plus its round trip; 1 s leaves room for a loaded host).
    b.put_videos(std::slice::from_ref(&other))
        .await
        .expect("put");
    fresh_within(&a, &other.id, Duration::from_secs(1)).await;
    assert!(fresh_ids(&a).await.iter().any(|f| f == "ghost"));
    // A's own upload shows at once.
    a.put_videos(std::slice::from_ref(&own)).await.expect("put");
    assert!(fresh_ids(&a).await.contains(&own.id.to_string()));

    // A follower that stops: kept lists are unused once the version was not read for 1 s.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = fresh_ids(&a).await;
    list_fresh_unannounced(&redis, "cl:", "ghost-2");
    assert_eq!(fresh_ids(&a).await, listed, "kept under the new version");
    stop.cancel();
    tokio::time::sleep(feed_server::store::COUNTERS_FOLLOWED_WITHIN).await;
    assert!(
        fresh_ids(&a).await.iter().any(|f| f == "ghost-2"),
        "read from Redis, not kept"
    );
}

/// Calls of `command` Redis has served since it started (`INFO commandstats`).
fn command_calls(redis: &RedisServer, command: &str) -> u64 {
    let mut conn = redis.connection();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .expect("info");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("calls"))
}

/// The seen-set reads Redis has answered so far (`ZRANGE`, `ZMSCORE`).
const SEEN_READS: [&str; 2] = ["zrange", "zmscore"];

fn seen_read_calls(redis: &RedisServer) -> [u64; 2] {
    SEEN_READS.map(|c| command_calls(redis, c))
}

/// The seen-set reads Redis answered since `before` ([`seen_read_calls`]).
fn seen_reads_since(redis: &RedisServer, before: [u64; 2]) -> Vec<&'static str> {
    let after = seen_read_calls(redis);
    SEEN_READS
        .into_iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| a > b)
        .map(|(c, _)| c)
        .collect()
}

/// A ranking's seen flags are exact whatever the size of the user's seen set, and the check
/// costs what that size calls for: nothing read for a user who has seen nothing, the memory
/// read whole when it is smaller than the candidate list (with the source lists, when a ranking
/// reads them: the candidate read then asks Redis nothing about it), each candidate asked about
/// otherwise.
#[tokio::test]
async fn seen_flags_are_exact_and_read_the_cheaper_way_for_the_memorys_size() {
    let redis = RedisServer::start();
    let store = replica(&redis, "sn:", Duration::ZERO);
    let videos: Vec<Video> = common::catalog(40, 4)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    store.put_videos(&videos).await.expect("put");
    let candidates: Vec<CandidateRef<'_>> = videos[..10].iter().map(|v| (&*v.id).into()).collect();
    let now = chrono::Utc::now().timestamp() as f64;
    // (user, videos seen, the read the check should use)
    let cases = [
        ("none", vec![], None), // an empty entry: nothing to write, not an error
        ("few", vec![1, 4, 7, 30], Some("zrange")),
        (
            "many",
            (0..40).filter(|i| i % 3 == 0).collect(),
            Some("zmscore"),
        ),
    ];
    for (user, seen, read) in cases {
        let mut d = Deltas::default();
        d.seen.insert(
            user.to_owned(),
            seen.iter()
                .map(|&i: &usize| (videos[i].id.to_string(), now))
                .collect(),
        );
        store.apply(&d).await.expect("apply");
        let state = store.user_state(user, now).await.expect("state");
        assert_eq!(state.seen, SeenCount::Known(seen.len()), "{user}");
        let want: Vec<bool> = (0..candidates.len()).map(|i| seen.contains(&i)).collect();
        let flags = |data: Vec<Option<CandidateData>>| -> Vec<bool> {
            data.into_iter()
                .map(|c| c.expect("video exists").seen)
                .collect()
        };
        let read: Vec<&str> = read.into_iter().collect();

        // Checked with the candidates, from the size read with the state.
        let before = seen_read_calls(&redis);
        let got = store
            .candidates(user, &SeenRead::Pending(state.seen), &candidates)
            .await
            .expect("candidates");
        assert_eq!(seen_reads_since(&redis, before), read, "{user}");
        assert_eq!(flags(got), want, "{user}");

        // As a ranking does: lists that may nominate as many videos as there are candidates,
        // then the candidates. A small set comes with the lists; the candidate read asks nothing.
        let q = CandidateQuery {
            fresh: vec!["*".to_owned()],
            per_fresh: candidates.len(),
            seen: SeenOf {
                user: user.to_owned(),
                count: state.seen,
            },
            ..Default::default()
        };
        let before = seen_read_calls(&redis);
        let lists = store.candidate_lists(&q).await.expect("lists");
        let with_lists = seen_reads_since(&redis, before);
        let before = seen_read_calls(&redis);
        let got = store
            .candidates(user, &lists.seen, &candidates)
            .await
            .expect("candidates");
        let with_candidates = seen_reads_since(&redis, before);
        assert_eq!(flags(got), want, "{user}");
        let whole = matches!(lists.seen, SeenRead::Whole(_));
        assert_eq!(whole, read == ["zrange"], "{user}: {:?}", lists.seen);
        let (expect_lists, expect_candidates): (&[&str], &[&str]) =
            if whole { (&read, &[]) } else { (&[], &read) };
        assert_eq!(
            (with_lists.as_slice(), with_candidates.as_slice()),
            (expect_lists, expect_candidates),
            "{user}"
        );

        // A size not read with the state asks about each candidate, with the same answer.
        let unknown = store
            .candidates(user, &SeenRead::Pending(SeenCount::Unknown), &candidates)
            .await
            .expect("candidates");
        assert_eq!(flags(unknown), want, "{user}");
    }
}
