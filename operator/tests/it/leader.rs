//! Leader election on a Lease (kube-lease-manager) against the fake API server: one replica
//! leads and reconciles, the standby waits, and takes over when the leader stops (releasing the
//! Lease).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use feedroll_crds::{AnalysisRun, ResolvedAnalysis};
use feedroll_localkube::FakeApi;
use feedroll_operator::analysis::Target;
use feedroll_operator::controller::run::{LogFormat, RunArgs, operate};
use feedroll_operator::controller::{Analyzer, Metrics};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::sync::watch;

struct NoChecks;

impl Analyzer for NoChecks {
    fn analyze<'a>(
        &'a self,
        _: &'a Target,
        _: &'a ResolvedAnalysis,
        fast: bool,
        at: Timestamp,
    ) -> BoxFuture<'a, AnalysisRun> {
        Box::pin(async move {
            AnalysisRun {
                at: Some(Time(at)),
                fast,
                records: Vec::new(),
            }
        })
    }
}

struct Replica {
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    fn leading(&self) -> bool {
        self.metrics
            .render()
            .lines()
            .any(|l| l == "feedroll_leader 1")
    }
}

fn start(api: &FakeApi, id: &str) -> Replica {
    let args = RunArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        leader_election: true,
        lease_name: "feedroll-operator".into(),
        lease_namespace: Some("ops".into()),
        watch_namespace: "prod".into(),
        concurrency: 4,
        log_format: LogFormat::Text,
    };
    let metrics = Arc::new(Metrics::new());
    let (stop, stop_rx) = watch::channel(false);
    let client = api.client();
    let id = id.to_owned();
    let m = metrics.clone();
    let task = tokio::spawn(async move {
        let ready = Arc::new(AtomicBool::new(false));
        operate(client, &args, &id, Arc::new(NoChecks), m, ready, stop_rx)
            .await
            .unwrap();
    });
    Replica {
        metrics,
        stop,
        task,
    }
}

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    for _ in 0..secs * 20 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get(
        "coordination.k8s.io/v1",
        "leases",
        "ops",
        "feedroll-operator",
    )?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_standby_takes_over_when_it_stops() {
    let api = FakeApi::new();
    let a = start(&api, "operator-a");
    until("a leads", 10, || a.leading()).await;
    assert_eq!(
        holder(&api).as_deref(),
        Some("operator-a"),
        "{:#?}",
        api.requests()
            .iter()
            .filter(|r| r.path.contains("lease"))
            .collect::<Vec<_>>()
    );
    let b = start(&api, "operator-b");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!b.leading(), "two leaders");

    // The leader reconciles.
    api.put(
        "feedrollouts",
        json!({"apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout",
               "metadata": {"name": "feed", "namespace": "prod"},
               "spec": {"template": {"metadata": {"labels": {"app": "feed"}},
                                     "spec": {"containers": [{"name": "f", "image": "feed:1"}]}}}}),
    );
    until("reconciled", 10, || {
        api.get("apps/v1", "deployments", "prod", "feed-stable")
            .is_some()
    })
    .await;

    // The leader stops (SIGTERM): it releases the Lease and the standby takes over.
    a.stop.send(true).unwrap();
    let a_metrics = a.metrics.clone();
    tokio::time::timeout(Duration::from_secs(10), a.task)
        .await
        .expect("the leader stops")
        .unwrap();
    assert!(a_metrics.render().lines().any(|l| l == "feedroll_leader 0"));
    until("b leads", 30, || b.leading()).await;
    assert_eq!(holder(&api).as_deref(), Some("operator-b"));
    b.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), b.task)
        .await
        .expect("the standby stops")
        .unwrap();
}
