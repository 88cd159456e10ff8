//! The feed-server NetworkPolicy the chart renders, against the pods the operator really runs:
//! the FeedRollout of the same render goes through the operator's own `desired` (the code that
//! builds the stable and canary Deployments), and the policy must select those pods (and only
//! those) and name a port they expose.

use std::collections::BTreeMap;
use std::path::Path;

use feedroll_chart_tests::selects;
use feedroll_crds::FeedRollout;
use feedroll_operator::desired::{LABEL_ROLLOUT, World, desired};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The objects of one rendered scenario (`charts/tests/chart_render.py`).
fn rendered(scenario: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/rendered")
        .join(format!("{scenario}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("a JSON array of objects")
}

fn the<T: DeserializeOwned>(objects: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "want one {kind}");
    serde_json::from_value(found[0].clone()).expect(kind)
}

/// The stable and canary Deployments the operator makes of the rendered FeedRollout (as read
/// back from the API server: with a uid, no status yet).
fn operator_deployments(objects: &[Value]) -> Vec<Deployment> {
    let mut fr: FeedRollout = the(objects, "FeedRollout");
    fr.metadata.uid = Some("5f0c8c4e-0000-4000-8000-000000000001".into());
    let d = desired(&fr, &World::default()).expect("the operator acts on the chart's FeedRollout");
    let out: Vec<Deployment> = d.stable.into_iter().chain(d.canary).collect();
    assert_eq!(out.len(), 2, "stable and canary");
    out
}

fn pod(d: &Deployment) -> &PodTemplateSpec {
    &d.spec.as_ref().expect("spec").template
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    pod(d)
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

#[test]
fn the_policy_selects_every_pod_the_operator_runs_and_allows_their_http_port() {
    let objects = rendered("feed-server-network-policy");
    let np: NetworkPolicy = the(&objects, "NetworkPolicy");
    let spec = np.spec.as_ref().expect("spec");
    // An absent podSelector would select every pod of the namespace.
    let selector = spec.pod_selector.as_ref().expect("a podSelector");
    for d in operator_deployments(&objects) {
        assert_eq!(np.metadata.namespace, d.metadata.namespace);
        let labels = pod_labels(&d);
        assert!(selects(selector, &labels), "{labels:?}");
        // Every ingress port is one the feed-server container exposes, by name or number.
        let pod_spec = pod(&d).spec.as_ref().expect("pod spec");
        let ports = pod_spec.containers[0].ports.clone().unwrap_or_default();
        for rule in spec.ingress.iter().flatten() {
            for p in rule.ports.iter().flatten() {
                let exposed = ports.iter().any(|c| match &p.port {
                    Some(IntOrString::String(name)) => c.name.as_deref() == Some(name),
                    Some(IntOrString::Int(n)) => c.container_port == *n,
                    None => false,
                });
                assert!(exposed, "{:?} is not a port of {ports:?}", p.port);
            }
        }
        // Not the pods of another rollout in the same namespace.
        let mut other = labels.clone();
        other.insert(LABEL_ROLLOUT.into(), "another".into());
        assert!(!selects(selector, &other));
    }
}

#[test]
fn the_operator_pods_keep_the_charts_security_context() {
    let objects = rendered("feed-server-network-policy");
    for d in operator_deployments(&objects) {
        let spec = pod(&d).spec.as_ref().expect("pod spec");
        let psc = spec
            .security_context
            .as_ref()
            .expect("pod security context");
        assert_eq!(
            (psc.run_as_non_root, psc.run_as_user),
            (Some(true), Some(65532))
        );
        let sc = spec.containers[0]
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone());
        assert_eq!(drop, Some(vec!["ALL".to_owned()]));
        let seccomp = sc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
        assert_eq!(seccomp, Some("RuntimeDefault"));
    }
}
