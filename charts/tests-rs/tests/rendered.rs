//! Every object the chart renders, every example FeedRollout and every Argo CD fixture
//! FeedRollout, checked against the Kubernetes API types by a strict round trip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use feedroll_chart_tests::monitoring::{PodMonitor, PrometheusRule, ServiceMonitor};
use feedroll_chart_tests::round_trip;
use feedroll_crds::FeedRollout;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The rendered snapshots: `testdata/rendered/*.json`, or `$FEEDROLL_RENDERED_DIR` (for a
/// fresh render of a modified chart).
fn rendered_dir() -> PathBuf {
    std::env::var_os("FEEDROLL_RENDERED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rendered"),
        PathBuf::from,
    )
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Checks one object with the type of its apiVersion/kind; an unknown kind is an error, so a
/// new template cannot slip past unchecked.
fn check(object: &Value) -> Result<(), String> {
    let api_version = str_at(object, "/apiVersion");
    let kind = str_at(object, "/kind");
    match (api_version, kind) {
        ("apps/v1", "Deployment") => round_trip::<Deployment>(object),
        ("v1", "Service") => round_trip::<Service>(object),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(object),
        ("v1", "Secret") => round_trip::<Secret>(object),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(object)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(object),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(object),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(object),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => round_trip::<ServiceMonitor>(object),
        ("monitoring.coreos.com/v1", "PodMonitor") => round_trip::<PodMonitor>(object),
        ("monitoring.coreos.com/v1", "PrometheusRule") => round_trip::<PrometheusRule>(object),
        ("feedroll.dev/v1alpha1", "FeedRollout") => {
            round_trip::<FeedRollout>(object)?;
            valid_for_the_api_server(object)
        }
        _ => Err(format!("no schema check for {api_version} {kind}")),
    }
}

/// The CRD's OpenAPI schema and CEL rules, as the API server (and `feedroll-operator check`)
/// apply them.
fn valid_for_the_api_server(object: &Value) -> Result<(), String> {
    let text = serde_yaml::to_string(object).map_err(|e| e.to_string())?;
    feedroll_operator::validate::validate_text(&text)
        .map(|_| ())
        .map_err(|problems| format!("{problems:?}"))
}

#[test]
fn every_rendered_object_matches_its_kubernetes_type() {
    let dir = rendered_dir();
    let snapshots = files(&dir, "json");
    assert!(
        snapshots.len() >= 5,
        "expected the rendered scenarios in {} (charts/tests/chart_render.py --update)",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    let mut count = 0;
    for path in &snapshots {
        let text = std::fs::read_to_string(path).expect("read snapshot");
        let objects: Vec<Value> = serde_json::from_str(&text).expect("snapshot is a JSON array");
        assert!(!objects.is_empty(), "{}: no objects", path.display());
        for object in &objects {
            count += 1;
            kinds.insert(str_at(object, "/kind").to_owned());
            if let Err(e) = check(object) {
                failures.push(format!(
                    "{} {} {}: {e}",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    str_at(object, "/kind"),
                    str_at(object, "/metadata/name")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every template of the chart is covered by some scenario.
    for kind in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "Secret",
        "ConfigMap",
        "FeedRollout",
    ] {
        assert!(kinds.contains(kind), "no scenario renders a {kind}");
    }
    assert!(count > 40, "only {count} objects checked");
}

#[test]
fn the_check_rejects_misspelt_and_mistyped_fields() {
    let snapshot = rendered_dir().join("default.json");
    let objects: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(snapshot).expect("read")).expect("json");
    let deployment = objects
        .iter()
        .find(|o| str_at(o, "/kind") == "Deployment")
        .expect("a Deployment")
        .clone();
    assert!(check(&deployment).is_ok());

    let mut misspelt = deployment.clone();
    let container = misspelt
        .pointer_mut("/spec/template/spec/containers/0")
        .and_then(Value::as_object_mut)
        .expect("container");
    let probe = container.remove("readinessProbe").expect("probe");
    container.insert("readynessProbe".into(), probe);
    let err = check(&misspelt).expect_err("misspelt field");
    assert!(err.contains("readynessProbe"), "{err}");

    let mut mistyped = deployment.clone();
    *mistyped.pointer_mut("/spec/replicas").expect("replicas") = Value::from("two");
    assert!(check(&mistyped).is_err());

    let mut unknown_kind = deployment;
    unknown_kind["kind"] = Value::from("Deploymnet");
    assert!(check(&unknown_kind).is_err());
}

#[test]
fn the_check_applies_the_crd_cel_rules() {
    let example = repo().join("charts/feedroll/examples/feed-server-redis.yaml");
    let mut rollout = yaml_documents(&example).remove(0);
    assert!(check(&rollout).is_ok());
    // Weights must never decrease: a CEL rule of the CRD, invisible to the Rust types.
    rollout["spec"]["strategy"]["steps"] =
        serde_json::json!([{"setWeight": 50}, {"setWeight": 10}]);
    let err = check(&rollout).expect_err("decreasing weights");
    assert!(err.contains("never decrease"), "{err}");
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value: serde_yaml::Value =
                serde::Deserialize::deserialize(doc).expect("valid YAML document");
            serde_json::to_value(value).expect("YAML that is JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn example_feedrollouts_match_the_api() {
    let examples = files(&repo().join("charts/feedroll/examples"), "yaml");
    assert!(!examples.is_empty());
    for path in examples {
        for object in yaml_documents(&path) {
            if let Err(e) = check(&object) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}

#[test]
fn argocd_fixtures_are_real_feedrollouts() {
    let base = repo().join("argocd/resource_customizations/feedroll.dev/FeedRollout");
    let mut checked = 0;
    for dir in [base.join("testdata"), base.join("actions/testdata")] {
        for path in files(&dir, "yaml") {
            for object in yaml_documents(&path) {
                // One fixture carries an unknown phase on purpose (the health check's fallback).
                if str_at(&object, "/status/phase") == "Exploded" {
                    continue;
                }
                if let Err(e) = check(&object) {
                    panic!("{}: {e}", path.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} fixtures checked");
}

/// Every `feed_*` name the chart spells in its dashboards, alerts and monitors (as rendered, in
/// every snapshot) is a metric feed-server exports (`feed_metrics::ALL`, the names defined once):
/// a renamed or misspelt series fails here, not as an empty panel or an alert that never fires.
#[test]
fn the_chart_queries_only_metrics_feed_server_exports() {
    let mut unknown = std::collections::BTreeSet::new();
    let mut seen = 0;
    for path in files(&rendered_dir(), "json") {
        let text = std::fs::read_to_string(&path).expect("a rendered snapshot");
        for name in metric_names(&text) {
            seen += 1;
            if !feed_metrics::ALL.contains(&name.as_str()) {
                unknown.insert(format!("{name} ({})", path.display()));
            }
        }
    }
    assert!(
        seen > 20,
        "the snapshots spell feed-server metrics ({seen} found)"
    );
    assert!(
        unknown.is_empty(),
        "not exported by feed-server: {unknown:#?}"
    );
}

/// The `feed_[a-z_]+` words of `text` (a metric name starts at a word boundary).
fn metric_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("feed_").map(|a| a + i) {
        let end = text[at..]
            .bytes()
            .position(|b| !(b.is_ascii_lowercase() || b == b'_'))
            .map_or(text.len(), |p| at + p);
        if at == 0 || !word(bytes[at - 1]) {
            names.push(text[at..end].to_owned());
        }
        i = end.max(at + 1);
    }
    names
}

#[test]
fn metric_names_are_whole_words() {
    assert_eq!(
        metric_names("rate(feed_a_total[5m]) / x_feed_b + \"feed_c\""),
        ["feed_a_total", "feed_c"]
    );
}
