//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`), the legacy
//! (unaggregated) format: kubectl falls back to it when the server answers plain JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::ResourceInfo;

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// `/apis`: every non-core group with its versions.
pub fn group_list(infos: &[ResourceInfo]) -> Value {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in infos.iter().filter(|i| !i.group.is_empty()) {
        let versions = groups.entry(&i.group).or_default();
        if !versions.contains(&i.version.as_str()) {
            versions.push(&i.version);
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP/VERSION` (or `/api/v1`): the resources and subresources served there; `None`
/// when nothing is.
pub fn resource_list(infos: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for i in infos
        .iter()
        .filter(|i| i.group == group && i.version == version)
    {
        resources.push(json!({"name": i.plural, "singularName": i.singular,
            "namespaced": i.namespaced, "kind": i.kind, "verbs": VERBS,
            "shortNames": i.short_names}));
        for sub in &i.subresources {
            let kind = if sub == "scale" { "Scale" } else { &i.kind };
            let verbs = if sub == "log" {
                json!(["get"])
            } else {
                json!(["get", "patch", "update"])
            };
            let mut r = json!({"name": format!("{}/{sub}", i.plural), "singularName": "",
                "namespaced": i.namespaced, "kind": kind, "verbs": verbs});
            if sub == "scale" {
                r["group"] = json!("autoscaling");
                r["version"] = json!("v1");
            }
            resources.push(r);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-localkube",
           "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"})
}

/// The group-versions served, as `(group, version)`, core first.
fn group_versions(infos: &[ResourceInfo]) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for i in infos {
        let gv = (i.group.clone(), i.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    gvs
}

/// `/openapi/v3`: the index of per-group-version documents. kubectl reads it to learn that the
/// server validates fields itself (`fieldValidation`), so `kubectl apply` works without
/// `--validate=false`.
pub fn openapi_index(infos: &[ResourceInfo]) -> Value {
    let paths: serde_json::Map<String, Value> = group_versions(infos)
        .into_iter()
        .map(|(g, v)| {
            let rel = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let url = format!("/openapi/v3/{rel}");
            (rel, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// `/openapi/v3/apis/G/V`: a document with, for each kind, the PATCH operation of its objects
/// (tagged with the kind, accepting `fieldValidation`). No schemas: kubectl then computes
/// apply patches from its built-in types, and `kubectl explain` has nothing to show.
pub fn openapi_group_version(infos: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for i in infos
        .iter()
        .filter(|i| i.group == group && i.version == version)
    {
        let base = crate::path::prefix_of(group, version);
        let path = if i.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", i.plural)
        } else {
            format!("{base}/{}/{{name}}", i.plural)
        };
        paths.insert(
            path,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": i.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
                "paths": paths}),
    )
}
