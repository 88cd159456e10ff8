//! The pure parts of the cluster network and its Prometheus discovery: which pods are a
//! Service's endpoints (selector, readiness, deletion, targetPort by number and by name), the
//! EndpointSlices written for them, what kube-proxy balances over, the exactness of the
//! gateway's weighted split, HTTPRoute parsing and matching, cluster DNS names, the file_sd
//! targets of the chart's PodMonitor and the operator's launch from the chart. No I/O; well
//! under a second.

use std::net::SocketAddr;

use feedroll_localkube::cluster::chart::{self, ChartError};
use feedroll_localkube::cluster::file_sd::{PodMonitor, target_groups};
use feedroll_localkube::cluster::prometheus;
use feedroll_localkube::net::balance::{RoundRobin, SmoothWeighted};
use feedroll_localkube::net::endpoints::{
    ServiceError, ServiceView, TargetPort, backends, endpoint_slices, resolve_target_port,
};
use feedroll_localkube::net::routes::{PathMatch, Route, select};
use feedroll_localkube::net::services::service_of_host;
use serde_json::{Value, json};

fn pod(name: &str, labels: Value, ip: Option<&str>, ready: bool) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "feed", "uid": format!("uid-{name}"), "labels": labels},
        "spec": {"containers": [{"name": "feed-server",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9000}]}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    });
    if let Some(ip) = ip {
        p["status"]["podIP"] = json!(ip);
    }
    p
}

fn service(selector: Value, ports: Value) -> ServiceView {
    ServiceView::parse(&json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "feed", "namespace": "feed", "uid": "svc-uid"},
        "spec": {"selector": selector, "ports": ports, "clusterIP": "127.20.0.5"},
    }))
    .expect("a valid Service")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn backends_of(
    svc: &ServiceView,
    pods: &[Value],
) -> std::collections::BTreeMap<u16, Vec<SocketAddr>> {
    backends(svc, &endpoint_slices(svc, pods))
}

#[test]
fn endpoints_are_the_selected_ready_pods_with_an_ip() {
    let svc = service(
        json!({"app": "feed"}),
        json!([{"name": "http", "port": 80, "targetPort": "http"}]),
    );
    let pods = [
        pod(
            "a",
            json!({"app": "feed", "track": "stable"}),
            Some("127.10.0.1"),
            true,
        ),
        pod("b", json!({"app": "feed"}), Some("127.10.0.2"), false), // not ready
        pod("c", json!({"app": "other"}), Some("127.10.0.3"), true), // not selected
        pod("d", json!({"app": "feed"}), None, true),                // no IP yet
        {
            let mut p = pod("e", json!({"app": "feed"}), Some("127.10.0.5"), true);
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"); // terminating
            p
        },
        {
            let mut p = pod("f", json!({"app": "feed"}), Some("127.10.0.6"), true);
            p["status"]["phase"] = json!("Succeeded"); // ended
            p
        },
        {
            let mut p = pod("g", json!({"app": "feed"}), Some("127.10.0.7"), true);
            p["metadata"]["namespace"] = json!("other"); // another namespace
            p
        },
    ];
    let b = backends_of(&svc, &pods);
    assert_eq!(b[&80], vec![addr("127.10.0.1:8080")]);

    // The slice lists the unready and terminating pods too, as not ready (kubectl shows them).
    let slices = endpoint_slices(&svc, &pods);
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert_eq!(s["metadata"]["name"], "feed-1");
    assert_eq!(
        s["metadata"]["labels"]["kubernetes.io/service-name"],
        "feed"
    );
    assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
    assert_eq!(
        s["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let listed: Vec<(&str, bool)> = s["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            (
                e["targetRef"]["name"].as_str().expect("name"),
                e["conditions"]["ready"] == true,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("a", true), ("b", false), ("e", false), ("f", false)]
    );
}

#[test]
fn a_pod_that_becomes_ready_or_unready_enters_or_leaves_the_backends() {
    let svc = service(json!({"app": "feed"}), json!([{"port": 8080}]));
    let mut p = pod("a", json!({"app": "feed"}), Some("127.10.0.1"), false);
    assert_eq!(
        backends_of(&svc, std::slice::from_ref(&p))[&8080],
        Vec::<SocketAddr>::new()
    );
    p["status"]["conditions"][0]["status"] = json!("True");
    assert_eq!(
        backends_of(&svc, std::slice::from_ref(&p))[&8080],
        vec![addr("127.10.0.1:8080")]
    );
}

#[test]
fn target_ports_resolve_by_number_by_name_and_default_to_the_port() {
    let p = pod("a", json!({"app": "feed"}), Some("127.10.0.1"), true);
    assert_eq!(
        resolve_target_port(&TargetPort::Number(7000), &p),
        Some(7000)
    );
    assert_eq!(
        resolve_target_port(&TargetPort::Name("http".into()), &p),
        Some(8080)
    );
    assert_eq!(
        resolve_target_port(&TargetPort::Name("admin".into()), &p),
        Some(9000)
    );
    assert_eq!(
        resolve_target_port(&TargetPort::Name("grpc".into()), &p),
        None
    );

    let svc = service(
        json!({"app": "feed"}),
        json!([{"name": "web", "port": 80, "targetPort": "http"},
               {"name": "admin", "port": 9001, "targetPort": 9000},
               {"name": "same", "port": 7070},
               {"name": "text-number", "port": 81, "targetPort": "8081"}]),
    );
    assert_eq!(svc.ports[0].target, TargetPort::Name("http".into()));
    assert_eq!(svc.ports[2].target, TargetPort::Number(7070));
    assert_eq!(svc.ports[3].target, TargetPort::Number(8081));
    let b = backends_of(&svc, &[p]);
    assert_eq!(b[&80], vec![addr("127.10.0.1:8080")]);
    assert_eq!(b[&9001], vec![addr("127.10.0.1:9000")]);
    assert_eq!(b[&7070], vec![addr("127.10.0.1:7070")]);
    assert_eq!(b[&81], vec![addr("127.10.0.1:8081")]);
}

#[test]
fn a_named_port_resolving_differently_per_pod_gives_one_slice_per_port_set() {
    let svc = service(
        json!({"app": "feed"}),
        json!([{"name": "web", "port": 80, "targetPort": "http"}]),
    );
    let a = pod("a", json!({"app": "feed"}), Some("127.10.0.1"), true);
    let mut b = pod("b", json!({"app": "feed"}), Some("127.10.0.2"), true);
    b["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8181);
    let mut c = pod("c", json!({"app": "feed"}), Some("127.10.0.3"), true);
    c["spec"]["containers"][0]["ports"] = json!([]); // no port named http: not an endpoint
    let slices = endpoint_slices(&svc, &[a, b, c]);
    assert_eq!(slices.len(), 2);
    assert_eq!(slices[1]["metadata"]["name"], "feed-2");
    let got = backends(&svc, &slices);
    assert_eq!(
        got[&80],
        vec![addr("127.10.0.1:8080"), addr("127.10.0.2:8181")]
    );
}

#[test]
fn a_service_without_endpoints_has_one_empty_slice_and_no_backends() {
    let svc = service(
        json!({"app": "feed"}),
        json!([{"name": "http", "port": 80}]),
    );
    let slices = endpoint_slices(&svc, &[]);
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0]["endpoints"], json!([]));
    assert!(backends(&svc, &slices)[&80].is_empty());
}

#[test]
fn a_service_without_selector_is_served_from_the_slices_a_user_wrote() {
    let svc = ServiceView::parse(&json!({
        "metadata": {"name": "redis", "namespace": "feed"},
        "spec": {"ports": [{"name": "redis", "port": 6379}]},
    }))
    .expect("valid");
    assert!(endpoint_slices(&svc, &[pod("a", json!({}), Some("127.10.0.1"), true)]).is_empty());
    let slice = |ns: &str, svc_name: &str, ip: &str, ready: Value| {
        json!({"metadata": {"namespace": ns, "labels": {"kubernetes.io/service-name": svc_name}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
               "ports": [{"name": "redis", "port": 40000}]})
    };
    let slices = [
        slice("feed", "redis", "127.0.0.1", Value::Null), // ready absent: ready
        slice("feed", "redis", "127.0.0.2", json!(false)),
        slice("other", "redis", "127.0.0.3", json!(true)),
        slice("feed", "cache", "127.0.0.4", json!(true)),
    ];
    assert_eq!(
        backends(&svc, &slices)[&6379],
        vec![addr("127.0.0.1:40000")]
    );
}

#[test]
fn an_empty_selector_selects_no_pod() {
    let svc = service(json!({}), json!([{"port": 80}]));
    assert!(!svc.selects(&pod("a", json!({"app": "feed"}), Some("127.10.0.1"), true)));
}

#[test]
fn unservable_services_are_errors_naming_the_port() {
    let bad = |ports: Value| {
        ServiceView::parse(&json!({"metadata": {"name": "s", "namespace": "n"},
                                   "spec": {"ports": ports}}))
    };
    for ports in [
        json!([{"port": 0}]),
        json!([{"port": 70000}]),
        json!([{"port": "eighty"}]),
        json!([{"port": 80, "protocol": "UDP"}]),
        json!([{"port": 80, "targetPort": 0}]),
        json!([{"port": 80, "targetPort": ""}]),
    ] {
        match bad(ports.clone()) {
            Err(ServiceError::BadPort { service, index, .. }) => {
                assert_eq!((service.as_str(), index), ("n/s", 0), "{ports}");
            }
            other => panic!("{ports}: {other:?}"),
        }
    }
    assert_eq!(
        ServiceView::parse(&json!({"spec": {}})),
        Err(ServiceError::Unnamed)
    );
}

#[test]
fn round_robin_cycles_and_copes_with_a_changing_list() {
    let rr = RoundRobin::default();
    let picks: Vec<usize> = (0..6).filter_map(|_| rr.pick(3)).collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    assert_eq!(rr.pick(0), None);
    assert!(rr.pick(2).is_some_and(|i| i < 2));
}

#[test]
fn the_weighted_split_is_exact_over_every_cycle_and_spread_out() {
    for weights in [
        vec![90, 10],
        vec![50, 50],
        vec![1, 99],
        vec![3, 0, 7],
        vec![100, 0],
        vec![33, 33, 34],
    ] {
        let total: u32 = weights.iter().sum();
        let mut w = SmoothWeighted::new(weights.clone());
        for cycle in 0..3 {
            let mut counts = vec![0u32; weights.len()];
            for _ in 0..total {
                counts[w.pick().expect("a backend")] += 1;
            }
            assert_eq!(counts, weights, "cycle {cycle} of {weights:?}");
        }
    }
    // 90/10: the canary's requests are spread, never two in a row.
    let mut w = SmoothWeighted::new(vec![90, 10]);
    let picks: Vec<usize> = (0..100).filter_map(|_| w.pick()).collect();
    assert!(picks.windows(2).all(|p| p != [1, 1]), "{picks:?}");
    assert_eq!(SmoothWeighted::new(vec![0, 0]).pick(), None);
    assert_eq!(SmoothWeighted::new(vec![]).pick(), None);
}

fn route(spec: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "feed", "namespace": "feed"}, "spec": spec})
}

#[test]
fn routes_parse_with_the_api_defaults() {
    let r = Route::parse(&route(json!({
        "parentRefs": [{"name": "public"}, {"name": "internal", "namespace": "infra"}],
        "rules": [{"backendRefs": [{"name": "feed-stable", "port": 8080, "weight": 90},
                                   {"name": "feed-canary", "port": 8080, "weight": 10},
                                   {"name": "mirror", "namespace": "x", "port": 80}]}],
    })))
    .expect("valid");
    assert_eq!(r.parents[0].to_string(), "feed/public");
    assert_eq!(r.parents[1].to_string(), "infra/internal");
    let b = &r.rules[0].backends;
    assert_eq!((b[0].weight, b[1].weight, b[2].weight), (90, 10, 1));
    assert_eq!((b[2].namespace.as_str(), b[2].port), ("x", 80));
    assert!(r.rules[0].matches.is_empty());
}

#[test]
fn unservable_routes_are_errors() {
    for spec in [
        json!({"parentRefs": [{}]}),
        json!({"rules": [{"backendRefs": [{"name": "a"}]}]}),
        json!({"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]}),
        json!({"rules": [{"backendRefs": [{"name": "a", "port": 80, "kind": "Bucket", "group": "x"}]}]}),
        json!({"rules": [{"matches": [{"path": {"type": "RegularExpression", "value": "/.*"}}]}]}),
    ] {
        let e = Route::parse(&route(spec.clone())).expect_err("invalid");
        assert_eq!(e.route, "feed/feed", "{spec}");
    }
}

#[test]
fn requests_find_their_route_by_host_and_path() {
    let a = Route::parse(&route(json!({
        "hostnames": ["feed.example.com", "*.feed.test"],
        "rules": [{"matches": [{"path": {"type": "Exact", "value": "/healthz"}}],
                   "backendRefs": [{"name": "health", "port": 80}]},
                  {"matches": [{"path": {"value": "/v1"}}],
                   "backendRefs": [{"name": "api", "port": 80}]}],
    })))
    .expect("valid");
    let b = Route::parse(&route(
        json!({"rules": [{"backendRefs": [{"name": "fallback", "port": 80}]}]}),
    ))
    .expect("valid");
    let routes = [a, b];
    assert_eq!(
        select(&routes, "feed.example.com", "/healthz"),
        Some((0, 0))
    );
    assert_eq!(
        select(&routes, "FEED.example.com", "/v1/feed"),
        Some((0, 1))
    );
    assert_eq!(select(&routes, "x.feed.test", "/v1"), Some((0, 1)));
    // Prefix matches whole path elements: /v10 is not under /v1.
    assert_eq!(select(&routes, "feed.example.com", "/v10"), Some((1, 0)));
    assert_eq!(
        select(&routes, "feed.test", "/v1"),
        Some((1, 0)),
        "a wildcard needs a label"
    );
    assert_eq!(select(&routes, "other", "/healthz/x"), Some((1, 0)));
    assert_eq!(select(&routes[..1], "other", "/"), None);
    assert!(PathMatch::Prefix("/".into()).matches("/anything"));
    assert!(PathMatch::Prefix("/v1/".into()).matches("/v1"));
    assert!(!PathMatch::Exact("/v1".into()).matches("/v1/"));
}

#[test]
fn cluster_dns_names_name_services() {
    assert_eq!(service_of_host("redis.feed.svc"), Some(("feed", "redis")));
    assert_eq!(
        service_of_host("prometheus-operated.monitoring.svc.cluster.local."),
        Some(("monitoring", "prometheus-operated"))
    );
    for not_a_service in [
        "redis",
        "redis.feed",
        "feed.svc",
        ".feed.svc",
        "a.b.c.svc",
        "example.com",
    ] {
        assert_eq!(service_of_host(not_a_service), None, "{not_a_service}");
    }
}

fn chart_monitor() -> PodMonitor {
    let objects = chart::objects(chart::POD_MONITOR_RELEASE).expect("rendered chart");
    PodMonitor::parse(chart::find(&objects, "PodMonitor").expect("a PodMonitor")).expect("valid")
}

#[test]
fn file_sd_lists_the_pods_the_charts_pod_monitor_selects_with_its_labels() {
    let m = chart_monitor();
    assert_eq!(m.job, "feedroll-system/feedroll-feed-servers");
    assert_eq!(
        (m.port.as_str(), m.path.as_str(), m.namespaces.clone()),
        ("http", "/metrics", None)
    );
    let rollout = json!({"feedroll.dev/rollout": "feed", "feedroll.dev/track": "canary"});
    let pods = [
        pod("b-canary", rollout.clone(), Some("127.10.0.2"), false), // unready: still scraped
        pod(
            "a-stable",
            json!({"feedroll.dev/rollout": "feed"}),
            Some("127.10.0.1"),
            true,
        ),
        pod("other", json!({"app": "x"}), Some("127.10.0.3"), true), // not a rollout's pod
        pod("pending", rollout.clone(), None, false),                // no IP yet
        {
            let mut p = pod("done", rollout.clone(), Some("127.10.0.4"), false);
            p["status"]["phase"] = json!("Failed");
            p
        },
    ];
    let groups = target_groups(&m, &pods);
    let got = serde_json::to_value(&groups).expect("json");
    assert_eq!(
        got,
        json!([
            {"targets": ["127.10.0.1:8080"], "labels": {"namespace": "feed", "pod": "a-stable",
                "container": "feed-server", "endpoint": "http",
                "job": "feedroll-system/feedroll-feed-servers", "__metrics_path__": "/metrics"}},
            {"targets": ["127.10.0.2:8080"], "labels": {"namespace": "feed", "pod": "b-canary",
                "container": "feed-server", "endpoint": "http",
                "job": "feedroll-system/feedroll-feed-servers", "__metrics_path__": "/metrics"}},
        ])
    );
    // A pod without a port of that name is not scraped.
    let mut unnamed = pod("x", rollout, Some("127.10.0.9"), true);
    unnamed["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
    assert!(target_groups(&m, &[unnamed]).is_empty());
}

#[test]
fn pod_monitor_selectors_and_namespaces_follow_prometheus_operator() {
    let monitor = |spec: Value| {
        PodMonitor::parse(&json!({"metadata": {"name": "m", "namespace": "mon"}, "spec": spec}))
    };
    let m = monitor(json!({
        "selector": {"matchLabels": {"app": "feed"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                                          {"key": "legacy", "operator": "DoesNotExist"},
                                          {"key": "env", "operator": "NotIn", "values": ["dev"]}]},
        "podMetricsEndpoints": [{"port": "http"}],
    }))
    .expect("valid");
    assert_eq!(
        m.namespaces,
        Some(vec!["mon".to_owned()]),
        "no namespaceSelector: its own namespace"
    );
    let at = |ns: &str, labels: Value| json!({"metadata": {"namespace": ns, "labels": labels}});
    assert!(m.selects(&at("mon", json!({"app": "feed", "tier": "api"}))));
    assert!(!m.selects(&at("other", json!({"app": "feed", "tier": "api"}))));
    assert!(!m.selects(&at("mon", json!({"app": "feed", "tier": "db"}))));
    assert!(!m.selects(&at(
        "mon",
        json!({"app": "feed", "tier": "api", "legacy": "1"})
    )));
    assert!(!m.selects(&at(
        "mon",
        json!({"app": "feed", "tier": "api", "env": "dev"})
    )));
    let named = monitor(json!({"namespaceSelector": {"matchNames": ["a", "b"]},
                               "podMetricsEndpoints": [{"port": "http"}]}))
    .expect("valid");
    assert_eq!(named.namespaces, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert!(monitor(json!({"podMetricsEndpoints": [{"targetPort": 8080}]})).is_err());
    assert!(
        monitor(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},
                           "podMetricsEndpoints": [{"port": "http"}]})
        )
        .is_err()
    );
}

#[test]
fn prometheus_scrapes_the_file_sd_targets_every_second_honouring_labels() {
    let cfg = prometheus::config(&chart_monitor(), std::path::Path::new("/d/targets.json"));
    let parsed: serde_yaml::Value = serde_yaml::from_str(&cfg).expect("YAML");
    assert_eq!(parsed["global"]["scrape_interval"], "1s");
    let job = &parsed["scrape_configs"][0];
    assert_eq!(
        job["job_name"],
        "podMonitor/feedroll-system/feedroll-feed-servers/0"
    );
    assert_eq!(job["honor_labels"], true);
    assert_eq!(job["file_sd_configs"][0]["files"][0], "/d/targets.json");
}

#[test]
fn the_operator_starts_with_the_charts_arguments_and_environment() {
    let objects = chart::objects(chart::DEFAULT_RELEASE).expect("rendered chart");
    let deployment = chart::find(&objects, "Deployment").expect("the operator Deployment");
    let launch = chart::operator_launch(deployment, "feedroll-1").expect("launch");
    assert_eq!(launch.args, ["run", "--log-format", "json"]);
    assert_eq!(launch.var("POD_NAME"), Some("feedroll-1"));
    assert_eq!(
        launch.var("FEEDROLL_LEASE_NAMESPACE"),
        Some("feedroll-system")
    );
    assert_eq!(launch.var("FEEDROLL_LEADER_ELECTION"), Some("true"));
    assert_eq!(launch.var("FEEDROLL_LEASE_NAME"), Some("feedroll-operator"));
    // A value the cluster cannot provide is an error naming the variable.
    let mut d = deployment.clone();
    d["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    assert!(
        matches!(chart::operator_launch(&d, "p"), Err(ChartError::Env { name, .. }) if name == "TOKEN")
    );
    assert!(matches!(chart::objects("{"), Err(ChartError::NotJson(_))));
    assert!(matches!(
        chart::find(&[], "Deployment"),
        Err(ChartError::Missing("Deployment"))
    ));
}
