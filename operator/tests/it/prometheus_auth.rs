//! Prometheus behind basic auth over TLS (a real Prometheus started with `--web.config.file`,
//! its CA made by the test): without credentials every check is `error` saying 401, never a
//! pass; with them the verdicts are computed from real data; a wrong CA is a clear TLS error.
//! The same through `feedroll-operator check` and its flags, and the Secret cache.

use crate::support::prometheus;

use std::process::Output;
use std::time::{Duration, Instant};

use feedroll_crds::{
    AnalysisRun, FeedRolloutSpec, ObjectKeyRef, ObjectKind, ResolvedCheck, TrafficMode, Verdict,
};
use feedroll_localkube::FakeApi;
use feedroll_operator::analysis::connection::{Credentials, FetchedObject, Sensitive, Verify};
use feedroll_operator::analysis::{
    AnalysisEngine, FaultKind, ManyRuns, PrometheusConnection, Target,
};
use feedroll_operator::controller::credentials::ObjectCache;
use k8s_openapi::jiff::Timestamp;
use prometheus::{Harness, series};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_feedroll-operator");

/// 3% errors on the canary.
fn exported() -> Vec<prometheus::Series> {
    let canary = |status| [("rollout", "feed"), ("track", "canary"), ("status", status)];
    vec![
        series("feed_http_requests_total", &canary("200"), 97.0),
        series("feed_http_requests_total", &canary("500"), 3.0),
    ]
}

/// Custom-query checks (insulated from preset changes): the canary's 5xx share, within 5%
/// (passes) and within 1% (fails).
const ERROR_SHARE: &str = r#"sum(rate(feed_http_requests_total{{{selector}},status="500"}[{{window}}])) / sum(rate(feed_http_requests_total{{{selector}}}[{{window}}]))"#;

fn checks_yaml() -> String {
    format!(
        "      - {{name: error-rate, query: '{ERROR_SHARE}', max: 0.05, window: 10s}}\n      - {{name: strict, query: '{ERROR_SHARE}', max: 0.01, window: 10s}}\n"
    )
}

fn checks() -> Vec<ResolvedCheck> {
    let spec: FeedRolloutSpec = serde_json::from_value(json!({
        "template": {"spec": {"containers": [{"name": "feed", "image": "feed:2"}]}},
        "analysis": {"defaultChecks": false, "checks": [
            {"name": "error-rate", "query": ERROR_SHARE, "max": 0.05, "window": "10s"},
            {"name": "strict", "query": ERROR_SHARE, "max": 0.01, "window": "10s"}
        ]}
    }))
    .unwrap();
    spec.resolved_analysis().unwrap().checks
}

fn target() -> Target {
    Target {
        namespace: Some("test".into()),
        rollout: "feed".into(),
        traffic: TrafficMode::ReplicaRatio,
    }
}

async fn run(connection: &PrometheusConnection) -> ManyRuns {
    let engine = AnalysisEngine::connect(connection).expect("engine");
    engine
        .evaluate_many(&[(target(), checks())], false, Timestamp::now())
        .await
}

fn only(many: &ManyRuns) -> &AnalysisRun {
    assert_eq!(many.runs.len(), 1);
    &many.runs[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_or_with_wrong_credentials_every_check_is_an_error_saying_401() {
    let harness = Harness::start_secure(exported()).await;
    let right = harness.connection();
    let wrong_password = PrometheusConnection {
        credentials: Credentials::Basic {
            username: Sensitive::new(prometheus::USER),
            password: Sensitive::new("guess"),
        },
        ..right.clone()
    };
    let bearer = PrometheusConnection {
        credentials: Credentials::Authorization {
            scheme: "Bearer".into(),
            credentials: Sensitive::new("not-a-user"),
        },
        ..right.clone()
    };
    let none = PrometheusConnection {
        credentials: Credentials::None,
        ..right.clone()
    };
    // Let Prometheus scrape, so that a pass would be possible with credentials.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for connection in [none, wrong_password, bearer] {
        let many = run(&connection).await;
        let run = only(&many);
        assert_eq!(run.records.len(), 2);
        for r in &run.records {
            assert_eq!(r.verdict, Verdict::Error, "{r:?}");
            assert!(r.reason.contains("401 Unauthorized"), "{}", r.reason);
        }
        assert_eq!(
            many.fault
                .as_ref()
                .map(feedroll_operator::analysis::PrometheusFault::kind),
            Some(FaultKind::Rejected)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_credentials_and_the_ca_the_verdicts_are_computed_from_real_data() {
    let harness = Harness::start_secure(exported()).await;
    let connection = harness.connection();
    let deadline = Instant::now() + Duration::from_secs(30);
    let many = loop {
        let many = run(&connection).await;
        let settled = only(&many)
            .records
            .iter()
            .all(|r| matches!(r.verdict, Verdict::Pass | Verdict::Fail));
        if settled || Instant::now() > deadline {
            break many;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(many.fault, None);
    let records = &only(&many).records;
    assert_eq!(
        (records[0].verdict, records[1].verdict),
        (Verdict::Pass, Verdict::Fail),
        "{records:#?}"
    );
    let value = records[0].value.expect("a value");
    assert!((value - 0.03).abs() < 0.005, "{value}");
    // insecureSkipVerify with the credentials: judged too.
    let skip = PrometheusConnection {
        verify: Verify::Skip,
        ..connection
    };
    let many = run(&skip).await;
    assert_eq!(only(&many).records[0].verdict, Verdict::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_the_system_roots_give_a_clear_tls_error() {
    let harness = Harness::start_secure(exported()).await;
    let secure = harness.secure.as_ref().unwrap();
    let wrong = PrometheusConnection {
        verify: Verify::CaBundle(std::fs::read(&secure.wrong_ca_file).unwrap()),
        ..harness.connection()
    };
    let system = PrometheusConnection {
        verify: Verify::SystemRoots,
        ..harness.connection()
    };
    for connection in [wrong, system] {
        let many = run(&connection).await;
        for r in &only(&many).records {
            assert_eq!(r.verdict, Verdict::Error);
            assert!(
                r.reason.contains("TLS handshake with Prometheus failed")
                    && r.reason.contains("UnknownIssuer")
                    && r.reason.contains("tlsConfig.ca"),
                "{}",
                r.reason
            );
        }
        assert_eq!(
            many.fault
                .as_ref()
                .map(feedroll_operator::analysis::PrometheusFault::kind),
            Some(FaultKind::Tls)
        );
    }
    // Plain HTTP to the TLS port is not a TLS failure of ours: an error, never a pass.
    let plain = PrometheusConnection::plain(
        &harness.url.replace("https://", "http://"),
        Duration::from_secs(5),
    );
    let many = run(&plain).await;
    assert!(
        only(&many)
            .records
            .iter()
            .all(|r| r.verdict == Verdict::Error)
    );
}

#[tokio::test]
async fn a_proxy_answering_403_is_an_auth_failure_not_a_pass() {
    // An auth proxy in front of Prometheus refusing the tenant (Prometheus itself only says 401).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let proxy = tokio::spawn(async move {
        let app = axum::Router::new()
            .fallback(|| async { (http::StatusCode::FORBIDDEN, "tenant not allowed") });
        let _ = axum::serve(listener, app).await;
    });
    let many = run(&PrometheusConnection::plain(
        &address,
        Duration::from_secs(5),
    ))
    .await;
    for r in &only(&many).records {
        assert_eq!(r.verdict, Verdict::Error);
        assert!(r.reason.contains("403 Forbidden"), "{}", r.reason);
    }
    assert_eq!(
        many.fault
            .as_ref()
            .map(feedroll_operator::analysis::PrometheusFault::kind),
        Some(FaultKind::Rejected)
    );
    proxy.abort();
}

// ------------------------------------------------------------------------------ check CLI

fn rollout(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("rollout.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: feedroll.dev/v1alpha1\nkind: FeedRollout\nmetadata: {{name: feed, namespace: test}}\nspec:\n  template: {{metadata: {{labels: {{app: feed}}}}, spec: {{containers: [{{name: feed, image: 'feed:2'}}]}}}}\n  analysis:\n    defaultChecks: false\n    checks:\n{}",
            checks_yaml()
        ),
    )
    .unwrap();
    file
}

async fn check(file: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("check")
        .arg(file)
        .args(args)
        .output()
        .await
        .expect("run feedroll-operator")
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_takes_the_credentials_as_flags() {
    let harness = Harness::start_secure(exported()).await;
    let secure = harness.secure.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = rollout(dir.path());
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{}\n", secure.password)).unwrap();
    let ca = secure.ca_file.to_str().unwrap();
    let url = harness.url.as_str();

    // No credentials: every check is an error saying 401 (reported; exit 0, as errors are).
    let out = check(
        &file,
        &[
            "--prometheus",
            url,
            "--prometheus-ca-file",
            ca,
            "--output",
            "json",
        ],
    )
    .await;
    let json = json_of(&out);
    for c in json["checks"].as_array().unwrap() {
        assert_eq!(c["verdict"], "error");
        assert!(
            c["reason"].as_str().unwrap().contains("401 Unauthorized"),
            "{c}"
        );
    }
    assert_eq!(out.status.code(), Some(0));

    // With them: judged; the strict (blocking) check fails, so exit 1.
    let with = [
        "--prometheus",
        url,
        "--prometheus-ca-file",
        ca,
        "--prometheus-username",
        prometheus::USER,
        "--prometheus-password-file",
        password.to_str().unwrap(),
        "--prometheus-header",
        "X-Scope-OrgID=tenant-1",
        "--output",
        "json",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let (out, json) = loop {
        let out = check(&file, &with).await;
        let json = json_of(&out);
        let settled = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["verdict"] == "pass" || c["verdict"] == "fail");
        if settled || Instant::now() > deadline {
            break (out, json);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(json["checks"][0]["verdict"], "pass", "{json:#}");
    assert_eq!(json["failed"], json!(["strict"]));
    assert_eq!(out.status.code(), Some(1));

    // The wrong CA: a TLS error in every record.
    let out = check(
        &file,
        &[
            "--prometheus",
            url,
            "--prometheus-ca-file",
            secure.wrong_ca_file.to_str().unwrap(),
            "--output",
            "json",
        ],
    )
    .await;
    let reason = json_of(&out)["checks"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("TLS handshake with Prometheus failed"),
        "{reason}"
    );

    // --prometheus-insecure-skip-verify with the credentials: judged.
    let out = check(
        &file,
        &[
            "--prometheus",
            url,
            "--prometheus-insecure-skip-verify",
            "--prometheus-username",
            prometheus::USER,
            "--prometheus-password-file",
            password.to_str().unwrap(),
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(json_of(&out)["checks"][0]["verdict"], "pass");
}

#[tokio::test]
async fn check_rejects_unusable_flag_values_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = rollout(dir.path());
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("missing");
    let p = |path: &std::path::Path| path.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--prometheus-ca-file".into(), p(&not_pem)],
            "is not a PEM certificate bundle",
        ),
        (
            vec!["--prometheus-bearer-token-file".into(), p(&missing)],
            "--prometheus-bearer-token-file",
        ),
        (
            vec!["--prometheus-bearer-token-file".into(), p(&empty)],
            "the file is empty",
        ),
        (
            vec![
                "--prometheus-username".into(),
                "u".into(),
                "--prometheus-password-file".into(),
                p(&missing),
            ],
            "--prometheus-password-file",
        ),
        (
            vec!["--prometheus-header".into(), "X-Scope-OrgID".into()],
            "expected NAME=VALUE",
        ),
        (
            vec!["--prometheus-header".into(), "Bad Name=1".into()],
            "not a valid HTTP header name",
        ),
        (
            vec![
                "--prometheus-header".into(),
                "Authorization=Bearer x".into(),
            ],
            "--prometheus-bearer-token-file",
        ),
        (
            vec!["--prometheus-username".into(), "u".into()],
            "--prometheus-password-file",
        ),
        (
            vec![
                "--prometheus-username".into(),
                "u".into(),
                "--prometheus-password-file".into(),
                p(&empty),
                "--prometheus-bearer-token-file".into(),
                p(&empty),
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--prometheus-ca-file".into(),
                p(&not_pem),
                "--prometheus-insecure-skip-verify".into(),
            ],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let mut all: Vec<&str> = vec!["--prometheus", "https://127.0.0.1:9"];
        all.extend(args.iter().map(String::as_str));
        let out = check(&file, &all).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing is evaluated");
    }
    // A header written with a colon is refused without printing its (secret) value.
    let all = [
        "--prometheus",
        "https://127.0.0.1:9",
        "--prometheus-header",
        "X-Api-Key: s3cr3t-value",
    ];
    let out = check(&file, &all).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("s3cr3t-value"), "{stderr}");
}

// ------------------------------------------------------------------------- Secret cache

#[tokio::test]
async fn secrets_are_read_by_name_once_per_ttl_and_config_maps_by_field_selector() {
    let api = FakeApi::new();
    api.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom", "namespace": "prod"},
               "data": {"token": "c2VjcmV0"}}),
    );
    api.put(
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca", "namespace": "prod"},
               "data": {"ca.crt": "PEM"}, "binaryData": {"der": "AAE="}}),
    );
    api.put(
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "prod"},
               "data": {"ca.crt": "OTHER"}}),
    );
    let r = |kind, name: &str| ObjectKeyRef {
        kind,
        name: name.into(),
        key: "k".into(),
        field: "f".into(),
    };
    let refs = [
        r(ObjectKind::Secret, "prom"),
        r(ObjectKind::ConfigMap, "ca"),
        r(ObjectKind::Secret, "absent"),
    ];
    let cache = ObjectCache::new(api.client(), Duration::from_secs(60));
    let first = cache.fetch("prod", &refs).await;
    assert_eq!(
        first[&(ObjectKind::Secret, "prom".into())],
        FetchedObject::Found([("token".to_owned(), b"secret".to_vec())].into())
    );
    assert_eq!(
        first[&(ObjectKind::ConfigMap, "ca".into())],
        FetchedObject::Found(
            [
                ("ca.crt".to_owned(), b"PEM".to_vec()),
                ("der".to_owned(), vec![0, 1])
            ]
            .into()
        )
    );
    assert_eq!(
        first[&(ObjectKind::Secret, "absent".into())],
        FetchedObject::Missing
    );
    // Within the TTL: no request at all, even for the missing Secret.
    let before = api.requests().len();
    assert_eq!(cache.fetch("prod", &refs).await, first);
    assert_eq!(api.requests().len(), before);
    // Another namespace is another object.
    let elsewhere = cache.fetch("staging", &refs[..1]).await;
    assert_eq!(
        elsewhere[&(ObjectKind::Secret, "prom".into())],
        FetchedObject::Missing
    );
    // With no TTL every fetch reads (a rotation is seen at once).
    let uncached = ObjectCache::new(api.client(), Duration::ZERO);
    uncached.fetch("prod", &refs[..1]).await;
    api.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom", "namespace": "prod"},
               "data": {"token": "bmV3"}}),
    );
    let rotated = uncached.fetch("prod", &refs[..1]).await;
    assert_eq!(
        rotated[&(ObjectKind::Secret, "prom".into())],
        FetchedObject::Found([("token".to_owned(), b"new".to_vec())].into())
    );
    // An API error is reported, not cached.
    api.fail_next(
        http::Method::GET,
        "/api/v1/namespaces/prod/secrets/late",
        403,
    );
    let refused = cache.fetch("prod", &[r(ObjectKind::Secret, "late")]).await;
    assert!(matches!(
        &refused[&(ObjectKind::Secret, "late".into())],
        FetchedObject::Unreadable(why) if why.contains("403") || why.contains("orbidden")
    ));
    let again = cache.fetch("prod", &[r(ObjectKind::Secret, "late")]).await;
    assert_eq!(
        again[&(ObjectKind::Secret, "late".into())],
        FetchedObject::Missing
    );
    // Secrets were only ever read by name.
    for req in api
        .requests()
        .iter()
        .filter(|r| r.path.contains("/secrets"))
    {
        assert_eq!(req.method, http::Method::GET);
        assert!(
            req.path.rsplit('/').nth(1) == Some("secrets"),
            "{}",
            req.path
        );
    }
}
