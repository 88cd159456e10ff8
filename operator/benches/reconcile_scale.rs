//! Scale benchmark of the reconciler: N FeedRollouts against an API server and a Prometheus in
//! another process (the fake API server of the tests, served over TCP, playing the Deployment
//! controller; a Prometheus that answers every query with an empty vector and counts queries).
//!
//! For each N: create N FeedRollouts, run the real Controller until every one is `Succeeded`
//! (first deployment), measure a window at rest (`phase=idle`: nothing changes), then change
//! every pod template (a canary per rollout, analysed every 20 s full and 10 s fast) and measure
//! a window while the canaries are analysed (`phase=canary`). Per window: reconciles, the API
//! requests the operator sent (counted at the API server: GETs of one object, LISTs, WATCHes,
//! writes), Prometheus queries, the operator process's RSS at the end of the window, and the
//! p99 reconcile time (interpolated in the `feedroll_reconcile_duration_seconds` buckets, as
//! `histogram_quantile` does).
//!
//! `cargo bench -p feedroll-operator --bench reconcile_scale [-- 100 1000]` prints one line per
//! size and phase: `phase=P rollouts=N window_s=S reconciles=R api_gets=G api_lists=L
//! api_watches=X api_writes=W prometheus_queries=Q rss_mib=M reconcile_p99_ms=P99`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::{any, get, post};
use feedroll_crds::FeedRollout;
use feedroll_localkube::FakeApi;
use feedroll_localkube::path;
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

/// The API requests the operator sent, by kind.
#[derive(Default)]
struct RequestCounts {
    gets: AtomicU64,
    lists: AtomicU64,
    watches: AtomicU64,
    writes: AtomicU64,
}

impl RequestCounts {
    /// Counts one request: a GET of a named object, a LIST or a WATCH of a collection (a WATCH
    /// is one long request, counted when it starts), or a write (any other method). Discovery
    /// and other non-resource paths are not counted.
    fn count(&self, req: &Request) {
        let Some(target) = path::parse(req.uri().path()) else {
            return;
        };
        let query = req.uri().query().unwrap_or_default();
        let watch = query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1");
        let counter = match (req.method(), target.name.is_some()) {
            (&http::Method::GET, _) if watch => &self.watches,
            (&http::Method::GET, true) => &self.gets,
            (&http::Method::GET, false) => &self.lists,
            _ => &self.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({"gets": n(&self.gets), "lists": n(&self.lists),
               "watches": n(&self.watches), "writes": n(&self.writes)})
    }
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
        let counts = Arc::new(RequestCounts::default());
        let c1 = counts.clone();
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
                "/bench/requests",
                get(move || {
                    let c = c1.clone();
                    async move { axum::Json(c.snapshot()) }
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
                let counts = counts.clone();
                async move {
                    counts.count(&req);
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
        let probe = Probe {
            http: http.clone(),
            base: base.clone(),
        };
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
        let metrics = Arc::new(Metrics::new());
        let analyzer = Arc::new(PrometheusAnalyzer::new());
        tokio::spawn(analyzer.clone().run_ticks());
        let (ctx, feeds) = Context::watching(client.clone(), analyzer, metrics.clone(), "bench", "");
        tokio::spawn(controller(
            Arc::new(ctx),
            feeds,
            "",
            CONCURRENCY,
            std::future::pending(),
        ));
        probe.wait(n, "Succeeded").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        probe.window("idle", n, &metrics).await;
        let _ = http.post(format!("{base}/bench/new-image")).send().await;
        probe.wait(n, "Progressing").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        probe.window("canary", n, &metrics).await;
    });
}

/// The operator process's view of the API server process's counters.
struct Probe {
    http: reqwest::Client,
    base: String,
}

impl Probe {
    async fn json<T: serde::de::DeserializeOwned + Default>(&self, path: &str) -> T {
        let answer = self.http.get(format!("{}{path}", self.base)).send().await;
        match answer {
            Ok(r) => r.json::<T>().await.unwrap_or_default(),
            Err(_) => T::default(),
        }
    }

    /// Waits until all `n` FeedRollouts are in `phase`.
    async fn wait(&self, n: usize, phase: &str) {
        loop {
            let phases: std::collections::BTreeMap<String, usize> =
                self.json("/bench/phases").await;
            if phases.get(phase).copied().unwrap_or(0) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Measures one window and prints its line.
    async fn window(&self, phase: &str, n: usize, metrics: &Metrics) {
        let before = self.snapshot(metrics).await;
        tokio::time::sleep(measure()).await;
        let after = self.snapshot(metrics).await;
        let (rss_kib, _) = rss();
        let delta = |key: &str| {
            after.requests[key].as_u64().unwrap_or(0) - before.requests[key].as_u64().unwrap_or(0)
        };
        println!(
            "phase={phase} rollouts={n} window_s={} reconciles={} api_gets={} api_lists={} \
             api_watches={} api_writes={} prometheus_queries={} rss_mib={:.1} reconcile_p99_ms={:.1}",
            measure().as_secs(),
            after.reconciles - before.reconciles,
            delta("gets"),
            delta("lists"),
            delta("watches"),
            delta("writes"),
            after.queries.saturating_sub(before.queries),
            rss_kib as f64 / 1024.0,
            p99_ms(&before.buckets, &after.buckets),
        );
    }

    async fn snapshot(&self, metrics: &Metrics) -> Snapshot {
        let text = metrics.render();
        Snapshot {
            requests: self.json("/bench/requests").await,
            queries: self
                .json::<serde_json::Value>("/bench/queries")
                .await
                .as_u64()
                .unwrap_or(0),
            reconciles: text
                .lines()
                .filter(|l| l.starts_with("feedroll_reconciles_total"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum(),
            buckets: text
                .lines()
                .filter_map(|l| l.strip_prefix("feedroll_reconcile_duration_seconds_bucket{le=\""))
                .filter_map(|l| {
                    let (le, rest) = l.split_once("\"}")?;
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().ok()?
                    };
                    Some((le, rest.trim().parse().ok()?))
                })
                .collect(),
        }
    }
}

/// Counters at one moment.
struct Snapshot {
    requests: serde_json::Value,
    queries: u64,
    reconciles: u64,
    /// Cumulative reconcile-duration buckets: (upper bound in seconds, count).
    buckets: Vec<(f64, u64)>,
}

/// The 99th percentile of the reconciles between two bucket snapshots, in ms, interpolated
/// linearly inside its bucket (as PromQL's `histogram_quantile`); 0 without reconciles.
fn p99_ms(before: &[(f64, u64)], after: &[(f64, u64)]) -> f64 {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .zip(before)
        .map(|((le, a), (_, b))| (*le, a.saturating_sub(*b)))
        .collect();
    let total = counts.last().map_or(0, |c| c.1);
    if total == 0 {
        return 0.0;
    }
    let rank = 0.99 * total as f64;
    let mut lower = (0.0, 0);
    for (le, count) in counts {
        if count as f64 >= rank {
            if le.is_infinite() {
                return lower.0 * 1000.0;
            }
            let inside = (count - lower.1) as f64;
            let share = if inside > 0.0 {
                (rank - lower.1 as f64) / inside
            } else {
                1.0
            };
            return (lower.0 + (le - lower.0) * share) * 1000.0;
        }
        lower = (le, count);
    }
    0.0
}

/// Runs one API server and one operator process per size and prints their lines.
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
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("phase=")).collect();
        if lines.is_empty() {
            eprintln!("{n}: no result\n{}", String::from_utf8_lossy(&out.stderr));
        }
        for line in lines {
            println!("{line}");
        }
    }
}
