//! Redis over TLS with an ACL user, against a real redis-server that speaks only TLS (see
//! `common/tls.rs`): the feed-server serves and stores through `rediss://user:password@…` with
//! the test's CA, reconnects after a Redis restart, refuses clearly (and without showing the
//! password) a wrong password, a server its CA did not sign and a missing client certificate,
//! and refuses to start on bad TLS flags.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::{ClientAuth, PASSWORD, TlsRedis, USER};
use common::{Backend, Options, TestApp, catalog, ids, run_binary};
use serde_json::{Value, json};

/// Flags of a feed-server on `redis` with `url`, the CA file `ca` and `extra` flags.
fn flags(redis: &TlsRedis, url: String, ca: &str, extra: Vec<String>) -> Options {
    let mut flags = vec![
        "--redis-url".to_owned(),
        url,
        "--redis-ca-file".to_owned(),
        redis.file(ca).display().to_string(),
    ];
    flags.extend(extra);
    Options {
        profile: None,
        flags,
    }
}

/// The identity flags of the test's client certificate.
fn identity(redis: &TlsRedis) -> Vec<String> {
    vec![
        "--redis-client-cert".to_owned(),
        redis.file("client.pem").display().to_string(),
        "--redis-client-key".to_owned(),
        redis.file("client.key").display().to_string(),
    ]
}

/// Stores a catalog, records a like and serves `user`'s feed; checks with `redis-cli` that the
/// catalog entry and the event's counters are in Redis.
async fn serves_and_stores(app: &TestApp, redis: &TlsRedis, user: &str) {
    app.put_videos(&catalog(30, 5)).await;
    app.events(vec![
        json!({"user_id": user, "video_id": "v1", "type": "like"}),
    ])
    .await;
    let feed = app.feed(user, "&limit=10").await;
    assert_eq!(ids(&feed).len(), 10, "{feed}");
    assert!(
        redis
            .cli(&["GET", "feed:{shared}:v:v3"])
            .contains("\"creator_id\""),
        "catalog entry not in Redis"
    );
    assert!(
        !redis
            .cli(&["ZSCORE", "feed:{shared}:active", user])
            .is_empty(),
        "event's activity not in Redis"
    );
    assert_ne!(
        redis.cli(&["HGETALL", "feed:{shared}:vs:v1"]),
        "",
        "counters not in Redis"
    );
}

/// Launches a feed-server with `options`, checks that it stays unready and that a feed request
/// gets 503 `store_unavailable` without the password; returns the error message.
async fn refusal(options: Options) -> String {
    let app = TestApp::launch(Backend::Memory, options).await;
    assert!(
        !app.wait_ready(Duration::from_millis(1500)).await,
        "ready although Redis refuses it"
    );
    let (status, body) = app.get("/v1/feed?user_id=u1").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let text = body.to_string();
    assert!(!text.contains(PASSWORD), "{text}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_tls_as_an_acl_user_and_reconnects_after_a_restart() {
    let mut redis = TlsRedis::start(ClientAuth::No);
    // The harness is meaningful: without credentials Redis refuses every command.
    assert!(
        redis.cli_as(&[], &["GET", "feed:x"]).contains("NOAUTH"),
        "the default user is not off"
    );
    let app = TestApp::start_with(
        Backend::Memory,
        flags(&redis, redis.url(USER, PASSWORD), "ca.pem", vec![]),
    )
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, &body["store"]), (200, &json!("redis")), "{body}");
    serves_and_stores(&app, &redis, "u1").await;

    // The connection manager re-makes the TLS connection once Redis is back.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.put("/v1/videos", &Value::Array(catalog(30, 5))).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no reconnect: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        redis
            .cli(&["GET", "feed:{shared}:v:v3"])
            .contains("\"creator_id\"")
    );
    assert!(app.wait_ready(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_keeps_the_server_unready_and_says_why() {
    let redis = TlsRedis::start(ClientAuth::No);
    let message = refusal(flags(
        &redis,
        redis.url(USER, "wrong-password"),
        "ca.pem",
        vec![],
    ))
    .await;
    assert!(
        message.to_lowercase().contains("authentication failed"),
        "{message}"
    );
    assert!(!message.contains("wrong-password"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let redis = TlsRedis::start(ClientAuth::No);
    let message = refusal(flags(
        &redis,
        redis.url(USER, PASSWORD),
        "other-ca.pem",
        vec![],
    ))
    .await;
    assert!(message.contains("invalid peer certificate"), "{message}");
    // Without --redis-ca-file the system's roots do not know the test CA either.
    let message = refusal(Options {
        profile: None,
        flags: vec!["--redis-url".into(), redis.url(USER, PASSWORD)],
    })
    .await;
    assert!(message.contains("invalid peer certificate"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_client_certificate_is_sent_and_its_absence_is_refused() {
    let redis = TlsRedis::start(ClientAuth::Required);
    let with_cert = TestApp::start_with(
        Backend::Memory,
        flags(
            &redis,
            redis.url(USER, PASSWORD),
            "ca.pem",
            identity(&redis),
        ),
    )
    .await;
    serves_and_stores(&with_cert, &redis, "u2").await;

    let message = refusal(flags(&redis, redis.url(USER, PASSWORD), "ca.pem", vec![])).await;
    assert!(message.contains("CertificateRequired"), "{message}");
}

#[test]
fn bad_tls_flags_stop_the_start_with_a_clear_error() {
    let redis = TlsRedis::start(ClientAuth::No);
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let path = |name: &str| redis.file(name).display().to_string();
    let tls = redis.url(USER, PASSWORD);
    let plain = format!("redis://{USER}:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let not_pem = not_pem.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--redis-url".into(),
                tls.clone(),
                "--redis-ca-file".into(),
                "/no/such/ca.pem".into(),
            ],
            "cannot read --redis-ca-file /no/such/ca.pem",
        ),
        (
            vec![
                "--redis-url".into(),
                tls.clone(),
                "--redis-ca-file".into(),
                not_pem.clone(),
            ],
            "--redis-ca-file",
        ),
        (
            vec![
                "--redis-url".into(),
                plain.clone(),
                "--redis-ca-file".into(),
                path("ca.pem"),
            ],
            "--redis-ca-file needs a TLS URL (rediss://…)",
        ),
        (
            vec!["--redis-ca-file".into(), path("ca.pem")],
            "--redis-ca-file is set but --redis-url is not",
        ),
        (
            vec![
                "--redis-url".into(),
                tls.clone(),
                "--redis-client-cert".into(),
                path("client.pem"),
            ],
            "--redis-client-key is missing",
        ),
        (
            vec![
                "--redis-url".into(),
                tls.clone(),
                "--redis-client-cert".into(),
                path("client.pem"),
                "--redis-client-key".into(),
                not_pem.clone(),
            ],
            "--redis-client-key",
        ),
        (
            vec![
                "--redis-url".into(),
                tls.clone(),
                "--redis-client-cert".into(),
                path("client.pem"),
                "--redis-client-key".into(),
                path("server.key"),
            ],
            "cannot be used together",
        ),
        (
            vec!["--redis-url".into(), format!("{tls}#insecure")],
            "#insecure",
        ),
        (
            vec![
                "--redis-url".into(),
                format!("https://{USER}:{PASSWORD}@127.0.0.1/"),
            ],
            "is not a Redis URL",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, printed) = run_binary(&args, &[]);
        assert!(!ok, "{args:?} started");
        assert!(
            printed.contains(want),
            "{args:?}: want {want:?} in\n{printed}"
        );
        assert!(!printed.contains(PASSWORD), "password printed: {printed}");
    }
}

#[test]
fn logs_show_the_redis_url_without_its_password() {
    let redis = TlsRedis::start(ClientAuth::No);
    let wrong = "wrong-password-in-logs";
    let mut child = Command::new(env!("CARGO_BIN_EXE_feed-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--redis-url", &redis.url(USER, wrong)])
        .arg("--redis-ca-file")
        .arg(redis.file("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn feed-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut logs = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let failed = line.contains("cache warm-up failed");
        logs.push(line);
        if failed {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = logs.join("\n");
    assert!(!text.contains(wrong), "{text}");
    let configured: Value = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "redis store configured")
        .unwrap_or_else(|| panic!("no start-up line: {text}"));
    assert_eq!(
        configured["redis"],
        format!("rediss://{USER}:***@127.0.0.1:{}/0", redis.port),
        "{configured}"
    );
    assert!(
        text.contains("Password authentication failed"),
        "the reason is logged: {text}"
    );
}

#[test]
fn the_chart_s_environment_variables_reach_the_same_checks() {
    let redis = TlsRedis::start(ClientAuth::No);
    let out = Command::new(env!("CARGO_BIN_EXE_feed-server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("FEED_REDIS_URL", redis.url(USER, PASSWORD))
        .env("FEED_REDIS_CA_FILE", redis.file("missing-ca.crt"))
        .output()
        .expect("run feed-server");
    let printed = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{printed}");
    assert!(
        printed.contains("cannot read --redis-ca-file") && printed.contains("missing-ca.crt"),
        "{printed}"
    );
    assert!(!printed.contains(PASSWORD), "{printed}");
}
