//! A user's decayed affinities and taste as Redis holds them (anchored sums: one `HINCRBYFLOAT`
//! per affinity field and batch, `feed_server::store::anchored`; one `BITFIELD` per user and
//! batch for the taste, in fixed point, `feed_server::store::taste_sums`; or, with
//! `--user-sums-format log`, one append per user and batch to the user's sums log,
//! `feed_server::store::user_sums`, compacted as it grows) read back equal to the
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
use feed_server::store::user_sums::{self, UserSumsFormat};
use feed_server::store::{
    IngestMetrics, IngestSettings, MemoryStore, RedisStore, Store, UserState,
};

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

/// A store on `redis` writing users' sums in `format`, and its ingest metrics.
fn store_writing(redis: &RedisServer, format: UserSumsFormat) -> (RedisStore, IngestMetrics) {
    let metrics = IngestMetrics::unregistered();
    let settings = IngestSettings {
        user_sums_format: format,
        ..IngestSettings::default()
    };
    (store(redis).with_ingest(settings, metrics.clone()), metrics)
}

/// Compactions of sums logs by `outcome`.
fn compactions(metrics: &IngestMetrics, outcome: &str) -> u64 {
    metrics
        .user_sums_compactions
        .with_label_values(&[outcome])
        .get()
}

const FORMATS: [UserSumsFormat; 2] = [UserSumsFormat::Fields, UserSumsFormat::Log];

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

/// Every one of `users`' states on both stores, compared at each of `nows`.
async fn assert_stores_agree(
    on_redis: &RedisStore,
    embedded: &MemoryStore,
    users: &[&str],
    nows: &[f64],
) {
    for user in users {
        for &now in nows {
            let r = on_redis.user_state(user, now).await.expect("redis state");
            let e = embedded
                .user_state(user, now)
                .await
                .expect("embedded state");
            assert_same(&r, &e, now);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decayed_additions_on_redis_equal_the_embedded_stores() {
    for format in FORMATS {
        decayed_additions_equal_the_embedded_stores(format).await;
    }
}

async fn decayed_additions_equal_the_embedded_stores(format: UserSumsFormat) {
    let redis = RedisServer::start();
    let (on_redis, metrics) = store_writing(&redis, format);
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

    assert_stores_agree(
        &on_redis,
        &embedded,
        &["u", "v"],
        &[t0 + 2.0 * day, t0 + 30.0 * day],
    )
    .await;
    let r = on_redis.user_state("u", t0).await.expect("redis state");
    assert_eq!(r.affinity.tags.len(), 1_200, "every field written");
    if format == UserSumsFormat::Log {
        // Each batch of 1,201 fields (~36 KB) crossed a threshold: the log was compacted, in
        // a task of its own, while the next batches were appended, and reads the same.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while compactions(&metrics, "compacted") == 0 {
            assert!(std::time::Instant::now() < deadline, "no compaction");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(compactions(&metrics, "failed"), 0);
        let log: Vec<u8> = redis::cmd("GET")
            .arg("dec:{u:u}:sums")
            .query(&mut redis.connection())
            .expect("GET");
        let held = user_sums::parse(&log).expect("the log parses");
        let fields_and_eras = held.affinity.len();
        assert!(
            log.len() < 2 * user_sums::append_bytes(&held.affinity, &held.taste).len(),
            "{} bytes for {fields_and_eras} sums",
            log.len()
        );
        let hash_exists: bool = redis::cmd("EXISTS")
            .arg("dec:{u:u}:aff")
            .query(&mut redis.connection())
            .expect("EXISTS");
        assert!(!hash_exists, "the log form wrote an affinity hash");
        assert_stores_agree(
            &on_redis,
            &embedded,
            &["u"],
            &[t0 + 2.0 * day, t0 + 30.0 * day],
        )
        .await;
    }
}

/// A deployment moving from one form to the other and back: every batch adds up, whichever
/// form wrote it, so the flag can move either way while replicas run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_written_in_either_form_add_up() {
    let redis = RedisServer::start();
    let embedded = MemoryStore::new();
    let fields = [creator_field("c1"), tag_field("t1"), tag_field("t2")];
    let (t0, day) = (1_700_000_000.0, 86_400.0);
    let forms = [
        UserSumsFormat::Fields,
        UserSumsFormat::Log,
        UserSumsFormat::Fields,
        UserSumsFormat::Log,
    ];
    for (i, format) in forms.into_iter().enumerate() {
        let (on_redis, _) = store_writing(&redis, format);
        // Later and earlier additions, and a field only one form writes.
        let ts = t0 + [0.0, day, -day, 2.0 * day][i];
        let mut d = batch("u", &fields[..2 + i % 2], 1.0 + i as f64, ts);
        d.affinity
            .extend(batch("v", &fields[i % 3..i % 3 + 1], 0.5, ts).affinity);
        on_redis.apply(&d).await.expect("redis apply");
        embedded.apply(&d).await.expect("embedded apply");
    }
    let (on_redis, _) = store_writing(&redis, UserSumsFormat::Fields);
    assert_stores_agree(
        &on_redis,
        &embedded,
        &["u", "v"],
        &[t0 + 2.0 * day, t0 + 40.0 * day],
    )
    .await;
}

/// A compaction replaces only the bytes it read, and only while the log still begins with
/// them: appends made meanwhile are kept, and a log another replica compacted first is left
/// as it is. Either way the user's sums read the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_keeps_what_was_appended_meanwhile() {
    let redis = RedisServer::start();
    let (on_redis, _) = store_writing(&redis, UserSumsFormat::Log);
    let embedded = MemoryStore::new();
    let fields = vec![creator_field("c1"), tag_field("t1")];
    let t0 = 1_700_000_000.0;
    let key = "dec:{u:u}:sums";
    let mut conn = redis.connection();
    let get = |conn: &mut redis::Connection| -> Vec<u8> {
        redis::cmd("GET").arg(key).query(conn).expect("GET")
    };
    for i in 0..4 {
        let d = batch("u", &fields, 1.0, t0 + f64::from(i) * 60.0);
        on_redis.apply(&d).await.expect("redis apply");
        embedded.apply(&d).await.expect("embedded apply");
    }
    // A compaction reads the log here…
    let read = get(&mut conn);
    let compacted = user_sums::compact(&read, 1).expect("compacts");
    assert!(compacted.len() < read.len());
    // … another batch is appended meanwhile …
    let d = batch("u", &fields, 2.0, t0 + 600.0);
    on_redis.apply(&d).await.expect("redis apply");
    embedded.apply(&d).await.expect("embedded apply");
    let with_append = get(&mut conn);
    // … and the compaction replaces what it read, keeping the append.
    let replaced: i64 = user_sums::replace_prefix(key, &read, &compacted)
        .query(&mut conn)
        .expect("EVAL");
    assert_eq!(replaced, 1);
    let after = get(&mut conn);
    assert_eq!(after[..compacted.len()], compacted[..]);
    assert_eq!(after[compacted.len()..], with_append[read.len()..]);
    // A second compaction of the same bytes (another replica's, late) changes nothing.
    let again: i64 = user_sums::replace_prefix(key, &read, &compacted)
        .query(&mut conn)
        .expect("EVAL");
    assert_eq!(again, 0);
    assert_eq!(get(&mut conn), after);
    // Nor does one of a log that is gone.
    let gone: i64 = user_sums::replace_prefix("dec:{u:nobody}:sums", &read, &compacted)
        .query(&mut conn)
        .expect("EVAL");
    assert_eq!(gone, 0);
    // Two replicas compact the log as it is now (it begins with the first one's mark): the
    // first to replace it wins, the other finds another mark and changes nothing.
    let read = get(&mut conn);
    for (mark, replaced) in [(2, 1), (3, 0)] {
        let compacted = user_sums::compact(&read, mark).expect("compacts");
        let n: i64 = user_sums::replace_prefix(key, &read, &compacted)
            .query(&mut conn)
            .expect("EVAL");
        assert_eq!(n, replaced, "mark {mark}");
    }
    assert_eq!(get(&mut conn)[1], 2, "the first compaction's mark");
    // A log shorter than what a compaction read is not replaced, though it begins alike.
    let longer = [get(&mut conn).as_slice(), b"more"].concat();
    let n: i64 = user_sums::replace_prefix(key, &longer, &compacted)
        .query(&mut conn)
        .expect("EVAL");
    assert_eq!(n, 0);
    assert_stores_agree(
        &on_redis,
        &embedded,
        &["u"],
        &[t0 + 600.0, t0 + 86_400.0 * 10.0],
    )
    .await;
}

/// A sums log that does not parse (not written by feed-server) is a clear error on read, not a
/// state read as empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_does_not_parse_is_an_error() {
    let redis = RedisServer::start();
    let (on_redis, _) = store_writing(&redis, UserSumsFormat::Log);
    let _: () = redis::cmd("SET")
        .arg("dec:{u:u}:sums")
        .arg("not a log")
        .query(&mut redis.connection())
        .expect("SET");
    let err = on_redis
        .user_state("u", 1_700_000_000.0)
        .await
        .expect_err("a corrupt log");
    assert!(err.to_string().contains("user sums log"), "{err}");
}

/// Values written before the anchored sums (field `f` = the value as of its time `f@`) are read
/// as they were, and a new batch adds to them: no migration step, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_in_the_legacy_form_are_kept_and_added_to() {
    for format in FORMATS {
        legacy_values_are_kept_and_added_to(format).await;
    }
}

async fn legacy_values_are_kept_and_added_to(format: UserSumsFormat) {
    let redis = RedisServer::start();
    let (on_redis, _) = store_writing(&redis, format);
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
    assert_stores_agree(&on_redis, &embedded, &["u"], &[t0 + day, t0 + 10.0 * day]).await;
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
    for format in FORMATS {
        ids_keep_their_own_affinity(format).await;
    }
}

async fn ids_keep_their_own_affinity(format: UserSumsFormat) {
    let redis = RedisServer::start();
    let (on_redis, _) = store_writing(&redis, format);
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
