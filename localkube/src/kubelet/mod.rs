//! The kubelet of localkube: pods become real processes on this machine, as kwok's fake
//! kubelet would report them but actually running. With it, [`spawn`] starts the Deployment
//! controller ([`crate::deployment`]).
//!
//! - **Scheduling**: one node (`localkube` by default, a Node object is stored); a pod without
//!   `spec.nodeName` is bound to it.
//! - **Networking**: each pod gets its own loopback IP ([`podip`], 127.10.x.y) in
//!   `status.podIP`/`podIPs`, `status.hostIP` is 127.0.0.1. There is no network namespace, so
//!   what one would do is done to the command line: a wildcard or loopback listen address in
//!   args or env (`0.0.0.0:8080`, `:8080`, `127.0.0.1:8080`) becomes `podIP:8080`, and the
//!   image's listen variable (`FEED_LISTEN` for feed-server) is set to `podIP:firstContainerPort`
//!   unless the template sets it.
//! - **Images** ([`images`]): a table of glob → binary; an image no rule matches fails with
//!   `ErrImagePull`, then `ImagePullBackOff` with the pull back-off.
//! - **Containers** ([`worker`]): env with `valueFrom` and `envFrom`, `$(VAR)` expansion
//!   ([`env`]), `command[1..]` + `args` after the image's binary, HTTP/TCP startup, readiness and
//!   liveness probes ([`probe`]; readiness and liveness wait for the startup probe to pass, a
//!   startup probe that fails `failureThreshold` times restarts the container), restarts per
//!   `restartPolicy` with CrashLoopBackOff ([`backoff`]), stdout and stderr appended to `ROOT/NS_POD_UID/logs/CONTAINER/N.log` (N = restart count),
//!   served as the `pods/NAME/log` subresource ([`logs`]; `kubectl logs [--previous]`).
//! - **Volumes** ([`volumes`]): ConfigMap and Secret volumes are files in
//!   `ROOT/NS_POD_UID/volumes/NAME/`, written before the first start and rewritten a sync
//!   delay after their object changes. There is no mount namespace: a path under a container's
//!   `mountPath` in its args or env is rewritten to that directory
//!   (`--profile /etc/feed/profile.json` → `--profile ROOT/…/volumes/profile/profile.json`).
//! - **Status** ([`status`]): phase, conditions, `containerStatuses` as the kubelet reports them.
//! - **Deletion**: a pod that is gone (or deleting) has its processes stopped with SIGTERM, then
//!   SIGKILL after its `terminationGracePeriodSeconds`; so does every pod when the
//!   [`KubeletHandle`] is stopped or dropped.
//!
//! Every kubelet duration is multiplied by the [`TimeScale`] (tests run a 10 s back-off in
//! 0.5 s).

pub mod backoff;
pub mod env;
pub mod images;
pub mod logs;
pub mod podip;
pub mod probe;
pub mod process;
pub mod status;
pub mod volumes;
mod worker;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use backoff::TimeScale;
pub use images::{ImageRule, ImageTable};

use crate::FakeApi;
use crate::net::services::Resolver;
use crate::store::is_deleting;
use podip::PodIps;
use process::Pids;
use worker::Worker;

/// How often the kubelet and each pod worker look at the store (real time, not scaled).
const TICK: Duration = Duration::from_millis(50);

/// An interval that skips ticks it missed (a controller's polling loop).
pub(crate) fn ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// `status.hostIP` of every pod.
pub const HOST_IP: &str = "127.0.0.1";

/// The default ConfigMap sync delay (before scaling).
pub const DEFAULT_SYNC_DELAY: Duration = Duration::from_secs(30);

/// How the kubelet runs.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The node's name (pods are bound to it).
    pub node_name: String,
    /// Where pod directories (volumes, logs) go; created if missing.
    pub root: PathBuf,
    /// Which binary each image runs.
    pub images: ImageTable,
    /// How long after a ConfigMap or Secret changes its files in a running pod change (before
    /// scaling; the kubelet's sync period, default 30 s).
    pub sync_delay: Duration,
    /// Multiplies every kubelet and controller duration.
    pub time_scale: TimeScale,
    /// Also run the Deployment controller.
    pub deployments: bool,
    /// Cluster DNS: Services' names in containers' args and env (`redis://redis.feed.svc:6379`)
    /// are replaced by their ClusterIPs when the process starts (`None`: left as written).
    pub dns: Option<Resolver>,
}

impl KubeletConfig {
    /// A kubelet on node `localkube` with pod directories under `root`, images from `images`,
    /// the default sync delay, real time, the Deployment controller and no cluster DNS.
    pub fn new(root: impl Into<PathBuf>, images: ImageTable) -> Self {
        Self {
            node_name: "localkube".into(),
            root: root.into(),
            images,
            sync_delay: DEFAULT_SYNC_DELAY,
            time_scale: TimeScale::REAL,
            deployments: true,
            dns: None,
        }
    }
}

/// Why the kubelet cannot start.
#[derive(Debug, Error)]
pub enum KubeletError {
    /// Not called inside a Tokio runtime.
    #[error("the kubelet must be started inside a Tokio runtime")]
    NoRuntime,
    /// The probes' HTTP client cannot be built.
    #[error("cannot build the probes' HTTP client: {0}")]
    Http(reqwest::Error),
    /// The pod root directory cannot be created.
    #[error("cannot create the pod directory {path}: {source}")]
    Root {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What every pod worker shares.
struct Settings {
    api: FakeApi,
    root: PathBuf,
    images: ImageTable,
    sync_delay: Duration,
    scale: TimeScale,
    http: reqwest::Client,
    pids: Pids,
    dns: Option<Resolver>,
}

/// The running kubelet (and Deployment controller). [`KubeletHandle::stop`] stops every pod's
/// processes with their grace periods; dropping the handle does the same without awaiting
/// (SIGTERM, SIGKILL after the longest grace period, blocking the dropping thread meanwhile).
pub struct KubeletHandle {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    pids: Pids,
}

impl KubeletHandle {
    /// Stops the controllers and every pod process (SIGTERM, then SIGKILL after the pod's grace
    /// period), and waits for them.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }

    /// The pids of the container processes running now.
    pub fn pids(&self) -> Vec<u32> {
        self.pids.live()
    }
}

impl Drop for KubeletHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.pids.stop_all_blocking();
    }
}

/// Starts the kubelet (and, unless disabled, the Deployment controller) on `api`.
pub fn spawn(api: FakeApi, config: KubeletConfig) -> Result<KubeletHandle, KubeletError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| KubeletError::NoRuntime)?;
    std::fs::create_dir_all(&config.root).map_err(|source| KubeletError::Root {
        path: config.root.clone(),
        source,
    })?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(KubeletError::Http)?;
    let pids = Pids::default();
    let settings = Arc::new(Settings {
        api: api.clone(),
        root: config.root.clone(),
        images: config.images.clone(),
        sync_delay: config.time_scale.of(config.sync_delay),
        scale: config.time_scale,
        http,
        pids: pids.clone(),
        dns: config.dns.clone(),
    });
    api.put("nodes", node(&config.node_name));
    api.serve_pod_logs(&config.root);
    let cancel = CancellationToken::new();
    let mut tasks = vec![runtime.spawn(run(settings, config.node_name.clone(), cancel.clone()))];
    if config.deployments {
        tasks.push(runtime.spawn(crate::deployment::run(
            api,
            config.time_scale,
            cancel.clone(),
        )));
    }
    Ok(KubeletHandle {
        cancel,
        tasks,
        pids,
    })
}

/// The Node object of this kubelet: Ready, at 127.0.0.1.
fn node(name: &str) -> Value {
    let now = crate::clock::now();
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux", "node-role.kubernetes.io/localkube": ""}},
        "spec": {},
        "status": {"addresses": [{"type": "InternalIP", "address": HOST_IP},
                                 {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "localkube kubelet is posting ready status",
                "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "nodeInfo": {"kubeletVersion": "localkube", "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH, "containerRuntimeVersion": "localkube://processes"}}})
}

/// The kubelet loop: binds unscheduled pods to the node, starts a worker per new pod, releases
/// the IPs of pods whose workers ended; on cancellation waits for every worker to stop its
/// processes.
async fn run(settings: Arc<Settings>, node: String, cancel: CancellationToken) {
    let mut ips = PodIps::random_start();
    let mut workers: HashMap<String, (JoinHandle<()>, Ipv4Addr)> = HashMap::new();
    let mut tick = ticker(TICK);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        workers.retain(|_, (handle, ip)| {
            let done = handle.is_finished();
            if done {
                ips.release(*ip);
            }
            !done
        });
        for pod in settings.api.list_all("v1", "pods") {
            let meta = &pod["metadata"];
            let (ns, name) = (
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default(),
            );
            let uid = meta["uid"].as_str().unwrap_or_default().to_owned();
            if is_deleting(&pod) || workers.contains_key(&uid) {
                continue;
            }
            match pod["spec"]["nodeName"].as_str() {
                None | Some("") => {
                    settings.api.update("v1", "pods", ns, name, |p| {
                        p["spec"]["nodeName"] = json!(node);
                    });
                }
                Some(n) if n == node => {
                    let Some(ip) = ips.allocate() else {
                        tracing::error!(pod = name, "no pod IP left");
                        continue;
                    };
                    let worker = Worker::new(settings.clone(), &pod, ip);
                    let handle = tokio::spawn(worker.run(cancel.child_token()));
                    workers.insert(uid, (handle, ip));
                }
                Some(_) => {}
            }
        }
    }
    for (_, (handle, _)) in workers {
        let _ = handle.await;
    }
}
