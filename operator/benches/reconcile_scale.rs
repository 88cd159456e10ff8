//! Scale benchmark of the reconciler: N FeedRollouts against an API server and a Prometheus in
//! another process (the fake API server of the tests, served over TCP, playing the Deployment
//! controller; a Prometheus that answers every query with an empty vector and counts queries).
//!
//! For each N: create N FeedRollouts, run the real Controller until every one is `Succeeded`
//! (first deployment), change every pod template (a canary per rollout, analysed every 20 s full
//! and 10 s fast), then measure for 40 s: Prometheus queries, reconciles, and the operator
//! process's RSS (VmRSS now, VmHWM peak; the API server's memory is in the other process).
//!
//! `cargo bench -p feedroll-operator --bench reconcile_scale [-- 100 1000]`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::routing::{any, get, post};
use feedroll_crds::FeedRollout;
use feedroll_localkube::FakeApi;
use feedroll_operator::controller::run::{CONCURRENCY, controller};
use feedroll_operator::controller::{Context, Metrics, PrometheusAnalyzer};
use kube::api::{Api, PostParams};
use serde_json::json;
use tower::Service;

const ROLE: &str = "FEEDROLL_BENCH_ROLE";
/// Measurement window (`FEEDROLL_BENCH_SECS`, default 40 s: two full analysis intervals).
fn measure() -> Duration {
    Duration::from_secs(
        std::env::var("FEEDROLL_BENCH_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40),
    )
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("api") => serve_api(),
        Ok("operator") => operator(),
        _ => drive(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The API server and Prometheus process: prints `PORTS <api> <prometheus>`.
fn serve_api() {
    runtime().block_on(async {
        let fake = FakeApi::new();
        fake.auto_roll_out();
        fake.lean();
        let queries = Arc::new(AtomicU64::new(0));
        let q = queries.clone();
        let prometheus = Router::new().route(
            "/api/v1/query",
            any(move || {
                q.fetch_add(1, Ordering::Relaxed);
                async {
                    axum::Json(json!({"status": "success",
                                      "data": {"resultType": "vector", "result": []}}))
                }
            }),
        );
        let f1 = fake.clone();
        let f2 = fake.clone();
        let f3 = fake.clone();
        let api = Router::new()
            .route(
                "/bench/phases",
                get(move || {
                    let f = f1.clone();
                    async move { axum::Json(f.phases("feedrollouts")) }
                }),
            )
            .route(
                "/bench/queries",
                get(move || {
                    let q = queries.clone();
                    async move { q.load(Ordering::Relaxed).to_string() }
                }),
            )
            .route(
                "/bench/new-image",
                post(move || {
                    let f = f2.clone();
                    async move {
                        f.update_all("feedroll.dev/v1alpha1", "feedrollouts", |o| {
                            o["spec"]["template"]["spec"]["containers"][0]["image"] =
                                json!("feed:2");
                        });
                        "ok"
                    }
                }),
            )
            .fallback(move |req: Request| {
                let mut f = f3.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .unwrap_or_default();
                    let req = http::Request::from_parts(parts, kube::client::Body::from(bytes));
                    match f.call(req).await {
                        Ok(res) => res.map(axum::body::Body::new),
                        Err(never) => match never {},
                    }
                }
            });
        let api_l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let prom_l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!(
            "PORTS {} {}",
            api_l.local_addr().expect("addr").port(),
            prom_l.local_addr().expect("addr").port()
        );
        tokio::spawn(async move {
            let _ = axum::serve(prom_l, prometheus).await;
        });
        let _ = axum::serve(api_l, api).await;
    });
}

fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

/// The operator process: creates the rollouts, runs the Controller, prints one JSON line.
fn operator() {
    let n: usize = std::env::var("FEEDROLL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let api_port = std::env::var("FEEDROLL_BENCH_API").unwrap_or_default();
    let prom_port = std::env::var("FEEDROLL_BENCH_PROM").unwrap_or_default();
    runtime().block_on(async move {
        feedroll_operator::tls::install_crypto_provider();
        let base = format!("http://127.0.0.1:{api_port}");
        let config = kube::Config::new(base.parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let http = reqwest::Client::new();
        let phases = |http: reqwest::Client, base: String| async move {
            http.get(format!("{base}/bench/phases"))
                .send()
                .await
                .ok()?
                .json::<std::collections::BTreeMap<String, usize>>()
                .await
                .ok()
        };
        let queries = |http: reqwest::Client, base: String| async move {
            http.get(format!("{base}/bench/queries"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?
                .parse::<u64>()
                .ok()
        };
        let (rss0, _) = rss();
        let start = Instant::now();
        for i in 0..n {
            let ns = format!("team-{}", i % 10);
            let fr: FeedRollout = serde_json::from_value(json!({
                "apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout",
                "metadata": {"name": format!("feed-{i}"), "namespace": ns},
                "spec": {
                    "replicas": 4,
                    "template": {"metadata": {"labels": {"app": format!("feed-{i}")}},
                                 "spec": {"containers": [{"name": "feed-server", "image": "feed:1"}]}},
                    "analysis": {"interval": "20s", "fastInterval": "10s",
                                 "prometheus": {"address": format!("http://127.0.0.1:{prom_port}")}}
                }
            }))
            .expect("rollout");
            Api::<FeedRollout>::namespaced(client.clone(), &ns)
                .create(&PostParams::default(), &fr)
                .await
                .expect("create");
        }
        let (rss_created, _) = rss();
        let metrics = Arc::new(Metrics::new());
        let analyzer = Arc::new(PrometheusAnalyzer::new());
        tokio::spawn(analyzer.clone().run_ticks());
        let ctx = Arc::new(Context::new(
            client.clone(),
            analyzer,
            metrics.clone(),
            "bench",
        ));
        tokio::spawn(controller(ctx, "", CONCURRENCY, std::future::pending()));
        let wait = |want: &'static str| {
            let http = http.clone();
            let base = base.clone();
            async move {
                loop {
                    let p = phases(http.clone(), base.clone()).await.unwrap_or_default();
                    if p.get(want).copied().unwrap_or(0) == n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        wait("Succeeded").await;
        let settled = start.elapsed();
        let (rss_settled, _) = rss();
        let _ = http.post(format!("{base}/bench/new-image")).send().await;
        wait("Progressing").await;
        let canaries = start.elapsed() - settled;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let q0 = queries(http.clone(), base.clone()).await.unwrap_or(0);
        let r0 = reconciles(&metrics);
        tokio::time::sleep(measure()).await;
        let q1 = queries(http.clone(), base.clone()).await.unwrap_or(0);
        let r1 = reconciles(&metrics);
        let (rss_now, rss_peak) = rss();
        println!(
            "{}",
            json!({
                "rollouts": n,
                "settle_s": settled.as_secs_f64(),
                "canaries_s": canaries.as_secs_f64(),
                "measure_s": measure().as_secs(),
                "prometheus_queries": q1 - q0,
                "reconciles": r1 - r0,
                "rss_start_kib": rss0,
                "rss_created_kib": rss_created,
                "rss_settled_kib": rss_settled,
                "rss_kib": rss_now,
                "rss_peak_kib": rss_peak,
            })
        );
    });
}

fn reconciles(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("feedroll_reconciles_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// Runs one API server and one operator process per size and prints a table.
fn drive() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and a
    // benchmark of minutes does not belong in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "reconcile_scale: a benchmark; run `cargo bench -p feedroll-operator --bench reconcile_scale`"
        );
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    let exe = std::env::current_exe().expect("current exe");
    println!(
        "| rollouts | first deployments settled | canaries started | Prometheus queries | reconciles | operator RSS | peak RSS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for n in sizes {
        let mut api = Command::new(&exe)
            .env(ROLE, "api")
            .stdout(Stdio::piped())
            .spawn()
            .expect("api server");
        let mut line = String::new();
        let stdout = api.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("ports");
        let ports: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = Command::new(&exe)
            .env(ROLE, "operator")
            .env("FEEDROLL_BENCH_N", n.to_string())
            .env(
                "FEEDROLL_BENCH_API",
                ports.first().copied().unwrap_or_default(),
            )
            .env(
                "FEEDROLL_BENCH_PROM",
                ports.get(1).copied().unwrap_or_default(),
            )
            .output()
            .expect("operator");
        let _ = api.kill();
        let _ = api.wait();
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{}", text.trim());
        let Some(r) = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        else {
            eprintln!("{n}: no result\n{}", String::from_utf8_lossy(&out.stderr));
            continue;
        };
        println!(
            "| {} | {:.1} s | {:.1} s | {} | {} | {:.1} MiB | {:.1} MiB |",
            r["rollouts"],
            r["settle_s"].as_f64().unwrap_or(0.0),
            r["canaries_s"].as_f64().unwrap_or(0.0),
            r["prometheus_queries"],
            r["reconciles"],
            r["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            r["rss_peak_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
}
