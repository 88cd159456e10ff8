//! The chart's RBAC (`charts/feedroll/templates/_helpers.tpl` `feedroll.rules` and the Lease
//! Role in `rbac.yaml`) grants exactly the permissions the operator's code lists
//! (`controller::rbac::PERMISSIONS`; each request of the reconciler tests is checked against that
//! list): nothing missing, nothing more.

use std::collections::BTreeSet;
use std::path::Path;

use feedroll_operator::controller::rbac::{PERMISSIONS, required};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

type Grant = (String, String, String);

fn chart_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/feedroll/templates")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn grants(rules: &[Rule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in &r.api_groups {
            for res in &r.resources {
                for v in &r.verbs {
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

/// The rules the chart grants the operator.
fn chart_grants() -> BTreeSet<Grant> {
    let helpers = chart_file("_helpers.tpl");
    let start = helpers
        .find("{{- define \"feedroll.rules\" -}}")
        .expect("feedroll.rules");
    let body = &helpers[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[..body.find("{{- end -}}").expect("end of feedroll.rules")];
    let rules: Vec<Rule> = serde_yaml::from_str(body).expect("feedroll.rules is plain YAML");
    let mut all = grants(&rules);
    // The Lease Role: the one rule on coordination.k8s.io in rbac.yaml.
    let rbac = chart_file("rbac.yaml");
    let at = rbac
        .find("- apiGroups: [\"coordination.k8s.io\"]")
        .expect("Lease rule");
    let lines: Vec<&str> = rbac[at..].lines().take(3).map(str::trim).collect();
    let text = format!("- {}\n  {}\n  {}", &lines[0][2..], lines[1], lines[2]);
    let lease: Vec<Rule> = serde_yaml::from_str(&text).expect("Lease rule YAML");
    all.extend(grants(&lease));
    all
}

fn needed() -> BTreeSet<Grant> {
    PERMISSIONS
        .iter()
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (p.group.to_owned(), p.resource.to_owned(), (*v).to_owned()))
        })
        .collect()
}

#[test]
fn the_chart_grants_everything_the_operator_uses() {
    let chart = chart_grants();
    let missing: Vec<Grant> = needed()
        .into_iter()
        .filter(|g| !chart.contains(g))
        .collect();
    assert!(missing.is_empty(), "the chart's RBAC misses {missing:?}");
}

#[test]
fn the_chart_grants_nothing_the_operator_does_not_use() {
    let needed = needed();
    let surplus: Vec<Grant> = chart_grants()
        .into_iter()
        .filter(|g| !needed.contains(g))
        .collect();
    assert!(
        surplus.is_empty(),
        "the chart grants {surplus:?}, which controller::rbac::PERMISSIONS does not list"
    );
}

#[test]
fn requests_map_to_rbac_verbs() {
    let r = |m, p, q| required(m, p, q).map(|(g, res, v)| format!("{g}|{res}|{v}"));
    assert_eq!(
        r("GET", "/apis/apps/v1/namespaces/a/deployments/x", ""),
        Some("apps|deployments|get".into())
    );
    assert_eq!(
        r("GET", "/api/v1/pods", "labelSelector=a%3Db"),
        Some("|pods|list".into())
    );
    assert_eq!(
        r(
            "GET",
            "/api/v1/namespaces/a/pods",
            "watch=true&resourceVersion=1"
        ),
        Some("|pods|watch".into())
    );
    assert_eq!(
        r(
            "PATCH",
            "/apis/feedroll.dev/v1alpha1/namespaces/a/feedrollouts/x/status",
            "fieldManager=f"
        ),
        Some("feedroll.dev|feedrollouts/status|patch".into())
    );
    assert_eq!(
        r("POST", "/apis/events.k8s.io/v1/namespaces/a/events", ""),
        Some("events.k8s.io|events|create".into())
    );
    assert_eq!(r("GET", "/version", ""), None);
}
