//! The reconciler through a real `kube::Client` over the in-memory fake API server
//! (`feedroll-localkube`), with scripted analysis verdicts and a hand-moved clock. Each test
//! plays the Deployment controller (marking Deployments rolled out) and the human.

use crate::support::prometheus;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feedroll_crds::{
    AnalysisRun, CheckRecord, FeedRollout, FeedRolloutStatus, Phase, ResolvedAnalysis, Tier,
    Verdict,
};
use feedroll_localkube::FakeApi;
use feedroll_operator::analysis::PrometheusFault;
use feedroll_operator::analysis::Target;
use feedroll_operator::controller::caches::Caches;
use feedroll_operator::controller::credentials::ObjectCache;
use feedroll_operator::controller::{
    Analyzer, ApplyCache, Context, EventPublisher, Metrics, PrometheusAnalyzer, rbac, reconcile,
};
use feedroll_operator::desired::Track;
use futures::future::BoxFuture;
use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

const NS: &str = "prod";
const FR: &str = "feedroll.dev/v1alpha1";
const APPS: &str = "apps/v1";

/// Answers every check with the verdict set for its tier (pass by default).
#[derive(Default)]
struct Scripted {
    failing: Mutex<Vec<Tier>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn fail(&self, tier: Tier) {
        self.failing.lock().unwrap().push(tier);
    }
}

impl Analyzer for Scripted {
    fn analyze<'a>(
        &'a self,
        _target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let failing = self.failing.lock().unwrap().clone();
        Box::pin(async move {
            AnalysisRun {
                at: Some(Time(at)),
                fast,
                records: analysis
                    .checks
                    .iter()
                    .filter(|c| !fast || c.is_fast())
                    .map(|c| {
                        let fail = failing.contains(&c.tier);
                        CheckRecord {
                            name: c.name.clone(),
                            tier: c.tier,
                            at: Some(Time(at)),
                            query: format!("scripted {}", c.name),
                            threshold: c.threshold_text(),
                            value: Some(if fail { 0.5 } else { 0.0 }),
                            verdict: if fail { Verdict::Fail } else { Verdict::Pass },
                            reason: "scripted".into(),
                            ..CheckRecord::default()
                        }
                    })
                    .collect(),
            }
        })
    }
}

/// One operator instance (a restart is a new `Operator` on the same API server).
struct Operator {
    api: FakeApi,
    ctx: Arc<Context>,
    now: Arc<Mutex<Timestamp>>,
    analyzer: Arc<Scripted>,
    metrics: Arc<Metrics>,
    caches: Caches,
}

impl Operator {
    fn new(api: &FakeApi, start: Timestamp) -> Self {
        Self::with_cache(api, start, Duration::ZERO)
    }

    fn with_cache(api: &FakeApi, start: Timestamp, ttl: Duration) -> Self {
        let analyzer = Arc::new(Scripted::default());
        Self::with_parts(api, start, ttl, analyzer.clone(), analyzer)
    }

    /// An operator whose reconciler asks `analyzer` (`self.analyzer` is then unused).
    fn with_analyzer(api: &FakeApi, start: Timestamp, analyzer: Arc<dyn Analyzer>) -> Self {
        let unused = Arc::new(Scripted::default());
        Self::with_parts(api, start, Duration::ZERO, unused, analyzer)
    }

    fn with_parts(
        api: &FakeApi,
        start: Timestamp,
        ttl: Duration,
        scripted: Arc<Scripted>,
        analyzer: Arc<dyn Analyzer>,
    ) -> Self {
        let client = api.client();
        let now = Arc::new(Mutex::new(start));
        let clock_now = now.clone();
        let metrics = Arc::new(Metrics::new());
        // The watch caches, fed as the Controller's watches would feed them.
        let (caches, feeds) = Caches::watch(&client, NS);
        tokio::spawn(feeds.drive());
        let ctx = Arc::new(Context {
            caches: caches.clone(),
            events: EventPublisher::new(client.clone(), "test-0"),
            client,
            analyzer,
            metrics: metrics.clone(),
            clock: Arc::new(move || *clock_now.lock().unwrap()),
            cache: ApplyCache::new(ttl),
            resync: Duration::from_secs(300),
        });
        Self {
            api: api.clone(),
            ctx,
            now,
            analyzer: scripted,
            metrics,
            caches,
        }
    }

    /// Waits until the watch caches hold what the API server holds. The Controller reconciles
    /// on the watch events that fill them; a test that calls the reconcile itself right after
    /// changing an object waits for the event first, as the Controller would.
    async fn synced(&self) {
        for _ in 0..500 {
            if self.caches_match() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the watch caches never caught up with the API server");
    }

    /// Whether the cached Deployments and pods of every rollout in `NS` are the API server's
    /// (same resourceVersions; only objects the caches watch: managed Deployments, rollout pods).
    fn caches_match(&self) -> bool {
        let rv = |o: &Value| o["metadata"]["resourceVersion"].as_str().map(str::to_owned);
        let label = |o: &Value, key: &str| o["metadata"]["labels"][key].as_str().map(str::to_owned);
        let deployments = self.api.list(APPS, "deployments", NS);
        let pods = self.api.list("v1", "pods", NS);
        let rollouts: Vec<String> = self
            .api
            .list(FR, "feedrollouts", NS)
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        rollouts.iter().all(|r| {
            [Track::Stable, Track::Canary].into_iter().all(|track| {
                let name = format!("{r}-{}", track.as_str());
                let live = deployments
                    .iter()
                    .find(|d| {
                        d["metadata"]["name"] == name.as_str()
                            && label(d, "app.kubernetes.io/managed-by").as_deref()
                                == Some("feedroll-operator")
                    })
                    .and_then(rv);
                let cached = self
                    .caches
                    .deployment(NS, &name)
                    .and_then(|d| d.resource_version());
                let mut live_pods: Vec<String> = pods
                    .iter()
                    .filter(|p| {
                        label(p, "feedroll.dev/rollout").as_deref() == Some(r.as_str())
                            && label(p, "feedroll.dev/track").as_deref() == Some(track.as_str())
                    })
                    .filter_map(rv)
                    .collect();
                let mut cached_pods: Vec<String> = self
                    .caches
                    .pods(NS, r, track)
                    .iter()
                    .filter_map(|p| p.resource_version())
                    .collect();
                live_pods.sort();
                cached_pods.sort();
                live == cached && live_pods == cached_pods
            })
        })
    }

    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap()
    }

    fn advance(&self, secs: i64) {
        let mut now = self.now.lock().unwrap();
        *now = now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
            .unwrap();
    }

    async fn reconcile_named(
        &self,
        name: &str,
    ) -> Result<kube_runtime::controller::Action, String> {
        let api: Api<FeedRollout> = Api::namespaced(self.api.client(), NS);
        let fr = api.get(name).await.map_err(|e| e.to_string())?;
        self.synced().await;
        reconcile(Arc::new(fr), self.ctx.clone())
            .await
            .map_err(|e| e.to_string())
    }

    /// Reconciles `feed` (twice the first time: the finalizer is added first).
    async fn reconcile(&self) -> kube_runtime::controller::Action {
        self.reconcile_named("feed").await.unwrap()
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_900_000_000 + secs).unwrap()
}

fn rollout(name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": FR, "kind": "FeedRollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "feed-server"}},
                "spec": {"containers": [{"name": "feed-server", "image": image,
                                         "ports": [{"name": "http", "containerPort": 8080}]}]}
            },
            "strategy": {"steps": [
                {"setWeight": 25}, {"pause": {"duration": "2m"}},
                {"setWeight": 50}, {"pause": {"duration": "2m"}}
            ]}
        }
    })
}

fn fr(api: &FakeApi) -> Value {
    api.get(FR, "feedrollouts", NS, "feed").unwrap()
}

fn status(api: &FakeApi) -> FeedRolloutStatus {
    serde_json::from_value(fr(api)["status"].clone()).unwrap_or_default()
}

fn deployment(api: &FakeApi, track: &str) -> Value {
    api.get(APPS, "deployments", NS, &format!("feed-{track}"))
        .unwrap_or(Value::Null)
}

fn replicas(api: &FakeApi, track: &str) -> i64 {
    deployment(api, track)["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

fn image(api: &FakeApi, track: &str) -> String {
    deployment(api, track)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn env(api: &FakeApi, track: &str, name: &str) -> Option<String> {
    deployment(api, track)["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

/// Plays the Deployment controller: every pod of the Deployment is updated, ready, available.
fn roll_out(api: &FakeApi, track: &str) {
    api.roll_out(NS, &format!("feed-{track}"));
}

fn set_image(api: &FakeApi, image: &str) {
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    });
}

fn annotate(api: &FakeApi, command: &str) {
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["metadata"]["annotations"] = json!({"feedroll.dev/command": command});
    });
}

fn event_reasons(api: &FakeApi) -> Vec<String> {
    let mut events = api.list("events.k8s.io/v1", "events", NS);
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .parse::<u64>()
            .unwrap_or(0)
    });
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A FeedRollout whose stable runs feed:1 (first deployment done), at t = 0.
async fn settled(api: &FakeApi) -> Operator {
    api.put("feedrollouts", rollout("feed", "feed:1", 4));
    let op = Operator::new(api, at(0));
    op.reconcile().await; // adds the finalizer
    assert_eq!(
        fr(api)["metadata"]["finalizers"],
        json!(["feedroll.dev/cleanup"])
    );
    op.reconcile().await;
    assert_eq!(status(api).phase, Some(Phase::Promoting));
    assert_eq!(replicas(api, "stable"), 4);
    assert_eq!(replicas(api, "canary"), 0);
    roll_out(api, "stable");
    op.reconcile().await;
    let st = status(api);
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}");
    assert!(st.stable_revision.is_some());
    op
}

/// `settled`, then feed:2 in the spec and the first step (25%) with a ready canary.
async fn canary_at_25(api: &FakeApi) -> Operator {
    let op = settled(api).await;
    op.advance(10);
    set_image(api, "feed:2");
    op.reconcile().await;
    op.advance(5);
    roll_out(api, "canary");
    op.reconcile().await;
    op
}

#[tokio::test]
async fn new_revision_creates_the_canary_with_replicas_env_and_services() {
    let api = FakeApi::new();
    let op = settled(&api).await;
    op.advance(10);
    set_image(&api, "feed:2");
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.phase, st.weight, st.current_step_index),
        (Some(Phase::Progressing), 25, Some(0))
    );
    // 25% of 4 = 1 canary pod; stable keeps its 4 until the canary is ready.
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (4, 1));
    assert_eq!(image(&api, "canary"), "feed:2");
    assert_eq!(image(&api, "stable"), "feed:1");
    assert_eq!(env(&api, "canary", "FEED_TRACK").as_deref(), Some("canary"));
    assert_eq!(env(&api, "canary", "FEED_ROLLOUT").as_deref(), Some("feed"));
    assert_eq!(env(&api, "stable", "FEED_TRACK").as_deref(), Some("stable"));
    let owner = &deployment(&api, "canary")["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("FeedRollout"), Some(true))
    );
    for svc in ["feed", "feed-stable", "feed-canary"] {
        let s = api
            .get("v1", "services", NS, svc)
            .unwrap_or_else(|| panic!("service {svc}"));
        assert_eq!(s["spec"]["selector"]["feedroll.dev/rollout"], "feed");
    }
    assert_eq!(
        api.get("v1", "services", NS, "feed-canary").unwrap()["spec"]["selector"]["feedroll.dev/track"],
        "canary"
    );
    // Ready canary: stable gives up one pod.
    op.advance(5);
    roll_out(&api, "canary");
    op.reconcile().await;
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (3, 1));
    let st = status(&api);
    assert_eq!((st.replicas, st.canary_replicas), (5, 1));
    assert_eq!(
        st.selector.as_deref(),
        Some("app.kubernetes.io/name=feed-server,feedroll.dev/rollout=feed")
    );
    let reasons = event_reasons(&api);
    assert!(
        reasons.contains(&"RolloutStarted".to_owned()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"StepAdvanced".to_owned()), "{reasons:?}");

    // Server-side apply with the operator's field manager; on the FeedRollout only status and
    // the finalizer are written.
    for r in api.requests().iter().filter(|r| r.method == Method::PATCH) {
        if r.path.contains("/feedrollouts/") {
            let ok = r.path.ends_with("/status")
                || (r.content_type.starts_with("application/json-patch")
                    && r.body
                        .as_ref()
                        .unwrap()
                        .to_string()
                        .contains("/metadata/finalizers"));
            assert!(ok, "wrote the FeedRollout outside status/finalizers: {r:?}");
        } else {
            assert!(
                r.content_type.starts_with("application/apply-patch"),
                "{r:?}"
            );
            assert!(r.query.contains("fieldManager=feedroll-operator"), "{r:?}");
            assert!(r.query.contains("force=true"), "{r:?}");
        }
    }
}

#[tokio::test]
async fn steps_advance_after_the_pause_and_passing_analysis_then_promote() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    // The canary became ready and a check passed after the step started: the pause step runs.
    let st = status(&api);
    assert_eq!(st.current_step_index, Some(1), "{:?}", st.message);
    let action = op.reconcile().await;
    // Requeued when the next check is due (the fast, roll-back-tier interval: 10s).
    assert_eq!(
        action,
        kube_runtime::controller::Action::requeue(Duration::from_secs(10))
    );
    // Still pausing a minute later.
    op.advance(60);
    op.reconcile().await;
    assert_eq!(status(&api).current_step_index, Some(1));
    // The 2m pause is over and the analysis passed: exactly one step further.
    op.advance(61);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.current_step_index, st.weight),
        (Some(2), 50),
        "{:?}",
        st.message
    );
    assert_eq!(replicas(&api, "canary"), 2);
    roll_out(&api, "canary");
    op.advance(60);
    op.reconcile().await;
    op.advance(121);
    op.reconcile().await;
    op.advance(1);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(st.phase, Some(Phase::Promoting), "{:?}", st.message);
    // Promotion: stable moves to feed:2 at full size while the canary serves.
    assert_eq!(image(&api, "stable"), "feed:2");
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (4, 4));
    roll_out(&api, "stable");
    roll_out(&api, "canary");
    op.advance(5);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(st.phase, Some(Phase::Succeeded), "{:?}", st.message);
    assert_eq!(st.stable_revision, st.canary_revision);
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (4, 0));
    assert!(event_reasons(&api).contains(&"Promoted".to_owned()));
    assert!(op.metrics.render().contains(
        "feedroll_rollout_phase{namespace=\"prod\",phase=\"Succeeded\",rollout=\"feed\"} 1"
    ));
}

#[tokio::test]
async fn analysis_failure_rolls_back_at_once() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    op.analyzer.fail(Tier::Rollback);
    op.advance(10);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.phase, st.weight),
        (Some(Phase::RolledBack), 0),
        "{:?}",
        st.message
    );
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (4, 0));
    assert_eq!(image(&api, "stable"), "feed:1");
    let reasons = event_reasons(&api);
    assert!(
        reasons.contains(&"AnalysisFailed".to_owned()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"RolledBack".to_owned()), "{reasons:?}");
    let metrics = op.metrics.render();
    assert!(
        metrics.contains("feedroll_breach_to_rollback_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("verdict=\"fail\""), "{metrics}");
    // Sticky until retry.
    op.advance(60);
    op.reconcile().await;
    assert_eq!(status(&api).phase, Some(Phase::RolledBack));
    op.analyzer.failing.lock().unwrap().clear();
    annotate(&api, "retry/1");
    op.reconcile().await;
    let st = status(&api);
    assert_eq!((st.phase, st.weight), (Some(Phase::Progressing), 25));
    assert_eq!(st.last_command_id.as_deref(), Some("retry/1"));
}

#[tokio::test]
async fn crash_looping_canary_pod_rolls_back_without_analysis() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    let rev = status(&api).canary_revision.unwrap();
    api.put(
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "feed-canary-x1", "namespace": NS,
                         "labels": {"feedroll.dev/rollout": "feed", "feedroll.dev/track": "canary",
                                    "feedroll.dev/revision": rev}},
            "spec": {"containers": [{"name": "feed-server", "image": "feed:2"}]},
            "status": {"containerStatuses": [{"name": "feed-server", "image": "feed:2", "imageID": "",
                        "ready": false, "restartCount": 2,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }),
    );
    let calls = op.analyzer.calls.load(Ordering::Relaxed);
    op.advance(1);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.phase, st.weight),
        (Some(Phase::RolledBack), 0),
        "{:?}",
        st.message
    );
    assert!(st.message.unwrap_or_default().contains("crash-looping"));
    assert_eq!(
        op.analyzer.calls.load(Ordering::Relaxed),
        calls,
        "no analysis was due"
    );
    assert_eq!(replicas(&api, "canary"), 0);
}

fn canary_pod(rev: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "feed-canary-x1", "namespace": NS,
                     "labels": {"feedroll.dev/rollout": "feed", "feedroll.dev/track": "canary",
                                "feedroll.dev/revision": rev}},
        "spec": {"containers": [{"name": "feed-server", "image": "feed:nope"}]},
        "status": status
    })
}

#[tokio::test]
async fn a_canary_image_that_cannot_be_pulled_is_reported_then_rolled_back_at_the_deadline() {
    let api = FakeApi::new();
    let op = settled(&api).await;
    op.advance(10);
    set_image(&api, "feed:nope");
    op.reconcile().await;
    assert_eq!(status(&api).weight, 25);
    assert_eq!(replicas(&api, "canary"), 1);
    let rev = status(&api).canary_revision.unwrap();
    api.put(
        "pods",
        canary_pod(
            &rev,
            json!({"phase": "Pending", "containerStatuses": [{"name": "feed-server", "image": "feed:nope",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff",
                                      "message": "Back-off pulling image \"feed:nope\""}}}]}),
        ),
    );
    op.advance(10);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(st.phase, Some(Phase::Progressing));
    assert_eq!(st.canary_pod_issues.len(), 1, "{st:?}");
    assert_eq!(
        st.canary_pod_issues[0].to_string(),
        "pod feed-canary-x1 container feed-server: ImagePullBackOff (Back-off pulling image \"feed:nope\")"
    );
    assert!(st.message.as_deref().unwrap().contains("ImagePullBackOff"));
    assert_eq!(
        (st.weight, st.actual_weight),
        (25, 0),
        "no ready canary pod"
    );
    // The alert's input: since when the step has waited (the step started at t = 10).
    let waiting = format!(
        "feedroll_rollout_canary_waiting_since_timestamp_seconds{{namespace=\"prod\",rollout=\"feed\"}} {}",
        at(10).as_second()
    );
    assert!(
        op.metrics.render().contains(&waiting),
        "{}",
        op.metrics.render()
    );
    let reasons = event_reasons(&api);
    assert_eq!(
        reasons.iter().filter(|r| *r == "CanaryNotReady").count(),
        1,
        "{reasons:?}"
    );
    // Still failing a few minutes later: no second event, no action before the deadline.
    op.advance(300);
    op.reconcile().await;
    assert_eq!(status(&api).phase, Some(Phase::Progressing));
    assert_eq!(
        event_reasons(&api)
            .iter()
            .filter(|r| *r == "CanaryNotReady")
            .count(),
        1
    );
    // The default 10m deadline, counted from the step's start (t = 10).
    op.advance(290);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!((st.phase, st.weight), (Some(Phase::RolledBack), 0));
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .contains("progress deadline 600s exceeded"),
        "{:?}",
        st.message
    );
    assert!(event_reasons(&api).contains(&"ProgressDeadlineExceeded".to_owned()));
    assert!(
        !op.metrics
            .render()
            .contains("feedroll_rollout_canary_waiting_since_timestamp_seconds{")
    );
    assert!(
        op.metrics
            .render()
            .contains("feedroll_breach_to_rollback_seconds_count 0"),
        "a missed deadline is no SLO breach"
    );
    assert_eq!(replicas(&api, "canary"), 0);
    assert_eq!(replicas(&api, "stable"), 4);
}

#[tokio::test]
async fn a_first_deployment_that_cannot_pull_its_image_is_reported_and_flagged_at_the_deadline() {
    let api = FakeApi::new();
    api.put("feedrollouts", rollout("feed", "feed:nope", 4));
    let op = Operator::new(&api, at(0));
    op.reconcile().await;
    op.reconcile().await;
    assert_eq!(status(&api).phase, Some(Phase::Promoting));
    api.put(
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "feed-stable-x1", "namespace": NS,
                         "labels": {"feedroll.dev/rollout": "feed", "feedroll.dev/track": "stable"}},
            "spec": {"containers": [{"name": "feed-server", "image": "feed:nope"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "feed-server", "image": "feed:nope",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}
        }),
    );
    op.advance(10);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(st.canary_pod_issues.len(), 1, "{st:?}");
    assert!(st.message.as_deref().unwrap().contains("ErrImagePull"));
    assert!(event_reasons(&api).contains(&"CanaryNotReady".to_owned()));
    op.advance(590);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(st.phase, Some(Phase::Promoting), "nothing to roll back to");
    let progressing = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(event_reasons(&api).contains(&"ProgressDeadlineExceeded".to_owned()));
    // The alert's input stays while the promotion waits.
    assert!(
        op.metrics
            .render()
            .contains("feedroll_rollout_canary_waiting_since_timestamp_seconds{")
    );
}

#[tokio::test]
async fn status_reports_the_weight_the_pods_really_give() {
    let api = FakeApi::new();
    api.put("feedrollouts", rollout("feed", "feed:1", 3));
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["spec"]["strategy"]["steps"] = json!([{"setWeight": 10}, {"pause": {}}]);
    });
    let op = Operator::new(&api, at(0));
    op.reconcile().await;
    op.reconcile().await;
    roll_out(&api, "stable");
    op.reconcile().await;
    op.advance(10);
    set_image(&api, "feed:2");
    op.reconcile().await;
    assert!(event_reasons(&api).contains(&"WeightSkew".to_owned()));
    roll_out(&api, "canary");
    op.reconcile().await;
    roll_out(&api, "stable");
    op.reconcile().await;
    let st = status(&api);
    // 10% of 3 replicas is 1 canary pod next to 2 stable ones.
    assert_eq!((st.weight, st.actual_weight), (10, 33), "{st:?}");
    assert!(
        op.metrics
            .render()
            .contains("feedroll_rollout_actual_weight{namespace=\"prod\",rollout=\"feed\"} 33")
    );
    assert_eq!((st.stable_replicas, st.canary_replicas), (2, 1));
}

#[tokio::test]
async fn human_commands_from_the_annotation_apply_once() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    annotate(&api, "pause/1");
    op.reconcile().await;
    assert_eq!(status(&api).phase, Some(Phase::Paused));
    // The same value again changes nothing.
    op.advance(300);
    op.reconcile().await;
    assert_eq!(status(&api).phase, Some(Phase::Paused));
    annotate(&api, "promote-full/2");
    op.reconcile().await;
    let st = status(&api);
    assert_eq!((st.phase, st.weight), (Some(Phase::Promoting), 100));
    assert_eq!(image(&api, "stable"), "feed:2");
    // An unknown verb is reported once, as a Warning, and recorded as seen.
    annotate(&api, "explode/3");
    op.reconcile().await;
    op.reconcile().await;
    let reasons = event_reasons(&api);
    assert_eq!(
        reasons.iter().filter(|r| *r == "CommandIgnored").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(status(&api).last_command_id.as_deref(), Some("explode/3"));
    // The annotation is never removed.
    assert_eq!(
        fr(&api)["metadata"]["annotations"]["feedroll.dev/command"],
        "explode/3"
    );
}

#[tokio::test]
async fn hpa_raising_replicas_is_split_by_weight_without_over_scaling_stable() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (3, 1));
    // The HPA writes spec.replicas through the scale subresource.
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["spec"]["replicas"] = json!(8);
    });
    op.advance(1);
    op.reconcile().await;
    // 25% of 8 = 2 canary pods; stable gives up only the one that is ready.
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (7, 2));
    roll_out(&api, "canary");
    roll_out(&api, "stable");
    op.advance(1);
    op.reconcile().await;
    assert_eq!((replicas(&api, "stable"), replicas(&api, "canary")), (6, 2));
    let st = status(&api);
    assert_eq!(
        (st.replicas, st.stable_replicas, st.canary_replicas),
        (9, 7, 2)
    );
    // Stable scale-down is seen next time; the total converges on spec.replicas.
    roll_out(&api, "stable");
    op.advance(1);
    op.reconcile().await;
    assert_eq!(status(&api).replicas, 8);
}

#[tokio::test]
async fn a_restarted_operator_resumes_without_repeating_or_skipping_a_step() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    op.advance(60);
    op.reconcile().await;
    assert_eq!(status(&api).current_step_index, Some(1));
    let events_before = event_reasons(&api).len();
    let before = status(&api);
    drop(op);

    // A new instance (fresh caches and metrics), same stored status, 30s later: mid-pause.
    let op = Operator::new(&api, at(105));
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.current_step_index, st.weight),
        (before.current_step_index, before.weight)
    );
    assert_eq!(st.step_started_at, before.step_started_at);
    assert_eq!(
        event_reasons(&api).len(),
        events_before,
        "no decision was repeated"
    );
    // The pause ends on time (2m after it started) and exactly one step is entered.
    op.advance(100);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.current_step_index, st.weight),
        (Some(2), 50),
        "{:?}",
        st.message
    );
}

#[tokio::test]
async fn deletion_removes_the_objects_and_the_finalizer() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    assert!(op.metrics.render().contains("rollout=\"feed\""));
    let frs: Api<FeedRollout> = Api::namespaced(api.client(), NS);
    frs.delete("feed", &DeleteParams::default()).await.unwrap();
    assert!(fr(&api)["metadata"]["deletionTimestamp"].is_string());
    op.reconcile().await;
    assert!(
        api.get(FR, "feedrollouts", NS, "feed").is_none(),
        "finalizer removed"
    );
    assert!(api.list(APPS, "deployments", NS).is_empty());
    assert!(api.list("v1", "services", NS).is_empty());
    assert!(!op.metrics.render().contains("rollout=\"feed\""));
}

#[tokio::test]
async fn malformed_rollouts_are_reported_and_do_not_stop_the_others() {
    let api = FakeApi::new();
    // No labels on the template and no selector: nothing can select the pods.
    let mut bad = rollout("bad", "feed:1", 2);
    bad["spec"]["template"]["metadata"] = json!({});
    api.put("feedrollouts", bad);
    // A pause duration that does not parse (the CRD's CEL would reject it; here it slipped by).
    let mut broken = rollout("broken", "feed:1", 2);
    broken["spec"]["strategy"]["steps"][1]["pause"]["duration"] = json!("soon");
    api.put("feedrollouts", broken);
    api.put("feedrollouts", rollout("feed", "feed:1", 2));
    let op = Operator::new(&api, at(0));
    for _ in 0..2 {
        for name in ["bad", "broken", "feed"] {
            op.reconcile_named(name).await.unwrap();
        }
    }
    let bad: FeedRolloutStatus =
        serde_json::from_value(api.get(FR, "feedrollouts", NS, "bad").unwrap()["status"].clone())
            .unwrap();
    let reconciled = bad
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciled")
        .unwrap();
    assert_eq!(
        (reconciled.status.as_str(), reconciled.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        reconciled.message.contains("labels"),
        "{}",
        reconciled.message
    );
    let broken: FeedRolloutStatus = serde_json::from_value(
        api.get(FR, "feedrollouts", NS, "broken").unwrap()["status"].clone(),
    )
    .unwrap();
    assert_eq!(broken.phase, Some(Phase::Failed));
    assert!(
        api.get(APPS, "deployments", NS, "broken-stable").is_none(),
        "traffic untouched"
    );
    let warnings: Vec<String> = api
        .list("events.k8s.io/v1", "events", NS)
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(warnings.contains(&"InvalidSpec".to_owned()), "{warnings:?}");
    // The healthy one went on.
    assert_eq!(status(&api).phase, Some(Phase::Promoting));
    assert_eq!(replicas(&api, "stable"), 2);

    // An object the API server rejects becomes a condition and a Warning, not a failure.
    api.fail_next(Method::PATCH, "/deployments/feed-stable", 422);
    op.advance(1);
    op.reconcile().await;
    let st = status(&api);
    let c = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciled")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "ApplyFailed")
    );
    op.advance(1);
    op.reconcile().await;
    let st = status(&api);
    let c = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciled")
        .unwrap();
    assert_eq!(c.status, "True");
    assert_eq!(c.last_transition_time.0, op.now(), "moved on the flip back");
    // A transient error is returned (retried with backoff).
    api.fail_next(Method::PATCH, "/deployments/feed-stable", 503);
    assert!(op.reconcile_named("feed").await.is_err());
}

#[tokio::test]
async fn every_request_is_a_listed_permission() {
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    annotate(&api, "promote-full/1");
    op.reconcile().await;
    // Everything so far was the operator's; the deletion is the user's.
    let mut requests = api.requests();
    let frs: Api<FeedRollout> = Api::namespaced(api.client(), NS);
    frs.delete("feed", &DeleteParams::default()).await.unwrap();
    api.clear_requests();
    op.reconcile().await;
    requests.extend(api.requests());
    assert!(requests.len() > 20);
    assert_listed(requests);
}

/// Every request needs a permission `controller::rbac::PERMISSIONS` lists.
fn assert_listed(requests: Vec<feedroll_localkube::Recorded>) {
    for r in requests {
        let Some((group, resource, verb)) = rbac::required(r.method.as_str(), &r.path, &r.query)
        else {
            continue;
        };
        assert!(
            rbac::listed(&group, &resource, verb),
            "{verb} {group}/{resource} ({} {}) is not in controller::rbac::PERMISSIONS",
            r.method,
            r.path
        );
    }
}

#[tokio::test]
async fn status_is_written_only_when_it_changes() {
    let api = FakeApi::new();
    let op = settled(&api).await;
    api.clear_requests();
    op.advance(30);
    op.reconcile().await;
    op.advance(30);
    op.reconcile().await;
    let writes = api
        .requests()
        .iter()
        .filter(|r| r.method == Method::PATCH && r.path.ends_with("/status"))
        .count();
    assert_eq!(writes, 0, "a settled rollout writes no status");
}

#[tokio::test]
async fn unchanged_objects_are_not_reapplied_but_a_deleted_deployment_comes_back_at_once() {
    let api = FakeApi::new();
    api.put("feedrollouts", rollout("feed", "feed:1", 4));
    let op = Operator::with_cache(&api, at(0), Duration::from_secs(600));
    op.reconcile().await;
    op.reconcile().await;
    roll_out(&api, "stable");
    op.reconcile().await;
    api.clear_requests();
    op.advance(30);
    op.reconcile().await;
    let applies = api
        .requests()
        .iter()
        .filter(|r| r.method == Method::PATCH && !r.path.contains("/feedrollouts/"))
        .count();
    assert_eq!(applies, 0, "identical objects are not sent again");
    // Someone deletes the stable Deployment: the watch triggers a reconcile that re-creates it.
    api.remove(APPS, "deployments", NS, "feed-stable");
    op.reconcile().await;
    assert_eq!(replicas(&api, "stable"), 4);
}

const GATEWAY: &str = "gateway.networking.k8s.io/v1";

fn set_traffic(api: &FakeApi, traffic: Value) {
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["spec"]["strategy"]["traffic"] = traffic;
    });
}

/// Gateway API traffic through the HTTPRoute `route`.
fn gateway(route: &str) -> Value {
    json!({"gatewayAPI": {"parentRefs": [{"name": "public"}], "httpRoute": route}})
}

fn route_names(api: &FakeApi) -> Vec<String> {
    api.list(GATEWAY, "httproutes", NS)
        .iter()
        .map(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_route_the_spec_no_longer_asks_for_is_deleted() {
    let api = FakeApi::new();
    let op = settled(&api).await;
    set_traffic(&api, gateway("feed-a"));
    op.reconcile().await;
    assert_eq!(route_names(&api), ["feed-a"]);
    let weights: Vec<i64> = api.get(GATEWAY, "httproutes", NS, "feed-a").unwrap()["spec"]["rules"]
        [0]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["weight"].as_i64().unwrap())
        .collect();
    assert_eq!(weights, [100, 0]);

    // Renamed: the new route replaces the old one.
    set_traffic(&api, gateway("feed-b"));
    op.reconcile().await;
    assert_eq!(route_names(&api), ["feed-b"]);

    // A route someone else labelled alike but the rollout does not own is left alone.
    api.put(
        "httproutes",
        json!({"apiVersion": GATEWAY, "kind": "HTTPRoute",
               "metadata": {"name": "hand-made", "namespace": NS,
                            "labels": {"app.kubernetes.io/managed-by": "feedroll-operator",
                                       "feedroll.dev/rollout": "feed"}},
               "spec": {}}),
    );
    // Back to replica ratio: the rollout's route goes.
    set_traffic(&api, json!({"replicaRatio": {}}));
    op.reconcile().await;
    assert_eq!(route_names(&api), ["hand-made"]);
    assert_eq!(status(&api).phase, Some(Phase::Succeeded));
}

#[tokio::test]
async fn a_failing_route_cleanup_does_not_stop_the_rollout() {
    let api = FakeApi::new();
    let op = settled(&api).await;
    op.advance(10);
    set_image(&api, "feed:2");
    // The route list is refused (say, an older chart without `list` on httproutes).
    api.fail_next(Method::GET, "/httproutes", 403);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.phase, st.weight),
        (Some(Phase::Progressing), 25),
        "{st:?}"
    );
    assert_eq!(replicas(&api, "canary"), 1);
}

#[tokio::test]
async fn a_route_renamed_back_is_applied_again_even_when_unchanged() {
    let api = FakeApi::new();
    api.put("feedrollouts", rollout("feed", "feed:1", 4));
    // Identical objects are normally not re-sent within the apply cache's time ...
    let op = Operator::with_cache(&api, at(0), Duration::from_secs(600));
    op.reconcile().await;
    op.reconcile().await;
    set_traffic(&api, gateway("feed-a"));
    op.reconcile().await;
    set_traffic(&api, gateway("feed-b"));
    op.reconcile().await;
    assert_eq!(route_names(&api), ["feed-b"]);
    // ... but a route the operator deleted is: back to the first name, the route is there.
    set_traffic(&api, gateway("feed-a"));
    op.reconcile().await;
    assert_eq!(route_names(&api), ["feed-a"]);
}

/// The production analyzer, answering at once (no tick queue), reading Secrets and ConfigMaps
/// from the fake API server with no cache.
struct Immediate(PrometheusAnalyzer);

impl Analyzer for Immediate {
    fn analyze<'a>(
        &'a self,
        target: &'a Target,
        analysis: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun> {
        self.0.analyze(target, analysis, fast, at)
    }

    fn fault(&self, target: &Target) -> Option<PrometheusFault> {
        self.0.fault(target)
    }
}

/// `settled`, then (an operator with the Prometheus analyzer) `analysis` in the spec, feed:2
/// and a ready canary at the first step.
async fn canary_with_analysis(api: &FakeApi, analysis: Value) -> Operator {
    let first = settled(api).await;
    let analyzer = PrometheusAnalyzer::with_objects(ObjectCache::new(api.client(), Duration::ZERO));
    let op = Operator::with_analyzer(api, first.now(), Arc::new(Immediate(analyzer)));
    api.update(FR, "feedrollouts", NS, "feed", |o| {
        o["spec"]["analysis"] = analysis;
    });
    op.advance(10);
    set_image(api, "feed:2");
    op.reconcile().await;
    op.advance(5);
    roll_out(api, "canary");
    op.reconcile().await;
    op
}

fn count(reasons: &[String], reason: &str) -> usize {
    reasons.iter().filter(|r| *r == reason).count()
}

fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            ((*k).to_owned(), json!(encoded))
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": data})
}

/// A check any reachable Prometheus passes: `vector(1) <= 2`.
fn always_passing() -> Value {
    json!([{"name": "reachable", "query": "vector(1)", "max": 2, "window": "10s"}])
}

#[tokio::test]
async fn a_missing_secret_holds_with_one_event_then_pauses_and_never_promotes() {
    let api = FakeApi::new();
    let analysis = json!({
        "defaultChecks": false, "checks": always_passing(), "maxHold": "3m",
        "prometheus": {"address": "https://127.0.0.1:9", "basicAuth": {
            "username": {"name": "prom", "key": "username"},
            "password": {"name": "prom", "key": "password"}}}
    });
    let op = canary_with_analysis(&api, analysis).await;
    let st = status(&api);
    assert_eq!(
        (st.phase, st.current_step_index),
        (Some(Phase::Progressing), Some(0))
    );
    let records = &st.analysis.as_ref().expect("an analysis run").records;
    assert!(!records.is_empty());
    for r in records {
        assert_eq!(r.verdict, Verdict::Error, "{r:?}");
        assert!(
            r.reason.contains("Secret \"prom\" not found in the FeedRollout's namespace (spec.analysis.prometheus.basicAuth.username)"),
            "{}",
            r.reason
        );
    }
    assert_eq!(
        count(&event_reasons(&api), "PrometheusCredentialsInvalid"),
        1
    );
    let notes: Vec<String> = api
        .list("events.k8s.io/v1", "events", NS)
        .iter()
        .filter(|e| e["reason"] == "PrometheusCredentialsInvalid")
        .map(|e| e["note"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("Prometheus credentials: Secret \"prom\" not found")
            && notes[0].contains("spec.analysis.prometheus.basicAuth.username"),
        "{notes:?}"
    );
    // The status says why the step holds.
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("holding") && message.contains("Secret \"prom\" not found"),
        "{message}"
    );
    // The Secret without the password key: a new fault, a new Event; the step holds.
    api.put("secrets", secret("prom", &[("username", "feedroll")]));
    op.advance(61);
    op.reconcile().await;
    let st = status(&api);
    let reason = &st.analysis.as_ref().unwrap().records[0].reason;
    assert!(reason.contains("has no key \"password\""), "{reason}");
    // The same fault again: no new Event.
    op.advance(61);
    op.reconcile().await;
    let reasons = event_reasons(&api);
    assert_eq!(
        count(&reasons, "PrometheusCredentialsInvalid"),
        2,
        "{reasons:?}"
    );
    // Past maxHold: paused for a human, never promoted.
    op.advance(61);
    op.reconcile().await;
    let st = status(&api);
    assert_eq!(
        (st.phase, st.weight),
        (Some(Phase::Paused), 25),
        "{:?}",
        st.message
    );
    assert_eq!(image(&api, "stable"), "feed:1");
    // Only Secrets named by the spec were read, by name (get), never listed.
    let secret_reads: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/secrets"))
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    assert!(!secret_reads.is_empty());
    for (method, path) in &secret_reads {
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("GET", "/api/v1/namespaces/prod/secrets/prom")
        );
    }
    assert_listed(api.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_behind_basic_auth_and_tls_refuses_a_wrong_password_then_judges_with_the_right_one()
 {
    let harness = prometheus::Harness::start_secure(Vec::new()).await;
    let secure = harness.secure.as_ref().unwrap();
    let api = FakeApi::new();
    let ca = std::fs::read_to_string(&secure.ca_file).unwrap();
    api.put(
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "prometheus-ca", "namespace": NS}, "data": {"ca.crt": ca}}),
    );
    api.put(
        "secrets",
        secret(
            "prom",
            &[("username", &secure.username), ("password", "wrong\n")],
        ),
    );
    let analysis = json!({
        "defaultChecks": false, "checks": always_passing(),
        "prometheus": {
            "address": harness.url,
            "basicAuth": {"username": {"name": "prom", "key": "username"},
                          "password": {"name": "prom", "key": "password"}},
            "headers": [{"name": "X-Scope-OrgID", "value": "tenant-1"}],
            "tlsConfig": {"ca": {"configMap": {"name": "prometheus-ca", "key": "ca.crt"}}}
        }
    });
    let op = canary_with_analysis(&api, analysis).await;
    let st = status(&api);
    assert_eq!(st.current_step_index, Some(0), "{:?}", st.message);
    let record = &st.analysis.as_ref().expect("an analysis run").records[0];
    assert_eq!(record.verdict, Verdict::Error);
    assert!(
        record
            .reason
            .contains("Prometheus answered 401 Unauthorized"),
        "{}",
        record.reason
    );
    let reasons = event_reasons(&api);
    assert_eq!(count(&reasons, "PrometheusAuthFailed"), 1, "{reasons:?}");
    assert!(
        !reasons.iter().any(|r| r == "AnalysisPassed"),
        "{reasons:?}"
    );
    // The Secret rotated to the right password: picked up at the next run, the check is
    // judged and passes, the step advances.
    api.put(
        "secrets",
        secret(
            "prom",
            &[
                ("username", &secure.username),
                ("password", &secure.password),
            ],
        ),
    );
    op.advance(61);
    op.reconcile().await;
    let st = status(&api);
    let record = &st.analysis.as_ref().unwrap().records[0];
    assert_eq!(record.verdict, Verdict::Pass, "{}", record.reason);
    assert_eq!(record.value, Some(1.0));
    assert_eq!(st.current_step_index, Some(1), "{:?}", st.message);
    assert_eq!(count(&event_reasons(&api), "PrometheusAuthFailed"), 1);
    // The CA ConfigMap was read with list and a name field selector (the existing permission).
    assert!(api.requests().iter().any(|r| {
        r.path == "/api/v1/namespaces/prod/configmaps"
            && r.query
                .contains("fieldSelector=metadata.name%3Dprometheus-ca")
    }));
    assert_listed(api.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_is_not_pem_then_the_wrong_ca_each_raise_their_event_and_hold() {
    let harness = prometheus::Harness::start_secure(Vec::new()).await;
    let secure = harness.secure.as_ref().unwrap();
    let api = FakeApi::new();
    let ca_map = |pem: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "prometheus-ca", "namespace": NS}, "data": {"ca.crt": pem}})
    };
    api.put("configmaps", ca_map("not a certificate"));
    api.put("secrets", secret("prom", &[("token", "abc")]));
    let analysis = json!({
        "defaultChecks": false, "checks": always_passing(),
        "prometheus": {
            "address": harness.url,
            "authorization": {"credentials": {"name": "prom", "key": "token"}},
            "tlsConfig": {"ca": {"configMap": {"name": "prometheus-ca", "key": "ca.crt"}}}
        }
    });
    let op = canary_with_analysis(&api, analysis).await;
    let st = status(&api);
    let reason = &st.analysis.as_ref().expect("a run").records[0].reason;
    assert!(
        reason.contains("ConfigMap \"prometheus-ca\" key \"ca.crt\"")
            && reason.contains("is not a PEM certificate bundle"),
        "{reason}"
    );
    assert_eq!(
        count(&event_reasons(&api), "PrometheusCredentialsInvalid"),
        1
    );
    // A valid PEM of a CA that did not sign Prometheus' certificate: a TLS failure.
    let wrong = std::fs::read_to_string(&secure.wrong_ca_file).unwrap();
    api.put("configmaps", ca_map(&wrong));
    op.advance(61);
    op.reconcile().await;
    let st = status(&api);
    let record = &st.analysis.as_ref().unwrap().records[0];
    assert_eq!(record.verdict, Verdict::Error);
    assert!(
        record
            .reason
            .contains("TLS handshake with Prometheus failed"),
        "{}",
        record.reason
    );
    let reasons = event_reasons(&api);
    assert_eq!(count(&reasons, "PrometheusUnreachable"), 1, "{reasons:?}");
    assert_eq!(
        (st.phase, st.current_step_index),
        (Some(Phase::Progressing), Some(0))
    );
    assert_listed(api.requests());
}

#[tokio::test]
async fn two_hundred_decisions_keep_the_last_fifty_in_the_status() {
    use feedroll_crds::history::{Decision, HISTORY_LIMIT, HistoryEntry};
    let api = FakeApi::new();
    let op = canary_at_25(&api).await;
    // Every decision the status ever showed, in order (read back after each reconcile).
    let mut seen: Vec<HistoryEntry> = status(&api).history;
    assert!(
        seen.iter().any(|e| e.decision == Decision::Started),
        "{seen:?}"
    );
    for i in 1..=200 {
        let verb = if i % 2 == 1 { "pause" } else { "resume" };
        api.update(FR, "feedrollouts", NS, "feed", |o| {
            o["metadata"]["annotations"] = json!({
                "feedroll.dev/command": format!("{verb}/{i}"),
                "feedroll.dev/command-author": format!("user-{i}"),
            });
        });
        op.advance(1);
        op.reconcile().await;
        let history = status(&api).history;
        let last = history.last().expect("an entry").clone();
        assert_eq!(
            last.command
                .as_ref()
                .map(|c| (c.id.clone(), c.author.clone())),
            Some((format!("{verb}/{i}"), Some(format!("user-{i}")))),
            "decision {i}: {last:?}"
        );
        if seen.last() != Some(&last) {
            seen.push(last);
        }
    }
    let history = status(&api).history;
    assert!(seen.len() >= 200, "{} decisions", seen.len());
    assert_eq!(history.len(), HISTORY_LIMIT);
    assert_eq!(history, seen[seen.len() - HISTORY_LIMIT..]);
    assert_eq!(
        history.last().map(|e| (e.decision, e.phase)),
        Some((Decision::Resumed, Some(Phase::Progressing)))
    );
}
