//! A user's decayed affinities and taste as Redis holds them (anchored sums: one `HINCRBYFLOAT`
//! per affinity field and batch, `feed_server::store::anchored`; one `BITFIELD` per user and
//! batch for the taste, in fixed point, `feed_server::store::taste_sums`) read back equal to the
//! embedded store's
//! [`Decayed::add`](feed_server::learning::Decayed::add): new fields, a later addition (the old
//! value decays), an earlier one (the addition decays), many fields in one batch, and values
//! written in the legacy form (value and time, before the anchored sums) kept and added to.
//! And the consumer's last-activity writes, chunked.

use crate::common;

use std::time::Duration;

use common::RedisServer;
use feed_server::learning::{
    AFFINITY_HALF_LIFE_SECS as HL, Decayed, DecayedAdd, Deltas, TasteAdd, creator_field, tag_field,
};
use feed_server::store::redis_conn::RedisTarget;
use feed_server::store::redis_store::RedisSettings;
use feed_server::store::{MemoryStore, RedisStore, Store, UserState};

/// One batch of `user`: `weight` on every field at `ts`, and a 16-dimension taste addition.
fn batch(user: &str, fields: &[String], weight: f64, ts: f64) -> Deltas {
    let add = |field: String, weight: f64| DecayedAdd { field, weight, ts };
    let mut d = Deltas::default();
    d.affinity.insert(
        user.to_owned(),
        fields.iter().map(|f| add(f.clone(), weight)).collect(),
    );
    d.taste.insert(
        user.to_owned(),
        (0..16)
            .map(|dim| TasteAdd {
                dim,
                weight: weight * (dim + 1) as f64 / 16.0,
                ts,
            })
            .collect(),
    );
    d
}

/// A Redis store on `redis` without the shared read cache.
fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::connect(&RedisSettings {
        target: RedisTarget::Single(redis.url().into()),
        prefix: "dec:".into(),
        timeout: Duration::from_secs(5),
        shared_cache: Duration::ZERO,
    })
    .expect("connect")
}

/// Both compared as a ranking at `now` reads them (the stored forms differ: the embedded store
/// keeps the value as of its last update, Redis an anchored sum), within `relative`.
fn assert_close(what: &str, got: Decayed, want: Decayed, now: f64, relative: f64) {
    let (got, want) = (got.value_at(now, HL), want.value_at(now, HL));
    let tolerance = relative * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: Redis {got}, embedded {want}"
    );
}

fn assert_same(redis: &UserState, embedded: &UserState, now: f64) {
    let (r, e) = (&redis.affinity, &embedded.affinity);
    assert_eq!(r.tags.len(), e.tags.len(), "tags written");
    assert_eq!(r.creators.len(), e.creators.len(), "creators written");
    for (name, r, e) in [
        ("tag", &r.tags, &e.tags),
        ("creator", &r.creators, &e.creators),
    ] {
        for (key, want) in e {
            let got = r.get(key).copied().unwrap_or_default();
            assert_close(&format!("{name} {key}"), got, *want, now, 1e-12);
        }
    }
    assert_eq!(
        redis.taste.0.len(),
        embedded.taste.0.len(),
        "taste dimensions"
    );
    // The taste's fixed point rounds each increment by at most 2^-31 of its weight.
    for (i, (got, want)) in redis.taste.0.iter().zip(&embedded.taste.0).enumerate() {
        assert_close(&format!("taste dimension {i}"), *got, *want, now, 1e-8);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decayed_additions_on_redis_equal_the_embedded_stores() {
    let redis = RedisServer::start();
    let on_redis = store(&redis);
    let embedded = MemoryStore::new();
    // 1,200 tags and a creator.
    let mut fields: Vec<String> = (0..1_200).map(|i| tag_field(&format!("tag{i}"))).collect();
    fields.push(creator_field("c1"));
    let (t0, day) = (1_700_000_000.0, 86_400.0);
    // New fields, then a day later, then between the two (earlier than the last update).
    for (weight, ts) in [(1.0, t0), (2.0, t0 + day), (-0.5, t0 + 0.5 * day)] {
        let d = batch("u", &fields, weight, ts);
        on_redis.apply(&d).await.expect("redis apply");
        embedded.apply(&d).await.expect("embedded apply");
    }
    // A second user in the same batch as a third addition of the first.
    let mut d = batch("u", &fields[..3], 3.0, t0 + 2.0 * day);
    d.affinity
        .extend(batch("v", &fields[..2], 1.0, t0).affinity);
    on_redis.apply(&d).await.expect("redis apply");
    embedded.apply(&d).await.expect("embedded apply");

    for user in ["u", "v"] {
        for now in [t0 + 2.0 * day, t0 + 30.0 * day] {
            let r = on_redis.user_state(user, now).await.expect("redis state");
            let e = embedded
                .user_state(user, now)
                .await
                .expect("embedded state");
            assert_same(&r, &e, now);
        }
    }
    let r = on_redis.user_state("u", t0).await.expect("redis state");
    assert_eq!(r.affinity.tags.len(), 1_200, "every field written");
}

/// Values written before the anchored sums (field `f` = the value as of its time `f@`) are read
/// as they were, and a new batch adds to them: no migration step, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_in_the_legacy_form_are_kept_and_added_to() {
    let redis = RedisServer::start();
    let on_redis = store(&redis);
    let embedded = MemoryStore::new();
    let fields = vec![creator_field("c1"), tag_field("t1"), tag_field("t2")];
    let (t0, day) = (1_700_000_000.0, 86_400.0);

    // What the read-modify-write script left after one batch of weight 4 at t0.
    let old = batch("u", &fields, 4.0, t0);
    embedded.apply(&old).await.expect("embedded apply");
    let mut conn = redis.connection();
    let taste: Vec<DecayedAdd> = old.taste["u"]
        .iter()
        .map(|a| DecayedAdd {
            field: a.dim.to_string(),
            weight: a.weight,
            ts: a.ts,
        })
        .collect();
    for (hash, adds) in [("aff", &old.affinity["u"]), ("taste", &taste)] {
        let mut hset = redis::cmd("HSET");
        hset.arg(format!("dec:{{u:u}}:{hash}"));
        for a in adds {
            hset.arg(&a.field).arg(a.weight);
            hset.arg(format!("{}@", a.field)).arg(a.ts);
        }
        let _: i64 = hset.query(&mut conn).expect("legacy HSET");
    }
    let before = on_redis
        .user_state("u", t0 + day)
        .await
        .expect("redis state");
    let want = embedded
        .user_state("u", t0 + day)
        .await
        .expect("embedded state");
    assert_same(&before, &want, t0 + day);

    // A later batch on one field and the taste vector, an earlier one on another field.
    let later = batch("u", &fields[..1], 1.0, t0 + day);
    let earlier = batch("u", &fields[1..2], -0.5, t0 - day);
    for d in [&later, &earlier] {
        on_redis.apply(d).await.expect("redis apply");
        embedded.apply(d).await.expect("embedded apply");
    }
    for now in [t0 + day, t0 + 10.0 * day] {
        let after = on_redis.user_state("u", now).await.expect("redis state");
        let want = embedded.user_state("u", now).await.expect("embedded state");
        assert_same(&after, &want, now);
    }
    let after = on_redis
        .user_state("u", t0 + day)
        .await
        .expect("redis state");
    // The new additions moved the values the legacy form held.
    let c1 = |s: &UserState| s.affinity.creators["c1"].value_at(t0 + day, HL);
    assert!((c1(&after) - c1(&before) - 1.0).abs() < 1e-9, "creator c1");
}

/// Ids may end in `@` or hold `~` and `:`: every creator and tag keeps its own affinity. (The
/// value-and-time form named a field's time `f@`, so creator `bob@`'s value overwrote creator
/// `bob`'s time and was read as a time itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_look_like_field_syntax_keep_their_own_affinity() {
    let redis = RedisServer::start();
    let on_redis = store(&redis);
    let embedded = MemoryStore::new();
    let fields = [
        creator_field("bob"),
        creator_field("bob@"),
        creator_field("~46:c:bob"),
        tag_field("t@"),
    ];
    let t0 = 1_700_000_000.0;
    for (i, f) in fields.iter().enumerate() {
        let d = batch("u", std::slice::from_ref(f), 1.0 + i as f64, t0);
        on_redis.apply(&d).await.expect("redis apply");
        embedded.apply(&d).await.expect("embedded apply");
    }
    let r = on_redis.user_state("u", t0).await.expect("redis state");
    let e = embedded.user_state("u", t0).await.expect("embedded state");
    assert_same(&r, &e, t0);
    assert_eq!(r.affinity.creators.len(), 3, "{:?}", r.affinity.creators);
    let bob_at = r.affinity.creators["bob@"].value_at(t0, HL);
    assert!((bob_at - 2.0).abs() < 1e-9, "creator bob@: {bob_at}");
}

/// The consumer records last activity with one `ZADD GT` per 1,000 users: every user of a large
/// apply is recorded, and an older time never moves a user back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_active_user_of_a_large_apply_is_recorded_with_the_latest_time() {
    let redis = RedisServer::start();
    let store = std::sync::Arc::new(store(&redis));
    let mut d = Deltas::default();
    for i in 0..2_500 {
        d.active.insert(format!("u{i}"), 1_000.0 + f64::from(i));
    }
    store.apply(&d).await.expect("apply");
    let mut later = Deltas::default();
    later.active.insert("u2499".into(), 1.0);
    later.active.insert("new".into(), 5_000.0);
    store.apply(&later).await.expect("apply");

    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(feed_server::store::run_event_consumer(
        store.clone(),
        stop.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.active_users(3_000).await.expect("active").len() < 2_501 {
        assert!(
            std::time::Instant::now() < deadline,
            "active users not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let newest = store.active_users(3).await.expect("active");
    assert_eq!(newest, ["new", "u2499", "u2498"]);
}
