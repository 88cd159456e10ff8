//! A canary nobody uses yet: a real feed-server that only kubelet-style probes (`/healthz`,
//! `/readyz`, including the 503s of its warm-up while Redis is not there) and a real
//! Prometheus's scrapes reach. The default checks must be `no-data` (held), never a pass on
//! probes nor a failure on warm-up 503s; once real `/v1/` traffic flows they are judged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use feedroll_crds::{CheckRecord, FeedRolloutSpec, ResolvedCheck, TrafficMode, Verdict};
use feedroll_e2e::procs::{FeedServer, Prometheus, Redis, free_port};
use feedroll_e2e::traffic::{Traffic, TrafficPlan};
use feedroll_operator::analysis::{AnalysisEngine, Target};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

const ROLLOUT: &str = "probe";

/// The default policy: a FeedRollout without `analysis`.
fn default_checks() -> Vec<ResolvedCheck> {
    let spec: FeedRolloutSpec =
        serde_yaml::from_str("template: {spec: {containers: [{name: feed, image: 'feed:1'}]}}")
            .expect("spec");
    spec.resolved_analysis().expect("default policy").checks
}

/// The value of a scalar PromQL query (the sum of the answer's samples), 0 when empty.
async fn prom_value(prometheus: &Prometheus, query: &str) -> f64 {
    let answer: Option<Value> = async {
        reqwest::Client::new()
            .get(format!("{}/api/v1/query", prometheus.url()))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
    .await;
    answer
        .as_ref()
        .and_then(|a| a.pointer("/data/result"))
        .and_then(Value::as_array)
        .map_or(0.0, |samples| {
            samples
                .iter()
                .filter_map(|s| s.pointer("/value/1")?.as_str()?.parse::<f64>().ok())
                .sum()
        })
}

/// Polls until Prometheus answers `query` with at least `at_least`, at most 30 s.
async fn wait_for(prometheus: &Prometheus, query: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = prom_value(prometheus, query).await;
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query} = {v}, want >= {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Probes `/healthz` and `/readyz` every 100 ms, as a kubelet would (only faster), counting
/// the 503s of `/readyz`.
fn probe(base: String, readyz_503: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let _ = client.get(format!("{base}/healthz")).send().await;
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status() == 503
            {
                readyz_503.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn record<'a>(records: &'a [CheckRecord], name: &str) -> &'a CheckRecord {
    records
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no record {name}: {records:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_scrapes_alone_are_no_data_and_real_traffic_is_judged() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The canary starts before its Redis: warm-up cannot finish, /readyz answers 503.
    let redis_port = free_port().expect("port");
    let canary = FeedServer::spawn(
        &format!("redis://127.0.0.1:{redis_port}/"),
        ROLLOUT,
        "canary",
        "name: v2\n",
        dir.path(),
    )
    .expect("feed-server starts without Redis");
    let prometheus = Prometheus::start(&[canary.target()]).expect("prometheus");
    let readyz_503 = Arc::new(AtomicU64::new(0));
    let prober = probe(canary.url(), readyz_503.clone());

    // Prometheus sees the warm-up 503s, in the operational counter.
    let sel = format!(r#"rollout="{ROLLOUT}",track="canary""#);
    wait_for(
        &prometheus,
        &format!(r#"feed_http_operational_requests_total{{{sel},route="/readyz",status="503"}}"#),
        1.0,
    )
    .await;
    assert!(readyz_503.load(Ordering::Relaxed) > 0);
    let _redis = Redis::start_on(redis_port).expect("redis");
    canary
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("ready once Redis is up");
    // More probes and scrapes than any default minRequests (50), all seen by Prometheus.
    wait_for(
        &prometheus,
        &format!("sum(feed_http_operational_requests_total{{{sel}}})"),
        150.0,
    )
    .await;
    wait_for(
        &prometheus,
        &format!(r#"feed_http_operational_requests_total{{{sel},route="/metrics",status="200"}}"#),
        3.0,
    )
    .await;

    let engine = AnalysisEngine::new(&prometheus.url(), Duration::from_secs(5)).expect("engine");
    let target = Target {
        namespace: None,
        rollout: ROLLOUT.to_owned(),
        traffic: TrafficMode::ReplicaRatio,
    };
    let checks = default_checks();
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    for name in ["error-rate", "latency-p95", "availability"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let run = engine
        .evaluate(&target, &checks, false, Timestamp::now())
        .await;
    assert_eq!(run.records.len(), checks.len());
    for r in &run.records {
        assert_eq!(r.verdict, Verdict::NoData, "probes alone judged: {r:?}");
        assert!(r.value.is_none(), "{r:?}");
    }
    assert!(
        record(&run.records, "error-rate")
            .reason
            .contains("minRequests")
            || record(&run.records, "error-rate")
                .reason
                .contains("no series"),
        "{:?}",
        record(&run.records, "error-rate")
    );

    // Now users: every request of the generator goes to the canary.
    let videos: Vec<Value> = (0..50)
        .map(|i| {
            json!({"id": format!("v{i}"), "creator_id": format!("c{}", i % 5),
                "published_at": "2026-11-25T00:00:00Z", "duration_ms": 30000, "language": "en",
                "region": "US", "tags": ["t"], "content_type": "short"})
        })
        .collect();
    reqwest::Client::new()
        .put(format!("{}/v1/videos", canary.url()))
        .json(&videos)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("catalog");
    let traffic = Traffic::start(TrafficPlan {
        stable: canary.url(),
        canary: canary.url(),
        rate: 40,
        users: 50,
        videos: (0..50).map(|i| format!("v{i}")).collect(),
    });
    traffic.set_weight(100);
    let deadline = Instant::now() + Duration::from_secs(45);
    let records = loop {
        let run = engine
            .evaluate(&target, &checks, false, Timestamp::now())
            .await;
        let judged = ["error-rate", "availability", "latency-p95"]
            .iter()
            .all(|n| record(&run.records, n).value.is_some());
        if judged || Instant::now() > deadline {
            break run.records;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    prober.abort();
    for name in ["error-rate", "error-rate-critical", "availability"] {
        let r = record(&records, name);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.requests.unwrap_or(0.0) >= 50.0, "{r:?}");
    }
    assert_eq!(record(&records, "error-rate").value, Some(0.0));
    assert_eq!(record(&records, "availability").value, Some(1.0));
    let p95 = record(&records, "latency-p95");
    assert!(
        matches!(p95.verdict, Verdict::Pass | Verdict::Fail) && p95.value.is_some(),
        "{p95:?}"
    );
    // Not one of the probes' 503s reached the request series the checks read.
    assert_eq!(
        prom_value(
            &prometheus,
            &format!(r#"feed_http_requests_total{{{sel},status=~"5.."}}"#)
        )
        .await,
        0.0
    );
}
