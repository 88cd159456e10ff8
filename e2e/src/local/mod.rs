//! The scenarios of issue 11 on the local cluster (`feedroll-localkube`): the real
//! `feedroll-operator` binary (two replicas, leader election, the chart's RBAC) reconciling
//! FeedRollouts applied with real `kubectl`, pods running the fault-injection feed-server,
//! Prometheus scraping them, the traffic generator using them, and `kubectl feedroll` (the real
//! plugin binary, found by kubectl on PATH) commanding and waiting.
//!
//! - [`manifest`]: the scenarios' FeedRollouts (pure).
//! - [`recorder`]: one rollout's statuses and Events over time, as a [`crate::timeline::Timeline`].
//! - [`Harness`]: the cluster, kubectl, waits with deadlines, and the logs of every process
//!   printed when a scenario fails.

pub mod manifest;
pub mod recorder;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use feedroll_localkube::cluster::traffic::TrafficConfig;
use feedroll_localkube::cluster::{Cluster, ClusterConfig, ClusterError};
use feedroll_localkube::kubelet::images::{BadImageRule, FEED_SERVER_PATTERN};
use feedroll_localkube::kubelet::{ImageRule, ImageTable, KubeletConfig, TimeScale};
use serde_json::Value;

use crate::driver::DriverError;
use crate::procs::{ProcError, faulty_feed_server};
use manifest::{Plan, Revision};
use recorder::Recorder;

/// Why a scenario could not run or did not get what it waited for.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A binary the scenarios run is not built.
    #[error("{0} is missing: cargo build -p feedroll-operator -p kubectl-feedroll (make e2e does)")]
    Missing(PathBuf),
    /// The fault-injection feed-server.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The cluster did not start.
    #[error("the local cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// A manifest could not be built.
    #[error(transparent)]
    Manifest(#[from] DriverError),
    /// kubectl could not run, or did not finish in time.
    #[error("kubectl {args}: {message}")]
    Kubectl {
        /// Its arguments.
        args: String,
        /// What went wrong.
        message: String,
    },
    /// Something awaited did not happen before its deadline.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        seconds: u64,
    },
    /// The kubelet's image rule for the feed-server.
    #[error(transparent)]
    ImageRule(#[from] BadImageRule),
    /// File-system trouble in the cluster's directory.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How long one kubectl run may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// What the local cluster of a set of scenarios runs with.
#[derive(Clone, Debug)]
pub struct Setup {
    /// One namespace per scenario.
    pub namespaces: Vec<String>,
    /// Namespaces whose rollouts get no traffic.
    pub quiet: Vec<String>,
    /// Requests per second to each rollout.
    pub rate: f64,
    /// The kubelet's time scale (probe periods, back-offs, the sync delay).
    pub time_scale: TimeScale,
    /// The kubelet's ConfigMap sync delay, before scaling.
    pub sync_delay: Duration,
}

/// A running local cluster with the plugin on kubectl's PATH; prints every process's log if
/// dropped while a test panics.
pub struct Harness {
    cluster: Cluster,
    path: String,
    started: Instant,
    // Last: the directory outlives the processes writing in it.
    dir: tempfile::TempDir,
}

/// A binary beside the running test's (`target/<profile>/NAME`).
fn sibling(name: &str) -> Result<PathBuf, LocalError> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
    if path.is_file() {
        Ok(path)
    } else {
        Err(LocalError::Missing(path))
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every `*.log` under `dir`, recursively (operators, Prometheus, Redis, pods' containers).
fn logs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            logs(&path, found);
        } else if path.extension().is_some_and(|x| x == "log") {
            found.push(path);
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Some(traffic) = self.cluster.traffic() {
            for (rollout, c) in traffic.counts() {
                let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                eprintln!(
                    "traffic {rollout}: {} ok, {} refused, {} unanswered, {} dropped",
                    n(&c.ok),
                    n(&c.refused),
                    n(&c.failed),
                    n(&c.dropped)
                );
            }
        }
        let mut found = Vec::new();
        logs(self.dir.path(), &mut found);
        found.sort();
        for path in found {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let name = path.strip_prefix(self.dir.path()).unwrap_or(&path);
            // The cluster's own processes at length, each container's end.
            let lines = if name.starts_with("pods") { 8 } else { 60 };
            eprintln!(
                "──── {} (last {lines} lines) ────\n{}",
                name.display(),
                tail(&text, lines)
            );
        }
    }
}

impl Harness {
    /// Starts the cluster: the operator binary as two replicas, the kubelet running
    /// `feed-server:*` images as the fault-injection feed-server, traffic at `setup.rate`.
    pub async fn start(setup: &Setup) -> Result<Self, LocalError> {
        let operator = sibling("feedroll-operator")?;
        let plugin = sibling("kubectl-feedroll")?;
        let feed_server = faulty_feed_server()?;
        let dir = tempfile::tempdir()?;
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin)?;
        std::os::unix::fs::symlink(&plugin, bin.join("kubectl-feedroll"))?;
        let rule = ImageRule::parse(&format!("{FEED_SERVER_PATTERN}={}", feed_server.display()))?;
        let mut kubelet = KubeletConfig::new(dir.path().join("pods"), ImageTable::new(vec![rule]));
        kubelet.time_scale = setup.time_scale;
        kubelet.sync_delay = setup.sync_delay;
        let mut config = ClusterConfig::new(dir.path(), Some(operator));
        config.namespaces = setup.namespaces.clone();
        config.kubelet = Some(kubelet);
        config.traffic = Some(TrafficConfig {
            rate: setup.rate,
            quiet_namespaces: setup.quiet.clone(),
            ..TrafficConfig::default()
        });
        let cluster = Cluster::start(config).await?;
        Ok(Self {
            cluster,
            path: format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            started: Instant::now(),
            dir,
        })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The cluster, to kill and restart its processes.
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// When the cluster was up (the zero of every timeline).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Runs real kubectl as the admin, with `kubectl-feedroll` on its PATH; the whole output,
    /// whatever the exit code.
    pub async fn kubectl(&self, args: &[&str]) -> Result<Output, LocalError> {
        let failed = |message: String| LocalError::Kubectl {
            args: args.join(" "),
            message,
        };
        let run = tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .env("PATH", &self.path)
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(KUBECTL_TIMEOUT, run)
            .await
            .map_err(|_| failed(format!("no exit within {} s", KUBECTL_TIMEOUT.as_secs())))?
            .map_err(|e| failed(format!("cannot run kubectl (is it installed?): {e}")))
    }

    /// Runs kubectl and requires exit code 0; its stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> Result<String, LocalError> {
        let out = self.kubectl(args).await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LocalError::Kubectl {
                args: args.join(" "),
                message: format!(
                    "exit {:?}: {}{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }

    /// `kubectl apply -f` of `plan` at `revision` (written to a file in the cluster's directory).
    /// Its pods reach Redis directly, not through the `redis` Service: the Services' proxies run
    /// in this test process, beside the API server, and on a busy machine a store call through
    /// them outlasts feed-server's timeouts.
    pub async fn apply(&self, plan: &Plan, revision: &Revision) -> Result<(), LocalError> {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/default-plan.yaml");
        let object = manifest::feed_rollout(&example, plan, revision, &self.cluster.redis_url())?;
        let file = self.dir.path().join(format!("{}.json", plan.namespace));
        std::fs::write(&file, object.to_string())?;
        let file = file.to_string_lossy().into_owned();
        self.kubectl_ok(&["apply", "-f", &file]).await.map(drop)
    }

    /// Starts recording the rollout of `plan`.
    pub fn record(&self, plan: &Plan) -> Recorder {
        Recorder::start(
            self.cluster.api().clone(),
            &plan.namespace,
            &plan.namespace,
            self.started,
        )
    }

    /// The objects of `resource` in `namespace` owned by the FeedRollout `name` (by label).
    pub fn owned(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<Value> {
        self.cluster
            .api()
            .list(api_version, resource, namespace)
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["feedroll.dev/rollout"].as_str() == Some(name))
            .collect()
    }

    /// The pods' directory (volumes and logs per pod: `NS_POD_UID/`).
    pub fn pods_dir(&self) -> PathBuf {
        self.dir.path().join("pods")
    }
}

/// Polls `f` every 100 ms until it gives something; fails after `seconds` naming `what`.
pub async fn wait_for<T>(
    what: &str,
    seconds: u64,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, LocalError> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(LocalError::Timeout {
                what: what.to_owned(),
                seconds,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
