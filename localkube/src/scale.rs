//! The `scale` subresource: the `Scale` view of an object and writing its replicas back, at
//! the CRD's `specReplicasPath`/`statusReplicasPath`/`labelSelectorPath` (or a Deployment's).

use serde_json::{Value, json};

use crate::resources::{self, ResourceInfo};

/// The `Scale` of an object with a scale subresource.
pub(crate) fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let at = |p: &str| {
        p.trim_start_matches('.')
            .split('.')
            .try_fold(obj, |v, k| v.get(k))
            .cloned()
    };
    let paths = info.scale.clone().unwrap_or(resources::ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: None,
    });
    let selector = match &paths.label_selector {
        Some(p) => at(p).unwrap_or(json!("")),
        None => json!(
            obj["spec"]["selector"]["matchLabels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
                     "resourceVersion": obj["metadata"]["resourceVersion"],
                     "uid": obj["metadata"]["uid"], "creationTimestamp": obj["metadata"]["creationTimestamp"]},
        "spec": {"replicas": at(&paths.spec_replicas).unwrap_or(json!(0))},
        "status": {"replicas": at(&paths.status_replicas).unwrap_or(json!(0)), "selector": selector}})
}

pub(crate) fn set_spec_replicas(info: &ResourceInfo, obj: &mut Value, replicas: Value) {
    let path = info
        .scale
        .as_ref()
        .map_or(".spec.replicas", |s| s.spec_replicas.as_str());
    let keys: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        if !cur[*k].is_object() {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    cur[*last] = replicas;
}
