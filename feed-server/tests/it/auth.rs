//! Authentication, scopes and rate limits over HTTP (`--api-keys`, `--user-rate-limit`,
//! `--open-rate-limit`): 401/403/200 per scope on every route class, hot reload, bad files, 429
//! with `Retry-After` for one key while another keeps being served, the per-user limit, open mode.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tempfile::TempDir;

/// `sha256(key)` as the keys file holds it.
fn sha(key: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()))
}

/// One entry: (name, key, scopes, requests/s, burst).
type Entry<'a> = (&'a str, &'a str, &'a str, f64, u32);

fn keys_file(entries: &[Entry<'_>]) -> String {
    let mut text = String::from("keys:\n");
    for (name, key, scopes, rate, burst) in entries {
        text.push_str(&format!(
            "  - name: {name}\n    sha256: {}\n    scopes: {scopes}\n    limit: {{requestsPerSecond: {rate}, burst: {burst}}}\n",
            sha(key)
        ));
    }
    text
}

const FAST: f64 = 10_000.0;

/// Every scope its own key, and one with them all.
fn scoped_keys() -> Vec<Entry<'static>> {
    vec![
        ("reader", "k-read-0123456789", "[read]", FAST, 10_000),
        ("sender", "k-events-0123456789", "[events]", FAST, 10_000),
        ("writer", "k-write-0123456789", "[write]", FAST, 10_000),
        ("operator", "k-admin-0123456789", "[admin]", FAST, 10_000),
        (
            "everything",
            "k-all-0123456789",
            "[read, events, write, admin]",
            FAST,
            10_000,
        ),
    ]
}

/// Replaces the file atomically (write aside, rename), as a Secret volume update does.
fn replace_file(path: &Path, text: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// An app with `--api-keys` holding `entries` (the directory must outlive the app).
async fn app_with_keys(
    b: Backend,
    entries: &[Entry<'_>],
    flags: &[&str],
) -> (TestApp, TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("api-keys.yaml");
    std::fs::write(&path, keys_file(entries)).expect("write keys");
    let mut all = vec![
        "--api-keys".to_owned(),
        path.display().to_string(),
        "--api-keys-poll-ms".into(),
        "50".into(),
    ];
    all.extend(flags.iter().map(|f| (*f).to_owned()));
    let app = TestApp::start_with(
        b,
        Options {
            flags: all,
            ..Options::default()
        },
    )
    .await;
    (app, dir, path)
}

/// Status, headers and JSON body of a request sent with `key` (none: no Authorization).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, HeaderMap, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or("")
}

/// One request per API route class, with what a successful call answers.
fn api_calls() -> Vec<(&'static str, Method, String, Option<Value>, u16)> {
    vec![
        ("read", Method::GET, "/v1/feed?user_id=u1".into(), None, 200),
        (
            "read",
            Method::POST,
            "/v1/rank".into(),
            Some(json!({"user_id": "u1", "video_ids": ["v0", "v1"]})),
            200,
        ),
        (
            "events",
            Method::POST,
            "/v1/events".into(),
            Some(json!({"events": [{"user_id": "u1", "video_id": "v0", "type": "like"}]})),
            200,
        ),
        (
            "write",
            Method::PUT,
            "/v1/videos".into(),
            Some(json!([video("v9", "c9", &["x"], 1)])),
            200,
        ),
        (
            "write",
            Method::PUT,
            "/v1/users/u1/follows".into(),
            Some(json!({"creators": ["c1"], "friends": []})),
            204,
        ),
        (
            "write",
            Method::PUT,
            "/v1/users/u1/profile".into(),
            Some(json!({"language": "en", "region": "US"})),
            204,
        ),
        ("write", Method::DELETE, "/v1/videos/v8".into(), None, 204),
    ]
}

async fn every_route_needs_its_scope(b: Backend) {
    let (app, _dir, _) = app_with_keys(b, &scoped_keys(), &[]).await;
    let admin = Some("k-all-0123456789");
    let (s, _, _) = call(
        &app,
        Method::PUT,
        "/v1/videos",
        admin,
        Some(&Value::Array(catalog(10, 3))),
    )
    .await;
    assert_eq!(s, 200);
    let key_of = |scope: &str| match scope {
        "read" => "k-read-0123456789",
        "events" => "k-events-0123456789",
        _ => "k-write-0123456789",
    };
    for (scope, method, path, body, ok) in api_calls() {
        let what = format!("{method} {path}");
        // No key, a malformed header, an unknown key: 401 with a Bearer challenge.
        let (s, h, e) = call(&app, method.clone(), &path, None, body.as_ref()).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{what}: {e}"
        );
        assert_eq!(
            header(&h, "www-authenticate"),
            "Bearer realm=\"feed-server\"",
            "{what}"
        );
        let (s, h, e) = call(
            &app,
            method.clone(),
            &path,
            Some("k-unknown-SECRET-42"),
            body.as_ref(),
        )
        .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{what}"
        );
        assert!(
            header(&h, "www-authenticate").starts_with("Bearer "),
            "{what}"
        );
        assert!(
            !e.to_string().contains("SECRET"),
            "{what}: the key echoed: {e}"
        );
        let r = app
            .client
            .request(method.clone(), app.url(&path))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 401, "{what}: Basic auth");
        // RFC 6750 §3.1: no error code for a client of another scheme.
        assert_eq!(
            header(r.headers(), "www-authenticate"),
            "Bearer realm=\"feed-server\"",
            "{what}: Basic auth"
        );
        // A key longer than any issued one is malformed (refused before hashing).
        let long = "k".repeat(257);
        let (s, h, _) = call(&app, method.clone(), &path, Some(&long), body.as_ref()).await;
        assert_eq!(s, 401, "{what}: long key");
        assert!(
            header(&h, "www-authenticate").ends_with("error=\"invalid_request\""),
            "{what}: long key"
        );
        // Every key without the scope (the admin-only key included): 403, nothing changed.
        for (name, key, scopes, _, _) in scoped_keys() {
            if scopes.contains(scope) {
                continue;
            }
            let (s, h, e) = call(&app, method.clone(), &path, Some(key), body.as_ref()).await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{what} as {name}"
            );
            assert!(
                header(&h, "www-authenticate").contains(&format!("scope=\"{scope}\"")),
                "{what}"
            );
        }
        // The key with the scope: served.
        let (s, _, e) = call(
            &app,
            method.clone(),
            &path,
            Some(key_of(scope)),
            body.as_ref(),
        )
        .await;
        assert_eq!(s, ok, "{what}: {e}");
    }
    // The refused writes changed nothing: the refused deletes of v8 never happened before the
    // allowed one, and the refused events were not counted.
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "feed_events_total", &[("type", "like")]),
        Some(1.0),
        "only the allowed event was stored"
    );
    // Operational routes stay open.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (s, _, _) = call(&app, Method::GET, path, None, None).await;
        assert_eq!(s, 200, "{path}");
    }
    // The key name is a label of the request metrics; no key, secret or unknown, appears.
    assert!(
        metric(
            &metrics,
            "feed_http_requests_total",
            &[("route", "/v1/feed"), ("status", "200"), ("key", "reader")]
        )
        .is_some(),
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "feed_http_refused_total",
            &[
                ("route", "/v1/feed"),
                ("reason", "unauthenticated"),
                ("key", "")
            ]
        )
        .is_some()
    );
    assert!(
        metric(
            &metrics,
            "feed_http_refused_total",
            &[
                ("route", "/v1/videos"),
                ("reason", "forbidden"),
                ("key", "reader")
            ]
        )
        .is_some()
    );
    for secret in ["SECRET", "k-read-0123456789", "k-all-0123456789"] {
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }
    assert_eq!(metric(&metrics, "feed_api_keys", &[]), Some(5.0));
}

async fn a_refused_write_stores_nothing(b: Backend) {
    let (app, _dir, _) = app_with_keys(b, &scoped_keys(), &[]).await;
    let writer = Some("k-write-0123456789");
    let reader = Some("k-read-0123456789");
    let (s, _, _) = call(
        &app,
        Method::PUT,
        "/v1/videos",
        writer,
        Some(&json!([video("v1", "c", &["x"], 1)])),
    )
    .await;
    assert_eq!(s, 200);
    let rank = json!({"user_id": "u", "video_ids": ["v1", "v2"]});
    let ranked = |body: &Value| {
        body["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["video_id"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (_, _, before) = call(&app, Method::POST, "/v1/rank", reader, Some(&rank)).await;
    assert_eq!(ranked(&before), vec!["v1"]);
    // A reader can neither add v2 nor delete v1.
    let (s, _, _) = call(
        &app,
        Method::PUT,
        "/v1/videos",
        reader,
        Some(&json!([video("v2", "c", &["x"], 1)])),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = call(&app, Method::DELETE, "/v1/videos/v1", None, None).await;
    assert_eq!(s, 401);
    let (_, _, after) = call(&app, Method::POST, "/v1/rank", reader, Some(&rank)).await;
    assert_eq!(
        ranked(&after),
        vec!["v1"],
        "a refused write changed the catalog"
    );
}

both_stores!(every_route_needs_its_scope, a_refused_write_stores_nothing);

/// Polls until `path` answers `want` for `key` (a reload is picked up within a few polls).
async fn eventually(app: &TestApp, key: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _, _) = call(app, Method::GET, "/v1/feed?user_id=u", Some(key), None).await;
        if s == want {
            return;
        }
        assert!(Instant::now() < deadline, "{key}: still {s}, want {want}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_adds_and_revokes_keys_and_a_bad_file_keeps_the_last_good() {
    let old = ("old", "k-old-0123456789", "[read]", FAST, 10_000);
    let new = ("new", "k-new-0123456789", "[read]", FAST, 10_000);
    let (app, _dir, path) = app_with_keys(Backend::Memory, &[old], &[]).await;
    eventually(&app, "k-old-0123456789", 200).await;
    let (s, _, _) = call(
        &app,
        Method::GET,
        "/v1/feed?user_id=u",
        Some("k-new-0123456789"),
        None,
    )
    .await;
    assert_eq!(s, 401, "not issued yet");
    // Rotation: both keys valid during the switch, then the old one revoked.
    replace_file(&path, keys_file(&[old, new]));
    eventually(&app, "k-new-0123456789", 200).await;
    eventually(&app, "k-old-0123456789", 200).await;
    replace_file(&path, keys_file(&[new]));
    eventually(&app, "k-old-0123456789", 401).await;
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "feed_api_keys_generation", &[]), Some(3.0));
    assert_eq!(
        metric(&metrics, "feed_api_keys_reload_errors_total", &[]),
        Some(0.0)
    );
    // Bad files are rejected, counted, and the last good file keeps serving: the new key still
    // works, the revoked one is still refused (a bad file neither opens nor closes the server).
    let bad: [Vec<u8>; 8] = [
        Vec::new(),
        "keys: [".into(),
        "keys:\n  - {name: x, key: k-old-0123456789, scopes: [read], limit: {requestsPerSecond: 1, burst: 1}}"
            .into(),
        keys_file(&[old, ("old", "k-other", "[read]", 1.0, 1)]).into(),
        // Limits the limiter cannot represent (they used to panic the reload task, after
        // which no later change, a revocation included, ever took effect).
        keys_file(&[new, ("tiny", "k-tiny-0123456789", "[read]", 1e-12, 1)]).into(),
        keys_file(&[new, ("huge", "k-huge-0123456789", "[read]", 0.001, 1_000_000)]).into(),
        keys_file(&[new, ("long", "k-long-0123456789", "[read]", 1.0, 86_401)]).into(),
        // Not UTF-8: refused, not read with replacement characters.
        [keys_file(&[new]).as_bytes(), b"# \xff\xfe\n"].concat(),
    ];
    for (i, text) in bad.iter().enumerate() {
        replace_file(&path, text);
        let deadline = Instant::now() + Duration::from_secs(5);
        while metric(
            &app.metrics().await,
            "feed_api_keys_reload_errors_total",
            &[],
        ) != Some((i + 1) as f64)
        {
            assert!(Instant::now() < deadline, "bad file {i} not rejected");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        eventually(&app, "k-new-0123456789", 200).await;
        eventually(&app, "k-old-0123456789", 401).await;
    }
    // A deleted file (a Secret unmounted mid-update) keeps the last good keys too.
    std::fs::remove_file(&path).expect("remove");
    tokio::time::sleep(Duration::from_millis(200)).await;
    eventually(&app, "k-new-0123456789", 200).await;
    assert_eq!(
        metric(&app.metrics().await, "feed_api_keys_generation", &[]),
        Some(3.0)
    );
    // The watcher survived all of it: revoking every key still takes effect.
    replace_file(&path, "keys: []\n");
    eventually(&app, "k-new-0123456789", 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_over_its_limit_gets_429_while_another_key_is_served() {
    // `flood` may make 3 requests, then one every 100 s; `steady` is unlimited in practice.
    let flood = ("flood", "k-flood-0123456789", "[read, events]", 0.01, 3);
    let steady = (
        "steady",
        "k-steady-0123456789",
        "[read, events, write]",
        FAST,
        10_000,
    );
    let (app, _dir, _) = app_with_keys(Backend::Memory, &[flood, steady], &[]).await;
    let videos = Value::Array(catalog(5, 2));
    let steady_key = Some("k-steady-0123456789");
    let (s, _, _) = call(&app, Method::PUT, "/v1/videos", steady_key, Some(&videos)).await;
    assert_eq!(s, 200);
    let flood_key = Some("k-flood-0123456789");
    for _ in 0..3 {
        let (s, _, _) = call(&app, Method::GET, "/v1/feed?user_id=u", flood_key, None).await;
        assert_eq!(s, 200);
    }
    let event = json!({"events": [{"user_id": "u", "video_id": "v0", "type": "like"}]});
    for i in 0..20 {
        let (s, h, e) = call(&app, Method::POST, "/v1/events", flood_key, Some(&event)).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (429, Some("rate_limited")),
            "{e}"
        );
        let retry: u64 = header(&h, "retry-after")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=100).contains(&retry), "Retry-After {retry}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("flood"))
        );
        // Meanwhile the other key is served every time.
        let path = format!("/v1/feed?user_id=other-{i}");
        let (s, _, _) = call(&app, Method::GET, &path, Some("k-steady-0123456789"), None).await;
        assert_eq!(s, 200, "steady was refused while flood was limited");
    }
    // A 401 (no key) and a 403 (flood lacks `write`) besides the 429s.
    let (s, _, _) = call(&app, Method::GET, "/v1/feed?user_id=u", None, None).await;
    assert_eq!(s, 401);
    let (s, _, _) = call(&app, Method::PUT, "/v1/videos", flood_key, Some(&videos)).await;
    assert_eq!(s, 403);
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "feed_events_total", &[("type", "like")]),
        Some(0.0),
        "a refused event was stored"
    );
    assert_eq!(
        metric(&metrics, "feed_rate_limited_total", &[("limit", "key")]),
        Some(20.0)
    );
    // Refusals are counted apart: they never enter the series a rollout's error-rate and
    // latency checks judge, so a flood of cheap refusals cannot dilute a bad canary.
    for status in ["401", "403", "429"] {
        assert_eq!(
            metric(&metrics, "feed_http_requests_total", &[("status", status)]),
            None,
            "{status} counted as API traffic"
        );
    }
    assert_eq!(
        metric(
            &metrics,
            "feed_http_request_duration_seconds_count",
            &[("route", "/v1/events")]
        ),
        None,
        "refused events timed as API traffic"
    );
    for (route, reason, count) in [
        ("/v1/events", "rate_limited", 20.0),
        ("/v1/feed", "unauthenticated", 1.0),
        ("/v1/videos", "forbidden", 1.0),
    ] {
        let key = if reason == "unauthenticated" {
            ""
        } else {
            "flood"
        };
        assert_eq!(
            metric(
                &metrics,
                "feed_http_refused_total",
                &[("route", route), ("reason", reason), ("key", key)]
            ),
            Some(count),
            "{route} {reason}"
        );
    }
    // The requests served are counted as before.
    assert_eq!(
        metric(
            &metrics,
            "feed_http_requests_total",
            &[("route", "/v1/feed"), ("status", "200"), ("key", "steady")]
        ),
        Some(20.0)
    );
}

/// A 429 `rate_limited` with a `Retry-After` of at least a second.
fn assert_rate_limited((status, headers, body): (u16, HeaderMap, Value)) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(
        header(&headers, "retry-after")
            .parse::<u64>()
            .is_ok_and(|r| r >= 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_limit_stops_a_scraper_paging_one_user_only() {
    let (app, _dir, _) = app_with_keys(
        Backend::Memory,
        &scoped_keys(),
        &["--user-rate-limit", "0.01", "--user-rate-burst", "2"],
    )
    .await;
    let reader = Some("k-read-0123456789");
    for _ in 0..2 {
        let (s, _, _) = call(&app, Method::GET, "/v1/feed?user_id=scraped", reader, None).await;
        assert_eq!(s, 200);
    }
    let refused = call(
        &app,
        Method::GET,
        "/v1/feed?user_id=scraped&limit=5",
        reader,
        None,
    )
    .await;
    assert_rate_limited(refused);
    // Another key cannot page the same user either; another user is served.
    let (s, _, _) = call(
        &app,
        Method::GET,
        "/v1/feed?user_id=scraped",
        Some("k-all-0123456789"),
        None,
    )
    .await;
    assert_eq!(s, 429);
    let (s, _, _) = call(
        &app,
        Method::GET,
        "/v1/feed?user_id=someone-else",
        reader,
        None,
    )
    .await;
    assert_eq!(s, 200);
    // `POST /v1/rank` names one user too: it charges the same bucket, so it is no way around
    // the limit, and a refused ranking does no work.
    let rank = |user: &str| json!({"user_id": user, "video_ids": ["v1"]});
    let refused = call(
        &app,
        Method::POST,
        "/v1/rank",
        reader,
        Some(&rank("scraped")),
    )
    .await;
    assert_rate_limited(refused);
    // A bad body takes no token: the ranked user's two requests are still there.
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/v1/rank",
        reader,
        Some(&json!({"user_id": "ranked"})),
    )
    .await;
    assert_eq!(s, 400);
    for want in [200, 200, 429] {
        let (s, _, _) = call(
            &app,
            Method::POST,
            "/v1/rank",
            reader,
            Some(&rank("ranked")),
        )
        .await;
        assert_eq!(s, want);
    }
    // Rank and feed share the user's bucket.
    let (s, _, _) = call(&app, Method::GET, "/v1/feed?user_id=ranked", reader, None).await;
    assert_eq!(s, 429);
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "feed_rate_limited_total", &[("limit", "user")]),
        Some(5.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "feed_http_refused_total",
            &[
                ("route", "/v1/rank"),
                ("reason", "rate_limited"),
                ("key", "reader")
            ]
        ),
        Some(2.0)
    );
    // The feed's refusals by the user's bucket, and its admissions, are counted by key too.
    let feed_refused = |key: &str| {
        let labels = [
            ("route", "/v1/feed"),
            ("reason", "rate_limited"),
            ("key", key),
        ];
        metric(&metrics, "feed_http_refused_total", &labels)
    };
    assert_eq!(feed_refused("reader"), Some(2.0));
    assert_eq!(feed_refused("everything"), Some(1.0));
    let served = [("route", "/v1/feed"), ("status", "200"), ("key", "reader")];
    assert_eq!(
        metric(&metrics, "feed_http_requests_total", &served),
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_needs_no_key_and_its_optional_limit_spares_the_probes() {
    let app = TestApp::start_with(
        Backend::Memory,
        Options {
            flags: vec![
                "--open-rate-limit".into(),
                "0.01".into(),
                "--open-rate-burst".into(),
                "2".into(),
            ],
            ..Options::default()
        },
    )
    .await;
    for _ in 0..2 {
        let (s, _, _) = call(&app, Method::GET, "/v1/feed?user_id=u", None, None).await;
        assert_eq!(s, 200);
    }
    let (s, h, e) = call(
        &app,
        Method::GET,
        "/v1/feed?user_id=u",
        Some("any-key"),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{e}"
    );
    assert!(!header(&h, "retry-after").is_empty());
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (s, _, _) = call(&app, Method::GET, path, None, None).await;
        assert_eq!(s, 200, "{path}");
    }
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "feed_rate_limited_total", &[("limit", "open")]),
        Some(1.0)
    );
    assert!(
        !metrics.contains("feed_api_keys_generation"),
        "no keys series in open mode"
    );
}

#[tokio::test]
async fn a_bad_keys_file_or_flag_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.yaml");
    let p = path.display().to_string();
    let cases: Vec<(Option<String>, Vec<&str>, &str)> = vec![
        (None, vec!["--api-keys", &p], "cannot read API-keys file"),
        (Some(String::new()), vec!["--api-keys", &p], "the file is empty"),
        (
            Some("keys:\n  - {name: a, sha256: not-hex, scopes: [read], limit: {requestsPerSecond: 1, burst: 1}}".into()),
            vec!["--api-keys", &p],
            "key \"a\": sha256 must be the 64 hex digits",
        ),
        (Some("keys: []".into()), vec!["--api-keys", &p, "--open-rate-limit", "5"], "open mode only"),
        (None, vec!["--user-rate-limit", "0"], "--user-rate-limit: requestsPerSecond"),
        (None, vec!["--user-rate-limit", "5", "--user-rate-burst", "0"], "burst must be between"),
    ];
    for (content, flags, needle) in cases {
        match &content {
            Some(text) => std::fs::write(&path, text).expect("write"),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        let config = <feed_server::config::Config as clap::Parser>::try_parse_from(
            std::iter::once("feed-server").chain(flags.iter().copied()),
        )
        .expect("config");
        let err = feed_server::server::build(&config)
            .await
            .err()
            .expect("must refuse to start")
            .to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        if needle.contains("file") || needle.contains("sha256") {
            assert!(err.contains(&p), "{err:?} should name the file");
        }
    }
}
