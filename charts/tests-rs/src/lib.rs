//! Strict schema checks of the Helm chart's rendered objects.
//!
//! The chart is rendered with the real Helm engine by `charts/tests/chart_render.py` into JSON
//! snapshots under `testdata/rendered/` (kept current by `charts/tests/test_chart.py`). The
//! test in `tests/rendered.rs` deserialises every object into its Kubernetes type
//! (k8s-openapi) and serialises it back: an unknown or misspelt field is dropped by the round
//! trip and a wrong type fails to deserialise, so both show up as a difference.
//!
//! prometheus-operator kinds are not in k8s-openapi; [`monitoring`] models the subset of
//! `monitoring.coreos.com/v1` the chart uses, rejecting unknown fields.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod monitoring;

/// Deserialises `object` into `T`, serialises it back and returns where the two differ
/// (JSON pointers), or the deserialisation error.
pub fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    diff("", object, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// Differences between `want` (the input) and `got` (after the round trip).
pub fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}/{k}");
                match b.get(k) {
                    Some(w) => diff(&p, v, w, out),
                    None => out.push(format!("{p}: not a field of the type (dropped)")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}/{k}: added by the round trip"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}/{i}"), v, w, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        _ if want == got => {}
        _ => out.push(format!("{path}: {want} became {got}")),
    }
}

/// Whether `selector` selects an object with `labels`, as the API server decides it: every
/// `matchLabels` pair and every `matchExpressions` requirement holds (an empty selector
/// selects everything). An unknown operator selects nothing.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let listed = || value.is_some_and(|v| e.values.iter().flatten().any(|w| w == v));
        match e.operator.as_str() {
            "In" => listed(),
            "NotIn" => !listed(),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    pairs && expressions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Serialize, Deserialize)]
    struct Pair {
        a: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    }

    #[test]
    fn round_trip_reports_unknown_and_mistyped_fields() {
        assert!(round_trip::<Pair>(&json!({"a": 1, "b": "x"})).is_ok());
        let err = round_trip::<Pair>(&json!({"a": 1, "bb": "x"})).unwrap_err();
        assert!(err.contains("/bb: not a field"), "{err}");
        assert!(round_trip::<Pair>(&json!({"a": "one"})).is_err());
    }

    #[test]
    fn selects_follows_match_labels_and_expressions() {
        let labels = BTreeMap::from([
            ("app".to_owned(), "feed".to_owned()),
            ("tier".to_owned(), "api".to_owned()),
        ]);
        let selector = |v: Value| -> LabelSelector { serde_json::from_value(v).unwrap() };
        assert!(selects(&selector(json!({})), &labels));
        assert!(selects(
            &selector(json!({"matchLabels": {"app": "feed"}})),
            &labels
        ));
        assert!(!selects(
            &selector(json!({"matchLabels": {"app": "feed", "x": "y"}})),
            &labels
        ));
        assert!(!selects(
            &selector(json!({"matchLabels": {"app": "other"}})),
            &labels
        ));
        let expr = |op: &str, values: Value| {
            selector(
                json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}),
            )
        };
        assert!(selects(&expr("In", json!(["api", "web"])), &labels));
        assert!(!selects(&expr("In", json!(["web"])), &labels));
        assert!(selects(&expr("NotIn", json!(["web"])), &labels));
        assert!(!selects(&expr("NotIn", json!(["api"])), &labels));
        assert!(selects(&expr("Exists", json!(null)), &labels));
        assert!(!selects(&expr("DoesNotExist", json!(null)), &labels));
        assert!(!selects(&expr("Near", json!(["api"])), &labels));
    }
}
