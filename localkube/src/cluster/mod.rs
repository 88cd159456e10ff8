//! The local cluster: the API server over HTTPS plus everything around it a FeedRollout needs
//! to run — the Services network ([`crate::net`]), a gateway for HTTPRoutes, cluster DNS for
//! HTTP clients, Redis, Prometheus discovering pods through `file_sd`, a traffic generator and
//! the operator binary as two replicas with leader election, under the chart's ServiceAccount
//! and RBAC. [`Cluster`] is the handle e2e scenarios hold: kill Prometheus or the leading
//! operator mid-step, read the API request log with its RBAC decisions. Every process is
//! killed when the handle is dropped; [`Cluster::stop`] stops them gracefully.
//!
//! ```text
//! chart.rs       the rendered chart: RBAC objects, the operator's args/env, the PodMonitor
//! file_sd.rs     PodMonitor selection → file_sd target groups, written atomically
//! prometheus.rs  prometheus.yml and the Prometheus process
//! redis.rs       the redis-server process
//! process.rs     child processes: logs in DIR, SIGTERM then SIGKILL, killed on drop
//! traffic.rs     feeds and play events to every FeedRollout
//! ```
//!
//! Where the cluster's objects are:
//! - Redis: `redis://127.0.0.1:PORT` (`DIR/env` `REDIS=`), and the Service `redis` (port 6379)
//!   in `default` and every namespace of [`ClusterConfig::namespaces`], whose ClusterIP proxies
//!   to it — `redis://redis.feed.svc:6379` in the examples names it.
//! - Prometheus: `http://127.0.0.1:PORT` (`DIR/env` `PROMETHEUS=`), and the Service
//!   `prometheus-operated` in `monitoring` (port 9090): the FeedRollout default
//!   `http://prometheus-operated.monitoring.svc:9090` reaches it through the cluster DNS proxy
//!   the operator replicas get as `http_proxy`.

pub mod chart;
pub mod file_sd;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod traffic;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::kubelet::{KubeletConfig, KubeletHandle};
use crate::net::dns_proxy::DnsProxy;
use crate::net::endpoints::SERVICE_NAME_LABEL;
use crate::net::gateway::{DEFAULT_GATEWAY_PORT, Gateway};
use crate::net::services::Services;
use crate::rbac::Identity;
use crate::serve::{Certificates, KubeconfigUser, Listener, ServeError, kubeconfig};
use crate::server::{FakeApi, Recorded};
use chart::{ChartError, Launch};
use file_sd::{FileSd, PodMonitor};
use process::{Process, ProcessError};
use prometheus::Prometheus;
use traffic::{Traffic, TrafficConfig};

/// The HTTPRoute CRD the cluster registers.
pub const HTTP_ROUTE_CRD: &str =
    include_str!("../../crds/gateway.networking.k8s.io_httproutes.yaml");
/// Namespace of the `prometheus-operated` Service.
pub const MONITORING_NAMESPACE: &str = "monitoring";

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Setting up the API server's objects failed.
    #[error("API server: {0}")]
    Api(#[from] ApiError),
    /// Serving HTTPS failed.
    #[error("{0}")]
    Serve(#[from] ServeError),
    /// A process did not start.
    #[error("{0}")]
    Process(#[from] ProcessError),
    /// The rendered chart is unusable.
    #[error("{0}")]
    Chart(#[from] ChartError),
    /// The PodMonitor is unusable.
    #[error("{0}")]
    Monitor(#[from] file_sd::MonitorError),
    /// File-system trouble in DIR.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// kubectl could not run, or failed.
    #[error("kubectl {args}: {message}")]
    Kubectl {
        /// Its arguments.
        args: String,
        /// Its stderr, or why it could not run.
        message: String,
    },
    /// The kubelet did not start.
    #[error("kubelet: {0}")]
    Kubelet(#[from] crate::kubelet::KubeletError),
    /// The operator binary is missing.
    #[error(
        "the operator binary {0} does not exist (cargo build -p feedroll-operator, or --operator-bin)"
    )]
    NoOperator(PathBuf),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where kubeconfigs, `env`, logs and data go (created if missing).
    pub dir: PathBuf,
    /// The API server's address (`127.0.0.1:0`: a free port).
    pub listen: SocketAddr,
    /// Namespaces to create besides the initial ones, the chart's and `monitoring`.
    pub namespaces: Vec<String>,
    /// The `feedroll-operator` binary (`None`: no operator runs).
    pub operator_bin: Option<PathBuf>,
    /// Operator replicas (leader election decides who works).
    pub operator_replicas: usize,
    /// The traffic generator's settings (`None`: no traffic).
    pub traffic: Option<TrafficConfig>,
    /// The port of gateway listeners.
    pub gateway_port: u16,
    /// Requests kept in the API request log (`None`: all, for tests).
    pub request_log: Option<usize>,
    /// Changes kept for watches to resume from (`None`: the library's default).
    pub history: Option<usize>,
    /// Changes a live watch may fall behind by (`None`: the library's default).
    pub live_buffer: Option<usize>,
    /// The kubelet and Deployment controller (`None`: Deployments get no pods; tests that make
    /// pods by hand).
    pub kubelet: Option<KubeletConfig>,
}

impl ClusterConfig {
    /// Defaults: a free port, namespace `feed`, two operator replicas of `operator_bin`,
    /// traffic at 50 req/s per rollout, the gateway on 8080, every request logged, no kubelet.
    pub fn new(dir: impl Into<PathBuf>, operator_bin: Option<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            namespaces: vec!["feed".into()],
            operator_bin,
            operator_replicas: 2,
            traffic: Some(TrafficConfig::default()),
            gateway_port: DEFAULT_GATEWAY_PORT,
            request_log: None,
            history: None,
            live_buffer: None,
            kubelet: None,
        }
    }
}

/// A task aborted when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An operator replica.
struct Replica {
    pod: String,
    process: Process,
}

/// A running local cluster.
pub struct Cluster {
    dir: PathBuf,
    api: FakeApi,
    server: String,
    lease: (String, String),
    operators: Vec<Replica>,
    prometheus: Prometheus,
    redis: Process,
    redis_address: SocketAddr,
    traffic: Option<Traffic>,
    dns: DnsProxy,
    gateway: Arc<Gateway>,
    services: Services,
    _file_sd: FileSd,
    _serving: Task,
    kubelet: Option<KubeletHandle>,
}

/// A free port of 127.0.0.1 (free when asked; bound soon after).
fn free_address() -> Result<SocketAddr, ClusterError> {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(io("finding a free port"))
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
           "status": {"phase": "Active"}})
}

/// A Service without selector and its EndpointSlice: `namespace/name:port` proxies to
/// `target` (how a cluster names something that runs outside it).
fn external_service(
    api: &FakeApi,
    namespace: &str,
    name: &str,
    port_name: &str,
    port: u16,
    target: SocketAddr,
) {
    api.put(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}}),
    );
    api.put(
        "endpointslices",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{name}-local"), "namespace": namespace,
                            "labels": {SERVICE_NAME_LABEL: name}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": [target.ip().to_string()], "conditions": {"ready": true}}],
               "ports": [{"name": port_name, "port": target.port(), "protocol": "TCP"}]}),
    );
}

/// Writes `path` whole, then renames it into place (its presence means it is complete).
fn write_whole(path: &Path, text: &str) -> Result<(), ClusterError> {
    file_sd::write_atomic(path, text.as_bytes()).map_err(io(format!("writing {}", path.display())))
}

impl Cluster {
    /// Starts everything; returns once the API server, Redis and Prometheus answer and the
    /// operator replicas are started. `DIR/kubeconfig` is written last: its presence means
    /// the cluster is up. Needs a multi-threaded Tokio runtime.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = dir.canonicalize().map_err(io("resolving DIR"))?;
        for stale in ["kubeconfig", "env"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        let api = FakeApi::cluster()?;
        if let Some(limit) = config.request_log {
            api.set_request_log_limit(limit);
        }
        if let Some(limit) = config.history {
            api.set_history_limit(limit);
        }
        if let Some(capacity) = config.live_buffer {
            api.set_live_buffer(capacity);
        }

        // The chart, installed as `helm install feedroll -n feedroll-system` would.
        let release = chart::objects(chart::DEFAULT_RELEASE)?;
        let deployment = chart::find(&release, "Deployment")?.clone();
        let sa = chart::find(&release, "ServiceAccount")?;
        let sa_ns = sa["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let sa_name = sa["metadata"]["name"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let mut names: Vec<&str> = config.namespaces.iter().map(String::as_str).collect();
        names.extend([sa_ns.as_str(), MONITORING_NAMESPACE]);
        for ns in names {
            api.put("namespaces", namespace(ns));
        }
        for o in &release {
            if let Some(plural) = o["kind"].as_str().and_then(chart::rbac_plural) {
                api.put(plural, o.clone());
            }
        }
        let crd: Value = serde_yaml::from_str(HTTP_ROUTE_CRD)
            .map_err(|e| ApiError::BadRequest(format!("the HTTPRoute CRD: {e}")))?;
        api.put("customresourcedefinitions", crd);

        // The network.
        let services = Services::start(&api);
        let gateway = Arc::new(Gateway::start(
            &api,
            services.resolver(),
            config.gateway_port,
        ));
        let dns = DnsProxy::start(services.resolver())
            .await
            .map_err(io("starting the cluster DNS proxy"))?;

        // The API server.
        let certs = Certificates::generate()?;
        let listener = Listener::bind(config.listen, &certs).await?;
        let server = format!("https://{}", listener.local_addr()?);
        let serving = Task(tokio::spawn({
            let api = api.clone();
            async move {
                if let Err(e) = listener.serve(api).await {
                    tracing::error!(error = %e, "the API server stopped");
                }
            }
        }));
        let admin = KubeconfigUser {
            name: "admin".into(),
            token: api.issue_token(Identity::admin()),
            namespace: "default".into(),
        };
        let operator = KubeconfigUser {
            name: "operator".into(),
            token: api.issue_token(Identity::service_account(&sa_ns, &sa_name)),
            namespace: sa_ns.clone(),
        };
        std::fs::write(dir.join("ca.crt"), &certs.ca_pem).map_err(io("writing ca.crt"))?;
        let operator_kubeconfig = dir.join("operator.kubeconfig");
        write_whole(
            &operator_kubeconfig,
            &kubeconfig(&server, &certs.ca_pem, std::slice::from_ref(&operator))?,
        )?;

        // Redis, in every namespace a feed-server may run in.
        let redis_address = free_address()?;
        let redis = redis::start(&dir, redis_address).await?;
        for ns in std::iter::once("default").chain(config.namespaces.iter().map(String::as_str)) {
            external_service(&api, ns, "redis", "redis", 6379, redis_address);
        }

        // Prometheus and its service discovery.
        let release = chart::objects(chart::POD_MONITOR_RELEASE)?;
        let monitor = PodMonitor::parse(chart::find(&release, "PodMonitor")?)?;
        let targets = dir.join("prometheus").join("targets.json");
        std::fs::create_dir_all(dir.join("prometheus")).map_err(io("creating DIR/prometheus"))?;
        let file_sd = FileSd::start(&api, monitor.clone(), targets.clone())
            .map_err(io("writing the file_sd targets"))?;
        let prometheus = Prometheus::start(&dir, free_address()?, &monitor, &targets).await?;
        external_service(
            &api,
            MONITORING_NAMESPACE,
            "prometheus-operated",
            "web",
            9090,
            prometheus.address(),
        );

        // The Deployment controller and the kubelet: pods as processes on 127.10.x.y.
        let kubelet = config
            .kubelet
            .map(|k| {
                let dns = Some(services.resolver());
                crate::kubelet::spawn(api.clone(), KubeletConfig { dns, ..k })
            })
            .transpose()?;

        // The operator, as the chart's Deployment runs it.
        let mut cluster = Self {
            dir: dir.clone(),
            lease: (String::new(), String::new()),
            operators: Vec::new(),
            api,
            server,
            prometheus,
            redis,
            redis_address,
            traffic: None,
            dns,
            gateway,
            services,
            _file_sd: file_sd,
            _serving: serving,
            kubelet,
        };
        if let Some(bin) = &config.operator_bin {
            if !bin.is_file() {
                return Err(ClusterError::NoOperator(bin.clone()));
            }
            for i in 0..config.operator_replicas {
                let pod = format!(
                    "{}-{i}",
                    deployment["metadata"]["name"]
                        .as_str()
                        .unwrap_or("feedroll")
                );
                let launch = chart::operator_launch(&deployment, &pod)?;
                cluster.lease = (
                    launch
                        .var("FEEDROLL_LEASE_NAMESPACE")
                        .unwrap_or(&sa_ns)
                        .to_owned(),
                    launch
                        .var("FEEDROLL_LEASE_NAME")
                        .unwrap_or("feedroll-operator")
                        .to_owned(),
                );
                let process = cluster.spawn_operator(bin, &pod, launch, &operator_kubeconfig)?;
                cluster.operators.push(Replica { pod, process });
            }
        }
        if let Some(t) = config.traffic {
            cluster.traffic = Some(Traffic::start(
                cluster.api.clone(),
                cluster.gateway.clone(),
                cluster.services.resolver(),
                t,
            ));
        }

        let env = format!(
            "KUBECONFIG={}\nPROMETHEUS={}\nREDIS=redis://{redis_address}\nexport KUBECONFIG PROMETHEUS REDIS\n",
            dir.join("kubeconfig").display(),
            cluster.prometheus.url(),
        );
        write_whole(&dir.join("env"), &env)?;
        write_whole(
            &dir.join("kubeconfig"),
            &kubeconfig(&cluster.server, &certs.ca_pem, &[admin, operator])?,
        )?;
        Ok(cluster)
    }

    fn spawn_operator(
        &self,
        bin: &Path,
        pod: &str,
        mut launch: Launch,
        kubeconfig: &Path,
    ) -> Result<Process, ClusterError> {
        // Two replicas on one host: each on a free port rather than the chart's 0.0.0.0:8080.
        launch.set("FEEDROLL_LISTEN", "127.0.0.1:0");
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            // Cluster DNS for the Prometheus address of FeedRollouts; loopback goes direct.
            .env("http_proxy", self.dns.url())
            .env("HTTP_PROXY", self.dns.url())
            .env("no_proxy", "127.0.0.1,localhost,::1")
            .env("NO_PROXY", "127.0.0.1,localhost,::1");
        Ok(Process::spawn(&format!("operator-{pod}"), &self.dir, cmd)?)
    }

    /// The API server (in-process access to every object).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// DIR.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/kubeconfig` (contexts `admin`, current, and `operator`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Runs real `kubectl` as the admin (`--kubeconfig DIR/kubeconfig`): its stdout, or its
    /// stderr as the error when it fails.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String, ClusterError> {
        let failed = |message: String| ClusterError::Kubectl {
            args: args.join(" "),
            message,
        };
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .await
            .map_err(|e| failed(format!("cannot run kubectl: {e}")))?;
        if !out.status.success() {
            return Err(failed(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Prometheus' URL.
    pub fn prometheus_url(&self) -> String {
        self.prometheus.url()
    }

    /// Redis' URL (the process itself; the Services `redis` proxy to it).
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.redis_address)
    }

    /// The Services controller (ClusterIPs, endpoints served, cluster DNS).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The gateway (addresses of HTTPRoute parents).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The cluster DNS proxy's URL (`http_proxy` of the processes the cluster starts).
    pub fn dns_proxy_url(&self) -> String {
        self.dns.url()
    }

    /// The traffic generator, if it runs.
    pub fn traffic(&self) -> Option<&Traffic> {
        self.traffic.as_ref()
    }

    /// Every request the API server recorded, with its user and RBAC decisions.
    pub fn requests(&self) -> Vec<Recorded> {
        self.api.requests()
    }

    /// The requests RBAC refused.
    pub fn denied(&self) -> Vec<Recorded> {
        self.api.denied()
    }

    /// Kills Prometheus (an outage); [`Cluster::restart_prometheus`] brings it back.
    pub async fn kill_prometheus(&mut self) {
        self.prometheus.kill().await;
    }

    /// Starts Prometheus again on the same port and data.
    pub async fn restart_prometheus(&mut self) -> Result<(), ClusterError> {
        Ok(self.prometheus.restart().await?)
    }

    /// The operator replicas' pod names, with whether each still runs.
    pub fn operators(&mut self) -> Vec<(String, bool)> {
        self.operators
            .iter_mut()
            .map(|r| (r.pod.clone(), r.process.running()))
            .collect()
    }

    /// The pod name holding the operator's Lease, if any.
    pub fn leader(&self) -> Option<String> {
        let (ns, name) = &self.lease;
        self.api
            .get("coordination.k8s.io/v1", "leases", ns, name)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
            .filter(|h| !h.is_empty())
    }

    /// Kills (SIGKILL) the operator replica of pod `pod`; `false` if there is none.
    pub async fn kill_operator(&mut self, pod: &str) -> bool {
        match self.operators.iter_mut().find(|r| r.pod == pod) {
            Some(r) => {
                r.process.kill().await;
                true
            }
            None => false,
        }
    }

    /// Kills the leading operator replica; returns its pod name.
    pub async fn kill_leader(&mut self) -> Option<String> {
        let leader = self.leader()?;
        self.kill_operator(&leader).await.then_some(leader)
    }

    /// Stops every process (SIGTERM, SIGKILL after 5 s) and removes `DIR/kubeconfig` and
    /// `DIR/env`; dropping the handle instead kills them at once.
    pub async fn stop(mut self) {
        self.traffic = None;
        // All at once: the whole stop takes one grace period at most.
        let grace = Duration::from_secs(5);
        let operators =
            futures::future::join_all(self.operators.iter_mut().map(|r| r.process.stop(grace)));
        let pods = async {
            if let Some(k) = self.kubelet.take() {
                k.stop().await;
            }
        };
        futures::join!(
            operators,
            pods,
            self.prometheus.stop(),
            self.redis.stop(grace)
        );
        for f in ["kubeconfig", "env"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }
}
