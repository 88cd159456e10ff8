//! `POST /v1/admin/tune` and the exposure log over HTTP, on both stores: a tune learns from the
//! log what finishes, answers a profile `--profile` reads, never changes the serving profile,
//! refuses bad input with clear codes, and a full log drops its oldest events and counts them.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use feed_profile::Experiment;
use serde_json::{Value, json};

const VIDEOS: usize = 40;

/// Even videos are 8 s clips most people finish, odd ones 4-minute videos few finish.
fn world() -> Vec<Value> {
    (0..VIDEOS)
        .map(|i| {
            let mut v = video(&format!("v{i}"), &format!("c{}", i % 5), &["t"], 24 * 30);
            v["duration_ms"] = json!(if i.is_multiple_of(2) { 8_000 } else { 240_000 });
            v
        })
        .collect()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// 60 users × 3 days × 4 impressions from `base` on, with plays, completes and likes.
fn history(base: DateTime<Utc>, with_outcomes: bool) -> Vec<Value> {
    let mut events = Vec::new();
    for day in 0..3i64 {
        for u in 0..60i64 {
            for k in 0..4i64 {
                let i = ((u * 7 + day * 13 + k * 3) % VIDEOS as i64) as usize;
                let at = base + Duration::days(day) + Duration::seconds(u * 60 + k * 5);
                let (user, vid) = (format!("u{u}"), format!("v{i}"));
                events.push(
                    json!({"user_id": user, "video_id": vid, "type": "impression", "ts": ts(at)}),
                );
                if !with_outcomes {
                    continue;
                }
                let short = i.is_multiple_of(2);
                let finished = if short {
                    (u + k + day) % 3 != 0
                } else {
                    (u + k) % 7 == 0
                };
                let duration = if short { 8_000 } else { 240_000 };
                let watched = if finished { duration } else { duration / 5 };
                let later = ts(at + Duration::seconds(1));
                events.push(json!({"user_id": user, "video_id": vid, "type": "view", "watch_ms": watched, "ts": later}));
                if finished {
                    events.push(json!({"user_id": user, "video_id": vid, "type": "complete", "watch_ms": watched, "ts": later}));
                    if (u + k) % 4 == 0 {
                        events.push(
                            json!({"user_id": user, "video_id": vid, "type": "like", "ts": later}),
                        );
                    }
                }
            }
        }
    }
    events
}

async fn send(app: &TestApp, events: Vec<Value>) {
    for chunk in events.chunks(1000) {
        app.events(chunk.to_vec()).await;
    }
}

fn window(since: DateTime<Utc>, until: DateTime<Utc>, objective: Value) -> Value {
    json!({"since": ts(since), "until": ts(until), "objective": objective})
}

/// The harness's 300 ms store timeout is for failing fast on a dead Redis; a debug build on a
/// loaded machine reads a page of the log slower than that.
const PATIENT: [&str; 2] = ["--store-timeout-ms", "5000"];

/// The harness's options with [`PATIENT`].
fn patient() -> Options {
    Options {
        flags: PATIENT.map(String::from).to_vec(),
        ..Options::default()
    }
}

async fn a_tune_learns_what_finishes_and_answers_a_profile_that_loads(backend: Backend) {
    let app = TestApp::start_with(backend, patient()).await;
    app.put_videos(&world()).await;
    let base = Utc::now() - Duration::days(4);
    send(&app, history(base, true)).await;
    let before = app.metrics().await;

    let (status, body) = app
        .post("/v1/admin/tune", &window(base, Utc::now(), json!("finish")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exposures"]["window"], 720, "{body}");
    let held = body["exposures"]["held_out"].as_u64().unwrap_or(0);
    assert!(
        (100..=200).contains(&held),
        "about a fifth held out: {body}"
    );
    // The profile document loads as a --profile file would, unchanged.
    let text = body["profile"].to_string();
    let loaded = Experiment::parse(&text).expect("the answered profile loads");
    let profile = &loaded.variants[0].profile;
    assert_eq!(profile.name, "tuned");
    assert_eq!(
        serde_json::to_value(profile).ok(),
        Some(body["profile"].clone())
    );
    // Short videos are finished, long ones not: duration-aware signals carry the weight.
    let w = &profile.weights;
    assert!(w.brevity + w.completion > 0.5, "{body}");
    let tuned = body["held_out"]["tuned"]["gauc_finish"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(tuned > 0.75, "held-out GAUC(finish) {tuned}: {body}");
    assert!(
        body["held_out"]["current"]["gauc_finish"].is_number(),
        "{body}"
    );
    for objective in [
        json!("watch"),
        json!("like"),
        json!({"finish": 1, "like": 0.5}),
    ] {
        let (status, body) = app
            .post(
                "/v1/admin/tune",
                &window(base, Utc::now(), objective.clone()),
            )
            .await;
        assert_eq!(status, 200, "{objective}: {body}");
    }
    // A tune never changes what is served.
    let after = app.metrics().await;
    let info = |m: &str| {
        metric(
            m,
            "feed_ranking_profile_info",
            &[("profile", "default"), ("generation", "1")],
        )
    };
    assert_eq!(info(&before), Some(1.0));
    assert_eq!(info(&after), Some(1.0));
    assert_eq!(
        metric(&after, "feed_ranking_profile_info", &[("profile", "tuned")]),
        None
    );
}

async fn bad_tunes_are_refused_with_clear_codes(backend: Backend) {
    let app = TestApp::start_with(backend, patient()).await;
    app.put_videos(&world()).await;
    let now = Utc::now();
    let base = now - Duration::days(4);
    let code = |body: &Value| body["error"]["code"].as_str().unwrap_or("").to_owned();

    // An empty log: how many exposures it has and needs.
    let (status, body) = app
        .post("/v1/admin/tune", &window(base, now, json!("finish")))
        .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (422, "too_few_exposures"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("holds 0 exposures") && message.contains("at least 200"),
        "{message}"
    );

    for (request, status_code, expected) in [
        (window(now, now, json!("finish")), 400, "invalid_window"),
        (window(now, base, json!("finish")), 400, "invalid_window"),
        (
            window(base, now, json!({"finish": -1})),
            400,
            "invalid_objective",
        ),
        (
            window(base, now, json!({"finish": 0, "like": 0})),
            400,
            "invalid_objective",
        ),
        (window(base, now, json!({"clicks": 1})), 400, "invalid_json"),
        (window(base, now, json!("clicks")), 400, "invalid_json"),
        (
            json!({"since": ts(base), "objective": "finish"}),
            400,
            "invalid_json",
        ),
    ] {
        let (status, body) = app.post("/v1/admin/tune", &request).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (status_code, expected),
            "{request}: {body}"
        );
    }

    // Impressions only: no outcome of the objective.
    send(&app, history(base, false)).await;
    let (status, body) = app
        .post("/v1/admin/tune", &window(base, now, json!("like")))
        .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (422, "no_outcome"),
        "{body}"
    );
    // A window before the history holds nothing.
    let (status, body) = app
        .post(
            "/v1/admin/tune",
            &window(base - Duration::days(9), base, json!("finish")),
        )
        .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (422, "too_few_exposures"),
        "{body}"
    );
}

async fn a_full_log_drops_the_oldest_events_and_counts_them(backend: Backend) {
    let options = Options {
        flags: vec!["--exposure-log-capacity".into(), "150".into()],
        ..Options::default()
    };
    let app = TestApp::start_with(backend, options).await;
    app.put_videos(&world()).await;
    let base = Utc::now() - Duration::days(4);
    let events: Vec<Value> = history(base, false).into_iter().take(400).collect();
    send(&app, events).await;
    let dropped =
        metric(&app.metrics().await, "feed_exposure_log_dropped_total", &[]).unwrap_or(-1.0);
    // Redis trims whole stream nodes (100 entries): it may keep up to ~100 more than asked.
    assert!((150.0..=250.0).contains(&dropped), "dropped {dropped}");
    if backend == Backend::Memory {
        assert_eq!(dropped, 250.0);
    }
    // Every event was accepted and counted all the same.
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "feed_events_total", &[("type", "impression")]),
        Some(400.0)
    );
}

both_stores!(
    a_tune_learns_what_finishes_and_answers_a_profile_that_loads,
    bad_tunes_are_refused_with_clear_codes,
    a_full_log_drops_the_oldest_events_and_counts_them,
);

/// A stream entry as read: its id and fields.
type LogEntry = (String, std::collections::HashMap<String, String>);

/// Every entry of the exposure log, oldest first.
fn log_entries(conn: &mut redis::Connection) -> Vec<LogEntry> {
    redis::cmd("XRANGE")
        .arg("feed:{shared}:xlog")
        .arg("-")
        .arg("+")
        .query(conn)
        .expect("xrange")
}

/// The exposure log's entries, the events they hold (a batched entry's field `n`, else one) and
/// its event counter (`None` when absent).
fn log_contents(conn: &mut redis::Connection) -> (usize, i64, Option<i64>) {
    let entries = log_entries(conn);
    let events = entries
        .iter()
        .map(|(_, f)| f.get("n").map_or(1, |n| n.parse::<i64>().expect("n")))
        .sum();
    let counted: Option<i64> = redis::cmd("GET")
        .arg("feed:{shared}:xlog:n")
        .query(conn)
        .expect("get");
    (entries.len(), events, counted)
}

/// `user␟video` of every event of the exposure log's batched entries, oldest first.
fn logged_pairs(conn: &mut redis::Connection) -> Vec<String> {
    let entries = log_entries(conn);
    entries
        .iter()
        .filter_map(|(_, f)| f.get("b"))
        .flat_map(|b| b.split('\u{1e}'))
        .map(|e| e.split('\u{1f}').take(2).collect::<Vec<_>>().join("\u{1f}"))
        .collect()
}

/// Most events of a batched entry (`store::redis_log::BATCH_MAX`): the cap drops whole entries.
const BATCH_MAX: i64 = 64;

/// `--exposure-log-format batched`: entries of many events, and the cap still counts events —
/// the log keeps at most its capacity (less by part of one entry at most), drops the oldest
/// whole entries, counts every event it dropped, and its counter agrees with what it holds.
async fn a_full_batched_log_keeps_its_capacity_in_events(backend: Backend) {
    let options = Options {
        flags: [
            "--exposure-log-capacity",
            "150",
            "--exposure-log-format",
            "batched",
            PATIENT[0],
            PATIENT[1],
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    };
    let app = TestApp::start_with(backend, options).await;
    app.put_videos(&world()).await;
    let base = Utc::now() - Duration::days(4);
    let events: Vec<Value> = history(base, true).into_iter().take(400).collect();
    for batch in events.chunks(50) {
        app.events(batch.to_vec()).await;
    }
    let dropped = metric(&app.metrics().await, "feed_exposure_log_dropped_total", &[])
        .expect("the drop counter");
    let mut conn = app.redis.as_ref().expect("a Redis").connection();
    let (entries, held, counted) = log_contents(&mut conn);
    assert_eq!(counted, Some(held), "the counter and the entries disagree");
    assert!(
        (150 - BATCH_MAX + 1..=150).contains(&held),
        "{held} events kept"
    );
    assert!(
        entries < held as usize,
        "{entries} entries for {held} events: not batched"
    );
    assert_eq!(dropped as i64 + held, 400, "dropped {dropped}, kept {held}");
    // The newest are kept, in the order they were sent.
    let sent: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}\u{1f}{}",
                e["user_id"].as_str().unwrap_or(""),
                e["video_id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(logged_pairs(&mut conn), sent[sent.len() - held as usize..]);
    // The batched entries read back (a 500 `store_corrupt` otherwise).
    let (status, body) = app
        .post("/v1/admin/tune", &window(base, Utc::now(), json!("finish")))
        .await;
    assert!(
        status == 200 || body["error"]["code"] == "too_few_exposures",
        "{status} {body}"
    );
}

on_stores!([redis => Redis, process => Process] a_full_batched_log_keeps_its_capacity_in_events);

/// A deployment switching to batched entries and back keeps its log capped in events: the
/// first batched append counts the single-event entries already there, and a replica writing
/// single events again keeps the count going (it would otherwise trim by entries, each of up
/// to 64 events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_batched_entries_and_back_keeps_the_cap_in_events() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let base = Utc::now() - Duration::days(4);
    let events = history(base, false);
    let cap = ["--exposure-log-capacity", "150"];
    let dropped =
        |text: &str| metric(text, "feed_exposure_log_dropped_total", &[]).unwrap_or(0.0) as i64;

    let fields = replica_on(&redis, &[&PATIENT[..], &cap].concat()).await;
    fields.put_videos(&world()).await;
    send(&fields, events[..100].to_vec()).await;
    wait_applied(&mut conn, std::time::Duration::from_secs(10));
    assert_eq!(log_contents(&mut conn), (100, 100, None));
    drop(fields);

    let batched = replica_on(
        &redis,
        &[&PATIENT[..], &cap, &["--exposure-log-format", "batched"]].concat(),
    )
    .await;
    for chunk in events[100..300].chunks(40) {
        send(&batched, chunk.to_vec()).await;
    }
    wait_applied(&mut conn, std::time::Duration::from_secs(10));
    let (_, held, counted) = log_contents(&mut conn);
    assert_eq!(counted, Some(held));
    assert!((150 - BATCH_MAX + 1..=150).contains(&held), "{held} kept");
    assert_eq!(dropped(&batched.metrics().await) + held, 300);
    drop(batched);

    let fields_again = replica_on(&redis, &[&PATIENT[..], &cap].concat()).await;
    send(&fields_again, events[300..400].to_vec()).await;
    wait_applied(&mut conn, std::time::Duration::from_secs(10));
    let (_, now_held, now_counted) = log_contents(&mut conn);
    assert_eq!(now_counted, Some(now_held));
    assert!(
        (150 - BATCH_MAX + 1..=150).contains(&now_held),
        "{now_held} kept"
    );
    assert_eq!(
        dropped(&fields_again.metrics().await) + now_held,
        held + 100,
        "single-event entries after batched ones were not counted"
    );
}

/// The event count of batched entries is kept within what the entries allow, whatever was
/// changed around it: a log deleted under its counter keeps what is appended next (the count
/// restarts), a counter set far too high keeps the newest entry and is mended, and a counter
/// deleted while batched entries remain, or an entry with a bogus count, leaves the count off
/// (README) but neither empties the log nor stops its trimming. Under a capacity smaller than a batch
/// an entry holds no more than the capacity, so the newest events always stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_count_survives_what_is_changed_around_it() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let base = Utc::now() - Duration::days(4);
    let events = history(base, false);
    let app = replica_on(
        &redis,
        &[
            &PATIENT[..],
            &[
                "--exposure-log-capacity",
                "30",
                "--exposure-log-format",
                "batched",
            ],
        ]
        .concat(),
    )
    .await;
    app.put_videos(&world()).await;
    let mut sent = 0;
    let mut send_next = async |n: usize| {
        for chunk in events[sent..sent + n].chunks(20) {
            send(&app, chunk.to_vec()).await;
            wait_applied(&mut redis.connection(), std::time::Duration::from_secs(10));
        }
        sent += n;
    };
    send_next(100).await;
    let (_, held, counted) = log_contents(&mut conn);
    assert_eq!(counted, Some(held));
    assert!(
        (1..=30).contains(&held),
        "{held} kept under a capacity of 30"
    );

    // The log deleted, its counter left: what comes next is kept, and counted.
    let _: i64 = redis::cmd("DEL")
        .arg("feed:{shared}:xlog")
        .query(&mut conn)
        .expect("del");
    send_next(20).await;
    assert_eq!(log_contents(&mut conn), (1, 20, Some(20)));

    // A counter far too high: the newest entry stays, and once it is all that is left the count
    // is its own again.
    let _: () = redis::cmd("SET")
        .arg("feed:{shared}:xlog:n")
        .arg(1_000_000)
        .query(&mut conn)
        .expect("set");
    let dropped = async || {
        metric(&app.metrics().await, "feed_exposure_log_dropped_total", &[]).unwrap_or(0.0)
    };
    let before = dropped().await;
    send_next(20).await;
    assert_eq!(log_contents(&mut conn), (1, 20, Some(20)));
    assert_eq!(
        dropped().await - before,
        20.0,
        "the older entry's events, once"
    );

    // An entry with a bogus count, then the counter deleted under batched entries.
    let _: String = redis::cmd("XADD")
        .arg("feed:{shared}:xlog")
        .arg("*")
        .arg("n")
        .arg("1e9")
        .arg("b")
        .arg("u\u{1f}v\u{1f}view\u{1f}1")
        .query(&mut conn)
        .expect("xadd");
    let _: i64 = redis::cmd("DEL")
        .arg("feed:{shared}:xlog:n")
        .query(&mut conn)
        .expect("del");
    send_next(200).await;
    let (_, before, _) = log_contents(&mut conn);
    send_next(200).await;
    let (entries, held, counted) = log_contents(&mut conn);
    let counted = counted.expect("a counter");
    assert!(
        (entries as i64..=64 * entries as i64).contains(&counted),
        "{counted} counted for {entries} entries"
    );
    // The count is off by what it could not see, but the log is still trimmed: 200 more events
    // leave it about as long, never empty.
    assert!(
        held >= 1 && held <= before + 30,
        "{held} events kept after {before}: the trim stopped or emptied the log"
    );
    let bogus = log_entries(&mut conn);
    assert!(
        bogus
            .iter()
            .all(|(_, f)| f.get("n").is_none_or(|n| n != "1e9")),
        "the bogus entry was never trimmed"
    );
}

/// A log written in every form — five fields (the default: what every version reads), one
/// field (`--exposure-log-format packed`), then many events an entry (`batched`) — is read
/// whole: a tune counts every exposure, those whose events straddle two forms included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_in_every_form_is_read_whole() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let base = Utc::now() - Duration::days(4);
    let events = history(base, true);
    let (first, rest) = events.split_at(events.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);

    let fields = replica_on(&redis, &PATIENT).await;
    fields.put_videos(&world()).await;
    send(&fields, first.to_vec()).await;
    wait_applied(&mut conn, std::time::Duration::from_secs(10));
    drop(fields);
    let packed = replica_on(
        &redis,
        &[&PATIENT[..], &["--exposure-log-format", "packed"]].concat(),
    )
    .await;
    send(&packed, second.to_vec()).await;
    wait_applied(&mut conn, std::time::Duration::from_secs(10));
    drop(packed);
    let batched = replica_on(
        &redis,
        &[&PATIENT[..], &["--exposure-log-format", "batched"]].concat(),
    )
    .await;
    for chunk in third.chunks(100) {
        send(&batched, chunk.to_vec()).await;
    }
    wait_applied(&mut conn, std::time::Duration::from_secs(10));

    let entries = log_entries(&mut conn);
    let one_field = entries
        .iter()
        .filter(|(_, f)| f.len() == 1 && f.contains_key("e"))
        .count();
    let five_fields = entries.iter().filter(|(_, f)| f.contains_key("u")).count();
    let batched_events: usize = entries
        .iter()
        .filter_map(|(_, f)| f.get("n"))
        .map(|n| n.parse::<usize>().expect("n"))
        .sum();
    assert_eq!(
        (five_fields, one_field, batched_events),
        (first.len(), second.len(), third.len())
    );
    let batches = entries.iter().filter(|(_, f)| f.contains_key("n")).count();
    assert!(
        batches * 10 < third.len(),
        "{batches} entries for {} events",
        third.len()
    );

    let (status, body) = batched
        .post("/v1/admin/tune", &window(base, Utc::now(), json!("finish")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exposures"]["window"], 720, "{body}");
}
