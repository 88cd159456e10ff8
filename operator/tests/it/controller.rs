//! The real kube-runtime Controller (`controller::run::controller`: watches of FeedRollouts,
//! owned Deployments/Services/ConfigMaps and rollout Pods, the watch caches, the analyzer's
//! wake-ups, the finalizer, requeues) against the fake API server with watches, in real time
//! with short intervals.

use std::sync::Arc;
use std::time::Duration;

use feedroll_crds::{AnalysisRun, CheckRecord, FeedRollout, Phase, ResolvedAnalysis, Verdict};
use feedroll_localkube::FakeApi;
use feedroll_operator::analysis::Target;
use feedroll_operator::controller::run::{CONCURRENCY, controller};
use feedroll_operator::controller::{Analyzer, Context, Metrics, PrometheusAnalyzer};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "prod";
const FR: &str = "feedroll.dev/v1alpha1";
const APPS: &str = "apps/v1";

/// Every check passes.
struct Passing;

impl Analyzer for Passing {
    fn analyze<'a>(
        &'a self,
        _: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun> {
        Box::pin(async move {
            AnalysisRun {
                at: Some(Time(at)),
                fast,
                records: analysis
                    .checks
                    .iter()
                    .filter(|c| !fast || c.is_fast())
                    .map(|c| CheckRecord {
                        name: c.name.clone(),
                        tier: c.tier,
                        at: Some(Time(at)),
                        value: Some(0.0),
                        verdict: Verdict::Pass,
                        ..CheckRecord::default()
                    })
                    .collect(),
            }
        })
    }
}

fn rollout(image: &str, interval: &str) -> Value {
    json!({
        "apiVersion": FR, "kind": "FeedRollout",
        "metadata": {"name": "feed", "namespace": NS},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "feed"}},
                "spec": {"containers": [{"name": "feed-server", "image": image}]}
            },
            "strategy": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]},
            "analysis": {"interval": interval, "fastInterval": interval}
        }
    })
}

/// Starts the controller on `api`; dropping the sender stops it.
fn start(api: &FakeApi) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, task, _) = start_with(api, Arc::new(Passing));
    (stop, task)
}

/// Starts the controller on `api` with `analyzer`; dropping the sender stops it.
fn start_with(
    api: &FakeApi,
    analyzer: Arc<dyn Analyzer>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    Arc<Metrics>,
) {
    let metrics = Arc::new(Metrics::new());
    let (ctx, feeds) = Context::watching(api.client(), analyzer, metrics.clone(), "test-0", NS);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        controller(Arc::new(ctx), feeds, NS, CONCURRENCY, async move {
            let _ = rx.await;
        })
        .await;
    });
    (tx, task, metrics)
}

/// Reconciles so far.
fn reconciles(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("feedroll_reconciles_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// Waits (up to 15 s) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn phase(api: &FakeApi) -> Option<String> {
    api.get(FR, "feedrollouts", NS, "feed")?["status"]["phase"]
        .as_str()
        .map(str::to_owned)
}

fn replicas(api: &FakeApi, track: &str) -> Option<i64> {
    api.get(APPS, "deployments", NS, &format!("feed-{track}"))?["spec"]["replicas"].as_i64()
}

fn roll_out(api: &FakeApi, track: &str) {
    api.roll_out(NS, &format!("feed-{track}"));
}

fn set_image(api: &FakeApi, image: &str) {
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    });
}

fn is(api: &FakeApi, p: Phase) -> bool {
    phase(api).as_deref() == Some(p.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_rolls_out_promotes_and_cleans_up_on_its_own() {
    let api = FakeApi::new();
    let (stop, task) = start(&api);
    api.put("feedrollouts", rollout("feed:1", "1s"));
    until("first deployment", || replicas(&api, "stable") == Some(2)).await;
    roll_out(&api, "stable");
    until("Succeeded", || is(&api, Phase::Succeeded)).await;

    set_image(&api, "feed:2");
    until("canary", || replicas(&api, "canary") == Some(1)).await;
    roll_out(&api, "canary");
    // Ready canary → stable gives a pod up; analysis every second; 1s pause; promotion.
    until("Promoting", || is(&api, Phase::Promoting)).await;
    until("stable at full size", || {
        replicas(&api, "stable") == Some(2)
    })
    .await;
    roll_out(&api, "stable");
    roll_out(&api, "canary");
    until("promoted", || {
        is(&api, Phase::Succeeded) && replicas(&api, "canary") == Some(0)
    })
    .await;
    let image = api.get(APPS, "deployments", NS, "feed-stable").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .clone();
    assert_eq!(image, "feed:2");

    let frs: Api<FeedRollout> = Api::namespaced(api.client(), NS);
    frs.delete("feed", &DeleteParams::default()).await.unwrap();
    until("deleted", || {
        api.get(FR, "feedrollouts", NS, "feed").is_none()
    })
    .await;
    assert!(api.list(APPS, "deployments", NS).is_empty());
    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the controller stops")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_canary_pod_triggers_the_rollback_through_the_pod_watch() {
    let api = FakeApi::new();
    let (_stop, _task) = start(&api);
    // Analysis and requeues every 10 minutes: only the Pod watch can react quickly.
    api.put("feedrollouts", rollout("feed:1", "10m"));
    until("first deployment", || replicas(&api, "stable") == Some(2)).await;
    roll_out(&api, "stable");
    until("Succeeded", || is(&api, Phase::Succeeded)).await;
    set_image(&api, "feed:2");
    until("canary", || replicas(&api, "canary") == Some(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rev = api.get(FR, "feedrollouts", NS, "feed").unwrap()["status"]["canaryRevision"].clone();
    api.put(
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "feed-canary-x", "namespace": NS,
                         "labels": {"app": "feed", "feedroll.dev/rollout": "feed",
                                    "feedroll.dev/track": "canary", "feedroll.dev/revision": rev}},
            "spec": {"containers": [{"name": "feed-server", "image": "feed:2"}]},
            "status": {"containerStatuses": [{"name": "feed-server", "image": "feed:2", "imageID": "",
                        "ready": false, "restartCount": 5,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }),
    );
    until("RolledBack", || is(&api, Phase::RolledBack)).await;
    until("canary removed", || replicas(&api, "canary") == Some(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_rollout_is_reconciled_from_the_watch_caches_without_a_get_or_list() {
    let api = FakeApi::new();
    let (_stop, _task, metrics) = start_with(&api, Arc::new(Passing));
    api.put("feedrollouts", rollout("feed:1", "10m"));
    until("first deployment", || replicas(&api, "stable") == Some(2)).await;
    roll_out(&api, "stable");
    until("Succeeded", || is(&api, Phase::Succeeded)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.clear_requests();
    // Three changes of watched objects, three reconciles.
    for i in 0..3 {
        let before = reconciles(&metrics);
        api.update(FR, "feedrollouts", NS, "feed", |o| {
            o["metadata"]["labels"] = json!({"touched": i.to_string()});
        });
        until("a reconcile", || reconciles(&metrics) > before).await;
    }
    let reads: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::GET && !r.query.contains("watch="))
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(reads.is_empty(), "reads at steady state: {reads:?}");
    assert!(is(&api, Phase::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_analysis_run_wakes_its_rollout_without_polling() {
    let api = FakeApi::new();
    // Nothing listens on port 1: every run is ready at once, with `error` verdicts.
    let analyzer = Arc::new(PrometheusAnalyzer::new());
    tokio::spawn(analyzer.clone().run_ticks());
    let (_stop, _task, _) = start_with(&api, analyzer);
    // Analysis every 10 minutes: the reconcile that queues the run asks to come back much
    // later; only the analyzer's wake brings the run into the status quickly.
    let mut fr = rollout("feed:1", "10m");
    fr["spec"]["analysis"]["prometheus"] =
        json!({"address": "http://127.0.0.1:1", "timeout": "1s"});
    fr["spec"]["strategy"]["steps"] = json!([{"setWeight": 50}, {"pause": {"duration": "10m"}}]);
    api.put("feedrollouts", fr);
    until("first deployment", || replicas(&api, "stable") == Some(2)).await;
    roll_out(&api, "stable");
    until("Succeeded", || is(&api, Phase::Succeeded)).await;
    set_image(&api, "feed:2");
    until("canary", || replicas(&api, "canary") == Some(1)).await;
    roll_out(&api, "canary");
    until("the run in the status", || {
        api.get(FR, "feedrollouts", NS, "feed").is_some_and(|o| {
            o["status"]["analysis"]["records"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        })
    })
    .await;
}
