//! The Redis ingest stream (`store::redis_events`): accepted events are durable at the 200, the
//! user's own feed reflects them at once, consumers apply the shared aggregates exactly once
//! (also across a `kill -9` of a replica mid-batch and a consumer that went silent), the lag
//! is a metric, and a backlog over its limit refuses batches with a 503 and `Retry-After`. The
//! `kill -9` test also runs with the shared aggregates folded in each replica
//! (`--shared-aggregates process`), counting the survivor's checkpoint; in both, the victim
//! writes compact entries (`--event-entry-format compact`) that the survivor, writing JSON,
//! reads.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Backend, RedisServer, TestApp, catalog, free_port, ids, metric, replica_on, wait_applied,
};
use feed_server::learning::aggregates::EntryId;
use feed_server::store::redis_checkpoint;
use serde_json::{Value, json};

/// Sum of `field` over every video's counters.
fn counter_sum(conn: &mut redis::Connection, field: &str) -> f64 {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("feed:{shared}:vs:*")
        .query(conn)
        .expect("keys");
    keys.iter()
        .map(|k| {
            redis::cmd("HGET")
                .arg(k)
                .arg(field)
                .query::<Option<f64>>(conn)
                .expect("hget")
                .unwrap_or(0.0)
        })
        .sum()
}

fn get_i64(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("GET")
        .arg(key)
        .query::<Option<i64>>(conn)
        .expect("get")
        .unwrap_or(0)
}

fn xlen(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("XLEN").arg(key).query(conn).expect("xlen")
}

fn impressions(user: &str, videos: impl IntoIterator<Item = usize>) -> Vec<Value> {
    videos
        .into_iter()
        .map(|i| json!({"user_id": user, "video_id": format!("v{i}"), "type": "impression"}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_feed_reflects_events_at_once_and_consumers_apply_the_rest() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    // No consumer: only the accepting write has happened when the feed is read.
    let app = replica_on(&redis, &["--event-consumer", "false"]).await;
    app.put_videos(&catalog(12, 4)).await;
    let before = app.feed("u1", "&limit=12").await;
    assert_eq!(ids(&before).len(), 12);
    app.events(impressions("u1", 0..6)).await;

    let after = ids(&app.feed("u1", "&limit=12").await);
    for seen in 0..6 {
        assert!(
            !after.contains(&format!("v{seen}")),
            "seen v{seen} served again: {after:?}"
        );
    }
    assert_eq!(
        counter_sum(&mut conn, "impressions"),
        0.0,
        "no consumer ran"
    );
    assert_eq!(get_i64(&mut conn, "feed:{shared}:evq"), 6);
    assert_eq!(
        metric(&app.metrics().await, "feed_event_backlog", &[]),
        Some(6.0)
    );

    // A replica that consumes applies them once, with the exposure log.
    let consumer = replica_on(&redis, &[]).await;
    wait_applied(&mut conn, Duration::from_secs(10));
    assert_eq!(counter_sum(&mut conn, "impressions"), 6.0);
    assert_eq!(xlen(&mut conn, "feed:{shared}:xlog"), 6);
    // The consumer counts the events once the apply script's reply is back, which may be a
    // moment after Redis shows them applied.
    let text = consumer
        .wait_metric(
            "feed_events_applied_total",
            Duration::from_secs(5),
            "the consumer counted nothing",
            |v| v != Some(0.0),
        )
        .await;
    assert_eq!(metric(&text, "feed_events_applied_total", &[]), Some(6.0));
    let lag = metric(&text, "feed_event_apply_lag_seconds", &[]).expect("lag metric");
    assert!((0.0..60.0).contains(&lag), "lag {lag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_stays_under_a_second_while_a_consumer_keeps_up() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let app = replica_on(&redis, &[]).await;
    app.put_videos(&catalog(20, 5)).await;
    let mut max_lag: f64 = 0.0;
    for round in 0..20 {
        app.events(impressions(&format!("u{round}"), 0..20)).await;
        let lag = metric(&app.metrics().await, "feed_event_apply_lag_seconds", &[]);
        max_lag = max_lag.max(lag.expect("lag metric"));
    }
    wait_applied(&mut conn, Duration::from_secs(10));
    assert_eq!(counter_sum(&mut conn, "impressions"), 400.0);
    assert!(max_lag < 1.0, "lag reached {max_lag} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_refuses_batches_with_retry_after_and_writes_nothing() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let app = replica_on(
        &redis,
        &["--event-consumer", "false", "--event-backlog-max", "5"],
    )
    .await;
    app.put_videos(&catalog(10, 2)).await;
    app.events(impressions("u1", 0..6)).await;

    let r = app
        .client
        .post(app.url("/v1/events"))
        .json(&json!({"events": impressions("u2", 0..3)}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers()
            .get("retry-after")
            .map(reqwest::header::HeaderValue::as_bytes),
        Some(&b"1"[..])
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    // What the alerts compare: the backlog over its limit (charts' FeedEventBacklogHigh).
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "feed_event_backlog", &[]), Some(6.0));
    assert_eq!(metric(&metrics, "feed_event_backlog_limit", &[]), Some(5.0));
    assert_eq!(
        get_i64(&mut conn, "feed:{shared}:evq"),
        6,
        "the refused batch was queued"
    );
    assert_eq!(xlen(&mut conn, "feed:{shared}:ev"), 1);
    let seen: i64 = redis::cmd("EXISTS")
        .arg("feed:{u:u2}:seen")
        .query(&mut conn)
        .expect("exists");
    assert_eq!(seen, 0, "the refused batch wrote the user's state");

    // Once a consumer drained it, the same replica accepts again (it re-reads the backlog).
    let _consumer = replica_on(&redis, &[]).await;
    wait_applied(&mut conn, Duration::from_secs(10));
    app.events(impressions("u2", 0..3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_answers_503_store_unavailable_with_retry_after() {
    let app = TestApp::start(Backend::Redis).await;
    app.put_videos(&catalog(3, 1)).await;
    let redis = app.redis.as_ref().expect("redis");
    redis.freeze(true);
    let r = app
        .client
        .post(app.url("/v1/events"))
        .json(&json!({"events": impressions("u1", 0..3)}))
        .send()
        .await
        .expect("request");
    redis.freeze(false);
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let app = replica_on(&redis, &["--event-consumer", "false"]).await;
    app.put_videos(&catalog(3, 1)).await;
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [
                {"user_id": "u1", "video_id": "nope", "type": "impression"},
                {"user_id": "u1", "video_id": "v1", "type": "teleport"},
                {"user_id": "u1", "video_id": "v1", "type": "view", "ts": "2999-01-01T00:00:00Z", "watch_ms": 5}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(3), "{body}");
    let (status, _) = app.post("/v1/events", &json!({"events": "x"})).await;
    assert_eq!(status, 400);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&["feed:{shared}:ev", "feed:{shared}:evq", "feed:{u:u1}:seen"][..])
        .query(&mut conn)
        .expect("exists");
    assert_eq!(exists, 0, "a batch with nothing accepted wrote to Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_left_pending_by_a_silent_consumer_are_claimed_and_applied_once() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let app = replica_on(&redis, &["--event-consumer", "false"]).await;
    app.put_videos(&catalog(8, 2)).await;
    app.events(impressions("u1", 0..8)).await;
    app.events(impressions("u2", 0..4)).await;
    // A consumer reads both batches, then goes silent (a replica that froze).
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "feed:{shared}:ev", "apply", "0", "MKSTREAM"][..])
        .query(&mut conn)
        .expect("group");
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg(
            &[
                "GROUP",
                "apply",
                "ghost",
                "COUNT",
                "10",
                "STREAMS",
                "feed:{shared}:ev",
                ">",
            ][..],
        )
        .query(&mut conn)
        .expect("read");
    assert_ne!(read, redis::Value::Nil, "the ghost read nothing");

    let live = replica_on(&redis, &["--event-claim-idle-ms", "300"]).await;
    wait_applied(&mut conn, Duration::from_secs(10));
    assert_eq!(counter_sum(&mut conn, "impressions"), 12.0);
    assert_eq!(
        metric(
            &live.metrics().await,
            "feed_event_batches_claimed_total",
            &[]
        ),
        Some(2.0)
    );
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&["feed:{shared}:ev", "apply", "-", "+", "10"][..])
        .query(&mut conn)
        .expect("xpending");
    assert!(pending.is_empty(), "still pending: {pending:?}");
}

/// A `feed-server` process on Redis, killed on drop.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    fn start(redis: &RedisServer, flags: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_feed-server"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--redis-url",
                &redis.url(),
            ])
            .args(["--event-claim-idle-ms", "300", "--warmup-users", "0"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn feed-server");
        let replica = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Command::new("curl")
            .args([
                "-s",
                "-f",
                "-o",
                "/dev/null",
                &format!("{}/readyz", replica.base),
            ])
            .status()
            .map_or(true, |s| !s.success())
        {
            assert!(Instant::now() < deadline, "replica never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        replica
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    killed_mid_batch(&[]).await;
}

/// The same with the shared aggregates folded in each replica: the survivor's checkpoint (what
/// a new replica starts from) counts every accepted event once, the exposure log logs it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_replica_killed_mid_batch_loses_nothing_and_folds_nothing_twice() {
    killed_mid_batch(&[
        "--shared-aggregates",
        "process",
        "--checkpoint-interval-ms",
        "200",
    ])
    .await;
}

/// An entry of a later form between two batches (a first byte this version does not know, as
/// a newer version's layout would begin): it is counted in
/// `feed_event_batches_unreadable_total`, the alert's series, and skipped; the batches around
/// it are applied (with the aggregates on Redis) or folded and checkpointed (in process).
async fn a_later_form_between_batches(flags: &[&str]) {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let app = replica_on(&redis, flags).await;
    app.put_videos(&catalog(50, 5)).await;
    app.events(impressions("u1", 0..5)).await;
    let _: String = redis::cmd("XADD")
        .arg("feed:{shared}:ev")
        .arg("*")
        .arg("d")
        .arg(b"\x02a later layout".as_slice())
        .query(&mut conn)
        .expect("xadd");
    app.events(impressions("u2", 5..12)).await;

    let text = app
        .wait_metric(
            "feed_event_batches_unreadable_total",
            Duration::from_secs(10),
            "the later entry was never counted",
            |v| v != Some(0.0),
        )
        .await;
    assert_eq!(
        metric(&text, "feed_event_batches_unreadable_total", &[]),
        Some(1.0)
    );
    let applied = if flags.is_empty() {
        wait_applied(&mut conn, Duration::from_secs(10));
        counter_sum(&mut conn, "impressions")
    } else {
        checkpointed_impressions(&redis, Duration::from_secs(10)).await
    };
    assert_eq!(applied, 12.0, "the batches around it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_a_later_form_is_counted_skipped_and_the_rest_applied() {
    a_later_form_between_batches(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_an_entry_of_a_later_form_is_counted_skipped_and_the_rest_folded() {
    a_later_form_between_batches(&[
        "--shared-aggregates",
        "process",
        "--checkpoint-interval-ms",
        "200",
    ])
    .await;
}

/// Waits (at most `within`) until a checkpoint covers every entry of the ingest stream and the
/// backlog is 0; the impressions it counts over every video.
async fn checkpointed_impressions(redis: &RedisServer, within: Duration) -> f64 {
    let store = redis.store("feed:");
    let mut conn = redis.connection();
    let deadline = Instant::now() + within;
    loop {
        let newest: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg("feed:{shared}:ev")
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query(&mut conn)
            .expect("xrevrange");
        let newest: Option<EntryId> = newest.first().map(|(id, _)| id.parse().expect("id"));
        let loaded = redis_checkpoint::load(&store).await.expect("load");
        if let Some((m, state)) = loaded
            && Some(m.id) >= newest
            && get_i64(&mut conn, "feed:{shared}:evq") == 0
        {
            return (0..50)
                .map(|i| state.stats(&format!("v{i}")).impressions)
                .sum();
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of every entry within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Four clients stream batches to a replica killed with `kill -9` mid-stream, beside a
/// survivor started with the same `flags`. The victim writes compact entries, the survivor
/// JSON ones: the survivor applies (or folds) what the victim left, and a mixed deployment
/// loses nothing either.
async fn killed_mid_batch(flags: &[&str]) {
    const BATCH: usize = 25;
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let mut victim = Replica::start(
        &redis,
        &[flags, &["--event-entry-format", "compact"]].concat(),
    );
    let survivor = Replica::start(&redis, flags);
    let in_process = !flags.is_empty();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = client
        .put(format!("{}/v1/videos", victim.base))
        .json(&catalog(50, 5))
        .send()
        .await
        .expect("put videos");
    assert_eq!(r.status(), 200);

    // Four clients stream batches (one user per batch) to the victim until it dies.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (client, base, stop) = (client.clone(), victim.base.clone(), stop.clone());
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut unanswered) = (0usize, Vec::new());
            for i in 0.. {
                let user = format!("w{worker}b{i}");
                let body = json!({"events": impressions(&user, (0..BATCH).map(|k| (i + k) % 50))});
                match client
                    .post(format!("{base}/v1/events"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let b: Value = r.json().await.unwrap_or_default();
                        assert_eq!(b["accepted"], BATCH, "{b}");
                        accepted += BATCH;
                        answered.fetch_add(BATCH, Ordering::Relaxed);
                    }
                    // No answer: the batch may or may not have been written before the kill.
                    _ => {
                        unanswered.push(user);
                        break;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            (accepted, unanswered)
        }));
    }
    // Kill it while batches are being accepted and applied.
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.load(Ordering::Relaxed) < 2_000 {
        assert!(Instant::now() < deadline, "no events accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.kill9();
    stop.store(true, Ordering::Relaxed);
    let (mut accepted, mut unanswered) = (0, Vec::new());
    for t in tasks {
        let (a, u) = t.await.expect("client task");
        accepted += a;
        unanswered.extend(u);
    }
    // An unanswered batch was accepted iff its (atomic) write happened: its user's seen set.
    for user in &unanswered {
        let written: i64 = redis::cmd("EXISTS")
            .arg(format!("feed:{{u:{user}}}:seen"))
            .query(&mut conn)
            .expect("exists");
        accepted += written as usize * BATCH;
    }

    if in_process {
        // The victim may have held the checkpoint lease: the survivor takes it once expired.
        let counted = checkpointed_impressions(&redis, Duration::from_secs(30)).await;
        assert_eq!(counted, accepted as f64);
    } else {
        wait_applied(&mut conn, Duration::from_secs(20));
        assert_eq!(counter_sum(&mut conn, "impressions"), accepted as f64);
    }
    assert_eq!(xlen(&mut conn, "feed:{shared}:xlog"), accepted as i64);
    drop(survivor);
}
