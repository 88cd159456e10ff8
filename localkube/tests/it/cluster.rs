//! The local cluster end to end, in seconds: `Cluster::start` with the real
//! `feedroll-operator` binary (two replicas), Redis, Prometheus and traffic. A FeedRollout
//! applied with real kubectl gets its Services (ClusterIPs shown by `kubectl get svc`); two
//! hand-made pods run real feed-server processes on their pod IPs — one Ready, one not —
//! (the kubelet is another step of issue 11). Then: HTTP through the Service's ClusterIP
//! reaches the ready pod; a Service whose only pod is unready resets connections at once;
//! Prometheus scrapes both pods with the PodMonitor's labels; the traffic generator's feeds and
//! events reach the ready pod and never the unready one; an HTTPRoute splits requests on one
//! keep-alive connection by its weights; the cluster DNS proxy resolves Service names; one
//! operator replica holds the Lease and the chart's
//! RBAC refused none of the operator's requests; the handle kills and restarts Prometheus and
//! kills the leading replica.
//!
//! Needs the `feedroll-operator` and `feed-server` binaries beside this test's (`cargo test`
//! of the workspace builds them; alone: `cargo build -p feedroll-operator -p feed-server`),
//! kubectl, redis-server and prometheus (scripts/install-deps.sh). Fails, never skips.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use feedroll_bench::client::{Conn, Req, once};
use feedroll_localkube::cluster::traffic::TrafficConfig;
use feedroll_localkube::cluster::{Cluster, ClusterConfig};
use feedroll_localkube::rbac::Identity;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: cargo build -p {}",
        path.display(),
        if name == "feed-server" {
            "feed-server"
        } else {
            "feedroll-operator"
        }
    );
    path
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A feed-server process on `ip:8080`, killed on drop.
fn feed_server(ip: Ipv4Addr, redis: &str, track: &str) -> tokio::process::Child {
    tokio::process::Command::new(bin("feed-server"))
        .env("FEED_LISTEN", format!("{ip}:8080"))
        .env("FEED_REDIS_URL", redis)
        .env("FEED_REDIS_PREFIX", format!("feed:{}:", std::process::id()))
        .env("FEED_ROLLOUT", "feed")
        .env("FEED_TRACK", track)
        .env("FEED_WARMUP_USERS", "0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start feed-server")
}

/// A pod of the rollout `feed`, stored with the client, its status written through the
/// status subresource as a kubelet would.
async fn make_pod(pods: &kube::Api<Pod>, name: &str, track: &str, ip: Ipv4Addr, ready: bool) {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "feed", "labels": {
            "app.kubernetes.io/name": "feed-server", "feedroll.dev/rollout": "feed",
            "feedroll.dev/track": track}},
        "spec": {"containers": [{"name": "feed-server", "image": "ghcr.io/feedroll/feed-server:0.1.0",
            "ports": [{"name": "http", "containerPort": 8080}]}]},
    }))
    .expect("a Pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let status = json!({"status": {"phase": "Running", "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write the pod's status");
}

async fn prometheus(address: SocketAddr, path: &str) -> Value {
    match once(address, &Req::get(path)).await {
        Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `sum(...)` of a PromQL query, `None` when there is no series.
async fn query(address: SocketAddr, promql: &str) -> Option<f64> {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let v = prometheus(address, &format!("/api/v1/query?query={q}")).await;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_serves_ready_pods_through_services_routes_and_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ClusterConfig::new(dir.path(), Some(bin("feedroll-operator")));
    config.traffic = Some(TrafficConfig {
        rate: 40.0,
        ..TrafficConfig::default()
    });
    let mut cluster = Cluster::start(config).await.expect("the cluster starts");
    let kubeconfig = cluster.kubeconfig();
    let env = std::fs::read_to_string(dir.path().join("env")).expect("DIR/env");
    assert!(
        env.contains(&format!("PROMETHEUS={}", cluster.prometheus_url())),
        "{env}"
    );
    assert!(
        env.contains(&format!("KUBECONFIG={}", kubeconfig.display())),
        "{env}"
    );

    // The operator creates the rollout's Services; the network gives them ClusterIPs.
    let example = repo("examples/default-plan.yaml");
    cluster
        .kubectl(&["apply", "-f", example.to_str().expect("utf-8")])
        .await
        .expect("kubectl");
    let svc_ip = wait_for("the Service feed/feed", 30, async || {
        cluster.services().cluster_ip("feed", "feed")
    })
    .await;
    let canary_ip = wait_for("the Service feed/feed-canary", 30, async || {
        cluster.services().cluster_ip("feed", "feed-canary")
    })
    .await;
    let table = cluster
        .kubectl(&["-n", "feed", "get", "svc"])
        .await
        .expect("kubectl");
    assert!(
        table.contains(&svc_ip.to_string()) && table.contains("ClusterIP"),
        "{table}"
    );

    // Two pods by hand: stable Ready, canary not Ready; real feed-servers on their pod IPs.
    let subnet: u8 = rand::random::<u8>().max(1);
    let (ip_a, ip_b) = (
        Ipv4Addr::new(127, 10, subnet, 1),
        Ipv4Addr::new(127, 10, subnet, 2),
    );
    let redis = cluster.redis_url();
    let _a = feed_server(ip_a, &redis, "stable");
    let _b = feed_server(ip_b, &redis, "canary");
    for ip in [ip_a, ip_b] {
        wait_for("feed-server to listen", 30, async || {
            tokio::net::TcpStream::connect((ip, 8080)).await.ok()
        })
        .await;
    }
    let pods = kube::Api::<Pod>::namespaced(cluster.api().client_as(Identity::admin()), "feed");
    make_pod(&pods, "feed-stable-a", "stable", ip_a, true).await;
    make_pod(&pods, "feed-canary-b", "canary", ip_b, false).await;

    // Through the ClusterIP: only the ready pod; it answers.
    let service = SocketAddr::from((svc_ip, 8080));
    let served = wait_for("the ready pod behind the Service", 10, async || {
        let eps = cluster
            .services()
            .served("feed", "feed")
            .get(&8080)?
            .endpoints
            .clone();
        (!eps.is_empty()).then_some(eps)
    })
    .await;
    assert_eq!(served, vec![SocketAddr::from((ip_a, 8080))]);
    for _ in 0..4 {
        let r = once(service, &Req::get("/healthz"))
            .await
            .expect("an answer through the ClusterIP");
        assert_eq!(r.status, 200);
    }
    let slices = cluster
        .kubectl(&[
            "-n",
            "feed",
            "get",
            "endpointslices",
            "feed-1",
            "-o",
            "json",
        ])
        .await
        .expect("kubectl");
    let slice: Value = serde_json::from_str(&slices).expect("JSON");
    assert_eq!(
        slice["endpoints"].as_array().map(Vec::len),
        Some(2),
        "{slice}"
    );
    // Nothing changed since: the controller does not rewrite the slice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = cluster
        .api()
        .get("discovery.k8s.io/v1", "endpointslices", "feed", "feed-1");
    assert_eq!(
        again.map(|s| s["metadata"]["resourceVersion"].clone()),
        Some(slice["metadata"]["resourceVersion"].clone())
    );

    // The canary Service's only pod is unready: the connection is refused or reset at once.
    let started = Instant::now();
    let refused = once(SocketAddr::from((canary_ip, 8080)), &Req::get("/healthz")).await;
    assert!(
        refused.is_err(),
        "no ready endpoint, yet: {:?}",
        refused.map(|r| r.status)
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );

    // An HTTPRoute splits per request, on one keep-alive connection: stable and canary 1:1,
    // the canary share failing (503 from the gateway: no ready endpoint).
    let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "split", "namespace": "feed"},
        "spec": {"parentRefs": [{"name": "public"}],
                 "rules": [{"backendRefs": [{"name": "feed-stable", "port": 8080, "weight": 1},
                                            {"name": "feed-canary", "port": 8080, "weight": 1}]}]}});
    let file = dir.path().join("route.json");
    std::fs::write(&file, route.to_string()).expect("write the route");
    cluster
        .kubectl(&["apply", "-f", file.to_str().expect("utf-8")])
        .await
        .expect("kubectl");
    let gateway = wait_for("the gateway of feed/public", 10, async || {
        cluster.gateway().address("feed", "public")
    })
    .await;
    let mut conn = wait_for("the gateway to listen", 10, async || {
        Conn::connect(gateway).await.ok()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            conn.send(&Req::get("/healthz"))
                .await
                .expect("an answer")
                .status,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        3,
        "{statuses:?}"
    );
    let described = cluster
        .kubectl(&["-n", "feed", "get", "httproute", "split", "-o", "json"])
        .await
        .expect("kubectl");
    assert!(
        described.contains(&format!("served on http://{gateway}")),
        "{described}"
    );

    // Prometheus scrapes both pods (unready ones too) with the PodMonitor's labels.
    let prom: SocketAddr = cluster
        .prometheus_url()
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let targets = wait_for("both targets up", 20, async || {
        let v = prometheus(prom, "/api/v1/targets?state=active").await;
        let active = v["data"]["activeTargets"].as_array()?.clone();
        (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(active)
    })
    .await;
    let mut pods_seen: Vec<&str> = targets
        .iter()
        .filter_map(|t| t["labels"]["pod"].as_str())
        .collect();
    pods_seen.sort_unstable();
    assert_eq!(pods_seen, ["feed-canary-b", "feed-stable-a"]);
    for t in &targets {
        assert_eq!(t["labels"]["namespace"], "feed");
        assert_eq!(t["labels"]["container"], "feed-server");
        assert_eq!(t["labels"]["job"], "feedroll-system/feedroll-feed-servers");
    }

    // Cluster DNS for HTTP clients (the operator's http_proxy): the FeedRollout default
    // Prometheus address reaches this Prometheus; an unknown name is a 502 from the proxy.
    let proxy: SocketAddr = cluster
        .dns_proxy_url()
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let ready = once(
        proxy,
        &Req::get("http://prometheus-operated.monitoring.svc:9090/-/ready"),
    )
    .await
    .expect("an answer through the DNS proxy");
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    let unknown = once(proxy, &Req::get("http://nothing.monitoring.svc:9090/"))
        .await
        .expect("an answer from the DNS proxy");
    assert_eq!(unknown.status, 502);

    // Traffic: feeds and events reach the ready pod, never the unready one.
    let api_requests = |track: &str| {
        format!(
            "sum(feed_http_requests_total{{rollout=\"feed\",track=\"{track}\",route=~\"/v1/.+\"}})"
        )
    };
    wait_for("traffic in the stable pod's metrics", 30, async || {
        query(prom, &api_requests("stable"))
            .await
            .filter(|n| *n > 20.0)
    })
    .await;
    // Play events are accepted (a batch answered 2xx counts its events).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let accepted = query(
            prom,
            "sum(feed_events_total{rollout=\"feed\",track=\"stable\"})",
        )
        .await;
        if accepted.is_some_and(|n| n > 0.0) {
            break;
        }
        let rejected = query(prom, "sum by (code) (feed_events_rejected_total)").await;
        assert!(
            Instant::now() < deadline,
            "no accepted event: {accepted:?}, rejected {rejected:?}, traffic {:?}",
            cluster
                .traffic()
                .map(feedroll_localkube::cluster::traffic::Traffic::counts)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        query(prom, &api_requests("canary")).await.unwrap_or(0.0),
        0.0
    );
    let counts = cluster.traffic().expect("traffic runs").counts();
    let feed = counts.get("feed/feed").expect("traffic to feed/feed");
    assert!(feed.ok.load(std::sync::atomic::Ordering::Relaxed) > 0);

    // Two operator replicas, one leading; the chart's RBAC refused none of their requests.
    let replicas = cluster.operators();
    assert_eq!(replicas.len(), 2);
    assert!(replicas.iter().all(|(_, running)| *running), "{replicas:?}");
    let leader = wait_for("a leader", 20, async || cluster.leader()).await;
    assert!(
        replicas.iter().any(|(pod, _)| *pod == leader),
        "{leader} not in {replicas:?}"
    );
    let operator_user = "system:serviceaccount:feedroll-system:feedroll";
    assert!(cluster.requests().iter().any(|r| r.user == operator_user));
    let denied: Vec<String> = cluster
        .denied()
        .iter()
        .map(|r| format!("{} {} {}", r.user, r.method, r.path))
        .collect();
    assert!(denied.is_empty(), "refused: {denied:#?}");

    // The handle's outages: Prometheus killed and back on the same address; the leader killed.
    cluster.kill_prometheus().await;
    assert!(
        tokio::net::TcpStream::connect(prom).await.is_err(),
        "Prometheus still answers"
    );
    cluster
        .restart_prometheus()
        .await
        .expect("Prometheus restarts");
    assert!(tokio::net::TcpStream::connect(prom).await.is_ok());
    assert_eq!(cluster.kill_leader().await, Some(leader.clone()));
    let after = cluster.operators();
    assert!(
        after
            .iter()
            .any(|(pod, running)| *pod == leader && !running),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .any(|(pod, running)| *pod != leader && *running),
        "{after:?}"
    );

    cluster.stop().await;
    assert!(!dir.path().join("kubeconfig").exists());
}
