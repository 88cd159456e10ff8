//! The checked-in CRD YAML is what the Rust types generate, and the schema is one Kubernetes
//! accepts (structural, only formats it defines).

use feedroll_crds::{crd, schema::crd_yaml};
use serde_json::Value;

const CRD_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/feedroll.dev_feedrollouts.yaml"
);

#[test]
fn checked_in_crd_yaml_is_fresh() {
    let generated = crd_yaml().expect("CRD generates");
    let on_disk = std::fs::read_to_string(CRD_FILE).unwrap_or_default();
    assert!(
        generated == on_disk,
        "crds/feedroll.dev_feedrollouts.yaml is stale: run `make crds` \
         (cargo run -q -p feedroll-operator -- crd > crds/feedroll.dev_feedrollouts.yaml)"
    );
}

fn schema() -> Value {
    let crd = crd().expect("CRD generates");
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn walk<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push((format!("{path}.{k}"), v));
                walk(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn schema_has_only_kubernetes_formats() {
    let schema = schema();
    let mut all = Vec::new();
    walk(&schema, String::new(), &mut all);
    let bad: Vec<_> = all
        .iter()
        .filter(|(path, v)| {
            path.ends_with(".format")
                && !path.ends_with(".properties.format")
                && v.as_str()
                    .is_some_and(|f| !feedroll_crds::schema::KUBERNETES_FORMATS.contains(&f))
        })
        .map(|(p, v)| format!("{p} = {v}"))
        .collect();
    assert!(
        bad.is_empty(),
        "formats Kubernetes does not define: {bad:?}"
    );
    let text = schema.to_string();
    for f in [
        "uint32", "uint64", "\"uint\"", "int8", "uint8", "uint16", "int16",
    ] {
        assert!(!text.contains(f), "schema still mentions {f}");
    }
}

#[test]
fn schema_is_structural_enough() {
    let schema = schema();
    let mut all = Vec::new();
    walk(&schema, String::new(), &mut all);
    for (path, v) in &all {
        if let Value::Object(map) = v {
            if map.contains_key("properties") && !path.ends_with(".properties") {
                assert!(
                    !map.contains_key("additionalProperties"),
                    "{path}: properties and additionalProperties are mutually exclusive"
                );
            }
            assert!(!map.contains_key("$ref"), "{path}: $ref is not allowed");
            assert!(
                !map.contains_key("allOf") || path.contains("x-kubernetes"),
                "{path}: allOf"
            );
        }
    }
    // Defaults are applied in code, except spec.replicas for the scale subresource.
    assert_eq!(
        schema["properties"]["spec"]["properties"]["replicas"]["default"],
        1
    );
    assert!(
        all.iter()
            .filter(|(p, _)| p.ends_with(".default") && !p.ends_with(".properties.default"))
            .count()
            == 1
    );
}

#[test]
fn crd_names_subresources_and_columns() {
    let crd = crd().unwrap();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("feedrollouts.feedroll.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["fr".to_owned()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let columns: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Phase", "Weight", "Actual", "Step", "Canary", "Age"]
    );
}

#[test]
fn every_cel_rule_has_a_message() {
    let schema = schema();
    let mut all = Vec::new();
    walk(&schema, String::new(), &mut all);
    let rules: Vec<_> = all
        .iter()
        .filter(|(p, _)| p.ends_with("x-kubernetes-validations"))
        .collect();
    assert!(
        rules.len() >= 8,
        "expected the CEL rules in the schema, found {}",
        rules.len()
    );
    for (path, list) in rules {
        for rule in list.as_array().unwrap() {
            assert!(
                rule["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{path}: rule without message"
            );
        }
    }
}

#[test]
fn crd_fits_client_side_kubectl_apply() {
    // `kubectl apply` (client-side) stores the object in an annotation limited to 256 KiB.
    let json = serde_json::to_string(&crd().unwrap()).unwrap();
    assert!(
        json.len() < 256 * 1024,
        "CRD is {} bytes of JSON",
        json.len()
    );
    // The template keeps its own description, the API's fields keep theirs.
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    assert!(spec["template"]["description"].is_string());
    assert!(spec["strategy"]["properties"]["steps"]["description"].is_string());
    assert!(
        spec["template"]["properties"]["spec"]
            .get("description")
            .is_none()
    );
}

/// Objects written before `status.pauseReason` was typed (the Argo CD fixtures are such
/// objects) still parse, keep their reason, and serialize it back unchanged.
#[test]
fn objects_written_with_a_string_pause_reason_still_parse() {
    use feedroll_crds::{FeedRollout, PauseReason};
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../argocd/resource_customizations/feedroll.dev/FeedRollout"
    );
    let mut seen = Vec::new();
    for dir in ["testdata", "actions/testdata"] {
        let entries = std::fs::read_dir(format!("{root}/{dir}")).expect("Argo CD fixtures");
        for path in entries.map(|e| e.expect("entry").path()) {
            let text = std::fs::read_to_string(&path).expect("readable");
            let raw: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
            let Some(reason) = raw["status"]["pauseReason"].as_str() else {
                continue;
            };
            let fr: FeedRollout = serde_yaml::from_value(raw.clone())
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            let parsed = fr
                .status
                .and_then(|s| s.pause_reason)
                .expect("a pause reason");
            assert_eq!(parsed.as_str(), reason, "{}", path.display());
            seen.push(parsed);
        }
    }
    assert!(seen.contains(&PauseReason::PauseStep) && seen.contains(&PauseReason::HoldExpired));
    // Every value the operator ever wrote, and nothing else.
    for old in [
        "PauseStep",
        "Command",
        "SpecPaused",
        "CheckFailed",
        "HoldExpired",
        "NoData",
        "ProgressDeadlineExceeded",
    ] {
        let reason: PauseReason = serde_json::from_value(Value::from(old)).expect(old);
        assert_eq!(serde_json::to_value(reason).expect("serializes"), old);
    }
    let unknown = serde_json::from_value::<PauseReason>(Value::from("Sleepy"));
    assert!(unknown.is_err_and(|e| e.to_string().contains("PauseStep")));
}
