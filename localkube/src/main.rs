//! `localkube`: the Feedroll local API server over HTTPS.
//!
//! Binds a loopback port (a free one unless `--listen`), generates a CA, writes
//! `DIR/kubeconfig` (contexts `admin` and `operator`, the operator's ServiceAccount),
//! `DIR/operator.kubeconfig` (that ServiceAccount only) and `DIR/ca.crt`,
//! prints one `ready` line and serves until interrupted.
//!
//! With `--cluster`, the whole local cluster instead ([`feedroll_localkube::cluster`]): the
//! same API server and files, plus Services, the HTTPRoute gateway, Redis, Prometheus, traffic
//! and the operator replicas; `DIR/env` for `source`; everything stopped on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use feedroll_localkube::FakeApi;
use feedroll_localkube::kubelet::backoff::parse_duration;
use feedroll_localkube::kubelet::images::{FAULTY_FEED_SERVER_ENV, FEED_SERVER_PATTERN};
use feedroll_localkube::kubelet::{ImageRule, ImageTable, KubeletConfig, KubeletHandle, TimeScale};
use feedroll_localkube::rbac::Identity;
use feedroll_localkube::serve::{Certificates, KubeconfigUser, Listener, kubeconfig};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "localkube",
    about = "A local Kubernetes API server for Feedroll (HTTPS, kubectl-compatible)"
)]
struct Args {
    /// Directory for kubeconfig and ca.crt (created if missing).
    #[arg(long, default_value = ".localkube")]
    dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The operator's ServiceAccount, NAMESPACE:NAME (the chart's default release): it gets a
    /// token, a kubeconfig context and `DIR/operator.kubeconfig`, and is authorized by the RBAC
    /// objects stored in the server (none at start). `--cluster` uses the chart's
    /// ServiceAccount and installs its RBAC instead.
    #[arg(long, default_value = "feedroll-system:feedroll")]
    operator_service_account: String,
    /// More CustomResourceDefinition files (YAML) to register at start; the FeedRollout CRD
    /// always is.
    #[arg(long)]
    crd: Vec<PathBuf>,
    /// More namespaces to create at start (besides `default`, `kube-system`, `kube-public`,
    /// `kube-node-lease` and the operator's), e.g. `feed` for the examples.
    #[arg(long)]
    namespace: Vec<String>,
    /// Changes kept for watches to resume from: a watch from an older resourceVersion gets
    /// 410 Gone and its client relists (kubectl and kube-runtime do so on their own).
    #[arg(long, default_value_t = 5_000)]
    history: usize,
    /// Changes a live watch may fall behind by before its stream ends (the client resumes
    /// from the history).
    #[arg(long, default_value_t = 1_024)]
    live_buffer: usize,
    /// Recent requests kept in memory with their RBAC decisions, a ring (0, the default:
    /// none; nothing in the binary reads them, refusals are logged as warnings either way).
    #[arg(long, default_value_t = 0)]
    request_log: usize,
    /// Run the kubelet and the Deployment controller: Deployments get pods, pods run as real
    /// processes (see localkube/README.md). `--cluster` always runs them.
    #[arg(long)]
    kubelet: bool,
    /// An image rule, PATTERN=PATH (repeatable, first match wins): containers whose image
    /// matches the glob PATTERN run the binary PATH, told to listen on the pod's IP with
    /// `FEED_LISTEN`. A last rule `feed-server:*` always runs the fault-injection feed-server:
    /// `$FEEDROLL_FAULTY_FEED_SERVER`, else `target/fault-injection/feed-server` beside this
    /// binary's target directory.
    #[arg(long, value_name = "PATTERN=PATH", value_parser = ImageRule::parse)]
    image: Vec<ImageRule>,
    /// How long after a ConfigMap or Secret changes its files in running pods change (before
    /// --time-scale): 30s, 500ms, 2m or seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    kubelet_sync_delay: std::time::Duration,
    /// Multiplies every kubelet and controller duration (probe periods, back-offs, grace
    /// periods, the sync delay, progress deadlines), in (0, 1]: 0.05 makes a 10 s back-off
    /// 0.5 s (tests).
    #[arg(long, default_value = "1", value_parser = parse_time_scale)]
    time_scale: TimeScale,
    /// Where pods' directories (volumes, logs) go; default DIR/pods.
    #[arg(long)]
    kubelet_dir: Option<PathBuf>,
    /// Start the whole local cluster, not only the API server (implies `--kubelet`).
    #[arg(long)]
    cluster: bool,
    /// `--cluster`: the feedroll-operator binary (default: `feedroll-operator` beside this
    /// binary).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// `--cluster`: start no operator.
    #[arg(long, conflicts_with = "operator_bin")]
    no_operator: bool,
    /// `--cluster`: operator replicas (leader election).
    #[arg(long, default_value_t = 2)]
    operator_replicas: usize,
    /// `--cluster`: requests per second the traffic generator sends to each FeedRollout
    /// (0: no traffic).
    #[arg(long, default_value_t = 50.0)]
    traffic_rate: f64,
    /// `--cluster`: the API key the traffic generator sends (`Authorization: Bearer`), for
    /// feed-servers started with `--api-keys`.
    #[arg(long, env = "LOCALKUBE_TRAFFIC_API_KEY", hide_env_values = true)]
    traffic_api_key: Option<String>,
    /// `--cluster`: the port HTTPRoute parents listen on (each parent has its own address).
    #[arg(long, default_value_t = feedroll_localkube::net::gateway::DEFAULT_GATEWAY_PORT)]
    gateway_port: u16,
}

fn parse_time_scale(s: &str) -> Result<TimeScale, String> {
    let f: f64 = s.parse().map_err(|e| format!("{e}"))?;
    TimeScale::new(f).map_err(|e| e.to_string())
}

/// The fault-injection feed-server the default image rule runs.
fn faulty_feed_server() -> PathBuf {
    if let Some(p) = std::env::var_os(FAULTY_FEED_SERVER_ENV) {
        return PathBuf::from(p);
    }
    // target/debug/localkube → target/fault-injection/feed-server
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            Some(
                exe.parent()?
                    .parent()?
                    .join("fault-injection")
                    .join("feed-server"),
            )
        })
        .unwrap_or_else(|| PathBuf::from("target/fault-injection/feed-server"))
}

/// The kubelet's configuration when `--kubelet` or `--cluster` asks for one.
fn kubelet_config(args: &Args) -> anyhow::Result<Option<KubeletConfig>> {
    if !(args.kubelet || args.cluster) {
        return Ok(None);
    }
    let mut rules = args.image.clone();
    let default = ImageRule::parse(&format!(
        "{FEED_SERVER_PATTERN}={}",
        faulty_feed_server().display()
    ))?;
    if !default.binary.is_file() {
        tracing::warn!(
            binary = %default.binary.display(),
            "no fault-injection feed-server there: feed-server pods will fail to start (build it with `cargo build -p feed-server --features fault-injection` and copy it there, or set FEEDROLL_FAULTY_FEED_SERVER)"
        );
    }
    rules.push(default);
    let mut config = KubeletConfig::new(
        args.kubelet_dir
            .clone()
            .unwrap_or_else(|| args.dir.join("pods")),
        ImageTable::new(rules),
    );
    config.sync_delay = args.kubelet_sync_delay;
    config.time_scale = args.time_scale;
    Ok(Some(config))
}

/// Starts the kubelet when `--kubelet` asks for it.
fn start_kubelet(args: &Args, api: &FakeApi) -> anyhow::Result<Option<KubeletHandle>> {
    Ok(kubelet_config(args)?
        .map(|config| feedroll_localkube::kubelet::spawn(api.clone(), config))
        .transpose()?)
}

/// Ctrl-C or SIGTERM (`local-cluster.sh down`).
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Runs the whole cluster until SIGINT or SIGTERM.
async fn run_cluster(args: Args) -> anyhow::Result<()> {
    use feedroll_localkube::cluster::traffic::TrafficConfig;
    use feedroll_localkube::cluster::{Cluster, ClusterConfig};
    if !(args.traffic_rate >= 0.0 && args.traffic_rate.is_finite()) {
        bail!(
            "--traffic-rate must be a number >= 0, got {}",
            args.traffic_rate
        );
    }
    let kubelet = kubelet_config(&args)?;
    let operator_bin = if args.no_operator {
        None
    } else {
        Some(match args.operator_bin {
            Some(bin) => bin,
            None => std::env::current_exe()
                .context("locating this binary")?
                .with_file_name("feedroll-operator"),
        })
    };
    let mut config = ClusterConfig::new(&args.dir, operator_bin);
    config.kubelet = kubelet;
    config.listen = args.listen;
    config.namespaces = args.namespace;
    config.operator_replicas = args.operator_replicas;
    config.request_log = Some(args.request_log);
    config.history = Some(args.history);
    config.live_buffer = Some(args.live_buffer);
    config.gateway_port = args.gateway_port;
    config.traffic = (args.traffic_rate > 0.0).then(|| TrafficConfig {
        rate: args.traffic_rate,
        api_key: args.traffic_api_key,
        ..TrafficConfig::default()
    });
    let cluster = Cluster::start(config)
        .await
        .context("starting the cluster")?;
    for file in &args.crd {
        cluster
            .api()
            .put("customresourcedefinitions", read_crd(file)?);
    }
    println!(
        "localkube cluster ready: {} (kubeconfig {}, Prometheus {}, Redis {})",
        cluster.server(),
        cluster.kubeconfig().display(),
        cluster.prometheus_url(),
        cluster.redis_url(),
    );
    interrupted().await;
    cluster.stop().await;
    Ok(())
}

/// A CustomResourceDefinition read from a YAML file.
fn read_crd(file: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let crd: serde_json::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", file.display()))?;
    if crd["kind"] != "CustomResourceDefinition" {
        bail!("{} is not a CustomResourceDefinition", file.display());
    }
    Ok(crd)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.cluster {
        return run_cluster(args).await;
    }
    let Some((sa_ns, sa_name)) = args.operator_service_account.split_once(':') else {
        bail!(
            "--operator-service-account must be NAMESPACE:NAME, got {:?}",
            args.operator_service_account
        );
    };
    let api = FakeApi::cluster().context("starting the API server")?;
    // Bounded memory in a long session: a short history, a small live buffer, a request ring.
    api.set_history_limit(args.history);
    api.set_live_buffer(args.live_buffer);
    api.set_request_log_limit(args.request_log);
    for ns in args.namespace.iter().map(String::as_str).chain([sa_ns]) {
        api.put(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                   "status": {"phase": "Active"}}),
        );
    }
    api.put(
        "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": sa_name, "namespace": sa_ns}}),
    );
    for file in &args.crd {
        api.put("customresourcedefinitions", read_crd(file)?);
    }
    let admin_token = api.issue_token(Identity::admin());
    let operator_token = api.issue_token(Identity::service_account(sa_ns, sa_name));

    // Before the kubeconfig appears: its presence means everything is up.
    let kubelet = start_kubelet(&args, &api)?;
    let certs = Certificates::generate()?;
    let listener = Listener::bind(args.listen, &certs)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let server = format!("https://{addr}");
    let admin = KubeconfigUser {
        name: "admin".into(),
        token: admin_token,
        namespace: "default".into(),
    };
    let operator = KubeconfigUser {
        name: "operator".into(),
        token: operator_token,
        namespace: sa_ns.into(),
    };
    let operator_config = kubeconfig(&server, &certs.ca_pem, std::slice::from_ref(&operator))?;
    let config = kubeconfig(&server, &certs.ca_pem, &[admin, operator])?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    std::fs::write(args.dir.join("ca.crt"), &certs.ca_pem)?;
    std::fs::write(args.dir.join("operator.kubeconfig"), operator_config)?;
    // Written whole then renamed: its presence means the server is ready.
    let tmp = args.dir.join("kubeconfig.tmp");
    std::fs::write(&tmp, config)?;
    std::fs::rename(&tmp, args.dir.join("kubeconfig"))?;
    println!(
        "localkube ready: {server} (kubeconfig {})",
        args.dir.join("kubeconfig").display()
    );
    let served = tokio::select! {
        r = listener.serve(api) => r.context("serving"),
        () = interrupted() => Ok(()),
    };
    if let Some(k) = kubelet {
        k.stop().await;
    }
    served
}
