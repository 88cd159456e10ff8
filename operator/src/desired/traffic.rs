//! Gateway API traffic: an HTTPRoute with exact backend weights (built as JSON: k8s-openapi has
//! no Gateway API types).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use feedroll_crds::GatewayApi;

use super::services::DEFAULT_PORT;
use super::workloads::object_labels;
use super::{Names, Track};

/// API version of the HTTPRoutes the operator writes.
pub const HTTP_ROUTE_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// The canary's backend weight: the status weight, but 0 while no canary pod is ready (a
/// backend without endpoints would fail that share of requests).
pub fn route_weight(weight: i32, canary_ready: i32) -> i32 {
    if canary_ready > 0 {
        weight.clamp(0, 100)
    } else {
        0
    }
}

/// Name of the HTTPRoute: `gatewayAPI.httpRoute`, else the rollout's name.
pub fn route_name(names: &Names, gateway: &GatewayApi) -> String {
    gateway
        .http_route
        .clone()
        .unwrap_or_else(|| names.rollout.clone())
}

/// The HTTPRoute: the spec's parentRefs and hostnames, one rule sending `100 - canary_weight`
/// to `<rollout>-stable` and `canary_weight` to `<rollout>-canary` on the spec's port.
pub fn http_route(
    names: &Names,
    owner: &OwnerReference,
    gateway: &GatewayApi,
    canary_weight: i32,
) -> Value {
    let port = gateway.port.unwrap_or(DEFAULT_PORT);
    let parents: Vec<Value> = gateway
        .parent_refs
        .iter()
        .map(|p| {
            let mut v = json!({"name": p.name});
            for (key, field) in [
                ("namespace", &p.namespace),
                ("sectionName", &p.section_name),
                ("group", &p.group),
                ("kind", &p.kind),
            ] {
                if let Some(value) = field {
                    v[key] = json!(value);
                }
            }
            v
        })
        .collect();
    let mut spec = json!({
        "parentRefs": parents,
        "rules": [{
            "backendRefs": [
                {"name": names.service(Track::Stable), "port": port, "weight": 100 - canary_weight},
                {"name": names.service(Track::Canary), "port": port, "weight": canary_weight},
            ]
        }]
    });
    if !gateway.hostnames.is_empty() {
        spec["hostnames"] = json!(gateway.hostnames);
    }
    json!({
        "apiVersion": HTTP_ROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {
            "name": route_name(names, gateway),
            "namespace": names.namespace,
            "labels": object_labels(names, None),
            "ownerReferences": [owner],
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_weight_waits_for_a_ready_pod() {
        assert_eq!(route_weight(25, 0), 0);
        assert_eq!(route_weight(25, 1), 25);
        assert_eq!(route_weight(150, 1), 100);
        assert_eq!(route_weight(0, 3), 0);
    }
}
